"""The pure functions of weight pruning: schedules, global magnitude masks, channel masks, sparsity."""

from __future__ import annotations

import pytest
import torch

from objectives.techniques import sparsity as S


def test_cubic_schedule_is_zhu_and_gupta_with_zero_initial_sparsity():
    final, start, end = 0.9, 2, 6
    for epoch in range(start, end + 1):
        t = (epoch - start) / (end - start)
        expected = final + (0.0 - final) * (1 - t) ** 3
        assert S.cubic_sparsity(epoch, final, start, end) == pytest.approx(expected)
    assert S.cubic_sparsity(0, final, start, end) == 0.0
    assert S.cubic_sparsity(9, final, start, end) == final
    values = [S.cubic_sparsity(e, final, start, end) for e in range(start, end + 1)]
    steps = [b - a for a, b in zip(values, values[1:])]
    assert steps == sorted(steps, reverse=True)  # most weights go early


def test_oneshot_is_the_final_sparsity_from_the_start_epoch():
    assert [S.oneshot_sparsity(e, 0.5, 2, 0) for e in range(4)] == [0.0, 0.0, 0.5, 0.5]


def test_global_masks_rank_all_tensors_together():
    a = torch.tensor([[10.0, -0.1], [3.0, 0.2]])
    b = torch.tensor([-0.3, 5.0, 0.05])
    ma, mb = S.global_magnitude_masks([a, b], 3 / 7)
    assert ma.shape == a.shape and mb.shape == b.shape
    assert ma.tolist() == [[1.0, 0.0], [1.0, 0.0]]  # -0.1 and 0.2 go ...
    assert mb.tolist() == [1.0, 1.0, 0.0]  # ... with 0.05, while -0.3 of another tensor stays
    assert S.sparsity([a * ma, b * mb]) == pytest.approx(3 / 7)


def test_global_masks_keep_what_was_pruned_pruned():
    torch.manual_seed(0)
    w = torch.randn(50, 20)
    first = S.global_magnitude_masks([w], 0.5)[0]
    second = S.global_magnitude_masks([w * first], 0.8)[0]
    assert bool(((first == 0) <= (second == 0)).all())
    assert S.sparsity([w * second]) == pytest.approx(0.8)


def test_channel_masks_remove_whole_output_channels_of_smallest_norm_per_layer():
    conv = torch.ones(4, 2, 3)
    conv[1] *= 0.1
    conv[3] *= 0.2
    lin = torch.tensor([[1.0, 1.0], [0.0, 0.5], [3.0, 0.0]])
    mc, ml = S.channel_masks([conv, lin], 0.5)
    assert mc[:, 0, 0].tolist() == [1.0, 0.0, 1.0, 0.0] and bool((mc == mc[:, :1, :1]).all())
    assert ml.tolist() == [[0.0, 0.0], [0.0, 0.0], [1.0, 1.0]]  # round(1.5) = 2 neurons: norms 1.41 and 0.5 go
    assert S.channel_masks([torch.ones(1, 3)], 0.9)[0].tolist() == [[1.0, 1.0, 1.0]]  # one stays per layer


def test_sparsity_counts_zeros_over_all_tensors():
    assert S.sparsity([torch.tensor([0.0, 1.0]), torch.zeros(2, 1)]) == 0.75
    assert S.sparsity([]) == 0.0
