import math

import pytest
import torch

from objectives.techniques import SCHEDULES, lr_multiplier

BASE_LR = 0.5


def _lrs(n: int, *args, **kwargs) -> list[float]:
    """LR used by the first ``n`` optimizer steps under a real SGD + LambdaLR."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=BASE_LR)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_multiplier(*args, **kwargs))
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"] / BASE_LR)
        opt.step()
        sched.step()
    return out


def test_registry_names():
    assert set(SCHEDULES) == {"constant", "step", "exponential", "cosine", "onecycle"}


def test_constant_with_linear_warmup():
    lrs = _lrs(8, "constant", total_steps=10, warmup_steps=4)
    assert lrs == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0])


def test_step_boundaries():
    lrs = _lrs(14, "step", total_steps=20, warmup_steps=2, step_size=5, gamma=0.1)
    expected = [0.5, 1.0] + [1.0] * 5 + [0.1] * 5 + [0.01] * 2
    assert lrs == pytest.approx(expected)


def test_cosine_midpoint_and_end():
    lrs = _lrs(15, "cosine", total_steps=12, warmup_steps=2, min_lr_ratio=0.1)
    assert lrs[0] == pytest.approx(0.5)
    assert lrs[2] == pytest.approx(1.0)
    assert lrs[7] == pytest.approx(0.55)  # progress 0.5 -> 0.1 + 0.9 * 0.5
    assert lrs[4] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.2)))
    assert lrs[12] == pytest.approx(0.1)
    assert lrs[14] == pytest.approx(0.1)  # clamped past the end
    assert all(a >= b for a, b in zip(lrs[2:], lrs[3:]))


def test_exponential_reaches_gamma_at_end():
    lrs = _lrs(12, "exponential", total_steps=10, gamma=0.01)
    assert lrs[0] == pytest.approx(1.0)
    assert lrs[5] == pytest.approx(0.1)
    assert lrs[10] == pytest.approx(0.01)
    assert lrs[11] == pytest.approx(0.01)


def test_exponential_with_warmup():
    lrs = _lrs(10, "exponential", total_steps=10, warmup_steps=2, gamma=0.2)
    assert lrs[:3] == pytest.approx([0.5, 1.0, 1.0])
    assert lrs[6] == pytest.approx(0.2**0.5)  # progress (6 - 2) / 8


def test_onecycle_builtin_ramp_peak_and_anneal():
    lrs = _lrs(22, "onecycle", total_steps=20, min_lr_ratio=0.01)  # ramp R = round(0.3 * 20) = 6
    assert lrs[0] == pytest.approx(1 / 25)
    assert lrs[3] == pytest.approx(1 / 25 + (24 / 25) * 0.5)
    assert lrs[6] == pytest.approx(1.0)
    assert max(range(22), key=lrs.__getitem__) == 6
    assert lrs[13] == pytest.approx(0.01 + 0.99 * 0.5)  # q = (13 - 6) / 14
    assert lrs[20] == pytest.approx(0.01)


def test_onecycle_with_explicit_warmup():
    lrs = _lrs(12, "onecycle", total_steps=12, warmup_steps=4)
    assert lrs[:5] == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0])
    assert lrs[8] == pytest.approx(0.5)  # q = 4 / 8, min_lr_ratio 0
    assert lrs[11] == pytest.approx(0.5 * (1 + math.cos(math.pi * 7 / 8)))


def test_unknown_name_lists_known_names():
    with pytest.raises(ValueError) as err:
        lr_multiplier("linear", total_steps=10)
    for name in SCHEDULES:
        assert name in str(err.value)


def test_bad_arguments():
    with pytest.raises(ValueError):
        lr_multiplier("step", total_steps=10, step_size=0)
    with pytest.raises(ValueError):
        lr_multiplier("cosine", total_steps=0)
