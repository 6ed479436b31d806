"""Shared fixtures: a scratch folder per test, space files, a plain-Python objective, the CLI,
and a check that the session leaves no process running."""

from __future__ import annotations

import os
import signal
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from _helpers import OBJECTIVES_PY, ancestors, marked_processes

# Every process the tests start inherits this variable (also those that escape into sessions of
# their own, which a walk of the process tree would miss); at the end none may still run.
SESSION_MARKER = "HPO_TEST_SESSION"
LEAK_GRACE_S = float(os.environ.get("HPO_TEST_LEAK_GRACE_S", "10"))  # processes that are still exiting


def pytest_configure(config: pytest.Config) -> None:
    os.environ[SESSION_MARKER] = uuid.uuid4().hex  # an inner pytest gets its own


# The two longest tests (about a minute and half a minute on 2 cores), whose files go first of all.
LONGEST = ("package/test_wheel_smoke.py", "peer/test_optuna_storage_suite.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The longest tests' files first, then the other files holding long (``slow``) tests, then the
    rest, each file's tests together and in order: in parallel runs a long test started last kept
    one process busy while the others had finished."""
    long_files = {item.path for item in items if item.get_closest_marker("slow")}

    def rank(item: pytest.Item) -> int:
        if item.path.as_posix().endswith(LONGEST):
            return 0
        return 1 if item.path in long_files else 2

    items.sort(key=rank)  # stable: the order within each rank stays


@pytest.fixture(scope="session", autouse=True)
def no_process_left_running():
    """Fails the session when a process started during it still runs at its end (then kills it).

    Set up before, so torn down after, the session's own servers (PostgreSQL, Chromium).
    """
    yield
    leaked = left_running(os.environ[SESSION_MARKER], LEAK_GRACE_S)
    for pid in leaked:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if leaked:
        lines = "\n".join(f"  pid {pid}: {cmd}" for pid, cmd in sorted(leaked.items()))
        pytest.fail(f"{len(leaked)} process(es) started by this test session still ran at its end "
                    f"(killed now):\n{lines}", pytrace=False)


def left_running(marker: str, grace_s: float) -> dict[int, str]:
    """The processes marked with this session's ``marker`` still alive after ``grace_s``, but this
    process and those above it."""
    mine = ancestors(os.getpid())
    deadline = time.monotonic() + grace_s
    while True:
        leaked = {pid: cmd for pid, cmd in marked_processes(SESSION_MARKER, marker).items() if pid not in mine}
        if not leaked or time.monotonic() > deadline:
            return leaked
        time.sleep(0.2)

@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scratch folder as the current directory, holding ``objs.py`` (plain-Python objectives)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "objs.py").write_text(OBJECTIVES_PY)
    return tmp_path


@pytest.fixture
def write_space(workdir: Path):
    """Writes a space document (dict or YAML text) to ``<workdir>/<name>.yaml`` and returns the path."""

    def write(doc: dict[str, Any] | str, name: str = "space") -> Path:
        path = workdir / f"{name}.yaml"
        text = textwrap.dedent(doc) if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False)
        path.write_text(text)
        return path

    return write


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """Runs ``hpo ARGS`` in this process; returns (exit code, stdout, stderr)."""
    from hpo.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run




def _one_line_error(result: tuple[int, str, str], *fragments: str) -> str:
    code, out, err = result
    assert "Traceback" not in out + err
    assert code == 2, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.fixture
def one_line_error() -> Callable[..., str]:
    """``one_line_error(cli(...), *fragments)``: asserts exit 2 and a single stderr line holding each fragment."""
    return _one_line_error


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server for this test session; yields a function giving a fresh database URL."""
    import itertools

    from _helpers import start_postgres

    url, stop = start_postgres()
    counter = itertools.count()

    def new_database() -> str:
        name = f"db{next(counter)}"
        base = url.rsplit("/", 1)[0]
        import sqlalchemy

        engine = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sqlalchemy.pool.NullPool)
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
        return f"{base}/{name}"

    yield new_database
    stop()


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium (Debian's) for the whole session, driven by Playwright."""
    from playwright.sync_api import sync_playwright

    from _helpers import CHROMIUM, CHROMIUM_ARGS

    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: run `bash scripts/system-deps.sh` (or set HPO_CHROMIUM)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
