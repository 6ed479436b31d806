"""The pure functions of objectives.techniques.finetune on plain nn.Modules."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from objectives.techniques.finetune import fit_state, frozen_names, layers, lr_scales, output_layer


def _net() -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm1d(4), nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 8), nn.Linear(8, 3))


def test_norms_join_a_layer_and_the_shares_decay_from_the_head():
    groups = layers(_net())
    assert groups == [["0.weight", "0.bias", "1.weight", "1.bias", "2.weight", "2.bias"],
                      ["3.weight", "3.bias"], ["4.weight", "4.bias"]]
    scales = lr_scales(groups, head_lr_mult=4.0, layer_lr_decay=0.5)
    assert scales == {"4.weight": 4.0, "4.bias": 4.0, "3.weight": 0.5, "3.bias": 0.5,
                      **{n: 0.25 for n in groups[0]}}


def test_a_forward_order_and_agc_exclude_name_the_output_layer():
    net = _net()
    assert output_layer(net) == ["4.weight", "4.bias"]
    assert output_layer(net, order=["4", "3", "2", "1", "0"]) == ["0.weight", "0.bias"]  # a forward pass decides
    net.agc_exclude = lambda: ["3.weight", "3.bias"]
    assert output_layer(net) == ["3.weight", "3.bias"]


def test_freeze_modes_and_patterns():
    net = _net()
    head = output_layer(net)
    assert frozen_names(net, "none", head) == set()
    assert frozen_names(net, "backbone", head) == {n for n, _ in net.named_parameters()} - set(head)
    assert frozen_names(net, ("1.*", "3.weight"), head) == {"1.weight", "1.bias", "3.weight"}
    with pytest.raises(ValueError, match=r"^freeze: '9\.\*' matches no parameter of Sequential; its parameters: 0\."):
        frozen_names(net, ("9.*",), head)


def test_fit_state_keeps_a_resized_head_fresh_and_names_every_other_mismatch():
    own = _net().state_dict()
    other = nn.Sequential(nn.BatchNorm1d(4), nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 8), nn.Linear(8, 5))
    load, reinit, problems = fit_state(own, other.state_dict(), ["4.weight", "4.bias"])
    assert problems == [] and reinit == ["4.weight (5, 8) -> (3, 8)", "4.bias (5,) -> (3,)"]
    assert "4.weight" not in load and torch.equal(load["1.weight"], other.state_dict()["1.weight"])
    state = dict(other.state_dict(), extra=torch.zeros(1))
    state["3.weight"] = torch.zeros(2, 2)
    del state["1.bias"]
    _, _, problems = fit_state(own, state, ["4.weight", "4.bias"])
    assert problems == ["1.bias is missing from the checkpoint", "extra is in the checkpoint but not in the model",
                        "3.weight has shape (2, 2) in the checkpoint, (8, 8) in the model"]


@pytest.mark.parametrize("prefix_in_checkpoint", [True, False])
def test_a_model_prefix_is_added_or_removed_to_fit(prefix_in_checkpoint):
    net = nn.Linear(2, 2)
    state = {("model." if prefix_in_checkpoint else "") + k: v for k, v in net.state_dict().items()}
    own = {("" if prefix_in_checkpoint else "model.") + k: v for k, v in net.state_dict().items()}
    load, _, problems = fit_state(own, state, [])
    assert problems == [] and load.keys() == own.keys()
