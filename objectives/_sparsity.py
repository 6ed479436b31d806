"""The weight-pruning callbacks: magnitude pruning of a LightningModule's Conv/Linear layers on the
schedule of the ``prune_*`` knobs (``objectives.techniques.sparsity`` holds the maths).

Masks go on with ``torch.nn.utils.prune`` (``custom_from_mask``): during training a masked
parameter is ``<name>_orig * <name>_mask``, so a pruned weight stays zero whatever the optimizer
does to ``<name>_orig``. At the end of each epoch, before ``BestWeights`` copies the state dict
(these callbacks come first in ``objectives._trainer._callbacks``), ``prune.remove`` makes the
masks permanent: the state dict, and so ``best.pt``, holds plain tensors with their zeros and no
``*_orig``/``*_mask``. The next epoch puts the masks back on.

``prune_structure: channels`` masks whole output channels (neurons) with the BatchNorm that follows
them, so that a pruned channel outputs exactly zero, and ``best.pt`` holds the network physically
slimmed by ``torch-pruning`` along its dependency graph (:func:`load_slimmed` rebuilds it).

"Weight pruning" is unrelated to Optuna's pruning of trials (``PruningCallback``).
"""

from __future__ import annotations

import copy
import functools
import importlib
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn.utils import prune

from objectives._callbacks import _EpochOnce
from objectives._config import TrainConfig, final_prune_epoch
from objectives.techniques import sparsity as S

METRIC = "sparsity"
PRUNABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
NORMS = (nn.modules.batchnorm._BatchNorm,)


def prunable_layers(module: nn.Module) -> list[nn.Module]:
    """The Conv/Linear layers of ``module`` with a weight, in registration order."""
    return [m for m in module.modules() if isinstance(m, PRUNABLE) and isinstance(m.weight, torch.Tensor)]


def _is_masked(module: nn.Module, name: str) -> bool:
    return hasattr(module, name + "_orig")


class _WeightPruning(_EpochOnce):
    """Global unstructured L1 magnitude pruning of every Conv/Linear weight.

    Sets the schedule's sparsity at the start of every training epoch and, once the epoch is
    validated, makes the masks permanent and logs the achieved sparsity (the share of zeros among
    the Conv/Linear weights) as the metric ``sparsity``. ``weights_final`` is False until the
    final sparsity is reached: ``BestWeights`` does not take an epoch of a denser network as the
    trial's best.
    """

    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__()
        self.final_epoch = final_prune_epoch(cfg)
        self.schedule = functools.partial(S.SCHEDULES[cfg.prune_schedule], final=cfg.prune_amount,
                                          start=cfg.prune_start_epoch, end=self.final_epoch)
        self.layers: list[nn.Module] = []
        self.targets: list[tuple[nn.Module, str]] = []  # the (module, parameter name) pairs masked
        self.masks: list[torch.Tensor] | None = None
        self.target = 0.0
        self.weights_final = False

    def setup(self, trainer, pl_module, stage: str) -> None:
        self.layers = prunable_layers(pl_module)
        if not self.layers:
            raise ValueError(f"prune_amount: {type(pl_module).__name__} has no Conv or Linear layer to prune")
        self.targets = [(layer, "weight") for layer in self.layers]

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.step(trainer.current_epoch)

    def step(self, epoch: int) -> None:
        """Masks of this epoch's sparsity (new ones when it rose), put on for the epoch."""
        target = self.schedule(epoch)
        if target > self.target:
            self.masks = self.compute_masks(target)
            self.target = target
        if self.masks is not None:
            for (module, name), mask in zip(self.targets, self.masks):
                prune.custom_from_mask(module, name, mask.to(getattr(module, name).device))
        self.weights_final = epoch >= self.final_epoch

    def compute_masks(self, amount: float) -> list[torch.Tensor]:
        """Masks for ``self.targets`` over their current (permanent) values."""
        return S.global_magnitude_masks([layer.weight for layer in self.layers], amount)

    def make_permanent(self) -> None:
        for module, name in self.targets:
            if _is_masked(module, name):
                prune.remove(module, name)

    def on_epoch_done(self, trainer, pl_module) -> None:
        self.make_permanent()
        value = S.sparsity([layer.weight for layer in self.layers])
        # Read by collect_metrics: reported to the trial and the tracker with the epoch's numbers.
        trainer.callback_metrics[METRIC] = torch.tensor(value)

    def teardown(self, trainer, pl_module, stage: str) -> None:
        # An interrupted epoch (a pruned trial, an error) leaves no *_orig/*_mask behind.
        self.make_permanent()


def _example_input(batch: Any) -> torch.Tensor:
    """The model input of a training batch: ``x`` of ``(x, y)``, or the batch itself."""
    if isinstance(batch, (tuple, list)) and batch:
        batch = batch[0]
    if not isinstance(batch, torch.Tensor):
        raise ValueError(f"prune_structure: channels traces forward(x) with x the training batch or its first "
                         f"element; got a {type(batch).__name__}")
    return batch[:2].detach().to("cpu", copy=True)


def _tracing_copy(pl_module: nn.Module, state: Mapping[str, torch.Tensor] | None = None) -> nn.Module:
    """An eval-mode CPU copy of ``pl_module`` (a LightningModule's copy drops its trainer)."""
    net = copy.deepcopy(pl_module).cpu().eval()
    if state is not None:
        net.load_state_dict(state)
    return net


def _output_layer(net: nn.Module, x: torch.Tensor) -> nn.Module | None:
    """The last Conv/Linear layer to run in ``net(x)``: its outputs are the network's, never pruned."""
    order: list[nn.Module] = []
    handles = [m.register_forward_hook(lambda mod, a, o: order.append(mod)) for m in prunable_layers(net)]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for handle in handles:
            handle.remove()
    return order[-1] if order else None


def _dependency_graph(net: nn.Module, x: torch.Tensor) -> Any:
    import torch_pruning as tp  # the `sparsity` extra; TrainConfig refuses `channels` without it

    return tp.DependencyGraph().build_dependency(net, example_inputs=x, verbose=False)


def _out_group(graph: Any, layer: nn.Module, idxs: list[int]) -> Any:
    return graph.get_pruning_group(layer, graph.get_pruner_of_module(layer).prune_out_channels, idxs)


def _coupled(graph: Any, layer: nn.Module) -> list[nn.Module] | None:
    """The BatchNorms whose channels go with ``layer``'s output channels, or None when other
    layers' output channels do too (a residual sum: the layer is left whole)."""
    norms = []
    for dep, _ in _out_group(graph, layer, [0]):
        module = dep.target.module
        if module is layer or not graph.is_out_channel_pruning_fn(dep.handler):
            continue
        if not isinstance(module, nn.Module) or not any(True for _ in module.parameters(recurse=False)):
            continue  # an activation, pooling, flatten: no parameters of its own
        if not isinstance(module, NORMS):
            return None
        norms.append(module)
    return norms


class _ChannelPruning(_WeightPruning):
    """Structured pruning: in each Conv/Linear layer but the output layer, the output channels
    (neurons) of smallest L2 norm, on the same schedule. Layers whose output channels are tied to
    another layer's (a residual sum) are left whole. A pruned channel's weights, bias and the
    following BatchNorm's weight and bias are masked, so it outputs exactly zero and removing it
    changes nothing; at the end of the fit ``BestWeights`` saves the slimmed network
    (:meth:`export_state`).

    Needs ``forward(x)`` with ``x`` the training batch's first element (traced once, on a copy).
    """

    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__(cfg)
        self.example: torch.Tensor | None = None
        self.roots: list[str] = []  # names of the layers that lose channels
        self.norms: dict[str, list[str]] = {}
        self.target_roots: list[nn.Module] = []  # the root layer of each of self.targets

    def setup(self, trainer, pl_module, stage: str) -> None:
        self.layers = prunable_layers(pl_module)
        self.example, self.targets, self.target_roots, self.roots, self.norms = None, [], [], [], {}

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        pass  # at the epoch's first batch: the first one also gives the input to trace

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if batch_idx != 0:
            return
        if self.example is None:
            self.plan(pl_module, _example_input(batch))
        self.step(trainer.current_epoch)

    def plan(self, pl_module: nn.Module, x: torch.Tensor) -> None:
        """Finds the layers that can lose channels and the BatchNorms that go with them."""
        self.example = x
        net = _tracing_copy(pl_module)
        output = _output_layer(net, x)
        graph = _dependency_graph(net, x)
        names = {m: n for n, m in net.named_modules()}
        for layer in prunable_layers(net):
            norms = None if layer is output else _coupled(graph, layer)
            if norms is not None:
                self.roots.append(names[layer])
                self.norms[names[layer]] = [names[n] for n in norms]
        if not self.roots:
            raise ValueError(f"prune_structure: channels found no layer of {type(pl_module).__name__} whose output "
                             "channels can go alone (all feed the output or a residual sum); use weights")
        for name in self.roots:
            layer = pl_module.get_submodule(name)
            own = [(layer, p) for p in ("weight", "bias") if isinstance(getattr(layer, p), torch.Tensor)]
            norms = [(pl_module.get_submodule(n), p) for n in self.norms[name] for p in ("weight", "bias")]
            self.targets += own + norms
            self.target_roots += [layer] * (len(own) + len(norms))

    def compute_masks(self, amount: float) -> list[torch.Tensor]:
        """Each root layer's channel mask, spread over its weight, bias and BatchNorm."""
        keep = {id(layer): S.channel_masks([layer.weight], amount)[0].flatten(1)[:, 0]
                for layer in set(self.target_roots)}
        masks = []
        for (module, p), root in zip(self.targets, self.target_roots):
            tensor = getattr(module, p)
            masks.append(keep[id(root)].view(-1, *([1] * (tensor.ndim - 1))).expand_as(tensor).clone())
        return masks

    def export_state(self, pl_module: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``state`` (a dense state dict with zero channels) as the slimmed network's state dict."""
        if self.example is None:
            return state
        net = _tracing_copy(pl_module, state)
        graph = _dependency_graph(net, self.example)
        for name in self.roots:
            layer = net.get_submodule(name)
            idxs = torch.nonzero(S.channel_norms(layer.weight) == 0).flatten().tolist()
            if idxs and len(idxs) < layer.weight.shape[0]:
                _out_group(graph, layer, idxs).prune()
        return {k: v.detach().clone() for k, v in net.state_dict().items()}


_HOOKS = {"weights": _WeightPruning, "channels": _ChannelPruning}


@functools.lru_cache(maxsize=None)
def _callback_class(namespace: str, structure: str) -> type:
    base = importlib.import_module(namespace).Callback
    hooks = _HOOKS[structure]
    name = hooks.__name__.lstrip("_")
    return type(name, (hooks, base), {"__module__": __name__, "__qualname__": name, "__doc__": hooks.__doc__})


def callbacks(namespace: str, cfg: TrainConfig) -> list[Any]:
    """The weight-pruning callback of ``cfg`` for a Trainer of ``namespace``, or none when
    ``prune_amount`` is 0."""
    if cfg.prune_amount <= 0:
        return []
    return [_callback_class(namespace, cfg.prune_structure)(cfg)]


def _resize(module: nn.Module, shapes: Mapping[str, torch.Size]) -> None:
    """Gives ``module``'s own parameters and buffers the shapes in ``shapes`` and updates the size
    attributes Conv, Linear and BatchNorm read."""
    for name, shape in shapes.items():
        tensor = getattr(module, name)
        if tensor is None or tensor.shape == shape:
            continue
        new = torch.empty(shape, dtype=tensor.dtype, device=tensor.device)
        setattr(module, name, nn.Parameter(new, tensor.requires_grad) if isinstance(tensor, nn.Parameter) else new)
    weight = getattr(module, "weight", None)
    if isinstance(module, PRUNABLE[:3]):
        module.out_channels, module.in_channels = weight.shape[0], weight.shape[1] * module.groups
    elif isinstance(module, nn.Linear):
        module.out_features, module.in_features = weight.shape
    elif isinstance(module, NORMS) and weight is not None:
        module.num_features = weight.shape[0]


def load_slimmed(model: nn.Module, state: Mapping[str, torch.Tensor]) -> nn.Module:
    """Loads a ``prune_structure: channels`` state dict (``best.pt``'s ``state_dict``) into ``model``
    built with the dense architecture (``objectives._models.build_model(ckpt["model"])``), first
    shrinking its Conv/Linear/BatchNorm layers to the saved shapes. Returns ``model``."""
    for prefix, module in model.named_modules():
        own = {n: state[f"{prefix}.{n}" if prefix else n].shape
               for n, _ in [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]
               if (f"{prefix}.{n}" if prefix else n) in state}
        _resize(module, own)
    model.load_state_dict(state)
    return model
