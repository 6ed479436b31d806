"""``imagefolder:PATH``: labels, sizes, channels, splits, the decode cache and the errors."""

from __future__ import annotations

import os

import numpy as np
import pytest

from objectives import _imagefolder
from objectives._data import load_dataset
from objectives._imagefolder import cached_arrays, load_imagefolder


@pytest.fixture
def count_decodes(monkeypatch):
    """Counts full image decodes (``_imagefolder._open`` calls)."""
    calls: list[str] = []
    original = _imagefolder._open

    def counting(path):
        calls.append(path.name)
        return original(path)

    monkeypatch.setattr(_imagefolder, "_open", counting)
    monkeypatch.setattr(_imagefolder, "_MEMO", {})
    return calls


def test_one_label_per_class_folder_in_sorted_order(image_folder):
    root = image_folder(classes=("zebra", "apple", "mango"), per_class=5, size=(6, 4))
    arrays, _ = cached_arrays(root)
    assert list(arrays["classes"]) == ["apple", "mango", "zebra"]
    assert arrays["x"].shape == (15, 3, 4, 6) and arrays["x"].dtype == np.uint8
    assert np.bincount(arrays["y"]).tolist() == [5, 5, 5]
    # "zebra" was written as class 0 (red), but sorts last: label 2, and its pixels are red.
    red = arrays["x"][arrays["y"] == 2][:, 0].mean()
    assert red > 150 and arrays["x"][arrays["y"] == 2][:, 1].mean() < 100


def test_image_size_resizes_and_grayscale_stays_one_channel(image_folder):
    root = image_folder(per_class=4, size=(10, 10), mode="L")
    data = load_dataset(f"imagefolder:{root}", "image", 0.25, image_size=6)
    assert data.input_shape == (1, 6, 6)
    assert len(data.x) == 9 and len(data.x_val) == 3 and data.num_classes == 3
    # standardised with the training set's statistics
    assert abs(float(data.x.mean())) < 1e-4 and abs(float(data.x.std()) - 1) < 1e-3


def test_mixed_sizes_take_the_first_images_size_and_any_colour_image_makes_rgb(image_folder, image_writer):
    root = image_folder(classes=("a", "b"), per_class=3, size=(8, 8), mode="L")
    image_writer(root / "b", 1, 1, (5, 7), "RGB", seed=9, prefix="z")  # one colour image of another size
    arrays, _ = cached_arrays(root)
    assert arrays["x"].shape == (7, 3, 8, 8)
    gray = arrays["x"][:6]
    np.testing.assert_array_equal(gray[:, 0], gray[:, 1])  # grayscale images copied to all three channels


def test_train_and_val_folders_are_used_as_given(image_folder):
    root = image_folder(classes=("a", "b"), per_class=8, split=True)
    data = load_imagefolder(str(root), "image", val_fraction=0.5)
    assert len(data.x) == 16 and len(data.x_val) == 4  # not 0.5 of anything
    assert sorted(data.y_val.tolist()) == [0, 0, 1, 1]


def test_decoded_once_then_read_from_the_cache_until_a_file_changes(image_folder, count_decodes):
    root = image_folder(classes=("a", "b"), per_class=4)
    first = load_imagefolder(str(root), "image", 0.25)
    assert len(count_decodes) == 8
    _imagefolder._MEMO.clear()  # as in a new process
    second = load_imagefolder(str(root), "image", 0.25)
    assert len(count_decodes) == 8
    np.testing.assert_array_equal(first.x, second.x)
    _, cache = cached_arrays(root)
    assert cache.is_file() and cache.parent == _imagefolder.cache_dir() / "imagefolder"
    assert len(count_decodes) == 8
    img = root / "a" / "000.png"
    os.utime(img, ns=(img.stat().st_atime_ns, img.stat().st_mtime_ns + 10**9))
    load_imagefolder(str(root), "image", 0.25)
    assert len(count_decodes) == 16  # re-decoded after the change


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda r: None, r"dataset: image folder .*missing does not exist"),
        (lambda r: r.mkdir(), r"missing: no class folders"),
        (lambda r: (r / "cat").mkdir(parents=True) or (r / "cat" / "notes.txt").write_text("x"),
         r"missing/cat: class folder has no images"),
        (lambda r: (r / "cat").mkdir(parents=True) or (r / "cat" / "broken.png").write_bytes(b"not a png"),
         r"missing/cat/broken.png: cannot be decoded as an image"),
    ],
)
def test_clear_errors_name_the_folder_or_file(tmp_path, make, message):
    root = tmp_path / "missing"
    make(root)
    with pytest.raises(ValueError, match=message):
        load_imagefolder(str(root), "image", 0.2)


def test_a_truncated_image_is_named(image_folder):
    root = image_folder(classes=("a", "b"), per_class=2)
    bad = root / "b" / "001.png"
    bad.write_bytes(bad.read_bytes()[:60])
    with pytest.raises(ValueError, match=r"b/001.png: cannot be decoded as an image"):
        cached_arrays(root)


def test_val_class_unknown_to_train_is_an_error(image_folder, image_writer):
    root = image_folder(classes=("a", "b"), per_class=4, split=True)
    image_writer(root / "val" / "c", 0, 2, (8, 8), "RGB", seed=5)
    with pytest.raises(ValueError, match=r"val/c: class 'c' is not among the training classes \['a', 'b'\]"):
        cached_arrays(root)


def test_sequence_kind_is_refused(image_folder):
    with pytest.raises(ValueError, match="holds images"):
        load_dataset(f"imagefolder:{image_folder(per_class=2)}", "sequence")
