"""Datasets: npz validation errors, shapes per objective kind, the mnist1d cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from objectives import _data
from objectives._data import DeviceBatches, load_dataset


def _write(path, **arrays):
    np.savez(path, **arrays)
    return f"npz:{path}"


@pytest.mark.parametrize(
    ("arrays", "kind", "message"),
    [
        ({"y": np.zeros(4, int)}, "image", r"array 'x' is missing"),
        ({"x": np.zeros((4, 8, 8)), "y": np.zeros(4)}, "image", r"array 'y' must hold integer class labels, got dtype float64"),
        ({"x": np.zeros((4, 8)), "y": np.zeros(4, int)}, "image", r"array 'x' must have shape \(N, H, W\) or \(N, C, H, W\).*got shape \(4, 8\)"),
        ({"x": np.zeros((4, 8, 8, 8, 1)), "y": np.zeros(4, int)}, "sequence", r"array 'x' must have shape \(N, L\) or \(N, C, L\)"),
        ({"x": np.zeros((4, 8)), "y": np.zeros(5, int)}, "sequence", r"array 'y' has 5 labels but 'x' has 4 samples"),
        ({"x": np.array([["a"] * 8] * 4), "y": np.zeros(4, int)}, "sequence", r"array 'x' must be numeric"),
        ({"x": np.zeros((4, 8)), "y": np.zeros(4, int), "x_val": np.zeros((2, 8))}, "sequence", r"'x_val' and 'y_val' must be given together"),
        ({"x": np.zeros((4, 8)), "y": np.zeros(4, int), "x_val": np.zeros((2, 9)), "y_val": np.zeros(2, int)}, "sequence", r"'x_val' has sample shape \(1, 9\)"),
        ({"x": np.zeros((4, 8)), "y": -np.ones(4, int)}, "sequence", r"array 'y' has negative labels"),
    ],
)
def test_npz_errors_name_file_and_array(tmp_path, arrays, kind, message):
    path = tmp_path / "bad.npz"
    spec = _write(path, **arrays)
    with pytest.raises(ValueError, match=message) as err:
        load_dataset(spec, kind)
    assert str(path) in str(err.value)


def test_npz_missing_file(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_dataset(f"npz:{tmp_path / 'nope.npz'}", "image")


def test_npz_shapes_and_validation_split(tmp_path):
    rng = np.random.default_rng(0)
    spec = _write(tmp_path / "ok.npz", x=rng.normal(size=(50, 6, 6)).astype(np.float32), y=rng.integers(0, 3, 50))
    d = load_dataset(spec, "image", val_fraction=0.2)
    assert d.x.shape == (40, 1, 6, 6) and d.x_val.shape == (10, 1, 6, 6) and d.num_classes == 3
    spec = _write(tmp_path / "ok2.npz", x=np.zeros((8, 2, 5)), y=np.arange(8) % 2, x_val=np.zeros((3, 2, 5)), y_val=np.array([0, 1, 2]))
    d = load_dataset(spec, "sequence")
    assert d.x.shape == (8, 2, 5) and d.x_val.shape == (3, 2, 5) and d.num_classes == 3


def test_digits_shapes():
    assert load_dataset("digits", "image").input_shape == (1, 8, 8)
    assert load_dataset("digits", "sequence").input_shape == (1, 64)


def test_mnist1d_generated_once_then_cached(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    calls = []
    real = _data.generate_mnist1d

    def counting():
        calls.append(1)
        return real()

    monkeypatch.setattr(_data, "generate_mnist1d", counting)
    monkeypatch.setattr(_data, "_MEMO", {})
    first = _data.load_mnist1d()
    assert calls == [1]
    assert _data.mnist1d_cache_path().is_file()
    assert str(_data.mnist1d_cache_path()).startswith(str(tmp_path / "cache" / "hpo"))
    second = _data.load_mnist1d()
    assert calls == [1]
    np.testing.assert_array_equal(first["x"], second["x"])
    seq = load_dataset("mnist1d", "sequence")
    img = load_dataset("mnist1d", "image")
    assert calls == [1]
    assert seq.input_shape == (1, 40) and img.input_shape == (1, 1, 40)
    assert len(seq.x) == 4000 and len(seq.x_val) == 1000


def test_device_batches_cover_epoch_and_shard_by_rank():
    x = torch.arange(20).float()[:, None]
    y = torch.arange(20)
    b = DeviceBatches(x, y, 4, shuffle=True, drop_last=True, seed=1)
    seen = torch.cat([yb for _, yb in b])
    assert sorted(seen.tolist()) == list(range(20)) and len(b) == 5
    again = torch.cat([yb for _, yb in b])
    assert not torch.equal(seen, again)  # a new permutation each epoch
    shards = []
    for rank in range(2):
        r = DeviceBatches(x, y, 4, shuffle=True, drop_last=True, seed=1).place(torch.device("cpu"), rank, 2)
        shards.append(torch.cat([yb for _, yb in r]))
    assert len(shards[0]) == len(shards[1]) == 8
    assert not set(shards[0].tolist()) & set(shards[1].tolist())
