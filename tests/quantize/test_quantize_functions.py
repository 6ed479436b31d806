"""objectives._quantize on small nets: int8 weights of Linear and Conv, calibration, measuring."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

from hpo._errors import UsageError
from hpo._train import QUANTIZE_MODES
from objectives import _quantize as q


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(32 * 64, 64), nn.ReLU(),
                         nn.Linear(64, 10))


def _batches(n: int = 4, scale: float = 1.0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [(scale * torch.randn(16, 1, 8, 8, generator=g), torch.randint(0, 10, (16,), generator=g))
            for _ in range(n)]


def _weight_layers(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


@pytest.mark.parametrize("mode", ["dynamic", "static"])
def test_every_linear_and_conv_weight_is_stored_as_int8_and_the_file_shrinks(mode):
    model = _net().eval()
    float_size = q.state_size(model)
    with torch.inference_mode():
        reference = torch.cat([model(x) for x, _ in _batches()])
    quantized = q.quantize(model, mode, _batches())
    state = quantized.state_dict()
    int8 = q.int8_weights(state)
    for layer in _weight_layers(quantized):
        stored = f"{layer}.weight_int8" if layer == "0" else f"{layer}.weight"
        assert int8.get(stored) == torch.int8, (layer, sorted(state))
    assert not [k for k, v in state.items() if getattr(v, "qdata", v).dtype == torch.float32 and k.endswith("weight")]
    assert q.state_size(quantized) <= 0.3 * float_size
    with torch.inference_mode():
        out = torch.cat([quantized(x) for x, _ in _batches()])
    assert (out.argmax(1) == reference.argmax(1)).float().mean() >= 0.9
    assert torch.allclose(out, reference, atol=0.05 * reference.abs().max().item())


def test_conv_weight_is_rebuilt_from_int8_and_scale():
    conv = nn.Conv2d(3, 8, 3)
    weight = conv.weight.detach().clone()
    q.quantize_conv_weight(conv)
    assert "weight" not in conv.state_dict()
    conv(torch.randn(1, 3, 5, 5))
    rebuilt = conv.weight_int8.float() * conv.weight_scale
    assert torch.equal(conv.weight, rebuilt)
    # Per output channel: each channel's largest weight maps to ±127, the error is below half a step.
    assert (conv.weight_int8.abs().flatten(1).amax(1) == 127).all()
    assert ((weight - rebuilt).abs() <= conv.weight_scale / 2 + 1e-7).all()


def test_static_scales_are_the_calibration_batches_largest_input():
    model = _net().eval()
    for batches in (_batches(), _batches(scale=10.0), _batches(n=1)):
        scales = q.calibrate(model, batches)
        assert set(scales) == {"3", "5"}
        with torch.no_grad():
            first = max(model[:3](x).abs().max() for x, _ in batches)  # what the first Linear sees
            second = max(model[:5](x).abs().max() for x, _ in batches)
        assert scales["3"].item() == pytest.approx(first.item() / 127, rel=1e-6)
        assert scales["5"].item() == pytest.approx(second.item() / 127, rel=1e-6)


def test_static_quantization_uses_the_calibrated_scale():
    model = _net().eval()
    with torch.no_grad():
        largest = max(model[:3](x).abs().max() for x, _ in _batches(scale=3.0))
    q.quantize(model, "static", _batches(scale=3.0))
    assert model[3].weight.act_quant_scale.item() == pytest.approx(largest.item() / 127, rel=1e-6)
    assert tuple(model[3].weight.scale.shape) == (64, 1)  # the weights keep one scale per output row


def test_static_without_calibration_batches_is_refused():
    with pytest.raises(ValueError, match="calibration"):
        q.quantize(_net(), "static", None)


def test_an_unknown_mode_lists_the_known_ones_and_the_cli_knows_the_same():
    with pytest.raises(KeyError, match="known: dynamic, static"):
        q.quantize(_net(), "int4")
    assert tuple(q.MODES.names()) == QUANTIZE_MODES


def test_accuracy_and_latency_are_measured_on_the_batches():
    batches = _batches()
    model = _net().eval()
    with torch.inference_mode():
        expected = sum(int((model(x).argmax(1) == y).sum()) for x, y in batches) / 64
    measures = q.measure(model, batches)
    assert measures.accuracy == expected
    assert measures.latency_ms > 0
    assert measures.size_bytes == q.state_size(model)
    assert torch.get_num_threads() >= 1


def test_without_torchao_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchao.quantization", None)
    with pytest.raises(UsageError, match=r"pip install 'hpo\[quantize\]'") as caught:
        q.torchao_quantization()
    assert caught.value.exit_code == 2


def test_weight_ratio_counts_int8_bytes_and_scales_over_float32():
    model = q.quantize(_net().eval(), "dynamic")
    numel = sum(m.weight_int8.numel() if hasattr(m, "weight_int8") else m.weight.qdata.numel()
                for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d)))
    scales = model[0].weight_scale.numel() + model[3].weight.scale.numel() + model[5].weight.scale.numel()
    assert q.weight_ratio(model.state_dict()) == pytest.approx((numel + 4 * scales) / (4 * numel))
    assert q.weight_ratio(_net().state_dict()) != q.weight_ratio(_net().state_dict())  # nan: nothing quantized


def test_the_float_reference_is_an_independent_copy_without_the_trainer():
    import pytorch_lightning as pl

    module = pl.LightningModule()
    module.net = _net()
    trainer = object()
    module._trainer = trainer
    copy = q.float_copy(module)
    assert copy._trainer is None and module._trainer is trainer
    q.quantize(module, "dynamic")
    assert isinstance(copy.net[0].weight, nn.Parameter) and copy.net[0].weight.dtype == torch.float32
    assert "weight" not in module.net[0]._parameters


def test_paired_latency_times_each_model_on_every_batch():
    calls: list[str] = []

    class Timed(nn.Module):
        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

        def forward(self, x):
            calls.append(self.name)
            assert torch.get_num_threads() == 1
            return x

    latencies = q.paired_latency_ms([Timed("a"), Timed("b")], _batches(n=3), repeats=2)
    assert len(latencies) == 2 and all(t >= 0 for t in latencies)
    assert calls == ["a"] * 3 + ["b"] * 3 + ["a", "b"] * 6  # warm-up, then turns batch by batch


@pytest.mark.parametrize("mode", ["dynamic", "static"])
def test_a_saved_int8_model_loads_into_a_fresh_float_one_and_computes_the_same(mode, tmp_path):
    quantized = q.quantize(_net().eval(), mode, _batches())
    torch.save({"state_dict": quantized.state_dict(), "quantize": mode}, tmp_path / "int8.pt")
    fresh = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(32 * 64, 64), nn.ReLU(),
                          nn.Linear(64, 10))  # other random weights: everything must come from the file
    loaded = q.load_quantized(fresh, tmp_path / "int8.pt")
    assert q.int8_weights(loaded.state_dict()).keys() == q.int8_weights(quantized.state_dict()).keys()
    with torch.inference_mode():
        for x, _ in _batches():
            assert torch.equal(loaded(x), quantized(x))
