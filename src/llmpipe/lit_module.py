"""One LightningModule for pretraining (next-token prediction) and fine-tuning (classification).

The network, the optimizer settings and the task come in from outside; this module only knows how
to compute the loss of a batch, what to log, and how to build the optimizer and its schedule.
"""

import math
from dataclasses import dataclass
from functools import partial

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from llmpipe.schedules import warmup_cosine

TASKS = ("lm", "classify")


@dataclass(frozen=True)
class OptimConfig:
    lr: float
    max_steps: int
    warmup_steps: int = 0
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)

    @classmethod
    def from_section(cls, section: dict) -> "OptimConfig":
        return cls(
            lr=section["lr"],
            max_steps=section["max_steps"],
            warmup_steps=section["warmup_steps"],
            min_lr_ratio=section["min_lr_ratio"],
            weight_decay=section["weight_decay"],
            betas=tuple(section["betas"]),
        )


class LitLM(L.LightningModule):
    """task 'lm': batches (x, y) of token windows. task 'classify': batches (idx, lengths, labels)."""

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
            logits = self.net(x)  # (B, T, V)
            return F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), ignore_index=-100)
        idx, lengths, labels = batch
        return F.cross_entropy(self.net(idx, lengths).float(), labels, weight=self.class_weights)

    def training_step(self, batch, batch_idx):
        loss = self.loss(batch)
        if not torch.isfinite(loss):  # stop before the optimizer spreads it into the weights
            raise FloatingPointError(
                f"training loss is {loss.item()} at step {self.global_step}; stopped, and the last checkpoint"
                " holds the last good state (try a lower learning rate or more warmup)"
            )
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/lr", self.lr_schedulers().get_last_lr()[0])
        return loss

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
        # Weight decay on matrices only: decaying norm gains and biases just fights the model.
        decay = [p for p in self.net.parameters() if p.requires_grad and p.dim() >= 2]
        no_decay = [p for p in self.net.parameters() if p.requires_grad and p.dim() < 2]
        groups = [{"params": decay, "weight_decay": self.optim.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        fused = self.device.type == "cuda"
        optimizer = torch.optim.AdamW(groups, lr=self.optim.lr, betas=self.optim.betas, fused=fused)
        schedule = partial(
            warmup_cosine,
            warmup_steps=self.optim.warmup_steps,
            max_steps=self.optim.max_steps,
            min_ratio=self.optim.min_lr_ratio,
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
