"""Fine-tuning reaches training: what the optimizer stepped with, which weights moved in which epoch,
what was loaded; on a built-in objective and on a user's LightningModule (both Lightning packages)."""

from __future__ import annotations

import warnings

import pytest
import torch

import objectives
from hpo._errors import SpecError
from objectives._config import TrainConfig
from objectives._fit import build_classifier
from objectives.techniques import lr_multiplier

BUILTIN = {"dataset": "digits", "width": 8, "depth": 2, "batch_size": 128, "seed": 0, "threads": 1}
BACKBONE = ("model.features.0.weight", "model.features.1.weight", "model.features.4.weight")
HEAD = ("model.classifier.weight", "model.classifier.bias")
USER = {"max_epochs": 1, "threads": 1, "seed": 0}


def _params(module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in module.named_parameters()}


def _builtin(**knobs):
    cfg = TrainConfig.from_params({**BUILTIN, **knobs})
    module, data = build_classifier("sequence", cfg)
    return module, data, cfg


def _epoch_snapshots(spy, ns="pytorch_lightning"):
    """A callback keeping the parameters at the start of fit and at the end of every epoch."""
    snaps: list[dict[str, torch.Tensor]] = []
    cb = spy(ns, on_train_start=lambda self, t, m: snaps.append(_params(m)),
             on_train_epoch_end=lambda self, t, m: snaps.append(_params(m)))
    return cb, snaps


def _step_lrs(spy, ns="pytorch_lightning"):
    """A callback recording, at every optimizer step, each parameter's LR: ``[{name: lr}]``."""
    steps: list[dict[str, float]] = []

    def record(self, trainer, module, opt):
        names = {id(p): n for n, p in module.named_parameters()}
        steps.append({names[id(p)]: g["lr"] for g in opt.param_groups for p in g["params"]})

    return spy(ns, on_before_optimizer_step=record), steps


# -- built-in objective ---------------------------------------------------------------------------


def test_freeze_backbone_keeps_it_and_trains_the_head(spy):
    module, data, cfg = _builtin(max_epochs=1, freeze="backbone", lr=0.05)
    cb, snaps = _epoch_snapshots(spy)
    objectives.fit(module, data, cfg, None, callbacks=[cb])
    start, end = snaps[0], snaps[-1]
    assert all(torch.equal(start[n], end[n]) for n in start if not n.startswith("model.classifier."))
    assert all(not torch.equal(start[n], end[n]) for n in HEAD)


def test_every_step_uses_the_head_lr_and_the_decayed_layer_lrs(spy):
    knobs = dict(max_epochs=2, lr=0.01, head_lr_mult=10.0, layer_lr_decay=0.5, lr_schedule="cosine")
    module, data, cfg = _builtin(**knobs)
    cb, steps = _step_lrs(spy)
    objectives.fit(module, data, cfg, None, callbacks=[cb])
    total = len(steps)
    fn = lr_multiplier("cosine", total)
    shares = {"model.classifier.weight": 10.0, "model.features.4.weight": 0.5, "model.features.5.bias": 0.5,
              "model.features.0.weight": 0.25, "model.features.1.weight": 0.25}
    for name, share in shares.items():
        assert [s[name] for s in steps] == pytest.approx([0.01 * share * fn(i) for i in range(total)], rel=1e-6)


def test_unfreeze_at_epoch_trains_the_backbone_from_that_epoch_at_its_lr(spy):
    module, data, cfg = _builtin(max_epochs=3, freeze="backbone", unfreeze_at_epoch=2, lr=0.02, layer_lr_decay=0.5)
    cb, snaps = _epoch_snapshots(spy)
    lr_cb, steps = _step_lrs(spy)
    objectives.fit(module, data, cfg, None, callbacks=[cb, lr_cb])
    start, epoch0, epoch1, epoch2 = snaps
    for name in BACKBONE:
        assert torch.equal(start[name], epoch0[name]) and torch.equal(epoch0[name], epoch1[name]), name
        assert not torch.equal(epoch1[name], epoch2[name]), name
    assert not torch.equal(start[HEAD[0]], epoch0[HEAD[0]])
    assert [s["model.features.0.weight"] for s in steps] == pytest.approx([0.005] * len(steps))  # 0.02 * 0.5**2
    assert [s["model.features.4.weight"] for s in steps] == pytest.approx([0.01] * len(steps))


def test_init_from_a_builtin_checkpoint_trains_its_weights_and_its_architecture(spy, tmp_path):
    pre, data, cfg = _builtin(max_epochs=1, width=16)
    objectives.fit(pre, data, cfg, None)
    # best.pt holds the Lightning module's state dict and the network's architecture.
    torch.save({"state_dict": pre.state_dict(), "model": dict(pre.model.hparams)}, tmp_path / "best.pt")
    with pytest.warns(UserWarning, match=r"width 16 \(not 8\): training that network"):
        module, data, cfg = _builtin(max_epochs=1, init_from=str(tmp_path / "best.pt"), freeze="backbone")
    cb, snaps = _epoch_snapshots(spy)
    objectives.fit(module, data, cfg, None, callbacks=[cb])
    loaded = dict(pre.named_parameters())
    assert all(torch.equal(snaps[0][n], loaded[n]) for n in loaded)
    assert torch.equal(snaps[-1]["model.features.0.weight"], loaded["model.features.0.weight"])


# -- a user's LightningModule ---------------------------------------------------------------------


def test_user_module_freeze_patterns_and_lrs_reach_its_training(net, spy):
    cb, snaps = _epoch_snapshots(spy, net.NS)
    lr_cb, steps = _step_lrs(spy, net.NS)
    knobs = dict(USER, freeze=["body.*"], lr=0.1, head_lr_mult=3.0, layer_lr_decay=0.5)
    objectives.fit(net.Net(), net.loaders(), knobs, None, callbacks=[cb, lr_cb])
    start, end = snaps
    assert torch.equal(start["body.weight"], end["body.weight"])
    assert not torch.equal(start["mid.weight"], end["mid.weight"])
    assert not torch.equal(start["norm.weight"], end["norm.weight"])  # not matched by body.*
    # The forward pass over example_input_array finds the classifier last, though it was registered first.
    assert steps[0]["classifier.weight"] == pytest.approx(0.3)
    assert steps[0]["mid.weight"] == pytest.approx(0.05)
    assert steps[0]["norm.weight"] == pytest.approx(0.025)  # a norm belongs to the layer before it
    assert "body.weight" not in steps[0]  # frozen for good: not in the optimizer


def test_unfreeze_adds_what_the_modules_optimizer_left_out(pl_net, spy):
    cb, snaps = _epoch_snapshots(spy)
    lr_cb, steps = _step_lrs(spy)
    knobs = dict(USER, max_epochs=2, freeze="backbone", unfreeze_at_epoch=1, lr=0.1, layer_lr_decay=0.5,
                 lr_schedule="cosine")
    objectives.fit(pl_net.TrainableOnly(), pl_net.loaders(), knobs, None, callbacks=[cb, lr_cb])
    start, epoch0, epoch1 = snaps
    assert torch.equal(start["mid.weight"], epoch0["mid.weight"])
    assert not torch.equal(epoch0["mid.weight"], epoch1["mid.weight"])
    fn = lr_multiplier("cosine", len(steps))
    per_epoch = len(steps) // 2
    assert "mid.weight" not in steps[per_epoch - 1]
    assert [s["mid.weight"] for s in steps[per_epoch:]] == pytest.approx(
        [0.1 * 0.5 * fn(i) for i in range(per_epoch, len(steps))], rel=1e-6)


def test_another_number_of_classes_reinitialises_the_head_with_one_warning(pl_net, spy, tmp_path):
    source = pl_net.Net(num_classes=3)
    torch.save({"state_dict": source.state_dict()}, tmp_path / "three.pt")
    target = pl_net.Net(num_classes=5)
    fresh_head = target.classifier.weight.detach().clone()
    cb, snaps = _epoch_snapshots(spy)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        objectives.fit(target, pl_net.loaders(num_classes=5), dict(USER, init_from=str(tmp_path / "three.pt")),
                       None, callbacks=[cb])
    said = [w for w in caught if "another number of classes" in str(w.message)]
    assert len(said) == 1 and "classifier.weight (3, 8) -> (5, 8)" in str(said[0].message)
    for name in ("body.weight", "mid.weight", "norm.weight"):
        assert torch.equal(snaps[0][name], dict(source.named_parameters())[name])
    assert torch.equal(snaps[0]["classifier.weight"], fresh_head)


def test_any_other_mismatch_is_exit_2_naming_the_tensors(pl_net, tmp_path):
    torch.save(pl_net.Net(hidden=8).state_dict(), tmp_path / "h8.pt")
    with pytest.raises(SpecError) as err:
        objectives.fit(pl_net.Net(hidden=16), pl_net.loaders(), dict(USER, init_from=str(tmp_path / "h8.pt")), None)
    assert err.value.exit_code == 2 and err.value.key_path == "init_from"
    assert str(err.value).startswith(f"{tmp_path / 'h8.pt'}: init_from: does not fit Net: ")
    assert "body.weight has shape (8, 8) in the checkpoint, (16, 8) in the model" in str(err.value)


def test_a_checkpoint_that_needs_unpickling_is_refused(pl_net, tmp_path):
    torch.save({"state_dict": pl_net.Net().state_dict(), "extra": pl_net.Net}, tmp_path / "pickled.pt")
    with pytest.raises(SpecError, match=r"init_from: cannot be loaded with torch.load\(weights_only=True\)"):
        objectives.fit(pl_net.Net(), pl_net.loaders(), dict(USER, init_from=str(tmp_path / "pickled.pt")), None)


def test_a_freeze_pattern_matching_nothing_names_the_parameters(pl_net):
    with pytest.raises(ValueError, match=r"freeze: 'bdy\.\*' matches no parameter of Net; its parameters: "):
        objectives.fit(pl_net.Net(), pl_net.loaders(), dict(USER, freeze=["bdy.*"]), None)


@pytest.mark.parametrize("knob", ["head_lr_mult", "layer_lr_decay"])
def test_lr_knobs_are_refused_for_a_module_that_builds_its_own_optimizer(pl_net, knob):
    with pytest.raises(ValueError, match=rf"^{knob} cannot reach OwnOptimizer: it defines configure_optimizers"):
        objectives.fit(pl_net.OwnOptimizer(), pl_net.loaders(), dict(USER, **{knob: 0.5}), None)
