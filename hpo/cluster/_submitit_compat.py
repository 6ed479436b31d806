"""The one place hpo touches submitit's private API: rendering the sbatch script of an array
without SLURM (``submitit.SlurmExecutor`` refuses to start where ``srun`` is missing), so that
tests and readers see what ``hpo run --cluster slurm`` would submit.

``tests/cluster/test_slurm.py`` renders a script through it against the installed submitit; an
upgrade that moves the private fails there, with the name of the private, and never in a study:
submitting goes through submitit's public executor. :data:`SUPPORTED` is the range checked.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

from hpo._versions import in_range, range_text

SUPPORTED = ((1, 5), (2, 0))  # >= 1.5, < 2
PRIVATE = "submitit.slurm.slurm._make_sbatch_string"


class UnsupportedSubmititError(ImportError):
    """The installed submitit is outside the range whose private renderer hpo was checked against."""


def check_version(version: str) -> None:
    if not in_range(version, SUPPORTED):
        raise UnsupportedSubmititError(
            f"rendering an sbatch script uses {PRIVATE}, checked with submitit {range_text(SUPPORTED)}; "
            f"submitit {version} is installed")


def render_sbatch(command: str, folder: Path, **params: Any) -> str:
    """The sbatch script submitit's SLURM executor would write for ``params``."""
    check_version(metadata.version("submitit"))
    from submitit.slurm.slurm import _make_sbatch_string

    return _make_sbatch_string(command=command, folder=folder, **params)
