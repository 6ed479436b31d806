"""Fine-tuning on plain ``nn.Module``s: the output layer, the layers below it, freezing by pattern,
layer-wise LR decay (discriminative learning rates, Howard & Ruder 2018, "ULMFiT"; as in BEiT's
layer decay) and loading a checkpoint whose output layer may have another number of classes.

A *layer* is a module with parameters of its own that holds a weight of 2 or more dimensions (a
conv, a linear, an embedding); a module whose parameters are all 1-D (a norm's gain and bias) belongs
to the layer before it, so BatchNorm does not count as a layer of its own.

Example:
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 3))
    >>> [names for names in layers(net)]
    [['0.weight', '0.bias', '1.weight', '1.bias'], ['2.weight', '2.bias']]
    >>> lr_scales(layers(net), head_lr_mult=10.0, layer_lr_decay=0.5)["0.weight"]
    0.5
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence

import torch
from torch import nn


def _owners(module: nn.Module, order: Sequence[str] | None = None) -> list[tuple[str, nn.Module]]:
    """``(name, submodule)`` of the modules with parameters of their own, in ``order`` (module
    names, e.g. a forward pass's) when given, else in registration order."""
    own = {name: mod for name, mod in module.named_modules() if any(True for _ in mod.parameters(recurse=False))}
    if order is None:
        return list(own.items())
    ranked = [n for n in dict.fromkeys(order) if n in own]
    return [(n, own[n]) for n in ranked] + [(n, m) for n, m in own.items() if n not in ranked]


def layers(module: nn.Module, order: Sequence[str] | None = None) -> list[list[str]]:
    """The parameter names of ``module`` grouped into layers, input side first (see the module docstring)."""
    out: list[list[str]] = []
    pending: list[str] = []  # 1-D-only modules before the first real layer join it
    for name, mod in _owners(module, order):
        prefix = f"{name}." if name else ""
        params = [(prefix + n, p) for n, p in mod.named_parameters(recurse=False)]
        names = [n for n, _ in params]
        if any(p.ndim >= 2 for _, p in params):
            out.append(pending + names)
            pending = []
        elif out:
            out[-1].extend(names)
        else:
            pending.extend(names)
    if pending:
        out.append(pending)
    return [group for group in out if group]


def lr_scales(groups: Sequence[Sequence[str]], head_lr_mult: float, layer_lr_decay: float,
              head: Iterable[str] | None = None) -> dict[str, float]:
    """Each parameter's LR as a share of the base LR: ``head_lr_mult`` for the output layer (``head``,
    default the last layer), ``layer_lr_decay ** k`` for the k-th layer below it."""
    if not groups:
        return {}
    head = set(groups[-1] if head is None else head)
    scales = {name: head_lr_mult for name in head}
    below = [[n for n in g if n not in head] for g in groups]
    depth = 0
    for group in reversed([g for g in below if g]):
        depth += 1
        scales.update({name: layer_lr_decay ** depth for name in group})
    return scales


def match(names: Sequence[str], patterns: Sequence[str], key: str, owner: str) -> set[str]:
    """Names matching any ``fnmatch`` pattern; a pattern matching nothing is a ``ValueError`` (a typo)."""
    out: set[str] = set()
    for pattern in patterns:
        hits = fnmatch.filter(names, pattern)
        if not hits:
            raise ValueError(f"{key}: {pattern!r} matches no parameter of {owner}; its parameters: {', '.join(names)}")
        out.update(hits)
    return out


def frozen_names(module: nn.Module, freeze: str | Sequence[str], head: Iterable[str]) -> set[str]:
    """The parameters ``freeze`` names: none, ``backbone`` (all but ``head``) or patterns."""
    names = [n for n, _ in module.named_parameters()]
    if freeze == "none":
        return set()
    if freeze == "backbone":
        return set(names) - set(head)
    return match(names, list(freeze), "freeze", type(module).__name__)


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def fit_state(own: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor],
              head: Iterable[str]) -> tuple[dict[str, torch.Tensor], list[str], list[str]]:
    """What of ``state`` (a checkpoint) loads into a module whose state dict is ``own``.

    Returns ``(to load, tensors of the output layer left as initialised, problems)``: the output
    layer's tensors (``head``: its parameter names; its buffers too) may differ in shape (another
    number of classes); any other difference is a problem naming the tensor.
    """
    head_prefixes = tuple(n.rpartition(".")[0] + "." for n in head)
    state = _aligned(own, state)
    problems = [f"{k} is missing from the checkpoint" for k in own if k not in state]
    problems += [f"{k} is in the checkpoint but not in the model" for k in state if k not in own]
    load, reinit = {}, []
    for key, value in state.items():
        if key not in own:
            continue
        if _shape(value) == _shape(own[key]):
            load[key] = value
        elif key.startswith(head_prefixes) or key in head:
            reinit.append(f"{key} {_shape(value)} -> {_shape(own[key])}")
        else:
            problems.append(f"{key} has shape {_shape(value)} in the checkpoint, {_shape(own[key])} in the model")
    return load, reinit, problems


def _aligned(own: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with its keys' ``model.`` prefix added or removed when that makes them ``own``'s: a
    built-in's ``best.pt`` holds ``model.*`` (the Lightning module's), a ``teacher.pt`` the network's."""
    keys, own_keys = set(state), set(own)
    if keys - own_keys and all(k.startswith("model.") for k in keys) and {k[6:] for k in keys} & own_keys:
        return {k[6:]: v for k, v in state.items()}
    if keys - own_keys and {f"model.{k}" for k in keys} & own_keys:
        return {f"model.{k}": v for k, v in state.items()}
    return dict(state)


@torch.no_grad()
def forward_order(module: nn.Module, example: object) -> list[str]:
    """The names of the modules with parameters of their own, in the order a forward pass over
    ``example`` runs them (eval mode, no gradients; the module's mode is restored)."""
    seen: list[str] = []
    hooks = [mod.register_forward_hook(lambda m, a, o, name=name: seen.append(name))
             for name, mod in module.named_modules() if any(True for _ in mod.parameters(recurse=False))]
    training = module.training
    try:
        module.eval()
        module(*example) if isinstance(example, tuple) else module(example)
    finally:
        module.train(training)
        for handle in hooks:
            handle.remove()
    return seen


def output_layer(module: nn.Module, order: Sequence[str] | None = None) -> list[str]:
    """The output layer's parameter names: what ``module.agc_exclude()`` names when the module
    defines it (the built-ins do; adaptive gradient clipping leaves the same layer alone), else the
    last module with parameters of its own in ``order`` (a forward pass's) or registration order."""
    if hasattr(module, "agc_exclude"):
        return list(module.agc_exclude())
    owners = _owners(module, order)
    if not owners:
        return []
    name, mod = owners[-1]
    prefix = f"{name}." if name else ""
    return [prefix + n for n, _ in mod.named_parameters(recurse=False)]
