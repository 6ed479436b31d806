"""Which Lightning drives a module: ``pytorch_lightning`` or ``lightning.pytorch``.

The two packages ship the same classes twice; a Trainer of one refuses a module, a data module or
a callback of the other. hpo reads the namespace off the module's class hierarchy and builds the
Trainer, the strategy and its own callbacks from that package.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

NAMESPACES = ("pytorch_lightning", "lightning.pytorch")


def namespace_name(obj: Any) -> str | None:
    """``"pytorch_lightning"``/``"lightning.pytorch"`` for a Lightning object or class (by its MRO), else None."""
    cls = obj if isinstance(obj, type) else type(obj)
    for base in cls.__mro__:
        root = base.__module__ or ""
        for name in NAMESPACES:
            if base.__name__ in ("LightningModule", "LightningDataModule") and (
                root == name or root.startswith(name + ".")
            ):
                return name
    return None


def is_lightning_module(obj: Any) -> bool:
    cls = obj if isinstance(obj, type) else type(obj)
    return any(b.__name__ == "LightningModule" and namespace_name(b) for b in cls.__mro__)


def is_datamodule(obj: Any) -> bool:
    cls = obj if isinstance(obj, type) else type(obj)
    return any(b.__name__ == "LightningDataModule" and namespace_name(b) for b in cls.__mro__)


def namespace_of(module: Any, data: Any = None) -> ModuleType:
    """The Lightning package that drives ``module`` (and ``data``, which must come from the same one)."""
    name = namespace_name(module)
    if name is None:
        raise TypeError(f"expected a LightningModule (pytorch_lightning or lightning.pytorch), "
                        f"got {type(module).__name__}")
    data_name = namespace_name(data) if data is not None and is_datamodule(data) else None
    if data_name is not None and data_name != name:
        raise TypeError(f"{type(module).__name__} is a {name} LightningModule but {type(data).__name__} is a "
                        f"{data_name} LightningDataModule; Lightning cannot mix the two packages: "
                        "import both from one of them")
    return importlib.import_module(name)
