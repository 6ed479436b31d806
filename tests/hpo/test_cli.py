"""The CLI itself: fast commands stay free of heavy imports; help and exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from _helpers import base_space

HEAVY = ("torch", "pytorch_lightning", "mlflow")

PROBE = """
import sys
from hpo.cli import main
codes = [main(a.split("|")) for a in sys.argv[1:]]
print(codes, sorted(m for m in {heavy!r} if m in sys.modules))
"""


def test_help_validate_and_status_import_no_torch_lightning_or_mlflow(write_space, cli, workdir):
    doc = base_space(objective={"name": "image_classifier"}, space={"lr": {"type": "float", "low": 0.001, "high": 0.1}},
                     study={"direction": "maximize", "metric": "val_acc", "n_trials": 1})
    path = write_space(doc)
    plain = write_space(base_space(mlflow={"enabled": True}), name="plain")
    assert cli("run", plain, "--no-report")[0] == 0
    args = [f"validate|{path}", f"status|{plain}", f"best|{plain}"]
    out = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *args], cwd=workdir,
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().splitlines()[-1] == "[0, 0, 0] []", out.stdout + out.stderr


def test_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "hpo", "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    for command in ("run", "validate", "status", "best", "export", "train", "report", "ui"):
        assert command in out.stdout


@pytest.mark.parametrize("args, line", [
    (["run", "x.yaml", "--jobs", "0"],
     "hpo run: error: argument --jobs: expected a number >= 1, got 0 (see hpo run --help)"),
    (["runn", "x.yaml"], "(did you mean 'run'?) (see hpo --help)"),
])
def test_a_bad_flag_or_command_is_one_line_exit_2(args, line):
    """argparse printed its whole usage block before the error."""
    out = subprocess.run([sys.executable, "-m", "hpo", *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and line in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_validate_shows_what_the_run_will_do(write_space, cli):
    """The sampler's implied options, an early stop and a warm start: all used by the run, none shown."""
    doc = base_space(sampler={"name": "tpe"}, warm_start=[{"x": 1.0}],
                     study={"direction": "minimize", "metric": "loss", "n_trials": 1,
                            "stop_when": {"target": 0.5, "patience": 4}})
    code, out, err = cli("validate", write_space(doc))
    assert code == 0, err
    assert "1 trial; sampler tpe {'constant_liar': True}; pruner none\n" in out, out
    assert "stops early once the best value reaches 0.5 or after 4 finished trials" in out
    assert "warm start: warm_start[0] (1 config(s))" in out
