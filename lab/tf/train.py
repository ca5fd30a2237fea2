"""Training and evaluation of Keras classifiers on image batches (TensorFlow 2).

The one training substrate of the TensorFlow chapters:

* :func:`seed_everything` seeds every random source a run draws from;
* :func:`device` names the device computations run on;
* :func:`train` runs minibatch epochs with a ``tf.function`` step
  (``GradientTape`` + ``optimizer.apply_gradients``), drawing minibatches
  from :func:`lab.data.iterate_minibatches` and reporting through
  :func:`lab.progress.progress`;
* :func:`check_accuracy` scores a model in batches.

Keras takes images NHWC, shape (N, H, W, C): (N, 32, 32, 3) for CIFAR-10
(``lab.data.load_cifar10(layout="NHWC")``), float32.  Inputs are checked
before any computation: an NCHW batch (N, 3, 32, 32), a float64 or uint8
array, or labels outside [0, num_classes) raise a ValueError/TypeError that
says what was received and what was expected.
"""
from __future__ import annotations

import os
import random
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

from lab import _frameworks as _fw  # noqa: E402
from lab._validate import finite_float, nonneg_int, positive_int  # noqa: E402
from lab.data import iterate_minibatches  # noqa: E402
from lab.progress import progress  # noqa: E402

__all__ = ["seed_everything", "device", "describe_device", "check_accuracy", "train"]

LAYOUT = "NHWC"


# --------------------------------------------------------------------- helpers

def seed_everything(seed: int = 0) -> int:
    """Seed every random source a TensorFlow run draws from.

    Seeds Python's ``random``, NumPy's global generator (``np.random.seed``)
    and TensorFlow's global seed together with Keras's global seed generator,
    all through ``keras.utils.set_random_seed(seed)`` (which calls
    ``random.seed``, ``np.random.seed`` and ``tf.random.set_seed``).  After it,
    building the same model twice gives the same initial weights, and
    ``tf.random.normal`` draws the same numbers.  It does not touch
    ``np.random.default_rng`` generators, which ``lab`` seeds explicitly
    (minibatch order: the ``seed`` of :func:`train`).

    Parameters
    ----------
    seed : int >= 0, default 0

    Returns
    -------
    seed : int
    """
    seed = nonneg_int(seed, "seed")
    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)
    tf.random.set_seed(seed)
    return seed


def device(verbose: bool = False) -> str:
    """The logical device TensorFlow computes on: ``'/GPU:0'`` when a GPU is
    visible, else ``'/CPU:0'``.

    Use it as ``with tf.device(device()): ...``.  With ``verbose`` it prints
    :func:`describe_device`.

    Returns
    -------
    str
    """
    name = "/GPU:0" if tf.config.list_logical_devices("GPU") else "/CPU:0"
    if verbose:
        print(describe_device())
    return name


def describe_device() -> str:
    """One line that says which device :func:`device` picks and why,
    e.g. ``'using CPU (no GPU found)'`` or ``'using GPU /GPU:0'``."""
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        return f"using GPU /GPU:0 ({len(gpus)} GPU{'s' if len(gpus) > 1 else ''} found)"
    return "using CPU (no GPU found)"


def _dtype_name(x) -> str:
    dt = getattr(x, "dtype", None)
    if isinstance(dt, tf.dtypes.DType):
        return dt.name
    if dt is None:
        return np.asarray(x).dtype.name
    return np.dtype(dt).name


def _check_float32(x, name: str):
    """Raise TypeError unless ``x`` holds float32 numbers."""
    _fw.check_float32(_dtype_name(x), name, LAYOUT)


def _static_shape(x) -> tuple:
    shape = getattr(x, "shape", None)
    if shape is None:
        shape = np.shape(x)
    if isinstance(shape, tf.TensorShape):
        shape = tuple(shape.as_list())
    return tuple(shape)


def _check_images(x, name: str, channels: int | None = None, image_size=None):
    """Check a batch of NHWC images: 4-D, float32, channels last (an array
    that looks NCHW is a layout error; see :func:`lab._frameworks.check_images`).
    Returns the shape."""
    return _fw.check_images(_static_shape(x), _dtype_name(x), name, LAYOUT, channels, image_size)


def _check_labels(y, name: str, n: int, num_classes: int):
    """Integer labels of shape (n,) in [0, num_classes), as int64 numpy."""
    if isinstance(y, tf.Tensor):
        y = y.numpy()
    return _fw.check_labels(y, name, n, num_classes)


_check_data = _fw.check_data


def _num_classes(model, x_one):
    """C, from the scores of one input (builds the model if it is not built)."""
    scores = model(tf.constant(x_one), training=False)
    if len(scores.shape) != 2:
        raise ValueError(f"model must return scores of shape (N, C), got shape {tuple(scores.shape)}")
    return int(scores.shape[1])


def _model_channels(model):
    """The channel count a model's declared input expects, or None."""
    try:
        shape = model.inputs[0].shape
    except (AttributeError, IndexError, TypeError, ValueError):
        shape = getattr(model, "input_shape_expected", None)
        if shape is None:
            return None
        return shape[-1]
    return shape[-1] if len(shape) == 4 else None


# ------------------------------------------------------------------ evaluation

def _predict_fn(model):
    @tf.function(reduce_retracing=True)
    def predict(x):
        return tf.argmax(model(x, training=False), axis=1, output_type=tf.int64)
    return predict


def check_accuracy(model, X, y, batch_size: int = 1000, *, _predict=None) -> float:
    """Fraction of ``X`` that ``model`` classifies correctly.

    Parameters
    ----------
    model : keras.Model
        Maps float32 (N, H, W, C) to class scores (N, C).
    X : float32 array, shape (N, H, W, C)
        NHWC images, e.g. (N, 32, 32, 3).
    y : int array, shape (N,)
        Labels in [0, C).
    batch_size : int, default 1000
        Images per forward pass.

    Returns
    -------
    acc : float in [0, 1]
    """
    X = np.asarray(X) if not isinstance(X, tf.Tensor) else X.numpy()
    shape = _check_images(X, "X", channels=_model_channels(model))
    if shape[0] == 0:
        raise ValueError(f"X must hold at least one image, got shape {shape}")
    batch_size = positive_int(batch_size, "batch_size")
    C = _num_classes(model, X[:1])
    y = _check_labels(y, "y", shape[0], C)
    predict = _predict or _predict_fn(model)
    correct = 0
    with tf.device(device()):
        for xb, yb in iterate_minibatches(X, y, batch_size):
            correct += int(np.sum(predict(tf.constant(xb)).numpy() == yb))
    return correct / shape[0]


# -------------------------------------------------------------------- training

def train(model, data, optimizer=None, *, learning_rate=None, epochs: int = 1,
          batch_size: int = 64, seed=0, verbose=None, print_every: int = 100,
          num_train_samples: int | None = 1000):
    """Train a Keras classifier with softmax cross-entropy, minibatch by minibatch.

    Every epoch visits the training images once in an order drawn from
    ``np.random.default_rng(seed)`` (one generator for the whole run, so a new
    order every epoch and the same run for the same seed).  Each step is a
    ``tf.function``: the loss under a ``tf.GradientTape``, then
    ``optimizer.apply_gradients``.  After every epoch the accuracies on (a
    seeded subset of) the training set and on the validation set are recorded.

    Parameters
    ----------
    model : keras.Model
        Maps float32 (N, 32, 32, 3) to scores (N, C); e.g. any model of
        :mod:`lab.tf.models`.
    data : dict
        ``X_train`` float32 (N_train, H, W, C) NHWC, ``y_train`` int (N_train,),
        ``X_val`` (N_val, H, W, C), ``y_val`` (N_val,); other keys are ignored.
    optimizer : keras.optimizers.Optimizer, optional
        Default: ``keras.optimizers.SGD(learning_rate)``.
    learning_rate : float > 0, optional
        Only without ``optimizer``; default 1e-2.
    epochs : int, default 1
    batch_size : int, default 64
    seed : int >= 0 or numpy Generator, default 0
        The minibatch order and the training-accuracy subset.  Weights are
        not seeded here: call :func:`seed_everything` before building the
        model.
    verbose : bool or None, default None
        Progress bar (see :mod:`lab.progress`; None: only at a terminal).
        When on, the loss is also printed every ``print_every`` iterations
        and the accuracies after every epoch.
    print_every : int, default 100
    num_train_samples : int or None, default 1000
        Training images scored for ``train_acc_history``; None: all.

    Returns
    -------
    history : dict
        ``loss_history`` (list of float, one per iteration),
        ``train_acc_history`` and ``val_acc_history`` (list of float, one
        per epoch), ``epochs`` (int), ``time`` (float, seconds of training
        and evaluation).
    """
    X_train, y_train, X_val, y_val = _check_data(data)
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a keras.Model, got {type(model).__name__}")
    X_train, X_val = np.asarray(X_train), np.asarray(X_val)
    channels = _model_channels(model)
    shape = _check_images(X_train, "data['X_train']", channels=channels)
    vshape = _check_images(X_val, "data['X_val']", channels=channels or shape[3])
    if shape[0] == 0 or vshape[0] == 0:
        raise ValueError(f"data['X_train'] and data['X_val'] must hold images, got shapes "
                         f"{shape} and {vshape}")
    if vshape[1:] != shape[1:]:
        raise ValueError(f"data['X_val'] must hold images of shape {shape[1:]} like "
                         f"data['X_train'], got {vshape[1:]}")
    epochs = positive_int(epochs, "epochs")
    batch_size = positive_int(batch_size, "batch_size")
    print_every = positive_int(print_every, "print_every")
    if num_train_samples is not None:
        num_train_samples = positive_int(num_train_samples, "num_train_samples")
    if optimizer is None:
        lr = 1e-2 if learning_rate is None else learning_rate
        lr = finite_float(lr, "learning_rate", low=0.0, low_open=True)
        optimizer = keras.optimizers.SGD(learning_rate=lr)
    elif learning_rate is not None:
        raise ValueError("give either optimizer or learning_rate, not both "
                         "(set the learning rate on the optimizer)")
    elif not isinstance(optimizer, keras.optimizers.Optimizer):
        raise TypeError(f"optimizer must be a keras.optimizers.Optimizer, got "
                        f"{type(optimizer).__name__}")
    if not (isinstance(seed, np.random.Generator)
            or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0)):
        raise TypeError(f"seed must be a non-negative int or a numpy Generator, got {seed!r}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    with tf.device(device()):
        C = _num_classes(model, X_train[:1])
    y_train = _check_labels(y_train, "data['y_train']", shape[0], C)
    y_val = _check_labels(y_val, "data['y_val']", vshape[0], C)

    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    variables = model.trainable_variables

    @tf.function(reduce_retracing=True)
    def step(x, y):
        with tf.GradientTape() as tape:
            scores = model(x, training=True)
            loss = loss_fn(y, scores)
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables))
        return loss

    predict = _predict_fn(model)
    history = {"loss_history": [], "train_acc_history": [], "val_acc_history": []}
    iters_per_epoch = -(-shape[0] // batch_size)
    bar = progress(total=epochs * iters_per_epoch, desc="train", enabled=verbose)
    t0 = time.perf_counter()
    t = 0
    try:
        with tf.device(device()):
            for epoch in range(epochs):
                for xb, yb in iterate_minibatches(X_train, y_train, batch_size,
                                                  shuffle=True, seed=rng):
                    loss = float(step(tf.constant(xb), tf.constant(yb)))
                    if not np.isfinite(loss):
                        raise FloatingPointError(
                            f"the loss became {loss} at iteration {t + 1} (epoch {epoch + 1}); "
                            f"try a smaller learning rate")
                    history["loss_history"].append(loss)
                    bar.update(loss=loss)
                    if t % print_every == 0:
                        bar.write(f"Iteration {t}, loss = {loss:.4f}")
                    t += 1
                if num_train_samples is not None and num_train_samples < shape[0]:
                    idx = rng.choice(shape[0], num_train_samples, replace=False)
                    Xs, ys = X_train[idx], y_train[idx]
                else:
                    Xs, ys = X_train, y_train
                train_acc = check_accuracy(model, Xs, ys, _predict=predict)
                val_acc = check_accuracy(model, X_val, y_val, _predict=predict)
                history["train_acc_history"].append(train_acc)
                history["val_acc_history"].append(val_acc)
                bar.write(f"(Epoch {epoch + 1} / {epochs}) train acc: {train_acc:.4f}; "
                          f"val acc: {val_acc:.4f}")
    finally:
        bar.close()
    history["epochs"] = epochs
    history["time"] = time.perf_counter() - t0
    return history
