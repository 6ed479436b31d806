"""The live progress bar of ``hpo run``; one line per trial when the output is not a terminal."""

from __future__ import annotations

import contextlib
import threading
from datetime import datetime
import time
from collections.abc import Collection, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from hpo import _keys as keys
from hpo._spec import StudySpec
from hpo._summary import best_trials, format_values, ranked_trials, state_counts

REFRESH_S = 0.5
WIDE_COLUMNS = 110  # narrower terminals get the compact live line

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial


def progress_line(trials: Sequence[FrozenTrial], n_trials: int, best: str, lost: Collection[int] = (),
                  compact: bool = False) -> str:
    """``7/12 trials · 6 complete · 1 pruned · 0 failed · 1 running · best 0.997`` (plain text, no markup).

    The first number counts finished trials (complete, pruned or failed) against the study's cap;
    trials ``lost`` to a dead or interrupted worker do not count against it (a retry or a new trial
    takes their place), so they are shown apart, as ``· 1 lost``. ``compact`` (a narrow terminal)
    leaves out the word "trials" and the states no trial is in: ``7/12 · 6 complete · 1 pruned ·
    1 running · best 0.997``.
    """
    counts = state_counts(trials)
    n_lost = sum(1 for t in trials if t.number in lost and t.state.name == "FAIL") if lost else 0
    failed = counts["FAIL"] - n_lost
    finished = counts["COMPLETE"] + counts["PRUNED"] + failed
    states = [(counts["COMPLETE"], "complete"), (counts["PRUNED"], "pruned"), (failed, "failed"),
              (n_lost, "lost"), (counts["RUNNING"], "running")]
    shown = [f"{n} {label}" for n, label in states if n or not compact and label != "lost"]
    head = f"{finished}/{n_trials}" if compact else f"{finished}/{n_trials} trials"
    return " · ".join([head, *shown, f"best {best}"])


def best_text(study: optuna.Study) -> str:
    """The best value, ``N on Pareto front`` for several objectives, ``-`` before any complete trial."""
    best = best_trials(study)
    if len(best) == 1:
        return format_values(best[0].values)
    return f"{len(best)} on Pareto front" if best else "-"


class StudyProgress:
    """Shows trials done / pruned / failed / running, the best value and the ETA while a study runs.

    On a terminal a background thread redraws from the study every ``REFRESH_S``, so a trial that
    is running shows as running (with one worker, trials end only between redraws otherwise).

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
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._study: optuna.Study | None = None
        # An 80-column terminal cut the line before the best value: there the bar is short, the
        # elapsed time left out and the line compact (progress_line).
        self.compact = console.width < WIDE_COLUMNS
        # The line is user text (study name, fail reasons): columns render it as-is, never as markup.
        columns = [TextColumn("{task.description}", markup=False, style="bold"),
                   BarColumn(bar_width=8 if self.compact else 40),
                   TextColumn("{task.fields[line]}", markup=False)]
        columns += [] if self.compact else [TimeElapsedColumn()]
        self._progress = Progress(*columns, TextColumn("ETA"), TimeRemainingColumn(), console=console,
                                  transient=False)
        self._task = None

    def __enter__(self) -> StudyProgress:
        if self.live:
            self._progress.start()
            name = self.spec.study.name
            if self.compact and len(name) > 16:
                name = name[:15] + "…"
            self._task = self._progress.add_task(name, total=self.spec.study.n_trials, line="")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.live:
            self._progress.stop()

    def update(self, study: optuna.Study, force: bool = False) -> None:
        """Redraws from the study's trials, at most every ``REFRESH_S`` unless ``force``.

        Reading every trial (and the best one) costs milliseconds on a database storage, more
        than a cheap trial itself, so a burst of finished trials is shown in one redraw.
        """
        if self.live and self._thread is None:
            self._study = study
            self._thread = threading.Thread(target=self._redraw_loop, name="hpo-progress", daemon=True)
            self._thread.start()
        with self._lock:
            now = time.monotonic()
            if not force and now - self._last_update < REFRESH_S:
                return
            self._last_update = now
            self._draw(study)

    def _redraw_loop(self) -> None:
        while not self._stop.wait(REFRESH_S):
            try:
                self.update(self._study)  # type: ignore[arg-type]
            except Exception:  # noqa: BLE001 - a failed redraw must not end the run; the next one retries
                continue

    def _draw(self, study: optuna.Study) -> None:
        from hpo._study import lost_trials

        trials = study.get_trials(deepcopy=False)
        n_trials = self.spec.study.n_trials
        lost = lost_trials(study) if any(t.state.name == "FAIL" for t in trials) else set()
        if self.live:
            line = progress_line(trials, n_trials, best_text(study), lost, compact=self.compact)
            finished = sum(t.state.is_finished() and t.number not in lost for t in trials)
            self._progress.update(self._task, completed=min(finished, n_trials), line=line)
            return
        new = [t for t in trials if t.state.is_finished() and t.number not in self._reported]
        # In the order they ended, each with the counts and best value as of its end (a burst of
        # trials ending between two redraws would otherwise all show the last one's counts).
        for t in sorted(new, key=_end_order):
            self._reported.add(t.number)
            ended = [u for u in trials if not u.state.is_finished() or _end_order(u) <= _end_order(t)]
            line = progress_line(ended, n_trials, self._best_as_of(study, ended), lost)
            value = format_values(t.values) if t.values else t.user_attrs.get(keys.FAIL_REASON, "")
            self.console.print(escape(f"trial {t.number:>4} {t.state.name:<8} {value}   [{line}]"),
                               highlight=False, soft_wrap=True)

    @staticmethod
    def _best_as_of(study: optuna.Study, trials: Sequence[FrozenTrial]) -> str:
        """The best value among ``trials`` (single objective); the study's Pareto count otherwise."""
        if len(study.directions) > 1:
            return best_text(study)
        ranked = ranked_trials(trials, [study.directions[0].name.lower()])
        return format_values(ranked[0].values) if ranked else "-"

    def mark_seen(self, trials: Sequence[FrozenTrial]) -> None:
        """Skips trials finished before this run (a resumed study) in the line-per-trial output."""
        self._reported.update(t.number for t in trials if t.state.is_finished())


def _end_order(t: FrozenTrial) -> tuple[Any, ...]:
    """Sorts finished trials by when they ended (then by number; one without an end time last)."""
    return (t.datetime_complete is None, t.datetime_complete or datetime.min, t.number)


@contextlib.contextmanager
def tail_status(console: Console, text: str) -> Iterator[None]:
    """Says what ``hpo run`` does after its trials (a spinner on a terminal, one line otherwise)."""
    if not console.is_terminal:
        console.print(text, markup=False, highlight=False)
        yield
        return
    with console.status(escape(text)):
        yield
