"""Fast convolution and max pooling in pure NumPy.

Same names, arguments and results as the CS231n ``fast_layers`` module, and
the same numbers as the naive loops of :mod:`lab.layers` (up to rounding), but
vectorised, with no compile step.

Convolution as matrix products (im2col)
---------------------------------------
Every output entry of a convolution is a dot product between a filter and one
window of the zero-padded input ``xp``. For image ``n``, lay its windows out as
the columns of a matrix ``cols[n]`` of shape ``(C*HH*WW, H'*W')`` (one row per
filter tap ``(c, k, l)``, one column per output position ``(i, j)``) and the
filters as the rows of ``w_mat`` of shape ``(F, C*HH*WW)``; then::

    out[n] = w_mat @ cols[n] + b          # (F, H'*W'), already NCHW

for every image, one ``np.matmul`` over the stack of images, which BLAS
computes near the machine's peak speed. (The bias rides along as the weight of
an extra input that is always 1: ``cols[n]`` gets a last row of ones and
``w_mat`` a last column ``b``, so the same product adds it, and the backward
product below returns ``db`` as the last column of ``dw_mat``.) ``np.lib.stride_tricks.as_strided``
gives a *view* of ``xp`` with the window axes as extra dimensions,
``[n, c, k, l, i, j] = xp[n, c, i*s + k, j*s + l]``, so building ``cols`` is a
single memory copy and no Python loop over windows.

The backward pass is two more products with the same operands::

    dw_mat = sum_n dout[n] @ cols[n].T    # (F, C*HH*WW)
    dcols[n] = w_mat.T @ dout[n]          # (C*HH*WW, H'*W')

``dcols`` holds one gradient per (tap, output position); the gradient of a
pixel is the sum over every window that covers it (col2im). It is
accumulated with one strided slice-add per kernel tap ``(k, l)``: ``HH*WW``
vectorised additions rather than a loop over windows. At stride 1 with no
more filters than channels, ``dx`` is instead the "full" convolution of the
zero-padded ``dout`` with the flipped filters, computed by the same im2col and
matmul, which needs no col2im at all::

    dx[n, c, y, x] = sum_{f, k, l} doutp[n, f, y + k, x + l] * w[f, c, HH-1-k, WW-1-l]

Memory layout and chunks
------------------------
How fast the im2col copy and the col2im additions run depends on the length
of the contiguous runs of memory they move. With few channels (RGB input)
the padded input is kept channels-first, (N, C, Hp, Wp), and the runs are
image rows; with at least as many channels as output columns it is kept
channels-last, (N, Hp, Wp, C), the taps are ordered ``(k, l, c)`` and the runs
are ``WW*C`` numbers long. ``cols[n]`` is then a transposed view, which BLAS
reads just as well. Inputs and outputs are NCHW either way.

For a big batch the im2col matrices are large (37 MB for 64 images of
64x16x16 and 3x3 filters in float32), and writing them to main memory and
reading them back costs about as much as the arithmetic. The layers therefore
walk the batch a few images at a time, with the im2col matrices of one chunk
(a few MB, see ``CHUNK_BYTES``) in a buffer that stays in the processor's
cache and is reused by every chunk. The backward pass rebuilds each chunk's
``cols`` from the padded input (a cheap copy within the cache) instead of
keeping them from the forward pass, so the cache between the passes holds
only the padded input; a part of the batch (see Threads) that is a single
chunk keeps its ``cols`` instead.

With few channels the per-image products are small, and the layers multiply
``w_mat`` with a chunk's stack of ``cols[n]`` (one ``np.matmul`` that loops
over the images); channels-last, a chunk's ``cols`` are one contiguous
``(n*H'*W', K)`` matrix and each product is a single large one for the whole
chunk, whose result is transposed to NCHW.

Threads
-------
Split a batch in parts and every step above (padding, im2col, the products,
col2im) runs on each part independently; only ``dw`` and ``db`` are sums over
all the images. The layers therefore give each of :data:`THREADS` threads its
own part of the batch (a pool of Python threads: NumPy lets go of the
interpreter lock inside its loops and BLAS calls, so the parts run in
parallel) and add up the parts' ``dw`` at the end. Meanwhile BLAS is held to
one thread (with ``threadpoolctl``): the per-part products are too small for
BLAS's own threads to pay off, and two levels of threads would compete for
the same cores. By default :data:`THREADS` is the number of threads NumPy's
BLAS is set to use, so ``OMP_NUM_THREADS=1`` makes the layers single-threaded
too. Parts smaller than :data:`MIN_PART_MACS` multiply-adds are not worth
a thread and are not split off.

Scratch memory
--------------
The chunk buffers (im2col matrices, their gradients, transposes, padded
``dout``) are kept from one call to the next, one set per thread, and reused:
asking the operating system for fresh memory of a few MB on every call costs
thousands of page faults, which can take as long as the arithmetic. They hold
a few times :data:`CHUNK_BYTES` per thread, released when the thread ends.
Nothing the caller receives (outputs, gradients, the cache) lives in them, so
interleaved calls of several layers are safe.

Max pooling
-----------
The maximum over each window is a running elementwise maximum over the
``ph*pw`` window offsets ``(k, l)``, each a strided view
``x[:, :, k::s, l::s]`` of the input. When the windows tile the input
(stride equal to the window, as in the usual 2x2/stride-2 pooling) these views
come from the reshape (N, C, H', ph, W', pw); otherwise (overlapping windows or
gaps) from strided slicing. The backward pass sends each window's gradient to
the first entry (in row-major order within the window) equal to its maximum,
exactly as the naive version does, accumulating where windows overlap.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.lib.stride_tricks import as_strided
from threadpoolctl import ThreadpoolController

from ._validate import positive_int
from .layers import _check_dout, _common_dtype, _conv_geometry, _pool_geometry

__all__ = ["im2col", "conv_forward_fast", "conv_backward_fast",
           "max_pool_forward_fast", "max_pool_backward_fast"]

#: Size in bytes of the im2col buffer for one chunk of images.
CHUNK_BYTES = 8 * 2**20
#: Compute dx as a full convolution where it applies (stride 1, F <= C,
#: pad < kernel size); False always uses col2im. Both give the same numbers.
FULL_CONV_DX = True


#: Threads a convolution runs on, each taking its own part of the batch;
#: ``None`` (the default) uses as many as NumPy's BLAS is set to use (see
#: ``OPENBLAS_NUM_THREADS`` or ``OMP_NUM_THREADS``, or ``threadpoolctl``).
THREADS = None
#: Fewest multiply-adds worth a thread of their own.
MIN_PART_MACS = 2_000_000


# ----------------------------------------------------------------------------
# Convolution
# ----------------------------------------------------------------------------

def _chunk_images(N, bytes_per_image):
    """Images per chunk so that one chunk's im2col matrices fit in CHUNK_BYTES."""
    return max(1, min(N, CHUNK_BYTES // max(1, bytes_per_image)))


def _padded_empty(shape, pad_h, pad_w, channels_last, dtype):
    """Uninitialised padded array for NCHW ``shape``: (N, C, Hp, Wp), or
    (N, Hp, Wp, C) when ``channels_last``."""
    N, C, H, W = shape
    Hp, Wp = H + 2 * pad_h, W + 2 * pad_w
    return np.empty((N, Hp, Wp, C) if channels_last else (N, C, Hp, Wp), dtype=dtype)


def _pad_into(x, xp, pad_h, pad_w, channels_last):
    """Write NCHW ``x`` zero-padded into ``xp`` (from :func:`_padded_empty`)."""
    N, C, H, W = x.shape
    if channels_last:
        xp[:, :pad_h] = 0
        xp[:, pad_h + H:] = 0
        xp[:, pad_h:pad_h + H, :pad_w] = 0
        xp[:, pad_h:pad_h + H, pad_w + W:] = 0
        xp[:, pad_h:pad_h + H, pad_w:pad_w + W, :] = x.transpose(0, 2, 3, 1)
    else:
        xp[:, :, :pad_h] = 0
        xp[:, :, pad_h + H:] = 0
        xp[:, :, pad_h:pad_h + H, :pad_w] = 0
        xp[:, :, pad_h:pad_h + H, pad_w + W:] = 0
        xp[:, :, pad_h:pad_h + H, pad_w:pad_w + W] = x


_CONTROLLER = None


def _blas_controller():
    """A threadpoolctl controller of the BLAS libraries loaded (made once)."""
    global _CONTROLLER
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController().select(user_api="blas")
    return _CONTROLLER


def _threads():
    """:data:`THREADS`, or the threads NumPy's BLAS uses."""
    if THREADS is not None:
        return positive_int(THREADS, "lab.fast_layers.THREADS")
    info = _blas_controller().info()
    return max([lib["num_threads"] for lib in info] + [1])


def _parts(N, macs_per_image):
    """Split range(N) into contiguous parts, one per thread: as many as
    :data:`THREADS`, but none with less than :data:`MIN_PART_MACS`
    multiply-adds; returns a list of (n0, n1)."""
    T = max(1, min(_threads(), N, (N * macs_per_image) // max(1, MIN_PART_MACS)))
    bounds = [N * t // T for t in range(T + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


_POOL = None


def _reset_pool():
    global _POOL
    _POOL = None


if hasattr(os, "register_at_fork"):          # not on Windows, which cannot fork
    os.register_at_fork(after_in_child=_reset_pool)


def _map_parts(fn, parts, with_index=False):
    """``[fn(n0, n1) for n0, n1 in parts]`` (``fn(i, n0, n1)`` with
    ``with_index``), the first part in this thread and the others in a
    thread pool, with BLAS held to one thread meanwhile. NumPy lets go of the
    interpreter lock inside its loops and BLAS calls, so the parts run in
    parallel."""
    args = [(i, n0, n1) if with_index else (n0, n1) for i, (n0, n1) in enumerate(parts)]
    if len(parts) == 1:
        return [fn(*args[0])]
    global _POOL
    if _POOL is None or _POOL._max_workers < len(parts) - 1:
        if _POOL is not None:
            _POOL.shutdown(wait=False)           # its idle threads exit
        _POOL = ThreadPoolExecutor(max_workers=len(parts) - 1,
                                   thread_name_prefix="lab-conv")
    # each thread's products run on one BLAS thread, not on all of them
    with _blas_controller().limit(limits=1):
        futures = [_POOL.submit(fn, *a) for a in args[1:]]
        first = fn(*args[0])
        return [first] + [f.result() for f in futures]


_SCRATCH = threading.local()     # freed with its thread


def _scratch(slot, size, dtype):
    """A work array of ``size`` entries of ``dtype``, reused by later calls
    in the same thread (one per ``slot``; see "Scratch memory" in the module
    docstring). Its contents are undefined."""
    bufs = getattr(_SCRATCH, "bufs", None)
    if bufs is None:
        bufs = _SCRATCH.bufs = {}
    nbytes = max(1, size * np.dtype(dtype).itemsize)
    raw = bufs.get(slot)
    if raw is None or raw.size < nbytes:
        raw = bufs[slot] = np.empty(nbytes, dtype=np.uint8)
    return raw[:size * np.dtype(dtype).itemsize].view(dtype)


def _im2col(xp, HH, WW, stride, H_out, W_out, buf, channels_last, ones=False):
    """The im2col matrices of a chunk of padded images, copied into ``buf``.

    Parameters
    ----------
    xp : ndarray, shape (n, C, Hp, Wp), or (n, Hp, Wp, C) if ``channels_last``
    buf : 1-D ndarray with at least ``n * (C*HH*WW + ones) * H'*W'`` entries
        Scratch memory the matrices are written to.
    ones : bool
        Append a row of ones (the constant input that the bias multiplies).

    Returns
    -------
    cols : ndarray, shape (n, K, H'*W') with K = C*HH*WW (+ 1 with ``ones``)
        ``cols[m, tap, i*W' + j] = xp[m, c, i*stride + k, j*stride + l]``,
        the taps ordered (c, k, l) channels-first (a C-contiguous array) or
        (k, l, c) channels-last (a transposed view of a C-contiguous
        (n, H'*W', K) array).
    """
    n = xp.shape[0]
    if channels_last:
        C = xp.shape[3]
        sn, sh, sw, sc = xp.strides
        shape = (n, H_out, W_out, HH, WW, C)
        strides = (sn, stride * sh, stride * sw, sh, sw, sc)
    else:
        C = xp.shape[1]
        sn, sc, sh, sw = xp.strides
        shape = (n, C, HH, WW, H_out, W_out)
        strides = (sn, sc, sh, sw, stride * sh, stride * sw)
    windows = as_strided(xp, shape, strides, writeable=False)
    K, P = C * HH * WW, H_out * W_out
    rows = K + 1 if ones else K
    if channels_last:
        cols = buf[:n * P * rows].reshape(n, P, rows)
        np.copyto(cols[:, :, :K].reshape(shape), windows)
        if ones:
            cols[:, :, K] = 1
        return cols.transpose(0, 2, 1)
    cols = buf[:n * rows * P].reshape(n, rows, P)
    np.copyto(cols[:, :K, :].reshape(shape), windows)
    if ones:
        cols[:, K, :] = 1
    return cols


def _col2im_add(dcols, dxp, stride, channels_last):
    """Add window gradients back onto the padded images they came from.

    Parameters
    ----------
    dcols : ndarray, shape (n, C, HH, WW, H', W'), or (n, H', W', HH, WW, C)
        if ``channels_last``: the gradient of every (tap, output position).
    dxp : ndarray, shape (n, C, Hp, Wp), or (n, Hp, Wp, C) if ``channels_last``
        Modified in place: ``dxp[m, c, i*stride + k, j*stride + l] +=
        dcols[m, c, k, l, i, j]`` for every (c, k, l, i, j).
    """
    if channels_last:
        n, H_out, W_out, HH, WW, C = dcols.shape
    else:
        n, C, HH, WW, H_out, W_out = dcols.shape
    h_span, w_span = stride * (H_out - 1) + 1, stride * (W_out - 1) + 1
    for k in range(HH):
        for l in range(WW):
            rows = slice(k, k + h_span, stride)
            cols = slice(l, l + w_span, stride)
            if channels_last:
                dxp[:, rows, cols, :] += dcols[:, :, :, k, l, :]
            else:
                dxp[:, :, rows, cols] += dcols[:, :, k, l]


def _use_channels_last(C, W_out):
    """Channels-last when a channel vector is at least as long as an output row."""
    return C >= W_out


def conv_forward_fast(x, w, b, conv_param):
    """Convolution, vectorised: the same result as
    :func:`lab.layers.conv_forward_naive`.

    ``out[n, f, i, j] = b[f] + sum_{c, k, l} w[f, c, k, l] * xp[n, c, i*s + k, j*s + l]``
    computed, a chunk of images at a time, as ``out[n] = w_mat @ cols[n]``
    with ``cols[n]`` the im2col matrix of padded image n (see the module
    docstring), on :data:`THREADS` threads, each taking its own part of the
    batch.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    w : ndarray, shape (F, C, HH, WW)
    b : ndarray, shape (F,)
    conv_param : dict with ``'stride'`` and ``'pad'`` (no other keys); the output size
        ``H' = 1 + (H + 2*pad - HH) / stride`` (likewise ``W'``) must be whole.

    Returns
    -------
    out : ndarray, shape (N, F, H', W'), in the dtype of the inputs
        (float32 only if x, w and b all are).
    cache : tuple for :func:`conv_backward_fast`; holds the padded input (and
        the im2col matrices when each thread's part is a single chunk).
    """
    x, w, b, stride, pad, H_out, W_out = _conv_geometry(x, w, b, conv_param)
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    K, P = C * HH * WW, H_out * W_out
    channels_last = _use_channels_last(C, W_out)
    # filters as rows, taps in the order of the im2col rows, and the bias as
    # the weight of an extra input that is always 1
    w_mat = np.empty((F, K + 1), dtype=x.dtype)
    w_mat[:, :K] = (w.transpose(0, 2, 3, 1) if channels_last else w).reshape(F, K)
    w_mat[:, K] = b
    xp = _padded_empty(x.shape, pad, pad, channels_last, x.dtype)
    out = np.empty((N, F, H_out, W_out), dtype=x.dtype)
    out3 = out.reshape(N, F, P)
    parts = _parts(N, F * (K + 1) * P)
    chunk = _chunk_images(max(n1 - n0 for n0, n1 in parts), (K + 1) * P * x.itemsize)

    def forward_part(n0, n1):
        _pad_into(x[n0:n1], xp[n0:n1], pad, pad, channels_last)
        step = min(chunk, n1 - n0)
        if step == n1 - n0:              # one chunk: the backward pass reuses its cols
            buf = np.empty(step * (K + 1) * P, dtype=x.dtype)
        else:
            buf = _scratch("cols", step * (K + 1) * P, x.dtype)
        if channels_last:
            obuf = _scratch("trans", step * P * F, x.dtype)
        for c0 in range(n0, n1, chunk):
            c1 = min(n1, c0 + chunk)
            cols = _im2col(xp[c0:c1], HH, WW, stride, H_out, W_out, buf, channels_last,
                           ones=True)
            if channels_last:
                # one product for the whole chunk: (n*H'*W', K+1) @ (K+1, F)
                n = c1 - c0
                out_t = obuf[:n * P * F].reshape(n * P, F)
                np.matmul(cols.transpose(0, 2, 1).reshape(n * P, K + 1), w_mat.T, out=out_t)
                out3[c0:c1] = out_t.reshape(n, P, F).transpose(0, 2, 1)
            else:
                np.matmul(w_mat, cols, out=out3[c0:c1])  # (n, F, H'*W'), bias included
        # a part that fits in one chunk keeps its im2col matrices for the backward pass
        return cols if c0 == n0 else None

    kept = _map_parts(forward_part, parts)
    kept_cols = None if any(c is None for c in kept) else kept
    return out, (xp, w, w_mat, x.shape, stride, pad, channels_last, parts, kept_cols)


def conv_backward_fast(dout, cache, *, need_dx=True):
    """Backward pass of :func:`conv_forward_fast`; the same gradients as
    :func:`lab.layers.conv_backward_naive`.

    Per chunk of images, with ``cols`` the chunk's im2col matrices (kept
    from the forward pass or rebuilt from the padded input):
    ``dw_mat += sum_n dout[n] @ cols[n].T``, and either
    ``dcols[n] = w_mat.T @ dout[n]`` summed back onto the pixels (col2im) or,
    at stride 1 with ``F <= C``, ``dx`` as the full convolution of ``dout``
    with the flipped filters. ``db``, the sum of ``dout`` over images and
    positions, is the column of ``dw_mat`` that belongs to the row of ones.
    The batch is split between threads as in the forward pass.

    Parameters
    ----------
    dout : ndarray, shape (N, F, H', W')
    cache : tuple from :func:`conv_forward_fast`
    need_dx : bool, keyword only
        False skips the gradient of the input (about a third of the work),
        for a first layer, whose input is the data.

    Returns
    -------
    dx : ndarray, shape (N, C, H, W), or None if not ``need_dx``
    dw : ndarray, shape (F, C, HH, WW)
    db : ndarray, shape (F,)
    """
    xp, w, w_mat, x_shape, stride, pad, channels_last, parts, kept_cols = cache
    N, C, H, W = x_shape
    F, _, HH, WW = w.shape
    H_out = (H + 2 * pad - HH) // stride + 1
    W_out = (W + 2 * pad - WW) // stride + 1
    dtype = w.dtype
    dout = np.ascontiguousarray(_check_dout(dout, (N, F, H_out, W_out)), dtype=dtype)
    K, P = C * HH * WW, H_out * W_out
    dout3 = dout.reshape(N, F, P)
    w_mat = w_mat[:, :K]
    # dx as a full convolution: pad dout by (HH-1-pad, WW-1-pad), correlate
    # with the flipped filters (taps (k, l, f), channels-last im2col of dout)
    # so that w_flip @ dcols[n] is dx[n] in NCHW order
    if not isinstance(need_dx, (bool, np.bool_)):
        raise TypeError(f"need_dx must be True or False, got {need_dx!r}")
    full = FULL_CONV_DX and stride == 1 and F <= C and pad < min(HH, WW)
    if full and need_dx:
        w_flip = w[:, :, ::-1, ::-1].transpose(1, 2, 3, 0).reshape(C, HH * WW * F)
    dx = np.empty(x_shape, dtype=dtype) if need_dx else None
    dx3 = dx.reshape(N, C, H * W) if need_dx else None
    chunk = _chunk_images(max(n1 - n0 for n0, n1 in parts), (K + 1) * P * xp.itemsize)

    def backward_part(i, n0, n1):
        # gradient of [w_mat | b]: the last column, dout times the constant 1, is db
        dwb = np.zeros((F, K + 1), dtype=dtype)
        step = n1 - n0 if kept_cols is not None else min(chunk, n1 - n0)
        if kept_cols is None:
            buf = _scratch("cols", step * (K + 1) * P, dtype)
        if need_dx:
            dbuf = _scratch("dcols", step * (HH * WW * F * H * W if full else K * P), dtype)
        if channels_last:
            tbuf = _scratch("trans", step * P * F, dtype)
        if need_dx and full:
            # dout padded by (HH-1-pad, WW-1-pad), channels-last, a chunk at a time
            ph, pw = HH - 1 - pad, WW - 1 - pad
            pshape = (step, H_out + 2 * ph, W_out + 2 * pw, F)
            pbuf = _scratch("dpad", int(np.prod(pshape)), dtype)
        elif need_dx:
            xshape = (step,) + xp.shape[1:]
            pbuf = _scratch("dxp", int(np.prod(xshape)), dtype)
        for c0 in range(n0, n1, step):
            c1 = min(n1, c0 + step)
            n = c1 - c0
            if kept_cols is not None:
                cols = kept_cols[i]
            else:
                cols = _im2col(xp[c0:c1], HH, WW, stride, H_out, W_out, buf, channels_last,
                               ones=True)
            d = dout3[c0:c1]                                            # (n, F, P)
            if channels_last:
                # whole-chunk products with dout as (n*P, F) and cols as (n*P, K+1)
                d_t = tbuf[:n * P * F].reshape(n, P, F)
                np.copyto(d_t, d.transpose(0, 2, 1))
                d_t = d_t.reshape(n * P, F)
                dwb += d_t.T @ cols.transpose(0, 2, 1).reshape(n * P, K + 1)
            else:
                dwb += np.matmul(d, cols.transpose(0, 2, 1)).sum(axis=0)
            if not need_dx:
                continue
            if full:
                doutp = pbuf[:n * pshape[1] * pshape[2] * F].reshape((n,) + pshape[1:])
                _pad_into(dout[c0:c1], doutp, ph, pw, True)
            else:
                dxp = pbuf[:n * int(np.prod(xshape[1:]))].reshape((n,) + xshape[1:])
                dxp.fill(0)
            if full and channels_last:
                dcols = _im2col(doutp, HH, WW, 1, H, W, dbuf, channels_last=True)
                dx_t = dcols.transpose(0, 2, 1).reshape(n * H * W, HH * WW * F) @ w_flip.T
                dx3[c0:c1] = dx_t.reshape(n, H * W, C).transpose(0, 2, 1)
            elif full:
                dcols = _im2col(doutp, HH, WW, 1, H, W, dbuf, channels_last=True)
                np.matmul(w_flip, dcols, out=dx3[c0:c1])
            elif channels_last:
                dcols = dbuf[:n * P * K].reshape(n * P, K)
                np.matmul(d_t, w_mat, out=dcols)
                _col2im_add(dcols.reshape(n, H_out, W_out, HH, WW, C), dxp, stride, True)
            else:
                dcols = dbuf[:n * K * P].reshape(n, K, P)
                np.matmul(w_mat.T, d, out=dcols)
                _col2im_add(dcols.reshape(n, C, HH, WW, H_out, W_out), dxp, stride, False)
            if not full and channels_last:
                dx[c0:c1] = dxp[:, pad:pad + H, pad:pad + W, :].transpose(0, 3, 1, 2)
            elif not full:
                dx[c0:c1] = dxp[:, :, pad:pad + H, pad:pad + W]
        return dwb

    dwb = sum(_map_parts(backward_part, parts, with_index=True))
    db = dwb[:, K].copy()
    if channels_last:
        dw = np.ascontiguousarray(dwb[:, :K].reshape(F, HH, WW, C).transpose(0, 3, 1, 2))
    else:
        dw = np.ascontiguousarray(dwb[:, :K]).reshape(F, C, HH, WW)
    return dx, dw, db


# ----------------------------------------------------------------------------
# Max pooling
# ----------------------------------------------------------------------------

def _tiles(x_shape, ph, pw, stride):
    """Whether the pooling windows tile the input exactly (no overlap, no gaps)."""
    H, W = x_shape[2:]
    return ph == stride and pw == stride and H % ph == 0 and W % pw == 0


def _window_entries(a, ph, pw, stride, H_out, W_out, tiles):
    """The ``ph*pw`` views ``a[:, :, k + i*stride, l + j*stride]`` (over i, j),
    one per window offset (k, l), in row-major order of (k, l).

    When the windows tile ``a`` they are taken from the reshape
    (N, C, H', ph, W', pw), otherwise by strided slicing; views either way.
    """
    N, C = a.shape[:2]
    if tiles:
        a6 = a.reshape(N, C, H_out, ph, W_out, pw)
        return [a6[:, :, :, k, :, l] for k in range(ph) for l in range(pw)]
    h_span, w_span = stride * (H_out - 1) + 1, stride * (W_out - 1) + 1
    return [a[:, :, k:k + h_span:stride, l:l + w_span:stride]
            for k in range(ph) for l in range(pw)]


def max_pool_forward_fast(x, pool_param):
    """Max pooling, vectorised: the same result as
    :func:`lab.layers.max_pool_forward_naive`.

    ``out = max_{k, l} x[:, :, k::stride, l::stride]`` (cut to H' x W'): a
    running elementwise maximum over the ``ph*pw`` window offsets, each a
    strided view of x (from a reshape when the windows tile the input), so
    the work is ``ph*pw`` vectorised passes over the output.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    pool_param : dict with ``'pool_height'``, ``'pool_width'``, ``'stride'`` (no other keys)

    Returns
    -------
    out : ndarray, shape (N, C, H', W'), dtype of x
    cache : tuple for :func:`max_pool_backward_fast`; holds x and a copy of
        ``out`` (not ``out`` itself, which the caller may change)
    """
    x, ph, pw, stride, H_out, W_out = _pool_geometry(x, pool_param)
    tiles = _tiles(x.shape, ph, pw, stride)
    entries = _window_entries(x, ph, pw, stride, H_out, W_out, tiles)
    out = np.maximum(entries[0], entries[1]) if len(entries) > 1 else entries[0].copy()
    for entry in entries[2:]:
        np.maximum(out, entry, out=out)
    # the backward pass compares x with the maxima: keep a copy of its own, so
    # that changing the returned array cannot change the gradient
    return out, (x, out.copy(), (ph, pw, stride, tiles))


def max_pool_backward_fast(dout, cache):
    """Backward pass of :func:`max_pool_forward_fast`; the same gradient as
    :func:`lab.layers.max_pool_backward_naive`.

    The window offsets ``(k, l)`` are visited in row-major order; at each, the
    windows whose maximum sits there and has not been claimed by an earlier
    offset pass their gradient to it. This routes every window's gradient to
    the first maximal entry, like ``np.argmax`` on the window. Where windows
    overlap the contributions are added; where they tile the input every entry
    of ``dx`` is written exactly once (reshape path).

    Parameters
    ----------
    dout : ndarray, shape (N, C, H', W')
    cache : tuple from :func:`max_pool_forward_fast`

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
    """
    x, out, (ph, pw, stride, tiles) = cache
    H_out, W_out = out.shape[2:]
    dout = _check_dout(dout, out.shape)
    dtype = _common_dtype(x, dout)
    dx = np.empty(x.shape, dtype=dtype) if tiles else np.zeros(x.shape, dtype=dtype)
    x_entries = _window_entries(x, ph, pw, stride, H_out, W_out, tiles)
    dx_entries = _window_entries(dx, ph, pw, stride, H_out, W_out, tiles)
    last = len(x_entries) - 1
    claimed = None
    for t, (x_entry, dx_entry) in enumerate(zip(x_entries, dx_entries)):
        hit = x_entry == out
        if claimed is None:
            claimed = hit.copy() if t < last else None
        else:
            hit &= ~claimed
            if t < last:
                claimed |= hit
        if tiles:
            np.multiply(hit, dout, out=dx_entry)
        else:
            dx_entry += hit * dout
    return dx


def im2col(x, HH, WW, stride=1, pad=0):
    """The im2col matrix of a convolution, in the textbook layout.

    Every window of the zero-padded input becomes one column, so that a
    convolution is the single product ``w.reshape(F, -1) @ im2col(...)``.
    (``conv_forward_fast`` builds the same matrix internally, in whichever
    layout is fastest for the shape at hand; this function is for reading.)

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    HH, WW : int
        Filter height and width.
    stride, pad : int

    Returns
    -------
    cols : ndarray, shape (C*HH*WW, N*H'*W')
        ``cols[(c*HH + k)*WW + l, (n*H' + i)*W' + j] = xpad[n, c, i*stride + k, j*stride + l]``.
    """
    HH = positive_int(HH, "HH")
    WW = positive_int(WW, "WW")
    x = np.asarray(x)
    C = x.shape[1] if x.ndim == 4 else 1
    x, _, _, stride, pad, H_out, W_out = _conv_geometry(
        x, np.zeros((1, C, HH, WW)), np.zeros(1), {"stride": stride, "pad": pad})
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (HH, WW), axis=(2, 3))
    win = win[:, :, ::stride, ::stride]                   # (N, C, H', W', HH, WW)
    N = x.shape[0]
    return win.transpose(1, 4, 5, 0, 2, 3).reshape(C * HH * WW, N * H_out * W_out)
