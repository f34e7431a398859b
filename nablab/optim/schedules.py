"""Learning-rate schedules: functions of the step count (0-based), as ``torch.optim.lr_scheduler`` computes them.

Pass one where an optimizer takes ``lr``; the optimizer calls it with its step count.

>>> from nablab.optim.schedules import step_decay, cosine_decay, linear_warmup
>>> [step_decay(1.0, step_size=2, gamma=0.5)(t) for t in range(5)]
[1.0, 1.0, 0.5, 0.5, 0.25]
>>> round(cosine_decay(1.0, total_steps=10)(5), 12)
0.5
>>> [round(linear_warmup(1.0, warmup_steps=4, start_factor=0.2)(t), 12) for t in (0, 2, 4, 9)]
[0.2, 0.6, 1.0, 1.0]
"""

from __future__ import annotations

import math

from nablab.optim.base import check_finite_float


def constant(lr):
    check_finite_float("lr", lr, low=0.0, who="constant")
    return lambda count: lr


def step_decay(lr, step_size, gamma=0.1):
    """``lr * gamma ** (count // step_size)`` (StepLR stepped once per optimizer step)."""
    check_finite_float("lr", lr, low=0.0, who="step_decay")
    if not isinstance(step_size, int) or step_size < 1:
        raise ValueError(f"step_decay: step_size must be a positive integer, got {step_size!r}")
    check_finite_float("gamma", gamma, low=0.0, who="step_decay")
    return lambda count: lr * gamma ** (count // step_size)


def cosine_decay(lr, total_steps, min_lr=0.0):
    """``min_lr + (lr - min_lr)(1 + cos(pi t / total_steps)) / 2`` (CosineAnnealingLR's closed form)."""
    check_finite_float("lr", lr, low=0.0, who="cosine_decay")
    if not isinstance(total_steps, int) or total_steps < 1:
        raise ValueError(f"cosine_decay: total_steps must be a positive integer, got {total_steps!r}")
    return lambda count: min_lr + (lr - min_lr) * (1 + math.cos(math.pi * count / total_steps)) / 2


def linear_warmup(lr, warmup_steps, start_factor=1.0 / 3):
    """Scale ``lr`` from ``start_factor`` up to 1 linearly over ``warmup_steps`` (LinearLR), then hold."""
    check_finite_float("lr", lr, low=0.0, who="linear_warmup")
    check_finite_float("start_factor", start_factor, low=0.0, high=1.0, low_open=True, who="linear_warmup")
    if not isinstance(warmup_steps, int) or warmup_steps < 1:
        raise ValueError(f"linear_warmup: warmup_steps must be a positive integer, got {warmup_steps!r}")
    return lambda count: lr * (start_factor + (1 - start_factor) * min(count, warmup_steps) / warmup_steps)
