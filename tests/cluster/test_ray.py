"""``hpo run --cluster ray`` against a real local Ray cluster of several nodes on this machine.

One cluster for the session (Ray starts slowly): a head node A and a node B, CPUs only, each with
a custom resource of its own. Tests that need a GPU node or a node to remove add it and remove it
themselves. Every node's processes carry ``HPO_WORKER_HOST`` of their own, so a trial's worker
looks like one on another machine: nothing but Ray's report can tell the driver that it is gone
(pid checks only apply on the same host, and the storage heartbeat's grace is set far away).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _helpers import base_space, load_trials, marked_processes, start_hpo, trials_so_far, wait_until

from hpo import _keys as keys

SMALL = {"object_store_memory": 80 * 1024 * 1024, "num_gpus": 0}
HEAD = {"include_dashboard": False, "resources": {"node_a": 1}}

OBJS = '''
import os, time

def nap(params, ctx):
    """Sleeps a little; writes which GPUs it was given to gpus-<trial>.txt."""
    with open(os.path.join(os.path.dirname(__file__), f"gpus-{ctx.trial.number}.txt"), "w") as f:
        f.write(os.environ.get("CUDA_VISIBLE_DEVICES", "none"))
    time.sleep(params.get("sleep", 0.3))
    return {"loss": params["x"] ** 2}

def held(params, ctx):
    """Runs while a file named hold exists beside this file; writes inside-<trial> once running."""
    here = os.path.dirname(__file__)
    open(os.path.join(here, f"inside-{ctx.trial.number}"), "w").close()
    hold = os.path.join(here, "hold")
    while os.path.exists(hold):
        time.sleep(0.05)
    return {"loss": params["x"] ** 2}
'''


@dataclass
class RayCluster:
    cluster: Any
    address: str
    node_a: str
    node_b: str


@contextlib.contextmanager
def worker_host(name: str) -> Iterator[None]:
    """A node added inside this block (and its workers) takes ``name`` as hpo's host name."""
    before = os.environ.get("HPO_WORKER_HOST")
    os.environ["HPO_WORKER_HOST"] = name
    try:
        yield
    finally:
        if before is None:
            del os.environ["HPO_WORKER_HOST"]
        else:
            os.environ["HPO_WORKER_HOST"] = before


# Startup failures worth one more try, with the half-started node's processes ended first. A new
# node has 30 s to register with the cluster, which a loaded 2-core machine can miss ("timed out
# during startup"). The head's GCS server has been seen, twice in about ten full CI runs, never to
# come up at all (no log file of its own, no port file after 30 s) though it comes up in about 3 s
# under the same load; the next start works.
RETRIED = ("timed out during startup", "Timed out waiting for file")


def started_again_on_failure(start: Callable[[], Any], what: str) -> Any:
    """``start()``; once more after a failure in ``RETRIED`` (warning with what failed and how the
    GCS server process ended, so that a passing run still shows it)."""
    marker = ("HPO_TEST_SESSION", os.environ["HPO_TEST_SESSION"])
    for attempt in (1, 2):
        before = set(marked_processes(*marker))
        gcs = GcsProcesses()
        try:
            with gcs.recording():
                return start()
        except Exception as exc:
            if attempt == 2 or not any(text in str(exc) for text in RETRIED):
                raise
            warnings.warn(f"{what} failed to start, starting it again: {exc} ({gcs.ends()})", stacklevel=2)
            for pid in set(marked_processes(*marker)) - before:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    raise AssertionError("unreachable")


class GcsProcesses:
    """Records the GCS server processes Ray starts meanwhile, to say how they ended."""

    def __init__(self) -> None:
        self.started: list[Any] = []

    @contextlib.contextmanager
    def recording(self) -> Iterator[None]:
        import ray._private.services as services  # Ray's own: a diagnostic only, skipped if it moves

        original = getattr(services, "start_gcs_server", None)
        if original is None:
            yield
            return

        def start_gcs_server(*args: Any, **kwargs: Any) -> Any:
            info = original(*args, **kwargs)
            self.started.append(info.process)
            return info

        services.start_gcs_server = start_gcs_server
        try:
            yield
        finally:
            services.start_gcs_server = original

    def ends(self) -> str:
        if not self.started:
            return "no GCS server was started"
        codes = [p.poll() for p in self.started]
        return "GCS server " + ", ".join("still running" if c is None else f"exited with {c}" for c in codes)


def add_node(cluster: RayCluster, host: str, **args: Any) -> Any:
    """Adds a node (started again once on a failure to start, see ``RETRIED``)."""

    def start() -> Any:
        with worker_host(host):
            return cluster.cluster.add_node(**{**SMALL, **args})

    node = started_again_on_failure(start, f"node {host}")
    cluster.cluster.wait_for_nodes()
    return node


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[RayCluster]:
    """Nodes A (head) and B, 2 CPUs each; shut down (every Ray process ended) after this file's tests:
    an idle cluster's processes would take CPU from the rest of the suite."""
    from ray.cluster_utils import Cluster

    def start_head() -> Any:
        with worker_host("ray-a"):
            return Cluster(initialize_head=True, head_node_args={**SMALL, **HEAD, "num_cpus": 2})

    cluster = started_again_on_failure(start_head, "the head node")
    try:
        def start_b() -> Any:
            with worker_host("ray-b"):
                return cluster.add_node(**SMALL, num_cpus=2, resources={"node_b": 1})

        node_b = started_again_on_failure(start_b, "node ray-b")
        cluster.wait_for_nodes()
        yield RayCluster(cluster, cluster.address, cluster.head_node.node_id, node_b.node_id)
    finally:
        cluster.shutdown()


@pytest.fixture
def ray_study(workdir: Path, write_space, postgres_server):
    """Writes a space (objective in ``objs.py``, PostgreSQL storage) and returns its path."""
    (workdir / "objs.py").write_text(OBJS)

    def write(n_trials: int, objective: str = "nap", fixed: dict | None = None, **study: Any) -> Path:
        doc = base_space(objective={"name": f"objs.py:{objective}", "fixed": fixed or {}},
                         study={"direction": "minimize", "metric": "loss", "n_trials": n_trials, "seed": 0,
                                "heartbeat_grace": 600, "storage": postgres_server(), **study})
        return write_space(doc)

    return write


def by_state(trials: list[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    return counts


@pytest.mark.slow
def test_a_study_spreads_over_both_nodes(ray_cluster, ray_study, cli):
    """--jobs 2 on nodes A and B: both run trials, and each trial records its node, IP and task."""
    space = ray_study(6)
    code, out, err = cli("run", space, "--cluster", "ray", "--address", ray_cluster.address, "--jobs", "2",
                         "--no-report")
    assert code == 0, out + err
    assert "on Ray cluster" in out
    trials = load_trials(space)
    assert by_state(trials) == {"COMPLETE": 6}
    assert {t.user_attrs[keys.NODE] for t in trials} == {ray_cluster.node_a, ray_cluster.node_b}
    assert all(t.user_attrs[keys.NODE_IP] and t.user_attrs[keys.CLUSTER_WORKER] for t in trials)
    assert len({t.user_attrs[keys.CLUSTER_WORKER] for t in trials}) == 2  # one task per worker
    assert {t.user_attrs[keys.WORKER].rpartition(":")[0] for t in trials} == {"ray-a", "ray-b"}


@pytest.mark.slow
def test_gpu_requests_go_to_the_node_with_gpus(ray_cluster, ray_study, cli):
    """devices: 2 asks Ray for 2 GPUs per worker: every trial runs on the (fake) 2-GPU node and
    sees both its GPUs; devices: 3 fits no node and is refused before anything runs."""
    node_g = add_node(ray_cluster, "ray-g", num_cpus=1, num_gpus=2)
    try:
        space = ray_study(3, fixed={"devices": 2})
        code, out, err = cli("run", space, "--cluster", "ray", "--address", ray_cluster.address, "--jobs", "2",
                             "--no-report")
        assert code == 0, out + err
        trials = load_trials(space)
        assert by_state(trials) == {"COMPLETE": 3}
        assert {t.user_attrs[keys.NODE] for t in trials} == {node_g.node_id}
        seen = {(space.parent / f"gpus-{t.number}.txt").read_text() for t in trials}
        assert seen == {"0,1"}

        too_big = ray_study(3, fixed={"devices": 3})
        code, out, err = cli("run", too_big, "--cluster", "ray", "--address", ray_cluster.address, "--no-report")
        assert code == 2
        assert "needs 1 CPU and 3 GPU on one node" in err and len(err.strip().splitlines()) == 1
    finally:
        ray_cluster.cluster.remove_node(node_g)


@pytest.mark.slow
def test_the_embedded_store_is_refused_on_a_cluster_of_several_nodes(ray_cluster, workdir, write_space, cli):
    space = write_space(base_space())
    code, out, err = cli("run", space, "--cluster", "ray", "--address", ray_cluster.address, "--no-report")
    assert code == 2
    assert "has 2 nodes" in err and "--storage postgresql://" in err and len(err.strip().splitlines()) == 1
    assert not (workdir / "hpo-runs" / "space" / "journal.log").exists()


@pytest.mark.slow
def test_a_node_lost_mid_study_has_its_trial_requeued_at_once(ray_cluster, ray_study, workdir):
    """Three workers, one per node (each needs 2 CPUs); node C is killed while its trial runs.
    Ray reports the task dead and the driver fails and re-queues that trial at once (the heartbeat
    grace is 600 s): the study ends with exactly n_trials complete and nothing RUNNING."""
    node_c = add_node(ray_cluster, "ray-c", num_cpus=2, resources={"node_c": 1})
    (workdir / "hold").touch()
    space = ray_study(6, objective="held", fixed={"threads": 2})
    proc = start_hpo("run", space, "--cluster", "ray", "--address", ray_cluster.address, "--jobs", "3",
                     "--no-report", cwd=workdir)
    try:
        def running_on_c() -> list[Any]:
            trials = [t for t in trials_so_far(space) if t.state.name == "RUNNING"]
            # with its params sampled, so that the retry can be compared with them
            return [t for t in trials if t.user_attrs.get(keys.NODE) == node_c.node_id and t.params] \
                if len(trials) == 3 else []

        lost = wait_until(running_on_c, timeout=180)[0]
        ray_cluster.cluster.remove_node(node_c, allow_graceful=False)
        wait_until(lambda: next(t for t in load_trials(space) if t.number == lost.number).state.name == "FAIL",
                   timeout=60)
        (workdir / "hold").unlink()
        out, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    trials = load_trials(space)
    counts = by_state(trials)
    assert counts["COMPLETE"] == 6 and counts.get("RUNNING", 0) == 0 and counts.get("WAITING", 0) == 0
    failed = next(t for t in trials if t.number == lost.number)
    assert "Ray worker lost" in failed.user_attrs[keys.FAIL_REASON]
    retry = next(t for t in trials if t.user_attrs.get(keys.RETRY_OF) == lost.number)
    assert retry.state.name == "COMPLETE" and retry.params == lost.params
    assert f"re-queued trials [{lost.number}]" in out


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_cancels_the_ray_workers_and_requeues_their_trials(ray_cluster, ray_study, workdir, signum):
    """Ctrl-C/SIGTERM: each task is stopped with that signal, its running trial failed and re-queued (not
    counted as retries), and hpo run exits 130/143."""
    (workdir / "hold").touch()
    space = ray_study(4, objective="held")
    proc = start_hpo("run", space, "--cluster", "ray", "--address", ray_cluster.address, "--jobs", "2",
                     "--no-report", cwd=workdir)
    try:
        # both trials inside the objective (a signal during a trial's set-up leaves it to hpo run to re-queue)
        wait_until(lambda: len(list(workdir.glob("inside-*"))) == 2, timeout=180)
        proc.send_signal(signum)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signum, out
    trials = load_trials(space)
    interrupted = [t for t in trials if t.state.name == "FAIL"]
    assert len(interrupted) == 2 and not [t for t in trials if t.state.name == "RUNNING"], (by_state(trials), out)
    # the driver's signal reached each task as that signal (not as Ray's cancel)
    reasons = [t.user_attrs[keys.FAIL_REASON] for t in interrupted]
    assert all(r == f"interrupted (Interrupted: {signal.Signals(signum).name})" for r in reasons), reasons
    queued = [t for t in trials if t.state.name == "WAITING"]
    assert sorted(t.user_attrs[keys.RETRY_OF] for t in queued) == sorted(t.number for t in interrupted)
    assert all(t.user_attrs[keys.RETRY_COUNT] == 0 for t in queued)


def test_hpo_run_without_cluster_never_imports_ray(workdir, write_space):
    space = write_space(base_space(study={"direction": "minimize", "metric": "loss", "n_trials": 2, "seed": 0}))
    code = ("import sys; from hpo.cli import main; rc = main(['run', sys.argv[1], '--no-report']); "
            "sys.exit(rc or (3 if [m for m in sys.modules if m == 'ray' or m.startswith('ray.')] else 0))")
    done = subprocess.run([sys.executable, "-c", code, str(space)], cwd=workdir, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_an_unknown_engine_lists_the_known_ones(workdir, write_space, cli):
    code, out, err = cli("run", write_space(base_space()), "--cluster", "rya")
    assert code == 2 and "unknown cluster engine 'rya' (did you mean 'ray'?); known: ray" in err


def test_an_address_nothing_listens_on_is_refused_at_once(workdir, write_space, cli):
    from _helpers import free_port

    started = time.monotonic()
    code, out, err = cli("run", write_space(base_space()), "--cluster", "ray", "--address", f"127.0.0.1:{free_port()}")
    assert code == 2 and "cannot connect to a Ray cluster at '127.0.0.1:" in err and "refused" in err
    assert time.monotonic() - started < 60  # ray.init alone retries for many minutes


def test_address_without_cluster_is_refused(workdir, write_space, cli):
    code, out, err = cli("run", write_space(base_space()), "--address", "10.0.0.1:6379")
    assert code == 2 and "--address needs --cluster ray" in err


def test_without_ray_installed_the_message_says_how_to_install_it(workdir, write_space, cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    code, out, err = cli("run", write_space(base_space()), "--cluster", "ray")
    assert code == 2 and 'pip install "hpo-lightning[ray]"' in err


@pytest.mark.parametrize(("devices", "threads", "gpus", "expected"), [
    (1, 0, True, {"num_cpus": 1, "num_gpus": 1}),
    (2, 4, True, {"num_cpus": 4, "num_gpus": 2}),
    (2, 3, False, {"num_cpus": 6, "num_gpus": 0}),  # CPU DDP: devices processes of threads each
    (1, 0, False, {"num_cpus": 1, "num_gpus": 0}),
])
def test_a_worker_asks_ray_for_what_one_trial_trains_with(workdir, devices, threads, gpus, expected):
    from hpo._objective import resource_needs
    from hpo._spec import spec_from_dict
    from hpo.cluster._ray import resource_request

    doc = base_space(objective={"name": "objs.py:quadratic", "fixed": {"devices": devices, "threads": threads}})
    assert resource_request(resource_needs(spec_from_dict(doc, source="space.yaml")), gpus) == expected


def test_a_bad_devices_value_is_refused_naming_its_key(workdir):
    from hpo._errors import SpecError
    from hpo._objective import resource_needs
    from hpo._spec import spec_from_dict

    doc = base_space(objective={"name": "objs.py:quadratic", "fixed": {"devices": 0}})
    with pytest.raises(SpecError, match="objective.fixed.devices"):
        resource_needs(spec_from_dict(doc, source="space.yaml"))


def test_the_embedded_store_is_taken_on_a_one_node_cluster_only(workdir):
    """One node shares this machine's files (the journal's file lock works); several do not, and a
    database URL is taken whatever the cluster."""
    from hpo._errors import UsageError
    from hpo._spec import spec_from_dict
    from hpo.cluster._ray import check_storage

    embedded = spec_from_dict(base_space(), source="space.yaml")
    check_storage(embedded, 1, "auto")
    with pytest.raises(UsageError, match="has 3 nodes"):
        check_storage(embedded, 3, "auto")
    doc = base_space()
    doc["study"]["storage"] = "postgresql://user@db/hpo"
    check_storage(spec_from_dict(doc, source="space.yaml"), 3, "auto")
