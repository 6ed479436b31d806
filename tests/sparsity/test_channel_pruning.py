"""prune_structure: channels: whole output channels go during training, and best.pt holds the
physically slimmed network, which computes what the masked one did."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from sparsity._mlp import TwoLayers, loaders

from objectives._fit import fit, run_classifier
from objectives._models import build_model
from objectives._sparsity import load_slimmed
from objectives.techniques.sparsity import channel_norms

TINY = {"dataset": "digits", "width": 8, "batch_size": 128, "threads": 1, "max_epochs": 3,
        "prune_amount": 0.5, "prune_structure": "channels", "prune_start_epoch": 1}


def _unprefixed(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k.removeprefix("model."): v for k, v in state.items()}


@pytest.mark.parametrize("arch", [{"arch": "convnet", "depth": 3}, {"arch": "resnet", "depth": 8}],
                         ids=lambda a: a["arch"])
def test_best_pt_is_slimmed_and_computes_what_the_masked_network_did(ctx, arch):
    _, module = run_classifier("image", {**TINY, **arch}, ctx, restore_best=True)
    dense = module.model.eval()  # the best epoch's weights, pruned channels at zero

    ckpt = torch.load(ctx.workdir / "best.pt", weights_only=True)
    slim = load_slimmed(build_model(ckpt["model"]), _unprefixed(ckpt["state_dict"])).eval()
    n_dense = sum(p.numel() for p in dense.parameters())
    n_slim = sum(p.numel() for p in slim.parameters())
    assert n_slim < 0.8 * n_dense
    assert sum(v.numel() for v in ckpt["state_dict"].values()) < sum(v.numel() for v in module.state_dict().values())

    x = torch.randn(6, *ckpt["model"]["input_shape"])
    with torch.no_grad():
        out = slim(x)
        assert out.shape == (6, 10)
        assert torch.allclose(out, dense(x), atol=1e-5)


def test_whole_output_channels_are_zero_during_training_from_the_start_epoch(ctx):
    _, module = run_classifier("image", {**TINY, "depth": 2}, ctx)
    first = module.model.features[0].weight
    zero_rows = int((channel_norms(first) == 0).sum())
    assert zero_rows == first.shape[0] // 2
    assert module.model.features[1].weight[channel_norms(first) == 0].abs().sum() == 0  # its BatchNorm too
    assert int((channel_norms(module.model.classifier.weight) == 0).sum()) == 0  # never the output layer
    reported = [m["sparsity"] for _, m in ctx.tracker.steps]
    assert reported[0] == 0 and 0 < reported[1] == reported[2] < 0.5


def test_channels_without_torch_pruning_is_exit_2(write_space, cli, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch_pruning" else real(name, *a))
    doc = {"study": {"direction": "maximize", "metric": "val_acc", "n_trials": 1},
           "objective": {"name": "image_classifier", "fixed": {"prune_structure": "channels", "prune_amount": 0.5}},
           "space": {"lr": {"type": "float", "low": 1e-3, "high": 1e-2}}}
    code, _, err = cli("validate", write_space(doc))
    assert code == 2
    assert ("objective.fixed.prune_structure: channels needs the torch-pruning package, which is not installed: "
            "pip install 'hpo[sparsity]'") in err


def test_a_users_module_loses_hidden_neurons_but_keeps_its_outputs(ctx):
    module = TwoLayers()
    fit(module, loaders(), {"max_epochs": 2, "prune_amount": 0.5, "prune_structure": "channels"}, ctx,
        restore_best=True)
    state = torch.load(ctx.workdir / "best.pt", weights_only=True)["state_dict"]
    assert state["body.0.weight"].shape == (16, 8) and state["body.0.bias"].shape == (16,)
    assert state["body.2.weight"].shape == (3, 16)
    slim = load_slimmed(TwoLayers(), state).eval()
    x = torch.randn(4, 8)
    with torch.no_grad():
        assert torch.allclose(slim(x), module.eval()(x), atol=1e-6)


def test_quantizing_a_trial_pruned_by_channels_loads_its_slimmed_checkpoint(ctx, tmp_path):
    # What `hpo train best.yaml --quantize dynamic` does with the retrained module and best.pt.
    from objectives._config import TrainConfig
    from objectives._fit import build_classifier
    from objectives._quantize import quantize_trained

    cfg = TrainConfig.from_params({**TINY, "depth": 2, "seed": 0})
    module, data = build_classifier("image", cfg)
    result = fit(module, data, cfg, ctx)
    best = ctx.workdir / "best.pt"
    comparison = quantize_trained(module, data, best, "dynamic", best, tmp_path / "int8.pt")
    assert module.model.features[0].out_channels == 4  # slimmed from 8 when the weights were loaded
    assert comparison.float.accuracy == pytest.approx(result["val_acc"], abs=1e-6)
