"""The live progress bar of ``hpo run``; one line per trial when the output is not a terminal."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from hpo import _keys as keys
from hpo._spec import StudySpec
from hpo._summary import best_trials, format_values, state_counts

REFRESH_S = 0.5

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial


class StudyProgress:
    """Shows trials done / pruned / failed, the best value and the ETA while a study runs.

    Example:
        >>> with StudyProgress(spec, console) as progress:
        ...     progress.update(study)
    """

    def __init__(self, spec: StudySpec, console: Console) -> None:
        self.spec = spec
        self.console = console
        self.live = console.is_terminal
        self._reported: set[int] = set()
        self._last_update = float("-inf")
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TextColumn("best {task.fields[best]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._task = None

    def __enter__(self) -> StudyProgress:
        if self.live:
            self._progress.start()
            self._task = self._progress.add_task(
                self.spec.study.name, total=self.spec.study.n_trials, counts="", best="-"
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live:
            self._progress.stop()

    def update(self, study: optuna.Study, force: bool = False) -> None:
        """Redraws from the study's trials, at most every ``REFRESH_S`` unless ``force``.

        Reading every trial (and the best one) costs milliseconds on a database storage, more
        than a cheap trial itself, so a burst of finished trials is shown in one redraw.
        """
        now = time.monotonic()
        if not force and now - self._last_update < REFRESH_S:
            return
        self._last_update = now
        trials = study.get_trials(deepcopy=False)
        counts = state_counts(trials)
        finished = counts["COMPLETE"] + counts["PRUNED"] + counts["FAIL"]
        best = best_trials(study)
        best_text = format_values(best[0].values) if len(best) == 1 else f"{len(best)} on Pareto front" if best else "-"
        summary = f"done {counts['COMPLETE']} pruned {counts['PRUNED']} failed {counts['FAIL']} running {counts['RUNNING']}"
        if self.live:
            self._progress.update(self._task, completed=min(finished, self.spec.study.n_trials),
                                  counts=summary, best=best_text)
            return
        for t in trials:
            if t.state.is_finished() and t.number not in self._reported:
                self._reported.add(t.number)
                value = format_values(t.values) if t.values else t.user_attrs.get(keys.FAIL_REASON, "")
                self.console.print(f"trial {t.number:>4} {t.state.name:<8} {value}   [{summary}; best {best_text}]",
                                   highlight=False, soft_wrap=True)

    def mark_seen(self, trials: Sequence[FrozenTrial]) -> None:
        """Skips trials finished before this run (a resumed study) in the line-per-trial output."""
        self._reported.update(t.number for t in trials if t.state.is_finished())
