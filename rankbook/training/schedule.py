"""The learning-rate schedule and the steps at which the tracker records."""

from __future__ import annotations

import math


def lr_at(step: int, base_lr: float, warmup_steps: int, total_steps: int) -> float:
    """Learning rate of update ``step`` (0-based): linear warmup to ``base_lr``, then cosine decay to 0.

    The paper's "cyclic learning rate decay with a linear warmup", one cycle.
    """
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return base_lr * 0.5 * (1 + math.cos(math.pi * progress))


def tracking_steps(total_steps: int, per_decade: int) -> list[int]:
    """0, then ``per_decade`` log-spaced steps per decade (rounded, distinct), and ``total_steps``."""
    steps, k = {0, total_steps}, 0
    while (s := round(10 ** (k / per_decade))) < total_steps:
        steps.add(s)
        k += 1
    return sorted(steps)


def steps_per_epoch(num_train: int, batch_size: int, *, subset_setting: str = "train_subset") -> int:
    """Full batches per epoch (an incomplete last batch is dropped)."""
    if num_train < batch_size:
        raise ValueError(
            f"batch_size={batch_size} exceeds the {num_train} training images: raise "
            f"{subset_setting} (0 = the whole split) to at least {batch_size}"
        )
    return num_train // batch_size
