"""The lifeline pipe: a child learns of its parent's death; its own children never hold the pipe."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from _helpers import pid_alive, wait_until

from hpo._lifeline import ENV, Lifeline

# A child that reports its parent's death in a file, after checking what its own child inherits.
CHILD = textwrap.dedent("""
    import os, subprocess, sys, time
    from hpo._lifeline import ENV, watch_parent

    out = sys.argv[1]
    fd = int(os.environ[ENV])
    assert watch_parent(lambda: (open(out, "a").write("parent gone\\n"), os._exit(0)))
    grandchild = subprocess.run(
        [sys.executable, "-c", f"import os, sys; print(os.environ.get({ENV!r}), os.path.exists('/proc/self/fd/{fd}'))"],
        capture_output=True, text=True, close_fds=False)  # even without close_fds: the fd is close-on-exec
    open(out, "a").write("grandchild sees: " + grandchild.stdout)
    time.sleep(60)
""")


def test_a_child_notices_when_the_lifeline_closes(tmp_path):
    out = tmp_path / "child.txt"
    lifeline = Lifeline()
    try:
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(out)], **lifeline.popen_kwargs(os.environ))
        wait_until(lambda: out.exists() and "grandchild sees" in out.read_text(), timeout=30)
        assert out.read_text() == "grandchild sees: None False\n"
        assert pid_alive(child.pid)
    finally:
        lifeline.close()  # what the kernel does when the parent dies
    assert child.wait(15) == 0
    assert out.read_text().endswith("parent gone\n")


def test_without_a_lifeline_nothing_is_watched(monkeypatch):
    from hpo._lifeline import watch_parent

    monkeypatch.delenv(ENV, raising=False)
    assert watch_parent(lambda: None) is False
    monkeypatch.setenv(ENV, "987")  # a number that is no open pipe here (a grandchild's copy)
    assert watch_parent(lambda: None) is False
    assert ENV not in os.environ
