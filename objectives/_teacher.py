"""Teachers for distillation: a checkpoint file, or hyperparameters trained once per study.

A ``teacher:`` mapping is completed with the student's ``dataset``, ``val_fraction`` and
``threads``, seed 0 (unless given) and the defaults of every other knob; it is trained
single-process, without
reporting or pruning, keeping its best epoch. The result is cached under
``<study_dir>/teachers/<hash of objective kind + resolved teacher config>/teacher.pt``; an
``hpo._lock.file_lock`` on ``<hash>.lock`` makes concurrent workers wait for the one that trains it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from hpo import _keys as keys
from hpo._lock import file_lock
from objectives._config import TrainConfig

if TYPE_CHECKING:
    from hpo._context import TrialContext
    from objectives._data import ArrayData

log = logging.getLogger(__name__)

TEACHER_FILE = "teacher.pt"
_CACHE_VERSION = 1
_NOT_IN_KEY = ("threads", "keep_checkpoints")  # do not change the trained weights


def teacher_config(spec: Mapping[str, Any], student: TrainConfig) -> TrainConfig:
    """The teacher's full config: the student's data, seed 0, defaults, then ``spec``."""
    params: dict[str, Any] = {
        "dataset": student.dataset, "val_fraction": student.val_fraction, "seed": 0, "threads": student.threads,
    }
    params.update(spec)
    cfg = TrainConfig.from_params(params)
    return cfg.replace(teacher=None, devices=1, strategy="auto", keep_checkpoints=0)


def teacher_key(kind: str, cfg: TrainConfig) -> str:
    config = {k: v for k, v in cfg.to_dict().items() if k not in _NOT_IN_KEY}
    blob = json.dumps({"v": _CACHE_VERSION, "kind": kind, "config": config}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _strip_prefix(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if state and all(k.startswith("model.") for k in state):
        return {k[len("model."):]: v for k, v in state.items()}
    return dict(state)


def read_checkpoint(path: Path) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; ValueError naming the file if that fails."""
    if not path.is_file():
        raise ValueError(f"teacher: checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"teacher: {path} cannot be loaded with torch.load(weights_only=True): {exc}") from None


def load_checkpoint_model(path: str | os.PathLike, fallback: Mapping[str, Any] | None = None) -> nn.Module:
    """A frozen network from a checkpoint: ``best.pt``/``teacher.pt`` (state dict + architecture)
    or a bare state dict (then the architecture is ``fallback``: the student's)."""
    from objectives._models import build_model

    path = Path(path).expanduser()
    ckpt = read_checkpoint(path)
    if isinstance(ckpt, Mapping) and "state_dict" in ckpt:
        state, hparams = ckpt["state_dict"], dict(ckpt.get("model") or {})
    elif isinstance(ckpt, Mapping):
        state, hparams = ckpt, {}
    else:
        raise ValueError(f"teacher: {path} holds a {type(ckpt).__name__}, expected a state dict")
    if not hparams:
        if fallback is None:
            raise ValueError(f"teacher: {path} does not record its architecture")
        hparams = dict(fallback)
    model = build_model(hparams)
    try:
        model.load_state_dict(_strip_prefix(state))
    except RuntimeError as exc:
        raise ValueError(f"teacher: {path} does not match the architecture {hparams}: {exc}") from None
    return model.eval().requires_grad_(False)


def _is_reference(spec: Any) -> bool:
    """A teacher given as ``{module: file.py:Class, checkpoint: ...}`` or as an exported ``best.yaml``."""
    if isinstance(spec, Mapping):
        return "module" in spec
    return Path(str(spec)).suffix in (".yaml", ".yml")


def _referenced_teacher(spec: Any, ctx: TrialContext | None) -> nn.Module:
    """A module-reference teacher, or the kept checkpoint of an exported trial (of a built-in
    study: its ``best.pt`` records the architecture; of a module study: its class rebuilds it)."""
    from objectives._user import resolve_module_teacher

    if isinstance(spec, Mapping):
        return resolve_module_teacher(spec, None, ctx)
    from hpo._export import read_export
    from hpo._objective import parse_module_study

    best = read_export(Path(str(spec)).expanduser())[0]
    if parse_module_study(best.objective) is not None:
        return resolve_module_teacher(spec, None, ctx)
    if not best.checkpoint:
        raise ValueError(f"teacher: {spec} names no kept checkpoint (trial {best.trial_number} of {best.study_name})")
    return load_checkpoint_model(best.checkpoint)


def train_teacher(kind: str, cfg: TrainConfig) -> tuple[nn.Module, dict[str, float]]:
    """Trains a teacher network (best epoch's weights) without a trial."""
    from objectives._fit import run_classifier

    metrics, module = run_classifier(kind, cfg, None, restore_best=True, monitor="val_acc", mode="max")
    return module.model.eval().requires_grad_(False), metrics


def resolve_teacher(
    spec: Any, student: TrainConfig, kind: str, ctx: TrialContext | None, arrays: ArrayData
) -> nn.Module | None:
    """``None``, a loaded checkpoint, or the study's cached teacher for a hyperparameter mapping."""
    if spec is None:
        return None
    if _is_reference(spec):
        return _referenced_teacher(spec, ctx)
    fallback = {
        "input_shape": list(arrays.input_shape),
        "num_classes": arrays.num_classes,
        "width": student.width,
        "depth": student.depth,
        "dropout": student.dropout,
        "arch": student.arch,
        "shortcut": student.shortcut,
    }
    if not isinstance(spec, Mapping):
        return load_checkpoint_model(spec, fallback)
    cfg = teacher_config(spec, student)
    key = teacher_key(kind, cfg)
    if ctx is not None:
        root = Path(ctx.study_dir) / "teachers"
    else:
        from objectives._data import cache_dir

        root = cache_dir() / "teachers"
    folder = root / key
    path = folder / TEACHER_FILE
    with file_lock(root / f"{key}.lock"):
        if path.is_file():
            status = "loaded"
            model = load_checkpoint_model(path)
        else:
            status = "trained"
            log.info("training teacher %s (%s)", key, cfg)
            model, metrics = train_teacher(kind, cfg)
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{TEACHER_FILE}.{os.getpid()}.tmp"
            torch.save(
                {
                    "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                    "model": dict(model.hparams),
                    "config": {k: v for k, v in cfg.to_dict().items() if k != "teacher"},
                    "metrics": metrics,
                },
                tmp,
            )
            os.replace(tmp, path)
    if ctx is not None:
        from hpo._keys import TEACHER_CHECKPOINT

        with contextlib.suppress(Exception):
            ctx.set_user_attr(TEACHER_CHECKPOINT, str(path))
            ctx.set_user_attr(keys.TEACHER_CACHE, status)
    return model
