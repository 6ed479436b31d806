"""Fine-tuning in a Lightning fit: ``init_from``, ``freeze``, ``unfreeze_at_epoch``, ``head_lr_mult``
and ``layer_lr_decay`` on the built-in objectives and on a user's LightningModule.

- :func:`resolve_init_from` (no torch: ``hpo validate`` calls it) turns the space file's
  ``init_from`` into the reference the trials get: a relative path becomes absolute (relative to the
  space file), ``study:NAME`` becomes ``study:<its folder>``; with ``check`` it proves there is a
  checkpoint behind it.
- The ``FineTuning`` callback (:func:`finetune_callback`), at ``setup`` (before Lightning asks the
  module for its optimizer): finds the output layer (:func:`objectives.techniques.finetune.output_layer`),
  loads the checkpoint (``weights_only=True``; an output layer of another shape keeps its fresh
  weights, with one warning), freezes, and computes each parameter's LR share. At the start of
  epoch ``unfreeze_at_epoch`` it makes the frozen parameters trainable.
- :func:`optimizer_params` is what ``objectives._stack.build_optimizer`` optimizes: one param group
  per LR share (within each of the module's own param groups, when it passes groups). Frozen
  parameters that will be unfrozen are in their group from the start (no gradient, so the
  optimizer skips them): the LR schedule, built over the groups once, then scales them too.
  Parameters that a module's own ``configure_optimizers`` left out are added as a group when they
  unfreeze.
"""

from __future__ import annotations

import functools
import importlib
import logging
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo._errors import SpecError

if TYPE_CHECKING:
    import torch

    from objectives._config import TrainConfig

log = logging.getLogger(__name__)

KEY = "init_from"
STUDY_PREFIX = "study:"
EXPORT_SUFFIXES = (".yaml", ".yml", ".json")
_RUNS_DIR, _JOURNAL = "hpo-runs", "journal.log"


# -- init_from: which checkpoint ------------------------------------------------------------------


def _study_folder(name: str, base_dir: Path) -> Path:
    """``hpo-runs/<name>`` in the current folder, beside the space file or in a folder above it."""
    if Path(name).is_absolute():
        return Path(name)
    base = base_dir.resolve()
    looked = [Path.cwd() / _RUNS_DIR / name] + [d / _RUNS_DIR / name for d in (base, *base.parents)]
    for folder in looked:
        if (folder / _JOURNAL).is_file():
            return folder.resolve()
    raise ValueError(f"no study {name!r}: looked for {', '.join(str(f / _JOURNAL) for f in dict.fromkeys(looked))}")


def resolve_init_from(value: str | None, base_dir: Path, *, check: bool = True) -> str | None:
    """The reference the trials get for the space file's ``init_from`` (see the module docstring).

    Raises:
        ValueError: with ``check``, a file or study that is not there or holds no checkpoint.
    """
    if value is None:
        return None
    if value.startswith(STUDY_PREFIX):
        name = value[len(STUDY_PREFIX):].strip()
        try:
            resolved = f"{STUDY_PREFIX}{_study_folder(name, base_dir)}"
        except ValueError:
            if check:
                raise
            return value
    else:
        path = Path(value).expanduser()
        resolved = str(path if path.is_absolute() else (base_dir / path).resolve())
    if check:
        checkpoint_path(resolved)
    return resolved


def checkpoint_path(ref: str, base_dir: Path | None = None) -> Path:
    """The checkpoint file behind an ``init_from`` reference (read-only; relative: to ``base_dir``,
    default the current folder).

    Raises:
        ValueError: naming what is missing.
    """
    base_dir = base_dir or Path.cwd()
    if ref.startswith(STUDY_PREFIX):
        from hpo import load_best
        from hpo._errors import UsageError

        folder = _study_folder(ref[len(STUDY_PREFIX):].strip(), base_dir)
        try:
            best = load_best(folder)
        except UsageError as exc:
            raise ValueError(str(exc)) from None
        return _kept(best, f"the best trial ({best.trial_number}) of study {best.study_name!r}")
    path = Path(ref).expanduser()
    path = path if path.is_absolute() else base_dir / path
    if not path.is_file():
        raise ValueError(f"checkpoint {path} does not exist (a relative path is relative to the space file)")
    if path.suffix in EXPORT_SUFFIXES:
        from hpo._export import read_export
        from hpo._errors import UsageError

        try:
            best = read_export(path)[0]
        except UsageError as exc:
            raise ValueError(str(exc)) from None
        return _kept(best, f"{path} (trial {best.trial_number} of study {best.study_name!r})")
    return path


def _kept(best: Any, what: str) -> Path:
    if not best.checkpoint:
        note = best.checkpoint_note or "it kept no checkpoint"
        raise ValueError(f"{what} has no checkpoint to start from: {note}")
    return Path(best.checkpoint)


# -- loading --------------------------------------------------------------------------------------


def _located(ref: str) -> Path:
    """:func:`checkpoint_path`, as an exit-2 error naming the reference when there is none."""
    try:
        return checkpoint_path(ref)
    except ValueError as exc:
        raise SpecError(ref, KEY, str(exc)) from None



def _read(path: Path) -> Any:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - whatever the file is, say it cannot be loaded
        raise SpecError(str(path), KEY, f"cannot be loaded with torch.load(weights_only=True): {exc}") from None


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    import torch

    ckpt = _read(path)
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SpecError(str(path), KEY, f"expected a state dict (or a checkpoint with one), got {type(ckpt).__name__}")
    return state


ARCHITECTURE = ("arch", "width", "depth", "shortcut")  # what fixes the shapes of a built-in network


def checkpoint_architecture(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with the architecture of its ``init_from`` checkpoint (a built-in's ``best.pt`` records
    it), so that fine-tuning another study's best trial needs no copy of its width and depth; a
    different value in ``cfg`` is replaced, with a warning saying so."""
    if cfg.init_from is None:
        return cfg
    path = _located(cfg.init_from)
    ckpt = _read(path)
    hparams = ckpt.get("model") if isinstance(ckpt, dict) else None
    if not isinstance(hparams, dict) or not hparams:
        return cfg
    from objectives._knobs import BY_NAME

    arch = {k: hparams.get(k, "convnet" if k == "arch" else getattr(cfg, k)) for k in ARCHITECTURE}
    # A value left at its default is not a choice the checkpoint overrides: no warning for it.
    changed = [f"{k} {arch[k]!r} (not {getattr(cfg, k)!r})" for k in ARCHITECTURE
               if arch[k] != getattr(cfg, k) and getattr(cfg, k) != BY_NAME[k].default]
    if changed:
        message = f"init_from: {path} holds a network with {', '.join(changed)}: training that network"
        log.warning(message)
        warnings.warn(message, UserWarning, stacklevel=2)
    return cfg.replace(**arch)


def load_init(module: torch.nn.Module, ref: str, head: Iterable[str]) -> list[str]:
    """Loads the checkpoint of ``ref`` into ``module``; returns the output layer's tensors left as
    initialised (another shape: another number of classes), after one warning naming them.

    Raises:
        SpecError: (exit 2) the file cannot be found or read, or tensors other than the output
            layer's do not fit; the message names them.
    """
    from objectives.techniques.finetune import fit_state

    path = _located(ref)
    load, reinit, problems = fit_state(module.state_dict(), _read_state(path), head)
    if problems:
        shown = "; ".join(problems[:8]) + (f"; and {len(problems) - 8} more" if len(problems) > 8 else "")
        raise SpecError(str(path), KEY, f"does not fit {type(module).__name__}: {shown}")
    module.load_state_dict(load, strict=False)
    if reinit:
        message = (f"init_from: the output layer of {path} has another shape ({', '.join(reinit)}): another "
                   "number of classes; it starts from fresh weights, every other tensor from the checkpoint")
        log.warning(message)
        warnings.warn(message, UserWarning, stacklevel=2)
    return reinit


# -- the callback ---------------------------------------------------------------------------------


def is_finetuning(cfg: TrainConfig) -> bool:
    """Whether any fine-tuning knob is set (otherwise no callback and one param group, as before)."""
    return (cfg.init_from is not None or cfg.freeze != "none" or cfg.head_lr_mult != 1.0
            or cfg.layer_lr_decay != 1.0)


class _FineTuning:
    """Loads ``init_from``, freezes, and unfreezes at ``unfreeze_at_epoch`` (see the module docstring).

    Attributes:
        head: the output layer's parameter names; ``scales``: each parameter's LR share;
        ``frozen``: the names frozen at setup; ``unfrozen_at``: the epoch they were unfrozen, or None.
    """

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.head: list[str] = []
        self.scales: dict[str, float] = {}
        self.frozen: set[str] = set()
        self.unfrozen_at: int | None = None

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        from objectives.techniques import finetune as F

        if stage != "fit":
            return
        order = self._order(pl_module)
        self.head = F.output_layer(pl_module, order)
        if self.cfg.init_from is not None:
            load_init(pl_module, self.cfg.init_from, self.head)
        self.scales = F.lr_scales(F.layers(pl_module, order), self.cfg.head_lr_mult, self.cfg.layer_lr_decay,
                                  head=self.head or None)
        self.frozen = F.frozen_names(pl_module, self.cfg.freeze, self.head)
        for name, p in pl_module.named_parameters():
            if name in self.frozen:
                p.requires_grad_(False)

    @staticmethod
    def _order(pl_module: Any) -> list[str] | None:
        """A forward pass's module order when the module offers an ``example_input_array``."""
        from objectives.techniques.finetune import forward_order

        example = getattr(pl_module, "example_input_array", None)
        if example is None or hasattr(pl_module, "agc_exclude"):
            return None
        return forward_order(pl_module, example)

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        at = self.cfg.unfreeze_at_epoch
        if not at or self.unfrozen_at is not None or trainer.current_epoch < at:
            return
        params = [p for n, p in pl_module.named_parameters() if n in self.frozen]
        for p in params:
            p.requires_grad_(True)
        self.unfrozen_at = trainer.current_epoch
        names = {id(p): n for n, p in pl_module.named_parameters()}
        for optimizer in trainer.optimizers:
            _add_missing(optimizer, [(names[id(p)], p) for p in params], self.scales, trainer)


def _add_missing(optimizer: Any, named: list[tuple[str, Any]], scales: dict[str, float], trainer: Any) -> None:
    """Adds the parameters an optimizer lacks, one group per LR share, each with the LR the schedule
    gives now (its LambdaLR learns the new groups' base LRs)."""
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    by_scale: dict[float, list[Any]] = {}
    for name, p in named:
        if id(p) not in held:
            by_scale.setdefault(scales.get(name, 1.0), []).append(p)
    schedulers = [c.scheduler for c in trainer.lr_scheduler_configs if c.scheduler.optimizer is optimizer]
    for scale, params in by_scale.items():
        base = optimizer.defaults["lr"] * scale
        optimizer.add_param_group({"params": params, "lr": base, "initial_lr": base})
        for sched in schedulers:
            if hasattr(sched, "lr_lambdas") and hasattr(sched, "base_lrs"):
                sched.lr_lambdas.append(sched.lr_lambdas[0])
                sched.base_lrs.append(base)
                optimizer.param_groups[-1]["lr"] = base * sched.lr_lambdas[0](sched.last_epoch)


@functools.lru_cache(maxsize=None)
def _callback_class(namespace: str) -> type:
    base = importlib.import_module(namespace).Callback
    return type("FineTuning", (_FineTuning, base), {"__module__": __name__, "__doc__": _FineTuning.__doc__})


def finetune_callback(namespace: str, cfg: TrainConfig) -> Any:
    """The ``FineTuning`` callback of the Lightning package ``namespace``."""
    return _callback_class(namespace)(cfg)


# -- the optimizer's param groups -----------------------------------------------------------------


def _tensor(entry: Any) -> Any:
    """The parameter of an optimizer entry: a tensor, or torch's ``(name, tensor)`` pair."""
    return entry[1] if isinstance(entry, tuple) else entry


def _groups(params: Any) -> tuple[list[dict[str, Any]], bool]:
    """``params`` as torch-style param groups (each a copy with ``params`` a list), and whether they
    were given as groups (else one group holds the flat iterable). Refuses what torch refuses: a bare
    tensor, a set."""
    import torch

    if isinstance(params, torch.Tensor):
        raise TypeError("optimizer_factory takes an iterable of parameters or of param-group dicts, "
                        f"not a single {torch.typename(params)}")
    if isinstance(params, dict):
        params = [params]  # one group given bare
    entries = list(params)
    if not entries or not isinstance(entries[0], dict):
        return [{"params": entries}], False
    groups = []
    for k, group in enumerate(entries):
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(f"optimizer_factory: param group {k} must be a dict with a 'params' key, "
                            f"got {type(group).__name__}")
        ps = group["params"]
        if isinstance(ps, set):
            raise TypeError(f"optimizer_factory: param group {k} holds a set; give its parameters as a list "
                            "(a set's order changes between runs)")
        groups.append({**group, "params": [ps] if isinstance(ps, torch.Tensor) else list(ps)})
    return groups, True


def optimizer_params(params: Iterable[Any], cfg: TrainConfig, trainer: Any) -> list[Any]:
    """What ``build_optimizer`` optimizes: the trainable ``params``, or with fine-tuning one group per
    LR share (``lr``: ``cfg.lr`` times the share), frozen parameters included when they will unfreeze.

    ``params`` may also be torch-style param groups (dicts with ``params`` and the group's own
    options): each group keeps its options and its trainable parameters, and a group left with none
    is dropped. With fine-tuning each group is split by LR share, the group's own ``lr`` (else
    ``cfg.lr``) times the share. Options a group does not set are the optimizer's (hpo's knobs).
    """
    from objectives._callbacks import callbacks_of

    groups, given_as_groups = _groups(params)
    callback = next((c for c in callbacks_of(trainer) if isinstance(c, _FineTuning)), None)
    if callback is None:
        kept = [{**g, "params": [e for e in g["params"] if _tensor(e).requires_grad]} for g in groups]
        return [g for g in kept if g["params"]] if given_as_groups else kept[0]["params"]
    names = {id(p): n for n, p in trainer.lightning_module.named_parameters()}
    out: list[dict[str, Any]] = []
    for group in groups:
        by_scale: dict[float, list[Any]] = {}
        for entry in group["params"]:
            p = _tensor(entry)
            name = names.get(id(p), "")
            if p.requires_grad or (cfg.unfreeze_at_epoch and name in callback.frozen):
                by_scale.setdefault(callback.scales.get(name, 1.0), []).append(entry)
        base = group.get("lr", cfg.lr)
        out += [{**group, "params": ps, "lr": base * scale} for scale, ps in sorted(by_scale.items())]
    return out
