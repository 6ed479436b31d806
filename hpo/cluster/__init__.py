"""Cluster engines for ``hpo run --cluster NAME``: where the study's workers run besides this machine.

Each engine is named here and imported only when chosen (``hpo run`` without ``--cluster`` imports
none of them). An engine's entry is ``run(spec, jobs, console, args) -> hpo._run.RunResult``.
"""

from __future__ import annotations

import argparse
from importlib import import_module
from typing import Any

ENGINES: dict[str, str] = {  # name -> "module:function"
    "slurm": "hpo.cluster._slurm:run_from_args",
}


def run_on_cluster(name: str, spec: Any, jobs: int, console: Any, args: argparse.Namespace) -> Any:
    """Runs the study's workers on the cluster engine ``name`` (a key of :data:`ENGINES`)."""
    from hpo._errors import UsageError

    if name not in ENGINES:
        raise UsageError(f"--cluster: unknown engine {name!r}; known: {', '.join(sorted(ENGINES))}")
    module, _, function = ENGINES[name].partition(":")
    return getattr(import_module(module), function)(spec, jobs, console, args)
