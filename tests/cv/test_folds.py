"""The pure split: stratified, balanced, a partition, deterministic per seed."""

from __future__ import annotations

import numpy as np
import pytest

from objectives._config import TrainConfig
from objectives.techniques import stratified_folds, train_indices


@pytest.mark.parametrize("k", [2, 3, 5, 7])
def test_folds_partition_the_samples_with_balanced_sizes_and_classes(k):
    y = np.random.default_rng(1).choice(4, size=103, p=[0.5, 0.3, 0.15, 0.05])
    folds = stratified_folds(y, k, seed=0)
    assert np.array_equal(np.sort(np.concatenate(folds)), np.arange(len(y)))
    assert max(map(len, folds)) - min(map(len, folds)) <= 1
    counts = np.array([np.bincount(y[f], minlength=4) for f in folds])
    assert (counts.max(0) - counts.min(0) <= 1).all()


def test_folds_depend_on_the_seed_only():
    y = np.repeat([0, 1, 2], 10)
    first = stratified_folds(y, 3, seed=5)
    assert all(np.array_equal(a, b) for a, b in zip(first, stratified_folds(y, 3, seed=5)))
    assert not all(np.array_equal(a, b) for a, b in zip(first, stratified_folds(y, 3, seed=6)))


def test_train_indices_are_the_complement():
    assert train_indices(6, np.array([1, 4])).tolist() == [0, 2, 3, 5]


@pytest.mark.parametrize(("k", "n", "words"), [(1, 10, "must be >= 2"), (5, 3, "need at least 5 training samples")])
def test_impossible_splits_are_refused(k, n, words):
    with pytest.raises(ValueError, match=f"^cv_folds: .*{words}"):
        stratified_folds(np.zeros(n, dtype=int), k, seed=0)


def test_a_teacher_is_not_cross_validated():
    with pytest.raises(ValueError, match=r"^teacher.cv_folds: a teacher is one model"):
        TrainConfig.from_params({"teacher": {"width": 8, "cv_folds": 3}})
