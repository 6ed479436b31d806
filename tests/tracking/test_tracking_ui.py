"""The real MLflow UI on a study's store, looked at in headless Chromium; and ``serve_ui``."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest

from hpo.tracking import _ui
from hpo.tracking._mlflow import MlflowTracker



@pytest.fixture(scope="module")
def ui_store(tmp_path_factory, tk):
    """A store holding study ``ui-study``: a parent run and 3 trial runs (complete, pruned, failed)."""
    root = tmp_path_factory.mktemp("ui")
    uri = "sqlite:///" + (root / "mlflow.db").as_posix()
    space = root / "space.yaml"
    space.write_text("study: {name: ui-study}\n")
    tracker = MlflowTracker(uri, artifacts_dir=root / "mlflow-artifacts")
    parent = tracker.start_study(tk.make_study_info("ui-study", space_file=space), None)
    runs = {}
    for number, state in enumerate(("COMPLETE", "PRUNED", "FAIL")):
        runs[number] = tracker.start_trial(number, {"lr": 0.01 * (number + 1)}, {"max_epochs": 3})
        epochs = 3 if state == "COMPLETE" else 2
        for epoch in range(epochs):
            tracker.log_metrics({"val_acc": 0.3 + 0.2 * epoch + 0.01 * number, "val_loss": 1.0 - 0.3 * epoch}, epoch)
        tracker.end_trial(
            state,
            [0.7] if state == "COMPLETE" else None,
            reason="RuntimeError: diverged" if state == "FAIL" else None,
            pruned_at_step=1 if state == "PRUNED" else None,
        )
    tracker.close()
    return {"uri": uri, "root": root, "parent": parent, "runs": runs, "exp": tracker.experiment_id}


@pytest.fixture(scope="module")
def ui_server(ui_store):
    """One real ``mlflow server`` for the module, on a free 127.0.0.1 port."""
    server = _ui.UiServer(ui_store["uri"], host="127.0.0.1", port=0, artifacts_dir=ui_store["root"] / "mlflow-artifacts")
    server.start(timeout=120)
    yield server
    server.stop()
    assert server.proc.poll() is not None


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1600, "height": 1000})
    pg = ctx.new_page()
    pg.set_default_timeout(45_000)
    yield pg
    ctx.close()


@pytest.mark.slow  # MLflow UI server
def test_server_answers_the_rest_api(ui_server, ui_store):
    q = urllib.parse.urlencode({"run_id": ui_store["runs"][0]})
    with urllib.request.urlopen(f"{ui_server.url}/api/2.0/mlflow/runs/get?{q}", timeout=10) as resp:
        run = json.load(resp)["run"]
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert tags["mlflow.parentRunId"] == ui_store["parent"] and tags["state"] == "COMPLETE"


@pytest.mark.slow  # MLflow UI server + browser
def test_experiment_page_lists_parent_and_nested_trials(ui_server, ui_store, page, tmp_path):
    url = _ui.experiment_url(ui_server.url, ui_store["exp"])
    assert url == f"{ui_server.url}/#/experiments/{ui_store['exp']}/runs"
    page.goto(url)
    # the runs table (ag-grid) fills in asynchronously
    page.get_by_role("link", name="ui-study", exact=True).first.wait_for(state="visible")
    if not page.get_by_text("trial-0", exact=True).count():
        # MLflow groups child runs under their parent behind an expander button in the name cell
        page.locator("button[data-component-id*='runnamecellrenderer']").first.click()
    for number in range(3):
        page.get_by_role("link", name=f"trial-{number}", exact=True).first.wait_for(state="visible")
    page.screenshot(path=str(tmp_path / "experiment.png"), full_page=True)
    body = page.inner_text("body")
    assert body.count("ui-study") >= 1
    assert re.search(r"\b4 matching runs\b", body), body[-500:]


@pytest.mark.slow  # MLflow UI server + browser
def test_trial_metric_chart_page_loads(ui_server, ui_store, page, tmp_path):
    run_id, exp = ui_store["runs"][0], ui_store["exp"]
    # the metric page (the one the run page's metric links open)
    q = (
        f"runs={json.dumps([run_id])}&metric={urllib.parse.quote(json.dumps('val_acc'))}"
        f"&experiments={json.dumps([exp])}&plot_metric_keys={urllib.parse.quote(json.dumps(['val_acc']))}"
        "&plot_layout={}&x_axis=step&y_axis_scale=linear"
    )
    page.goto(f"{ui_server.url}/#/metric?{q}")
    page.get_by_text("trial-0", exact=True).first.wait_for(state="visible")
    plot = page.locator(".js-plotly-plot .main-svg").first
    plot.wait_for(state="visible")
    page.locator(".js-plotly-plot .scatterlayer .trace").first.wait_for(state="attached")
    page.screenshot(path=str(tmp_path / "metric.png"), full_page=True)
    body = page.inner_text("body")
    assert "val_acc" in body and "0.7 (step=2)" in body, body[-800:]  # 3 epochs: steps 0..2

    # and the run page's "Model metrics" tab charts every logged metric of the trial
    page.goto(f"{ui_server.url}/#/experiments/{exp}/runs/{run_id}/model-metrics")
    page.get_by_text("trial-0 (val_acc)").first.wait_for(state="visible")
    page.get_by_text("trial-0 (val_loss)").first.wait_for(state="visible")
    page.screenshot(path=str(tmp_path / "run-metrics.png"), full_page=True)
    assert (tmp_path / "metric.png").stat().st_size > 10_000


_SERVE = r"""
import sys
from hpo.tracking import serve_ui
sys.exit(serve_ui(sys.argv[1], host="127.0.0.1", port=int(sys.argv[2]), experiment="ui-study",
                  artifacts_dir=sys.argv[3]))
"""


@pytest.mark.slow  # MLflow UI server, ~10 s
def test_serve_ui_prints_the_experiment_url_and_stops_on_ctrl_c(ui_store, tk):
    port = _ui.find_free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVE, ui_store["uri"], str(port), str(ui_store["root"] / "mlflow-artifacts")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=tk.subprocess_env(),
    )
    try:
        deadline = time.monotonic() + 120
        url = None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith("MLflow UI: "):
                url = line.split(": ", 1)[1].strip()
                break
        assert url == f"http://127.0.0.1:{port}/#/experiments/{ui_store['exp']}/runs", proc.stderr.read()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as resp:
            assert resp.status == 200
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(30) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
    # the server (in its own process group) is gone too
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5)
    assert _ui.port_is_free("127.0.0.1", port)


def test_serve_ui_warns_when_binding_other_interfaces(monkeypatch, capsys):
    def fail_start(self, timeout=90.0):
        raise RuntimeError("not started in this test")

    monkeypatch.setattr(_ui.UiServer, "start", fail_start)
    assert _ui.serve_ui("sqlite:////nonexistent/mlflow.db", host="0.0.0.0", port=0) == 1
    err = capsys.readouterr().err
    assert "no authentication" in err and "0.0.0.0" in err
    assert _ui.serve_ui("sqlite:////nonexistent/mlflow.db", host="127.0.0.1", port=0) == 1
    assert "no authentication" not in capsys.readouterr().err
    cmd = _ui.server_command("sqlite:////x.db", "0.0.0.0", 5000)
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0" and "--allowed-hosts" in cmd
    cmd = _ui.server_command("sqlite:////x.db", "127.0.0.1", 5000)
    assert "--allowed-hosts" not in cmd


def test_free_port_helper():
    port = _ui.find_free_port()
    assert 0 < port < 65536 and _ui.port_is_free("127.0.0.1", port)


def test_ui_without_a_store_creates_none(cli, workdir):
    """A reader: MLflow would create ./hpo-runs/mlflow.db and serve an empty UI."""
    code, _, err = cli("ui", "--port", "0")
    assert code == 2 and f"no MLflow store at {workdir / 'hpo-runs' / 'mlflow.db'}" in err, err
    assert not (workdir / "hpo-runs").exists()


def test_ui_of_a_study_without_mlflow_says_so(cli, write_space, workdir):
    from _helpers import base_space

    path = write_space(base_space())   # mlflow.enabled: false
    assert cli("run", path, "--no-report")[0] == 0
    code, _, err = cli("ui", path, "--port", "0")
    assert code == 2 and "logs nothing to MLflow (mlflow.enabled: false" in err, err
    assert not (workdir / "hpo-runs" / "mlflow.db").exists()
