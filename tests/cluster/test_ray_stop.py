"""How ``hpo run --cluster ray`` stops its tasks, against a stand-in for Ray (no cluster).

The driver raises a stop that each task polls, instead of ``ray.cancel``: in Ray 2.60 a cancel that
meets the task's own end aborts the driver ("Tried to complete task that was not pending"). Only a
task still running after the grace is killed.
"""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest

from hpo._signals import Interrupted, install_signal_handlers, restore_signal_handlers


class Ref:
    def __init__(self, task_id: str) -> None:
        self.id = task_id

    def task_id(self) -> Any:
        return type("TaskID", (), {"hex": lambda _self: self.id})()


class Call:
    def __init__(self, value: Any) -> None:
        self.value = value


class Method:
    def __init__(self, fn) -> None:
        self.fn = fn

    def remote(self, *args: Any) -> Call:
        return Call(self.fn(*args))


class FakeStopSignal:
    """The StopSignal actor, called in place."""

    def __init__(self, started: list[str]) -> None:
        from hpo.cluster._ray import StopSignal

        self.actor = StopSignal()
        for task_id in started:
            self.actor.check_in(task_id)
        self.stop = Method(self.actor.stop)
        self.poll = Method(self.actor.poll)


class FakeRay:
    """Ray's get/wait/cancel over refs: ``ends`` says which refs end within a wait."""

    def __init__(self, ends: set[str]) -> None:
        self.ends = ends
        self.cancels: list[tuple[str, bool]] = []
        self.waits: list[tuple[list[str], float]] = []

    def get(self, call: Call, timeout: float | None = None) -> Any:
        return call.value

    def wait(self, refs: list[Ref], num_returns: int, timeout: float) -> tuple[list[Ref], list[Ref]]:
        self.waits.append(([r.id for r in refs], timeout))
        return [r for r in refs if r.id in self.ends], [r for r in refs if r.id not in self.ends]

    def cancel(self, ref: Ref, force: bool = False) -> None:
        self.cancels.append((ref.id, force))


def stop(refs: dict[int, Ref], started: list[str], ends: set[str], signum: int = signal.SIGTERM):
    """Runs RayWorkers._stop with a fake Ray; returns (fake ray, stop signal actor)."""
    from hpo.cluster import _ray

    workers = _ray.RayWorkers.__new__(_ray.RayWorkers)
    workers.ray, workers.refs, workers.started = FakeRay(ends), dict(refs), []
    workers.stop_signal = FakeStopSignal(started)
    workers.study = workers.spec = workers.tracker = None
    workers._stop("interrupted", signum)
    return workers.ray, workers.stop_signal.actor


def test_tasks_that_end_when_asked_are_never_cancelled():
    refs = {0: Ref("a"), 1: Ref("b")}
    ray, actor = stop(refs, started=["a", "b"], ends={"a", "b"}, signum=signal.SIGINT)
    assert ray.cancels == []
    assert actor.poll() == signal.SIGINT  # what each task's watcher reads
    from hpo.cluster._ray import SHUTDOWN_GRACE_S

    assert ray.waits[0] == (["a", "b"], SHUTDOWN_GRACE_S)


def test_a_task_still_running_after_the_grace_is_killed_and_only_it():
    ray, _ = stop({0: Ref("a"), 1: Ref("b")}, started=["a", "b"], ends={"a"})
    assert ray.cancels == [("b", True)]


def test_a_task_not_started_at_the_stop_is_neither_cancelled_nor_waited_the_grace():
    """It waits for a node: a cancel could meet its start; it stops at its check-in or goes with
    the driver's Ray session."""
    from hpo.cluster._ray import SHUTDOWN_GRACE_S

    ray, actor = stop({0: Ref("a"), 1: Ref("w")}, started=["a"], ends={"a"})
    assert ray.cancels == []
    assert [w for w in ray.waits if "w" in w[0] and w[1] >= SHUTDOWN_GRACE_S] == []
    assert actor.check_in("w") == signal.SIGTERM  # once it starts, it stops at once


@pytest.fixture
def hpo_handlers():
    previous = install_signal_handlers()
    yield
    restore_signal_handlers(previous)


def watch(monkeypatch, answers: list[int]):
    """A StopWatch over a fake actor whose polls answer ``answers`` (then the last one for ever)."""
    import ray

    from hpo.cluster import _ray

    polls = []

    def get(call: Call, timeout: float | None = None) -> int:
        polls.append(1)
        return answers[min(len(polls), len(answers)) - 1]

    monkeypatch.setattr(ray, "get", get)
    fake = type("Actor", (), {"poll": Method(lambda: None)})()
    return _ray.StopWatch(fake, poll_s=0.02), polls


def test_the_watch_turns_the_drivers_stop_into_that_signal_in_the_main_thread(monkeypatch, hpo_handlers):
    stopwatch, polls = watch(monkeypatch, [0, 0, int(signal.SIGTERM)])
    with pytest.raises(Interrupted) as raised:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            time.sleep(0.01)
    stopwatch.close()
    assert raised.value.signum == signal.SIGTERM and len(polls) == 3


def test_no_signal_after_the_watch_is_closed(monkeypatch, hpo_handlers):
    """The task's main thread closes the watch as it ends: a stop raised after that must not
    interrupt what the worker process runs next."""
    stopwatch, polls = watch(monkeypatch, [int(signal.SIGTERM)])
    stopwatch.close()
    stopwatch.thread.join(5)
    time.sleep(0.2)  # an Interrupted here fails the test
    assert not stopwatch.thread.is_alive()


def finished_with(result: tuple[int, str]) -> tuple[Any, list[tuple[int, str]]]:
    """RayWorkers whose finished task returned ``result``, and the (index, task) pairs it took as lost."""
    from hpo.cluster import _ray

    workers = _ray.RayWorkers.__new__(_ray.RayWorkers)
    workers.ray = type("Ray", (), {"get": staticmethod(lambda ref: result)})()
    lost: list[tuple[int, str]] = []
    workers._lost = lambda index, ref, exc: lost.append((index, ref.id))
    return workers, lost


@pytest.mark.parametrize("code", [130, 143, 129])
def test_a_worker_stopped_by_a_signal_to_its_process_is_replaced(code):
    """Its trial was failed and re-queued by the worker itself; the run goes on with another worker
    (before, the run ended with an error as for a worker that failed)."""
    workers, lost = finished_with((code, "interrupted by SIGTERM"))
    assert workers._finished(3, Ref("t")) is None
    assert lost == [(3, "t")]


def test_a_worker_that_failed_still_ends_the_run():
    workers, lost = finished_with((2, "error: bad spec"))
    assert workers._finished(0, Ref("t")) == (1, "worker 0: error: bad spec")
    assert lost == []
