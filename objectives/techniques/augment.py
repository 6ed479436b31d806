"""Batched per-sample augmentation on the tensor's own device.

Inputs are images ``(N, C, H, W)`` or sequences ``(N, C, L)``. Each sample draws its
own randomness (from ``generator`` when given, which may live on the CPU while ``x`` is
on an accelerator), with no Python loop over samples. Every function is the identity
when its knob is 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _gen_device(generator: torch.Generator | None, x: Tensor) -> torch.device:
    return generator.device if generator is not None else x.device


def random_hflip(x: Tensor, p: float, generator: torch.Generator | None = None) -> Tensor:
    """Flip each sample along its last dim (width, or length) with probability ``p``.

    Example:
        >>> x = random_hflip(images, p=0.5)
    """
    if not 0 <= p <= 1:
        raise ValueError(f"p must be in [0, 1], got {p}")
    if p == 0:
        return x
    flip = torch.rand(len(x), generator=generator, device=_gen_device(generator, x)).to(x.device) < p
    return torch.where(flip.view(-1, *[1] * (x.ndim - 1)), x.flip(-1), x)


def random_crop(x: Tensor, pad: int, generator: torch.Generator | None = None) -> Tensor:
    """Zero-pad every spatial dim by ``pad``, then crop back to the original size at an
    independent random offset per sample (each offset uniform in ``[0, 2 * pad]``).

    Example:
        >>> x = random_crop(images, pad=4)  # the CIFAR "pad 4 + random 32x32 crop"
    """
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    if pad == 0:
        return x
    n, c, *sizes = x.shape
    nd = len(sizes)
    padded = F.pad(x, (pad, pad) * nd)
    offsets = torch.randint(
        2 * pad + 1, (n, nd), generator=generator, device=_gen_device(generator, x)
    ).to(x.device)
    # Advanced indexing with broadcast index tensors: out[i, ch, *pos] = padded[i, ch, *(offset_i + pos)].
    index = [
        torch.arange(n, device=x.device).view(n, 1, *[1] * nd),
        torch.arange(c, device=x.device).view(1, c, *[1] * nd),
    ]
    for d, size in enumerate(sizes):
        shape = [n, 1] + [1] * nd
        shape[2 + d] = size
        index.append((offsets[:, d, None] + torch.arange(size, device=x.device)).view(shape))
    return padded[tuple(index)]


def gaussian_noise(x: Tensor, std: float, generator: torch.Generator | None = None) -> Tensor:
    """Add i.i.d. ``N(0, std^2)`` noise to every element.

    Example:
        >>> x = gaussian_noise(signals, std=0.05)
    """
    if std < 0:
        raise ValueError(f"std must be >= 0, got {std}")
    if std == 0:
        return x
    noise = torch.randn(x.shape, generator=generator, device=_gen_device(generator, x), dtype=x.dtype)
    return x + std * noise.to(x.device)
