"""Every stack knob reaches the training of a user's LightningModule, in both Lightning packages.

Each test observes training itself: the LR the optimizer stepped with, the batch ``forward``
received, the loss returned, the autocast dtype inside ``forward``, the gradients at the step.
"""

from __future__ import annotations

import math

import pytest
import torch

import objectives
from objectives.techniques import lr_multiplier

BASE = {"max_epochs": 1, "threads": 1, "seed": 0}


def _fit(module, data, **knobs):
    callbacks = knobs.pop("callbacks", None)
    return objectives.fit(module, data, dict(BASE, **knobs), None, callbacks=callbacks)


def _lr_spy(spy):
    lrs: list[float] = []
    cb = spy(on_before_optimizer_step=lambda self, trainer, module, opt: lrs.append(opt.param_groups[0]["lr"]))
    return cb, lrs


def _raw_batches(models, batch_size):
    x, y = models.make_arrays()
    return [x[i:i + batch_size] for i in range(0, len(x), batch_size)]


# -- optimizer and LR schedule ---------------------------------------------------------------------


@pytest.mark.parametrize("cls", ["Net", "FactoryHook"])
def test_schedule_and_warmup_set_the_lr_of_every_step(models, spy, cls):
    cb, lrs = _lr_spy(spy)
    knobs = {"max_epochs": 2, "lr": 0.05, "lr_schedule": "cosine", "warmup_epochs": 1, "min_lr_ratio": 0.1}
    _fit(getattr(models, cls)(), models.Data(16), callbacks=[cb], **knobs)
    per_epoch, total = 6, 12  # 96 samples / 16
    fn = lr_multiplier("cosine", total, per_epoch, min_lr_ratio=0.1)
    assert lrs == pytest.approx([0.05 * fn(s) for s in range(total)], rel=1e-6)
    assert lrs[0] < lrs[per_epoch - 1]  # the warm-up ramp


def test_optimizer_weight_decay_and_momentum_build_the_optimizer(models, spy):
    seen = []
    cb = spy(on_train_start=lambda self, trainer, module: seen.append(trainer.optimizers[0]))
    _fit(models.Net(), models.Data(32), callbacks=[cb], optimizer="sgd", lr=0.2, momentum=0.7, weight_decay=0.01)
    opt = seen[0]
    assert type(opt) is torch.optim.SGD
    assert opt.defaults["lr"] == 0.2 and opt.defaults["momentum"] == 0.7 and opt.defaults["weight_decay"] == 0.01


def test_own_configure_optimizers_refuses_optimizer_knobs(models):
    with pytest.raises(ValueError, match=r"lr cannot reach OwnOptimizer.*optimizer_factory"):
        _fit(models.OwnOptimizer(), models.Data(32), lr=0.01)


def test_own_configure_optimizers_is_kept_without_optimizer_knobs(models, spy):
    cb, lrs = _lr_spy(spy)
    _fit(models.OwnOptimizer(), models.Data(32), callbacks=[cb])
    assert lrs == [0.1, 0.1, 0.1]


# -- batch techniques ------------------------------------------------------------------------------


def test_hflip_flips_what_forward_receives(models):
    net = models.Net()
    _fit(net, models.Data(32), hflip=1.0)
    raw = _raw_batches(models, 32)
    assert len(net.seen) == 3
    for seen, x in zip(net.seen, raw):
        torch.testing.assert_close(seen, x.flip(-1))
    assert net.steps_run == 3  # the module's own training_step ran on the flipped batch


def test_crop_pad_shifts_each_sample(models):
    net = models.Net()
    _fit(net, models.Data(32), crop_pad=2)
    x = _raw_batches(models, 32)[0]
    padded = torch.nn.functional.pad(x, (2, 2))
    shifts = [[torch.equal(net.seen[0][i], padded[i, :, o:o + 8]) for o in range(5)] for i in range(32)]
    assert all(any(row) for row in shifts)
    assert sum(not row[2] for row in shifts) > 10  # most samples moved


def test_noise_std_adds_noise_of_that_size(models):
    net = models.Net()
    _fit(net, models.Data(96), noise_std=0.5)
    diff = net.seen[0] - _raw_batches(models, 96)[0]
    assert diff.std().item() == pytest.approx(0.5, rel=0.15)


@pytest.mark.parametrize("knob", ["mixup_alpha", "cutmix_alpha"])
def test_mixing_changes_inputs_and_trains_on_soft_targets(models, knob):
    net = models.WithCriterion()
    _fit(net, models.Data(32), **{knob: 1.0})
    x = _raw_batches(models, 32)[0]
    assert not torch.allclose(net.seen[0], x)
    target = net.criterion_calls[0]
    assert target.is_floating_point() and target.shape == (32, 3)
    torch.testing.assert_close(target.sum(-1), torch.ones(32))
    assert ((target > 0) & (target < 1)).any()  # mixed labels, not one-hot
    assert net.steps_run == 0  # hpo computed the loss with the module's criterion


def test_batch_techniques_name_what_the_batch_lacks(models):
    with pytest.raises(ValueError, match=r"mixup_alpha need training batches \(x, y\).*a dict"):
        _fit(models.DictBatches(), models.dict_loaders(), mixup_alpha=0.2)


def test_mixing_refuses_a_module_with_manual_optimization(models):
    net = models.Net()
    net.automatic_optimization = False
    with pytest.raises(ValueError, match=r"mixup_alpha replace the loss of Net's training_step.*manual optimization"):
        _fit(net, models.Data(32), mixup_alpha=0.2)


def test_spatial_techniques_need_channel_inputs(models):
    from torch.utils.data import DataLoader, TensorDataset

    x, y = models.make_arrays()
    flat = DataLoader(TensorDataset(x.flatten(1), y), batch_size=32)
    with pytest.raises(ValueError, match=r"crop_pad need inputs shaped \(N, C, L\).*shape \(32, 8\)"):
        _fit(models.Net(), (flat, None), crop_pad=1)


# -- distillation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("same", [True, False])
def test_teacher_checkpoint_enters_the_loss(models, spy, tmp_path, same):
    torch.manual_seed(0)
    student = models.Net()
    teacher = student if same else models.Net()
    path = tmp_path / "teacher.pt"
    torch.save({"state_dict": teacher.state_dict()}, path)
    losses = []
    cb = spy(on_train_batch_end=lambda self, tr, m, out, b, i: losses.append(float(out["loss"])))
    _fit(student, models.Data(32), callbacks=[cb], teacher=str(path), distill_alpha=1.0, distill_temperature=2.0,
         lr=1e-6)
    # alpha=1: the loss is only T^2 * KL(teacher || student): zero when the teacher is the student.
    if same:
        assert losses[0] == pytest.approx(0.0, abs=1e-6)
    else:
        assert losses[0] > 1e-3


def test_teacher_module_reference_with_its_state_dict(models, spy, tmp_path, ns):
    torch.manual_seed(1)
    teacher = models.Net(hidden=16)
    torch.save(teacher.state_dict(), tmp_path / "w.pt")
    student = models.Net(hidden=16)
    student.load_state_dict(teacher.state_dict())
    losses = []
    cb = spy(on_train_batch_end=lambda self, tr, m, out, b, i: losses.append(float(out["loss"])))
    spec = {"module": f"{models.__file__}:Net", "checkpoint": str(tmp_path / "w.pt"), "hidden": 16}
    _fit(student, models.Data(32), callbacks=[cb], teacher=spec, distill_alpha=1.0, lr=1e-6)
    assert losses[0] == pytest.approx(0.0, abs=1e-6)


# -- precision, accumulation, clipping -------------------------------------------------------------


@pytest.mark.parametrize(("precision", "dtype"), [("bf16-mixed", torch.bfloat16), ("32-true", None)])
def test_precision_is_the_autocast_dtype_inside_forward(models, precision, dtype):
    net = models.Net()
    _fit(net, models.Data(32), precision=precision)
    assert net.autocast == [dtype] * 3


def test_accumulation_counts_optimizer_steps(models, spy):
    cb, lrs = _lr_spy(spy)
    net = models.Net()
    _fit(net, models.Data(16), callbacks=[cb], max_epochs=2, accumulate_grad_batches=3)
    assert net.steps_run == 12 and len(lrs) == 4


def _grads_at_step(spy):
    grads: list[dict[str, torch.Tensor]] = []

    def record(self, trainer, module, opt):
        grads.append({n: p.grad.detach().clone() for n, p in module.named_parameters() if p.grad is not None})

    return spy(on_before_optimizer_step=record), grads


def _over_bound(module, grads, clip, eps=1e-3):
    """Parameter names whose unit-wise gradient norm exceeds AGC's bound somewhere."""
    from objectives.techniques.agc import unitwise_norm

    out = set()
    for name, p in module.named_parameters():
        bound = unitwise_norm(p.detach()).clamp(min=eps) * clip
        if (unitwise_norm(grads[name]) > bound * (1 + 1e-4)).any():
            out.add(name)
    return out


@pytest.mark.parametrize(("cls", "head"), [("HeadFirst", "head"), ("ConvHead", "out")])
def test_agc_finds_the_output_layer_by_forward_order(models, spy, cls, head):
    module = getattr(models, cls)()
    cb, grads = _grads_at_step(spy)
    # Runs after AGC (user callbacks come last); lr tiny so weights barely move between steps.
    _fit(module, models.Data(32), callbacks=[cb], agc_clip=1e-3, lr=1e-9)
    over = _over_bound(module, grads[0], 1e-3)
    assert over == {f"{head}.weight", f"{head}.bias"}


def test_agc_exclude_patterns_override_the_detection(models, spy):
    module = models.HeadFirst()
    cb, grads = _grads_at_step(spy)
    _fit(module, models.Data(32), callbacks=[cb], agc_clip=1e-3, lr=1e-9, agc_exclude=["encoder.*"])
    assert _over_bound(module, grads[0], 1e-3) == {"encoder.weight", "encoder.bias"}


def test_agc_exclude_pattern_matching_nothing_is_an_error(models):
    with pytest.raises(ValueError, match=r"agc_exclude: 'encodr\.\*' matches no parameter of HeadFirst"):
        _fit(models.HeadFirst(), models.Data(32), agc_clip=1e-3, agc_exclude=["encodr.*"])


def test_grad_clip_norm_bounds_the_stepped_gradient(models, spy):
    norms = []

    def hook_optimizer(self, trainer, module):
        def post(opt, args, kwargs):  # after the closure: the clipped gradients stepped with
            norms.append(math.sqrt(sum(float(p.grad.pow(2).sum()) for p in module.parameters())))
        trainer.optimizers[0].register_step_post_hook(post)

    _fit(models.Net(), models.Data(32), callbacks=[spy(on_train_start=hook_optimizer)], grad_clip_norm=1e-3)
    assert len(norms) == 3 and max(norms) <= 1e-3 * 1.001
