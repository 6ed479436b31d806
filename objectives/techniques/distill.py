"""Knowledge distillation (Hinton et al. 2015, "Distilling the Knowledge in a Neural Network")."""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor


def soft_cross_entropy(logits: Tensor, target_probs: Tensor) -> Tensor:
    """``-sum_c p_c * log_softmax(logits)_c``, averaged over the batch.

    Example:
        >>> loss = soft_cross_entropy(model(x), mixed_targets)
    """
    return -(target_probs * F.log_softmax(logits, dim=-1)).sum(-1).mean()


def distillation_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    targets: Tensor,
    alpha: float,
    temperature: float,
    criterion: Callable[[Tensor, Tensor], Tensor] | None = None,
) -> Tensor:
    """``alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, targets)``.

    The KL divergence is summed over classes and averaged over the batch ("batchmean");
    the ``T^2`` keeps its gradient scale independent of ``T``. ``targets`` are class
    indices (integer ``(N,)``) or probabilities (float, shaped like the logits, e.g. after
    mixup/cutmix). The teacher is detached: gradients reach the student only. ``criterion``
    replaces the cross-entropy term (e.g. a user module's label-smoothing loss).

    Example:
        >>> with torch.no_grad():
        ...     t = teacher(x)
        >>> loss = distillation_loss(student(x), t, y, alpha=0.9, temperature=4.0)
    """
    if not 0 <= alpha <= 1 or temperature <= 0:
        raise ValueError(f"need 0 <= alpha <= 1 and temperature > 0, got {alpha}, {temperature}")
    loss = student_logits.new_zeros(())
    if alpha > 0:
        log_p_s = F.log_softmax(student_logits / temperature, dim=-1)
        log_p_t = F.log_softmax(teacher_logits.detach() / temperature, dim=-1)
        kd = F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True)
        loss = loss + alpha * temperature**2 * kd
    if alpha < 1:
        if criterion is not None:
            ce = criterion(student_logits, targets)
        elif targets.is_floating_point():
            ce = soft_cross_entropy(student_logits, targets)
        else:
            ce = F.cross_entropy(student_logits, targets)
        loss = loss + (1 - alpha) * ce
    return loss
