import pytest
import torch
import torch.nn.functional as F

from objectives.techniques import distillation_loss, soft_cross_entropy

S = torch.tensor([[2.0, -1.0, 0.5, 0.0], [0.1, 0.2, 3.0, -2.0], [-1.0, 1.0, 1.0, 0.3]])
TEACHER = torch.tensor([[1.5, 0.0, 0.2, -0.5], [0.0, 0.5, 2.0, -1.0], [-2.0, 2.5, 0.1, 0.0]])
Y = torch.tensor([0, 2, 1])


def _log_softmax(z: torch.Tensor) -> torch.Tensor:
    return z - z.exp().sum(-1, keepdim=True).log()


def _expected(alpha: float, temp: float) -> torch.Tensor:
    log_ps, log_pt = _log_softmax(S / temp), _log_softmax(TEACHER / temp)
    kl = (log_pt.exp() * (log_pt - log_ps)).sum() / len(S)
    ce = -_log_softmax(S)[torch.arange(len(S)), Y].sum() / len(S)
    return alpha * temp**2 * kl + (1 - alpha) * ce


@pytest.mark.parametrize("alpha,temp", [(0.7, 4.0), (0.3, 1.0), (1.0, 2.0), (0.0, 3.0)])
def test_matches_hand_formula(alpha, temp):
    assert torch.allclose(distillation_loss(S, TEACHER, Y, alpha, temp), _expected(alpha, temp), atol=1e-6)


def test_alpha_extremes():
    assert torch.allclose(distillation_loss(S, TEACHER, Y, 0.0, 4.0), F.cross_entropy(S, Y))
    pure_kd = distillation_loss(S, TEACHER, Y, 1.0, 4.0)
    assert torch.allclose(pure_kd, _expected(1.0, 4.0))
    assert distillation_loss(S, S, Y, 1.0, 4.0).abs() < 1e-6  # identical logits -> KL 0


def test_soft_targets_match_index_targets():
    onehot = F.one_hot(Y, 4).float()
    assert torch.allclose(distillation_loss(S, TEACHER, onehot, 0.5, 2.0), distillation_loss(S, TEACHER, Y, 0.5, 2.0))
    probs = torch.softmax(TEACHER, -1)
    manual = -(probs * _log_softmax(S)).sum() / len(S)
    assert torch.allclose(soft_cross_entropy(S, probs), manual)


def test_gradient_reaches_student_only():
    s = S.clone().requires_grad_()
    t = TEACHER.clone().requires_grad_()
    distillation_loss(s, t, Y, 0.5, 2.0).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


def test_bad_arguments():
    with pytest.raises(ValueError):
        distillation_loss(S, TEACHER, Y, 1.5, 2.0)
    with pytest.raises(ValueError):
        distillation_loss(S, TEACHER, Y, 0.5, 0.0)
