"""TrainConfig: defaults, coercion, and errors that name the key, the expectation and the value."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from objectives import PARAM_NAMES, TrainConfig

REPO = Path(__file__).resolve().parents[2]


def test_constructor_arguments_are_the_param_names():
    cfg = TrainConfig()
    assert set(cfg.to_dict()) == set(PARAM_NAMES)
    assert TrainConfig.from_params(cfg.to_dict()) == cfg
    for name in ("dataset", "lr_schedule", "agc_clip", "teacher", "distill_temperature", "accumulate_grad_batches"):
        assert name in PARAM_NAMES


def test_from_params_coerces_yaml_and_optuna_forms():
    cfg = TrainConfig.from_params({"lr": 1, "batch_size": 32.0, "teacher": {"width": 64}})
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)
    assert cfg.batch_size == 32 and isinstance(cfg.batch_size, int)
    assert cfg.teacher == {"width": 64}


def test_unknown_key_has_did_you_mean():
    with pytest.raises(ValueError, match=r"widht: unknown parameter \(did you mean 'width'\?\)"):
        TrainConfig.from_params({"widht": 32})


def test_unknown_key_ignored_when_not_strict():
    assert TrainConfig.from_params({"hidden": 3, "lr": 0.5}, strict=False).lr == 0.5


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"lr": "fast"}, r"lr: expected a number, got 'fast' \(str\)"),
        ({"batch_size": 12.5}, r"batch_size: expected an integer, got 12.5 \(float\)"),
        ({"width": True}, r"width: expected an integer, got True \(bool\)"),
        ({"optimizer": "adam"}, r"optimizer: expected one of adamw, sgd, got 'adam' .*did you mean 'adamw'"),
        ({"precision": "16"}, r"precision: expected one of 32-true, 16-mixed, bf16-mixed"),
        ({"lr": 0.0}, r"lr: expected a value > 0.0, got 0.0"),
        ({"hflip": 1.5}, r"hflip: expected a value <= 1.0, got 1.5"),
        ({"dataset": "digit"}, r"dataset: expected one of digits, mnist1d, npz:PATH or imagefolder:PATH.*did you mean 'digits'"),
        ({"teacher": 3}, r"teacher: expected a checkpoint path or a mapping"),
        ({"teacher": {"lrr": 0.1}}, r"teacher.lrr: unknown parameter \(did you mean 'lr'\?\)"),
    ],
)
def test_bad_values_name_key_expectation_and_value(params, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig.from_params(params)


def test_config_and_package_import_without_torch():
    code = (
        "import sys, objectives, objectives._config; "
        "objectives.TrainConfig.from_params({'lr': 0.1}); "
        "assert 'torch' not in sys.modules, 'torch imported'; "
        "assert 'pytorch_lightning' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
