"""Magnitude weight pruning as pure functions: the sparsity schedules, global magnitude masks,
per-layer channel masks and the sparsity of a set of tensors.

"Weight pruning" zeroes weights of the network; it is unrelated to Optuna's pruning of trials.

The gradual schedule is the cubic one of Zhu & Gupta (2017), "To prune, or not to prune:
exploring the efficacy of pruning for model compression"::

    s_t = s_f + (s_i - s_f) * (1 - (t - t_0) / (n * dt)) ** 3     for t_0 <= t <= t_0 + n * dt

with the initial sparsity ``s_i = 0``, ``t`` counted in epochs, ``t_0 = start`` and
``t_0 + n * dt = end``: many weights go early, while the network still has many to spare, and
few at the end.

Example:
    >>> cubic_sparsity(2, final=0.8, start=0, end=4)
    0.7
    >>> masks = global_magnitude_masks([torch.tensor([3.0, -1.0]), torch.tensor([0.5, 2.0])], 0.5)
    >>> [m.tolist() for m in masks]
    [[1.0, 0.0], [0.0, 1.0]]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor


def cubic_sparsity(epoch: int, final: float, start: int, end: int) -> float:
    """The sparsity of the cubic schedule at the start of ``epoch``: 0 up to ``start``,
    ``final`` from ``end`` on (``end > start``)."""
    if epoch <= start:
        return 0.0
    if epoch >= end:
        return float(final)
    return float(final) * (1.0 - (1.0 - (epoch - start) / (end - start)) ** 3)


def oneshot_sparsity(epoch: int, final: float, start: int, end: int) -> float:
    """``final`` from the start of epoch ``start`` on, 0 before (``end`` is not read)."""
    return float(final) if epoch >= start else 0.0


SCHEDULES: dict[str, Callable[[int, float, int, int], float]] = {
    "oneshot": oneshot_sparsity,
    "gradual": cubic_sparsity,
}


def _count(amount: float, total: int) -> int:
    return min(total, max(0, round(amount * total)))


@torch.no_grad()
def global_magnitude_masks(weights: Sequence[Tensor], amount: float) -> list[Tensor]:
    """Masks (1 keep, 0 prune) that remove the ``round(amount * n)`` weights of smallest ``|w|``
    over all of ``weights`` together (``n`` their total size): global unstructured L1 pruning.

    Weights already zero rank first, so a rising ``amount`` keeps what was pruned pruned.
    """
    scores = torch.cat([w.detach().abs().flatten().float() for w in weights])
    keep = torch.ones_like(scores)
    k = _count(amount, scores.numel())
    if k:
        keep[torch.topk(scores, k, largest=False).indices] = 0.0
    masks, offset = [], 0
    for w in weights:
        masks.append(keep[offset:offset + w.numel()].view_as(w).to(w.dtype))
        offset += w.numel()
    return masks


@torch.no_grad()
def channel_norms(weight: Tensor, p: float = 2.0) -> Tensor:
    """The L``p`` norm of each output channel (Conv) or neuron (Linear): over every dim but the first."""
    return torch.linalg.vector_norm(weight.detach().float().flatten(1), ord=p, dim=1)


@torch.no_grad()
def channel_masks(weights: Sequence[Tensor], amount: float, p: float = 2.0) -> list[Tensor]:
    """Masks shaped like ``weights`` that remove, in each layer, the ``round(amount * out)`` output
    channels of smallest L``p`` norm (at least one channel stays). A per-layer share rather than a
    global ranking: norms of layers with other fan-ins are not comparable, and a global ranking
    could empty a layer."""
    masks = []
    for w in weights:
        norms = channel_norms(w, p)
        keep = torch.ones_like(norms)
        k = min(_count(amount, len(norms)), len(norms) - 1)
        if k:
            keep[torch.topk(norms, k, largest=False).indices] = 0.0
        masks.append(keep.view(-1, *([1] * (w.ndim - 1))).expand_as(w).to(w.dtype).clone())
    return masks


@torch.no_grad()
def sparsity(tensors: Sequence[Tensor]) -> float:
    """The share of zeros among all elements of ``tensors`` (0 for none)."""
    total = sum(t.numel() for t in tensors)
    if not total:
        return 0.0
    zeros = sum(int((t == 0).sum()) for t in tensors)
    return zeros / total
