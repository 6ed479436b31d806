"""Every knob of the built-in objectives, with its default and its check.

This module imports neither torch nor Lightning: the CLI validates space files with it.

Example:
    >>> cfg = TrainConfig.from_params({"dataset": "digits", "lr": 3e-3, "lr_schedule": "cosine"})
    >>> cfg.batch_size
    64
    >>> TrainConfig.from_params({"learning_rate": 0.1})
    Traceback (most recent call last):
    ...
    ValueError: learning_rate: unknown parameter ...
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hpo._registry import did_you_mean

OPTIMIZERS = ("adamw", "sgd")
LR_SCHEDULES = ("constant", "step", "exponential", "cosine", "onecycle")
PRECISIONS = ("32-true", "16-mixed", "bf16-mixed")
STRATEGIES = ("auto", "ddp")
BUILTIN_DATASETS = ("digits", "mnist1d")
DATASET_PREFIXES = ("npz:", "imagefolder:")
ARCHS = ("convnet", "resnet")
SHORTCUTS = ("A", "B")
# Keys only one architecture / dataset type reads: giving them otherwise is an error, not a no-op.
_ONLY_FOR = {
    "shortcut": (lambda c: c.arch == "resnet", "arch: resnet"),
    "image_size": (lambda c: c.dataset.startswith("imagefolder:"), "an imagefolder:PATH dataset"),
}
# Defaults a built-in objective puts under the space file's values, and the architectures it takes.
OBJECTIVE_DEFAULTS: dict[str, dict[str, Any]] = {"resnet_classifier": {"arch": "resnet", "depth": 20, "width": 16}}
OBJECTIVE_ARCHS: dict[str, tuple[str, ...]] = {
    "image_classifier": ARCHS,
    "sequence_classifier": ("convnet",),
    "resnet_classifier": ("resnet",),
}


def resnet_blocks(depth: int) -> int:
    """``n`` of a 6n+2-layer ResNet; raises ``ValueError`` for another depth."""
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"depth: expected 6n+2 with n >= 1 (8, 14, 20, 32, 44, 56, 110) for arch resnet, got {depth}")
    return (depth - 2) // 6


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of ``image_classifier`` / ``sequence_classifier`` and of ``objectives.fit``.

    Constructor arguments are exactly the keys accepted in a space file's ``fixed:``/``space:``.

    Data:
        dataset: ``digits`` (scikit-learn 8x8 digits), ``mnist1d`` (generated locally, cached
            under ``$XDG_CACHE_HOME/hpo`` or ``~/.cache/hpo``), ``npz:PATH`` or
            ``imagefolder:PATH`` (one subfolder of images per class; see ``objectives._imagefolder``).
        image_size: ``imagefolder`` only: images are resized to ``image_size`` squared (0: the
            first image's size).
        val_fraction: share of the training arrays held out for validation when the dataset
            has no validation split of its own (``digits``; ``npz`` without ``x_val``).
        batch_size: training batch size per device.
    Model: ``arch`` (``convnet``: the small conv net; ``resnet``: a CIFAR ResNet, as in
        ``resnet_classifier``), ``width`` (channels of the first block), ``depth`` (conv blocks;
        for ``resnet`` the layer count 6n+2: 20, 32, 44, 56, 110), ``shortcut`` (``resnet`` only:
        ``A`` zero-padded identity or ``B`` 1x1 projection), ``dropout`` (before the classifier).
    Optimiser: ``optimizer`` (``adamw``/``sgd``), ``lr``, ``weight_decay``, ``momentum`` (SGD
        momentum; AdamW's beta1), ``max_epochs``.
    LR decay (stepped every optimizer step): ``lr_schedule``, ``warmup_epochs`` (may be
        fractional), ``step_size`` (epochs, for ``step``), ``gamma`` (``step``/``exponential``),
        ``min_lr_ratio`` (``cosine``/``onecycle`` floor).
    Augmentation (0 disables each): ``hflip`` (probability of flipping the last axis),
        ``crop_pad`` (pad-and-random-crop, pixels or samples), ``noise_std``, ``mixup_alpha``,
        ``cutmix_alpha``.
    Precision: ``32-true``, ``16-mixed`` (on a CPU it falls back to ``bf16-mixed`` with a
        warning), ``bf16-mixed``.
    Parallelism: ``devices``, ``strategy`` (``auto``/``ddp``; ``devices > 1`` always trains with
        DDP), ``accumulate_grad_batches``, ``threads`` (CPU training: torch intra-op threads per
        process during the fit; 0 = torch's default, or the CPU cores split between DDP ranks).
        On a shared or busy machine ``threads: 1`` avoids OpenMP oversubscription, which can slow
        small models down by an order of magnitude.
    Clipping: ``agc_clip`` (adaptive gradient clipping λ, not applied to the output layer: the last
        layer with parameters to run in a forward pass; 0 disables), ``agc_exclude`` (parameter-name
        patterns, ``fnmatch`` style such as ``head.*``, that AGC leaves alone instead of the output
        layer it finds), ``grad_clip_norm`` (global norm clipping; 0 disables).
    Distillation: ``teacher`` (a checkpoint path; an exported ``best.yaml``; a module reference
        ``{module: file.py:Class, checkpoint: PATH, ...constructor kwargs}``; or, for the built-ins,
        a mapping of teacher hyperparameters trained once per study and cached), ``distill_alpha``
        (weight of the soft-target loss), ``distill_temperature``.
    Other: ``seed`` (default: the trial's seed), ``keep_checkpoints`` (best.pt files kept for
        the best K trials of the study; 0 keeps all).
    """

    # data
    dataset: str = "digits"
    val_fraction: float = 0.2
    batch_size: int = 64
    image_size: int = 0
    # model
    arch: str = "convnet"
    shortcut: str = "A"
    width: int = 32
    depth: int = 2
    dropout: float = 0.0
    # optimiser
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    max_epochs: int = 10
    # LR decay
    lr_schedule: str = "constant"
    warmup_epochs: float = 0.0
    step_size: int = 1
    gamma: float = 0.1
    min_lr_ratio: float = 0.0
    # augmentation
    hflip: float = 0.0
    crop_pad: int = 0
    noise_std: float = 0.0
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    # precision / parallelism
    precision: str = "32-true"
    devices: int = 1
    strategy: str = "auto"
    accumulate_grad_batches: int = 1
    threads: int = 0
    # clipping
    agc_clip: float = 0.0
    agc_exclude: tuple[str, ...] = ()
    grad_clip_norm: float = 0.0
    # distillation
    teacher: Any = None
    distill_alpha: float = 0.5
    distill_temperature: float = 4.0
    # other
    seed: int | None = None
    keep_checkpoints: int = 3

    def __post_init__(self) -> None:
        if isinstance(self.agc_exclude, (list, str)):
            # YAML gives lists (and a lone pattern may come as a string); frozen: keep a tuple.
            patterns = [self.agc_exclude] if isinstance(self.agc_exclude, str) else self.agc_exclude
            object.__setattr__(self, "agc_exclude", tuple(patterns))
        for f in _FIELDS.values():
            _check(f.name, getattr(self, f.name))
        if isinstance(self.teacher, Mapping) and "module" not in self.teacher:
            # Frozen and hashable enough: keep a plain dict copy, validated as a config of its own.
            teacher = dict(self.teacher)
            if "teacher" in teacher:
                raise ValueError("teacher.teacher: a teacher cannot have a teacher of its own")
            try:
                TrainConfig.from_params(teacher)
            except ValueError as exc:
                raise ValueError(f"teacher.{exc}") from None
            object.__setattr__(self, "teacher", teacher)
        if self.arch == "resnet":
            resnet_blocks(self.depth)

    @classmethod
    def from_params(cls, params: Mapping[str, Any], *, strict: bool = True) -> TrainConfig:
        """Builds a config from a trial's params (fixed + sampled).

        Raises ``ValueError`` naming the key, what was expected and what was found; unknown keys
        are errors (with a did-you-mean) unless ``strict=False``, when they are ignored.
        """
        if not isinstance(params, Mapping):
            raise ValueError(f"params: expected a mapping, got {type(params).__name__}")
        known, unknown = {}, []
        for key, value in params.items():
            if key in _FIELDS:
                known[key] = _coerce(key, value)
            else:
                unknown.append(key)
        if unknown and strict:
            key = str(unknown[0])
            raise ValueError(
                f"{key}: unknown parameter{did_you_mean(key, list(PARAM_NAMES))}; "
                f"known: {', '.join(PARAM_NAMES)}"
            )
        config = cls(**known)
        for key in known:
            # A default value changes nothing (and to_dict() round-trips carry every key).
            if key in _ONLY_FOR and known[key] != _FIELDS[key].default and not _ONLY_FOR[key][0](config):
                raise ValueError(f"{key}: only read with {_ONLY_FOR[key][1]}; remove it here (got {known[key]!r})")
        return config

    @classmethod
    def for_objective(cls, objective: str, params: Mapping[str, Any]) -> TrainConfig:
        """The config of built-in ``objective`` for a trial's params: its defaults
        (:data:`OBJECTIVE_DEFAULTS`) under ``params``, and a check that it can build the
        architecture asked for (``ValueError`` naming the key if not)."""
        config = cls.from_params({**OBJECTIVE_DEFAULTS.get(objective, {}), **params})
        archs = OBJECTIVE_ARCHS.get(objective, ARCHS)
        if config.arch not in archs:
            raise ValueError(f"arch: expected {' or '.join(archs)} for {objective}, got {config.arch!r}")
        if objective == "sequence_classifier" and config.dataset.startswith("imagefolder:"):
            raise ValueError("dataset: imagefolder:PATH holds images; use image_classifier or resnet_classifier")
        return config

    def to_dict(self) -> dict[str, Any]:
        """The config as ``{key: value}`` (round-trips through ``from_params``)."""
        return {name: getattr(self, name) for name in PARAM_NAMES}

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    @property
    def effective_seed(self) -> int:
        return 0 if self.seed is None else self.seed


_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
PARAM_NAMES: tuple[str, ...] = tuple(_FIELDS)

# The acceleration stack's reserved knobs: hpo applies them to any LightningModule it trains. Listed
# (not derived) so that a new knob of the built-ins' data or network is not reserved by accident.
STACK_KNOBS: tuple[str, ...] = (
    "optimizer", "lr", "weight_decay", "momentum", "max_epochs",
    "lr_schedule", "warmup_epochs", "step_size", "gamma", "min_lr_ratio",
    "hflip", "crop_pad", "noise_std", "mixup_alpha", "cutmix_alpha",
    "precision", "devices", "strategy", "accumulate_grad_batches", "threads",
    "agc_clip", "agc_exclude", "grad_clip_norm",
    "teacher", "distill_alpha", "distill_temperature",
    "seed", "keep_checkpoints",
)
# Knobs only the built-in objectives apply: they build the data and the network. For a user's
# LightningModule these names are free: they go to the module's or the data's constructor.
BUILTIN_ONLY: tuple[str, ...] = tuple(n for n in PARAM_NAMES if n not in STACK_KNOBS)
# Knobs hpo applies by building the optimizer (a module with its own configure_optimizers must take
# hpo's optimizer_factory), by rewriting batches, and by replacing the loss.
OPTIMIZER_KNOBS: tuple[str, ...] = ("optimizer", "lr", "weight_decay", "momentum", "lr_schedule",
                                    "warmup_epochs", "step_size", "gamma", "min_lr_ratio")
AUGMENT_KNOBS: tuple[str, ...] = ("hflip", "crop_pad", "noise_std")
MIXING_KNOBS: tuple[str, ...] = ("mixup_alpha", "cutmix_alpha")

_CHOICES = {
    "optimizer": OPTIMIZERS,
    "lr_schedule": LR_SCHEDULES,
    "precision": PRECISIONS,
    "strategy": STRATEGIES,
    "arch": ARCHS,
    "shortcut": SHORTCUTS,
}
_INTS = {"batch_size", "image_size", "width", "depth", "max_epochs", "step_size", "crop_pad", "devices",
         "accumulate_grad_batches", "keep_checkpoints", "threads"}
_FLOATS = {"val_fraction", "dropout", "lr", "weight_decay", "momentum", "warmup_epochs", "gamma",
           "min_lr_ratio", "hflip", "noise_std", "mixup_alpha", "cutmix_alpha", "agc_clip",
           "grad_clip_norm", "distill_alpha", "distill_temperature"}
# (low, low_inclusive, high, high_inclusive); None = unbounded.
_RANGES: dict[str, tuple[float | None, bool, float | None, bool]] = {
    "val_fraction": (0.0, False, 1.0, False),
    "batch_size": (1, True, None, False),
    "image_size": (0, True, None, False),
    "width": (1, True, None, False),
    "depth": (1, True, None, False),
    "dropout": (0.0, True, 1.0, False),
    "lr": (0.0, False, None, False),
    "weight_decay": (0.0, True, None, False),
    "momentum": (0.0, True, 1.0, False),
    "max_epochs": (1, True, None, False),
    "warmup_epochs": (0.0, True, None, False),
    "step_size": (1, True, None, False),
    "gamma": (0.0, False, None, False),
    "min_lr_ratio": (0.0, True, 1.0, True),
    "hflip": (0.0, True, 1.0, True),
    "crop_pad": (0, True, None, False),
    "noise_std": (0.0, True, None, False),
    "mixup_alpha": (0.0, True, None, False),
    "cutmix_alpha": (0.0, True, None, False),
    "devices": (1, True, None, False),
    "accumulate_grad_batches": (1, True, None, False),
    "agc_clip": (0.0, True, None, False),
    "grad_clip_norm": (0.0, True, None, False),
    "distill_alpha": (0.0, True, 1.0, True),
    "distill_temperature": (0.0, False, None, False),
    "keep_checkpoints": (0, True, None, False),
    "threads": (0, True, None, False),
}


def _found(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _coerce(key: str, value: Any) -> Any:
    """Converts the forms YAML / Optuna produce (ints for floats, integral floats for ints)."""
    if key in _FLOATS and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if key in _INTS and isinstance(value, float) and value.is_integer():
        return int(value)
    if key == "seed" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _check(key: str, value: Any) -> None:
    if key in _INTS:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{key}: expected an integer, got {_found(value)}")
    elif key in _FLOATS:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{key}: expected a number, got {_found(value)}")
        if not math.isfinite(value):
            raise ValueError(f"{key}: expected a finite number, got {value!r}")
    elif key in _CHOICES:
        if value not in _CHOICES[key]:
            hint = did_you_mean(str(value), list(_CHOICES[key])) if isinstance(value, str) else ""
            raise ValueError(f"{key}: expected one of {', '.join(_CHOICES[key])}, got {_found(value)}{hint}")
    elif key == "dataset":
        if not isinstance(value, str) or not (value in BUILTIN_DATASETS or value.startswith(DATASET_PREFIXES)):
            hint = did_you_mean(value, list(BUILTIN_DATASETS)) if isinstance(value, str) else ""
            raise ValueError(
                f"dataset: expected one of digits, mnist1d, npz:PATH or imagefolder:PATH, got {_found(value)}{hint}"
            )
        prefix = next((p for p in DATASET_PREFIXES if value.startswith(p)), "")
        if prefix and value == prefix:
            raise ValueError(f"dataset: expected {prefix}PATH with a path after {prefix!r}, got {value!r}")
    elif key == "teacher":
        if value is not None and not isinstance(value, (str, Mapping)) and not hasattr(value, "__fspath__"):
            raise ValueError(
                f"teacher: expected a checkpoint path or a mapping of teacher hyperparameters, got {_found(value)}"
            )
        if isinstance(value, Mapping) and "module" in value and not isinstance(value.get("checkpoint"), str):
            raise ValueError("teacher.checkpoint: a teacher given as {module: file.py:Class, ...} needs "
                             f"checkpoint: PATH (its state dict), got {_found(value.get('checkpoint'))}")
    elif key == "agc_exclude":
        if not all(isinstance(v, str) and v for v in value):
            raise ValueError(f"agc_exclude: expected a list of parameter-name patterns, got {_found(list(value))}")
    elif key == "seed":
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"seed: expected an integer or null, got {_found(value)}")
    if key in _RANGES:
        low, low_incl, high, high_incl = _RANGES[key]
        if low is not None and (value < low or (value == low and not low_incl)):
            op = ">=" if low_incl else ">"
            raise ValueError(f"{key}: expected a value {op} {low}, got {value!r}")
        if high is not None and (value > high or (value == high and not high_incl)):
            op = "<=" if high_incl else "<"
            raise ValueError(f"{key}: expected a value {op} {high}, got {value!r}")

