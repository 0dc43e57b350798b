"""One LightningModule for pretraining (next-token prediction, or masked-token prediction for the
encoder: families/objectives.py) and fine-tuning (classification).

The network, the optimizer settings and the task come in from outside; this module only knows how
to compute the loss of a batch, what to log, and how to build the optimizer and its schedule.
"""

import logging
import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from llmpipe.training.optimizers import OptimConfig, build_optimizer
from llmpipe.training.trainer_setup import is_logging_step, is_sharded

TASKS = ("lm", "classify")
__all__ = ["LitLM", "OptimConfig"]
log = logging.getLogger(__name__)


class LitLM(L.LightningModule):
    """task 'lm': batches (x, y) of token windows, y holding -100 where nothing is scored (the network
    computes the loss: next-token or masked-token). task 'classify': batches (idx, lengths, labels).
    val/bpb is logged only given tokens_per_byte, which a masked-token loss must not be given."""

    def __init__(
        self,
        net: nn.Module,
        optim: OptimConfig,
        task: str = "lm",
        num_labels: int | None = None,
        class_weights: list[float] | None = None,
        tokens_per_byte: float | None = None,
    ):
        super().__init__()
        assert task in TASKS, task
        self.net, self.optim, self.task = net, optim, task
        self.tokens_per_byte = tokens_per_byte  # converts nats per token into bits per byte
        if task == "classify":
            assert num_labels is not None
            weights = torch.tensor(class_weights, dtype=torch.float) if class_weights else None
            self.register_buffer("class_weights", weights, persistent=False)
            self.val_acc = MulticlassAccuracy(num_labels, average="micro")
            self.val_macro_f1 = MulticlassF1Score(num_labels, average="macro")

    def loss(self, batch) -> torch.Tensor:
        if self.task == "lm":
            x, y = batch
            return self.net(x, targets=y)  # inside the network, so torch.compile fuses head and loss
        idx, lengths, labels = batch
        return F.cross_entropy(self.net(idx, lengths).float(), labels, weight=self.class_weights)

    def attached_trainer(self) -> "L.Trainer | None":
        """The Trainer running this module, or None when it runs outside one (a test, an export):
        Lightning's `trainer` property raises then."""
        try:
            return self.trainer
        except RuntimeError:
            return None

    def training_step(self, batch, batch_idx):
        loss = self.loss(batch)
        self.watch_for_non_finite(loss)
        # sync_dist: under data parallelism the logged loss is the mean over all ranks' batches.
        # Not on Lightning's progress bar, which would read it back (a GPU sync) after every step;
        # training.LossProgressBar shows it at refreshes. The learning rate is logged by a callback:
        # logging a Python number here would copy it to the GPU, which also waits.
        self.log("train/loss", loss, sync_dist=True)
        return loss

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        # Lightning calls this once per optimizer step, after gradients are accumulated and reduced
        # across ranks. We clip here rather than in Lightning's mixed-precision plugin, which
        # refuses fused optimizers (they could unscale fp16 gradients themselves); in bf16 and fp32
        # there is nothing to unscale, and configure_optimizers uses no fused optimizer for fp16.
        norm = torch.nn.utils.clip_grad_norm_(self.net.parameters(), gradient_clip_val or float("inf"))
        if is_logging_step(self.trainer):  # reading the norm waits for the GPU
            if hasattr(norm, "full_tensor"):  # sharded (FSDP2) gradients give a distributed tensor
                norm = norm.full_tensor()
            self.log("train/grad_norm", norm)  # before clipping
            self.watch_for_spike(float(norm))

    def watch_for_non_finite(self, loss: torch.Tensor):
        """Record the first step whose loss is NaN or infinite, and stop training there. On a GPU,
        reading a value back waits for all queued work, so the record stays on the device and is
        read at logging steps and before every validation, which precedes every checkpoint: a
        checkpoint never holds weights that a bad step touched."""
        step = self.global_step  # a Python number: a host-to-device copy would wait for the GPU
        first = getattr(self, "_first_bad_step", None)
        if first is None:
            first = torch.full((), -1, device=loss.device, dtype=torch.long)
        self._first_bad_step = torch.where(~torch.isfinite(loss.detach()) & (first < 0), step, first)
        self._bad_loss = torch.where(
            self._first_bad_step == step, loss.detach(), getattr(self, "_bad_loss", loss.detach())
        )
        trainer = self.attached_trainer()
        if loss.device.type == "cpu" or trainer is None or is_logging_step(trainer):
            self.raise_if_non_finite()

    def raise_if_non_finite(self):
        first = getattr(self, "_first_bad_step", None)
        if first is not None and int(first) >= 0:
            raise FloatingPointError(
                f"training loss is {float(self._bad_loss)} at step {int(first)}; stopped, and the last checkpoint"
                " holds the last good state (try a lower learning rate or more warmup)"
            )

    def on_validation_start(self):
        self.raise_if_non_finite()

    def on_train_end(self):
        self.raise_if_non_finite()

    def watch_for_spike(self, norm: float, factor: float = 5.0):
        """Log a warning when the gradient norm jumps above `factor` times its running mean: the
        usual first sign of a loss spike (too high a learning rate, a bad batch)."""
        mean = getattr(self, "_grad_norm_mean", None)
        if mean is not None and norm > factor * mean:
            log.warning(
                "gradient-norm spike at step %d: %.3g against a running mean of %.3g", self.global_step, norm, mean
            )
            self.log("train/grad_norm_spike", 1.0)
        self._grad_norm_mean = norm if mean is None else 0.9 * mean + 0.1 * norm

    def configure_model(self):
        """Shard the network when Lightning's ModelParallelStrategy runs it (FSDP2): each unit its
        family names (a Transformer block, an encoder or decoder layer) is gathered just before its
        forward and freed after, and the root holds what is left (embeddings, final norm, head)."""
        mesh = self.device_mesh
        if mesh is None or is_sharded(self.net):
            return  # not sharded training, or sharded already (Lightning calls this for fit and validate)
        from torch.distributed.fsdp import fully_shard

        from llmpipe.families import shard_units

        data_parallel, units = mesh["data_parallel"], shard_units()
        for block in self.net.modules():
            if isinstance(block, units):
                fully_shard(block, mesh=data_parallel)
        fully_shard(self.net, mesh=data_parallel)

    def validation_step(self, batch, batch_idx):
        if self.task == "lm":
            x, y = batch
            n_targets = int((y != -100).sum())
            loss = self.loss(batch)
            self.log("val/loss", loss, prog_bar=True, batch_size=n_targets)  # token-weighted mean
            if self.tokens_per_byte:
                self.log("val/bpb", loss / math.log(2) * self.tokens_per_byte, batch_size=n_targets)
            return
        idx, lengths, labels = batch
        logits = self.net(idx, lengths)
        self.log("val/loss", F.cross_entropy(logits.float(), labels), prog_bar=True, batch_size=len(labels))
        self.val_acc.update(logits, labels)
        self.val_macro_f1.update(logits, labels)
        self.log("val/acc", self.val_acc, batch_size=len(labels))
        self.log("val/macro_f1", self.val_macro_f1, prog_bar=True, batch_size=len(labels))

    def configure_optimizers(self):
        # Fused: one kernel updates every parameter of a group, on CPU and GPU alike; a loop over
        # the parameters costs more than the arithmetic for small models. Sharded (DTensor)
        # parameters take the multi-tensor path instead, which supports them everywhere, and so
        # does fp16, whose loss scaling Lightning undoes only for unfused optimizers.
        sharded = is_sharded(self.net)
        trainer = self.attached_trainer()
        fp16 = trainer is not None and trainer.precision == "16-mixed"
        if sharded and self.optim.optimizer == "muon":
            raise ValueError(
                "optimizer=muon orthogonalizes whole matrices and does not run on FSDP2's sharded ones "
                "(use optimizer=adamw with trainer.strategy=fsdp2)"
            )
        optimizer = build_optimizer(self.net, self.optim, fused=not (sharded or fp16))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self.optim.lr_multiplier)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
