"""Figures: image grids (patches, weights, filters) and training curves.

``visualize_grid`` keeps CS231n's name and behaviour (NHWC images in, one
uint8-range grid image out; channels-first input is refused unless
``layout="NCHW"`` says so); ``image_grid`` is the general version used by the
book, and ``show_grid`` / ``show_weights`` / ``plot_curves`` draw with Matplotlib.
Matplotlib is imported only by the functions that draw.
"""
from __future__ import annotations

import math

import numpy as np

from lab._validate import as_float_array, nonneg_int, positive_int

__all__ = ["visualize_grid", "image_grid", "show_grid", "show_weights", "plot_curves",
           "plot_solver_history"]


_LAYOUTS = (None, "NHWC", "NCHW")


def _looks_channels_first(shape):
    """True for (N, C, H, W) with C in (1, 3), H and W > 4 and a last axis that
    cannot be a channel count of 1 or 3: channels-first images, which read as
    (N, H, W, C) would tile H x W garbage of W channels."""
    _, c, h, w = shape
    return c in (1, 3) and h > 4 and w > 4 and w not in (1, 3)


def visualize_grid(Xs, ubound=255.0, padding=1, layout=None):
    """Tile images into one grid, each image scaled to [0, ubound] on its own.

    Parameters
    ----------
    Xs : ndarray, shape (N, H, W, C)
        Channels last, as in CS231n (``W1.transpose(0, 2, 3, 1)`` for conv
        filters stored as (F, C, HH, WW)); (N, C, H, W) with ``layout="NCHW"``.
    ubound : float
        Upper bound of the output range.
    padding : int
        Blank pixels between neighbouring images.
    layout : {None, "NHWC", "NCHW"}, default None
        None: ``Xs`` is (N, H, W, C), and an array that is clearly channels
        first -- (N, C, H, W) with C of 1 or 3, H and W above 4, and a last
        axis that is not 1 or 3 -- is refused with a ValueError rather than
        tiled wrongly. "NHWC" or "NCHW" state the layout and skip that guess.

    Returns
    -------
    ndarray, shape (G*H + (G-1)*padding, G*W + (G-1)*padding, C), G = ceil(sqrt(N))
    """
    if layout not in _LAYOUTS:
        raise ValueError(f"layout must be None, 'NHWC' or 'NCHW', got {layout!r}")
    Xs = as_float_array(Xs, "Xs", ndim=4)
    if layout == "NCHW":
        Xs = Xs.transpose(0, 2, 3, 1)
    elif layout is None and _looks_channels_first(Xs.shape):
        raise ValueError(
            f"Xs has shape {Xs.shape}, which looks like (N, C, H, W) with C={Xs.shape[1]} "
            f"channels first; visualize_grid expects (N, H, W, C): pass "
            f"Xs.transpose(0, 2, 3, 1) or layout='NCHW' (or layout='NHWC' if {Xs.shape} "
            "really is N images of H x W pixels with C channels)")
    padding = nonneg_int(padding, "padding")
    N, H, W, C = Xs.shape
    g = int(math.ceil(math.sqrt(N)))
    grid = np.zeros((g * H + (g - 1) * padding, g * W + (g - 1) * padding, C))
    for i in range(N):
        r, c = divmod(i, g)
        img = Xs[i]
        lo, hi = img.min(), img.max()
        scaled = ubound * (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
        y0, x0 = r * (H + padding), c * (W + padding)
        grid[y0:y0 + H, x0:x0 + W] = scaled
    return grid


def image_grid(images, ncols=None, padding=1, normalize="each", pad_value=1.0):
    """Tile images into one array for display.

    Parameters
    ----------
    images : ndarray, shape (N, H, W) (grayscale), (N, H, W, 3) (RGB),
        or (N, 3, H, W) (RGB, channels first)
    ncols : int, optional
        Images per row; default ceil(sqrt(N)).
    padding : int
        Pixels of ``pad_value`` between images.
    normalize : {"each", "global", None}
        "each": scale every image to [0, 1] by its own min and max (how weight
        and filter grids are shown); "global": one min and max for all; None:
        leave the values, which must already lie in [0, 1].
    pad_value : float
        Value of the separating pixels (1.0 is white).

    Returns
    -------
    ndarray, shape (rows*H + (rows-1)*padding, ncols*W + (ncols-1)*padding[, 3])
    """
    x = as_float_array(images, "images")
    if x.ndim == 4 and x.shape[1] == 3 and x.shape[-1] != 3:
        x = x.transpose(0, 2, 3, 1)
    if not (x.ndim == 3 or (x.ndim == 4 and x.shape[-1] == 3)):
        raise ValueError(
            f"images must have shape (N, H, W), (N, H, W, 3) or (N, 3, H, W), got {np.shape(images)}"
        )
    n = x.shape[0]
    if n == 0:
        raise ValueError("images holds no images")
    padding = nonneg_int(padding, "padding")
    ncols = int(math.ceil(math.sqrt(n))) if ncols is None else positive_int(ncols, "ncols")
    nrows = int(math.ceil(n / ncols))
    if normalize == "each":
        axes = tuple(range(1, x.ndim))
        lo = x.min(axis=axes, keepdims=True)
        span = x.max(axis=axes, keepdims=True) - lo
        x = np.where(span > 0, (x - lo) / np.where(span > 0, span, 1.0), 0.5)
    elif normalize == "global":
        lo, span = x.min(), x.max() - x.min()
        x = (x - lo) / span if span > 0 else np.full_like(x, 0.5)
    elif normalize is not None:
        raise ValueError(f"normalize must be 'each', 'global' or None, got {normalize!r}")
    h, w = x.shape[1:3]
    shape = (nrows * h + (nrows - 1) * padding, ncols * w + (ncols - 1) * padding) + x.shape[3:]
    grid = np.full(shape, pad_value, dtype=np.float64)
    for i in range(n):
        r, c = divmod(i, ncols)
        grid[r * (h + padding):r * (h + padding) + h, c * (w + padding):c * (w + padding) + w] = x[i]
    return np.clip(grid, 0.0, 1.0)


def show_grid(images, ncols=None, padding=1, normalize="each", ax=None, title=None, cmap="gray"):
    """Draw :func:`image_grid` on a Matplotlib axis (created when not given);
    returns the axis."""
    import matplotlib.pyplot as plt

    grid = image_grid(images, ncols=ncols, padding=padding, normalize=normalize)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 6 * grid.shape[0] / grid.shape[1]))
    ax.imshow(grid, cmap=cmap if grid.ndim == 2 else None, vmin=0.0, vmax=1.0,
              interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


def show_weights(W, patch_shape=(16, 16), ncols=None, ax=None, title=None):
    """Show each column of a weight matrix as an image.

    Parameters
    ----------
    W : ndarray, shape (prod(patch_shape), K)
        For the autoencoder, W1 of shape (L_in, L_hid): column b holds the
        weights into hidden unit b.
    patch_shape : tuple (H, W)
    """
    W = as_float_array(W, "W", ndim=2)
    h, w = patch_shape
    if W.shape[0] != h * w:
        raise ValueError(f"W must have {h * w} rows to form {h}x{w} images, got shape {W.shape}")
    return show_grid(W.T.reshape(-1, h, w), ncols=ncols, ax=ax, title=title)


def plot_curves(curves, ax=None, xlabel="iteration", ylabel="loss", logy=False, title=None,
                styles=None):
    """Plot several named curves on one axis.

    Parameters
    ----------
    curves : dict of name -> 1-D sequence, or dict of name -> (x, y)
    styles : dict of name -> dict of Matplotlib line keywords, optional
    """
    import matplotlib.pyplot as plt

    if not isinstance(curves, dict) or not curves:
        raise TypeError("curves must be a non-empty dict mapping a name to values or (x, y)")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    for name, val in curves.items():
        if isinstance(val, tuple) and len(val) == 2:
            xs, ys = np.asarray(val[0]), np.asarray(val[1])
        else:
            ys = np.asarray(val)
            xs = np.arange(len(ys))
        ax.plot(xs, ys, label=name, **(styles or {}).get(name, {}))
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    return ax


def plot_solver_history(solver, axes=None):
    """Training loss per iteration and train/validation accuracy per epoch of a
    :class:`lab.solver.Solver`; returns the two axes."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax0, ax1 = axes
    ax0.plot(solver.loss_history, "o", ms=2, alpha=0.6)
    ax0.set_xlabel("iteration")
    ax0.set_ylabel("training loss")
    ax0.grid(alpha=0.3)
    epochs = np.arange(len(solver.train_acc_history))
    ax1.plot(epochs, solver.train_acc_history, "-o", label="train")
    ax1.plot(epochs, solver.val_acc_history, "-o", label="val")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("accuracy")
    ax1.legend()
    ax1.grid(alpha=0.3)
    return axes
