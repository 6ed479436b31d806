"""CIFAR-style ResNets of the 6n+2 family (He et al. 2016, "Deep Residual Learning", section 4.2).

A 3x3 stem conv of ``width`` channels, then 3 stages of ``n`` basic blocks with ``width``,
``2*width`` and ``4*width`` channels (stride 2 at the first block of stages 2 and 3), global
average pooling, dropout and a linear ``classifier``. ``depth = 6n + 2``: resnet20 (n=3),
resnet32 (n=5), resnet44, resnet56, resnet110. Shortcuts where the shape changes:

* ``"A"``: the identity, subsampled and zero-padded with the missing channels (no parameters;
  the paper's CIFAR choice, 0.27M parameters for resnet20 at width 16);
* ``"B"``: a 1x1 strided conv + BatchNorm projection.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from objectives._config import SHORTCUTS, resnet_blocks


class _PadShortcut(nn.Module):
    """Option A: subsample by ``stride`` and zero-pad the channels from ``c_in`` to ``c_out``."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.stride, self.extra = stride, c_out - c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        # F.pad pads the last dims first: (W, W, H, H, C_front, C_back).
        return F.pad(x, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))


def _projection(c_in: int, c_out: int, stride: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))


class BasicBlock(nn.Module):
    """conv3x3 → BN → ReLU → conv3x3 → BN, plus the shortcut, then ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int, shortcut: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        if stride == 1 and c_in == c_out:
            self.shortcut: nn.Module = nn.Identity()
        elif shortcut == "A":
            self.shortcut = _PadShortcut(c_in, c_out, stride)
        else:
            self.shortcut = _projection(c_in, c_out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x), inplace=True)


class ResNet(nn.Module):
    """A 6n+2-layer CIFAR ResNet on images ``(C, H, W)``.

    Example:
        >>> net = ResNet((3, 32, 32), num_classes=10, depth=20, width=16)
        >>> net(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 10])
        >>> round(sum(p.numel() for p in net.parameters()) / 1e6, 2)
        0.27
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        depth: int = 20,
        width: int = 16,
        shortcut: str = "A",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError(f"input_shape: a ResNet needs images (C, H, W), got {tuple(input_shape)}")
        if shortcut not in SHORTCUTS:
            raise ValueError(f"shortcut: expected one of {', '.join(SHORTCUTS)}, got {shortcut!r}")
        n = resnet_blocks(depth)
        # Saved with checkpoints; objectives._models.build_model rebuilds the network from it.
        self.hparams = {
            "arch": "resnet",
            "input_shape": list(input_shape),
            "num_classes": int(num_classes),
            "depth": int(depth),
            "width": int(width),
            "shortcut": shortcut,
            "dropout": float(dropout),
        }
        self.stem = nn.Sequential(
            nn.Conv2d(input_shape[0], width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)
        )
        blocks: list[nn.Module] = []
        c_in = width
        for stage in range(3):
            c_out = width * 2**stage
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(c_in, c_out, stride, shortcut))
                c_in = c_out
        self.stages = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(c_in, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.classifier(self.dropout(x))

    @classmethod
    def from_hparams(cls, hparams: dict[str, Any]) -> ResNet:
        """Rebuilds the network from its ``hparams`` (as stored in checkpoints)."""
        return cls(
            tuple(hparams["input_shape"]),
            hparams["num_classes"],
            hparams.get("depth", 20),
            hparams.get("width", 16),
            hparams.get("shortcut", "A"),
            hparams.get("dropout", 0.0),
        )

    @classmethod
    def from_config(cls, input_shape: tuple[int, ...], num_classes: int, cfg: Any) -> ResNet:
        """The network a ``TrainConfig`` with ``arch: resnet`` describes."""
        return cls(input_shape, num_classes, cfg.depth, cfg.width, cfg.shortcut, cfg.dropout)
