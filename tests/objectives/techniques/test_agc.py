import math

import torch

from objectives.techniques import adaptive_clip_grad_, unitwise_norm


def _reference(w: torch.Tensor, g: torch.Tensor, clip: float, eps: float = 1e-3) -> torch.Tensor:
    """Per-unit loop over plain Python floats."""
    units_w = [w.flatten().tolist()] if w.ndim <= 1 else [row.flatten().tolist() for row in w]
    units_g = [g.flatten().tolist()] if g.ndim <= 1 else [row.flatten().tolist() for row in g]
    out = []
    for uw, ug in zip(units_w, units_g):
        max_norm = max(math.sqrt(sum(v * v for v in uw)), eps) * clip
        g_norm = math.sqrt(sum(v * v for v in ug))
        scale = max_norm / max(g_norm, 1e-6) if g_norm > max_norm else 1.0
        out.append([v * scale for v in ug])
    return torch.tensor(out, dtype=g.dtype).reshape(g.shape)


def test_unitwise_norm_shapes_and_values():
    w = torch.tensor([[3.0, 4.0], [0.0, 1.0], [1.0, 0.0]])
    assert torch.equal(unitwise_norm(w), torch.tensor([[5.0], [1.0], [1.0]]))
    conv = torch.randn(4, 2, 3, 3)
    n = unitwise_norm(conv)
    assert n.shape == (4, 1, 1, 1)
    assert torch.allclose(n.flatten(), conv.flatten(1).norm(dim=1))
    b = torch.tensor([3.0, 4.0])
    assert unitwise_norm(b).item() == 5.0


def test_linear_matches_reference_with_clipped_and_unclipped_units():
    torch.manual_seed(0)
    lin = torch.nn.Linear(4, 3)
    g = torch.randn(3, 4)
    g[0] *= 100.0  # row 0 far above clip * |W_0| -> clipped
    g[1] *= 1e-4  # row 1 far below -> untouched
    lin.weight.grad = g.clone()
    lin.bias.grad = torch.tensor([10.0, 0.0, 0.0])  # whole-bias norm 10 >> clip * |b|
    w, b = lin.weight.detach().clone(), lin.bias.detach().clone()
    adaptive_clip_grad_(lin.parameters(), clip=0.1)

    assert torch.allclose(lin.weight.grad, _reference(w, g, 0.1), atol=1e-6)
    assert torch.equal(lin.weight.grad[1], g[1])
    row0 = lin.weight.grad[0].norm()
    assert torch.isclose(row0, 0.1 * w[0].norm(), rtol=1e-5)
    assert torch.allclose(lin.bias.grad, _reference(b, torch.tensor([10.0, 0.0, 0.0]), 0.1), atol=1e-6)
    assert torch.isclose(lin.bias.grad.norm(), 0.1 * b.norm(), rtol=1e-5)


def test_conv_matches_reference_and_eps_for_zero_weights():
    torch.manual_seed(1)
    conv = torch.nn.Conv2d(2, 4, 3)
    with torch.no_grad():
        conv.weight[3].zero_()  # |W_3| = 0 -> max_norm = eps * clip
    g = torch.randn_like(conv.weight)
    g[1] *= 1e-5
    conv.weight.grad = g.clone()
    w = conv.weight.detach().clone()
    adaptive_clip_grad_([conv.weight], clip=0.5, eps=1e-3)
    assert torch.allclose(conv.weight.grad, _reference(w, g, 0.5), atol=1e-7)
    assert torch.equal(conv.weight.grad[1], g[1])
    assert torch.isclose(conv.weight.grad[3].norm(), torch.tensor(0.5e-3), rtol=1e-5)
    assert conv.bias.grad is None  # not passed, not touched


def test_clip_zero_is_noop_and_params_without_grad_skipped():
    lin = torch.nn.Linear(3, 2)
    g = torch.randn(2, 3) * 1e3
    lin.weight.grad = g.clone()
    adaptive_clip_grad_(lin.parameters(), clip=0.0)
    assert torch.equal(lin.weight.grad, g)
    assert lin.bias.grad is None
    adaptive_clip_grad_(lin.parameters(), clip=0.01)  # bias without grad is skipped
    assert lin.bias.grad is None
    assert not torch.equal(lin.weight.grad, g)
