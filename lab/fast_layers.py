"""Fast convolution and max pooling in pure NumPy.

Same names, arguments and results as the CS231n ``fast_layers`` module, and
the same numbers as the naive loops of :mod:`lab.layers` (up to rounding), but
vectorised, with no compile step.

Convolution as one matrix product (im2col)
------------------------------------------
Every output entry of a convolution is a dot product between a filter and one
window of the padded input. Lay every window out as a row of a matrix
``cols`` of shape ``(N*H'*W', C*HH*WW)`` and every filter as a column of
``w_mat`` of shape ``(C*HH*WW, F)``; then all outputs at once are the single
matrix product ``cols @ w_mat`` of shape ``(N*H'*W', F)``, which BLAS computes
near the machine's peak speed. ``np.lib.stride_tricks.as_strided`` gives a
*view* of the padded input with the window axes as extra dimensions, so
building ``cols`` is one memory copy.

The backward pass is two more matrix products with the same operands:
``dw_mat = cols.T @ dout_mat`` and ``dcols = dout_mat @ w_mat.T``. ``dcols``
holds one gradient per (window, tap); ``dx`` is their sum over every window
that covers a pixel (col2im). It is accumulated with one strided slice-add per
kernel tap ``(k, l)``, ``HH*WW`` vectorised additions rather than a loop over
windows. When the stride is 1 and there are no more filters than input
channels, ``dx`` is instead computed as another convolution, of the zero-padded
``dout`` with the flipped kernel (a "full" convolution), through the same
im2col + one matrix product, which avoids the ``dcols`` array altogether.

Memory layout
-------------
How fast the im2col copy and the col2im additions run depends on how long the
contiguous runs of memory they move are. Two internal layouts are used:

* channels-first (C, N, H, W) with ``cols.T`` of shape ``(C*HH*WW, N*H'*W')``:
  runs are image rows, long when there are few channels (RGB input);
* channels-last (N, H, W, C) with ``cols`` of shape ``(N*H'*W', HH*WW*C)``:
  runs are ``WW*C`` numbers, long when there are many channels.

The layout is chosen per call (channels-last when ``C >= 16``); inputs and
outputs are always NCHW.

Max pooling
-----------
When the windows tile the input (stride equal to the window, as in the usual
2x2/stride-2 pooling) the input is reshaped to (N, C, H', ph, W', pw) and
reduced over the window axes. Otherwise (overlapping windows or gaps) the
maximum is taken over the ``ph*pw`` strided views ``x[..., k::s, l::s]``, one
per window offset. The backward pass sends each window's gradient to the first
entry (in row-major order within the window) equal to the maximum, exactly as
the naive version does, accumulating where windows overlap.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .layers import _check_dout, _common_dtype, _conv_geometry, _pool_geometry

__all__ = ["conv_forward_fast", "conv_backward_fast",
           "max_pool_forward_fast", "max_pool_backward_fast"]

#: Input channels from which the channels-last layout is used.
CHANNELS_LAST_MIN_C = 16


# ----------------------------------------------------------------------------
# im2col / col2im in the two layouts
# ----------------------------------------------------------------------------

def _pad_channels_first(x, pad):
    """(N, C, H, W) -> zero-padded (C, N, H + 2 pad, W + 2 pad), one copy."""
    N, C, H, W = x.shape
    xp = np.zeros((C, N, H + 2 * pad, W + 2 * pad), dtype=x.dtype)
    xp[:, :, pad:pad + H, pad:pad + W] = x.transpose(1, 0, 2, 3)
    return xp


def _pad_channels_last(x, pad):
    """(N, C, H, W) -> zero-padded (N, H + 2 pad, W + 2 pad, C), one copy."""
    N, C, H, W = x.shape
    xp = np.zeros((N, H + 2 * pad, W + 2 * pad, C), dtype=x.dtype)
    xp[:, pad:pad + H, pad:pad + W, :] = x.transpose(0, 2, 3, 1)
    return xp


def _windows_channels_first(xp, HH, WW, stride, H_out, W_out):
    """View of padded (C, N, Hp, Wp) as (C, HH, WW, N, H', W'):
    ``[c, k, l, n, i, j] = xp[c, n, i*stride + k, j*stride + l]``."""
    sc, sn, sh, sw = xp.strides
    C, N = xp.shape[:2]
    return as_strided(xp, (C, HH, WW, N, H_out, W_out),
                      (sc, sh, sw, sn, stride * sh, stride * sw), writeable=False)


def _windows_channels_last(xp, HH, WW, stride, H_out, W_out):
    """View of padded (N, Hp, Wp, C) as (N, H', W', HH, WW, C):
    ``[n, i, j, k, l, c] = xp[n, i*stride + k, j*stride + l, c]``."""
    sn, sh, sw, sc = xp.strides
    N, C = xp.shape[0], xp.shape[3]
    return as_strided(xp, (N, H_out, W_out, HH, WW, C),
                      (sn, stride * sh, stride * sw, sh, sw, sc), writeable=False)


def _col2im_channels_first(dcols, padded_shape, stride):
    """Sum (C, HH, WW, N, H', W') window gradients into a padded (C, N, Hp, Wp) array."""
    C, HH, WW, N, H_out, W_out = dcols.shape
    dxp = np.zeros(padded_shape, dtype=dcols.dtype)
    if stride >= HH and stride >= WW:  # windows do not overlap: one strided assignment
        sc, sn, sh, sw = dxp.strides
        view = as_strided(dxp, dcols.shape, (sc, sh, sw, sn, stride * sh, stride * sw))
        view[...] = dcols
        return dxp
    h_span, w_span = stride * (H_out - 1) + 1, stride * (W_out - 1) + 1
    for k in range(HH):
        for l in range(WW):
            dxp[:, :, k:k + h_span:stride, l:l + w_span:stride] += dcols[:, k, l]
    return dxp


def _col2im_channels_last(dcols, padded_shape, stride):
    """Sum (N, H', W', HH, WW, C) window gradients into a padded (N, Hp, Wp, C) array."""
    N, H_out, W_out, HH, WW, C = dcols.shape
    dxp = np.zeros(padded_shape, dtype=dcols.dtype)
    if stride >= HH and stride >= WW:
        sn, sh, sw, sc = dxp.strides
        view = as_strided(dxp, dcols.shape, (sn, stride * sh, stride * sw, sh, sw, sc))
        view[...] = dcols
        return dxp
    h_span, w_span = stride * (H_out - 1) + 1, stride * (W_out - 1) + 1
    for k in range(HH):
        for l in range(WW):
            dxp[:, k:k + h_span:stride, l:l + w_span:stride, :] += dcols[:, :, :, k, l, :]
    return dxp


def _pad_or_crop(a, amounts):
    """Zero-pad (amount > 0) or crop (amount < 0) both ends of every axis by
    ``amounts[axis]``; returns a new C-contiguous array."""
    a = a[tuple(slice(-m, a.shape[ax] + m) if m < 0 else slice(None)
                for ax, m in enumerate(amounts))]
    if any(m > 0 for m in amounts):
        return np.pad(a, [(max(m, 0), max(m, 0)) for m in amounts])
    return np.ascontiguousarray(a)


# ----------------------------------------------------------------------------
# Convolution
# ----------------------------------------------------------------------------

def conv_forward_fast(x, w, b, conv_param):
    """Convolution, vectorised: the same result as
    :func:`lab.layers.conv_forward_naive`.

    ``out[n, f, i, j] = b[f] + sum_{c, k, l} w[f, c, k, l] * xp[n, c, i*s + k, j*s + l]``
    computed as one matrix product between the im2col matrix of the padded
    input (one row per output position, one column per filter tap) and the
    filters (see the module docstring).

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    w : ndarray, shape (F, C, HH, WW)
    b : ndarray, shape (F,)
    conv_param : dict with ``'stride'`` and ``'pad'``; the output size
        ``H' = 1 + (H + 2*pad - HH) / stride`` (likewise ``W'``) must be whole.

    Returns
    -------
    out : ndarray, shape (N, F, H', W'), in the dtype of the inputs
    cache : tuple for :func:`conv_backward_fast` (holds the im2col matrix)
    """
    x, w, b, stride, pad, H_out, W_out = _conv_geometry(x, w, b, conv_param)
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    if C >= CHANNELS_LAST_MIN_C:
        layout = "last"
        xp = _pad_channels_last(x, pad)
        cols = _windows_channels_last(xp, HH, WW, stride, H_out, W_out).reshape(
            N * H_out * W_out, HH * WW * C)                        # copy
        w_mat = w.transpose(2, 3, 1, 0).reshape(HH * WW * C, F)    # rows (k, l, c)
        out = cols @ w_mat                                         # (N*H'*W', F)
        out += b
        out = np.ascontiguousarray(out.reshape(N, H_out, W_out, F).transpose(0, 3, 1, 2))
    else:
        layout = "first"
        xp = _pad_channels_first(x, pad)
        cols = _windows_channels_first(xp, HH, WW, stride, H_out, W_out).reshape(
            C * HH * WW, N * H_out * W_out)                        # copy; this is cols.T
        w_mat = w.reshape(F, C * HH * WW)
        out = w_mat @ cols                                         # (F, N*H'*W')
        out += b[:, None]
        out = np.ascontiguousarray(out.reshape(F, N, H_out, W_out).transpose(1, 0, 2, 3))
    cache = (layout, cols, w, w_mat, x.shape, stride, pad)
    return out, cache


def conv_backward_fast(dout, cache):
    """Backward pass of :func:`conv_forward_fast`; the same gradients as
    :func:`lab.layers.conv_backward_naive`.

    With ``cols`` the im2col matrix and ``w_mat`` the filter matrix of the
    forward pass, ``db = sum dout``, ``dw_mat = cols.T @ dout_mat`` and
    ``dx = col2im(dout_mat @ w_mat.T)`` (or, at stride 1 with ``F <= C``, the
    full convolution of ``dout`` with the flipped filters).

    Parameters
    ----------
    dout : ndarray, shape (N, F, H', W')
    cache : tuple from :func:`conv_forward_fast`

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
    dw : ndarray, shape (F, C, HH, WW)
    db : ndarray, shape (F,)
    """
    layout, cols, w, w_mat, x_shape, stride, pad = cache
    N, C, H, W = x_shape
    F, _, HH, WW = w.shape
    Hp, Wp = H + 2 * pad, W + 2 * pad
    H_out, W_out = (Hp - HH) // stride + 1, (Wp - WW) // stride + 1
    dout = _check_dout(dout, (N, F, H_out, W_out)).astype(w.dtype, copy=False)
    db = dout.sum(axis=(0, 2, 3))
    full_conv = stride == 1 and F <= C

    if layout == "last":
        dout_mat = np.ascontiguousarray(dout.transpose(0, 2, 3, 1)).reshape(-1, F)  # (M, F)
        dw = (cols.T @ dout_mat).reshape(HH, WW, C, F).transpose(3, 2, 0, 1)
        if full_conv:
            # dx[n, y, x, c] = sum_{k, l, f} doutp[n, y + k, x + l, f] * w[f, c, HH-1-k, WW-1-l]
            doutp = _pad_or_crop(dout_mat.reshape(N, H_out, W_out, F),
                                 (0, HH - 1 - pad, WW - 1 - pad, 0))
            dcols = _windows_channels_last(doutp, HH, WW, 1, H, W)
            w_flip = w[:, :, ::-1, ::-1].transpose(2, 3, 0, 1).reshape(HH * WW * F, C)
            dx = (dcols.reshape(N * H * W, HH * WW * F) @ w_flip).reshape(N, H, W, C)
        else:
            dcols = (dout_mat @ w_mat.T).reshape(N, H_out, W_out, HH, WW, C)
            dxp = _col2im_channels_last(dcols, (N, Hp, Wp, C), stride)
            dx = dxp[:, pad:pad + H, pad:pad + W, :]
        dx = dx.transpose(0, 3, 1, 2)
    else:
        dout_mat = np.ascontiguousarray(dout.transpose(1, 0, 2, 3)).reshape(F, -1)  # (F, M)
        dw = (dout_mat @ cols.T).reshape(F, C, HH, WW)
        if full_conv:
            doutp = _pad_or_crop(dout_mat.reshape(F, N, H_out, W_out),
                                 (0, 0, HH - 1 - pad, WW - 1 - pad))
            dcols = _windows_channels_first(doutp, HH, WW, 1, H, W)
            w_flip = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3).reshape(C, F * HH * WW)
            dx = (w_flip @ dcols.reshape(F * HH * WW, N * H * W)).reshape(C, N, H, W)
        else:
            dcols = (w_mat.T @ dout_mat).reshape(C, HH, WW, N, H_out, W_out)
            dxp = _col2im_channels_first(dcols, (C, N, Hp, Wp), stride)
            dx = dxp[:, :, pad:pad + H, pad:pad + W]
        dx = dx.transpose(1, 0, 2, 3)
    return np.ascontiguousarray(dx), np.ascontiguousarray(dw), db


# ----------------------------------------------------------------------------
# Max pooling
# ----------------------------------------------------------------------------

def _tiles(x_shape, ph, pw, stride):
    H, W = x_shape[2:]
    return ph == stride and pw == stride and H % ph == 0 and W % pw == 0


def _offset_view(a, k, l, stride, H_out, W_out):
    """``a[:, :, k + i*stride, l + j*stride]`` for all (i, j): a strided view."""
    return a[:, :, k:k + stride * (H_out - 1) + 1:stride, l:l + stride * (W_out - 1) + 1:stride]


def max_pool_forward_fast(x, pool_param):
    """Max pooling, vectorised: the same result as
    :func:`lab.layers.max_pool_forward_naive`.

    Uses a reshape when the windows tile the input (stride equal to the window
    and H, W multiples of it), and ``ph*pw`` strided views otherwise.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    pool_param : dict with ``'pool_height'``, ``'pool_width'``, ``'stride'``

    Returns
    -------
    out : ndarray, shape (N, C, H', W'), dtype of x
    cache : tuple for :func:`max_pool_backward_fast`
    """
    x, ph, pw, stride, H_out, W_out = _pool_geometry(x, pool_param)
    N, C, H, W = x.shape
    if _tiles(x.shape, ph, pw, stride):
        out = x.reshape(N, C, H_out, ph, W_out, pw).max(axis=(3, 5))
    else:
        out = _offset_view(x, 0, 0, stride, H_out, W_out).copy()
        for k in range(ph):
            for l in range(pw):
                if k or l:
                    np.maximum(out, _offset_view(x, k, l, stride, H_out, W_out), out=out)
    return out, (x, out, (ph, pw, stride))


def max_pool_backward_fast(dout, cache):
    """Backward pass of :func:`max_pool_forward_fast`; the same gradient as
    :func:`lab.layers.max_pool_backward_naive`.

    The window offsets ``(k, l)`` are visited in row-major order; at each, the
    windows whose maximum sits there and has not been claimed by an earlier
    offset pass their gradient to it. This routes every window's gradient to
    the first maximal entry, like ``np.argmax``. Where windows overlap the
    contributions are added.

    Parameters
    ----------
    dout : ndarray, shape (N, C, H', W')
    cache : tuple from :func:`max_pool_forward_fast`

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
    """
    x, out, (ph, pw, stride) = cache
    N, C, H, W = x.shape
    H_out, W_out = out.shape[2:]
    dout = _check_dout(dout, out.shape)
    dtype = _common_dtype(x, dout)
    zero = np.zeros((), dtype=dtype)
    claimed = np.zeros(out.shape, dtype=bool)
    if _tiles(x.shape, ph, pw, stride):
        dx6 = np.empty((N, C, H_out, ph, W_out, pw), dtype=dtype)
        x6 = x.reshape(dx6.shape)
        for k in range(ph):
            for l in range(pw):
                hit = x6[:, :, :, k, :, l] == out
                hit &= ~claimed
                claimed |= hit
                np.multiply(hit, dout, out=dx6[:, :, :, k, :, l])
        return dx6.reshape(x.shape)
    dx = np.zeros(x.shape, dtype=dtype)
    for k in range(ph):
        for l in range(pw):
            hit = _offset_view(x, k, l, stride, H_out, W_out) == out
            hit &= ~claimed
            claimed |= hit
            _offset_view(dx, k, l, stride, H_out, W_out)[...] += np.where(hit, dout, zero)
    return dx
