"""Assemble the self-contained HTML page: header + one ``<section class="panel">`` per panel.

plotly.js is embedded exactly once, inline in ``<head>``; every figure is written with
``include_plotlyjs=False``. No network access is needed to view the page.
"""

from __future__ import annotations

import datetime as _dt
import html
import logging
import math
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import plotly
import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from . import _data, _figures
from ._figures import PanelUnavailable

log = logging.getLogger(__name__)

PLOTLY_CONFIG = {"responsive": True, "displaylogo": False}


@dataclass
class Panel:
    name: str
    title: str
    description: str = ""
    figures: list[go.Figure] = field(default_factory=list)
    unavailable: str | None = None
    extra_html: str = ""
    wide: bool = False


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _fmt_value(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return str(v)
        return f"{v:.6g}"
    return str(v)


def _panel(name: str, title: str, desc: str, build: Callable[[], Any], *, wide: bool = False,
           extra: Callable[[], str] | None = None) -> Panel:
    p = Panel(name=name, title=title, description=desc, wide=wide)
    try:
        if extra is not None:
            p.extra_html = extra()
    except Exception as exc:  # never let one panel break the report
        log.warning("dashboard panel %s: summary failed: %s", name, exc, exc_info=True)
    try:
        out = build()
        p.figures = list(out) if isinstance(out, (list, tuple)) else [out]
    except PanelUnavailable as exc:
        p.unavailable = str(exc)
    except Exception as exc:
        log.warning("dashboard panel %s failed: %s", name, exc, exc_info=True)
        p.unavailable = f"could not draw this panel: {type(exc).__name__}: {exc}"
    return p


# --------------------------------------------------------------------------------------------
# panels
# --------------------------------------------------------------------------------------------


def _savings_html(sav: _data.PruningSavings) -> str:
    if sav.max_epochs is None:
        return ""
    src = {"configured": "configured", "observed": "largest number of epochs observed",
           "none": "unknown"}[sav.max_epochs_source]
    cards = [
        ("epochs trained", f"{sav.epochs_trained:,}", "stat-epochs-trained"),
        ("without pruning", f"{sav.epochs_without_pruning:,}", "stat-epochs-without-pruning"),
        ("epochs saved", f"{sav.epochs_saved:,} ({sav.saved_fraction:.0%})", "stat-epochs-saved"),
        ("pruned trials", f"{sav.n_pruned} of {sav.n_finished}", "stat-pruned"),
        ("max epochs", f"{sav.max_epochs} ({src})", "stat-max-epochs"),
    ]
    return '<div class="stats">' + "".join(
        f'<div class="stat" id="{i}"><div class="stat-label">{_e(l)}</div>'
        f'<div class="stat-value">{_e(v)}</div></div>' for l, v, i in cards) + "</div>"


def _maximize(study: optuna.Study) -> bool:
    return study.directions[0] == optuna.study.StudyDirection.MAXIMIZE


def _reach_html(reach: pd.DataFrame, metric: str) -> str:
    rows = [[_fmt_value(r.target), "never" if math.isnan(r.cum_epochs) else f"{r.cum_epochs:g}",
             "-" if math.isnan(r.cum_epochs) else f"{r.cum_epochs_without_pruning:g}",
             "-" if math.isnan(r.number) else f"{r.number:g}"] for r in reach.itertuples()]
    return _table([f"best {metric}", "epochs trained", "without pruning", "after trial"], rows, id_="reach-table")


def build_panels(study: optuna.Study, info: Mapping[str, Any] | None = None) -> list[Panel]:
    names = _data.objective_names(study, info)
    multi = len(study.directions) > 1
    first = f" (objective: {names[0]})" if multi else ""
    metric = names[0]
    # Optuna's trial.report is single-objective; what a multi-objective driver reports is its own.
    curve_metric = "intermediate value" if multi else metric

    imp: _data.ImportanceResult
    try:
        imp = _data.param_importances(study, info=info)
    except Exception as exc:  # param_importances already guards; belt and braces
        imp = _data.ImportanceResult(pd.DataFrame(columns=["objective", "param", "importance"]),
                                     f"{type(exc).__name__}: {exc}")

    def slice_params() -> list[str]:
        ranked = imp.ranked_params(names[0]) if imp.ok else []
        if not ranked:
            seen: dict[str, None] = {}
            for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
                for p in t.params:
                    seen.setdefault(p, None)
            ranked = sorted(seen)
        return ranked

    sav_holder: dict[str, _data.PruningSavings] = {}

    def savings() -> _data.PruningSavings:
        if "s" not in sav_holder:
            sav_holder["s"] = _data.pruning_savings(study, info=info)
        return sav_holder["s"]

    def reach() -> pd.DataFrame:
        curve = savings().curve
        return _data.epochs_to_reach(curve, _data.reach_targets(curve), maximize=not multi and _maximize(study))

    panels: list[Panel] = []
    if multi:
        panels.append(_panel(
            "pareto", "Pareto front",
            "Completed trials in objective space; the non-dominated ones form the Pareto front.",
            lambda: _figures.pareto_figure(study, names), wide=True))
    panels += [
        _panel("history", "Optimisation history",
               "Objective value of every completed trial and the best value so far."
               + (" One row per objective." if multi else ""),
               lambda: _figures.history_figure(study, names), wide=True),
        _panel("learning-curves", "Learning curves",
               f"Intermediate values ({curve_metric}) reported each epoch by every trial. "
               "Pruned trials are grey and dashed, ending in ✕ where the pruner stopped them.",
               lambda: _figures.learning_curves_figure(study, curve_metric), wide=True),
        *([_panel("fold-curves", "Per-fold learning curves",
                  f"Cross-validated trials (cv_folds): {metric} on each fold's held-out data per epoch, one "
                  "colour per fold; the best trial's folds are thick.",
                  lambda: _figures.fold_curves_figure(study, metric), wide=True)]
          if not _data.fold_curves(study).empty else []),
        _panel("savings", "Pruning savings",
               "Epochs actually trained versus a search without pruning (every finished trial "
               "trained to max_epochs), and the best value reached for each cumulative epoch "
               "budget (trials in completion order).",
               lambda: _figures.savings_figure(study, savings(), metric), wide=False,
               extra=lambda: _savings_html(savings())),
    ]
    if not multi:
        panels.append(_panel(
            "epochs-to-reach", "Epochs to reach",
            "The best value against the epochs trained so far, and when it first reached 50%, 90%, 99% "
            "and 100% of the way from the first completed trial's value to the final best (with the "
            "epochs the same trials would have trained without pruning).",
            lambda: _figures.epochs_to_reach_figure(study, savings(), reach(), metric),
            extra=lambda: _reach_html(reach(), metric)))
    panels += [
        _panel("importances", "Hyperparameter importances",
               "Optuna's fANOVA importance of each hyperparameter for the objective"
               + ("s." if multi else "."),
               lambda: _figures.importances_figure(imp)),
        _panel("parallel", "Parallel coordinates" + first,
               "Each line is a completed trial, coloured by its objective value.",
               lambda: _figures.parallel_figure(study, names), wide=True),
        _panel("slice", "Slice plots" + first,
               f"Objective against each of the top {_figures.MAX_SLICE_PARAMS} hyperparameters "
               "(by importance when available).",
               lambda: _figures.slice_figure(study, names, slice_params()), wide=True),
        _panel("timeline", "Timeline by worker",
               "When each trial ran, on which worker (host:pid), and how long trials took.",
               lambda: _figures.timeline_figures(study), wide=True),
    ]
    return panels


# --------------------------------------------------------------------------------------------
# header
# --------------------------------------------------------------------------------------------


def _table(headers: list[str], rows: list[list[Any]], *, id_: str = "", cls: str = "") -> str:
    idattr = f' id="{_e(id_)}"' if id_ else ""
    clsattr = f' class="{_e(cls)}"' if cls else ""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(_fmt_value(c))}</td>" for c in r) + "</tr>"
                   for r in rows)
    return f"<table{idattr}{clsattr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _header(study: optuna.Study, s: _data.StudySummary, info: Mapping[str, Any] | None) -> str:
    meta: list[tuple[str, Any]] = [
        ("direction", ", ".join(f"{n}: {d}" for n, d in zip(s.objective_names, s.directions))),
        ("sampler", s.sampler), ("pruner", s.pruner), ("objective", s.objective),
        ("metrics", ", ".join(s.objective_names)), ("max epochs", s.max_epochs),
        ("space file", s.space_file),
    ]
    meta += [(k.replace("_", " "), v) for k, v in s.extras.items()]
    meta_html = "".join(
        f'<div class="meta-item" data-key="{_e(k)}"><dt>{_e(k)}</dt><dd>{_e(v)}</dd></div>'
        for k, v in meta if v not in (None, ""))
    counts = "".join(
        f'<span class="count state-{st.lower()}" id="count-{st}" data-state="{st}">'
        f'{st} <b>{n}</b></span>' for st, n in s.state_counts.items())
    counts += f'<span class="count total" id="count-TOTAL">TOTAL <b>{s.n_trials}</b></span>'

    notice = ""
    if s.n_trials == 0:
        notice = ('<p class="notice" id="notice-empty">This study has no trials yet — there is '
                  'nothing to plot.</p>')
    elif s.n_complete == 0:
        notice = ('<p class="notice" id="notice-no-complete">No trial has completed yet ('
                  + ", ".join(f"{n} {st.lower()}" for st, n in s.state_counts.items() if n)
                  + "); panels that need completed trials say so below.</p>")

    best = ""
    if not s.is_multi_objective and s.best_value is not None:
        rows = [[k, v] for k, v in s.best_params.items()]
        extra = [[k, s.best_user_attrs[k]] for k in ("mlflow_run_id", "checkpoint", "worker")
                 if s.best_user_attrs.get(k) is not None]
        best = (f'<div class="best" id="best"><h2>Best trial #{s.best_trial_number}: '
                f'{_e(s.objective_names[0])} = <span id="best-value">'
                f'{_e(_fmt_value(s.best_value))}</span></h2>'
                + _table(["parameter", "value"], rows, id_="best-config", cls="kv")
                + (_table(["attribute", "value"], extra, cls="kv small") if extra else "")
                + "</div>")
    elif s.is_multi_objective:
        front = _data.pareto_front(study, info)
        rows = [[r["number"], *[r[n] for n in s.objective_names],
                 ", ".join(f"{k}={_fmt_value(v)}" for k, v in r["params"].items())]
                for _, r in front.head(50).iterrows()]
        more = (f"<p class='small'>… and {len(front) - 50} more.</p>" if len(front) > 50 else "")
        best = (f'<div class="best" id="best"><h2>Pareto set: <span id="pareto-size">'
                f'{s.pareto_size}</span> trial{"s" if s.pareto_size != 1 else ""}</h2>'
                + (_table(["trial", *s.objective_names, "params"], rows, id_="pareto-set")
                   if rows else "") + more + "</div>")

    fails = _data.failures(study)
    fail_html = ""
    if not fails.empty:
        rows = [[r.number, r.worker, r.epochs, r.fail_reason] for r in fails.head(100).itertuples()]
        fail_html = (f'<details class="failures" id="failures"><summary>{len(fails)} failed '
                     f'trial{"s" if len(fails) != 1 else ""}</summary>'
                     + _table(["trial", "worker", "epochs", "reason"], rows) + "</details>")

    return (f'<header id="report-header"><h1>Study <span id="study-name">{_e(s.study_name)}'
            f'</span></h1><dl class="meta">{meta_html}</dl>'
            f'<div class="counts" id="state-counts">{counts}</div>{notice}{best}{fail_html}'
            "</header>")


# --------------------------------------------------------------------------------------------
# page
# --------------------------------------------------------------------------------------------

CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;
 background:#f4f6f8;color:#1d2329}
header{background:#fff;padding:18px 28px 14px;border-bottom:1px solid #dde3e8}
h1{margin:0 0 8px;font-size:22px}h1 span{color:#1f4e79}
h2{font-size:17px;margin:0 0 6px}
dl.meta{display:flex;flex-wrap:wrap;gap:6px 22px;margin:0 0 10px;font-size:13px}
.meta-item{display:flex;gap:6px}dt{color:#65737e}dd{margin:0;font-weight:500}
.counts{display:flex;flex-wrap:wrap;gap:8px;margin:6px 0 10px}
.count{font-size:12px;padding:3px 10px;border-radius:12px;background:#eef1f4;color:#333}
.count b{margin-left:3px}
.state-complete{background:#dbe9f6;color:#174a7c}.state-pruned{background:#e8e8e8;color:#444}
.state-fail{background:#f8dcdc;color:#8c1c1c}.state-running{background:#fde8d2;color:#8a4b0b}
.state-waiting{background:#f1f2cf;color:#5d5e10}.total{background:#1f4e79;color:#fff}
.notice{background:#fff6d6;border:1px solid #f0d67a;padding:8px 12px;border-radius:6px;
 font-size:14px}
.best{margin-top:8px}
table{border-collapse:collapse;font-size:13px;margin:4px 12px 4px 0;display:inline-table;
 vertical-align:top}
th,td{border:1px solid #dde3e8;padding:3px 9px;text-align:left}th{background:#f0f3f6}
.small{font-size:12px;color:#555}
details.failures{margin-top:8px;font-size:13px}
main{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:16px;
 padding:16px 20px}
.panel{background:#fff;border:1px solid #dde3e8;border-radius:8px;padding:14px 16px;min-width:0}
.panel.wide{grid-column:1/-1}
.panel-desc{margin:0 0 8px;font-size:13px;color:#5a6872}
.unavailable{padding:28px 12px;text-align:center;color:#6b6b6b;background:#fafbfc;
 border:1px dashed #cfd6dc;border-radius:6px;font-size:14px}
.stats{display:flex;flex-wrap:wrap;gap:10px;margin:4px 0 8px}
.stat{background:#f4f7fa;border-radius:6px;padding:6px 12px;min-width:110px}
.stat-label{font-size:11px;color:#65737e;text-transform:uppercase;letter-spacing:.03em}
.stat-value{font-size:16px;font-weight:600}
footer{font-size:12px;color:#7a8790;padding:4px 28px 20px}
"""


def _figure_html(fig: go.Figure, div_id: str) -> str:
    return pio.to_html(fig, include_plotlyjs=False, full_html=False, config=PLOTLY_CONFIG,
                       div_id=div_id, default_width="100%")


def build_html(study: optuna.Study, info: Mapping[str, Any] | None = None) -> str:
    """The whole report as one HTML string (see :func:`build_report`)."""
    info = dict(info or {})
    summary = _data.study_summary(study, info)
    panels = build_panels(study, info)

    sections = []
    n_figs = 0
    for p in panels:
        body = [f"<h2>{_e(p.title)}</h2>"]
        if p.description:
            body.append(f'<p class="panel-desc">{_e(p.description)}</p>')
        body.append(p.extra_html)
        if p.unavailable is not None:
            body.append(f'<p class="unavailable">{_e(p.unavailable)}</p>')
        for i, fig in enumerate(p.figures):
            body.append(_figure_html(fig, f"fig-{p.name}-{i}"))
            n_figs += 1
        cls = "panel wide" if p.wide else "panel"
        state = "unavailable" if p.unavailable is not None else "ok"
        sections.append(f'<section class="{cls}" id="panel-{_e(p.name)}" data-state="{state}">'
                        + "".join(body) + "</section>")

    plotlyjs = ""
    if n_figs:
        # Embedded once; figures use include_plotlyjs=False.
        plotlyjs = ('<script type="text/javascript">window.PlotlyConfig = {MathJaxConfig: '
                    "'local'};</script>\n<script type=\"text/javascript\">"
                    + get_plotlyjs() + "</script>")
    generated = _dt.datetime.now().isoformat(timespec="seconds")
    footer = (f"<footer>Generated {generated} · optuna {optuna.__version__} · "
              f"plotly {plotly.__version__} · {summary.n_trials} trials</footer>")
    title = f"hpo report — {summary.study_name}"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_e(title)}</title><style>{CSS}</style>{plotlyjs}</head><body>"
            + _header(study, summary, info)
            + '<main id="panels">' + "".join(sections) + "</main>" + footer
            + "</body></html>\n")


def figure_page(title: str, sections: Sequence[tuple[str, str, go.Figure]]) -> str:
    """A self-contained page of ``(heading, markdown-table text, figure)`` sections (benchmarks use it)."""
    body = "".join(
        f'<section class="panel wide"><h2>{_e(heading)}</h2><pre>{_e(text)}</pre>'
        + _figure_html(fig, f"fig-{i}") + "</section>" for i, (heading, text, fig) in enumerate(sections))
    plotlyjs = f'<script type="text/javascript">{get_plotlyjs()}</script>'
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(title)}</title><style>{CSS}</style>{plotlyjs}</head><body>"
            f'<main id="panels">{body}</main></body></html>\n')


def build_report(study: optuna.Study, path: str | os.PathLike[str], *,
                 info: Mapping[str, Any] | None = None) -> Path:
    """Write the dashboard for ``study`` to ``path`` (one self-contained, offline HTML file).

    ``info`` adds header details and overrides what the study's user attrs say: ``study_name``,
    ``sampler``, ``pruner``, ``objective``, ``metrics`` (objective names), ``max_epochs`` (used
    for the pruning savings), ``space_file`` and ``mlflow_run_ids`` (trial number -> MLflow run id,
    for trials whose user attrs do not hold ``mlflow_run_id``); other keys are shown in the header
    as given.
    Parent directories are created; the file is written atomically. Returns the path.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = build_html(study, info)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return out
