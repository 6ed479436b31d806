"""The stack's reserved knob names: one exported list, the rest of the built-ins' knobs free."""

from __future__ import annotations

import objectives
from objectives._config import BUILTIN_ONLY, PARAM_NAMES


def test_stack_knobs_are_knobs_and_leave_data_and_network_names_free():
    assert set(objectives.STACK_KNOBS) <= set(PARAM_NAMES)
    assert {"dataset", "val_fraction", "batch_size", "width", "depth", "dropout"} <= set(BUILTIN_ONLY)
    for name in ("lr", "lr_schedule", "mixup_alpha", "teacher", "precision", "agc_exclude"):
        assert name in objectives.STACK_KNOBS


def test_fit_reads_only_the_stack_knobs_of_a_config():
    from objectives._fit import _as_config

    cfg = _as_config({"lr": 0.5, "width": "wide", "dataset": "cifar10", "batch_size": "big"})
    assert cfg.lr == 0.5 and cfg.width == objectives.TrainConfig().width


def test_a_bad_reserved_knob_value_says_it_is_reserved():
    import pytest

    from objectives._fit import _as_config

    with pytest.raises(ValueError, match=r"optimizer: expected one of adamw, sgd.*reserved knob of hpo's training stack"):
        _as_config({"optimizer": "adam"})
