"""The suite's session-end leak check (tests/conftest.py) fails a session that leaves a process running."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from _helpers import pid_alive

TESTS = Path(__file__).resolve().parents[1]

LEAKY = textwrap.dedent("""
    import os, subprocess

    def test_leaks():
        plain = subprocess.Popen(["sleep", "61"])
        escaped = subprocess.Popen(["sleep", "62"], start_new_session=True)  # not a descendant any more
        with open(os.environ["LEAK_PIDS"], "w") as f:
            f.write(f"{plain.pid} {escaped.pid}")
""")

TIDY = textwrap.dedent("""
    import subprocess

    def test_tidy():
        proc = subprocess.Popen(["sleep", "0.2"], start_new_session=True)
        proc.wait()
""")


def run_inner_session(tmp_path: Path, test_source: str) -> subprocess.CompletedProcess[str]:
    """Runs pytest on one test file with the suite's conftest in ``tmp_path``."""
    shutil.copy(TESTS / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_inner.py").write_text(test_source)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS.parent), str(TESTS)]),
           "HPO_TEST_LEAK_GRACE_S": "1", "LEAK_PIDS": str(tmp_path / "pids")}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_inner.py"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_a_session_that_leaks_a_process_fails_and_names_it(tmp_path):
    result = run_inner_session(tmp_path, LEAKY)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "still ran at its end" in out and "sleep 61" in out and "sleep 62" in out, out
    pids = [int(p) for p in (tmp_path / "pids").read_text().split()]
    assert not any(pid_alive(p) for p in pids), "the check kills what it reports"


def test_a_tidy_session_passes(tmp_path):
    result = run_inner_session(tmp_path, TIDY)
    assert result.returncode == 0, result.stdout + result.stderr
