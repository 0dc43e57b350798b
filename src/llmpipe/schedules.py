"""Learning-rate schedules as multipliers of the peak learning rate, for torch's LambdaLR."""

import math


def warmup_cosine(step: int, warmup_steps: int, max_steps: int, min_ratio: float) -> float:
    """Linear warmup from ~0 to 1 over warmup_steps, then cosine decay to min_ratio at max_steps."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, max_steps - warmup_steps))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
