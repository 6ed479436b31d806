"""Batch-level mixup (Zhang et al. 2018) and CutMix (Yun et al. 2019) with soft targets.

One mixing coefficient and one permutation per batch; no per-sample Python loops.
Random numbers come from ``generator`` when given (it may live on the CPU while ``x``
is on an accelerator), else from torch's global RNG.
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F
from torch import Tensor


def one_hot(y: Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Class indices ``(N,)`` -> probabilities ``(N, num_classes)``.

    Example:
        >>> one_hot(torch.tensor([2, 0]), 3)
        tensor([[0., 0., 1.],
                [1., 0., 0.]])
    """
    return F.one_hot(y, num_classes).to(dtype)


def _sample_beta(alpha: float, generator: torch.Generator | None) -> float:
    # torch's Beta/Gamma samplers take no generator: seed a stdlib sampler from it instead.
    device = generator.device if generator is not None else "cpu"
    seed = int(torch.randint(2**62, (1,), generator=generator, device=device))
    return random.Random(seed).betavariate(alpha, alpha)


def _randperm(n: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
    gen_device = generator.device if generator is not None else device
    return torch.randperm(n, generator=generator, device=gen_device).to(device)


def _randint(high: int, generator: torch.Generator | None) -> int:
    device = generator.device if generator is not None else "cpu"
    return int(torch.randint(high, (1,), generator=generator, device=device))


def _check(x: Tensor, y_soft: Tensor) -> None:
    if not y_soft.is_floating_point() or y_soft.ndim != 2 or len(y_soft) != len(x):
        raise ValueError("y_soft must be float probabilities of shape (N, num_classes); see one_hot()")


def mixup(
    x: Tensor, y_soft: Tensor, alpha: float, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Mix every sample with a random partner: ``lam ~ Beta(alpha, alpha)``, ``perm`` random.

    ``x' = lam * x + (1 - lam) * x[perm]`` and ``y' = lam * y + (1 - lam) * y[perm]``.
    ``alpha <= 0`` returns the inputs unchanged.

    Example:
        >>> x, y = mixup(images, one_hot(labels, 10), alpha=0.2)
        >>> loss = soft_cross_entropy(model(x), y)
    """
    if alpha <= 0:
        return x, y_soft
    _check(x, y_soft)
    lam = _sample_beta(alpha, generator)
    perm = _randperm(len(x), generator, x.device)
    return lam * x + (1 - lam) * x[perm], lam * y_soft + (1 - lam) * y_soft[perm]


def cutmix(
    x: Tensor, y_soft: Tensor, alpha: float, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Paste a random box from a permuted partner into every sample.

    Works on ``(N, C, H, W)`` images (a box) and ``(N, C, L)`` sequences (a segment); the
    region is shared by the whole batch. With ``lam ~ Beta(alpha, alpha)`` each spatial
    side of the region is ``int(size * (1 - lam) ** (1 / ndim_spatial))`` long, centred at
    a uniform random position and clipped to the bounds, so its area fraction ``a`` is
    about ``1 - lam``. Targets use the actual fraction: ``y' = (1 - a) * y + a * y[perm]``.
    ``alpha <= 0`` returns the inputs unchanged.

    Example:
        >>> x, y = cutmix(images, one_hot(labels, 10), alpha=1.0)
    """
    if alpha <= 0:
        return x, y_soft
    _check(x, y_soft)
    if x.ndim < 3:
        raise ValueError(f"cutmix needs (N, C, *spatial) inputs, got shape {tuple(x.shape)}")
    lam = _sample_beta(alpha, generator)
    perm = _randperm(len(x), generator, x.device)
    sizes = x.shape[2:]
    ratio = (1 - lam) ** (1 / len(sizes))
    region, area = [slice(None), slice(None)], 1.0
    for size in sizes:
        cut, center = int(size * ratio), _randint(size, generator)
        lo = min(max(center - cut // 2, 0), size)
        hi = min(max(center - cut // 2 + cut, 0), size)
        region.append(slice(lo, hi))
        area *= (hi - lo) / size
    out = x.clone()
    out[tuple(region)] = x[perm][tuple(region)]
    return out, (1 - area) * y_soft + area * y_soft[perm]
