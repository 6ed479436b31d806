"""Only the best K trials of a study keep their best.pt."""

from __future__ import annotations

import optuna

import objectives


def test_only_top_k_checkpoints_remain(make_ctx, tiny):
    study = optuna.create_study(direction="minimize")
    values = {}
    for lr in (3e-1, 1e-4, 3e-2, 1e-3, 1e-2):
        params = dict(tiny, max_epochs=1, width=4, lr=lr, keep_checkpoints=2)
        ctx = make_ctx(params, study=study, metric="val_loss", direction="minimize")
        result = objectives.image_classifier(params, ctx)
        study.tell(ctx.trial, result["val_loss"])
        values[ctx.trial.number] = (result["val_loss"], ctx.workdir / "best.pt")
    best_two = sorted(values, key=lambda n: values[n][0])[:2]
    remaining = sorted(n for n, (_, path) in values.items() if path.exists())
    assert remaining == sorted(best_two)
    for t in study.trials:
        if t.number in best_two:
            assert t.user_attrs["checkpoint"] == str(values[t.number][1])
