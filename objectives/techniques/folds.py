"""Stratified k-fold splits: pure numpy, deterministic for a seed."""

from __future__ import annotations

import numpy as np


def stratified_folds(labels: np.ndarray, k: int, seed: int) -> list[np.ndarray]:
    """The held-out indices of each of ``k`` stratified folds of ``labels``, each sorted.

    Every index is in exactly one fold. Within each class the indices are shuffled by ``seed``
    and dealt to the folds in turn, continuing across classes (as scikit-learn's
    ``StratifiedKFold``): each class's count differs by at most one between folds, and so do the
    folds' sizes.

    Raises:
        ValueError: ``k < 2`` or fewer samples than folds.

    Example:
        >>> [f.tolist() for f in stratified_folds(np.array([0, 0, 1, 1]), 2, seed=0)]
        [[0, 2], [1, 3]]
    """
    labels = np.asarray(labels)
    if k < 2:
        raise ValueError(f"cv_folds: must be >= 2, got {k}")
    if len(labels) < k:
        raise ValueError(f"cv_folds: {k} folds need at least {k} training samples, got {len(labels)}")
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)])
    fold_of = np.empty(len(labels), dtype=np.int64)
    fold_of[order] = np.arange(len(order)) % k
    return [np.flatnonzero(fold_of == f) for f in range(k)]


def train_indices(n: int, held_out: np.ndarray) -> np.ndarray:
    """The indices of ``range(n)`` not in ``held_out`` (a fold's training part), sorted."""
    mask = np.ones(n, dtype=bool)
    mask[held_out] = False
    return np.flatnonzero(mask)
