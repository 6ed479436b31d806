"""Post-training int8 quantization of a trained model, and what it costs and saves (``hpo train --quantize``).

Why this API: torch 2.13 marks ``torch.ao.quantization`` (eager ``quantize_dynamic``/``prepare``/
``convert`` and FX mode) deprecated, and its warning sends users to torchao: the eager ``quantize_``
API for module-by-module quantization, ``prepare_pt2e``/``convert_pt2e`` for graph mode. So:

- **Linear** layers go through ``torchao.quantization.quantize_``: ``dynamic`` is
  ``Int8DynamicActivationInt8WeightConfig`` (int8 per-row weights, activations quantized per token
  at run time); ``static`` is ``Int8StaticActivationInt8WeightConfig`` with int8 per-row weights and
  a fixed per-tensor activation scale calibrated on training batches (the input's absolute maximum / 127).
- **Conv** layers: torchao's eager int8 tensor has no convolution kernel on the CPU (``aten.convolution``
  is not implemented for ``Int8Tensor``), and the pt2e route (``X86InductorQuantizer``) only runs fast
  after an inductor compile (a C++ toolchain and minutes per model; run eagerly its quantize/dequantize
  graph was ~70x slower than float here). Conv weights are therefore stored as int8 with a per-output-channel
  scale (symmetric) and dequantized once for float compute: the file shrinks ~4x, the speed stays float's.

The int8 file is ``{"state_dict", "model" (architecture, as in best.pt), "quantize" (the mode)}``;
:func:`load_quantized` loads it into a freshly built float model.

torchao is an optional dependency (``pip install 'hpo[quantize]'``); without it ``--quantize`` is
refused with exit 2 and that command.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hpo._errors import UsageError
from hpo._registry import Registry

INSTALL_HINT = "pip install 'hpo[quantize]' (it adds torchao)"
_CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass
class Measures:
    """One model's accuracy on the validation batches, file size and CPU latency per batch."""

    accuracy: float
    size_bytes: int
    latency_ms: float

    def as_metrics(self, prefix: str) -> dict[str, float]:
        return {f"{prefix}_val_acc": self.accuracy, f"{prefix}_size_bytes": float(self.size_bytes),
                f"{prefix}_latency_ms": self.latency_ms}


def torchao_quantization() -> Any:
    """``torchao.quantization``, or a UsageError naming the install command."""
    # torchao's import logs a warning per CUDA kernel library it cannot load (mxfp8, cutlass: GPU-only)
    # and torch's pytree one about an enum it registers; neither concerns int8 on the CPU.
    quiet = [logging.getLogger(name) for name in ("torchao", "torch.utils._pytree")]
    levels = [log.level for log in quiet]
    for log in quiet:
        log.setLevel(logging.ERROR)
    try:
        import torchao.quantization as tq
    except ImportError:
        raise UsageError(f"--quantize needs torchao, which is not installed: {INSTALL_HINT}") from None
    finally:
        for log, level in zip(quiet, levels):
            log.setLevel(level)
    return tq


# -- conv: int8 weight storage -------------------------------------------------------------------


def _dequantize_conv(module: nn.Module, args: Any) -> None:
    """Forward pre-hook: the float weight the conv computes with, rebuilt once from its int8 copy."""
    if "weight" not in module.__dict__:
        module.weight = module.weight_int8.to(module.weight_scale.dtype) * module.weight_scale


def quantize_conv_weight(conv: nn.Module) -> None:
    """Replaces ``conv.weight`` by ``weight_int8`` + per-output-channel ``weight_scale`` buffers (in place).

    The float weight becomes a plain attribute rebuilt by a pre-hook (the way ``torch.nn.utils.prune``
    reparametrizes), so ``state_dict`` and the saved file hold only the int8 copy.
    """
    weight = conv.weight.detach()
    amax = weight.abs().amax(dim=tuple(range(1, weight.ndim)), keepdim=True).clamp(min=1e-12)
    scale = amax / 127.0
    del conv._parameters["weight"]
    conv.register_buffer("weight_int8", torch.round(weight / scale).clamp(-127, 127).to(torch.int8))
    conv.register_buffer("weight_scale", scale)
    conv.register_forward_pre_hook(_dequantize_conv)


# -- linear: torchao ----------------------------------------------------------------------------


def _is_linear(module: nn.Module, fqn: str = "") -> bool:
    return isinstance(module, nn.Linear)


def _quantize_dynamic(model: nn.Module, calibration: Iterable[Any] | None) -> None:
    tq = torchao_quantization()
    tq.quantize_(model, tq.Int8DynamicActivationInt8WeightConfig(), filter_fn=_is_linear)


def calibrate(model: nn.Module, batches: Iterable[Any]) -> dict[str, torch.Tensor]:
    """Runs ``model`` on ``batches`` (inputs, or ``(inputs, targets)``) and returns, per Linear layer's
    name, the per-tensor scale of its input: the largest absolute value seen / 127, shaped like the input
    (torchao wants as many dimensions as the activation has)."""
    seen: dict[str, torch.Tensor] = {}
    handles = []

    def observer(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
            x = args[0].detach()
            amax = x.abs().amax().reshape((1,) * x.ndim).float()
            seen[name] = torch.maximum(seen[name], amax) if name in seen else amax
        return hook

    for name, module in model.named_modules():
        if _is_linear(module):
            handles.append(module.register_forward_pre_hook(observer(name)))
    try:
        with torch.inference_mode():
            for batch in batches:
                model(inputs_of(batch))
    finally:
        for handle in handles:
            handle.remove()
    return {name: (amax / 127.0).clamp(min=1e-12) for name, amax in seen.items()}


def _quantize_static(model: nn.Module, calibration: Iterable[Any] | None) -> None:
    if calibration is None:
        raise ValueError("static quantization needs calibration batches")
    tq = torchao_quantization()
    scales = calibrate(model, calibration)
    if not scales and any(_is_linear(m) for m in model.modules()):
        raise ValueError("static quantization saw no calibration batch: the training data is empty")
    granularity = [tq.PerTensor(), tq.PerRow()]  # one calibrated scale per activation, per-row weights
    for name, scale in scales.items():
        config = tq.Int8StaticActivationInt8WeightConfig(act_quant_scale=scale, granularity=granularity)
        tq.quantize_(model, config, filter_fn=lambda m, fqn, name=name: fqn == name and _is_linear(m))


MODES: Registry[Callable[[nn.Module, Iterable[Any] | None], None]] = Registry("quantize mode")
MODES.register("dynamic", _quantize_dynamic)
MODES.register("static", _quantize_static)


def quantize(model: nn.Module, mode: str, calibration: Iterable[Any] | None = None) -> nn.Module:
    """Quantizes ``model`` in place to int8 and returns it (in eval mode).

    Args:
        model: a float model on the CPU (a LightningModule too).
        mode: ``dynamic`` or ``static`` (see the module docstring).
        calibration: batches for ``static`` (training batches: inputs or ``(inputs, targets)``).
    """
    transform = MODES.get(mode)
    model.eval()
    transform(model, calibration)
    for module in model.modules():
        if isinstance(module, _CONV_TYPES) and "weight" in module._parameters:
            quantize_conv_weight(module)
    return model


def load_quantized(model: nn.Module, file: str | Path) -> nn.Module:
    """Loads an int8 file written by ``hpo train --quantize`` into ``model``, a freshly built float
    model of the same architecture (the class the objective trained), and returns it in eval mode.

    Example:
        ```python
        from objectives._quantize import load_quantized
        model = load_quantized(MyModule(hidden=64), "model-int8.pt")
        ```
    """
    torchao_quantization()  # torchao registers its tensor types for weights-only loading
    saved = torch.load(file, map_location="cpu", weights_only=True)
    state = saved["state_dict"] if "state_dict" in saved else saved
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        if isinstance(module, _CONV_TYPES) and f"{prefix}weight_int8" in state:
            quantize_conv_weight(module)
    # assign: the int8 tensors (torchao's for Linear) replace the float parameters instead of being copied into them
    model.load_state_dict(state, assign=True)
    return model.eval()


# -- measuring ----------------------------------------------------------------------------------


def inputs_of(batch: Any) -> torch.Tensor:
    """The inputs of a batch: the batch itself, or the first item of a tuple/list."""
    x = batch[0] if isinstance(batch, (tuple, list)) else batch
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"quantization needs batches of tensors or (inputs, targets); got {type(x).__name__}")
    return x.cpu()


def _targets_of(batch: Any) -> torch.Tensor:
    if not (isinstance(batch, (tuple, list)) and len(batch) >= 2 and isinstance(batch[1], torch.Tensor)):
        raise ValueError("measuring accuracy needs (inputs, targets) validation batches")
    return batch[1].cpu()


def accuracy(model: nn.Module, batches: Iterable[Any]) -> float:
    """Top-1 accuracy of ``model``'s logits (``[N, classes]``) on ``(inputs, targets)`` batches."""
    correct = total = 0
    with torch.inference_mode():
        for batch in batches:
            logits, y = model(inputs_of(batch)), _targets_of(batch)
            if logits.ndim != 2:
                raise ValueError(f"measuring accuracy needs [batch, classes] logits; the model returned "
                                 f"shape {tuple(logits.shape)}")
            correct += int((logits.argmax(dim=1) == y).sum())
            total += len(y)
    return correct / total if total else float("nan")


def latency_ms(model: nn.Module, batches: Iterable[Any], repeats: int = 5) -> float:
    """CPU time of one forward pass per batch, in milliseconds (see :func:`paired_latency_ms`)."""
    return paired_latency_ms([model], batches, repeats)[0]


def paired_latency_ms(models: list[nn.Module], batches: Iterable[Any], repeats: int = 5) -> list[float]:
    """CPU time of one forward pass per batch of each model, in milliseconds, on one intra-op thread:
    each batch's fastest of ``repeats`` passes (after a warm-up pass), averaged over the batches.

    The models take turns batch by batch, so that a change of the machine's load falls on all of
    them. The calling thread's CPU time, not the wall clock: with one thread every op runs on it,
    and on a shared machine the wall clock of a tiny net's forward varied tenfold with other
    processes' load (one thread is also how a small model is usually served)."""
    inputs = [inputs_of(b) for b in batches]
    if not inputs:
        return [float("nan")] * len(models)
    fastest = [[float("inf")] * len(inputs) for _ in models]
    with torch.inference_mode(), _one_thread():
        for model in models:
            for x in inputs:
                model(x)
        for _ in range(repeats):
            for i, x in enumerate(inputs):
                for times, model in zip(fastest, models):
                    start = time.thread_time()
                    model(x)
                    times[i] = min(times[i], time.thread_time() - start)
    return [1000.0 * sum(times) / len(times) for times in fastest]


@contextlib.contextmanager
def _one_thread() -> Any:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def state_size(model: nn.Module) -> int:
    """Bytes of ``torch.save(model.state_dict())``."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


def measure(model: nn.Module, val_batches: list[Any], file: str | Path | None = None) -> Measures:
    """Accuracy on ``val_batches``, size (of ``file`` if given, else of the state dict), latency per batch."""
    size = Path(file).stat().st_size if file is not None else state_size(model)
    return Measures(accuracy(model, val_batches), size, latency_ms(model, val_batches))


def weight_ratio(state: dict[str, Any]) -> float:
    """Bytes of the int8 weights of a quantized state dict, with their scales, over the bytes the
    same weights take in float32 (about 0.25 plus the scales): the file's other tensors (biases,
    norms) and its per-tensor overhead left out."""
    stored = floats = 0
    for name, value in state.items():
        if hasattr(value, "qdata"):
            stored += value.qdata.nbytes + value.scale.nbytes
            floats += 4 * value.qdata.numel()
        elif name.endswith(".weight_int8"):
            stored += value.nbytes + state[name.replace(".weight_int8", ".weight_scale")].nbytes
            floats += 4 * value.numel()
    return stored / floats if floats else float("nan")


def int8_weights(state: dict[str, Any]) -> dict[str, torch.dtype]:
    """Name → stored dtype of the int8 weights in a quantized state dict (torchao tensors hold theirs
    in ``qdata``)."""
    out = {}
    for name, value in state.items():
        stored = getattr(value, "qdata", value)
        if isinstance(stored, torch.Tensor) and stored.dtype == torch.int8:
            out[name] = stored.dtype
    return out


# -- a retrained model: float and int8 side by side --------------------------------------------


@dataclass
class Comparison:
    """What ``hpo train --quantize`` measured: the float model and its int8 copy on the same batches."""

    mode: str
    float: Measures
    int8: Measures
    int8_file: str
    calibration_batches: int
    weight_ratio: float

    def metrics(self) -> dict[str, float]:
        return {**self.float.as_metrics("float"), **self.int8.as_metrics("int8"), "int8_weight_ratio": self.weight_ratio}


def loaders_of(module: nn.Module, data: Any) -> tuple[Iterable[Any], Iterable[Any]]:
    """``(train, val)`` batches of what ``objectives.fit`` trained on: ``DeviceData``, a
    ``(train_loader, val_loader)`` pair, a ``{"train", "val"}`` mapping, a LightningDataModule, or
    ``None`` (the module's own dataloaders)."""
    from objectives._namespace import is_datamodule

    if data is None:
        return module.train_dataloader(), module.val_dataloader()
    if is_datamodule(data):
        return data.train_dataloader(), data.val_dataloader()
    if hasattr(data, "train") and hasattr(data, "val"):
        return data.train, data.val
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return data[0], data[1]
    if isinstance(data, dict) and "train" in data and data.get("val") is not None:
        return data["train"], data["val"]
    raise ValueError("quantization measures accuracy on the validation split, and the training data has none")


def quantize_trained(
    module: nn.Module, data: Any, checkpoint: str | Path, mode: str, float_file: str | Path, int8_file: str | Path,
    calibration_batches: int = 32,
) -> Comparison:
    """Loads the best weights of ``checkpoint`` into the trained ``module``, measures it (size of
    ``float_file``), quantizes it with ``mode`` (``static``: calibrated on up to ``calibration_batches``
    training batches), saves it to ``int8_file`` and measures that too, on the same validation batches."""
    import itertools

    from objectives._sparsity import load_slimmed

    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    # load_slimmed: a prune_structure: channels checkpoint holds fewer channels than the module.
    load_slimmed(module, saved["state_dict"] if "state_dict" in saved else saved)
    module.cpu().eval()
    train, val = loaders_of(module, data)
    val_batches = list(val)
    reference = float_copy(module)
    calibration = list(itertools.islice(train, calibration_batches)) if mode == "static" else None
    quantize(module, mode, calibration)
    state = module.state_dict()
    Path(int8_file).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": state, "model": saved.get("model"), "quantize": mode}, int8_file)
    latency = paired_latency_ms([reference, module], val_batches)
    before = Measures(accuracy(reference, val_batches), Path(float_file).stat().st_size, latency[0])
    after = Measures(accuracy(module, val_batches), Path(int8_file).stat().st_size, latency[1])
    return Comparison(mode, before, after, str(int8_file), len(calibration or ()), weight_ratio(state))


def float_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` to measure beside its quantized self (a LightningModule's copy
    leaves its Trainer behind: ``LightningModule.__getstate__`` drops it)."""
    import copy

    return copy.deepcopy(module)
