"""Build the Lightning Trainer for a training stage and run it, resuming where a run was cut off.

Resume checkpoints live in checkpoints/<stage>/<fingerprint>/, where the fingerprint hashes every
setting that changes what the run computes: a checkpoint is only ever resumed by the same run.
"""

import hashlib
import json
import logging
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

log = logging.getLogger(__name__)


def batch_split(batch_size: int, micro_batch_size: int, devices: int) -> tuple[int, int]:
    """(sequences per forward pass, micro-batches per optimizer step) so that one optimizer step
    sees exactly batch_size sequences on any hardware: the largest micro-batch that divides each
    device's share and fits in micro_batch_size."""
    if batch_size % devices:
        raise ValueError(f"batch_size={batch_size} is not divisible by trainer.devices={devices}")
    per_device = batch_size // devices
    micro = max(m for m in range(1, min(micro_batch_size, per_device) + 1) if per_device % m == 0)
    return micro, per_device // micro


def fingerprint(*parts) -> str:
    """Hash of the parts and of llmpipe's own source: a code change must not resume an old run."""
    code = hashlib.sha256()
    for path in sorted(Path(__file__).parent.rglob("*.py")):
        code.update(path.read_bytes())
    blob = json.dumps([code.hexdigest(), *parts], sort_keys=True, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes: ties a run's checkpoints to the exact weights it started from."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def mlflow_logger():
    """Lightning's MLflow logger attached to the stage's active MLflow run, if there is one."""
    import mlflow
    from lightning.pytorch.loggers import MLFlowLogger

    active = mlflow.active_run()
    if active is None:
        return False
    return MLFlowLogger(run_id=active.info.run_id, tracking_uri=mlflow.get_tracking_uri(), log_model=False)


def build_trainer(
    hardware: dict, run: dict, accumulate: int, checkpoint: ModelCheckpoint, limit_val_batches: int | float = 1.0
) -> L.Trainer:
    """A Trainer from the hardware section and a training stage's section (max_steps, val_every,
    log_every, grad_clip), with step counts in optimizer steps."""
    return L.Trainer(
        accelerator=hardware["accelerator"],
        devices=hardware["devices"],
        precision=hardware["precision"],
        max_steps=run["max_steps"],
        accumulate_grad_batches=accumulate,
        gradient_clip_val=run["grad_clip"],
        val_check_interval=run["val_every"] * accumulate,  # Lightning counts this in micro-batches
        check_val_every_n_epoch=None,
        limit_val_batches=limit_val_batches,
        log_every_n_steps=run["log_every"],
        num_sanity_val_steps=0,
        logger=mlflow_logger(),
        callbacks=[checkpoint],
        enable_model_summary=False,
        default_root_dir=checkpoint.dirpath,  # nothing lands in the working directory
    )


def fit(trainer: L.Trainer, module: L.LightningModule, train_loader, val_loader, checkpoint_dir: Path):
    last = checkpoint_dir / "last.ckpt"
    if last.is_file():
        log.info("resuming from %s", last)
    trainer.fit(module, train_loader, val_loader, ckpt_path=str(last) if last.is_file() else None)
