"""PyTorch versions of the package's models.

Importing ``lab.torch`` imports PyTorch; ``import lab`` alone never does.
Inside this package ``import torch`` still means PyTorch (absolute imports), as
long as nothing here is run as a script from inside ``lab/``.

Modules
-------
autoencoder   the sparse autoencoder as an ``nn.Module``, with ``cost_and_grad``
              and training loops matching ``lab.autoencoder``
"""
from __future__ import annotations

import importlib

__all__ = ["autoencoder", "SparseAutoencoder"]

_LAZY = {"SparseAutoencoder": "autoencoder"}


def __getattr__(name):
    if name in _LAZY:
        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        return getattr(module, name)
    if name in ("autoencoder",):
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
