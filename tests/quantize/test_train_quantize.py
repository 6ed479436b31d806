"""``hpo train best.yaml --quantize dynamic|static``: the example study end to end, what is written,
printed and logged, calibration on training batches, and the refusals."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch

from objectives import _quantize

SPACE = Path(__file__).resolve().parents[2] / "search_spaces" / "quantize.yaml"
TINY = ("--n-trials", "1", "--set", "objective.fixed.max_epochs=1", "--set", "objective.fixed.batch_size=128")


def _study(workdir: Path, cli) -> Path:
    """The example space run for one short trial and exported: the ``best.yaml`` to retrain."""
    space = workdir / "quantize.yaml"
    shutil.copy(SPACE, space)
    code, out, err = cli("run", space, "--no-report", *TINY)
    assert code == 0, out + err
    assert cli("export", space, "-o", workdir / "best.yaml")[0] == 0
    return workdir / "best.yaml"


def _printed(out: str, row: str) -> list[str]:
    """The float and int8 columns of a row of the printed comparison."""
    line = next(line for line in out.splitlines() if line.startswith(row))
    return line[len(row):].split()[:2]


def _retrain_run(workdir: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{workdir}/hpo-runs/mlflow.db")
    experiment = client.get_experiment_by_name("quantize")
    (run,) = client.search_runs([experiment.experiment_id], filter_string="metrics.int8_val_acc >= 0")
    return run


@pytest.mark.slow  # a whole study, ~25 s
def test_the_example_study_exports_and_retrains_into_an_int8_model(workdir, cli):
    best = _study(workdir, cli)
    code, out, err = cli("train", best, "--quantize", "dynamic", "-o", workdir / "final.pt")
    assert code == 0, out + err

    # Side by side: the float model and its int8 copy; every Conv/Linear weight of the copy is int8.
    assert (workdir / "final.pt").is_file() and (workdir / "final-int8.pt").is_file()
    floats = torch.load(workdir / "final.pt", weights_only=True)["state_dict"]
    saved = torch.load(workdir / "final-int8.pt", weights_only=True)
    assert saved["quantize"] == "dynamic"
    layers = {k.rpartition(".")[0] for k, v in floats.items() if k.endswith(".weight") and v.ndim >= 2}
    int8 = _quantize.int8_weights(saved["state_dict"])
    assert layers and all(f"{layer}.weight" in int8 or f"{layer}.weight_int8" in int8 for layer in layers), int8
    assert (workdir / "final-int8.pt").stat().st_size < (workdir / "final.pt").stat().st_size
    # Usable: the recorded architecture rebuilt, the file loads into it (strictly) and classifies.
    from objectives._models import build_model

    holder = torch.nn.Module()
    holder.model = build_model(saved["model"])
    loaded = _quantize.load_quantized(holder, workdir / "final-int8.pt").model
    assert loaded(torch.zeros(2, 1, 8, 8)).shape == (2, 10)

    # Printed: accuracy (the float one on the objective's validation split is the retrain's val_acc), size.
    val_acc = float(out.split("val_acc: ")[1].split()[0])
    acc_float, acc_int8 = map(float, _printed(out, "val_acc "))
    assert acc_float == pytest.approx(val_acc, abs=1e-4)
    assert abs(acc_int8 - acc_float) <= 0.05
    assert "final-int8.pt" in out and "file size" in out and "CPU ms/batch" in out

    # Logged to the retrain's MLflow run: the same numbers, and the sizes of the two files.
    metrics = _retrain_run(workdir).data.metrics
    assert metrics["float_val_acc"] == pytest.approx(acc_float, abs=1e-4)
    assert metrics["int8_val_acc"] == pytest.approx(acc_int8, abs=1e-4)
    assert metrics["float_size_bytes"] == (workdir / "final.pt").stat().st_size
    assert metrics["int8_size_bytes"] == (workdir / "final-int8.pt").stat().st_size
    assert metrics["float_latency_ms"] > 0 and metrics["int8_latency_ms"] > 0


def test_static_calibrates_on_training_batches(workdir, cli, monkeypatch):
    best = _study(workdir, cli)
    seen: dict[str, object] = {}
    calibrate, quantize_trained = _quantize.calibrate, _quantize.quantize_trained

    def spy_calibrate(model, batches):
        seen["batches"] = list(batches)
        return calibrate(model, seen["batches"])

    def spy_quantize_trained(module, data, *args, **kwargs):
        seen["data"] = data
        return quantize_trained(module, data, *args, **kwargs)

    monkeypatch.setattr(_quantize, "calibrate", spy_calibrate)
    monkeypatch.setattr(_quantize, "quantize_trained", spy_quantize_trained)
    code, out, err = cli("train", best, "--quantize", "static")
    assert code == 0, out + err

    train_x, val_x = seen["data"].train.x.cpu(), seen["data"].val.x.cpu()
    batches = seen["batches"]
    assert len(batches) == min(32, len(seen["data"].train))
    assert f"calibrated on {len(batches)} training batches" in out
    rows = torch.cat([x for x, _ in batches]).flatten(1)
    train_rows = {tuple(r.tolist()) for r in train_x.flatten(1)}
    val_only = {tuple(r.tolist()) for r in val_x.flatten(1)} - train_rows
    assert all(tuple(r.tolist()) in train_rows for r in rows)
    assert not any(tuple(r.tolist()) in val_only for r in rows)


def test_a_bad_mode_is_refused_before_training(workdir, cli):
    (workdir / "best.yaml").write_text("not read: the flag is checked first\n")
    code, out, err = cli("train", workdir / "best.yaml", "--quantize", "int4")
    assert code == 2
    assert err.strip().splitlines() == ["error: --quantize: expected one of dynamic, static, got 'int4'"]
    assert not (workdir / "hpo-runs").exists()


def test_an_objective_without_a_trained_model_is_a_clear_error(workdir, cli, write_space):
    from _helpers import base_space

    space = write_space(base_space(objective={"name": "objs.py:quadratic"}))
    assert cli("run", space, "--n-trials", "1", "--no-report")[0] == 0
    assert cli("export", space, "-o", workdir / "best.yaml")[0] == 0
    code, out, err = cli("train", workdir / "best.yaml", "--quantize", "dynamic")
    assert code == 2, out + err
    (line,) = err.strip().splitlines()
    assert "objs.py:quadratic left no checkpoint" in line and "objectives.fit" in line


def test_without_torchao_the_flag_is_refused_with_the_install_command(workdir, cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchao.quantization", None)
    (workdir / "best.yaml").write_text("not read\n")
    code, out, err = cli("train", workdir / "best.yaml", "--quantize", "static")
    assert code == 2
    assert "pip install 'hpo[quantize]'" in err and len(err.strip().splitlines()) == 1


def test_a_users_module_and_datamodule_are_quantized_too(workdir, cli, write_space):
    """``objective.module`` + a LightningDataModule (the example's SmallCNN on digits)."""
    examples = Path(__file__).resolve().parents[2] / "examples" / "my_models"
    space = write_space({
        "study": {"direction": "maximize", "metric": "val_acc", "n_trials": 1, "seed": 0},
        "objective": {"module": f"{examples}/model.py:SmallCNN", "data": f"{examples}/data.py:DigitsDataModule",
                      "fixed": {"max_epochs": 1, "threads": 1, "width": 8}},
        "space": {"lr": {"type": "float", "low": 0.005, "high": 0.02, "log": True}},
        "mlflow": {"enabled": False},
    })
    assert cli("run", space, "--no-report")[0] == 0
    assert cli("export", space, "-o", workdir / "best.yaml")[0] == 0
    code, out, err = cli("train", workdir / "best.yaml", "--quantize", "static", "-o", workdir / "user.pt")
    assert code == 0, out + err
    saved = torch.load(workdir / "user-int8.pt", weights_only=True)["state_dict"]
    assert any(k.endswith("weight_int8") for k in _quantize.int8_weights(saved))  # its Conv layers
    assert any(hasattr(v, "qdata") for v in saved.values())  # its Linear layers
    val_acc = float(out.split("val_acc: ")[1].split()[0])
    assert float(_printed(out, "val_acc ")[0]) == pytest.approx(val_acc, abs=1e-4)
