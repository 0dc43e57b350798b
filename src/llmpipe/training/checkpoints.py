"""Resume checkpoints. They live in checkpoints/<stage>/<fingerprint>/, where the fingerprint hashes
every setting that changes what the run computes and llmpipe's own code: a checkpoint is only ever
resumed by the same run, and only if it holds plain weights."""

import hashlib
import json
import logging
import pickle
from pathlib import Path

import lightning as L
import torch

log = logging.getLogger(__name__)


def fingerprint(*parts) -> str:
    """Hash of the parts and of llmpipe's own source: a code change must not resume an old run."""
    code = hashlib.sha256()
    for path in sorted(Path(__file__).parents[1].rglob("*.py")):
        code.update(path.read_bytes())
    blob = json.dumps([code.hexdigest(), *parts], sort_keys=True, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


def verify_checkpoint(path: Path):
    """Refuse a resume checkpoint that is damaged or holds anything but weights and plain data
    (loading is weights-only: no code runs), with a message that says what to do. Memory-mapped, so
    the tensors are not read twice."""
    try:
        torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as err:
        raise ValueError(
            f"resume checkpoint {path} cannot be loaded as plain weights ({str(err).splitlines()[0]}); "
            "delete it to train from the start"
        ) from err


def resume_fit(trainer: L.Trainer, module: L.LightningModule, train_loader, val_loader, checkpoint_dir: Path):
    """trainer.fit, resumed from checkpoint_dir/last.ckpt where an earlier run left one."""
    last = checkpoint_dir / "last.ckpt"
    if last.is_file():
        verify_checkpoint(last)
        log.info("resuming from %s", last)
    ckpt_path = str(last) if last.is_file() else None
    trainer.fit(module, train_loader, val_loader, ckpt_path=ckpt_path, weights_only=True)
