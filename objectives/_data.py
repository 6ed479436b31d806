"""Datasets as tensors on the training device, batched by index.

Shapes per objective:

============  =====================  ==========================
dataset       image_classifier       sequence_classifier
============  =====================  ==========================
digits        (1, 8, 8)              (1, 64) (rows concatenated)
mnist1d       (1, 1, 40): a 1-pixel  (1, 40)
              high image, so 2-D
              convs slide along the
              signal and ``hflip``/
              ``crop_pad`` act on it
npz:PATH      x (N,H,W) or (N,C,H,W) x (N,L) or (N,C,L)
imagefolder:  (C, S, S): see         refused
PATH          ``objectives._imagefolder``
============  =====================  ==========================

Validation: ``mnist1d`` uses the generator's own held-out split (1000 of 5000 samples),
``npz`` files their ``x_val``/``y_val`` when present; otherwise ``val_fraction`` of the
training arrays is held out by a fixed (seed 0) stratification-free permutation, the same
in every trial so trials are compared on the same validation set.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

_MEMO: dict[tuple, ArrayData] = {}
_MEMO_LOCK = threading.Lock()


@dataclass
class ArrayData:
    """Train/validation arrays of one dataset, already shaped for one objective kind."""

    x: np.ndarray
    y: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    num_classes: int
    name: str = ""

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/hpo`` or ``~/.cache/hpo``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "hpo"


def load_dataset(dataset: str, kind: str, val_fraction: float = 0.2, *, image_size: int = 0) -> ArrayData:
    """Loads ``dataset`` shaped for ``kind`` (``"image"`` or ``"sequence"``); memoised per process.

    ``image_size`` is read by ``imagefolder:PATH`` only (0: the first image's size)."""
    if kind not in ("image", "sequence"):
        raise ValueError(f"kind: expected 'image' or 'sequence', got {kind!r}")
    if dataset.startswith("imagefolder:"):  # memoised by its own folder fingerprint
        from objectives._imagefolder import load_imagefolder

        return load_imagefolder(dataset[len("imagefolder:"):], kind, val_fraction, image_size)
    key = (dataset, kind, float(val_fraction))
    if dataset.startswith("npz:"):
        path = Path(dataset[4:]).expanduser()
        try:
            key += (path.stat().st_mtime_ns,)
        except OSError:
            pass
    with _MEMO_LOCK:
        if key in _MEMO:
            return _MEMO[key]
    if dataset == "digits":
        data = _digits(kind, val_fraction)
    elif dataset == "mnist1d":
        data = _mnist1d(kind)
    elif dataset.startswith("npz:"):
        data = _npz(dataset[4:], kind, val_fraction)
    else:
        raise ValueError(f"dataset: expected one of digits, mnist1d, npz:PATH or imagefolder:PATH, got {dataset!r}")
    with _MEMO_LOCK:
        _MEMO[key] = data
    return data


def _split(x: np.ndarray, y: np.ndarray, val_fraction: float, name: str) -> tuple[np.ndarray, ...]:
    n_val = int(round(len(x) * val_fraction))
    if n_val < 1 or n_val >= len(x):
        raise ValueError(
            f"val_fraction: {val_fraction} of {len(x)} samples of {name} leaves "
            f"{n_val} for validation and {len(x) - n_val} for training; both must be >= 1"
        )
    perm = np.random.default_rng(0).permutation(len(x))
    val, train = perm[:n_val], perm[n_val:]
    return x[train], y[train], x[val], y[val]


def _finish(x, y, xv, yv, name: str, num_classes: int | None = None) -> ArrayData:
    x, xv = np.ascontiguousarray(x, np.float32), np.ascontiguousarray(xv, np.float32)
    y, yv = np.ascontiguousarray(y, np.int64), np.ascontiguousarray(yv, np.int64)
    if num_classes is None:
        num_classes = int(max(y.max(initial=0), yv.max(initial=0))) + 1
    return ArrayData(x, y, xv, yv, num_classes, name)


def _digits(kind: str, val_fraction: float) -> ArrayData:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = d.images.astype(np.float32) / 16.0  # (1797, 8, 8) in [0, 1]
    x = (x - 0.3) / 0.4  # roughly zero-mean, unit-variance
    x = x[:, None] if kind == "image" else x.reshape(len(x), 1, 64)
    return _finish(*_split(x, d.target, val_fraction, "digits"), name="digits", num_classes=10)


def _mnist1d_args() -> dict:
    from mnist1d.data import get_dataset_args

    args = get_dataset_args(as_dict=True)
    args.pop("url", None)
    return args


def mnist1d_cache_path() -> Path:
    """Where the generated MNIST-1D arrays are cached (keyed by the generator's arguments)."""
    args = _mnist1d_args()
    digest = hashlib.sha256(json.dumps(args, sort_keys=True).encode()).hexdigest()[:12]
    return cache_dir() / f"mnist1d-{digest}.npz"


def generate_mnist1d(**overrides: object) -> dict[str, np.ndarray]:
    """Runs the mnist1d package's own generator (no download); returns x, y, x_test, y_test.

    ``overrides`` replace the generator's arguments (``num_samples``, ``train_split``,
    ``max_translation``, ``scale_coeff``, ``corr_noise_scale``, ``seed``, ...): a shifted variant."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    for key, value in overrides.items():
        setattr(args, key, value)
    state = np.random.get_state()  # the generator reseeds numpy's global RNG
    try:
        d = make_dataset(args)
    finally:
        np.random.set_state(state)
    return {k: np.asarray(d[k]) for k in ("x", "y", "x_test", "y_test")}


def load_mnist1d() -> dict[str, np.ndarray]:
    """MNIST-1D arrays, generated once and cached under :func:`cache_dir` (atomic write)."""
    path = mnist1d_cache_path()
    if path.exists():
        try:
            with np.load(path) as f:
                return {k: f[k] for k in ("x", "y", "x_test", "y_test")}
        except Exception:  # a corrupt cache file: regenerate
            pass
    arrays = generate_mnist1d()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return arrays


def _mnist1d(kind: str) -> ArrayData:
    d = load_mnist1d()
    shape = (1, 1, -1) if kind == "image" else (1, -1)
    x = d["x"].reshape(len(d["x"]), *shape)
    xv = d["x_test"].reshape(len(d["x_test"]), *shape)
    return _finish(x, d["y"], xv, d["y_test"], name="mnist1d", num_classes=10)


def _npz(path_str: str, kind: str, val_fraction: float) -> ArrayData:
    path = Path(path_str).expanduser()
    if not path.is_file():
        raise ValueError(f"dataset: npz file {path} does not exist")
    try:
        f = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise ValueError(f"{path}: cannot be read as an .npz file ({exc})") from None
    with f:
        names = set(f.files)
        for required in ("x", "y"):
            if required not in names:
                raise ValueError(f"{path}: array '{required}' is missing; found arrays: {sorted(names)}")
        if ("x_val" in names) != ("y_val" in names):
            raise ValueError(f"{path}: arrays 'x_val' and 'y_val' must be given together; found {sorted(names)}")
        arrays = {k: f[k] for k in ("x", "y", "x_val", "y_val") if k in names}
    for xk, yk in (("x", "y"), ("x_val", "y_val")):
        if xk in arrays:
            arrays[xk] = _check_x(path, xk, arrays[xk], kind)
            arrays[yk] = _check_y(path, yk, arrays[yk], len(arrays[xk]), xk)
    if "x_val" in arrays:
        if arrays["x_val"].shape[1:] != arrays["x"].shape[1:]:
            raise ValueError(
                f"{path}: array 'x_val' has sample shape {arrays['x_val'].shape[1:]}, "
                f"expected that of 'x', {arrays['x'].shape[1:]}"
            )
        parts = arrays["x"], arrays["y"], arrays["x_val"], arrays["y_val"]
    else:
        parts = _split(arrays["x"], arrays["y"], val_fraction, str(path))
    return _finish(*parts, name=str(path))


def _check_x(path: Path, name: str, x: np.ndarray, kind: str) -> np.ndarray:
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)) or x.dtype == np.bool_:
        raise ValueError(f"{path}: array '{name}' must be numeric (float or int), got dtype {x.dtype}")
    ok = (3, 4) if kind == "image" else (2, 3)
    what = "(N, H, W) or (N, C, H, W)" if kind == "image" else "(N, L) or (N, C, L)"
    if x.ndim not in ok:
        raise ValueError(
            f"{path}: array '{name}' must have shape {what} for the {kind} classifier, got shape {x.shape}"
        )
    if len(x) == 0:
        raise ValueError(f"{path}: array '{name}' is empty")
    if x.ndim == ok[0]:
        x = x[:, None]
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        raise ValueError(f"{path}: array '{name}' contains NaN or infinite values")
    return x


def _check_y(path: Path, name: str, y: np.ndarray, n: int, xname: str) -> np.ndarray:
    if not np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_:
        raise ValueError(f"{path}: array '{name}' must hold integer class labels, got dtype {y.dtype}")
    if y.ndim != 1:
        raise ValueError(f"{path}: array '{name}' must have shape (N,), got shape {y.shape}")
    if len(y) != n:
        raise ValueError(f"{path}: array '{name}' has {len(y)} labels but '{xname}' has {n} samples")
    if y.min() < 0:
        raise ValueError(f"{path}: array '{name}' has negative labels (min {y.min()}); labels must be 0..K-1")
    return y


class DeviceBatches:
    """An iterable of ``(x, y)`` batches sliced by index from tensors on one device.

    Every epoch draws a new permutation from a generator seeded by ``(seed, epoch)``: the same on
    every DDP rank, each rank taking its own strided shard. Lightning calls :meth:`place` (through
    the ``fit`` helper) to move the tensors to the training device and set the rank before the
    first batch. No worker processes, no per-sample Python.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        *,
        shuffle: bool,
        drop_last: bool = False,
        seed: int = 0,
    ) -> None:
        self.x, self.y = x, y
        self.batch_size = int(batch_size)
        self.shuffle, self.drop_last, self.seed = shuffle, drop_last, seed
        self.rank, self.world_size = 0, 1
        self.epoch = 0

    def place(self, device: torch.device, rank: int = 0, world_size: int = 1) -> DeviceBatches:
        self.x, self.y = self.x.to(device), self.y.to(device)
        self.rank, self.world_size = rank, world_size
        return self

    def _shard_size(self) -> int:
        n = len(self.x)
        if self.world_size > 1:  # equal shards on every rank (DDP needs the same number of steps)
            n = n // self.world_size if self.shuffle else math.ceil(n / self.world_size)
        return n

    def __len__(self) -> int:
        n = self._shard_size()
        if self.drop_last and n >= self.batch_size:
            return n // self.batch_size
        return max(1, math.ceil(n / self.batch_size))

    def __iter__(self):
        n_total = len(self.x)
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(n_total, generator=g).to(self.x.device)
            self.epoch += 1
        else:
            order = None
        if self.world_size > 1:
            idx = torch.arange(self.rank, n_total, self.world_size, device=self.x.device)
            idx = idx[: self._shard_size()]
            order = idx if order is None else order[idx]
        steps = len(self)
        bs = self.batch_size
        for i in range(steps):
            if order is None:
                yield self.x[i * bs : (i + 1) * bs], self.y[i * bs : (i + 1) * bs]
            else:
                sel = order[i * bs : (i + 1) * bs]
                yield self.x[sel], self.y[sel]


@dataclass
class DeviceData:
    """Train and validation batches of one dataset, for ``objectives.fit``."""

    train: DeviceBatches
    val: DeviceBatches
    num_classes: int
    input_shape: tuple[int, ...]


def make_device_data(arrays: ArrayData, batch_size: int, seed: int, val_batch_size: int = 1024) -> DeviceData:
    x, y = torch.from_numpy(arrays.x), torch.from_numpy(arrays.y)
    xv, yv = torch.from_numpy(arrays.x_val), torch.from_numpy(arrays.y_val)
    # Drop a ragged last training batch (BatchNorm dislikes a batch of one) unless it is all there is.
    train = DeviceBatches(x, y, batch_size, shuffle=True, drop_last=True, seed=seed)
    val = DeviceBatches(xv, yv, max(batch_size, val_batch_size), shuffle=False)
    return DeviceData(train, val, arrays.num_classes, arrays.input_shape)
