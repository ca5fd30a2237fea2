"""Training and evaluation of PyTorch classifiers on image batches (PyTorch 2).

The one training substrate of the PyTorch chapters:

* :func:`seed_everything` seeds every random source a run draws from;
* :func:`device` picks the device (CUDA when present, else CPU);
* :func:`train` runs minibatch epochs (``loss.backward()`` and
  ``optimizer.step()``), drawing minibatches from
  :func:`lab.data.iterate_minibatches` and reporting through
  :func:`lab.progress.progress`;
* :func:`check_accuracy` scores a model in batches under ``torch.no_grad()``.

PyTorch takes images NCHW, shape (N, C, H, W): (N, 3, 32, 32) for CIFAR-10
(``lab.data.load_cifar10(layout="NCHW")``), float32.  Inputs are checked
before any computation: an NHWC batch (N, 32, 32, 3), a float64 or uint8
array, or labels outside [0, num_classes) raise a ValueError/TypeError that
says what was received and what was expected.
"""
from __future__ import annotations

import random
import time

import numpy as np
import torch
import torch.nn.functional as F

from lab import _frameworks as _fw
from lab._validate import finite_float, nonneg_int, positive_int
from lab.data import iterate_minibatches
from lab.progress import progress

__all__ = ["seed_everything", "device", "describe_device", "check_accuracy", "train"]

LAYOUT = "NCHW"


# --------------------------------------------------------------------- helpers

def seed_everything(seed: int = 0) -> int:
    """Seed every random source a PyTorch run draws from.

    Seeds Python's ``random`` (``random.seed``), NumPy's global generator
    (``np.random.seed``) and PyTorch's generators on the CPU and every CUDA
    device (``torch.manual_seed``).  After it, building the same model twice
    gives the same initial weights, and ``torch.randn`` draws the same
    numbers.  It does not touch ``np.random.default_rng`` generators, which
    ``lab`` seeds explicitly (minibatch order: the ``seed`` of :func:`train`),
    nor make CUDA kernels deterministic.

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
    torch.manual_seed(seed)
    return seed


def device(verbose: bool = False) -> torch.device:
    """``torch.device('cuda')`` when a CUDA device is present, else
    ``torch.device('cpu')``.  With ``verbose`` it prints :func:`describe_device`."""
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if verbose:
        print(describe_device())
    return dev


def describe_device() -> str:
    """One line that says which device :func:`device` picks and why,
    e.g. ``'using CPU (no CUDA device found)'``."""
    if torch.cuda.is_available():
        return f"using CUDA ({torch.cuda.get_device_name(0)})"
    return "using CPU (no CUDA device found)"


def _dtype_name(x) -> str:
    dt = getattr(x, "dtype", None)
    if isinstance(dt, torch.dtype):
        return str(dt).replace("torch.", "")
    if dt is None:
        return np.asarray(x).dtype.name
    return np.dtype(dt).name


def _check_float32(x, name: str):
    """Raise TypeError unless ``x`` holds float32 numbers."""
    _fw.check_float32(_dtype_name(x), name, LAYOUT)


def _check_images(x, name: str, channels: int | None = None, image_size=None):
    """Check a batch of NCHW images: 4-D, float32, channels first (an array
    that looks NHWC is a layout error; see :func:`lab._frameworks.check_images`).
    Returns the shape."""
    shape = tuple(x.shape) if hasattr(x, "shape") else np.shape(x)
    return _fw.check_images(shape, _dtype_name(x), name, LAYOUT, channels, image_size)


def _check_labels(y, name: str, n: int, num_classes: int):
    """Integer labels of shape (n,) in [0, num_classes), as int64 numpy."""
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    return _fw.check_labels(y, name, n, num_classes)


_check_data = _fw.check_data


def _to_numpy(x):
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _model_channels(model):
    """Input channels of a model's first convolution, or None."""
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            return m.in_channels
        if isinstance(m, torch.nn.Linear):
            return None
    return None


def _num_classes(model, x_one, dev):
    with torch.no_grad():
        scores = model(torch.as_tensor(x_one, device=dev))
    if scores.ndim != 2:
        raise ValueError(f"model must return scores of shape (N, C), got shape {tuple(scores.shape)}")
    return int(scores.shape[1])


# ------------------------------------------------------------------ evaluation

def check_accuracy(model, X, y, batch_size: int = 1000) -> float:
    """Fraction of ``X`` that ``model`` classifies correctly.

    The model is put in eval mode and restored to its previous mode after.

    Parameters
    ----------
    model : torch.nn.Module
        Maps float32 (N, C, H, W) to class scores (N, num_classes).
    X : float32 array or tensor, shape (N, C, H, W)
        NCHW images, e.g. (N, 3, 32, 32).
    y : int array, shape (N,)
        Labels in [0, num_classes).
    batch_size : int, default 1000

    Returns
    -------
    acc : float in [0, 1]
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    X = _to_numpy(X)
    shape = _check_images(X, "X", channels=_model_channels(model))
    if shape[0] == 0:
        raise ValueError(f"X must hold at least one image, got shape {shape}")
    batch_size = positive_int(batch_size, "batch_size")
    dev = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        C = _num_classes(model, X[:1], dev)
        y = _check_labels(y, "y", shape[0], C)
        correct = 0
        with torch.no_grad():
            for xb, yb in iterate_minibatches(X, y, batch_size):
                scores = model(torch.as_tensor(xb, device=dev))
                correct += int((scores.argmax(dim=1).cpu().numpy() == yb).sum())
    finally:
        model.train(was_training)
    return correct / shape[0]


# -------------------------------------------------------------------- training

def train(model, data, optimizer=None, *, learning_rate=None, epochs: int = 1,
          batch_size: int = 64, seed=0, verbose=None, print_every: int = 100,
          num_train_samples: int | None = 1000):
    """Train a PyTorch classifier with softmax cross-entropy, minibatch by minibatch.

    The model is moved to :func:`device` (CUDA when present) and put in train
    mode.  Every epoch visits the training images once in an order drawn from
    ``np.random.default_rng(seed)`` (one generator for the whole run, so a new
    order every epoch and the same run for the same seed).  Each step:
    ``F.cross_entropy``, ``optimizer.zero_grad()``, ``loss.backward()``,
    ``optimizer.step()``.  After every epoch the accuracies on (a seeded
    subset of) the training set and on the validation set are recorded.

    Parameters
    ----------
    model : torch.nn.Module
        Maps float32 (N, 3, 32, 32) to scores (N, C); e.g. any model of
        :mod:`lab.torch.models`.
    data : dict
        ``X_train`` float32 (N_train, C, H, W) NCHW, ``y_train`` int (N_train,),
        ``X_val`` (N_val, C, H, W), ``y_val`` (N_val,); other keys are ignored.
    optimizer : torch.optim.Optimizer or callable, optional
        An optimizer over ``model.parameters()``, or a function
        ``parameters -> optimizer`` (called after the model is moved to the
        device).  Default: ``torch.optim.SGD(model.parameters(), lr=learning_rate)``.
    learning_rate : float > 0, optional
        Only without ``optimizer``; default 1e-2.
    epochs : int, default 1
    batch_size : int, default 64
    seed : int >= 0 or numpy Generator, default 0
        The minibatch order and the training-accuracy subset.  Weights are
        not seeded here: call :func:`seed_everything` before building the model.
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
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    X_train, X_val = _to_numpy(X_train), _to_numpy(X_val)
    channels = _model_channels(model)
    shape = _check_images(X_train, "data['X_train']", channels=channels)
    vshape = _check_images(X_val, "data['X_val']", channels=channels or shape[1])
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
    if not (isinstance(seed, np.random.Generator)
            or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0)):
        raise TypeError(f"seed must be a non-negative int or a numpy Generator, got {seed!r}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    dev = device()
    model = model.to(dev)
    if optimizer is None:
        lr = 1e-2 if learning_rate is None else learning_rate
        lr = finite_float(lr, "learning_rate", low=0.0, low_open=True)
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    elif learning_rate is not None:
        raise ValueError("give either optimizer or learning_rate, not both "
                         "(set the learning rate on the optimizer)")
    elif not isinstance(optimizer, torch.optim.Optimizer):
        if not callable(optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer or a function of the "
                            f"parameters, got {type(optimizer).__name__}")
        optimizer = optimizer(model.parameters())
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer(parameters) must return a torch.optim.Optimizer, got "
                            f"{type(optimizer).__name__}")

    model.eval()
    C = _num_classes(model, X_train[:1], dev)
    y_train = _check_labels(y_train, "data['y_train']", shape[0], C)
    y_val = _check_labels(y_val, "data['y_val']", vshape[0], C)

    history = {"loss_history": [], "train_acc_history": [], "val_acc_history": []}
    iters_per_epoch = -(-shape[0] // batch_size)
    bar = progress(total=epochs * iters_per_epoch, desc="train", enabled=verbose)
    t0 = time.perf_counter()
    t = 0
    try:
        for epoch in range(epochs):
            model.train()
            batches = iterate_minibatches(X_train, y_train, batch_size, shuffle=True,
                                          seed=rng)
            for xb, yb in batches:
                xb = torch.as_tensor(xb, device=dev)
                yb = torch.as_tensor(yb, device=dev)
                loss = F.cross_entropy(model(xb), yb)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                value = loss.item()
                if not np.isfinite(value):
                    raise FloatingPointError(
                        f"the loss became {value} at iteration {t + 1} "
                        f"(epoch {epoch + 1}); try a smaller learning rate")
                history["loss_history"].append(value)
                bar.update(loss=value)
                if t % print_every == 0:
                    bar.write(f"Iteration {t}, loss = {value:.4f}")
                t += 1
            if num_train_samples is not None and num_train_samples < shape[0]:
                idx = rng.choice(shape[0], num_train_samples, replace=False)
                Xs, ys = X_train[idx], y_train[idx]
            else:
                Xs, ys = X_train, y_train
            train_acc = check_accuracy(model, Xs, ys)
            val_acc = check_accuracy(model, X_val, y_val)
            history["train_acc_history"].append(train_acc)
            history["val_acc_history"].append(val_acc)
            bar.write(f"(Epoch {epoch + 1} / {epochs}) train acc: "
                      f"{train_acc:.4f}; val acc: {val_acc:.4f}")
    finally:
        bar.close()
    history["epochs"] = epochs
    history["time"] = time.perf_counter() - t0
    return history
