"""Learning-rate schedules as multipliers of the optimizer step, for ``LambdaLR``.

Notation used by every formula below: ``s`` is the optimizer step (``LambdaLR``'s
``last_epoch``: the multiplier for the ``s``-th ``optimizer.step()``, counted from 0),
``T = total_steps``, ``W = warmup_steps`` and

    progress(s) = clamp((s - W) / max(1, T - W), 0, 1)

Linear warm-up applies to every schedule: for ``s < W`` the multiplier is
``(s + 1) / W * f(W)``, where ``f`` is the schedule (``f(W) = 1`` for all of them), so the
ramp reaches the full learning rate at step ``W - 1``. For ``s >= W`` it is ``f(s)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple


class _Spec(NamedTuple):
    total_steps: int
    warmup_steps: int
    step_size: int
    gamma: float
    min_lr_ratio: float


def _progress(s: int, c: _Spec) -> float:
    return min(1.0, max(0.0, (s - c.warmup_steps) / max(1, c.total_steps - c.warmup_steps)))


def _cosine_to(p: float, floor: float) -> float:
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * p))


def _constant(s: int, c: _Spec) -> float:
    """``f(s) = 1``."""
    return 1.0


def _step(s: int, c: _Spec) -> float:
    """``f(s) = gamma ** ((s - W) // step_size)``: decay by ``gamma`` every ``step_size`` steps."""
    return c.gamma ** (max(0, s - c.warmup_steps) // c.step_size)


def _exponential(s: int, c: _Spec) -> float:
    """``f(s) = gamma ** progress(s)``: smooth decay from 1 at ``W`` to ``gamma`` at ``T``."""
    return c.gamma ** _progress(s, c)


def _cosine(s: int, c: _Spec) -> float:
    """``f(s) = m + (1 - m) * 0.5 * (1 + cos(pi * progress(s)))`` with ``m = min_lr_ratio``."""
    return _cosine_to(_progress(s, c), c.min_lr_ratio)


def _onecycle(s: int, c: _Spec) -> float:
    """One-cycle: ramp up for ``R`` steps, then cosine-anneal to ``min_lr_ratio``.

    ``R = W`` if ``W > 0`` (the ramp is the common linear warm-up); otherwise
    ``R = max(1, round(0.3 * T))`` and for ``s < R`` the ramp is
    ``f(s) = 1/25 + (1 - 1/25) * s / R`` (from the initial ``lr / 25`` up to the peak).
    For ``s >= R``: ``f(s) = m + (1 - m) * 0.5 * (1 + cos(pi * q))`` with
    ``q = clamp((s - R) / max(1, T - R), 0, 1)`` and ``m = min_lr_ratio``; the peak
    ``f(R) = 1``.
    """
    ramp = c.warmup_steps if c.warmup_steps > 0 else max(1, round(0.3 * c.total_steps))
    if s < ramp:
        return 1 / 25 + (1 - 1 / 25) * s / ramp
    q = min(1.0, (s - ramp) / max(1, c.total_steps - ramp))
    return _cosine_to(q, c.min_lr_ratio)


SCHEDULES: dict[str, Callable[[int, _Spec], float]] = {
    "constant": _constant,
    "step": _step,
    "exponential": _exponential,
    "cosine": _cosine,
    "onecycle": _onecycle,
}


def lr_multiplier(
    schedule: str,
    total_steps: int,
    warmup_steps: int = 0,
    *,
    step_size: int = 1,
    gamma: float = 0.1,
    min_lr_ratio: float = 0.0,
) -> Callable[[int], float]:
    """Return ``step -> multiplier`` for the named schedule (see the module docstring).

    Schedules (``p = progress(s)``, ``m = min_lr_ratio``), for ``s >= warmup_steps``:

    - ``constant``: ``1``
    - ``step``: ``gamma ** ((s - W) // step_size)`` (``step_size`` in optimizer steps)
    - ``exponential``: ``gamma ** p`` (equals ``gamma`` at ``s = T``)
    - ``cosine``: ``m + (1 - m) * 0.5 * (1 + cos(pi * p))``
    - ``onecycle``: linear ramp then cosine anneal to ``m``; with ``W == 0`` the ramp is
      ``1/25 + (24/25) * s / R`` over ``R = max(1, round(0.3 * T))`` steps (see ``_onecycle``).

    For ``s < warmup_steps`` every schedule returns ``(s + 1) / W``.

    Args:
        schedule: A key of :data:`SCHEDULES`.
        total_steps: Number of optimizer steps in training (``T``).
        warmup_steps: Linear warm-up length (``W``).
        step_size: Decay period of ``step``.
        gamma: Decay factor of ``step`` and ``exponential``.
        min_lr_ratio: Final multiplier of ``cosine`` and ``onecycle``.

    Raises:
        ValueError: On an unknown schedule name (the message lists the known ones) or
            out-of-range arguments.

    Example:
        >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> sched = LambdaLR(opt, lr_multiplier("cosine", total_steps=1000, warmup_steps=50))
        >>> # call sched.step() after every opt.step()
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown LR schedule {schedule!r}; known: {', '.join(sorted(SCHEDULES))}")
    if total_steps < 1 or warmup_steps < 0 or step_size < 1:
        raise ValueError(
            f"need total_steps >= 1, warmup_steps >= 0, step_size >= 1; "
            f"got {total_steps}, {warmup_steps}, {step_size}"
        )
    fn = SCHEDULES[schedule]
    spec = _Spec(total_steps, warmup_steps, step_size, gamma, min_lr_ratio)

    def multiplier(s: int) -> float:
        if s < warmup_steps:
            return (s + 1) / warmup_steps * fn(warmup_steps, spec)
        return fn(s, spec)

    return multiplier
