"""objectives.fit and the built-in objectives on tiny CPU runs."""

from __future__ import annotations

import math

import optuna
import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

import objectives
from objectives._callbacks import AdaptiveGradientClipping
from objectives._config import TrainConfig
from objectives._data import DeviceBatches
from objectives._models import ConvNet
from objectives._module import ClassifierModule
from objectives.techniques import lr_multiplier

METRICS = {"val_acc", "val_loss", "train_loss", "epoch_time", "samples_per_sec"}


def test_image_classifier_reports_every_epoch_and_returns_best(make_ctx, tiny):
    params = dict(tiny, max_epochs=3)
    ctx = make_ctx(params)
    result = objectives.image_classifier(params, ctx)
    steps = ctx.tracker.steps
    assert [s for s, _ in steps] == [0, 1, 2]
    for _, metrics in steps:
        assert METRICS <= set(metrics)
        assert metrics["samples_per_sec"] > 0 and metrics["epoch_time"] > 0
    best = max(steps, key=lambda s: s[1]["val_acc"])
    assert result["val_acc"] == pytest.approx(best[1]["val_acc"])
    assert result["epoch"] == best[0]
    assert METRICS <= set(result)
    assert ctx.trial.user_attrs["checkpoint"] == str(ctx.workdir / "best.pt")
    ckpt = torch.load(ctx.workdir / "best.pt", weights_only=True)
    assert ckpt["epoch"] == best[0] and "model.classifier.weight" in ckpt["state_dict"]


def test_minimized_val_loss_picks_lowest_loss_epoch(make_ctx, tiny):
    params = dict(tiny, max_epochs=3, lr=0.3)  # noisy enough that epochs differ
    ctx = make_ctx(params, metric="val_loss", direction="minimize")
    result = objectives.image_classifier(params, ctx)
    assert result["val_loss"] == pytest.approx(min(m["val_loss"] for _, m in ctx.tracker.steps))


@pytest.fixture
def seen_by_model(monkeypatch):
    """Records what ``ConvNet.forward`` receives in training: ``[(x, autocast dtype or None)]``."""
    seen = []
    real = ConvNet.forward

    def forward(self, x):
        if self.training:
            dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None
            seen.append((x.detach().clone(), dtype))
        return real(self, x)

    monkeypatch.setattr(ConvNet, "forward", forward)
    return seen


def _share_of_raw_rows(seen, raw: torch.Tensor) -> float:
    """The share of training inputs that are unchanged rows of the dataset."""
    rows = {tuple(r.tolist()) for r in raw.flatten(1)}
    inputs = torch.cat([x for x, _ in seen]).flatten(1)
    return sum(tuple(r.tolist()) in rows for r in inputs) / len(inputs)


@pytest.mark.parametrize("knob", [{"hflip": 1.0}, {"crop_pad": 2}, {"noise_std": 0.1}, {"mixup_alpha": 0.2},
                                  {"cutmix_alpha": 0.5}])
def test_each_augmentation_changes_what_the_model_trains_on(make_ctx, tiny, seen_by_model, knob):
    from objectives._data import load_dataset

    params = dict(tiny, max_epochs=1, seed=3, **knob)
    objectives.sequence_classifier(params, make_ctx(params))
    raw = torch.as_tensor(load_dataset("digits", "sequence", 0.2).x)
    assert _share_of_raw_rows(seen_by_model, raw) < 0.6  # hflip: palindromes and blank rows stay


def test_sequence_classifier_trains_on_raw_rows_without_augmentation(make_ctx, tiny, seen_by_model):
    from objectives._data import load_dataset

    params = dict(tiny, max_epochs=1, seed=3)
    objectives.sequence_classifier(params, make_ctx(params))
    raw = torch.as_tensor(load_dataset("digits", "sequence", 0.2).x)
    assert _share_of_raw_rows(seen_by_model, raw) == 1.0


def test_sequence_classifier_and_same_config_reproduces(make_ctx, tiny):
    params = dict(tiny, seed=3, hflip=0.5, crop_pad=2, noise_std=0.1, mixup_alpha=0.2, cutmix_alpha=0.5)
    a = objectives.sequence_classifier(params, make_ctx(params))
    b = objectives.sequence_classifier(params, make_ctx(params))
    plain = dict(tiny, seed=3)
    c = objectives.sequence_classifier(plain, make_ctx(plain))
    assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-5)
    assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
    assert a["train_loss"] != pytest.approx(c["train_loss"], rel=1e-3)  # the augmentations were applied


def test_bf16_mixed_trial_runs_forward_under_bf16_autocast(make_ctx, tiny, seen_by_model):
    params = dict(tiny, precision="bf16-mixed")
    result = objectives.image_classifier(params, make_ctx(params))
    assert math.isfinite(result["val_loss"]) and result["val_acc"] > 0.2
    assert seen_by_model and all(dtype == torch.bfloat16 for _, dtype in seen_by_model)


def test_16_mixed_on_cpu_falls_back_to_bf16_with_a_warning(make_ctx, tiny):
    params = dict(tiny, max_epochs=1, precision="16-mixed")
    with pytest.warns(RuntimeWarning, match="bf16-mixed"):
        result = objectives.image_classifier(params, make_ctx(params))
    assert math.isfinite(result["val_loss"])


def test_pruned_trial_raises_and_records_epoch(make_ctx, tiny):
    # Prunes as soon as step 1 is reported (a val_acc above 2 is impossible).
    pruner = optuna.pruners.ThresholdPruner(lower=2.0, n_warmup_steps=1)
    params = dict(tiny, max_epochs=5)
    ctx = make_ctx(params, pruner=pruner)
    with pytest.raises(optuna.TrialPruned):
        objectives.image_classifier(params, ctx)
    assert ctx.last_step == 1  # what the driver records as pruned_at_epoch
    assert [s for s, _ in ctx.tracker.steps] == [0, 1]
    assert not (ctx.workdir / "best.pt").exists()


# -- accumulation ---------------------------------------------------------------------------------


class _Linear(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(5, 3)
        with torch.no_grad():
            self.net.weight.copy_(torch.linspace(-1, 1, 15).view(3, 5))
            self.net.bias.zero_()

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.mse_loss(self.net(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.mse_loss(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)


@pytest.mark.parametrize("k", [2, 4])
def test_accumulating_k_batches_equals_one_k_times_batch(k):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(8 * k, 5, generator=g), torch.randn(8 * k, 3, generator=g)

    def train(batch_size, accumulate):
        module = _Linear()
        train = DeviceBatches(x, y, batch_size, shuffle=False)
        val = DeviceBatches(x, y, len(x), shuffle=False)
        objectives.fit(module, (train, val), {"max_epochs": 1, "accumulate_grad_batches": accumulate}, None)
        return module.net.weight.detach().clone(), module.net.bias.detach().clone()

    w_acc, b_acc = train(8, k)  # k batches of 8 -> one optimizer step
    w_big, b_big = train(8 * k, 1)  # one batch of 8k -> one optimizer step
    w0 = _Linear().net.weight
    assert not torch.allclose(w_acc, w0)
    torch.testing.assert_close(w_acc, w_big, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(b_acc, b_big, rtol=1e-5, atol=1e-6)


# -- AGC ------------------------------------------------------------------------------------------


def test_agc_clips_hidden_layers_and_leaves_classifier_alone():
    model = ConvNet((1, 8, 8), 10, width=4, depth=2)
    module = ClassifierModule(model, TrainConfig(), 10)
    for p in module.parameters():
        p.grad = torch.full_like(p, 100.0)  # far above 0.01 * |W|
    before = {n: p.grad.clone() for n, p in module.named_parameters()}
    cb = AdaptiveGradientClipping(clip=0.01)
    cb.setup(None, module, "fit")
    cb.on_before_optimizer_step(None, module, None)
    assert set(cb.excluded) == {"model.classifier.weight", "model.classifier.bias"}
    for name, p in module.named_parameters():
        if name.startswith("model.classifier."):
            torch.testing.assert_close(p.grad, before[name])
        else:
            assert p.grad.norm() < before[name].norm() * 0.5, name


def test_agc_runs_inside_training(make_ctx, monkeypatch, tiny):
    calls = []
    real = AdaptiveGradientClipping.on_before_optimizer_step

    def spy(self, trainer, pl_module, optimizer):
        calls.append(len(self.params))
        return real(self, trainer, pl_module, optimizer)

    monkeypatch.setattr(AdaptiveGradientClipping, "on_before_optimizer_step", spy)
    params = dict(tiny, max_epochs=1, agc_clip=0.01)
    objectives.image_classifier(params, make_ctx(params))
    n_params = sum(1 for _ in ConvNet((1, 8, 8), 10, width=8, depth=2).parameters())
    assert calls and all(c == n_params - 2 for c in calls)


# -- what hpo's callbacks cost a step --------------------------------------------------------------


def test_lightning_dispatches_each_hook_once_to_hpo_however_many_of_its_callbacks_run(make_ctx, monkeypatch, tiny):
    """Lightning calls every hook of every callback, each step, inside a profiler context: hpo's
    callbacks (here EpochMetrics, AGC, BestWeights, PruningCallback) are registered as one."""
    from pytorch_lightning.profilers import PassThroughProfiler

    dispatched: list[str] = []
    real = PassThroughProfiler.profile

    def spy(self, action_name):
        dispatched.append(action_name)
        return real(self, action_name)

    monkeypatch.setattr(PassThroughProfiler, "profile", spy)
    params = dict(tiny, max_epochs=1, agc_clip=0.01)
    objectives.image_classifier(params, make_ctx(params))
    per_step = [name for name in dispatched if name.startswith("[Callback]") and name.endswith(".on_train_batch_end")]
    steps = sum(name == "[LightningModule]ClassifierModule.on_train_batch_end" for name in dispatched)
    assert steps > 1 and len(per_step) == steps, (len(per_step), steps)


# -- LR schedule ----------------------------------------------------------------------------------


class _LRRecorder(pl.Callback):
    def __init__(self):
        self.lrs = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.lrs.append(optimizer.param_groups[0]["lr"])


@pytest.mark.parametrize(
    ("schedule", "extra"),
    [
        ("cosine", {"warmup_epochs": 1, "min_lr_ratio": 0.1}),
        ("step", {"step_size": 1, "gamma": 0.5, "accumulate_grad_batches": 2}),
        ("onecycle", {}),
        ("exponential", {"warmup_epochs": 0.5, "gamma": 0.2}),
    ],
)
def test_lr_reached_by_trainer_matches_lr_multiplier(schedule, extra, tiny):
    from objectives._fit import build_classifier, fit

    cfg = TrainConfig.from_params(dict(tiny, max_epochs=3, lr=0.01, lr_schedule=schedule, seed=0, **extra))
    module, data = build_classifier("image", cfg)
    rec = _LRRecorder()
    fit(module, data, cfg, None, callbacks=[rec])
    k = cfg.accumulate_grad_batches
    per_epoch = math.ceil(len(data.train) / k)  # optimizer steps per epoch
    total = per_epoch * cfg.max_epochs
    assert len(rec.lrs) == total
    fn = lr_multiplier(
        schedule,
        total,
        int(round(cfg.warmup_epochs * per_epoch)),
        step_size=cfg.step_size * per_epoch,
        gamma=cfg.gamma,
        min_lr_ratio=cfg.min_lr_ratio,
    )
    for s in [0, 1, per_epoch // 2, per_epoch - 1, per_epoch, per_epoch + 1, total // 2, total - 1]:
        assert rec.lrs[s] == pytest.approx(0.01 * fn(s), rel=1e-6), s


def test_fit_trains_a_generic_module_and_reports_its_logged_metric(make_ctx):
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(64, 5, generator=g), torch.randn(64, 3, generator=g)
    data = (DeviceBatches(x, y, 16, shuffle=True), DeviceBatches(x, y, 64, shuffle=False))
    config = {"max_epochs": 3, "hidden_units": 7}  # a user's own key is ignored by fit
    ctx = make_ctx(config, metric="val_loss", direction="minimize")
    result = objectives.fit(_Linear(), data, config, ctx)
    losses = [m["val_loss"] for _, m in ctx.tracker.steps]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert result["val_loss"] == pytest.approx(min(losses))
    assert {"train_loss", "epoch_time", "samples_per_sec"} <= set(ctx.tracker.steps[0][1])
    assert ctx.tracker.steps[0][1]["samples_per_sec"] > 0


def test_threads_knob_applies_during_fit_and_is_restored(make_ctx, tiny):
    seen = []

    class _Threads(pl.Callback):
        def on_train_start(self, trainer, pl_module):
            seen.append(torch.get_num_threads())

    before = torch.get_num_threads()
    from objectives._fit import run_classifier

    run_classifier("image", dict(tiny, max_epochs=1, threads=1), None, callbacks=[_Threads()])
    assert seen == [1]
    assert torch.get_num_threads() == before
