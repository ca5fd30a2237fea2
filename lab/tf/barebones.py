"""Barebones TensorFlow 2: networks as plain functions of a parameter list.

The names and signatures of the course's TensorFlow notebook (CS231n 2019,
Part II): :func:`flatten`, :func:`two_layer_fc`, :func:`three_layer_convnet`,
Kaiming-normal initialisers, :func:`training_step` (``tf.GradientTape`` and a
manual SGD update ``w -= learning_rate * dw``) and the loop
:func:`train_part2`.  Everything is eager TensorFlow 2;
:func:`compiled_training_step` is the same step as a ``tf.function``.

Layouts (TensorFlow's): images NHWC (N, H, W, C), convolution kernels HWIO
(KH, KW, C_in, C_out), fully connected weights (D_in, D_out).
:func:`flatten` of an NHWC batch orders the features (h, w, c), so the rows of
``fc_w`` are in that order; :func:`convert_params` turns PyTorch parameters
(OIHW kernels, features flattened (c, h, w)) into these.
"""
from __future__ import annotations


import numpy as np

import tensorflow as tf

from lab import _frameworks as _fw
from lab._validate import finite_float, positive_int
from lab.data import iterate_minibatches
from lab.tf import train as _train
from lab.tf.train import _check_float32, _check_images, _check_labels, _static_shape, device

__all__ = ["flatten", "two_layer_fc", "three_layer_convnet", "kaiming_normal", "random_weight",
           "zero_weight", "two_layer_fc_init", "three_layer_convnet_init", "training_step",
           "compiled_training_step", "check_accuracy_part2", "train_part2", "convert_params"]


# ------------------------------------------------------------------ functions

def flatten(x):
    """Reshape (N, d1, ..., dk) to (N, d1 * ... * dk), keeping the memory order
    (for NHWC images the features come in (h, w, c) order)."""
    N = tf.shape(x)[0]
    return tf.reshape(x, (N, -1))


def _check_params(params, name, n):
    if not isinstance(params, (list, tuple)) or len(params) != n:
        got = f"{len(params)} entries" if isinstance(params, (list, tuple)) else type(params).__name__
        raise ValueError(f"{name} must be a list of {n} tensors, got {got}")
    for i, p in enumerate(params):
        _check_float32(p, f"params[{i}]")
    return [_static_shape(p) for p in params]


def two_layer_fc(x, params):
    """A two-layer fully connected ReLU network, no biases (the course's)::

        scores = relu(flatten(x) @ w1) @ w2

    Parameters
    ----------
    x : float32, shape (N, d1, ..., dk); for images NHWC (N, H, W, C)
    params : [w1, w2]
        w1 (D, H) with D = d1 * ... * dk, w2 (H, C).

    Returns
    -------
    scores : float32 tensor, shape (N, C)
    """
    (s1, s2) = _check_params(params, "params", 2)
    w1, w2 = params
    shape = _static_shape(x)
    if len(shape) == 4:
        _check_images(x, "x")
    else:
        _check_float32(x, "x")
    if len(shape) < 2 or (None not in shape[1:] and int(np.prod(shape[1:])) != s1[0]):
        raise ValueError(f"x must have shape (N, ...) with {s1[0]} features per sample to match "
                         f"w1 {s1}, got shape {shape}")
    if len(s1) != 2 or len(s2) != 2 or s1[1] != s2[0]:
        raise ValueError(f"params must be w1 (D, H) and w2 (H, C), got shapes {s1} and {s2}")
    h = tf.nn.relu(tf.matmul(flatten(x), w1))
    return tf.matmul(h, w2)


def three_layer_convnet(x, params):
    """The course's three-layer ConvNet::

        conv 5x5 (zero padding 2) - ReLU - conv 3x3 (zero padding 1) - ReLU
        - fully connected

    Parameters
    ----------
    x : float32, shape (N, H, W, C) (NHWC)
    params : [conv_w1, conv_b1, conv_w2, conv_b2, fc_w, fc_b]
        conv_w1 (5, 5, C, F1), conv_b1 (F1,), conv_w2 (3, 3, F1, F2),
        conv_b2 (F2,), fc_w (H * W * F2, num_classes) with rows in (h, w, c)
        order, fc_b (num_classes,).

    Returns
    -------
    scores : float32 tensor, shape (N, num_classes)
    """
    s = _check_params(params, "params", 6)
    conv_w1, conv_b1, conv_w2, conv_b2, fc_w, fc_b = params
    if (len(s[0]) != 4 or s[0][:2] != (5, 5) or len(s[2]) != 4 or s[2][:2] != (3, 3)
            or s[1] != (s[0][3],) or s[2][2] != s[0][3] or s[3] != (s[2][3],)
            or len(s[4]) != 2 or s[5] != (s[4][1],)):
        raise ValueError(
            "params must be conv_w1 (5, 5, C, F1), conv_b1 (F1,), conv_w2 (3, 3, F1, F2), "
            f"conv_b2 (F2,), fc_w (H*W*F2, num_classes), fc_b (num_classes,); got shapes {s}")
    shape = _check_images(x, "x", channels=s[0][2])
    if None not in shape[1:3] and shape[1] * shape[2] * s[2][3] != s[4][0]:
        raise ValueError(f"fc_w {s[4]} needs {s[4][0]} features, but x of shape {shape} gives "
                         f"{shape[1]}*{shape[2]}*{s[2][3]} = {shape[1] * shape[2] * s[2][3]}")
    conv1 = tf.nn.conv2d(x, conv_w1, strides=1, padding=[[0, 0], [2, 2], [2, 2], [0, 0]]) + conv_b1
    relu1 = tf.nn.relu(conv1)
    conv2 = tf.nn.conv2d(relu1, conv_w2, strides=1, padding=[[0, 0], [1, 1], [1, 1], [0, 0]]) + conv_b2
    relu2 = tf.nn.relu(conv2)
    return tf.matmul(flatten(relu2), fc_w) + fc_b


# ---------------------------------------------------------------- initialisers

_shape_tuple = _fw.shape_tuple
_rng = _fw.rng


def kaiming_normal(shape, seed=None):
    """A trainable ``tf.Variable`` of Kaiming-normal numbers,
    ``normal(0, 1) * sqrt(2 / fan_in)``.

    Parameters
    ----------
    shape : tuple of int
        (D_in, D_out) for a fully connected weight (fan_in = D_in), or HWIO
        (KH, KW, C_in, C_out) for a kernel (fan_in = KH * KW * C_in).
    seed : None, int >= 0 or numpy Generator, default None
        None draws from TensorFlow's global generator (reproducible after
        :func:`lab.tf.train.seed_everything`, as in the course); an int or a
        Generator draws with NumPy, the same numbers whichever backend.

    Returns
    -------
    tf.Variable, float32, shape ``shape``
    """
    shape = _shape_tuple(shape)
    if len(shape) == 2:
        fan_in = shape[0]
    elif len(shape) == 4:
        fan_in = int(np.prod(shape[:3]))
    else:
        raise ValueError(f"shape must be (D_in, D_out) or (KH, KW, C_in, C_out), got {shape}")
    rng = _rng(seed)
    scale = np.sqrt(2.0 / fan_in)
    if rng is None:
        value = tf.random.normal(shape, dtype=tf.float32) * scale
    else:
        value = (rng.standard_normal(shape) * scale).astype(np.float32)
    return tf.Variable(value)


random_weight = kaiming_normal
"""The course's name for :func:`kaiming_normal`."""


def zero_weight(shape):
    """A trainable ``tf.Variable`` of float32 zeros of shape ``shape`` (biases)."""
    return tf.Variable(tf.zeros(_shape_tuple(shape), dtype=tf.float32))


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
    :func:`three_layer_convnet`: kernels (5, 5, in_channel, channel_1) and
    (3, 3, channel_1, channel_2), fc_w (H * W * channel_2, num_classes),
    Kaiming-normal; biases zero; seed as in :func:`kaiming_normal`."""
    rng = _rng(seed)
    H, W = _shape_tuple(image_size, "image_size")
    return [kaiming_normal((5, 5, in_channel, channel_1), rng), zero_weight((channel_1,)),
            kaiming_normal((3, 3, channel_1, channel_2), rng), zero_weight((channel_2,)),
            kaiming_normal((H * W * channel_2, num_classes), rng), zero_weight((num_classes,))]


# ---------------------------------------------------------------------- training

def training_step(model_fn, x, y, params, learning_rate):
    """One step of SGD on the mean softmax cross-entropy.

    The loss is computed under a ``tf.GradientTape``; every parameter is then
    updated in place, ``w.assign_sub(learning_rate * dw)``.

    Parameters
    ----------
    model_fn : callable
        ``model_fn(x, params)`` -> scores (N, C), e.g. :func:`three_layer_convnet`.
    x : float32, shape (N, H, W, C)
    y : int, shape (N,)
        Labels in [0, C).
    params : list of tf.Variable
    learning_rate : float

    Returns
    -------
    loss : scalar float32 tensor, the loss before the update
    """
    if tf.executing_eagerly():
        _check_float32(x, "x")
    with tf.GradientTape() as tape:
        scores = model_fn(x, params)
        loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=scores)
        total_loss = tf.reduce_mean(loss)
    grad_params = tape.gradient(total_loss, params)
    for w, grad_w in zip(params, grad_params):
        w.assign_sub(learning_rate * grad_w)
    return total_loss


compiled_training_step = tf.function(training_step, reduce_retracing=True)
""":func:`training_step` as a ``tf.function`` (traced once per model_fn,
parameter list and learning rate; the graph then runs without Python)."""


def check_accuracy_part2(model_fn, params, X, y, batch_size: int = 1000) -> float:
    """Fraction of ``X`` (float32 (N, H, W, C)) that ``model_fn(x, params)``
    classifies correctly; ``y`` int (N,) in [0, C)."""
    shape = _check_images(np.asarray(X), "X")
    batch_size = positive_int(batch_size, "batch_size")
    C = _static_shape(params[-1])[-1]
    y = _check_labels(y, "y", shape[0], C)
    correct = 0
    for xb, yb in iterate_minibatches(np.asarray(X), y, batch_size):
        scores = model_fn(tf.constant(xb), params)
        correct += int(np.sum(np.argmax(scores.numpy(), axis=1) == yb))
    return correct / shape[0]


def train_part2(model_fn, init_fn, learning_rate, data, *, epochs: int = 1, batch_size: int = 64,
                seed=0, verbose=None, print_every: int = 100, num_train_samples: int | None = 1000,
                compiled: bool = True):
    """Train a barebones network with :func:`training_step` (the course's loop).

    Parameters
    ----------
    model_fn : callable
        ``model_fn(x, params)`` -> scores (N, C).
    init_fn : callable or list
        ``init_fn()`` returns the parameter list (e.g. :func:`three_layer_convnet_init`,
        seeded by default); a list of ``tf.Variable`` is used as it is.
    learning_rate : float > 0
    data : dict
        ``X_train`` float32 (N_train, H, W, C), ``y_train`` (N_train,),
        ``X_val``, ``y_val``.
    epochs, batch_size, seed, verbose, print_every, num_train_samples
        As in :func:`lab.tf.train.train`; ``seed`` orders the minibatches.
    compiled : bool, default True
        Use :data:`compiled_training_step` (a ``tf.function``), else the eager step.

    Returns
    -------
    history : dict
        ``loss_history`` (per iteration), ``train_acc_history`` and
        ``val_acc_history`` (per epoch), ``params`` (the trained list).
    """
    X_train, y_train, X_val, y_val = _train._check_data(data)
    X_train, X_val = np.asarray(X_train), np.asarray(X_val)
    learning_rate = finite_float(learning_rate, "learning_rate", low=0.0, low_open=True)
    epochs = positive_int(epochs, "epochs")
    batch_size = positive_int(batch_size, "batch_size")
    print_every = positive_int(print_every, "print_every")
    params = list(init_fn) if isinstance(init_fn, (list, tuple)) else init_fn()
    if not isinstance(params, (list, tuple)) or not all(isinstance(p, tf.Variable) for p in params):
        raise TypeError("init_fn() must return a list of tf.Variable")
    params = list(params)
    shape = _check_images(X_train, "data['X_train']")
    vshape = _check_images(X_val, "data['X_val']", channels=shape[3])
    C = _static_shape(params[-1])[-1]
    y_train = _check_labels(y_train, "data['y_train']", shape[0], C)
    y_val = _check_labels(y_val, "data['y_val']", vshape[0], C)
    model_fn(tf.constant(X_train[:1]), params)  # shape errors here, before training
    rng = seed if isinstance(seed, np.random.Generator) else _rng(seed)
    if rng is None:
        rng = np.random.default_rng()
    step = compiled_training_step if compiled else training_step
    lr = tf.constant(learning_rate, tf.float32)

    def one_step(xb, yb):
        return float(step(model_fn, tf.constant(xb), tf.constant(yb), params, lr))

    with tf.device(device()):
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
    """PyTorch-layout parameters of the same network, in this backend's layout.

    * two-layer net ``[w1, w2]``: w1's rows follow the flattened NCHW input
      (c, h, w); they are reordered to the flattened NHWC input (h, w, c).
    * ConvNet ``[conv_w1, conv_b1, conv_w2, conv_b2, fc_w, fc_b]``: kernels
      OIHW -> HWIO; fc_w (F2 * H * W, C) rows (c, h, w) -> (h, w, c).

    Both networks then give the same scores on the same images (NCHW for
    PyTorch, NHWC here).  Inverse of :func:`lab.torch.barebones.convert_params`.

    Parameters
    ----------
    params : list of arrays (numpy, or anything ``np.asarray`` reads)
    image_size : (H, W), default (32, 32)
        Size of the input images (the convolutions keep it).

    Returns
    -------
    list of float32 numpy arrays
    """
    p = [_as_numpy(v) for v in params]
    H, W = _shape_tuple(image_size, "image_size")
    if len(p) == 2:
        w1, w2 = p
        if w1.ndim != 2 or w1.shape[0] % (H * W):
            raise ValueError(f"w1 must have C*{H}*{W} rows, got shape {w1.shape}")
        C = w1.shape[0] // (H * W)
        w1 = w1.reshape(C, H, W, -1).transpose(1, 2, 0, 3).reshape(H * W * C, -1)
        return [w1, w2]
    if len(p) == 6:
        cw1, cb1, cw2, cb2, fw, fb = p
        if cw1.ndim != 4 or cw2.ndim != 4 or fw.ndim != 2 or fw.shape[0] != cw2.shape[0] * H * W:
            raise ValueError(f"params must be OIHW kernels and fc_w ({'F2'}*{H}*{W}, C), got shapes "
                             f"{[a.shape for a in p]}")
        F2 = cw2.shape[0]
        fw = fw.reshape(F2, H, W, -1).transpose(1, 2, 0, 3).reshape(H * W * F2, -1)
        return [cw1.transpose(2, 3, 1, 0), cb1, cw2.transpose(2, 3, 1, 0), cb2, fw, fb]
    raise ValueError(f"params must have 2 (two-layer net) or 6 (ConvNet) entries, got {len(p)}")
