"""Only the best K trials of a study keep their best.pt; the driver decides once each trial is told."""

from __future__ import annotations

import optuna

import objectives
from hpo._worker import retain_checkpoints


def test_only_top_k_checkpoints_remain(make_ctx, tiny):
    study = optuna.create_study(direction="minimize")
    values = {}
    for lr in (3e-1, 1e-4, 3e-2, 1e-3, 1e-2):
        params = dict(tiny, max_epochs=1, width=4, lr=lr, keep_checkpoints=2)
        ctx = make_ctx(params, study=study, metric="val_loss", direction="minimize")
        result = objectives.image_classifier(params, ctx)
        assert ctx.keep_checkpoints == 2 and (ctx.workdir / "best.pt").exists()  # the objective deletes nothing
        frozen = study.tell(ctx.trial, result["val_loss"])
        retain_checkpoints(study, ctx, frozen)  # what the driver does after every tell
        values[ctx.trial.number] = (result["val_loss"], ctx.workdir / "best.pt")
    best_two = sorted(values, key=lambda n: values[n][0])[:2]
    remaining = sorted(n for n, (_, path) in values.items() if path.exists())
    assert remaining == sorted(best_two)
    for t in study.trials:
        assert t.user_attrs["checkpoint"] == str(values[t.number][1])


def test_a_failed_trial_leaves_no_checkpoint(make_ctx, tiny):
    study = optuna.create_study(direction="minimize")
    params = dict(tiny, max_epochs=1, width=4, keep_checkpoints=2)
    ctx = make_ctx(params, study=study, metric="val_loss", direction="minimize")
    objectives.image_classifier(params, ctx)
    frozen = study.tell(ctx.trial, state=optuna.trial.TrialState.FAIL)
    retain_checkpoints(study, ctx, frozen)
    assert not (ctx.workdir / "best.pt").exists()


def test_hpo_run_keeps_the_best_k_checkpoints(write_space, workdir, cli):
    from _helpers import load_trials

    path = write_space({
        "study": {"name": "ckpt", "direction": "maximize", "metric": "val_acc", "n_trials": 4, "seed": 0},
        "sampler": {"name": "random"},
        "pruner": {"name": "none"},
        "objective": {"name": "image_classifier",
                      "fixed": {"dataset": "digits", "max_epochs": 1, "width": 4, "threads": 1, "keep_checkpoints": 2}},
        "space": {"lr": {"type": "float", "low": 1e-4, "high": 0.3, "log": True}},
        "mlflow": {"enabled": False},
    })
    code, out, err = cli("run", path, "--no-report")
    assert code == 0, out + err
    trials = [t for t in load_trials(path) if t.state.name == "COMPLETE"]
    assert len(trials) == 4
    ranked = sorted(trials, key=lambda t: (-t.values[0], t.number))
    kept = {t.number for t in trials if (workdir / "hpo-runs" / "ckpt" / "trials" / f"{t.number:05d}" / "best.pt").exists()}
    assert kept == {t.number for t in ranked[:2]}
