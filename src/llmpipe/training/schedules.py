"""Learning-rate schedules as multipliers of the peak learning rate, for torch's LambdaLR.

Both start with a linear warmup, because Adam's early updates are noisy until its second-moment
estimates settle. They differ in what follows:
- cosine: decay along half a cosine to min_ratio at the last step (GPT-3, Chinchilla, nanoGPT);
- wsd, warmup-stable-decay: hold the peak, then decay linearly over the last `decay_fraction` of
  steps (MiniCPM). The stable phase does not depend on the run's length, so a run can be extended
  or branched into a cool-down from any checkpoint of it.
"""

import math

SCHEDULES = ("cosine", "wsd")


def warmup(step: int, warmup_steps: int) -> float:
    return (step + 1) / warmup_steps


def warmup_cosine(step: int, warmup_steps: int, max_steps: int, min_ratio: float) -> float:
    """Linear warmup from ~0 to 1 over warmup_steps, then cosine decay to min_ratio at max_steps."""
    if step < warmup_steps:
        return warmup(step, warmup_steps)
    progress = min(1.0, (step - warmup_steps) / max(1, max_steps - warmup_steps))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def warmup_stable_decay(step: int, warmup_steps: int, max_steps: int, min_ratio: float, decay_fraction: float) -> float:
    """Linear warmup to 1, hold 1, then linear decay to min_ratio over the last decay_fraction of max_steps."""
    if step < warmup_steps:
        return warmup(step, warmup_steps)
    decay_steps = max(1, round(decay_fraction * max_steps))
    decay_start = max(warmup_steps, max_steps - decay_steps)
    if step < decay_start:
        return 1.0
    progress = min(1.0, (step - decay_start) / max(1, max_steps - decay_start))
    return 1.0 - (1 - min_ratio) * progress
