"""``hpo run --cluster ray``: the study's workers run as Ray tasks on an existing Ray cluster.

The driver (``hpo run``, in the foreground) connects with ``ray.init(address=...)``, starts
``--jobs`` tasks, each running :func:`hpo._worker.run_worker` as a ``--jobs`` worker process does,
and shows the same progress. Ray places each task on a node with the CPUs and GPUs one trial needs
(:func:`hpo._objective.resource_needs`), spread over the nodes.

Every trial a task claims records the task's id, node id and node IP (:data:`hpo._keys.CLUSTER_WORKER`,
:data:`~hpo._keys.NODE`, :data:`~hpo._keys.NODE_IP`). When Ray reports a task dead (its node
was lost, its process killed), the driver fails and re-queues that task's running trials at once,
by that id, without waiting for the storage heartbeat's grace, and starts another task.

Ctrl-C/SIGTERM: the driver raises the stop of a :class:`StopSignal` actor (on the driver's node),
which every task polls; a task then sends the same signal to its own main thread, where hpo's
handlers fail and re-queue the running trial as on one machine, and returns. Tasks that do not
end within the grace are killed (``ray.cancel(force=True)``) and the driver fails and re-queues
what they left RUNNING. Why not ``ray.cancel`` for every task: in Ray 2.60 a cancel that
meets the task's own end aborts the driver ("Check failed: Tried to complete task that was not
pending"), which a cancelled task's few seconds of clean-up make likely.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Mapping
from typing import Any

from hpo import _keys as keys
from hpo._errors import HpoError, UsageError, one_line
from hpo._signals import SIGNAL_EXIT_CODES

POLL_S = 0.5
CRASH_RESTARTS = 3  # restarts for tasks that raised (lost tasks always restart)
SHUTDOWN_GRACE_S = 60
STOP_POLL_S = 0.5  # how often a task asks the StopSignal actor whether to stop
ACTOR_TIMEOUT_S = 30.0  # the longest the driver waits for the StopSignal actor's answer
# Once the study is complete, tasks still not done are waiting for a node (one was lost and no
# other has room) or about to return: stopped after this long.
COMPLETE_GRACE_S = 10.0
INSTALL_HINT = 'pip install "hpo-lightning[ray]"'
CONNECT_TIMEOUT_S = 10.0


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UsageError(f"--cluster ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


class RayEngine:
    """The ``ray`` cluster engine (see :mod:`hpo.cluster`)."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.address = options.get("address") or "auto"
        self.ray: Any = None
        self.request: dict[str, float] = {}

    def describe(self) -> str:
        return f"Ray cluster {self.address}"

    def prepare(self, spec: Any) -> None:
        """Connects to the cluster; refuses a store the nodes cannot share and a trial no node can hold."""
        from hpo._objective import resource_needs
        from hpo._signals import install_signal_handlers

        needs = resource_needs(spec)  # a bad knob fails before connecting
        self.ray = import_ray()
        check_reachable(self.address)
        try:
            self.ray.init(address=self.address, log_to_driver=False, logging_level=logging.WARNING)
        except ConnectionError as exc:
            raise UsageError(f"--cluster ray: cannot connect to a Ray cluster at {self.address!r}: "
                             f"{one_line(str(exc)).split('. ')[0]}; start one with `ray start --head` or give "
                             "--address HOST:PORT") from None
        install_signal_handlers()  # ray.init replaced the SIGTERM handler with its own sys.exit
        nodes = [n for n in self.ray.nodes() if n.get("Alive")]
        check_storage(spec, len(nodes), self.address)
        gpus = bool(self.ray.cluster_resources().get("GPU", 0))
        self.request = resource_request(needs, gpus)
        check_fits(self.request, nodes, spec)

    def run(self, spec: Any, jobs: int, study: Any, progress: Any, tracker: Any) -> tuple[int, str]:
        return RayWorkers(self.ray, self.request, spec, jobs, study, progress, tracker).run()

    def close(self) -> None:
        if self.ray is not None and self.ray.is_initialized():
            self.ray.shutdown()


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Refuses a ``HOST:PORT`` nothing listens on: ``ray.init`` would retry it for many minutes."""
    import socket

    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in address:
        return  # "auto", or a ray:// client address: Ray's own lookup answers at once
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise UsageError(f"--cluster ray: cannot connect to a Ray cluster at {address!r}: "
                         f"{exc.strerror or exc}; check --address (the head node's HOST:PORT, "
                         "6379 by default) and that `ray start --head` runs there") from None


def check_storage(spec: Any, nodes: int, address: str) -> None:
    """The embedded journal store is a file on this machine: only a one-node cluster shares it."""
    from hpo._storage import is_embedded, journal_path

    if is_embedded(spec) and nodes > 1:
        raise UsageError(
            f"--cluster ray: the Ray cluster at {address!r} has {nodes} nodes, which cannot share the study's "
            f"embedded store {journal_path(spec)} (a file on this machine); give --storage "
            "postgresql://USER@HOST/DB, a database every node reaches (or study.storage in the space file)")


def resource_request(needs: Any, cluster_has_gpus: bool) -> dict[str, float]:
    """Ray's ``num_cpus``/``num_gpus`` of one worker task, from one trial's needs.

    On a cluster with GPUs a trial takes ``devices`` GPUs and ``threads`` CPUs (at least one); on a
    cluster without, ``devices`` is the number of training processes (CPU DDP), each ``threads``.
    """
    threads = max(1, needs.threads)
    if cluster_has_gpus:
        return {"num_cpus": threads, "num_gpus": needs.devices}
    return {"num_cpus": threads * needs.devices, "num_gpus": 0}


def check_fits(request: Mapping[str, float], nodes: list[dict[str, Any]], spec: Any) -> None:
    """Refuses a request no node could ever hold (Ray would keep the tasks pending for ever)."""
    cpus, gpus = request["num_cpus"], request["num_gpus"]
    if any(n["Resources"].get("CPU", 0) >= cpus and n["Resources"].get("GPU", 0) >= gpus for n in nodes):
        return
    have = ", ".join(f"{n['Resources'].get('CPU', 0):g} CPU/{n['Resources'].get('GPU', 0):g} GPU" for n in nodes)
    raise UsageError(f"--cluster ray: a trial of {spec.source} needs {cpus:g} CPU and {gpus:g} GPU on one node "
                     f"(objective.fixed devices/threads), but the cluster's nodes have {have}")


class StopSignal:
    """A Ray actor on the driver's node: the driver's stop (a signal number, 0 while none), and
    the tasks that have started, in the order of its calls (Ray runs an actor's calls one by one)."""

    def __init__(self) -> None:
        self.signum = 0
        self.started: set[str] = set()

    def check_in(self, task_id: str) -> int:
        """A task starts: its id is recorded; the stop raised so far (0: none)."""
        self.started.add(task_id)
        return self.signum

    def poll(self) -> int:
        return self.signum

    def stop(self, signum: int) -> list[str]:
        """Raises the stop; returns the tasks started before it (any later one stops at check-in)."""
        self.signum = signum
        return sorted(self.started)


def worker_task(payload: Mapping[str, Any], index: int, stop_signal: Any = None) -> tuple[int, str]:
    """One hpo worker, run by Ray on some node: joins the study and runs trials to its end.

    Returns ``(exit code, stop reason)``. The driver's stop (``stop_signal``, a :class:`StopSignal`)
    reaches the task's main thread as the signal the driver got: the running trial is failed and
    re-queued (:func:`hpo._worker.run_trial`) and the task returns 128 + that signal. So does a
    SIGINT/SIGTERM/SIGHUP sent to the task's process; a cancel (``KeyboardInterrupt``) fails and
    re-queues the running trial too, and ends the task with it.
    """
    import ray

    from hpo._signals import Interrupted, install_signal_handlers, restore_signal_handlers

    context = ray.get_runtime_context()
    signum = ray.get(stop_signal.check_in.remote(context.get_task_id())) if stop_signal is not None else 0
    if signum:
        return 128 + signum, "stopped before it started"
    try:  # relative paths (hpo-runs/, the objective's file) are the driver's: a shared file system
        os.chdir(payload["cwd"])
    except OSError as exc:
        return 2, (f"error: node {ray.util.get_node_ip_address()} cannot enter {payload['cwd']} ({exc.strerror}): "
                   "the study's folder must be at the same path on every node (a shared file system)")
    in_main = threading.current_thread() is threading.main_thread()
    previous = install_signal_handlers() if in_main else {}  # Ray's own SIGTERM handler exits the process
    mask = _unblock(SIGNAL_EXIT_CODES) if in_main else None  # Ray's workers block SIGINT
    watch = StopWatch(stop_signal) if in_main and stop_signal is not None else None
    try:
        return _run_worker(payload, index, context)
    except Interrupted as exc:
        return exc.exit_code, f"interrupted by {signal.Signals(exc.signum).name}"
    finally:
        if watch is not None:
            watch.close()
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        restore_signal_handlers(previous)


def _unblock(signals: Any) -> Any:
    """Unblocks ``signals`` in this thread; returns the mask to put back (None where there are no masks)."""
    if not hasattr(signal, "pthread_sigmask"):
        return None
    return signal.pthread_sigmask(signal.SIG_UNBLOCK, list(signals))


def _run_worker(payload: Mapping[str, Any], index: int, context: Any) -> tuple[int, str]:
    import ray

    from hpo._spec import spec_from_dict
    from hpo._study import label_worker
    from hpo._worker import join_study, run_worker
    from hpo.tracking import make_tracker

    label_worker({keys.NODE: context.get_node_id(), keys.NODE_IP: ray.util.get_node_ip_address(),
                  keys.CLUSTER_WORKER: context.get_task_id()})
    spec = spec_from_dict(payload["raw"], source=payload["source"])
    tracker = make_tracker(spec.mlflow.tracking_uri, spec.experiment, spec.mlflow.enabled)
    try:
        outcome = run_worker(spec, tracker, join_study(spec, tracker, index)[0])
        return outcome.exit_code, outcome.stop_reason
    except HpoError as exc:
        return exc.exit_code, f"error: {exc}"
    finally:
        tracker.close()
        label_worker({})


class StopWatch:
    """A daemon thread that polls the driver's :class:`StopSignal` and, once it is raised, sends
    its signal to this process's main thread (where hpo's handlers turn it into ``Interrupted``).
    :meth:`close` ends it; no signal is sent after ``close`` returns."""

    def __init__(self, stop_signal: Any, poll_s: float = STOP_POLL_S) -> None:
        self.stop_signal, self.poll_s = stop_signal, poll_s
        self.main = threading.main_thread().ident
        self.closed = threading.Event()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._watch, name="hpo-ray-stop", daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        import ray
        from ray.exceptions import GetTimeoutError, RayError

        while not self.closed.wait(self.poll_s):
            try:
                signum = ray.get(self.stop_signal.poll.remote(), timeout=ACTOR_TIMEOUT_S)
            except GetTimeoutError:
                continue
            except RayError:  # the actor is gone with the driver's node: Ray ends this task with the driver
                return
            if signum:
                with self.lock:
                    if not self.closed.is_set():
                        signal.pthread_kill(self.main, signum)
                return

    def close(self) -> None:
        with self.lock:
            self.closed.set()


def start_stop_signal(ray: Any) -> Any:
    """The run's :class:`StopSignal` actor, on the driver's node (no CPU): a node lost with it
    would take the driver too."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)
    return ray.remote(StopSignal).options(num_cpus=0, scheduling_strategy=here).remote()


class RayWorkers:
    """Runs ``jobs`` worker tasks to the study's end: restarts lost ones (re-queuing their trials
    at once), stops all on too many failures or an interrupt, shows progress meanwhile."""

    def __init__(self, ray: Any, request: Mapping[str, float], spec: Any, jobs: int, study: Any,
                 progress: Any, tracker: Any) -> None:
        self.ray, self.spec, self.jobs, self.study, self.progress, self.tracker = ray, spec, jobs, study, progress, tracker
        # SPREAD: workers of a study go to different nodes first (Ray's default packs them onto one).
        self.remote = ray.remote(worker_task).options(
            **request, scheduling_strategy="SPREAD", max_retries=0, name="hpo-worker")
        self.stop_signal = start_stop_signal(ray)
        self.payload = {"raw": spec.raw, "source": spec.source, "cwd": os.getcwd()}
        self.refs: dict[int, Any] = {}
        self.started: list[str] = []  # every task's id, for recovery after a stop
        self.crash_restarts = 0

    def start(self, index: int) -> None:
        ref = self.remote.remote(self.payload, index, self.stop_signal)
        self.refs[index] = ref
        self.started.append(ref.task_id().hex())

    def run(self) -> tuple[int, str]:
        from hpo._signals import as_interrupted
        from hpo._worker import STUDY_COMPLETE

        for index in range(self.jobs):
            self.start(index)
        try:
            outcome = self._watch()
        except KeyboardInterrupt as exc:  # Ray turns our Interrupted into a plain KeyboardInterrupt
            interrupt = as_interrupted(exc)
            self._stop(f"interrupted by {interrupt}: hpo run was stopped", interrupt.signum)
            raise interrupt from None
        if self.refs:
            self._stop(outcome[1] if outcome[0] else STUDY_COMPLETE)
        return outcome

    def _watch(self) -> tuple[int, str]:
        from hpo._run import study_is_complete
        from hpo._worker import STUDY_COMPLETE

        complete_since: float | None = None
        while self.refs:
            ready, _ = self.ray.wait(list(self.refs.values()), num_returns=len(self.refs), timeout=POLL_S)
            self.progress.update(self.study)
            for index in [i for i, ref in self.refs.items() if ref in ready]:
                outcome = self._finished(index, self.refs.pop(index))
                if outcome is not None:
                    return outcome
            if self.refs and study_is_complete(self.study, self.spec):
                complete_since = complete_since or time.monotonic()
                if time.monotonic() - complete_since > COMPLETE_GRACE_S:
                    return 0, STUDY_COMPLETE
        return 0, STUDY_COMPLETE

    def _finished(self, index: int, ref: Any) -> tuple[int, str] | None:
        """What a finished task means: None to go on (done, or restarted), else the run's outcome."""
        from ray.exceptions import RayError, RayTaskError, TaskCancelledError

        from hpo._worker import EXIT_TOO_MANY_FAILURES

        try:
            code, reason = self.ray.get(ref)
        except TaskCancelledError as exc:  # cancelled from outside (`ray job stop`): its trial was re-queued
            self._lost(index, ref, exc)
            return None
        except RayTaskError as exc:  # the task raised: a bug or a broken environment on that node
            self.crash_restarts += 1
            if self.crash_restarts > CRASH_RESTARTS:
                return 1, f"worker {index} failed on Ray: {one_line(str(exc.cause or exc))}"
            self.start(index)
            return None
        except RayError as exc:  # lost: its node died, its process was killed, the stuck-trial exit
            self._lost(index, ref, exc)
            return None
        if code == 0:
            return None
        if code in SIGNAL_EXIT_CODES.values():  # a signal to its process from outside: its trial was re-queued
            self._lost(index, ref, RuntimeError(reason))
            return None
        return (code, reason) if code == EXIT_TOO_MANY_FAILURES else (1, f"worker {index}: {reason}")

    def _lost(self, index: int, ref: Any, exc: Exception) -> None:
        from hpo._run import study_is_complete
        from hpo._study import recover_trials_of, recovered_lines

        reason = f"Ray worker lost ({type(exc).__name__})"
        recovered = recover_trials_of(self.study, self.spec, self.tracker,
                                      (keys.CLUSTER_WORKER, ref.task_id().hex()), reason)
        for line in recovered_lines(self.study, self.spec, recovered, reason):
            self.progress.console.print(line, markup=False)
        if not study_is_complete(self.study, self.spec):
            self.start(index)

    def _stop(self, reason: str, signum: int = signal.SIGTERM) -> None:
        """Raises the stop for every task, waits the grace for those that had started, kills those
        still running after it, then fails and re-queues what they left RUNNING.

        A task not started yet (waiting for a node) stops at its check-in if it starts soon; else
        it goes with the driver's Ray session (``ray.shutdown``): no cancel races its start."""
        from ray.exceptions import GetTimeoutError, RayError

        from hpo._study import recover_trials_of

        refs = list(self.refs.values())
        try:
            started = set(self.ray.get(self.stop_signal.stop.remote(int(signum)), timeout=ACTOR_TIMEOUT_S))
        except (GetTimeoutError, RayError):  # no answer from the actor: every task gets Ray's cancel
            for ref in refs:
                self.ray.cancel(ref)
            running = refs
        else:
            running = [ref for ref in refs if ref.task_id().hex() in started]
        if running:
            _, stuck = self.ray.wait(running, num_returns=len(running), timeout=SHUTDOWN_GRACE_S)
            for ref in stuck:
                self.ray.cancel(ref, force=True)
        waiting = [ref for ref in refs if ref not in running]
        if waiting:  # those that start meanwhile stop at their check-in
            self.ray.wait(waiting, num_returns=len(waiting), timeout=2 * STOP_POLL_S)
        self.refs.clear()
        for task_id in self.started:
            recover_trials_of(self.study, self.spec, self.tracker, (keys.CLUSTER_WORKER, task_id), reason,
                              counts=False)
