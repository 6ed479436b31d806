#!/usr/bin/env bash
# Builds the wheel and the sdist, installs the BUILT WHEEL (not this source tree) into a clean venv,
# and runs a small study and load_best from a folder outside the repository: what a user who ran
# `pip install hpo-lightning` gets.
#
#   bash scripts/wheel-smoke.sh
#
# Checks: the wheel holds the packages hpo, objectives and dashboards and no tests; `hpo --version`
# reports the version in pyproject.toml; `hpo run` trains the built-in image_classifier objective and
# writes its dashboard; `hpo.load_best` reads the best config back. Installs with -c constraints.txt, and
# torch first and alone as scripts/setup.sh does (CPU build); a warm pip cache makes that about a minute.
# The test tests/package/test_wheel_smoke.py (marked slow) runs this script.
#
# Environment: PYTHON (default .venv/bin/python; it needs `build`, from the `test` extra),
# HPO_SMOKE_DIR (default a new temporary folder; removed at the end unless given).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
"$python" -c "import build" 2>/dev/null \
  || { echo "wheel-smoke: $python has no 'build' module: run bash scripts/setup.sh" >&2; exit 2; }
if [ -n "${HPO_SMOKE_DIR:-}" ]; then work="$HPO_SMOKE_DIR"; mkdir -p "$work"
else work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT; fi
case "$work/" in "$root"/*) echo "wheel-smoke: $work is inside the repository" >&2; exit 2;; esac

step() { echo "wheel-smoke: $*"; }
# Nothing of the source tree may leak in: a PYTHONPATH naming it (pytest's runs set one) would make pip
# see an egg-info there as "already installed" and the venv import hpo from the tree.
unset PYTHONPATH PYTHONHOME
export PYTHONNOUSERSITE=1
step "building the sdist and the wheel into $work/dist"
"$python" -m build --outdir "$work/dist" "$root" >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; exit 1; }
wheel="$(ls "$work"/dist/*.whl)"
ls "$work"/dist/*.tar.gz >/dev/null
version="$("$python" -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' "$root/pyproject.toml")"

step "checking the wheel's contents"
"$python" - "$wheel" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
expected = {"hpo", "objectives", "dashboards"}
if top != expected:
    sys.exit(f"wheel-smoke: the wheel's top-level packages are {sorted(top)}, expected {sorted(expected)}")
if any("/tests/" in f"/{n}" for n in names):
    sys.exit("wheel-smoke: the wheel contains tests")
PY

step "installing the wheel into a clean venv"
"$python" -m venv "$work/venv"
# --no-compile: Python compiles what the study imports when it first imports it; compiling every module
# of torch, MLflow and the rest up front took a third of this script's CPU time (82 s -> 56 s).
pip=("$work/venv/bin/python" -m pip install --quiet --no-compile -c "$root/constraints.txt")
"${pip[@]}" "torch==$(grep -E '^torch==' "$root/constraints.txt" | cut -d= -f3)"
"${pip[@]}" "$wheel"

mkdir -p "$work/user" && cd "$work/user"  # outside the repository: nothing of the source tree is importable
export PATH="$work/venv/bin:$PATH"
reported="$(hpo --version)"
[ "$reported" = "hpo $version" ] || { echo "wheel-smoke: hpo --version says '$reported', expected 'hpo $version'" >&2; exit 1; }
step "$reported"
cat > space.yaml <<'YAML'
study: {direction: maximize, metric: val_acc, n_trials: 2, seed: 0}
sampler: {name: random}
objective:
  name: image_classifier
  fixed: {threads: 1, dataset: digits, max_epochs: 1, depth: 1, width: 8, batch_size: 128}
space:
  lr: {type: float, low: 1.0e-3, high: 3.0e-2, log: true}
YAML
step "hpo run space.yaml"
hpo run space.yaml
python - <<'PY'
import hpo
from pathlib import Path

assert Path(hpo.__file__).resolve().is_relative_to(Path(__import__("sys").prefix).resolve()), hpo.__file__
best = hpo.load_best("space.yaml")
lr = best.config["lr"]
assert 1e-3 <= lr <= 3e-2, best.config
assert list(Path("hpo-runs").rglob("report.html")), "no dashboard written"
print(f"wheel-smoke: load_best -> lr={lr:.4g} from {hpo.__file__}")
PY
step "ok"
