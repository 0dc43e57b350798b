"""The optimizer of every training run, and the settings it is built from.

`OptimConfig` holds what a training section says about optimization (peak rate, schedule, warmup,
decay, betas, which optimizer); `build_optimizer` turns it into a torch optimizer over a network.
Pure PyTorch: the sweep in benchmarks/recipe_sweep.py trains with it outside Lightning.
"""

from dataclasses import dataclass

import torch
from torch import nn

from llmpipe.schema import Optimization
from llmpipe.training.schedules import SCHEDULES, warmup_cosine, warmup_stable_decay

OPTIMIZERS = ("adamw", "muon")


@dataclass(frozen=True, kw_only=True)
class OptimConfig:
    """A training section's optimizer settings (conf/pretrain, conf/finetune say their defaults)."""

    lr: float
    max_steps: int
    warmup_steps: int
    min_lr_ratio: float
    weight_decay: float
    betas: tuple[float, float]
    schedule: str  # one of schedules.SCHEDULES
    decay_fraction: float  # wsd only: the share of steps spent decaying
    optimizer: str  # one of OPTIMIZERS (build_optimizer)

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule={self.schedule!r} is not one of {SCHEDULES}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer={self.optimizer!r} is not one of {OPTIMIZERS}")
        if self.max_steps <= 0:
            raise ValueError(f"the run has max_steps={self.max_steps}; it must train at least one step")

    @classmethod
    def from_section(
        cls, section: Optimization, max_steps: int | None = None, lr: float | None = None
    ) -> "OptimConfig":
        """From a training run's settings; max_steps and lr from them unless given (pretraining
        derives max_steps from a token budget; task adaptation has a rate of its own)."""
        return cls(
            lr=section.lr if lr is None else lr,
            max_steps=section.max_steps if max_steps is None else max_steps,
            warmup_steps=section.warmup_steps,
            min_lr_ratio=section.min_lr_ratio,
            weight_decay=section.weight_decay,
            betas=tuple(section.betas),
            schedule=section.schedule,
            decay_fraction=section.decay_fraction,
            optimizer=getattr(section, "optimizer", "adamw"),  # fine-tuning settings have none: AdamW
        )

    def lr_multiplier(self, step: int) -> float:
        if self.schedule == "wsd":
            return warmup_stable_decay(step, self.warmup_steps, self.max_steps, self.min_lr_ratio, self.decay_fraction)
        return warmup_cosine(step, self.warmup_steps, self.max_steps, self.min_lr_ratio)


def build_optimizer(net: nn.Module, optim: OptimConfig, fused: bool = True) -> torch.optim.Optimizer:
    """The optimizer of `optim.optimizer` over the trainable parameters of net.

    adamw  AdamW; weight decay on matrices only (decaying norm gains and biases just fights the model).
    muon   torch.optim.Muon on the hidden matrices (attention and feed-forward projections), AdamW
           on the rest (embeddings, output heads, norm gains): Muon replaces each matrix's update
           by the nearest orthogonal matrix (Newton-Schulz), so every direction of it learns at the
           same rate. Its step is scaled to AdamW's RMS ("match_rms_adamw", Moonshot's Muon), so
           one learning rate and weight decay serve both. One optimizer object (MuonAdamW), since
           Lightning's automatic optimization takes one."""
    trainable = [(name, p) for name, p in net.named_parameters() if p.requires_grad]
    matrices = [p for _, p in trainable if p.dim() >= 2]
    gains = [p for _, p in trainable if p.dim() < 2]
    decay = {"weight_decay": optim.weight_decay}
    if optim.optimizer == "adamw":
        groups = [{"params": matrices, **decay}, {"params": gains, "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=optim.lr, betas=optim.betas, fused=fused, foreach=None if fused else True)
    hidden = hidden_matrices(net)
    others = [p for p in matrices if id(p) not in hidden]
    return MuonAdamW(
        muon_groups=[{"params": [p for p in matrices if id(p) in hidden], **decay}],
        adamw_groups=[{"params": others, **decay}, {"params": gains, "weight_decay": 0.0}],
        lr=optim.lr,
        betas=optim.betas,
        fused=fused,
    )


def hidden_matrices(net: nn.Module) -> set[int]:
    """ids of the matrices Muon trains: every 2-D weight but the embeddings' and the output heads'
    (`lm_head`, a classifier's `score`), which map tokens or classes, not hidden states, and stay
    with AdamW as in Muon's own recipe."""
    heads = {
        id(p) for name, m in net.named_modules() if name.split(".")[-1] in ("lm_head", "score") for p in m.parameters()
    }
    embeddings = {id(p) for m in net.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
    return {id(p) for p in net.parameters() if p.dim() == 2 and id(p) not in heads | embeddings}


class MuonAdamW(torch.optim.Optimizer):
    """torch.optim.Muon for some parameter groups and torch.optim.AdamW for the others, as one
    optimizer: one state_dict (so checkpoints resume exactly), one list of param_groups (so one
    LambdaLR schedules both). The two inner optimizers share this object's group dicts and state."""

    def __init__(self, muon_groups: list[dict], adamw_groups: list[dict], lr: float, betas, fused: bool):
        self.muon = torch.optim.Muon(muon_groups, lr=lr, adjust_lr_fn="match_rms_adamw")
        self.adamw = torch.optim.AdamW(adamw_groups, lr=lr, betas=betas, fused=fused, foreach=None if fused else True)
        self.n_muon = len(self.muon.param_groups)
        super().__init__(self.muon.param_groups + self.adamw.param_groups, defaults={"lr": lr})
        self._link()

    def _link(self):
        self.muon.param_groups = self.param_groups[: self.n_muon]
        self.adamw.param_groups = self.param_groups[self.n_muon :]
        self.muon.state = self.adamw.state = self.state

    def load_state_dict(self, state_dict: dict):
        super().load_state_dict(state_dict)
        self._link()  # loading replaces the group dicts and the state

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.muon.step()
        self.adamw.step()
        return loss
