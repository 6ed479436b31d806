"""Plotly figures for the dashboard, drawn from the data in :mod:`dashboards._data`.

Optuna's own plots are used where they fit (parallel coordinates, slices, Pareto front); the
optimisation history, learning curves (pruned trials distinct), importances (computed once in
``_data``), timeline by worker and pruning savings are built here.

Every builder either returns figures or raises :class:`PanelUnavailable` with a reason the page
shows instead.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence

import optuna
import pandas as pd
import plotly
import plotly.colors
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from . import _data

STATE_COLORS = {
    "COMPLETE": "#1f77b4",
    "PRUNED": "#9e9e9e",
    "FAIL": "#d62728",
    "RUNNING": "#ff7f0e",
    "WAITING": "#bcbd22",
}
BEST_COLOR = "#2ca02c"
TEMPLATE = "plotly_white"
MAX_SLICE_PARAMS = 6


class PanelUnavailable(Exception):
    """A panel cannot be drawn for this study; the message says why."""


def _style(fig: go.Figure, *, height: int = 420, title: str | None = None) -> go.Figure:
    fig.update_layout(template=TEMPLATE, height=height, margin=dict(l=60, r=20, t=50, b=50),
                      title=title, legend=dict(orientation="h", yanchor="bottom", y=1.02,
                                               xanchor="right", x=1))
    return fig


def _optuna_plot(fn, *args, **kwargs) -> go.Figure:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def _target(i: int):
    return lambda t: t.values[i]


# --------------------------------------------------------------------------------------------


def history_figure(study: optuna.Study, names: Sequence[str]) -> go.Figure:
    """Objective value per completed trial and the best-so-far step line, one row per objective."""
    n = len(study.directions)
    frames = [_data.best_so_far(study, i) for i in range(n)]
    if all(f.empty for f in frames):
        raise PanelUnavailable("no completed trials yet")
    fig = make_subplots(rows=n, cols=1, shared_xaxes=True, vertical_spacing=0.08) if n > 1 \
        else go.Figure()
    for i, (df, name) in enumerate(zip(frames, names)):
        kw = dict(row=i + 1, col=1) if n > 1 else {}
        direction = study.directions[i].name.lower()
        fig.add_trace(go.Scatter(
            x=df["number"], y=df["value"], mode="markers", name=f"{name} (trial)",
            marker=dict(color=STATE_COLORS["COMPLETE"], size=7, opacity=0.75),
            legendgroup=f"v{i}",
            hovertemplate="trial %{x}<br>" + name + " %{y:.6g}<extra></extra>"), **kw)
        fig.add_trace(go.Scatter(
            x=df["number"], y=df["best_so_far"], mode="lines", line_shape="hv",
            name=f"best so far ({direction})", line=dict(color=BEST_COLOR, width=2.5),
            legendgroup=f"b{i}",
            hovertemplate="after trial %{x}<br>best %{y:.6g}<extra></extra>"), **kw)
        if n > 1:
            fig.update_yaxes(title_text=name, row=i + 1, col=1)
    if n == 1:
        fig.update_yaxes(title_text=names[0])
    fig.update_xaxes(title_text="trial number", row=n, col=1) if n > 1 else \
        fig.update_xaxes(title_text="trial number")
    return _style(fig, height=380 if n == 1 else 260 * n)


def learning_curves_figure(study: optuna.Study, metric: str) -> go.Figure:
    """All trials' intermediate values vs step; one trace per state (so one legend entry each),
    pruned trials grey and dashed with an ✕ where they were stopped, the best trial on top."""
    df = _data.learning_curves(study)
    if df.empty:
        raise PanelUnavailable("no trial reported intermediate values (trial.report) yet")
    fig = go.Figure()
    dashes = {"COMPLETE": "solid", "PRUNED": "dash", "FAIL": "dot", "RUNNING": "solid",
              "WAITING": "solid"}
    for state in _data.STATE_ORDER:
        sub = df[df["state"] == state]
        if sub.empty:
            continue
        xs: list = []
        ys: list = []
        cd: list = []
        for number, g in sub.groupby("number", sort=True):
            xs.extend(g["step"].tolist() + [None])
            ys.extend(g["value"].tolist() + [None])
            cd.extend([number] * len(g) + [None])
        label = {"PRUNED": "pruned trials", "COMPLETE": "complete trials",
                 "FAIL": "failed trials", "RUNNING": "running trials"}.get(state, state.lower())
        fig.add_trace(go.Scatter(
            x=xs, y=ys, customdata=cd, mode="lines", name=label, legendgroup=state,
            connectgaps=False,
            line=dict(color=STATE_COLORS[state], dash=dashes[state],
                      width=1.2 if state == "PRUNED" else 1.6),
            opacity=0.6 if state == "PRUNED" else 0.85,
            hovertemplate="trial %{customdata} (" + state.lower() + ")<br>step %{x}<br>"
                          + metric + " %{y:.6g}<extra></extra>"))
    stops = df[df["pruned"] & df["last"]]
    if not stops.empty:
        fig.add_trace(go.Scatter(
            x=stops["step"], y=stops["value"], customdata=stops["number"], mode="markers",
            name="pruned here", legendgroup="PRUNED",
            marker=dict(symbol="x", size=8, color="#616161"),
            hovertemplate="trial %{customdata} pruned at step %{x}<br>" + metric
                          + " %{y:.6g}<extra></extra>"))
    best = df[df["is_best"]]
    if not best.empty:
        fig.add_trace(go.Scatter(
            x=best["step"], y=best["value"], mode="lines+markers",
            name=f"best trial #{int(best['number'].iloc[0])}",
            line=dict(color=BEST_COLOR, width=3), marker=dict(size=5),
            hovertemplate="best trial<br>step %{x}<br>" + metric + " %{y:.6g}<extra></extra>"))
    fig.update_xaxes(title_text="step (epoch)")
    fig.update_yaxes(title_text=metric)
    return _style(fig, height=440)


def fold_curves_figure(study: optuna.Study, metric: str) -> go.Figure:
    """Cross-validated trials' per-fold curves (metric vs epoch), one colour and legend entry per
    fold; the best trial's folds drawn thick on top."""
    df = _data.fold_curves(study)
    if df.empty:
        raise PanelUnavailable("no trial cross-validated (cv_folds) yet")
    fig = go.Figure()
    palette = plotly.colors.qualitative.Plotly
    for fold, sub in df.groupby("fold", sort=True):
        color = palette[int(fold) % len(palette)]
        for best in (False, True):
            part = sub[sub["is_best"] == best]
            if part.empty:
                continue
            xs, ys, cd = [], [], []
            for number, g in part.groupby("number", sort=True):
                xs += g["epoch"].tolist() + [None]
                ys += g["value"].tolist() + [None]
                cd += [number] * len(g) + [None]
            fig.add_trace(go.Scatter(
                x=xs, y=ys, customdata=cd, mode="lines+markers" if best else "lines",
                name=f"fold {fold}" + (" (best trial)" if best else ""), legendgroup=f"fold{fold}",
                connectgaps=False, line=dict(color=color, width=3 if best else 1.2),
                opacity=1.0 if best else 0.45,
                hovertemplate="trial %{customdata}, fold " + str(fold) + "<br>epoch %{x}<br>" + metric
                              + " %{y:.6g}<extra></extra>"))
    fig.update_xaxes(title_text="epoch (within the fold)")
    fig.update_yaxes(title_text=metric)
    return _style(fig, height=440)


def parallel_figure(study: optuna.Study, names: Sequence[str]) -> go.Figure:
    if not any(t.state == optuna.trial.TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
        raise PanelUnavailable("no completed trials yet")
    kw = {}
    if len(study.directions) > 1:
        kw = dict(target=_target(0), target_name=names[0])
    else:
        kw = dict(target_name=names[0])
    fig = _optuna_plot(optuna.visualization.plot_parallel_coordinate, study, **kw)
    if not fig.data:
        raise PanelUnavailable("no completed trial has hyperparameters to plot")
    return _style(fig, height=440)


def importances_figure(imp: _data.ImportanceResult) -> go.Figure:
    if not imp.ok:
        raise PanelUnavailable(f"hyperparameter importances unavailable: {imp.error}")
    fig = go.Figure()
    objectives = list(dict.fromkeys(imp.table["objective"]))
    order = imp.ranked_params(objectives[0])
    for obj in objectives:
        sub = imp.table[imp.table["objective"] == obj].set_index("param").reindex(order).dropna()
        fig.add_trace(go.Bar(
            y=sub.index.tolist()[::-1], x=sub["importance"].tolist()[::-1], orientation="h",
            name=obj, marker=dict(color=None if len(objectives) > 1 else "#1f77b4"),
            text=[f"{v:.2f}" for v in sub["importance"].tolist()[::-1]],
            textposition="outside", cliponaxis=False,
            hovertemplate="%{y}: %{x:.3f}<extra>" + obj + "</extra>"))
    fig.update_layout(barmode="group", showlegend=len(objectives) > 1)
    fig.update_xaxes(title_text="importance (fANOVA, normalised)")
    return _style(fig, height=max(260, 60 + 34 * len(order) * max(1, len(objectives))))


def slice_figure(study: optuna.Study, names: Sequence[str], params: Sequence[str]) -> go.Figure:
    if not any(t.state == optuna.trial.TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
        raise PanelUnavailable("no completed trials yet")
    params = list(params)[:MAX_SLICE_PARAMS]
    if not params:
        raise PanelUnavailable("the completed trials have no hyperparameters")
    kw = dict(target_name=names[0])
    if len(study.directions) > 1:
        kw["target"] = _target(0)
    fig = _optuna_plot(optuna.visualization.plot_slice, study, params=params, **kw)
    fig.update_layout(width=None)
    return _style(fig, height=380)


def timeline_figures(study: optuna.Study) -> list[go.Figure]:
    """Gantt-style bars per worker (colour = state) and trial durations per worker."""
    tl = _data.timeline(study)
    if tl.empty:
        raise PanelUnavailable("no trial has started yet")
    workers = sorted(tl["worker"].unique())
    gantt = go.Figure()
    for state in _data.STATE_ORDER:
        sub = tl[tl["state"] == state]
        if sub.empty:
            continue
        gantt.add_trace(go.Bar(
            base=[s.isoformat() for s in sub["start"]],
            x=[max(d, 0.001) * 1000.0 for d in sub["duration_s"]],  # ms on a date axis
            y=sub["worker"], orientation="h", name=state.lower(),
            marker=dict(color=STATE_COLORS[state], line=dict(color="white", width=0.5)),
            customdata=list(zip(sub["number"], sub["duration_s"].round(1))),
            hovertemplate="trial %{customdata[0]}<br>%{y}<br>duration %{customdata[1]} s"
                          "<extra>" + state.lower() + "</extra>"))
    gantt.update_layout(barmode="overlay", showlegend=True)
    gantt.update_xaxes(type="date", title_text="wall-clock time")
    gantt.update_yaxes(title_text="worker", categoryorder="array", categoryarray=workers[::-1],
                       automargin=True)
    _style(gantt, height=max(240, 120 + 40 * len(workers)))

    durations = go.Figure()
    for state in _data.STATE_ORDER:
        sub = tl[(tl["state"] == state) & ~tl["running"]]
        if sub.empty:
            continue
        durations.add_trace(go.Box(
            y=sub["duration_s"], x=sub["worker"], name=state.lower(), boxpoints="all",
            jitter=0.4, pointpos=0, marker=dict(color=STATE_COLORS[state], size=5),
            line=dict(width=1), customdata=sub["number"],
            hovertemplate="trial %{customdata}<br>%{x}<br>%{y:.1f} s<extra></extra>"))
    if not durations.data:
        return [gantt]
    durations.update_layout(boxmode="group", showlegend=True)
    durations.update_yaxes(title_text="trial duration (s)")
    durations.update_xaxes(title_text="worker", categoryorder="array", categoryarray=workers)
    _style(durations, height=320)
    return [gantt, durations]


def savings_figure(study: optuna.Study, sav: _data.PruningSavings, metric: str) -> go.Figure:
    curve = sav.curve
    if sav.epochs_trained == 0 or curve.empty:
        raise PanelUnavailable("no trial reported intermediate values, so no epochs were counted")
    fig = go.Figure()
    multi = len(study.directions) > 1
    have_best = (not multi) and curve["best_so_far"].notna().any()
    if have_best:
        c = curve[curve["best_so_far"].notna()]
        fig.add_trace(go.Scatter(
            x=c["cum_epochs"], y=c["best_so_far"], mode="lines+markers", line_shape="hv",
            name="with pruning (actual)", line=dict(color=BEST_COLOR, width=2.5),
            marker=dict(size=5), customdata=c["number"],
            hovertemplate="%{x} epochs<br>best " + metric
                          + " %{y:.6g}<br>(after trial %{customdata})<extra></extra>"))
        fig.add_trace(go.Scatter(
            x=c["cum_epochs_without_pruning"], y=c["best_so_far"], mode="lines",
            line_shape="hv", name=f"without pruning (each trial {sav.max_epochs} epochs)",
            line=dict(color="#7f7f7f", width=2, dash="dash"), customdata=c["number"],
            hovertemplate="%{x} epochs<br>best " + metric
                          + " %{y:.6g}<br>(after trial %{customdata})<extra></extra>"))
        fig.update_yaxes(title_text=f"best {metric} so far")
    else:
        fig.add_trace(go.Scatter(
            x=curve["order"] + 1, y=curve["cum_epochs"], mode="lines+markers", line_shape="hv",
            name="with pruning (actual)", line=dict(color=BEST_COLOR, width=2.5)))
        fig.add_trace(go.Scatter(
            x=curve["order"] + 1, y=curve["cum_epochs_without_pruning"], mode="lines",
            line_shape="hv", name="without pruning",
            line=dict(color="#7f7f7f", width=2, dash="dash")))
        fig.update_yaxes(title_text="cumulative epochs")
    fig.update_xaxes(title_text="cumulative epochs trained" if have_best
                     else "trials finished (completion order)")
    return _style(fig, height=380)


def anytime_figure(series: Mapping[str, Sequence[tuple[float, float]]], targets: Sequence[float], metric: str,
                   group: Callable[[str], str] | None = None) -> go.Figure:
    """Best value so far against cumulative epochs, one step line per series, with the targets as
    horizontal lines; series of one ``group(label)`` share a colour (e.g. a strategy's seeds)."""
    fig = go.Figure()
    colours: dict[str, str] = {}
    palette = plotly.colors.qualitative.Plotly
    for label, points in series.items():
        if not points:
            continue
        key = group(label) if group else label
        colour = colours.setdefault(key, palette[len(colours) % len(palette)])
        fig.add_trace(go.Scatter(
            x=[p[0] for p in points], y=[p[1] for p in points], mode="lines", line_shape="hv", name=label,
            legendgroup=key, line=dict(color=colour, width=1.5),
            hovertemplate="%{x} epochs<br>best " + metric + " %{y:.6g}<extra>" + label + "</extra>"))
    for target in targets:
        fig.add_hline(y=target, line=dict(color="#bbbbbb", dash="dot", width=1))
    fig.update_xaxes(title_text="cumulative epochs trained")
    fig.update_yaxes(title_text=f"best {metric} so far")
    return _style(fig, height=480)


def epochs_to_reach_figure(study: optuna.Study, sav: _data.PruningSavings, reach: pd.DataFrame,
                           metric: str) -> go.Figure:
    """The study's best value against cumulative epochs, with a marker where each target of ``reach``
    (:func:`_data.epochs_to_reach`) was first reached."""
    if len(study.directions) > 1:
        raise PanelUnavailable("drawn for single-objective studies")
    c = sav.curve[sav.curve["best_so_far"].notna()]
    if c.empty:
        raise PanelUnavailable("no trial completed yet, so no best value was reached")
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=c["cum_epochs"], y=c["best_so_far"], mode="lines", line_shape="hv",
                             name=f"best {metric}", line=dict(color=BEST_COLOR, width=2.5)))
    hit = reach[reach["cum_epochs"].notna()]
    fig.add_trace(go.Scatter(
        x=hit["cum_epochs"], y=hit["target"], mode="markers+text", name="first reached",
        text=[f"{e:g} epochs" for e in hit["cum_epochs"]], textposition="bottom right",
        marker=dict(size=9, color="#d62728", symbol="diamond"),
        hovertemplate="%{y:.6g} first reached after %{x} epochs<extra></extra>"))
    fig.update_xaxes(title_text="cumulative epochs trained")
    fig.update_yaxes(title_text=f"best {metric} so far")
    return _style(fig, height=380)


def pareto_figure(study: optuna.Study, names: Sequence[str]) -> go.Figure:
    n = len(study.directions)
    if n not in (2, 3):
        raise PanelUnavailable(f"Optuna draws Pareto fronts for 2 or 3 objectives; this study "
                               f"has {n} (the Pareto set is listed in the header)")
    if not any(t.state == optuna.trial.TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
        raise PanelUnavailable("no completed trials yet")
    fig = _optuna_plot(optuna.visualization.plot_pareto_front, study, target_names=list(names))
    return _style(fig, height=460)


__all__ = [
    "PanelUnavailable", "STATE_COLORS", "fold_curves_figure", "history_figure", "importances_figure",
    "learning_curves_figure", "parallel_figure", "pareto_figure", "savings_figure",
    "slice_figure", "timeline_figures",
]
