"""Pure-tensor training techniques: AGC, LR schedules, mixup/cutmix, augmentation, distillation,
stratified folds, weight pruning."""

from objectives.techniques.agc import adaptive_clip_grad_, unitwise_norm
from objectives.techniques.augment import gaussian_noise, random_crop, random_hflip
from objectives.techniques.distill import distillation_loss, soft_cross_entropy
from objectives.techniques.folds import stratified_folds, train_indices
from objectives.techniques.mixing import cutmix, mixup, one_hot
from objectives.techniques.schedules import SCHEDULES, lr_multiplier
from objectives.techniques.sparsity import channel_masks, cubic_sparsity, global_magnitude_masks

__all__ = [
    "SCHEDULES",
    "adaptive_clip_grad_",
    "channel_masks",
    "cubic_sparsity",
    "cutmix",
    "distillation_loss",
    "gaussian_noise",
    "global_magnitude_masks",
    "lr_multiplier",
    "mixup",
    "one_hot",
    "random_crop",
    "random_hflip",
    "soft_cross_entropy",
    "stratified_folds",
    "train_indices",
    "unitwise_norm",
]
