"""TensorFlow / Keras 3 versions of the package's models.

The modules here import TensorFlow; ``import lab`` alone never does. Before
any of them loads it, this package sets, unless already set,
``TF_CPP_MIN_LOG_LEVEL`` to 3 (no start-up chatter) and
``TF_ENABLE_ONEDNN_OPTS`` to 0 (reproducible float32 results).

Modules
-------
autoencoder   the sparse autoencoder as a Keras model, with ``cost_and_grad``
              and a gradient-descent loop matching ``lab.autoencoder``
"""
from __future__ import annotations

import importlib
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# oneDNN's reordered float32 kernels change results in the last digits from run
# to run and announce themselves on stderr at import; the book wants
# reproducible output, so they are off unless the environment says otherwise.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

__all__ = ["autoencoder", "build_model"]

_LAZY = {"build_model": "autoencoder"}


def __getattr__(name):
    if name in _LAZY:
        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        return getattr(module, name)
    if name in ("autoencoder",):
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
