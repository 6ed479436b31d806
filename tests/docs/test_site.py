"""docs/ builds as a site without a warning, links only inside the repository, and the public
API's docstring examples run as written."""

from __future__ import annotations

import doctest
import inspect
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

# Markdown links and images: [text](target) and ![alt](target); reference definitions: [id]: target.
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)|^\s*\[[^\]]+\]:\s*(\S+)", re.M)


def test_site_builds_strict_without_warnings(tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    # --strict turns warnings into a failure; a WARNING line that slipped through is one too.
    assert "WARNING" not in output, output
    assert (tmp_path / "site" / "api" / "index.html").is_file()
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    for name in ("hpo._export.load_best", "hpo._export.export_best", "hpo._context.TrialContext", "objectives.fit"):
        assert f'id="{name}"' in api, f"{name} is missing from the API page"


def _links(text: str) -> list[str]:
    return [a or b for a, b in _LINK.findall(text)]


def _outside(page: Path, target: str) -> str | None:
    """Why ``target`` (a link on ``page``) leaves the repository, or None."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("//"):
        return "links to another site"
    path = target.split("#", 1)[0]
    if not path:
        return None
    resolved = (page.parent / path).resolve()
    if not resolved.is_relative_to(ROOT):
        return "escapes the repository"
    return None


def test_links_finder_sees_what_it_must_refuse():
    page = DOCS / "index.md"
    found = _links("[a](https://x.org) ![b](../../../etc/passwd) [ok](cli.md#hpo-run)\n[ref]: http://y\n")
    assert found == ["https://x.org", "../../../etc/passwd", "cli.md#hpo-run", "http://y"]
    assert [_outside(page, t) is not None for t in found] == [True, True, False, True]


def test_pages_link_only_inside_the_repository():
    pages = sorted(DOCS.glob("**/*.md"))
    assert len(pages) >= 7
    bad = [f"{p.relative_to(ROOT)}: {t} ({why})" for p in pages for t in _links(p.read_text())
           if (why := _outside(p, t))]
    assert not bad, "\n".join(bad)
    # Bare addresses in the text count as links too (a reader would follow them).
    bare = [f"{p.relative_to(ROOT)}: {m}" for p in pages for m in re.findall(r"https?://[^\s)`]+", p.read_text())
            if not re.match(r"https?://(127\.0\.0\.1|localhost|host|db)[:/]", m)]
    assert not bare, "\n".join(bare)


# -- doctests of the public API ------------------------------------------------------------------

DEMO_SPACE = """\
study: {name: demo, direction: minimize, metric: loss, n_trials: 3, seed: 0}
sampler: {name: grid}
pruner: {name: none}
objective: {name: objs.py:quadratic}
space:
  x: {type: float, values: [1.0, 2.0, 3.0]}
mlflow: {enabled: false}
"""


def _run_demo_study(tmp: Path):
    """Runs an objective as ``hpo run`` does (a TrialContext per trial), on x = 1, 2, 3."""

    def run(objective: Any, xs: tuple[float, ...] = (1.0, 2.0, 3.0)) -> list[Any]:
        import optuna

        from hpo._context import TrialContext
        from hpo.tracking._base import Tracker

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction="minimize")
        for x in xs:
            study.enqueue_trial({"x": x})

        def wrapped(trial: Any) -> float:
            params = {"x": trial.suggest_float("x", -5.0, 5.0)}
            ctx = TrialContext(trial, params, dict(params), ("loss",), 0, tmp, tmp, Tracker())
            return objective(params, ctx)["loss"]

        study.optimize(wrapped, n_trials=len(xs))
        return study.trials

    return run


@pytest.fixture
def demo_study(workdir: Path, cli: Any) -> Path:
    """The study ``demo`` the examples read: ``hpo run demo.yaml`` in the current folder."""
    (workdir / "demo.yaml").write_text(DEMO_SPACE)
    code, out, err = cli("run", "demo.yaml")
    assert code == 0, out + err
    return workdir


def _public_objects() -> dict[str, Any]:
    import hpo
    from hpo._errors import SpecError
    from hpo._lock import FileLock

    return {"hpo": hpo, "hpo.load_best": hpo.load_best, "hpo.export_best": hpo.export_best,
            "hpo.TrialContext": hpo.TrialContext, "hpo.SpecError": SpecError, "hpo.FileLock": FileLock}


@pytest.mark.parametrize("name", list(_public_objects()))
def test_docstring_examples_run(name: str, demo_study: Path):
    obj = _public_objects()[name]
    module = obj if inspect.ismodule(obj) else sys.modules[obj.__module__]
    globs = {**vars(module), "run_demo_study": _run_demo_study(demo_study)}
    tests = doctest.DocTestFinder(recurse=False).find(obj, name, module=module, globs=globs)
    examples = sum(len(t.examples) for t in tests)
    assert examples >= 1, f"{name} has no example"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    out: list[str] = []
    for test in tests:
        runner.run(test, out=out.append)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, "".join(out)
    assert result.attempted >= 1, f"{name}: every example is skipped"

