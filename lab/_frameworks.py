"""What ``lab.tf`` and ``lab.torch`` share, free of both frameworks.

The input checks of Part III (float32 images in the backend's layout, with
a layout mix-up named as such; labels; the data dict), the small argument
helpers of the barebones modules, and the course's ``train_part2`` epoch
loop.  Each backend passes its layout (``"NHWC"`` for TensorFlow/Keras,
``"NCHW"`` for PyTorch) and the shape and dtype name of its arrays, so that
nothing here imports TensorFlow or PyTorch.
"""
from __future__ import annotations

import numbers

import numpy as np

from lab._validate import as_labels, positive_int
from lab.data import iterate_minibatches
from lab.progress import progress

#: per layout: the channel axis, the other layout's channel axis, and the
#: words of its error messages
LAYOUTS = {
    "NHWC": {"axis": 3, "other_axis": 1, "looks": "NCHW (channels first)",
             "who": "Keras and lab.tf", "perm": "(0, 2, 3, 1)", "where": "on its last axis",
             "spatial": slice(1, 3), "shape": "(N, H, W, C)",
             "cast": "(or tf.cast(x, tf.float32))"},
    "NCHW": {"axis": 1, "other_axis": 3, "looks": "NHWC (channels last)",
             "who": "PyTorch and lab.torch", "perm": "(0, 3, 1, 2)", "where": "on axis 1",
             "spatial": slice(2, 4), "shape": "(N, C, H, W)",
             "cast": "(or x.float() for a tensor)"},
}

_INTEGER = ("uint8", "int8", "int16", "int32", "int64", "uint16")


def check_float32(dtype_name: str, name: str, layout: str):
    """Raise TypeError unless ``dtype_name`` is ``'float32'``."""
    if dtype_name == "float32":
        return
    if dtype_name in _INTEGER:
        raise TypeError(
            f"{name} must be float32, got {dtype_name} (raw pixels?); convert and scale it, e.g. "
            f"(x / 255).astype(np.float32), or load normalised float32 data with "
            f"lab.data.load_cifar10(layout='{layout}')")
    raise TypeError(f"{name} must be float32, got {dtype_name}; convert it with "
                    f"x.astype(np.float32) {LAYOUTS[layout]['cast']}")


def _wanted(layout, channels, image_size):
    c = channels if channels is not None else "C"
    if layout == "NHWC":
        return (f"(N, {image_size[0]}, {image_size[1]}, {channels})" if image_size and channels
                else f"(N, H, W, {c})")
    return (f"(N, {channels}, {image_size[0]}, {image_size[1]})" if image_size and channels
            else f"(N, {c}, H, W)")


def check_images(shape, dtype_name: str, name: str, layout: str, channels: int | None = None,
                 image_size=None) -> tuple:
    """Check a batch of images of ``shape`` and ``dtype_name``: 4-D, float32,
    in ``layout``.

    An array that looks like the other layout -- a small C (1, 3 or 4) on the
    other layout's channel axis and not on this one's, or ``channels`` there
    but not here -- is reported as a layout error.  Returns the shape.
    """
    lay = LAYOUTS[layout]
    shape = tuple(shape)
    if len(shape) != 4:
        raise ValueError(f"{name} must be a batch of images of shape {lay['shape']} ({layout}), "
                         f"got shape {shape}")
    check_float32(dtype_name, name, layout)
    mine, other = shape[lay["axis"]], shape[lay["other_axis"]]
    small = (1, 3, 4)
    looks_other = (other in small and mine not in small) or (
        channels is not None and mine != channels and other == channels)
    want = _wanted(layout, channels, image_size)
    if looks_other:
        raise ValueError(
            f"{name} has shape {shape}, which looks like {lay['looks']}; {lay['who']} "
            f"expect {layout} {want}: transpose it with x.transpose{lay['perm']} or load "
            f"it with lab.data.load_cifar10(layout='{layout}')")
    if channels is not None and mine != channels:
        raise ValueError(f"{name} must have {channels} channels {lay['where']} ({layout} {want}), "
                         f"got shape {shape}")
    spatial = shape[lay["spatial"]]
    if image_size is not None and tuple(spatial) != tuple(image_size) and None not in spatial:
        raise ValueError(f"{name} must have images of size {tuple(image_size)} ({layout} {want}), "
                         f"got shape {shape}")
    return shape


def check_labels(y, name: str, n: int, num_classes: int):
    """Integer labels (a NumPy array or list) of shape (n,) in
    [0, num_classes), as int64 NumPy."""
    y = as_labels(y, name, n=n, num_classes=num_classes)
    return y.astype(np.int64, copy=False)


def check_data(data):
    """``(X_train, y_train, X_val, y_val)`` from a data dict, or a clear error."""
    if not isinstance(data, dict):
        raise TypeError(f"data must be a dict with X_train, y_train, X_val, y_val, "
                        f"got {type(data).__name__}")
    missing = [k for k in ("X_train", "y_train", "X_val", "y_val") if k not in data]
    if missing:
        raise ValueError(f"data is missing {missing}; expected X_train, y_train, X_val, y_val")
    return data["X_train"], data["y_train"], data["X_val"], data["y_val"]


def shape_tuple(shape, name="shape"):
    """A tuple of positive ints from an int or a sequence of them."""
    if isinstance(shape, numbers.Integral):
        shape = (shape,)
    try:
        shape = tuple(int(positive_int(d, f"{name}[{i}]")) for i, d in enumerate(shape))
    except TypeError as exc:
        raise TypeError(f"{name} must be a tuple of positive ints, got {shape!r}") from exc
    if not shape:
        raise ValueError(f"{name} must have at least one dimension, got {shape!r}")
    return shape


def rng(seed):
    """None, a Generator as it is, or ``np.random.default_rng(seed)``."""
    if seed is None or isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise TypeError(f"seed must be a non-negative int, a numpy Generator or None, got {seed!r}")
    return np.random.default_rng(seed)


def as_float32_numpy(v):
    """float32 NumPy copy of an array, a tf.Variable/Tensor or a torch tensor."""
    if hasattr(v, "detach"):  # a torch tensor, possibly requiring grad
        v = v.detach().cpu()
    if hasattr(v, "numpy"):
        v = v.numpy()
    return np.array(v, dtype=np.float32)


def train_part2_loop(step, accuracy, X_train, y_train, X_val, y_val, *, epochs, batch_size,
                     generator, learning_rate, print_every, num_train_samples, verbose):
    """The course's ``train_part2`` epochs, for either backend.

    ``step(xb, yb)`` runs one training step on a NumPy minibatch and returns
    the loss as a float; ``accuracy(X, y)`` scores the current parameters.
    Minibatches come from :func:`lab.data.iterate_minibatches` drawn with
    ``generator``, which also draws the ``num_train_samples`` images scored
    for the training accuracy after each epoch.  Returns the history dict
    (``loss_history``, ``train_acc_history``, ``val_acc_history``).
    """
    n = len(X_train)
    history = {"loss_history": [], "train_acc_history": [], "val_acc_history": []}
    bar = progress(total=epochs * -(-n // batch_size), desc="train_part2", enabled=verbose)
    t = 0
    try:
        for epoch in range(epochs):
            for xb, yb in iterate_minibatches(X_train, y_train, batch_size, shuffle=True,
                                              seed=generator):
                loss = step(xb, yb)
                if not np.isfinite(loss):
                    raise FloatingPointError(f"the loss became {loss} at iteration {t + 1}; "
                                             f"try a learning rate below {learning_rate}")
                history["loss_history"].append(loss)
                bar.update(loss=loss)
                if t % print_every == 0:
                    bar.write(f"Iteration {t}, loss = {loss:.4f}")
                t += 1
            if num_train_samples is not None and num_train_samples < n:
                idx = generator.choice(n, num_train_samples, replace=False)
                Xs, ys = X_train[idx], y_train[idx]
            else:
                Xs, ys = X_train, y_train
            history["train_acc_history"].append(accuracy(Xs, ys))
            history["val_acc_history"].append(accuracy(X_val, y_val))
            bar.write(f"(Epoch {epoch + 1} / {epochs}) train acc: "
                      f"{history['train_acc_history'][-1]:.4f}; val acc: "
                      f"{history['val_acc_history'][-1]:.4f}")
    finally:
        bar.close()
    return history
