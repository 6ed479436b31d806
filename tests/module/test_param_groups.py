"""``optimizer_factory(params)`` takes what a torch optimizer takes: parameters, or param groups
with their own options. hpo's knobs are the defaults of the groups; a group's own ``lr`` is its base
LR; the LR schedule and warm-up scale every group; freezing and fine-tuning LR shares act per group.

Each test observes the LR (and weight decay) every group or parameter had at every optimizer step.
"""

from __future__ import annotations

import json

import pytest
import torch

import objectives
from _helpers import base_space
from _models import write
from objectives.techniques import lr_multiplier

BASE = {"max_epochs": 1, "threads": 1, "seed": 0}

# Appended to the user's models.py for the study test: two param groups, the first with its own lr and
# weight decay; every optimizer step appends each group's lr and weight decay to LOG.
GROUPS_PY = '''
import json

LOG = {log!r}


class TwoGroups(Net):
    def on_before_optimizer_step(self, optimizer):
        with open(LOG, "a") as f:
            f.write(json.dumps([[g["lr"], g["weight_decay"]] for g in optimizer.param_groups]) + "\\n")

    def configure_optimizers(self, optimizer_factory):
        return optimizer_factory([{{"params": self.body.parameters(), "lr": 0.5, "weight_decay": 0.0}},
                                  {{"params": self.classifier.parameters()}}])
'''


def _with_groups(models, make_groups, frozen=()):
    """A ``models.Net`` whose ``configure_optimizers`` passes ``make_groups(self)`` to the factory;
    the parameters named in ``frozen`` are frozen by the module itself."""

    class Grouped(models.Net):
        def __init__(self):
            super().__init__()
            for name, p in self.named_parameters():
                if name in frozen:
                    p.requires_grad_(False)

        def configure_optimizers(self, optimizer_factory):
            return optimizer_factory(make_groups(self))

    return Grouped()


def _step_lrs(spy):
    """A callback recording, at every optimizer step, each parameter's LR: ``[{name: lr}]``."""
    steps: list[dict[str, float]] = []

    def record(self, trainer, module, opt):
        names = {id(p): n for n, p in module.named_parameters()}
        steps.append({names[id(p)]: g["lr"] for g in opt.param_groups for p in g["params"]})

    return spy(on_before_optimizer_step=record), steps


def _snapshots(spy):
    """A callback keeping the parameters at the start of fit and at the end of every epoch."""
    snaps: list[dict[str, torch.Tensor]] = []

    def keep(self, trainer, module):
        snaps.append({n: p.detach().clone() for n, p in module.named_parameters()})

    return spy(on_train_start=keep, on_train_epoch_end=keep), snaps


def test_study_groups_keep_their_options_and_all_follow_the_schedule(ns, workdir, write_space, cli):
    log = workdir / "lrs.jsonl"
    models_py = write(workdir, ns)
    models_py.write_text(models_py.read_text() + GROUPS_PY.format(log=str(log)))
    fixed = {"max_epochs": 2, "threads": 1, "batch_size": 32, "lr": 0.01, "weight_decay": 0.05,
             "lr_schedule": "cosine", "warmup_epochs": 1, "min_lr_ratio": 0.1}
    path = write_space(base_space(
        study={"direction": "maximize", "metric": "val_acc", "n_trials": 1, "seed": 0},
        objective={"module": "models.py:TwoGroups", "data": "models.py:Data", "fixed": fixed},
        space={"hidden": {"type": "categorical", "choices": [4]}},
    ))
    code, out, err = cli("run", path, "--no-report")
    assert code == 0, err
    steps = [json.loads(line) for line in log.read_text().splitlines()]
    per_epoch, total = 3, 6  # 96 samples / 32, two epochs
    fn = lr_multiplier("cosine", total, per_epoch, min_lr_ratio=0.1)
    assert len(steps) == total
    # The group that sets its own lr keeps it as its base; the other gets hpo's lr; both follow
    # the warm-up and the cosine schedule.
    assert [s[0][0] for s in steps] == pytest.approx([0.5 * fn(i) for i in range(total)], rel=1e-6)
    assert [s[1][0] for s in steps] == pytest.approx([0.01 * fn(i) for i in range(total)], rel=1e-6)
    assert steps[0][0][0] < steps[per_epoch - 1][0][0]  # the warm-up ramp
    assert all(s[0][1] == 0.0 and s[1][1] == pytest.approx(0.05) for s in steps)  # own / hpo's weight decay


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_hpo_knobs_are_the_defaults_of_groups_that_do_not_set_their_own(models, spy, optimizer):
    seen: list[list[dict]] = []
    cb = spy(on_before_optimizer_step=lambda self, t, m, opt: seen.append([dict(g) for g in opt.param_groups]))
    module = _with_groups(models, lambda m: [{"params": m.body.parameters(), "lr": 0.2, "weight_decay": 0.0},
                                             {"params": [m.classifier.weight, m.classifier.bias]}])
    objectives.fit(module, models.Data(48), dict(BASE, optimizer=optimizer, lr=0.03, weight_decay=0.01,
                                                momentum=0.8), None, callbacks=[cb])
    assert len(seen) == 2
    own, default = seen[0]
    assert (own["lr"], own["weight_decay"]) == (pytest.approx(0.2), 0.0)
    assert (default["lr"], default["weight_decay"]) == (pytest.approx(0.03), pytest.approx(0.01))
    if optimizer == "sgd":
        assert own["momentum"] == default["momentum"] == pytest.approx(0.8)
    else:
        assert own["betas"][0] == default["betas"][0] == pytest.approx(0.8)


def test_params_the_module_froze_leave_their_group_and_an_empty_group_is_dropped(models, spy):
    cb, snaps = _snapshots(spy)
    lr_cb, steps = _step_lrs(spy)
    module = _with_groups(models, lambda m: [{"params": [m.body.weight], "lr": 0.5},
                                             {"params": [m.body.bias, m.classifier.weight], "lr": 0.2},
                                             {"params": [m.classifier.bias]}],
                          frozen=("body.weight", "body.bias"))
    objectives.fit(module, models.Data(48), dict(BASE, lr=0.03), None, callbacks=[cb, lr_cb])
    assert steps[0] == pytest.approx({"classifier.weight": 0.2, "classifier.bias": 0.03})
    start, end = snaps
    assert torch.equal(start["body.weight"], end["body.weight"])
    assert not torch.equal(start["classifier.weight"], end["classifier.weight"])


def test_named_parameters_work_too(models, spy):
    lr_cb, steps = _step_lrs(spy)
    module = _with_groups(models, lambda m: [{"params": list(m.body.named_parameters()), "lr": 0.5},
                                             {"params": list(m.classifier.named_parameters())}])
    objectives.fit(module, models.Data(48), dict(BASE, lr=0.03), None, callbacks=[lr_cb])
    assert steps[0] == pytest.approx({"body.weight": 0.5, "body.bias": 0.5, "classifier.weight": 0.03,
                                      "classifier.bias": 0.03})


def test_fine_tuning_freezes_and_scales_each_group(models, spy):
    """``freeze`` drops the frozen parameters from every group (a group left empty goes); the LR
    shares multiply each group's own base LR; the schedule scales them all."""
    cb, snaps = _snapshots(spy)
    lr_cb, steps = _step_lrs(spy)
    # body is the first layer, classifier the output layer (registration order).
    module = _with_groups(models, lambda m: [{"params": [m.body.weight], "lr": 0.5},
                                             {"params": [m.body.bias, m.classifier.weight], "lr": 0.2},
                                             {"params": [m.classifier.bias]}])
    knobs = dict(BASE, freeze=["body.weight"], lr=0.1, head_lr_mult=3.0, layer_lr_decay=0.5, lr_schedule="cosine")
    objectives.fit(module, models.Data(48), knobs, None, callbacks=[cb, lr_cb])
    fn = lr_multiplier("cosine", len(steps))
    assert len(steps) == 2
    for i, step in enumerate(steps):
        assert step == pytest.approx({"body.bias": 0.2 * 0.5 * fn(i), "classifier.weight": 0.2 * 3.0 * fn(i),
                                      "classifier.bias": 0.1 * 3.0 * fn(i)}, rel=1e-6)
    start, end = snaps
    assert torch.equal(start["body.weight"], end["body.weight"])
    assert not torch.equal(start["body.bias"], end["body.bias"])


def test_unfreeze_trains_a_frozen_group_at_its_own_lr_from_that_epoch(models, spy):
    cb, snaps = _snapshots(spy)
    lr_cb, steps = _step_lrs(spy)
    module = _with_groups(models, lambda m: [{"params": m.body.parameters(), "lr": 0.5},
                                             {"params": m.classifier.parameters()}])
    knobs = dict(BASE, max_epochs=2, freeze=["body.*"], unfreeze_at_epoch=1, lr=0.1, lr_schedule="cosine")
    objectives.fit(module, models.Data(48), knobs, None, callbacks=[cb, lr_cb])
    start, epoch0, epoch1 = snaps
    assert torch.equal(start["body.weight"], epoch0["body.weight"])
    assert not torch.equal(epoch0["body.weight"], epoch1["body.weight"])
    fn = lr_multiplier("cosine", len(steps))
    assert len(steps) == 4
    assert [s["body.weight"] for s in steps] == pytest.approx([0.5 * fn(i) for i in range(4)], rel=1e-6)
    assert [s["classifier.weight"] for s in steps] == pytest.approx([0.1 * fn(i) for i in range(4)], rel=1e-6)
