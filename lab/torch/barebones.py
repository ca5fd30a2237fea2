"""Barebones PyTorch: networks as plain functions of a parameter list.

The names and signatures of the course's PyTorch notebook (CS231n 2019,
Part II): :func:`flatten`, :func:`two_layer_fc`, :func:`three_layer_convnet`,
:func:`random_weight` (Kaiming normal) and :func:`zero_weight`,
:func:`training_step` (``requires_grad`` tensors, ``loss.backward()``, then
a manual SGD update ``w -= learning_rate * w.grad`` under ``torch.no_grad()``)
and the loop :func:`train_part2`.

Layouts (PyTorch's): images NCHW (N, C, H, W), convolution kernels OIHW
(C_out, C_in, KH, KW), fully connected weights (D_in, D_out) as in the course
(``x.mm(w)``; ``nn.Linear`` stores the transpose).  :func:`flatten` of an NCHW
batch orders the features (c, h, w), so the rows of ``fc_w`` are in that
order; :func:`convert_params` turns TensorFlow parameters (HWIO kernels,
features flattened (h, w, c)) into these.
"""
from __future__ import annotations


import numpy as np
import torch
import torch.nn.functional as F

from lab import _frameworks as _fw
from lab._validate import finite_float, positive_int
from lab.data import iterate_minibatches
from lab.torch import train as _train
from lab.torch.train import _check_float32, _check_images, _check_labels, _to_numpy, device

__all__ = ["flatten", "two_layer_fc", "three_layer_convnet", "kaiming_normal", "random_weight",
           "zero_weight", "two_layer_fc_init", "three_layer_convnet_init", "training_step",
           "check_accuracy_part2", "train_part2", "convert_params"]


# ------------------------------------------------------------------ functions

def flatten(x):
    """Reshape (N, d1, ..., dk) to (N, d1 * ... * dk), keeping the memory order
    (for NCHW images the features come in (c, h, w) order)."""
    N = x.shape[0]
    return x.view(N, -1) if x.is_contiguous() else x.reshape(N, -1)


def _check_params(params, name, n):
    if not isinstance(params, (list, tuple)) or len(params) != n:
        got = f"{len(params)} entries" if isinstance(params, (list, tuple)) else type(params).__name__
        raise ValueError(f"{name} must be a list of {n} tensors, got {got}")
    for i, p in enumerate(params):
        if not isinstance(p, torch.Tensor):
            raise TypeError(f"params[{i}] must be a torch.Tensor, got {type(p).__name__}")
        _check_float32(p, f"params[{i}]")
    return [tuple(p.shape) for p in params]


def _check_x(x):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}; use torch.as_tensor(x)")


def two_layer_fc(x, params):
    """A two-layer fully connected ReLU network, no biases (the course's)::

        scores = relu(flatten(x).mm(w1)).mm(w2)

    Parameters
    ----------
    x : float32 tensor, shape (N, d1, ..., dk); for images NCHW (N, C, H, W)
    params : [w1, w2]
        w1 (D, H) with D = d1 * ... * dk, w2 (H, C).

    Returns
    -------
    scores : float32 tensor, shape (N, C)
    """
    _check_x(x)
    s1, s2 = _check_params(params, "params", 2)
    w1, w2 = params
    shape = tuple(x.shape)
    if len(shape) == 4:
        _check_images(x, "x")
    else:
        _check_float32(x, "x")
    if len(shape) < 2 or int(np.prod(shape[1:])) != s1[0]:
        raise ValueError(f"x must have shape (N, ...) with {s1[0]} features per sample to match "
                         f"w1 {s1}, got shape {shape}")
    if len(s1) != 2 or len(s2) != 2 or s1[1] != s2[0]:
        raise ValueError(f"params must be w1 (D, H) and w2 (H, C), got shapes {s1} and {s2}")
    x = F.relu(flatten(x).mm(w1))
    return x.mm(w2)


def three_layer_convnet(x, params):
    """The course's three-layer ConvNet::

        conv 5x5 (zero padding 2) - ReLU - conv 3x3 (zero padding 1) - ReLU
        - fully connected

    Parameters
    ----------
    x : float32 tensor, shape (N, C, H, W) (NCHW)
    params : [conv_w1, conv_b1, conv_w2, conv_b2, fc_w, fc_b]
        conv_w1 (F1, C, 5, 5), conv_b1 (F1,), conv_w2 (F2, F1, 3, 3),
        conv_b2 (F2,), fc_w (F2 * H * W, num_classes) with rows in (c, h, w)
        order, fc_b (num_classes,).

    Returns
    -------
    scores : float32 tensor, shape (N, num_classes)
    """
    _check_x(x)
    s = _check_params(params, "params", 6)
    conv_w1, conv_b1, conv_w2, conv_b2, fc_w, fc_b = params
    if (len(s[0]) != 4 or s[0][2:] != (5, 5) or len(s[2]) != 4 or s[2][2:] != (3, 3)
            or s[1] != (s[0][0],) or s[2][1] != s[0][0] or s[3] != (s[2][0],)
            or len(s[4]) != 2 or s[5] != (s[4][1],)):
        raise ValueError(
            "params must be conv_w1 (F1, C, 5, 5), conv_b1 (F1,), conv_w2 (F2, F1, 3, 3), "
            f"conv_b2 (F2,), fc_w (F2*H*W, num_classes), fc_b (num_classes,); got shapes {s}")
    shape = _check_images(x, "x", channels=s[0][1])
    if shape[2] * shape[3] * s[2][0] != s[4][0]:
        raise ValueError(f"fc_w {s[4]} needs {s[4][0]} features, but x of shape {shape} gives "
                         f"{s[2][0]}*{shape[2]}*{shape[3]} = {s[2][0] * shape[2] * shape[3]}")
    relu1 = F.relu(F.conv2d(x, conv_w1, conv_b1, padding=2))
    relu2 = F.relu(F.conv2d(relu1, conv_w2, conv_b2, padding=1))
    return flatten(relu2).mm(fc_w) + fc_b


# ---------------------------------------------------------------- initialisers

_shape_tuple = _fw.shape_tuple
_rng = _fw.rng


def kaiming_normal(shape, seed=None):
    """A float32 tensor with ``requires_grad=True`` of Kaiming-normal numbers,
    ``normal(0, 1) * sqrt(2 / fan_in)``, on :func:`lab.torch.train.device`.

    Parameters
    ----------
    shape : tuple of int
        (D_in, D_out) for a fully connected weight (fan_in = D_in), or OIHW
        (C_out, C_in, KH, KW) for a kernel (fan_in = C_in * KH * KW).
    seed : None, int >= 0 or numpy Generator, default None
        None draws from PyTorch's global generator (reproducible after
        :func:`lab.torch.train.seed_everything`, as in the course); an int or a
        Generator draws with NumPy, the same numbers whichever backend.

    Returns
    -------
    torch.Tensor, float32, shape ``shape``, requires_grad
    """
    shape = _shape_tuple(shape)
    if len(shape) == 2:
        fan_in = shape[0]
    elif len(shape) == 4:
        fan_in = int(np.prod(shape[1:]))
    else:
        raise ValueError(f"shape must be (D_in, D_out) or (C_out, C_in, KH, KW), got {shape}")
    rng = _rng(seed)
    scale = np.sqrt(2.0 / fan_in)
    if rng is None:
        w = torch.randn(shape, dtype=torch.float32) * scale
    else:
        w = torch.from_numpy((rng.standard_normal(shape) * scale).astype(np.float32))
    w = w.to(device())
    w.requires_grad = True
    return w


random_weight = kaiming_normal
"""The course's name for :func:`kaiming_normal`."""


def zero_weight(shape):
    """A float32 tensor of zeros with ``requires_grad=True`` (biases), on
    :func:`lab.torch.train.device`."""
    return torch.zeros(_shape_tuple(shape), dtype=torch.float32, device=device(),
                       requires_grad=True)


def two_layer_fc_init(input_size: int = 3 * 32 * 32, hidden_size: int = 4000,
                      num_classes: int = 10, seed=0):
    """``[w1, w2]`` for :func:`two_layer_fc`: w1 (input_size, hidden_size),
    w2 (hidden_size, num_classes), Kaiming-normal; seed as in
    :func:`kaiming_normal` (one generator for both; default 0)."""
    rng = _rng(seed)
    return [kaiming_normal((input_size, hidden_size), rng),
            kaiming_normal((hidden_size, num_classes), rng)]


def three_layer_convnet_init(in_channel: int = 3, channel_1: int = 32, channel_2: int = 16,
                             num_classes: int = 10, image_size=(32, 32), seed=0):
    """``[conv_w1, conv_b1, conv_w2, conv_b2, fc_w, fc_b]`` for
    :func:`three_layer_convnet`: kernels (channel_1, in_channel, 5, 5) and
    (channel_2, channel_1, 3, 3), fc_w (channel_2 * H * W, num_classes),
    Kaiming-normal; biases zero; seed as in :func:`kaiming_normal`."""
    rng = _rng(seed)
    H, W = _shape_tuple(image_size, "image_size")
    return [kaiming_normal((channel_1, in_channel, 5, 5), rng), zero_weight((channel_1,)),
            kaiming_normal((channel_2, channel_1, 3, 3), rng), zero_weight((channel_2,)),
            kaiming_normal((channel_2 * H * W, num_classes), rng), zero_weight((num_classes,))]


# ---------------------------------------------------------------------- training

def training_step(model_fn, x, y, params, learning_rate):
    """One step of SGD on the mean softmax cross-entropy.

    ``loss.backward()`` fills ``w.grad`` of every ``requires_grad`` parameter;
    then, under ``torch.no_grad()``, ``w -= learning_rate * w.grad`` in place
    and the gradient is zeroed.

    Parameters
    ----------
    model_fn : callable
        ``model_fn(x, params)`` -> scores (N, C), e.g. :func:`three_layer_convnet`.
    x : float32 tensor, shape (N, C, H, W)
    y : int64 tensor, shape (N,)
        Labels in [0, C).
    params : list of torch.Tensor with requires_grad
    learning_rate : float

    Returns
    -------
    loss : float, the loss before the update
    """
    for i, w in enumerate(params):
        if not (isinstance(w, torch.Tensor) and w.requires_grad):
            raise TypeError(f"params[{i}] must be a torch.Tensor with requires_grad=True")
    scores = model_fn(x, params)
    loss = F.cross_entropy(scores, y)
    loss.backward()
    with torch.no_grad():
        for w in params:
            w -= learning_rate * w.grad
            w.grad.zero_()
    return loss.item()


def check_accuracy_part2(model_fn, params, X, y, batch_size: int = 1000) -> float:
    """Fraction of ``X`` (float32 (N, C, H, W)) that ``model_fn(x, params)``
    classifies correctly; ``y`` int (N,) in [0, num_classes)."""
    X = _to_numpy(X)
    shape = _check_images(X, "X")
    batch_size = positive_int(batch_size, "batch_size")
    y = _check_labels(y, "y", shape[0], int(params[-1].shape[-1]))
    dev = params[0].device
    correct = 0
    with torch.no_grad():
        for xb, yb in iterate_minibatches(X, y, batch_size):
            scores = model_fn(torch.as_tensor(xb, device=dev), params)
            correct += int((scores.argmax(dim=1).cpu().numpy() == yb).sum())
    return correct / shape[0]


def train_part2(model_fn, init_fn, learning_rate, data, *, epochs: int = 1, batch_size: int = 64,
                seed=0, verbose=None, print_every: int = 100, num_train_samples: int | None = 1000):
    """Train a barebones network with :func:`training_step` (the course's loop).

    Parameters
    ----------
    model_fn : callable
        ``model_fn(x, params)`` -> scores (N, C).
    init_fn : callable or list
        ``init_fn()`` returns the parameter list (e.g. :func:`three_layer_convnet_init`,
        seeded by default); a list of ``requires_grad`` tensors is used as it is.
    learning_rate : float > 0
    data : dict
        ``X_train`` float32 (N_train, C, H, W), ``y_train`` (N_train,),
        ``X_val``, ``y_val``.
    epochs, batch_size, seed, verbose, print_every, num_train_samples
        As in :func:`lab.torch.train.train`; ``seed`` orders the minibatches.

    Returns
    -------
    history : dict
        ``loss_history`` (per iteration), ``train_acc_history`` and
        ``val_acc_history`` (per epoch), ``params`` (the trained list).
    """
    X_train, y_train, X_val, y_val = _train._check_data(data)
    X_train, X_val = _to_numpy(X_train), _to_numpy(X_val)
    learning_rate = finite_float(learning_rate, "learning_rate", low=0.0, low_open=True)
    epochs = positive_int(epochs, "epochs")
    batch_size = positive_int(batch_size, "batch_size")
    print_every = positive_int(print_every, "print_every")
    params = list(init_fn) if isinstance(init_fn, (list, tuple)) else init_fn()
    if not isinstance(params, (list, tuple)) or not all(
            isinstance(p, torch.Tensor) and p.requires_grad for p in params):
        raise TypeError("init_fn() must return a list of torch.Tensor with requires_grad=True")
    params = list(params)
    shape = _check_images(X_train, "data['X_train']")
    vshape = _check_images(X_val, "data['X_val']", channels=shape[1])
    C = int(params[-1].shape[-1])
    y_train = _check_labels(y_train, "data['y_train']", shape[0], C)
    y_val = _check_labels(y_val, "data['y_val']", vshape[0], C)
    dev = params[0].device
    with torch.no_grad():
        model_fn(torch.as_tensor(X_train[:1], device=dev), params)  # shape errors, before training
    rng = _rng(seed) or np.random.default_rng()

    def one_step(xb, yb):
        return training_step(model_fn, torch.as_tensor(xb, device=dev),
                             torch.as_tensor(yb, device=dev), params, learning_rate)

    history = _fw.train_part2_loop(
        one_step, lambda X, y: check_accuracy_part2(model_fn, params, X, y),
        X_train, y_train, X_val, y_val, epochs=epochs, batch_size=batch_size,
        generator=rng, learning_rate=learning_rate, print_every=print_every,
        num_train_samples=num_train_samples, verbose=verbose)
    history["params"] = params
    return history


# --------------------------------------------------------------------- layouts

_as_numpy = _fw.as_float32_numpy


def convert_params(params, image_size=(32, 32)):
    """TensorFlow-layout parameters of the same network, in this backend's layout.

    * two-layer net ``[w1, w2]``: w1's rows follow the flattened NHWC input
      (h, w, c); they are reordered to the flattened NCHW input (c, h, w).
    * ConvNet ``[conv_w1, conv_b1, conv_w2, conv_b2, fc_w, fc_b]``: kernels
      HWIO -> OIHW; fc_w (H * W * F2, C) rows (h, w, c) -> (c, h, w).

    Both networks then give the same scores on the same images (NHWC for
    TensorFlow, NCHW here).  Inverse of :func:`lab.tf.barebones.convert_params`.

    Parameters
    ----------
    params : list of arrays (numpy, tf.Variable, or anything ``np.asarray`` reads)
    image_size : (H, W), default (32, 32)

    Returns
    -------
    list of float32 numpy arrays (``torch.tensor(a, requires_grad=True)`` each
    for :func:`training_step`)
    """
    p = [_as_numpy(v) for v in params]
    H, W = _shape_tuple(image_size, "image_size")
    if len(p) == 2:
        w1, w2 = p
        if w1.ndim != 2 or w1.shape[0] % (H * W):
            raise ValueError(f"w1 must have {H}*{W}*C rows, got shape {w1.shape}")
        C = w1.shape[0] // (H * W)
        w1 = w1.reshape(H, W, C, -1).transpose(2, 0, 1, 3).reshape(C * H * W, -1)
        return [w1, w2]
    if len(p) == 6:
        cw1, cb1, cw2, cb2, fw, fb = p
        if cw1.ndim != 4 or cw2.ndim != 4 or fw.ndim != 2 or fw.shape[0] != cw2.shape[3] * H * W:
            raise ValueError(f"params must be HWIO kernels and fc_w ({H}*{W}*F2, C), got shapes "
                             f"{[a.shape for a in p]}")
        F2 = cw2.shape[3]
        fw = fw.reshape(H, W, F2, -1).transpose(2, 0, 1, 3).reshape(F2 * H * W, -1)
        return [cw1.transpose(3, 2, 0, 1), cb1, cw2.transpose(3, 2, 0, 1), cb2, fw, fb]
    raise ValueError(f"params must have 2 (two-layer net) or 6 (ConvNet) entries, got {len(p)}")
