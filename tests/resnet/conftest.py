"""Fixtures for the ResNet / image-folder / example-package tests: generated image folders, and
the trial context and private cache of the objectives' tests (reused, not copied)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

_spec = importlib.util.spec_from_file_location(
    "_objectives_test_conftest", Path(__file__).resolve().parent.parent / "objectives" / "conftest.py"
)
_objectives_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_objectives_conftest)
_private_cache = _objectives_conftest._private_cache
make_ctx = _objectives_conftest.make_ctx

# One bright channel (RGB) or brightness level (grayscale) per class, plus noise: learnable in a few steps.
_RGB = [(220, 30, 30), (30, 220, 30), (30, 30, 220), (200, 200, 30)]


def write_images(folder: Path, label: int, count: int, size: tuple[int, int], mode: str, seed: int,
                 prefix: str = "") -> list[Path]:
    """Writes ``count`` PNGs of class ``label`` into ``folder``; returns their paths."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        w, h = size
        if mode == "L":
            base = np.full((h, w), 40 + 60 * label, np.float64)
        else:
            base = np.broadcast_to(np.array(_RGB[label], np.float64), (h, w, 3))
        pixels = np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)
        path = folder / f"{prefix}{i:03d}.png"
        Image.fromarray(pixels, mode).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def image_writer():
    """:func:`write_images`: ``(folder, label, count, (w, h), mode, seed, prefix="")``."""
    return write_images


@pytest.fixture
def image_folder(tmp_path: Path):
    """``image_folder(classes=("a", "b", "c"), per_class=12, size=(8, 8), mode="RGB", split=False)``
    writes a generated class-per-subfolder image folder (``train/``+``val/`` when ``split``)."""

    def make(classes=("a", "b", "c"), per_class=12, size=(8, 8), mode="RGB", split=False, name="images") -> Path:
        root = tmp_path / name
        for label, cls in enumerate(classes):
            if split:
                write_images(root / "train" / cls, label, per_class, size, mode, seed=label)
                write_images(root / "val" / cls, label, max(2, per_class // 4), size, mode, seed=100 + label)
            else:
                write_images(root / cls, label, per_class, size, mode, seed=label)
        return root

    return make
