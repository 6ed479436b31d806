"""Small conv nets: ``depth`` conv blocks of ``width`` channels (doubling every second block),
max-pooling while the signal is large enough, then adaptive average pooling, dropout and a
final ``classifier`` linear layer (the layer AGC leaves alone)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class ConvNet(nn.Module):
    """Conv → BatchNorm → ReLU blocks for images ``(C, H, W)`` (``ndim=2``) or sequences ``(C, L)``.

    Example:
        >>> net = ConvNet((1, 8, 8), num_classes=10, width=32, depth=2)
        >>> net(torch.zeros(4, 1, 8, 8)).shape
        torch.Size([4, 10])
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        width: int = 32,
        depth: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.hparams = {
            "input_shape": list(input_shape),
            "num_classes": int(num_classes),
            "width": int(width),
            "depth": int(depth),
            "dropout": float(dropout),
        }
        channels, *sizes = input_shape
        ndim = len(sizes)
        if ndim not in (1, 2):
            raise ValueError(f"input_shape: expected (C, L) or (C, H, W), got {tuple(input_shape)}")
        conv = nn.Conv1d if ndim == 1 else nn.Conv2d
        norm = nn.BatchNorm1d if ndim == 1 else nn.BatchNorm2d
        pool = nn.MaxPool1d if ndim == 1 else nn.MaxPool2d
        layers: list[nn.Module] = []
        c_in, sizes = channels, list(sizes)
        for i in range(depth):
            c_out = width * 2 ** (i // 2)
            kernel = [3 if s > 1 else 1 for s in sizes]
            padding = [k // 2 for k in kernel]
            layers += [
                conv(c_in, c_out, kernel_size=tuple(kernel), padding=tuple(padding), bias=False),
                norm(c_out),
                nn.ReLU(inplace=True),
            ]
            shrink = [2 if s >= 4 else 1 for s in sizes]
            if any(k > 1 for k in shrink):
                layers.append(pool(kernel_size=tuple(shrink), stride=tuple(shrink)))
                sizes = [s // k for s, k in zip(sizes, shrink)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        head = [min(s, 4 if ndim == 1 else 2) for s in sizes]
        self.pool = (nn.AdaptiveAvgPool1d if ndim == 1 else nn.AdaptiveAvgPool2d)(tuple(head))
        self.dropout = nn.Dropout(dropout)
        n_features = c_in
        for h in head:
            n_features *= h
        self.classifier = nn.Linear(n_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x))
        return self.classifier(self.dropout(torch.flatten(x, 1)))


def build_network(input_shape: tuple[int, ...], num_classes: int, cfg: Any) -> nn.Module:
    """The network ``cfg.arch`` names (a ``TrainConfig``), for data of ``input_shape``."""
    if cfg.arch == "resnet":
        from objectives._resnet import ResNet

        return ResNet.from_config(input_shape, num_classes, cfg)
    return ConvNet(input_shape, num_classes, cfg.width, cfg.depth, cfg.dropout)


def build_model(hparams: dict[str, Any]) -> nn.Module:
    """Rebuilds a network from its ``hparams`` (as stored in checkpoints)."""
    if hparams.get("arch") == "resnet":
        from objectives._resnet import ResNet

        return ResNet.from_hparams(hparams)
    return ConvNet(
        tuple(hparams["input_shape"]),
        hparams["num_classes"],
        hparams.get("width", 32),
        hparams.get("depth", 2),
        hparams.get("dropout", 0.0),
    )
