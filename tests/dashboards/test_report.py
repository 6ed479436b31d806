"""The HTML report: self-contained, renders in headless Chromium without JavaScript errors, every
panel present and drawn, header filled in; degenerate studies still give a page."""

from __future__ import annotations

import re
from pathlib import Path

import optuna
import optuna.importance  # the module itself: optuna.importance is a lazy proxy until first used
import pytest
from optuna.trial import TrialState

import dashboards
from dashboards import PANELS_MULTI, PANELS_SINGLE, build_html, build_report

PLOTLYJS_BANNER = re.compile(r"\* plotly\.js v\d")
REMOTE_SCRIPT = re.compile(r"<script[^>]*\bsrc\s*=\s*[\"']?\s*(https?:)?//", re.I)
REMOTE_LINK = re.compile(r"<link[^>]*\bhref\s*=\s*[\"']?\s*(https?:)?//", re.I)

INFO = {"sampler": {"name": "tpe", "options": {"seed": 0}}, "pruner": "hyperband",
        "objective": "image_classifier", "metrics": ["val_acc"], "max_epochs": 4,
        "space_file": "search_spaces/digits_cnn.yaml"}


def assert_self_contained(text: str) -> None:
    assert not REMOTE_SCRIPT.search(text), "remote <script src> in the report"
    assert not REMOTE_LINK.search(text), "remote <link href> in the report"
    assert "cdn.plot.ly" not in re.sub(r"<script[^>]*>.*?</script>", "", text, flags=re.S)


def render(browser, path: Path, shot: Path):
    """Open the file offline; return (page, context, errors, remote requests)."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 900}, offline=True)
    page = ctx.new_page()
    errors: list[str] = []
    remote: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error"
            else None)
    page.on("request", lambda r: remote.append(r.url)
            if not r.url.startswith(("file:", "data:", "blob:", "about:")) else None)
    page.goto(path.resolve().as_uri(), wait_until="load")
    page.wait_for_timeout(300)  # let plotly finish any deferred layout work
    page.screenshot(path=str(shot), full_page=True)
    assert shot.exists() and shot.stat().st_size > 10_000
    return page, ctx, errors, remote


def panel_states(page) -> dict[str, str]:
    return page.evaluate("""() => Object.fromEntries(
        [...document.querySelectorAll('section.panel')].map(s => [s.id, s.dataset.state]))""")


def drawn(page, name: str) -> int:
    return page.locator(f"section.panel#panel-{name} .plotly .main-svg").count()


# --------------------------------------------------------------------------------------------


@pytest.mark.slow  # browser, ~10 s
def test_single_objective_report(browser, single_study, tmp_path):
    out = build_report(single_study, tmp_path / "nested" / "report.html", info=INFO)
    assert out == tmp_path / "nested" / "report.html" and out.is_file()
    text = out.read_text(encoding="utf-8")
    assert_self_contained(text)
    assert len(PLOTLYJS_BANNER.findall(text)) == 1, "plotly.js must be embedded exactly once"

    page, ctx, errors, remote = render(browser, out, tmp_path / "single.png")
    try:
        assert errors == []
        assert remote == []
        assert page.evaluate("typeof window.Plotly") == "object"
        states = panel_states(page)
        assert list(states) == [f"panel-{n}" for n in PANELS_SINGLE]
        for name in PANELS_SINGLE:
            assert states[f"panel-{name}"] == "ok", name
            assert page.locator(f"#panel-{name} h2").count() == 1
            assert drawn(page, name) >= 1, f"panel {name} has no rendered plot"
        assert page.locator("#panel-pareto").count() == 0

        # header
        assert page.inner_text("#study-name") == "synthetic-single"
        header = page.inner_text("#report-header")
        assert "tpe (seed=0)" in header and "hyperband" in header
        assert "image_classifier" in header and "digits_cnn.yaml" in header
        counts = {s: page.inner_text(f"#count-{s}") for s in
                  ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING", "TOTAL")}
        assert counts == {"COMPLETE": "COMPLETE 3", "PRUNED": "PRUNED 2", "FAIL": "FAIL 1",
                          "RUNNING": "RUNNING 1", "WAITING": "WAITING 1", "TOTAL": "TOTAL 8"}
        assert page.inner_text("#best-value") == "0.8"
        best_cfg = page.inner_text("#best-config")
        assert "width" in best_cfg and "128" in best_cfg and "0.005" in best_cfg
        assert "1 failed trial" in page.inner_text("#failures summary")
        assert "CUDA out of memory" in text

        # learning curves: pruned trials have their own legend entry
        legend = page.locator("#panel-learning-curves .legend").first.text_content()
        assert "pruned trials" in legend and "complete trials" in legend
        # pruning savings numbers shown
        assert page.inner_text("#stat-epochs-trained").endswith("17")
        assert page.inner_text("#stat-epochs-without-pruning").endswith("22")
        assert "5 (23%)" in page.inner_text("#stat-epochs-saved")
        # timeline rows are the workers
        tl = page.locator("#panel-timeline").text_content()
        assert "a:1" in tl and "b:2" in tl and "unknown" in tl
    finally:
        ctx.close()


@pytest.mark.slow  # browser, ~7 s
def test_multi_objective_report(browser, multi_study, tmp_path):
    out = build_report(multi_study, tmp_path / "multi.html",
                       info={"study_name": "mo-study", "sampler": "nsga2"})
    text = out.read_text(encoding="utf-8")
    assert_self_contained(text)
    assert len(PLOTLYJS_BANNER.findall(text)) == 1

    page, ctx, errors, remote = render(browser, out, tmp_path / "multi.png")
    try:
        assert errors == [] and remote == []
        states = panel_states(page)
        assert list(states) == [f"panel-{n}" for n in PANELS_MULTI]
        for name in PANELS_MULTI:
            assert states[f"panel-{name}"] == "ok", name
            assert drawn(page, name) >= 1, f"panel {name} has no rendered plot"
        assert page.inner_text("#study-name") == "mo-study"
        assert page.inner_text("#pareto-size") == "4"
        pareto_rows = page.locator("#pareto-set tbody tr")
        assert pareto_rows.count() == 4
        assert page.inner_text("#count-COMPLETE") == "COMPLETE 6"
        assert page.locator("#best-value").count() == 0  # no single best value
        # one history subplot per objective, named by the metric names
        hist = page.locator("#panel-history").text_content()
        assert "val_loss" in hist and "val_acc" in hist
    finally:
        ctx.close()


@pytest.mark.slow  # browser
@pytest.mark.parametrize("kind", ["empty", "failed"])
def test_degenerate_studies_render_a_page(browser, kind, empty_study, failed_study, tmp_path):
    study = empty_study if kind == "empty" else failed_study
    out = build_report(study, tmp_path / f"{kind}.html")
    text = out.read_text(encoding="utf-8")
    assert_self_contained(text)
    page, ctx, errors, remote = render(browser, out, tmp_path / f"{kind}.png")
    try:
        assert errors == [] and remote == []
        states = panel_states(page)
        assert list(states) == [f"panel-{n}" for n in PANELS_SINGLE]
        assert page.inner_text("#study-name") == study.study_name
        if kind == "empty":
            assert "no trials yet" in page.inner_text("#notice-empty")
            assert page.inner_text("#count-TOTAL") == "TOTAL 0"
            assert set(states.values()) == {"unavailable"}
            assert len(PLOTLYJS_BANNER.findall(text)) == 0  # nothing to draw, no plotly.js
        else:
            assert "No trial has completed yet" in page.inner_text("#notice-no-complete")
            assert page.inner_text("#count-FAIL") == "FAIL 3"
            assert states["panel-timeline"] == "ok" and drawn(page, "timeline") >= 1
            assert states["panel-history"] == "unavailable"
            assert "error 2" in text  # fail reasons listed
        for name, state in states.items():
            if state == "unavailable":
                msg = page.inner_text(f"#{name} .unavailable")
                assert msg.strip(), name
    finally:
        ctx.close()


# --------------------------------------------------------------------------------------------
# no browser needed
# --------------------------------------------------------------------------------------------


def _sections(text: str) -> dict[str, str]:
    return dict(re.findall(r'<section class="panel[^"]*" id="panel-([\w-]+)" '
                           r'data-state="(\w+)"', text))


def test_importances_degrade_to_a_message(synth):
    s = optuna.create_study(study_name="one-complete", direction="minimize")
    synth.add(s, state=TrialState.COMPLETE, value=1.0, iv={0: 2.0, 1: 1.0},
              params=synth.p(0.01, 32), start=synth.at(0), end=synth.at(1))
    synth.add(s, state=TrialState.PRUNED, iv={0: 3.0}, params=synth.p(0.1, 64),
              start=synth.at(1), end=synth.at(2))
    text = build_html(s)
    states = _sections(text)
    assert states["importances"] == "unavailable"
    assert "needs at least 2 completed trials" in text
    assert states["history"] == "ok" and states["learning-curves"] == "ok"


def test_optuna_importance_failure_does_not_break_the_report(single_study, monkeypatch):
    def boom(*a, **k):
        raise ValueError("cannot evaluate this space")

    monkeypatch.setattr(optuna.importance, "get_param_importances", boom)
    text = build_html(single_study)
    states = _sections(text)
    assert states["importances"] == "unavailable"
    assert "cannot evaluate this space" in text
    # slices fall back to all params when importances are unavailable
    assert states["slice"] == "ok"


def test_a_crashing_panel_degrades_instead_of_raising(single_study, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("plot exploded")

    monkeypatch.setattr(dashboards._figures, "timeline_figures", boom)
    monkeypatch.setattr(optuna.visualization, "plot_parallel_coordinate", boom)
    text = build_html(single_study)
    states = _sections(text)
    assert states["timeline"] == "unavailable" and states["parallel"] == "unavailable"
    assert "plot exploded" in text
    assert states["history"] == "ok"


def test_info_overrides_and_escaping(single_study, tmp_path):
    out = build_report(single_study, tmp_path / "r.html",
                       info={"study_name": "<b>x&y</b>", "git_sha": "cafe123"})
    text = out.read_text(encoding="utf-8")
    assert "&lt;b&gt;x&amp;y&lt;/b&gt;" in text and "<b>x&y</b>" not in text
    assert "cafe123" in text
    assert "median (n_warmup_steps=1)" in text  # pruner from the study's user attrs
