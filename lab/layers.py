"""Layers of a convolutional network in NumPy, written for clarity.

Every layer is a pair of functions in the CS231n style:

* ``forward(inputs..., param) -> (out, cache)`` computes the output and keeps
  what the backward pass needs in ``cache``;
* ``backward(dout, cache) -> gradients`` takes the upstream gradient
  ``dout = dL/dout`` (same shape as ``out``) and returns the gradients of the
  loss with respect to each input, in the order the inputs were given.

Image tensors are NCHW: ``(N, C, H, W)`` = (batch, channels, height, width).
The convolution and pooling layers here loop over every output entry, so that
the code reads like the formula it implements; :mod:`lab.fast_layers` holds
vectorised versions that give the same numbers much faster.

Floating-point dtypes are kept (float32 in, float32 out); integer arrays are
converted to float64. Bad input raises ``ValueError``/``TypeError`` naming the
argument, what was received and what was expected.
"""
from __future__ import annotations

import difflib

import numpy as np

from ._validate import as_float_array, as_labels, finite_float, nonneg_int, positive_int

__all__ = [
    "affine_forward", "affine_backward",
    "relu_forward", "relu_backward",
    "softmax_loss",
    "conv_forward_naive", "conv_backward_naive",
    "max_pool_forward_naive", "max_pool_backward_naive",
    "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt",
    "spatial_batchnorm_forward", "spatial_batchnorm_backward",
    "layernorm_forward", "layernorm_backward",
    "spatial_groupnorm_forward", "spatial_groupnorm_backward",
]


# ----------------------------------------------------------------------------
# Shared input checks (also used by lab.fast_layers and lab.layer_utils)
# ----------------------------------------------------------------------------

#: The keys each parameter dict may hold; any other key raises ValueError.
_CONV_PARAM_KEYS = ("stride", "pad")
_POOL_PARAM_KEYS = ("pool_height", "pool_width", "stride")
_BN_PARAM_KEYS = ("mode", "eps", "momentum", "running_mean", "running_var")
_NORM_PARAM_KEYS = ("eps", "mode")


def _common_dtype(*arrays):
    """The floating dtype all arrays are computed in (float32 only if all are)."""
    return np.result_type(*[a.dtype for a in arrays])


def _check_dout(dout, shape, name="dout"):
    """Check an upstream gradient against the shape of the forward output."""
    dout = as_float_array(dout, name)
    if dout.shape != tuple(shape):
        raise ValueError(f"{name} must have the shape of the forward output {tuple(shape)}, "
                         f"got {dout.shape}")
    return dout


def _check_param_dict(param, name, required=(), accepted=None):
    """Check that ``param`` is a dict holding the keys ``required`` and, when
    ``accepted`` is given, no key outside it (a misspelt key would otherwise be
    ignored without a word)."""
    if not isinstance(param, dict):
        raise TypeError(f"{name} must be a dict, got {type(param).__name__}")
    if accepted is not None:
        unknown = [k for k in param if k not in accepted]
        if unknown:
            hints = [f"{k!r} -> {m[0]!r}" for k in unknown if isinstance(k, str)
                     for m in [difflib.get_close_matches(k, accepted, n=1)] if m]
            hint = f" (did you mean {', '.join(hints)}?)" if hints else ""
            raise ValueError(f"{name} has unknown key(s) {unknown}{hint}; "
                             f"accepted keys are {list(accepted)}")
    missing = [k for k in required if k not in param]
    if missing:
        raise ValueError(f"{name} is missing the key(s) {missing}; expected keys {list(required)}")


def _check_images(x, name="x"):
    x = as_float_array(x, name, ndim=4)
    if x.size == 0:
        raise ValueError(f"{name} must not have a zero-sized dimension, got shape {x.shape}")
    return x


def _conv_geometry(x, w, b, conv_param):
    """Validate the inputs of a convolution and return the output size.

    Returns ``x, w, b, stride, pad, H_out, W_out`` with ``x, w, b`` cast to one
    floating dtype.
    """
    x = _check_images(x, "x")
    w = as_float_array(w, "w", ndim=4)
    if w.size == 0:
        raise ValueError(f"w must not have a zero-sized dimension, got shape {w.shape}")
    N, C, H, W = x.shape
    F, Cw, HH, WW = w.shape
    if Cw != C:
        raise ValueError(f"w must have {C} input channels to match x of shape {x.shape} "
                         f"(w has shape (F, C, HH, WW)), got w of shape {w.shape}")
    b = as_float_array(b, "b", shape=(F,))
    _check_param_dict(conv_param, "conv_param", ("stride", "pad"), _CONV_PARAM_KEYS)
    stride = positive_int(conv_param["stride"], "conv_param['stride']")
    pad = nonneg_int(conv_param["pad"], "conv_param['pad']")
    Hp, Wp = H + 2 * pad, W + 2 * pad
    if HH > Hp or WW > Wp:
        raise ValueError(f"filter of size {HH}x{WW} does not fit in the padded input of size "
                         f"{Hp}x{Wp} (x of shape {x.shape}, pad {pad})")
    if (Hp - HH) % stride or (Wp - WW) % stride:
        raise ValueError(
            "output size is not a whole number: need (H + 2*pad - HH) and (W + 2*pad - WW) "
            f"divisible by stride {stride}, got H + 2*pad - HH = {Hp - HH} and "
            f"W + 2*pad - WW = {Wp - WW} (x of shape {x.shape}, w of shape {w.shape}, pad {pad})")
    H_out = (Hp - HH) // stride + 1
    W_out = (Wp - WW) // stride + 1
    dtype = _common_dtype(x, w, b)
    return (x.astype(dtype, copy=False), w.astype(dtype, copy=False), b.astype(dtype, copy=False),
            stride, pad, H_out, W_out)


def _pool_geometry(x, pool_param):
    """Validate the inputs of max pooling; return ``x, ph, pw, stride, H_out, W_out``."""
    x = _check_images(x, "x")
    _check_param_dict(pool_param, "pool_param", _POOL_PARAM_KEYS, _POOL_PARAM_KEYS)
    ph = positive_int(pool_param["pool_height"], "pool_param['pool_height']")
    pw = positive_int(pool_param["pool_width"], "pool_param['pool_width']")
    stride = positive_int(pool_param["stride"], "pool_param['stride']")
    N, C, H, W = x.shape
    if ph > H or pw > W:
        raise ValueError(f"pooling window {ph}x{pw} does not fit in the input of size {H}x{W} "
                         f"(x of shape {x.shape})")
    if (H - ph) % stride or (W - pw) % stride:
        raise ValueError(
            "output size is not a whole number: need (H - pool_height) and (W - pool_width) "
            f"divisible by stride {stride}, got {H - ph} and {W - pw} (x of shape {x.shape}, "
            f"window {ph}x{pw})")
    return x, ph, pw, stride, (H - ph) // stride + 1, (W - pw) // stride + 1


def _norm_params(param, name, defaults):
    """``eps`` of a layer or group norm parameter dict. ``'mode'`` is accepted
    too (a training loop may set it on every normalisation layer), but changes
    nothing: these layers compute the same in training and testing."""
    _check_param_dict(param, name, accepted=_NORM_PARAM_KEYS)
    if "mode" in param and param["mode"] not in ("train", "test"):
        raise ValueError(f"{name}['mode'] must be 'train' or 'test', got {param['mode']!r}")
    eps = finite_float(param.get("eps", defaults["eps"]), f"{name}['eps']", low=0.0, low_open=True)
    return eps


# ----------------------------------------------------------------------------
# Affine, ReLU, softmax
# ----------------------------------------------------------------------------

def affine_forward(x, w, b):
    """Fully connected layer ``out = x_flat @ w + b``.

    Parameters
    ----------
    x : ndarray, shape (N, d_1, ..., d_k)
        Each example is flattened to a row of length ``D = d_1 * ... * d_k``.
    w : ndarray, shape (D, M)
    b : ndarray, shape (M,)

    Returns
    -------
    out : ndarray, shape (N, M)
    cache : tuple ``(x, w, b)``
    """
    x = as_float_array(x, "x")
    if x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"x must have shape (N, d_1, ..., d_k) with N >= 1, got {x.shape}")
    w = as_float_array(w, "w", ndim=2)
    D = int(np.prod(x.shape[1:]))
    if w.shape[0] != D:
        raise ValueError(f"w must have shape ({D}, M) to match x of shape {x.shape} "
                         f"(D = {D} features per example), got {w.shape}")
    b = as_float_array(b, "b", shape=(w.shape[1],))
    dtype = _common_dtype(x, w, b)
    x, w, b = (a.astype(dtype, copy=False) for a in (x, w, b))
    out = x.reshape(x.shape[0], D) @ w + b
    return out, (x, w, b)


def affine_backward(dout, cache):
    """Backward pass of :func:`affine_forward`.

    With ``X`` the (N, D) flattened input:
    ``dx = dout @ w.T`` (reshaped like x), ``dw = X.T @ dout``, ``db = sum_n dout[n]``.

    Parameters
    ----------
    dout : ndarray, shape (N, M)
    cache : tuple from :func:`affine_forward`

    Returns
    -------
    dx : ndarray, shape (N, d_1, ..., d_k)
    dw : ndarray, shape (D, M)
    db : ndarray, shape (M,)
    """
    x, w, b = cache
    N, D = x.shape[0], w.shape[0]
    dout = _check_dout(dout, (N, w.shape[1]))
    dx = (dout @ w.T).reshape(x.shape)
    dw = x.reshape(N, D).T @ dout
    db = dout.sum(axis=0)
    return dx, dw, db


def relu_forward(x):
    """Rectified linear unit ``out = max(0, x)``, elementwise.

    Parameters
    ----------
    x : ndarray, any shape

    Returns
    -------
    out : ndarray, shape of x
    cache : ndarray ``x``
    """
    x = as_float_array(x, "x")
    return np.maximum(x, 0), x


def relu_backward(dout, cache):
    """Backward pass of :func:`relu_forward`: ``dx = dout * [x > 0]``.

    (The subgradient at exactly 0 is taken to be 0.)

    Parameters
    ----------
    dout : ndarray, shape of x
    cache : ndarray ``x``

    Returns
    -------
    dx : ndarray, shape of x
    """
    x = cache
    dout = _check_dout(dout, x.shape)
    return np.where(x > 0, dout, 0).astype(_common_dtype(x, dout), copy=False)


def softmax_loss(x, y):
    """Softmax cross-entropy loss and its gradient.

    ``p[n, c] = exp(x[n, c]) / sum_k exp(x[n, k])`` and
    ``loss = -(1/N) sum_n log p[n, y[n]]``; its gradient is
    ``dx = (p - onehot(y)) / N``. The scores are shifted by their row maximum
    before exponentiating (which leaves ``p`` unchanged) and ``log p`` is taken
    as ``shifted - log sum exp(shifted)``, so large scores neither overflow nor
    give ``log(0)``.

    Parameters
    ----------
    x : ndarray, shape (N, C)
        Class scores.
    y : ndarray of int, shape (N,)
        Labels, ``0 <= y[n] < C``.

    Returns
    -------
    loss : float
    dx : ndarray, shape (N, C)
    """
    x = as_float_array(x, "x", ndim=2)
    N, C = x.shape
    if N == 0 or C == 0:
        raise ValueError(f"x must have shape (N, C) with N, C >= 1, got {x.shape}")
    y = as_labels(y, "y", n=N, num_classes=C)
    shifted = x - x.max(axis=1, keepdims=True)
    log_z = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    log_p = shifted - log_z
    rows = np.arange(N)
    loss = -log_p[rows, y].mean()
    dx = np.exp(log_p)
    dx[rows, y] -= 1
    dx /= N
    return float(loss), dx


# ----------------------------------------------------------------------------
# Convolution and max pooling, one output entry at a time
# ----------------------------------------------------------------------------

def conv_forward_naive(x, w, b, conv_param):
    """Convolution (cross-correlation, as in every deep learning library),
    naively.

    With the input zero-padded by ``pad`` on each side of both spatial axes
    (``xp``) and stride ``s``::

        out[n, f, i, j] = b[f] + sum_{c, k, l} w[f, c, k, l]
                                               * xp[n, c, i*s + k, j*s + l]

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    w : ndarray, shape (F, C, HH, WW)
    b : ndarray, shape (F,)
    conv_param : dict
        ``'stride'`` (positive int) and ``'pad'`` (non-negative int), no other
        keys (an unknown one, such as ``'dilation'``, raises ValueError).
        The output size ``H' = 1 + (H + 2*pad - HH) / stride`` (likewise
        ``W'``) must be whole.

    Returns
    -------
    out : ndarray, shape (N, F, H', W')
    cache : tuple ``(x, w, b, conv_param)``
    """
    x, w, b, s, pad, H_out, W_out = _conv_geometry(x, w, b, conv_param)
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.empty((N, F, H_out, W_out), dtype=x.dtype)
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    window = xp[n, :, i * s:i * s + HH, j * s:j * s + WW]
                    out[n, f, i, j] = np.sum(window * w[f]) + b[f]
    return out, (x, w, b, {"stride": s, "pad": pad})


def conv_backward_naive(dout, cache):
    """Backward pass of :func:`conv_forward_naive`.

    Every output entry ``out[n, f, i, j]`` touched one window of the padded
    input, so its upstream gradient flows back along the same products:

    * ``db[f] = sum_{n, i, j} dout[n, f, i, j]``
    * ``dw[f] += dout[n, f, i, j] * xp[n, :, window(i, j)]``
    * ``dxp[n, :, window(i, j)] += dout[n, f, i, j] * w[f]``

    and ``dx`` is ``dxp`` without its padding.

    Parameters
    ----------
    dout : ndarray, shape (N, F, H', W')
    cache : tuple from :func:`conv_forward_naive`

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
    dw : ndarray, shape (F, C, HH, WW)
    db : ndarray, shape (F,)
    """
    x, w, b, conv_param = cache
    s, pad = conv_param["stride"], conv_param["pad"]
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    H_out = (H + 2 * pad - HH) // s + 1
    W_out = (W + 2 * pad - WW) // s + 1
    dout = _check_dout(dout, (N, F, H_out, W_out)).astype(x.dtype, copy=False)
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    g = dout[n, f, i, j]
                    rows = slice(i * s, i * s + HH)
                    cols = slice(j * s, j * s + WW)
                    dw[f] += g * xp[n, :, rows, cols]
                    dxp[n, :, rows, cols] += g * w[f]
    db = dout.sum(axis=(0, 2, 3))
    dx = dxp[:, :, pad:pad + H, pad:pad + W].copy()
    return dx, dw, db


def max_pool_forward_naive(x, pool_param):
    """Max pooling, naively: the largest entry of each window.

    ``out[n, c, i, j] = max_{k < ph, l < pw} x[n, c, i*s + k, j*s + l]``

    Windows may overlap (stride smaller than the window) or leave gaps.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    pool_param : dict
        ``'pool_height'`` ph, ``'pool_width'`` pw and ``'stride'`` s, positive
        ints, and no other keys; ``H' = 1 + (H - ph) / s`` and
        ``W' = 1 + (W - pw) / s`` must be whole.

    Returns
    -------
    out : ndarray, shape (N, C, H', W')
    cache : tuple ``(x, pool_param)``
    """
    x, ph, pw, s, H_out, W_out = _pool_geometry(x, pool_param)
    N, C, H, W = x.shape
    out = np.empty((N, C, H_out, W_out), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    out[n, c, i, j] = x[n, c, i * s:i * s + ph,
                                        j * s:j * s + pw].max()
    return out, (x, {"pool_height": ph, "pool_width": pw, "stride": s})


def max_pool_backward_naive(dout, cache):
    """Backward pass of :func:`max_pool_forward_naive`.

    The maximum passes on only one entry of its window, so the whole upstream
    gradient of ``out[n, c, i, j]`` goes to that entry. When several entries
    tie for the maximum, the first one in row-major order within the window
    gets it (``np.argmax``); where windows overlap, an entry collects the
    gradients of every window whose maximum it is.

    Parameters
    ----------
    dout : ndarray, shape (N, C, H', W')
    cache : tuple from :func:`max_pool_forward_naive`

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
    """
    x, pool_param = cache
    ph, pw, s = (pool_param["pool_height"], pool_param["pool_width"],
                 pool_param["stride"])
    N, C, H, W = x.shape
    H_out, W_out = (H - ph) // s + 1, (W - pw) // s + 1
    dout = _check_dout(dout, (N, C, H_out, W_out))
    dx = np.zeros(x.shape, dtype=_common_dtype(x, dout))
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    window = x[n, c, i * s:i * s + ph, j * s:j * s + pw]
                    k, l = np.unravel_index(np.argmax(window), window.shape)
                    dx[n, c, i * s + k, j * s + l] += dout[n, c, i, j]
    return dx


# ----------------------------------------------------------------------------
# Batch normalisation
# ----------------------------------------------------------------------------

def _scaled_moments(x, axis):
    """Mean-free values and variance of ``x`` along ``axis`` that cannot overflow.

    For inputs whose variance overflows their dtype (float32 values of 1e20
    have a variance of 1e40): ``x`` is divided by a power of two ``scale``
    per slice, at least half its largest magnitude (exact, as only the
    exponent changes), and the moments are taken in at least float64. The
    normalised values are the same in these units:
    ``(x - mean) / sqrt(var + eps) = xmu / sqrt(v + eps / scale**2)``.

    Returns ``m = mean(x/scale)``, ``xmu = x/scale - m``, ``v = mean(xmu**2)``
    (keepdims) and ``scale``, all in the wider dtype.
    """
    wide = np.result_type(x.dtype, np.float64)
    xw = x.astype(wide)
    _, exponent = np.frexp(np.max(np.abs(xw), axis=axis, keepdims=True))
    scale = np.ldexp(np.ones((), dtype=wide), exponent - 1)      # |x| / scale < 2
    xs = xw / scale
    m = xs.mean(axis=axis, keepdims=True)
    xmu = xs - m
    return m, xmu, np.mean(xmu ** 2, axis=axis, keepdims=True), scale


def _scaled_std(v, eps, scale):
    """``sqrt(v + eps / scale**2)``, kept positive where ``eps / scale**2``
    underflows (there the values are all equal, ``xmu`` is 0, and so is xhat)."""
    with np.errstate(over="ignore", under="ignore"):
        eps_s = np.maximum(eps / scale ** 2, np.finfo(scale.dtype).tiny)
    return np.sqrt(v + eps_s)


def _check_norm_affine(gamma, beta, shape, what):
    gamma = as_float_array(gamma, "gamma")
    beta = as_float_array(beta, "beta")
    if gamma.shape != shape:
        raise ValueError(f"gamma must have shape {shape} ({what}), got {gamma.shape}")
    if beta.shape != shape:
        raise ValueError(f"beta must have shape {shape} ({what}), got {beta.shape}")
    return gamma, beta


def batchnorm_forward(x, gamma, beta, bn_param):
    """Batch normalisation of the features of a minibatch.

    Training (``bn_param['mode'] == 'train'``): with the minibatch mean
    ``mu = (1/N) sum_n x[n]`` and (biased) variance
    ``var = (1/N) sum_n (x[n] - mu)**2`` of every feature,

    ``xhat = (x - mu) / sqrt(var + eps)``,  ``out = gamma * xhat + beta``,

    and the running averages kept in ``bn_param`` are updated as
    ``running = momentum * running + (1 - momentum) * batch statistic``.
    Testing (``'test'``) normalises with the running averages instead.

    Parameters
    ----------
    x : ndarray, shape (N, D)
    gamma, beta : ndarray, shape (D,)
        Scale and shift.
    bn_param : dict
        ``'mode'`` ('train' or 'test', required), ``'eps'`` (default 1e-5),
        ``'momentum'`` (default 0.9), ``'running_mean'`` and ``'running_var'``
        (shape (D,); created as zeros by the first call in training mode, and
        required in testing mode); no other keys. Modified in place.

    Returns
    -------
    out : ndarray, shape (N, D)
    cache : tuple used by :func:`batchnorm_backward` and :func:`batchnorm_backward_alt`

    Raises
    ------
    ValueError
        For an unknown key in ``bn_param`` (such as a misspelt ``'momentum'``),
        for ``mode='test'`` without running averages, and for a running
        variance of the wrong shape or with negative entries.

    Notes
    -----
    When the batch variance of some feature overflows the dtype of ``x``
    (float32 values beyond about 1e19), the statistics are computed from
    ``x`` divided by a power of two, in float64 (see :func:`_scaled_moments`),
    so that ``out`` is still right. If the running averages then no longer
    fit their dtype, they are kept in float64.
    """
    x = as_float_array(x, "x", ndim=2)
    N, D = x.shape
    if N == 0 or D == 0:
        raise ValueError(f"x must have shape (N, D) with N, D >= 1, got {x.shape}")
    gamma, beta = _check_norm_affine(gamma, beta, (D,), "one entry per feature")
    _check_param_dict(bn_param, "bn_param", ("mode",), _BN_PARAM_KEYS)
    mode = bn_param["mode"]
    if mode not in ("train", "test"):
        raise ValueError(f"bn_param['mode'] must be 'train' or 'test', got {mode!r}")
    eps = finite_float(bn_param.get("eps", 1e-5), "bn_param['eps']", low=0.0, low_open=True)
    momentum = finite_float(bn_param.get("momentum", 0.9), "bn_param['momentum']",
                            low=0.0, high=1.0)
    dtype = _common_dtype(x, gamma, beta)
    x, gamma, beta = (a.astype(dtype, copy=False) for a in (x, gamma, beta))
    running_mean = bn_param.get("running_mean")
    running_var = bn_param.get("running_var")
    if mode == "test" and (running_mean is None or running_var is None):
        absent = [k for k in ("running_mean", "running_var") if bn_param.get(k) is None]
        raise ValueError(
            f"bn_param['mode'] is 'test', which normalises with the running averages, but "
            f"bn_param has no {' or '.join(repr(k) for k in absent)}: run batchnorm_forward "
            f"in mode 'train' first (it creates them), or provide running_mean and running_var "
            f"of shape ({D},)")
    running_mean = (np.zeros(D, dtype=dtype) if running_mean is None
                    else as_float_array(running_mean, "bn_param['running_mean']", shape=(D,)))
    running_var = (np.zeros(D, dtype=dtype) if running_var is None
                   else as_float_array(running_var, "bn_param['running_var']", shape=(D,)))
    if np.any(running_var < 0):
        j = int(np.argmin(running_var))
        raise ValueError(f"bn_param['running_var'] must be non-negative (a variance), got "
                         f"{running_var[j]} for feature {j}")

    if mode == "train":
        with np.errstate(over="ignore", invalid="ignore"):
            mu = x.mean(axis=0)
            xmu = x - mu
            var = np.mean(xmu ** 2, axis=0)
        if np.isfinite(var).all():
            std = np.sqrt(var + eps)
            inv_std = 1.0 / std
            xhat = xmu * inv_std
            out = gamma * xhat + beta
            bn_param["running_mean"] = momentum * running_mean + (1 - momentum) * mu
            bn_param["running_var"] = momentum * running_var + (1 - momentum) * var
            cache = ("train", xhat, xmu, var, std, inv_std, gamma, eps, None)
        else:
            # the variance overflows the dtype: normalise in units of a power of two
            m, xmu, var, scale = _scaled_moments(x, axis=0)
            m, var, scale = m[0], var[0], scale[0]          # shape (D,)
            std = _scaled_std(var, eps, scale)
            inv_std = 1.0 / std
            xhat = (xmu * inv_std).astype(dtype)
            out = gamma * xhat + beta
            with np.errstate(over="ignore"):
                batch_mean, batch_var = m * scale, var * scale ** 2
            new_mean, new_var = (
                _running_average(momentum * run + (1 - momentum) * batch,
                                 np.result_type(run, dtype), key, x)
                for run, batch, key in ((running_mean, batch_mean, "running_mean"),
                                        (running_var, batch_var, "running_var")))
            bn_param["running_mean"], bn_param["running_var"] = new_mean, new_var
            cache = ("train", xhat, xmu, var, std, inv_std, gamma, eps, scale)
    else:
        inv_std = 1.0 / np.sqrt(running_var + eps)
        with np.errstate(over="ignore", invalid="ignore"):
            xhat = (x - running_mean) * inv_std
        if not np.isfinite(xhat).all():
            # x - running_mean overflowed; halving both terms is exact (the same
            # xhat where it did not), and their difference cannot overflow
            xhat = (x / 2 - running_mean / 2) * (2 * inv_std)
        out = gamma * xhat + beta
        bn_param["running_mean"] = running_mean
        bn_param["running_var"] = running_var
        cache = ("test", xhat, None, None, None, inv_std, gamma, eps, None)
    return out.astype(dtype, copy=False), cache


def _running_average(value, dtype, key, x):
    """A running average in ``dtype`` if it fits, else in the wider dtype it
    was computed in; one that overflows even that is an error."""
    with np.errstate(over="ignore"):
        narrow = value.astype(dtype)
    if np.isfinite(narrow).all():
        return narrow
    if np.isfinite(value).all():
        return value
    raise ValueError(
        f"bn_param[{key!r}] cannot hold the batch statistics of x: they overflow "
        f"{value.dtype} (x has entries of magnitude up to {np.max(np.abs(x))}); scale x down")


def batchnorm_backward(dout, cache):
    """Backward pass of :func:`batchnorm_forward`, one node of the graph at a
    time.

    The forward pass is the chain ``xmu = x - mu``, ``var = mean(xmu**2)``,
    ``std = sqrt(var + eps)``, ``inv = 1/std``, ``xhat = xmu * inv``,
    ``out = gamma * xhat + beta``; this function walks it backwards, adding up
    the two paths through which ``x`` reaches ``xmu`` (directly and via
    ``mu``) and the two through which ``xmu`` reaches ``xhat`` (directly and
    via ``var``). In test mode the statistics are constants and
    ``dx = dout * gamma * inv``.

    Parameters
    ----------
    dout : ndarray, shape (N, D)
    cache : tuple from :func:`batchnorm_forward`

    Returns
    -------
    dx : ndarray, shape (N, D)
    dgamma, dbeta : ndarray, shape (D,)
    """
    mode, xhat, xmu, var, std, inv_std, gamma, eps, scale = cache
    dout = _check_dout(dout, xhat.shape)
    N = xhat.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = np.sum(dout * xhat, axis=0)
    dxhat = dout * gamma
    if mode == "test":
        return dxhat * inv_std, dgamma, dbeta
    # xhat = xmu * inv_std
    dxmu = dxhat * inv_std
    dinv_std = np.sum(dxhat * xmu, axis=0)
    # inv_std = 1 / std ; std = sqrt(var + eps)
    dstd = -dinv_std / std ** 2
    dvar = dstd * 0.5 / std
    # var = mean(xmu ** 2)
    dxmu += (2.0 / N) * xmu * dvar
    # xmu = x - mu ; mu = mean(x)
    dx = dxmu - np.sum(dxmu, axis=0) / N
    return _unscale(dx, scale, dxhat), dgamma, dbeta


def _unscale(dx, scale, like):
    """The gradient with respect to ``x`` from the one with respect to
    ``x / scale`` (see :func:`_scaled_moments`), in the dtype of ``like``."""
    if scale is None:
        return dx
    return (dx / scale).astype(like.dtype)


def batchnorm_backward_alt(dout, cache):
    """Backward pass of :func:`batchnorm_forward` in closed form.

    Simplifying the chain rule of :func:`batchnorm_backward` on paper gives,
    with ``g = dout * gamma`` and sums over the batch,

    ``dx = (1 / (N * std)) * (N * g - sum_n g - xhat * sum_n (g * xhat))``

    Parameters and returns as for :func:`batchnorm_backward`.
    """
    mode, xhat, _, _, _, inv_std, gamma, _, scale = cache
    dout = _check_dout(dout, xhat.shape)
    N = xhat.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = np.sum(dout * xhat, axis=0)
    g = dout * gamma
    if mode == "test":
        return g * inv_std, dgamma, dbeta
    dx = (inv_std / N) * (N * g - g.sum(axis=0)
                          - xhat * np.sum(g * xhat, axis=0))
    return _unscale(dx, scale, g), dgamma, dbeta


def spatial_batchnorm_forward(x, gamma, beta, bn_param):
    """Batch normalisation of images: one mean and variance per channel.

    Every pixel of every image is treated as an example of its channel's
    feature: the statistics of channel ``c`` are taken over ``N * H * W``
    values, by reshaping to (N*H*W, C) and calling :func:`batchnorm_forward`.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    gamma, beta : ndarray, shape (C,)
    bn_param : dict, as for :func:`batchnorm_forward` (running statistics of
        shape (C,))

    Returns
    -------
    out : ndarray, shape (N, C, H, W)
    cache : tuple
    """
    x = _check_images(x, "x")
    N, C, H, W = x.shape
    gamma = as_float_array(gamma, "gamma")
    if gamma.shape != (C,):
        raise ValueError(f"gamma must have shape ({C},) (one entry per "
                         f"channel of x of shape {x.shape}), got "
                         f"{gamma.shape}")
    flat = x.transpose(0, 2, 3, 1).reshape(N * H * W, C)
    out, cache = batchnorm_forward(flat, gamma, beta, bn_param)
    return (np.ascontiguousarray(out.reshape(N, H, W, C)
                                 .transpose(0, 3, 1, 2)),
            (x.shape, cache))


def spatial_batchnorm_backward(dout, cache):
    """Backward pass of :func:`spatial_batchnorm_forward`.

    Parameters
    ----------
    dout : ndarray, shape (N, C, H, W)
    cache : tuple from :func:`spatial_batchnorm_forward`

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
    dgamma, dbeta : ndarray, shape (C,)
    """
    shape, bn_cache = cache
    N, C, H, W = shape
    dout = _check_dout(dout, shape)
    flat = dout.transpose(0, 2, 3, 1).reshape(N * H * W, C)
    dx, dgamma, dbeta = batchnorm_backward_alt(flat, bn_cache)
    return (np.ascontiguousarray(dx.reshape(N, H, W, C).transpose(0, 3, 1, 2)),
            dgamma, dbeta)


# ----------------------------------------------------------------------------
# Layer and group normalisation
# ----------------------------------------------------------------------------

def _normalize_rows(x, eps):
    """Normalise each row of a 2-D array to zero mean and unit variance.

    Returns ``xhat, inv_std, scale``: ``scale`` is None, or, when a row's
    variance overflows the dtype, the powers of two the rows were divided by
    (see :func:`_scaled_moments`), with ``inv_std`` in those units.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        mu = x.mean(axis=1, keepdims=True)
        xmu = x - mu
        var = np.mean(xmu ** 2, axis=1, keepdims=True)
    if np.isfinite(var).all():
        inv_std = 1.0 / np.sqrt(var + eps)
        return xmu * inv_std, inv_std, None
    _, xmu, var, scale = _scaled_moments(x, axis=1)
    inv_std = 1.0 / _scaled_std(var, eps, scale)
    return (xmu * inv_std).astype(x.dtype), inv_std, scale


def _normalize_rows_backward(dxhat, xhat, inv_std):
    """Gradient through ``xhat = (x - mean) / std`` taken along each row."""
    M = xhat.shape[1]
    return (inv_std / M) * (M * dxhat - dxhat.sum(axis=1, keepdims=True)
                            - xhat * np.sum(dxhat * xhat, axis=1,
                                            keepdims=True))


def layernorm_forward(x, gamma, beta, ln_param):
    """Layer normalisation: each example normalised over its own features.

    ``xhat[n] = (x[n] - mean(x[n])) / sqrt(var(x[n]) + eps)``,
    ``out = gamma * xhat + beta``. The same in training and testing; no
    running statistics.

    Parameters
    ----------
    x : ndarray, shape (N, D)
    gamma, beta : ndarray, shape (D,)
    ln_param : dict, may hold ``'eps'`` (default 1e-5), and ``'mode'``
        ('train' or 'test', which changes nothing); no other keys.

    Returns
    -------
    out : ndarray, shape (N, D)
    cache : tuple
    """
    x = as_float_array(x, "x", ndim=2)
    N, D = x.shape
    if N == 0 or D == 0:
        raise ValueError(f"x must have shape (N, D) with N, D >= 1, got {x.shape}")
    gamma, beta = _check_norm_affine(gamma, beta, (D,), "one entry per feature")
    eps = _norm_params(ln_param, "ln_param", {"eps": 1e-5})
    dtype = _common_dtype(x, gamma, beta)
    x, gamma, beta = (a.astype(dtype, copy=False) for a in (x, gamma, beta))
    xhat, inv_std, scale = _normalize_rows(x, eps)
    return gamma * xhat + beta, (xhat, inv_std, gamma, scale)


def layernorm_backward(dout, cache):
    """Backward pass of :func:`layernorm_forward`.

    The closed form of batch normalisation with the roles of the axes swapped:
    with ``g = dout * gamma`` and sums over the D features of each example,
    ``dx = (1 / (D * std)) * (D * g - sum g - xhat * sum (g * xhat))``.

    Returns
    -------
    dx : ndarray, shape (N, D)
    dgamma, dbeta : ndarray, shape (D,)
    """
    xhat, inv_std, gamma, scale = cache
    dout = _check_dout(dout, xhat.shape)
    dgamma = np.sum(dout * xhat, axis=0)
    dbeta = dout.sum(axis=0)
    g = dout * gamma
    dx = _normalize_rows_backward(g, xhat, inv_std)
    return _unscale(dx, scale, g), dgamma, dbeta


def spatial_groupnorm_forward(x, gamma, beta, G, gn_param):
    """Group normalisation: each image's channels split into ``G`` groups,
    each group normalised over its channels and pixels.

    With ``x`` reshaped to (N, G, C/G * H * W), every row is normalised as in
    layer normalisation; then ``out = gamma * xhat + beta`` per channel. No
    batch statistics, so training and testing agree.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    gamma, beta : ndarray, shape (1, C, 1, 1)
    G : int
        Number of groups; must divide C.
    gn_param : dict, may hold ``'eps'`` (default 1e-5), and ``'mode'``
        ('train' or 'test', which changes nothing); no other keys.

    Returns
    -------
    out : ndarray, shape (N, C, H, W)
    cache : tuple
    """
    x = _check_images(x, "x")
    N, C, H, W = x.shape
    G = positive_int(G, "G")
    if C % G:
        raise ValueError(f"G must divide the number of channels C = {C} of "
                         f"x (shape {x.shape}), got G = {G}")
    gamma, beta = _check_norm_affine(gamma, beta, (1, C, 1, 1),
                                     "one entry per channel")
    eps = _norm_params(gn_param, "gn_param", {"eps": 1e-5})
    dtype = _common_dtype(x, gamma, beta)
    x, gamma, beta = (a.astype(dtype, copy=False) for a in (x, gamma, beta))
    xhat, inv_std, scale = _normalize_rows(x.reshape(N * G, -1), eps)
    xhat = xhat.reshape(x.shape)
    return gamma * xhat + beta, (xhat, inv_std, gamma, G, scale)


def spatial_groupnorm_backward(dout, cache):
    """Backward pass of :func:`spatial_groupnorm_forward`.

    ``dgamma = sum_{n, h, w} dout * xhat``, ``dbeta = sum_{n, h, w} dout``
    (kept as shape (1, C, 1, 1)); ``dx`` is the layer-norm gradient of
    ``g = dout * gamma`` taken within each (image, group) row.

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
    dgamma, dbeta : ndarray, shape (1, C, 1, 1)
    """
    xhat, inv_std, gamma, G, scale = cache
    dout = _check_dout(dout, xhat.shape)
    N = xhat.shape[0]
    dgamma = np.sum(dout * xhat, axis=(0, 2, 3), keepdims=True)
    dbeta = dout.sum(axis=(0, 2, 3), keepdims=True)
    g = (dout * gamma).reshape(N * G, -1)
    dx = _normalize_rows_backward(g, xhat.reshape(N * G, -1), inv_std)
    return _unscale(dx, scale, g).reshape(xhat.shape), dgamma, dbeta
