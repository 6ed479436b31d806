"""Cluster engines: ``hpo run --cluster NAME`` places the study's workers through an engine people
already run (Ray, SLURM) instead of starting them on this machine.

An engine is registered here by name (a ``"module:attr"`` string, imported only when chosen, so
``hpo run`` without ``--cluster`` never imports Ray). Its factory takes the CLI's options for it
(all of ``hpo run``'s parsed flags, as a mapping; each engine reads its own) and returns an
object with these methods, called by :func:`hpo._run.run_study` (``describe`` by ``hpo run``):

- ``prepare(spec)``: connect, and refuse (``UsageError``) what the cluster cannot run, before the
  study is opened;
- ``run(spec, jobs, study, progress, tracker) -> (exit_code, stop_reason)``: run ``jobs`` workers
  to the study's end, like ``--jobs`` does on one machine; on ``Interrupted``, stop them, fail and
  re-queue their running trials, and re-raise;
- ``close()``: disconnect (always called);
- ``describe() -> str``: where the workers run, for the run's first line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from hpo._errors import UsageError
from hpo._registry import Registry


class Engine(Protocol):
    """What :func:`hpo._run.run_study` calls on a cluster engine (see the module docstring)."""

    def prepare(self, spec: Any) -> None: ...

    def run(self, spec: Any, jobs: int, study: Any, progress: Any, tracker: Any) -> tuple[int, str]: ...

    def close(self) -> None: ...

    def describe(self) -> str: ...


ENGINES: Registry[Engine] = Registry("cluster engine")
ENGINES.register("ray", "hpo.cluster._ray:RayEngine")
ENGINES.register("slurm", "hpo.cluster._slurm:SlurmEngine")


def make_engine(name: str, options: Mapping[str, Any]) -> Engine:
    """The engine registered as ``name``, given its CLI options; ``UsageError`` listing the known ones."""
    if name not in ENGINES:
        raise UsageError(f"--cluster: {ENGINES.unknown_message(name)}")
    return ENGINES.get(name)(options)
