"""``imagefolder:PATH``: a folder of image files, one subfolder per class.

Layouts::

    PATH/cat/001.png  PATH/dog/002.jpg ...           val_fraction of it held out (seed 0)
    PATH/train/cat/...  PATH/val/cat/...             the given split

Labels are the class folders' names in sorted order (``train/``'s when split). Images are decoded
with Pillow, converted to RGB (or to grayscale when every image is grayscale), resized to
``image_size`` squared (0: the first image's size) and stored as ``uint8`` in an ``.npz`` under
the cache dir, keyed by the folder's file list, sizes and modification times and by
``image_size``: the decode runs once, until a file changes. Training sees ``float32`` pixels
standardised per channel with the training images' mean and standard deviation.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import numpy as np

from objectives._data import ArrayData, _finish, _split, cache_dir

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
_FORMAT = "imagefolder-v1"  # bump when the decoded layout changes: old cache entries are then ignored
_GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")

_MEMO: dict[str, ArrayData] = {}
_MEMO_LOCK = threading.Lock()


def _images(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _scan(folder: Path, classes: list[str] | None = None) -> tuple[list[str], list[Path], list[int]]:
    """Class names, image files and labels of one split folder (labels from ``classes`` if given)."""
    dirs = _class_dirs(folder)
    if not dirs:
        raise ValueError(f"{folder}: no class folders (expected one subfolder of images per class)")
    names = [d.name for d in dirs]
    if classes is None:
        classes = names
    files: list[Path] = []
    labels: list[int] = []
    for d in dirs:
        if d.name not in classes:
            raise ValueError(f"{d}: class {d.name!r} is not among the training classes {classes}")
        images = _images(d)
        if not images:
            raise ValueError(f"{d}: class folder has no images ({', '.join(IMAGE_EXTENSIONS)})")
        files += images
        labels += [classes.index(d.name)] * len(images)
    return classes, files, labels


def scan(root: Path) -> dict[str, tuple[list[Path], list[int]]]:
    """``{"train": (files, labels)[, "val": ...], "classes": ...}`` of an image folder."""
    if not root.is_dir():
        raise ValueError(f"dataset: image folder {root} does not exist")
    train, val = root / "train", root / "val"
    if train.is_dir() and val.is_dir():
        classes, files, labels = _scan(train)
        _, val_files, val_labels = _scan(val, classes)
        return {"classes": classes, "train": (files, labels), "val": (val_files, val_labels)}
    classes, files, labels = _scan(root)
    return {"classes": classes, "train": (files, labels)}


def fingerprint(root: Path, listing: dict, image_size: int) -> str:
    """A digest of the layout, every file's path, size and mtime, and the decode settings."""
    h = hashlib.sha256(f"{_FORMAT}\0{root.resolve()}\0{image_size}\0{listing['classes']}".encode())
    for split in ("train", "val"):
        for path, label in zip(*listing.get(split, ((), ()))):
            st = path.stat()
            h.update(f"{split}\0{path.relative_to(root)}\0{label}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def _open(path: Path):
    from PIL import Image

    try:
        img = Image.open(path)
        img.load()
    except Exception as exc:  # PIL raises several types (UnidentifiedImageError, OSError, SyntaxError, ...)
        raise ValueError(f"{path}: cannot be decoded as an image ({type(exc).__name__}: {exc})") from None
    return img


def decode(files: list[Path], image_size: int, mode: str | None = None,
           size: tuple[int, int] | None = None) -> tuple[np.ndarray, str, tuple[int, int]]:
    """Decodes ``files`` into a ``uint8`` array ``(N, C, H, W)``; returns it with the mode and
    ``(width, height)`` used (``mode``: ``RGB`` unless every image is grayscale)."""
    from PIL import Image

    if mode is None:  # headers only (lazy open): cheap next to the decode
        mode = "L"
        for path in files:
            with _open_header(path) as img:
                if img.mode not in _GRAY_MODES:
                    mode = "RGB"
                    break
    out: np.ndarray | None = None
    for i, path in enumerate(files):
        img = _open(path)
        if img.mode != mode:
            img = img.convert(mode)
        if size is None:
            size = (image_size, image_size) if image_size > 0 else img.size
        if img.size != size:
            img = img.resize(size, Image.Resampling.BILINEAR)
        pixels = np.asarray(img, dtype=np.uint8)
        if out is None:
            out = np.empty((len(files), 1 if mode == "L" else 3, size[1], size[0]), np.uint8)
        out[i] = pixels[None] if mode == "L" else pixels.transpose(2, 0, 1)
    assert out is not None and size is not None
    return out, mode, size


def _open_header(path: Path):
    from PIL import Image

    try:
        return Image.open(path)
    except Exception as exc:
        raise ValueError(f"{path}: cannot be decoded as an image ({type(exc).__name__}: {exc})") from None


def _decode_all(listing: dict, image_size: int) -> dict[str, np.ndarray]:
    files, labels = listing["train"]
    val_files = listing["val"][0] if "val" in listing else []
    x, mode, size = decode(files + val_files, image_size)
    arrays = {"x": x[: len(files)], "y": np.asarray(labels, np.int64),
              "classes": np.asarray(listing["classes"], dtype=str)}
    if val_files:
        arrays["x_val"], arrays["y_val"] = x[len(files):], np.asarray(listing["val"][1], np.int64)
    return arrays


def cached_arrays(root: Path, image_size: int = 0) -> tuple[dict[str, np.ndarray], Path]:
    """The decoded image folder (``uint8`` ``x``/``x_val``, labels, ``classes``) and its cache file.

    Decodes once per change of the folder: other processes wait for the first one's file.
    """
    from hpo._lock import file_lock

    listing = scan(root)
    digest = fingerprint(root, listing, image_size)
    path = cache_dir() / "imagefolder" / f"{digest}.npz"
    with file_lock(path.with_suffix(".lock")):
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as f:
                    return {k: f[k] for k in f.files}, path
            except Exception:  # a corrupt cache file: decode again
                pass
        arrays = _decode_all(listing, image_size)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    return arrays, path


def _standardise(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return (x.astype(np.float32) / 255.0 - mean) / std


def load_imagefolder(path_str: str, kind: str, val_fraction: float, image_size: int = 0) -> ArrayData:
    """``imagefolder:PATH`` as float arrays for the image objectives; memoised per process."""
    if kind != "image":
        raise ValueError("dataset: imagefolder:PATH holds images; use image_classifier or resnet_classifier")
    root = Path(path_str).expanduser()
    arrays, cache = cached_arrays(root, image_size)
    key = f"{cache}\0{val_fraction}"
    with _MEMO_LOCK:
        if key in _MEMO:
            return _MEMO[key]
    x, y = arrays["x"], arrays["y"]
    if "x_val" in arrays:
        parts = x, y, arrays["x_val"], arrays["y_val"]
    else:
        parts = _split(x, y, val_fraction, str(root))
    train = parts[0].astype(np.float32) / 255.0
    mean = train.mean(axis=(0, 2, 3), keepdims=True)[0]
    std = np.maximum(train.std(axis=(0, 2, 3), keepdims=True)[0], 1e-3)
    data = _finish(_standardise(parts[0], mean, std), parts[1], _standardise(parts[2], mean, std), parts[3],
                   name=str(root), num_classes=len(arrays["classes"]))
    with _MEMO_LOCK:
        _MEMO[key] = data
    return data
