"""Shared fixtures: a scratch folder per test, space files, a plain-Python objective, the CLI."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from _helpers import OBJECTIVES_PY

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
