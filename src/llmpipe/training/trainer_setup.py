"""The Lightning Trainer of every training run, from the hardware section and the run's settings:
the strategy (DDP, FSDP2), precision, gradient accumulation that keeps the optimizer batch the same
on any hardware, the progress bar and the MLflow logger."""

import sys

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm
from lightning.pytorch.plugins.io import TorchCheckpointIO

from llmpipe.atomic import replace_file
from llmpipe.schema import Hardware, Optimization, Pretrain
from llmpipe.training.setting_rules import batch_problems, devices_problems


def batch_split(batch_size: int, hardware: Hardware) -> tuple[int, int]:
    """(sequences per forward pass, micro-batches per optimizer step) so that one optimizer step
    sees exactly batch_size sequences on any hardware: the largest micro-batch that divides each
    device's share and fits in trainer.micro_batch_size."""
    if problems := devices_problems(batch_size, hardware, "batch_size"):
        raise ValueError(problems[0])
    world = hardware.devices * hardware.num_nodes
    per_device, micro_batch_size = batch_size // world, hardware.micro_batch_size
    micro = max(m for m in range(1, min(micro_batch_size, per_device) + 1) if per_device % m == 0)
    return micro, per_device // micro


def token_budget(section: Pretrain, block_size: int, train_tokens: int | None = None) -> tuple[int, int]:
    """(sequences per optimizer step, optimizer steps) for a pretraining section that gives its
    global batch and its run length in tokens (batch_tokens, max_tokens). With `epochs` set, the run
    length is epochs x train_tokens (the tokens of the data fraction it trains on) instead."""
    if problems := batch_problems(section, block_size):
        raise ValueError(problems[0])
    batch_tokens, max_tokens = section.batch_tokens, section.max_tokens
    length = f"pretrain.max_tokens={max_tokens}"
    if section.epochs is not None:
        assert train_tokens is not None, "an epoch budget needs the number of training tokens"
        max_tokens = int(section.epochs * train_tokens)
        length = (
            f"pretrain.epochs={section.epochs} x {train_tokens} training tokens "
            f"(pretrain.data_fraction={section.data_fraction} of the train split)"
        )
    if max_tokens < batch_tokens:
        raise ValueError(f"{length} is less than one batch (pretrain.batch_tokens={batch_tokens})")
    return batch_tokens // block_size, max_tokens // batch_tokens


def mlflow_logger(prefix: str = ""):
    """Lightning's MLflow logger attached to the stage's active MLflow run, if there is one; a
    prefix keeps a second training in the same run (a baseline) apart: "<prefix>-train/loss"."""
    if "mlflow" not in sys.modules:  # nothing has started a run (benchmarks, library use)
        return False
    import mlflow
    from lightning.pytorch.loggers import MLFlowLogger

    active = mlflow.active_run()
    if active is None:
        return False
    return MLFlowLogger(
        run_id=active.info.run_id, tracking_uri=mlflow.get_tracking_uri(), log_model=False, prefix=prefix
    )


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints are written beside their path and renamed into place: a kill during the write
    leaves the previous checkpoint, never a truncated one."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None):
        with replace_file(path) as tmp:
            super().save_checkpoint(checkpoint, tmp, storage_options)


def strategy(hardware: Hardware):
    """trainer.strategy as Lightning takes it. 'fsdp2' is Lightning's ModelParallelStrategy with
    data-parallel sharding only (LitLM.configure_model applies fully_shard); it runs on CPU too,
    where Lightning's own 'fsdp' (FSDP1) refuses to. Its checkpoints are one file, like DDP's."""
    if hardware.strategy == "fsdp2":
        from lightning.pytorch.strategies import ModelParallelStrategy

        return ModelParallelStrategy(
            data_parallel_size=hardware.devices * hardware.num_nodes,
            tensor_parallel_size=1,
            save_distributed_checkpoint=False,
        )
    return hardware.strategy


def compile_model(net, hardware: Hardware):
    """trainer.compile: torch.compile the network in place (parameter names stay the same, so
    checkpoints and exports do not change)."""
    if hardware.compile:
        net.compile()
    return net


def is_sharded(net) -> bool:
    """Whether FSDP2 has sharded the network (its parameters are then distributed tensors)."""
    return any(hasattr(p, "device_mesh") for p in net.parameters())


def current_lr(trainer) -> float:
    """The learning rate the next optimizer step uses (every parameter group has the same)."""
    return trainer.optimizers[0].param_groups[0]["lr"]


def gathered(net, build):
    """The trained network as a plain module: `net` itself, or, when FSDP2 has sharded it, a new
    module from `build()` holding the gathered full weights. Every rank must call this (the gather
    is a collective); rank zero then writes the export."""
    if not is_sharded(net):
        return net
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(net, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if not state:  # with cpu_offload only rank zero receives the weights
        return net
    plain = build()
    plain.load_state_dict(state)
    return plain


def is_logging_step(trainer) -> bool:
    """Whether Lightning sends this optimizer step's metrics to the logger (it counts from one)."""
    return (trainer.global_step + 1) % trainer.log_every_n_steps == 0


class LearningRateLogger(Callback):
    """Logs train/lr at logging steps, straight to the logger: LightningModule.log would copy the
    number to the GPU, and that copy waits for the GPU to finish its queued work."""

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if trainer.is_global_zero and trainer.logger and is_logging_step(trainer):
            trainer.logger.log_metrics({"train/lr": current_lr(trainer)}, trainer.global_step)


class LossProgressBar(TQDMProgressBar):
    """Lightning's progress bar, with the training loss read at its refreshes only: reading a value
    waits for the GPU, and Lightning's own bar metrics are read after every step. One bar per run:
    validations show their result on the training bar, not a bar of their own."""

    def init_validation_tqdm(self):
        return Tqdm(disable=True)  # made disabled: an enabled bar prints itself as it is created

    def get_metrics(self, trainer, module) -> dict:
        metrics = super().get_metrics(trainer, module)
        metrics.pop("v_num", None)  # the logger's version: nothing to read off a progress bar
        loss = trainer.callback_metrics.get("train/loss")
        if loss is not None:
            metrics["loss"] = f"{float(loss):.3f}"
        return metrics


def build_trainer(
    hardware: Hardware,
    settings: Optimization,
    accumulate: int,
    checkpoint: ModelCheckpoint,
    callbacks: list[Callback],
    max_steps: int,
    limit_val_batches: int | float = 1.0,
    log_prefix: str = "",
) -> L.Trainer:
    """A Trainer from the hardware section and a training run's settings (val_every, log_every,
    grad_clip), with step counts in optimizer steps, saving resume checkpoints with `checkpoint`."""
    return L.Trainer(
        accelerator=hardware.accelerator,
        devices=hardware.devices,
        num_nodes=hardware.num_nodes,
        strategy=strategy(hardware),
        precision=hardware.precision,
        max_steps=max_steps,
        accumulate_grad_batches=accumulate,
        gradient_clip_val=settings.grad_clip,
        val_check_interval=settings.val_every * accumulate,  # Lightning counts this in micro-batches
        check_val_every_n_epoch=None,
        limit_val_batches=limit_val_batches,
        log_every_n_steps=settings.log_every,
        num_sanity_val_steps=0,
        logger=mlflow_logger(log_prefix),
        callbacks=[checkpoint, *callbacks, LossProgressBar(refresh_rate=settings.log_every), LearningRateLogger()],
        plugins=[AtomicCheckpointIO()],
        # Our loaders shard themselves across ranks (datasets.SkipSampler), so that the position a
        # checkpoint saves is exact under data parallelism too.
        use_distributed_sampler=False,
        enable_model_summary=False,
        default_root_dir=checkpoint.dirpath,  # nothing in the working dir
    )
