"""One epoch of Part III's training loop on 1,000 CIFAR-10 images, per backend."""
import os

import lab.tf  # noqa: F401  (first: quiets TensorFlow before it loads)
from lab.tf import models as tm, train as ttr
from lab.torch import models as pm, train as ptr

import keras  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import numpy as np  # noqa: E402


def synthetic_images(n=1500, layout="NCHW", seed=0):
    """A small learnable 10-class set (a fixed random pattern per class plus
    twice as much noise), split like ``load_cifar10``: 1,000 training images."""
    rng = np.random.default_rng(seed)
    patterns = rng.standard_normal((10, 3, 32, 32))
    y = rng.integers(0, 10, n)
    X = ((patterns[y] + 2.0 * rng.standard_normal((n, 3, 32, 32))) / np.sqrt(5.0)).astype(np.float32)
    if layout == "NHWC":
        X = X.transpose(0, 2, 3, 1).copy()
    return {"X_train": X[:1000], "y_train": y[:1000], "X_val": X[1000:], "y_val": y[1000:]}


def _check_history(h, n_train=1000, batch_size=64):
    assert len(h["loss_history"]) == -(-n_train // batch_size)
    assert len(h["train_acc_history"]) == len(h["val_acc_history"]) == 1
    assert all(np.isfinite(h["loss_history"]))


@pytest.mark.real_cache
def test_cifar10_one_epoch_on_1000_images_beats_chance():
    """1,000 CIFAR-10 training images, one epoch, each backend; the real data
    where ``LAB_DATA`` is set (as in CI), the synthetic set otherwise."""
    from lab.data import load_cifar10

    for backend, layout in [("tf", "NHWC"), ("torch", "NCHW")]:
        if os.environ.get("LAB_DATA"):
            d = load_cifar10(num_training=1000, num_validation=500, num_test=1, layout=layout)
        else:
            d = synthetic_images(layout=layout)
        if backend == "tf":
            ttr.seed_everything(0)
            h = ttr.train(tm.ThreeLayerConvNet(3, 32, 16, 10), d,
                          keras.optimizers.SGD(3e-3, momentum=0.9, nesterov=True), verbose=False)
        else:
            ptr.seed_everything(0)
            h = ptr.train(pm.three_layer_convnet_sequential(), d,
                          lambda p: torch.optim.SGD(p, lr=1e-2, momentum=0.9, nesterov=True),
                          verbose=False)
        _check_history(h)
        assert h["val_acc_history"][-1] > 0.15, backend  # chance is 0.1
