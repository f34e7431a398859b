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

from nablab.checks import check_count, check_lr, check_number


def constant(lr):
    """The schedule ``count -> lr`` that never changes (what a plain number means).

    >>> from nablab import optim
    >>> [optim.constant(0.1)(t) for t in (0, 100)]
    [0.1, 0.1]
    """
    check_lr(lr, who="constant")
    return lambda count: lr


def step_decay(lr, step_size, gamma=0.1):
    """``lr * gamma ** (count // step_size)`` (StepLR stepped once per optimizer step).

    >>> from nablab import optim
    >>> s = optim.step_decay(1.0, step_size=2, gamma=0.5)
    >>> [s(t) for t in range(5)]
    [1.0, 1.0, 0.5, 0.5, 0.25]
    """
    check_lr(lr, who="step_decay")
    check_count("step_size", step_size, low=1, who="step_decay")
    check_number("gamma", gamma, low=0.0, who="step_decay")
    return lambda count: lr * gamma ** (count // step_size)


def cosine_decay(lr, total_steps, min_lr=0.0):
    """``min_lr + (lr - min_lr)(1 + cos(pi t / total_steps)) / 2`` (CosineAnnealingLR's closed form).

    >>> from nablab import optim
    >>> s = optim.cosine_decay(1.0, total_steps=4)
    >>> [round(s(t), 3) for t in range(5)]
    [1.0, 0.854, 0.5, 0.146, 0.0]
    """
    check_lr(lr, who="cosine_decay")
    check_count("total_steps", total_steps, low=1, who="cosine_decay")
    return lambda count: min_lr + (lr - min_lr) * (1 + math.cos(math.pi * count / total_steps)) / 2


def linear_warmup(lr, warmup_steps, start_factor=1.0 / 3):
    """Scale ``lr`` from ``start_factor`` up to 1 linearly over ``warmup_steps`` (LinearLR), then hold.

    >>> from nablab import optim
    >>> s = optim.linear_warmup(0.3, warmup_steps=2, start_factor=0.5)
    >>> [round(s(t), 3) for t in range(4)]
    [0.15, 0.225, 0.3, 0.3]
    """
    check_lr(lr, who="linear_warmup")
    check_number("start_factor", start_factor, low=0.0, high=1.0, low_open=True, who="linear_warmup")
    check_count("warmup_steps", warmup_steps, low=1, who="linear_warmup")
    return lambda count: lr * (start_factor + (1 - start_factor) * min(count, warmup_steps) / warmup_steps)
