"""Adaptive Gradient Clipping (Brock et al. 2021, "High-Performance Large-Scale
Image Recognition Without Normalization", the NFNets paper).

Each output unit's gradient is clipped relative to the norm of that unit's weights,
rather than to one global threshold as in ``clip_grad_norm_``.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor


def unitwise_norm(x: Tensor) -> Tensor:
    """L2 norm per output unit, broadcastable back to ``x``.

    Biases and gains (``ndim <= 1``) are one unit: the norm of the whole tensor (0-d).
    Linear weights ``(out, in)`` -> ``(out, 1)``; conv weights ``(out, in, *k)`` ->
    ``(out, 1, ..., 1)``: the norm over every dim but the first.

    Example:
        >>> unitwise_norm(torch.tensor([[3.0, 4.0], [0.0, 1.0]]))
        tensor([[5.],
                [1.]])
    """
    if x.ndim <= 1:
        return torch.linalg.vector_norm(x)
    return torch.linalg.vector_norm(x, dim=tuple(range(1, x.ndim)), keepdim=True)


@torch.no_grad()
def adaptive_clip_grad_(parameters: Iterable[Tensor] | Tensor, clip: float, eps: float = 1e-3) -> None:
    """Clip gradients unit-wise, in place, so that ``|G_i| <= clip * max(|W_i|, eps)``.

    For every parameter ``W`` with a gradient ``G`` and each unit ``i`` (see
    :func:`unitwise_norm`)::

        max_norm = max(|W_i|, eps) * clip
        G_i <- G_i * max_norm / max(|G_i|, 1e-6)   if |G_i| > max_norm   else G_i

    Parameters without a gradient are skipped; ``clip <= 0`` is a no-op. The paper does
    not clip the final classifier layer: it is up to the caller to leave those
    parameters out of ``parameters``.

    Example:
        >>> params = [p for n, p in model.named_parameters() if not n.startswith("fc.")]
        >>> loss.backward(); adaptive_clip_grad_(params, clip=0.01); optimizer.step()
    """
    if clip <= 0:
        return
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    for p in parameters:
        if p.grad is None:
            continue
        g = p.grad
        # eps keeps zero-initialised weights (e.g. NFNet skip gains) trainable.
        max_norm = unitwise_norm(p.detach()).clamp(min=eps) * clip
        g_norm = unitwise_norm(g)
        clipped = g * (max_norm / g_norm.clamp(min=1e-6))
        g.copy_(torch.where(g_norm > max_norm, clipped, g))
