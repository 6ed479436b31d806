"""Fixtures of the error tests: paths made really read-only or full (the one-line error check,
``one_line_error``, is in tests/conftest.py).

Tests run as root, which ignores permission bits (chmod 555 changes nothing for it), so a
read-only path is a read-only bind mount and a full disk is a small tmpfs filled up. Both need
``mount`` (root with CAP_SYS_ADMIN); where it is refused the test is skipped with that reason, and
the simulated cases in test_preflight.py (a file where a folder is expected) still run.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def _mount(*args: str | Path) -> bool:
    return subprocess.run(["mount", *map(str, args)], capture_output=True).returncode == 0


@pytest.fixture
def mounts() -> Iterator[list[Path]]:
    """Paths mounted by the test, unmounted afterwards (last first)."""
    mounted: list[Path] = []
    yield mounted
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture
def read_only(mounts: list[Path]) -> Callable[[Path], None]:
    """``read_only(path)``: bind-mounts an existing file or folder read-only onto itself."""

    def make(path: Path) -> None:
        if not _mount("--bind", path, path):
            pytest.skip("cannot bind-mount here (needs root with CAP_SYS_ADMIN)")
        mounts.append(path)
        assert _mount("-o", "remount,ro,bind", path), f"remounting {path} read-only failed"

    return make


@pytest.fixture
def full_disk(mounts: list[Path]) -> Callable[[Path], None]:
    """``full_disk(folder)``: mounts a 64 KiB tmpfs on ``folder`` and fills it to the last byte."""

    def make(folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        if not _mount("-t", "tmpfs", "-o", "size=64k", "tmpfs", folder):
            pytest.skip("cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN)")
        mounts.append(folder)
        try:
            with open(folder / "filler", "wb") as f:
                while True:
                    f.write(b"\0" * 4096)
                    f.flush()
        except OSError:
            pass  # ENOSPC: full

    return make
