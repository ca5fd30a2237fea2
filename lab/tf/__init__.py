"""TensorFlow / Keras 3 versions of the package's models.

The modules here import TensorFlow; ``import lab`` alone never does. Before
any of them loads it, this package sets, unless already set,
``TF_CPP_MIN_LOG_LEVEL`` to 3 (no start-up chatter) and
``TF_ENABLE_ONEDNN_OPTS`` to 0 (reproducible float32 results).

Modules
-------
autoencoder   the sparse autoencoder as a Keras model, with ``cost_and_grad``
              and a gradient-descent loop matching ``lab.autoencoder``
barebones     the course's networks as functions of a parameter list
              (NHWC images, HWIO kernels), Kaiming init, one SGD step, train_part2
models        TwoLayerFC, ThreeLayerConvNet and their Sequential and
              functional versions
train         seed_everything, device, check_accuracy, train

``train`` is a module here; the function is ``lab.tf.train.train``.
"""
from __future__ import annotations

import importlib
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# oneDNN's reordered float32 kernels change results in the last digits from run
# to run and announce themselves on stderr at import; the book wants
# reproducible output, so they are off unless the environment says otherwise.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

__all__ = ["autoencoder", "build_model", "barebones", "models", "train",
           "seed_everything", "device", "describe_device", "check_accuracy",
           "TwoLayerFC", "ThreeLayerConvNet"]

_LAZY = {"build_model": "autoencoder",
         "seed_everything": "train", "device": "train", "describe_device": "train",
         "check_accuracy": "train", "TwoLayerFC": "models", "ThreeLayerConvNet": "models"}


def __getattr__(name):
    if name in _LAZY:
        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        return getattr(module, name)
    if name in ("autoencoder", "barebones", "models", "train"):
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
