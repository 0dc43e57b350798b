"""The one training entry point. Pretraining, task-adaptive pretraining and fine-tuning each describe
their run as a `Run` (what to train on, for how long, what to validate on, which checkpoint to keep,
where the curves go) and call `fit`, which builds the loaders, the checkpointing, the curve writer
and the Lightning Trainer the same way for all three, and resumes a run that was cut off.

The network is built by the caller, after seeding, so the order of random draws (weights first,
then the data order, then dropout) is the caller's and stays fixed.
"""

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch.utils.data import DataLoader, Dataset

from llmpipe.schema import Hardware, Optimization
from llmpipe.training.checkpoints import resume_fit
from llmpipe.training.curves import CurveWriter
from llmpipe.training.loaders import ResumableLoader
from llmpipe.training.trainer_setup import batch_split, build_trainer, compile_model


@dataclass
class Run:
    """One training run. `train_set` yields exactly steps x batch_size examples (RandomWindows or
    Epochs), so a resumed run continues where it stopped."""

    train_set: Dataset
    batch_size: int  # examples per optimizer step, on any hardware (gradient accumulation makes it up)
    steps: int  # optimizer steps
    settings: Optimization  # val_every, log_every, grad_clip (the optimizer is the module's)
    checkpoint_dir: Path  # resume checkpoints: checkpoints/<stage>/.../<fingerprint>
    curves_dir: Path  # train.csv and val.csv for `dvc plots`
    collate: Callable | None = None  # of the training batches (None: torch's default)
    val_set: Dataset | None = None  # None: nothing is validated; checkpoints every val_every steps
    val_collate: Callable | None = None  # of the validation batches (None: as the training ones)
    val_batches: int | None = None  # validate on this many batches of batch_size (None: the whole set)
    monitor: tuple[str, str] | None = None  # keep the best checkpoint by (metric, min|max); None: the last
    callbacks: list[Callback] = field(default_factory=list)
    log_prefix: str = ""  # keeps a second training in the same MLflow run apart ("adapt-train/loss")


@dataclass
class Fitted:
    trainer: L.Trainer
    curves: CurveWriter
    checkpoint: ModelCheckpoint
    val_loader: DataLoader | None


def checkpointing(run: Run) -> ModelCheckpoint:
    """Resume checkpoints: the best by run.monitor (and the last), or the latest validated one, or,
    without validation, one every val_every steps. Saved after validations, so each holds its
    validation too."""
    if run.val_set is None:
        every = run.settings.val_every
        return ModelCheckpoint(dirpath=run.checkpoint_dir, every_n_train_steps=every, save_top_k=0, save_last=True)
    if run.monitor is None:
        return ModelCheckpoint(dirpath=run.checkpoint_dir, save_last=True, save_top_k=1)  # top 1 = the latest
    metric, mode = run.monitor
    return ModelCheckpoint(
        dirpath=run.checkpoint_dir, filename="best", monitor=metric, mode=mode, save_top_k=1, save_last=True
    )


def fit(module: L.LightningModule, run: Run, hardware: Hardware) -> Fitted:
    """Train `module` as `run` says on `hardware`, resuming from run.checkpoint_dir/last.ckpt."""
    compile_model(module.net, hardware)  # in place: parameter names, checkpoints and exports stay the same
    micro_batch, accumulate = batch_split(run.batch_size, hardware)
    loader_args = {
        "batch_size": micro_batch,
        "num_workers": hardware.num_workers,
        "pin_memory": hardware.accelerator == "gpu",
    }
    # The randomness is in the datasets; the loader's position is saved in checkpoints. Checkpoints
    # are taken after optimizer steps, when global_step * accumulate micro-batches have been used.
    train_loader = ResumableLoader(
        run.train_set, consumed=lambda: trainer.global_step * accumulate, collate_fn=run.collate, **loader_args
    )
    val_loader = None
    if run.val_set is not None:
        val_loader = DataLoader(run.val_set, collate_fn=run.val_collate or run.collate, **loader_args)
    # val_batches counts batches of batch_size; every rank validates on all of them, so the
    # validation loss does not depend on the hardware.
    limit_val = 1.0 if run.val_batches is None else run.val_batches * run.batch_size // micro_batch
    checkpoint, curves = checkpointing(run), CurveWriter(run.curves_dir)
    trainer = build_trainer(
        hardware,
        run.settings,
        accumulate,
        checkpoint,
        [curves, *run.callbacks],
        run.steps,
        limit_val_batches=limit_val,
        log_prefix=run.log_prefix,
    )
    with warnings.catch_warnings():
        if val_loader is None:  # no validation by design: Lightning's notice of it is noise
            warnings.filterwarnings("ignore", message="You defined a `validation_step` but have no `val_dataloader`")
        resume_fit(trainer, module, train_loader, val_loader, run.checkpoint_dir)
    return Fitted(trainer, curves, checkpoint, val_loader)
