"""PyTorch versions of the package's models.

Importing ``lab.torch`` imports PyTorch; ``import lab`` alone never does.
Inside this package ``import torch`` still means PyTorch (absolute imports), as
long as nothing here is run as a script from inside ``lab/``.

Modules
-------
autoencoder   the sparse autoencoder as an ``nn.Module``, with ``cost_and_grad``
              and training loops matching ``lab.autoencoder``
barebones     the course's networks as functions of a parameter list
              (NCHW images, OIHW kernels), Kaiming init, one SGD step, train_part2
models        TwoLayerFC, ThreeLayerConvNet and their nn.Sequential versions
train         seed_everything, device, check_accuracy, train

``train`` is a module here; the function is ``lab.torch.train.train``.
"""
from __future__ import annotations

import importlib

__all__ = ["autoencoder", "SparseAutoencoder", "barebones", "models", "train",
           "seed_everything", "device", "describe_device", "check_accuracy",
           "TwoLayerFC", "ThreeLayerConvNet"]

_LAZY = {"SparseAutoencoder": "autoencoder",
         "seed_everything": "train", "device": "train", "describe_device": "train",
         "check_accuracy": "train", "TwoLayerFC": "models", "ThreeLayerConvNet": "models"}


def __getattr__(name):
    if name in _LAZY:
        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        return getattr(module, name)
    if name in ("autoencoder", "barebones", "models", "train"):
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
