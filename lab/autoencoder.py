"""The sparse autoencoder in NumPy: weights, forward pass, cost and gradient,
and three ways to train it.

A single hidden layer of sigmoid units learns to reproduce its input at a
layer of sigmoid outputs. For ``N`` samples ``x(m)`` (rows of ``data``, shape
``(N, L_in)``) the network computes

    a(m) = sigmoid(x(m) W1 + b1)        hidden, shape (L_hid,)
    o(m) = sigmoid(a(m) W2 + b2)        output, shape (L_out,) with L_out = L_in

and the cost is

    J = 1/(2N) sum_m ||x(m) - o(m)||^2
        + lambda/2 (sum W1^2 + sum W2^2)                (biases not decayed)
        + beta sum_b KL(rho || rho_hat_b)

where ``rho_hat_b`` is hidden unit ``b``'s mean activation over the ``N``
samples and ``KL(p || q) = p log(p/q) + (1-p) log((1-p)/(1-q))``.

Conventions
-----------
* ``We = (W1, W2, b1, b2)`` with ``W1`` of shape ``(L_in, L_hid)``, ``W2`` of
  shape ``(L_hid, L_out)``, ``b1`` of shape ``(L_hid,)``, ``b2`` of shape
  ``(L_out,)``: samples are rows, so a layer is ``x @ W + b``.
* ``params = (L_in, L_hid, lambda, beta, rho)``, a plain tuple or an
  :class:`AEParams`.
* ``data`` lies in [0, 1]: the targets are the inputs and the sigmoid outputs
  lie in (0, 1), so raw 8-bit pixels (0..255) would give a huge, meaningless
  cost. The cost, its terms, the reconstruction error and the trainers check
  the data's min and max and raise a ValueError outside that range; scale
  the data first (divide by 255, or use :func:`lab.data.preprocess_patches`).
* Computation runs in the floating dtype shared by ``We`` and ``data``
  (float32 or float64; mixed inputs are promoted by NumPy's rules), and the
  gradient comes back in that dtype.
* ``pack``/``unpack`` convert ``We`` to and from one flat vector ``theta``
  (``W1``, ``W2``, ``b1``, ``b2``, each raveled in C order), the form
  ``scipy.optimize`` and ``lab.gradient_check`` work with.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from lab import optim as _optim
from lab._validate import as_float_array, finite_float, nonneg_int, positive_int
from lab.progress import progress as _progress

__all__ = [
    "AEParams", "CostTerms", "init_weights", "sigmoid", "forward", "reconstruct", "ae_cost",
    "ae_cost_reference", "cost_terms", "reconstruction_error",
    "pack", "unpack", "train_gd", "train_lbfgs", "train_adam",
]


class AEParams(NamedTuple):
    """Hyperparameters of the sparse autoencoder.

    Attributes
    ----------
    L_in : int
        Number of inputs (and of outputs: the targets are the inputs).
    L_hid : int
        Number of hidden units.
    lam : float
        Weight decay ``lambda >= 0``.
    beta : float
        Weight of the sparsity penalty, ``>= 0``.
    rho : float
        Target mean activation of a hidden unit, in ``(0, 1)``.
    """

    L_in: int
    L_hid: int
    lam: float
    beta: float
    rho: float


# --------------------------------------------------------------------------- #
# input checks
# --------------------------------------------------------------------------- #

def _check_params(params) -> AEParams:
    if isinstance(params, dict) or isinstance(params, (str, bytes)):
        raise TypeError("params must be a tuple (L_in, L_hid, lambda, beta, rho) or an AEParams, "
                        f"got {type(params).__name__}")
    try:
        fields = tuple(params)
    except TypeError:
        raise TypeError("params must be a tuple (L_in, L_hid, lambda, beta, rho) or an AEParams, "
                        f"got {type(params).__name__}") from None
    if len(fields) != 5:
        raise ValueError("params must have 5 entries (L_in, L_hid, lambda, beta, rho), "
                         f"got {len(fields)}: {fields!r}")
    L_in, L_hid, lam, beta, rho = fields
    return AEParams(
        positive_int(L_in, "params.L_in"),
        positive_int(L_hid, "params.L_hid"),
        finite_float(lam, "params.lambda", low=0.0),
        finite_float(beta, "params.beta", low=0.0),
        finite_float(rho, "params.rho", low=0.0, high=1.0, low_open=True, high_open=True),
    )


_WE_NAMES = ("W1", "W2", "b1", "b2")
_WE_NDIM = (2, 2, 1, 1)


def _check_we(We, L_in=None, L_hid=None, L_out=None):
    """Check the structure and shapes of ``We``; return a tuple of 4 float arrays."""
    if isinstance(We, np.ndarray) or not isinstance(We, (tuple, list)):
        raise TypeError("We must be a tuple (W1, W2, b1, b2) of arrays, "
                        f"got {type(We).__name__}")
    if len(We) != 4:
        raise ValueError(f"We must have 4 entries (W1, W2, b1, b2), got {len(We)}")
    arrs = []
    for w, name, nd in zip(We, _WE_NAMES, _WE_NDIM):
        if not isinstance(w, np.ndarray):
            w = np.asarray(w)
        if w.dtype.kind in "iu":
            w = w.astype(np.float64)
        elif w.dtype.kind != "f":
            raise TypeError(f"We {name} must hold real floating-point numbers, got dtype {w.dtype}")
        if w.ndim != nd:
            raise ValueError(f"We {name} must have {nd} dimension(s), got shape {w.shape}")
        arrs.append(w)
    W1, W2, b1, b2 = arrs
    L_in = W1.shape[0] if L_in is None else L_in
    L_hid = W1.shape[1] if L_hid is None else L_hid
    L_out = W2.shape[1] if L_out is None else L_out
    want = {"W1": (L_in, L_hid), "W2": (L_hid, L_out), "b1": (L_hid,), "b2": (L_out,)}
    for w, name in zip(arrs, _WE_NAMES):
        if w.shape != want[name]:
            raise ValueError(
                f"We {name} must have shape {want[name]} (L_in={L_in}, L_hid={L_hid}, "
                f"L_out={L_out}), got {w.shape}")
    return W1, W2, b1, b2


def _check_data(data, L_in, check_finite=True):
    if check_finite:
        x = as_float_array(data, "data", ndim=2)
    else:
        x = data if isinstance(data, np.ndarray) else np.asarray(data)
        if x.dtype.kind in "iu":
            x = x.astype(np.float64)
        elif x.dtype.kind != "f":
            raise TypeError(f"data must hold real floating-point numbers, got dtype {x.dtype}")
        if x.ndim != 2:
            raise ValueError(f"data must have 2 dimensions (N, L_in), got shape {x.shape}")
    if x.shape[1] != L_in:
        raise ValueError(f"data must have shape (N, {L_in}) to match L_in={L_in}, got {x.shape}")
    if x.shape[0] == 0:
        raise ValueError(f"data must hold at least one sample, got shape {x.shape}")
    return x


def _check_unit_range(lo, hi, name="data"):
    """Raise a ValueError unless ``lo`` and ``hi`` (the min and max of ``name``)
    lie in [0, 1]; NaN or inf in either is reported as such.

    Takes the extremes rather than the array so that every backend (NumPy,
    PyTorch, TensorFlow) computes them its own way, once per call.
    """
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name} contains NaN or inf")
    if lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"{name} must lie in the range [0, 1] (the targets are the inputs, and the "
            f"sigmoid outputs lie in (0, 1)), got values from {lo:g} to {hi:g}; scale it "
            "first: divide 8-bit pixels by 255, or use lab.data.preprocess_patches")


def _check_data_range(x, name="data"):
    """:func:`_check_unit_range` on an ndarray: one min and one max, no copy."""
    _check_unit_range(np.min(x), np.max(x), name)


def _common_dtype(*arrays):
    dt = np.result_type(*arrays)
    if dt not in (np.float32, np.float64):
        dt = np.dtype(np.float64)
    return np.dtype(dt)


def _cast(arrays, dt):
    return tuple(np.ascontiguousarray(a, dtype=dt) for a in arrays)


# --------------------------------------------------------------------------- #
# weights, sigmoid, forward pass
# --------------------------------------------------------------------------- #

def init_weights(L_in, L_hid, L_out=None, seed=0, dtype=np.float64):
    """Random initial weights, uniform in ``[-w0, w0]`` per layer.

    ``w0 = sqrt(6 / (L_pre + L_post))`` with ``L_pre``/``L_post`` the sizes of
    the layer's input and output; a layer's bias uses its layer's ``w0``.

    Parameters
    ----------
    L_in, L_hid : int
        Input and hidden layer sizes.
    L_out : int, optional
        Output size; defaults to ``L_in`` (an autoencoder).
    seed : int >= 0 or None, default 0
        Seed for ``np.random.default_rng``. seed=0 by default: the same
        weights on every call; pass seed=None for fresh randomness. NumPy's
        global generator is not used, so ``np.random.seed`` has no effect.
    dtype : float32 or float64

    Returns
    -------
    We : tuple
        ``W1`` (L_in, L_hid), ``W2`` (L_hid, L_out), ``b1`` (L_hid,), ``b2`` (L_out,).
    """
    L_in = positive_int(L_in, "L_in")
    L_hid = positive_int(L_hid, "L_hid")
    L_out = L_in if L_out is None else positive_int(L_out, "L_out")
    seed = None if seed is None else nonneg_int(seed, "seed")
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    rng = np.random.default_rng(seed)
    w01 = math.sqrt(6.0 / (L_in + L_hid))
    w02 = math.sqrt(6.0 / (L_hid + L_out))
    W1 = rng.uniform(-w01, w01, size=(L_in, L_hid))
    W2 = rng.uniform(-w02, w02, size=(L_hid, L_out))
    b1 = rng.uniform(-w01, w01, size=L_hid)
    b2 = rng.uniform(-w02, w02, size=L_out)
    return tuple(a.astype(dt) for a in (W1, W2, b1, b2))


def _sigmoid_of_neg_(t):
    """Overwrite ``t`` with ``sigmoid(-t) = 1 / (1 + exp(t))``; return it.

    ``exp(t)`` overflows to ``inf`` for large ``t`` (above ~709 in float64,
    ~88 in float32), and ``1 / (1 + inf) = 0`` is then the correctly rounded
    limit, so the overflow is harmless and its warning is silenced. Nothing
    else can go wrong: for very negative ``t``, ``exp(t)`` underflows to 0
    and the result is 1. Four in-place passes, no temporaries.
    """
    with np.errstate(over="ignore"):
        np.exp(t, out=t)
    t += 1.0
    np.reciprocal(t, out=t)
    return t


def sigmoid(z):
    """Logistic function ``1 / (1 + exp(-z))``, stable for any ``z``.

    Parameters
    ----------
    z : ndarray of float, any shape

    Returns
    -------
    ndarray, same shape and dtype as ``z`` (a new array), values in ``[0, 1]``.
    """
    z = np.asarray(z)
    if z.dtype.kind != "f":
        z = z.astype(np.float64)
    return _sigmoid_of_neg_(np.negative(z))


def _layer(x, W, b):
    """``sigmoid(x @ W + b)`` as a new array, computed as sigmoid(-(x @ -W - b))."""
    t = x @ np.negative(W)
    t -= b
    return _sigmoid_of_neg_(t)


def forward(We, data):
    """Forward pass.

    Parameters
    ----------
    We : tuple (W1, W2, b1, b2)
        ``W1`` (L_in, L_hid), ``W2`` (L_hid, L_out), ``b1`` (L_hid,), ``b2`` (L_out,).
    data : ndarray, shape (N, L_in)

    Returns
    -------
    hidden : ndarray, shape (N, L_hid)
        Hidden activations ``sigmoid(data @ W1 + b1)``.
    output : ndarray, shape (N, L_out)
        Outputs ``sigmoid(hidden @ W2 + b2)``.
    """
    W1, W2, b1, b2 = _check_we(We)
    x = _check_data(data, W1.shape[0])
    _check_finite_we((W1, W2, b1, b2))
    dt = _common_dtype(W1, W2, b1, b2, x)
    W1, W2, b1, b2, x = _cast((W1, W2, b1, b2, x), dt)
    hidden = _layer(x, W1, b1)
    output = _layer(hidden, W2, b2)
    return hidden, output


def reconstruct(We, data):
    """The network's reconstruction of ``data``.

    Parameters
    ----------
    We : tuple (W1, W2, b1, b2)
    data : ndarray, shape (N, L_in)

    Returns
    -------
    output : ndarray, shape (N, L_out)
    """
    return forward(We, data)[1]


# --------------------------------------------------------------------------- #
# cost and gradient
# --------------------------------------------------------------------------- #

def _rho_hat_bounds(dt):
    """Where rho_hat is clipped: ``[eps, 1 - eps]`` with eps the dtype's epsilon."""
    eps = float(np.finfo(dt).eps)
    return eps, 1.0 - eps


# Rows per block in the output layer: a (rows, L_out) block of about 2**17
# numbers (1 MiB in float64) stays in cache while it is worked on.
_BLOCK_NUMBERS = 1 << 17


def _sparsity(a, p: AEParams):
    """Sparsity penalty and its gradient with respect to the hidden activations.

    Parameters
    ----------
    a : ndarray, shape (N, L_hid)
        Hidden activations.

    Returns
    -------
    J_sparse : float
        ``beta * sum_b KL(rho || rho_hat_b)`` with ``rho_hat`` clipped into
        ``[eps, 1 - eps]``.
    g : ndarray, shape (L_hid,), dtype of ``a``
        ``dJ_sparse / da_mb``, the same for every sample m:
        ``beta/N (-rho/rho_hat_b + (1-rho)/(1-rho_hat_b))``, and 0 for a unit
        whose ``rho_hat`` was clipped (there ``J_sparse`` does not depend on
        it, so the cost and the gradient stay consistent).
    """
    N = a.shape[0]
    rho_hat = (np.ones(N, dtype=a.dtype) @ a).astype(np.float64) / N
    lo, hi = _rho_hat_bounds(a.dtype)
    inside = (rho_hat > lo) & (rho_hat < hi)
    rho_hat = np.clip(rho_hat, lo, hi)
    rho = p.rho
    kl = rho * np.log(rho / rho_hat) + (1.0 - rho) * np.log((1.0 - rho) / (1.0 - rho_hat))
    g = (p.beta / N) * (-rho / rho_hat + (1.0 - rho) / (1.0 - rho_hat))
    g[~inside] = 0.0
    return p.beta * float(np.sum(kl)), g.astype(a.dtype)


def _cost(W1, W2, b1, b2, x, p: AEParams):
    """Cost and gradient on validated, contiguous arrays of one dtype.

    Backpropagation written for speed: every large array is updated in place,
    and the output layer -- where the (N, L_out) arrays live -- is processed a
    block of rows at a time, so a block's output, error and delta stay in the
    CPU cache through the dozen passes they take, and no (N, L_out) temporary
    is ever allocated. The inputs are not modified.

    Returns ``(J, (dW1, dW2, db1, db2))`` with ``J`` a Python float.
    """
    dt = x.dtype
    N, L_in = x.shape
    L_hid, L_out = W2.shape
    inv_n = 1.0 / N

    # hidden layer for all samples first: rho_hat needs every one of them
    a = _layer(x, W1, b1)                              # (N, L_hid)
    J = 0.0
    if p.lam:                                          # weight decay, biases excluded
        J += 0.5 * p.lam * (float(np.vdot(W1, W1)) + float(np.vdot(W2, W2)))
    sparse = None
    if p.beta:
        J_sparse, sparse = _sparsity(a, p)
        J += J_sparse

    # output layer and backward pass, block by block
    rows = min(N, max(1, _BLOCK_NUMBERS // L_out))
    neg_W2 = np.negative(W2)
    W2t_n = W2.T * dt.type(inv_n)                      # (L_out, L_hid), folds in 1/N
    o_buf = np.empty((rows, L_out), dt)
    d_buf = np.empty((rows, L_out), dt)
    g_buf = np.empty((rows, L_hid), dt)
    ones = np.ones(rows, dt)
    dW1 = np.zeros((L_in, L_hid), dt)
    dW2 = np.zeros((L_hid, L_out), dt)
    db1 = np.zeros(L_hid, dt)
    db2 = np.zeros(L_out, dt)
    sq = 0.0
    for start in range(0, N, rows):
        stop = min(start + rows, N)
        n = stop - start
        xb, ab = x[start:stop], a[start:stop]
        o, d, g, one = o_buf[:n], d_buf[:n], g_buf[:n], ones[:n]
        # o = sigmoid(a W2 + b2), as 1 / (1 + exp(-(a W2 + b2)))
        np.matmul(ab, neg_W2, out=o)
        o -= b2
        _sigmoid_of_neg_(o)
        # data term 1/(2N) sum ||o - x||^2
        np.subtract(o, xb, out=d)
        sq += float(np.vdot(d, d))
        # N * delta3 = (o - x) * o * (1 - o)
        d *= o
        np.subtract(1.0, o, out=o)
        d *= o
        dW2 += ab.T @ d
        db2 += one @ d
        # delta2 = (delta3 W2^T + sparsity gradient) * a * (1 - a)
        np.matmul(d, W2t_n, out=g)
        if sparse is not None:
            g += sparse
        g *= ab
        np.subtract(1.0, ab, out=ab)                  # a is ours: overwrite it
        g *= ab
        dW1 += xb.T @ g
        db1 += one @ g
    J += 0.5 * inv_n * sq
    dW2 *= dt.type(inv_n)
    db2 *= dt.type(inv_n)
    if p.lam:
        lam = dt.type(p.lam)
        dW1 += lam * W1
        dW2 += lam * W2
    return J, (dW1, dW2, db1, db2)


def _check_finite_we(arrays):
    for w, name in zip(arrays, _WE_NAMES):
        if not np.all(np.isfinite(w)):
            raise ValueError(f"We {name} contains NaN or inf")


def _diagnose_nonfinite(J, arrays):
    """Raise a ValueError that says why the cost came out NaN or inf."""
    _check_finite_we(arrays[:4])
    if not np.all(np.isfinite(arrays[4])):
        raise ValueError("data contains NaN or inf")
    raise ValueError(
        f"the cost or its gradient overflowed (J = {J}) with finite inputs; the weights or data "
        "are far too large for this dtype")


def _prepare(We, data, params, check_finite=False):
    p = _check_params(params)
    W1, W2, b1, b2 = _check_we(We, p.L_in, p.L_hid, p.L_in)
    _check_finite_we((W1, W2, b1, b2))           # small arrays: cheap
    x = _check_data(data, p.L_in, check_finite=check_finite)
    _check_data_range(x)                         # one min, one max: also catches NaN/inf
    dt = _common_dtype(W1, W2, b1, b2, x)
    return _cast((W1, W2, b1, b2, x), dt), p


def _checked_cost(W, x, p):
    """``_cost`` plus the after-the-fact finiteness check of the inputs."""
    with np.errstate(all="ignore"):    # non-finite results are diagnosed below
        J, grads = _cost(*W, x, p)
    if not (math.isfinite(J) and all(np.all(np.isfinite(g)) for g in grads)):
        _diagnose_nonfinite(J, (*W, x))
    return J, grads


def ae_cost(We, data, params):
    """Sparse autoencoder cost ``J`` and its gradient.

    Parameters
    ----------
    We : tuple (W1, W2, b1, b2)
        ``W1`` (L_in, L_hid), ``W2`` (L_hid, L_in), ``b1`` (L_hid,), ``b2`` (L_in,).
    data : ndarray, shape (N, L_in), values in [0, 1]
        One sample per row; the targets are the inputs.
    params : tuple (L_in, L_hid, lambda, beta, rho) or AEParams

    Returns
    -------
    J : float (NumPy scalar of the computation dtype)
        ``1/(2N) sum ||x - o||^2 + lambda/2 (|W1|^2 + |W2|^2) + beta sum KL(rho||rho_hat)``.
    dWe : tuple (dW1, dW2, db1, db2)
        Gradient of ``J``, same shapes as ``We``, computation dtype.

    Notes
    -----
    ``rho_hat`` is clipped into ``[eps, 1 - eps]`` (``eps`` the dtype's machine
    epsilon) before the logarithms, and the gradient of the sparsity term is
    zero for a unit whose ``rho_hat`` lies outside that interval -- the exact
    derivative of the clipped cost -- so saturated units give finite ``J`` and
    gradients.

    ``We`` is checked for NaN and inf up front. ``data``, which can be large,
    costs one min and one max per call: they show whether it lies in [0, 1]
    and, as NaN and inf propagate through them, whether it is finite.

    Raises
    ------
    TypeError, ValueError
        Malformed ``params`` (``rho`` outside ``(0, 1)``, negative ``lambda``
        or ``beta``), shapes inconsistent with ``params``, non-float arrays,
        NaN or inf in the inputs, ``data`` outside [0, 1].
    """
    arrays, p = _prepare(We, data, params)
    J, grads = _checked_cost(arrays[:4], arrays[4], p)
    return arrays[4].dtype.type(J), grads


def ae_cost_reference(We, data, params):
    """Plain reference version of :func:`ae_cost`, as the derivation reads.

    Same arguments, checks and results as ``ae_cost`` (equal up to
    rounding), but computed in whole-matrix steps with the names of the
    equations: forward pass, the three cost terms, the deltas, the
    gradients. It allocates every (N, L_out) intermediate and is slower;
    ``ae_cost`` computes the same numbers block by block, in place.

    Parameters
    ----------
    We : tuple (W1, W2, b1, b2)
        ``W1`` (L_in, L_hid), ``W2`` (L_hid, L_in), ``b1`` (L_hid,),
        ``b2`` (L_in,).
    data : ndarray, shape (N, L_in), values in [0, 1]
    params : tuple (L_in, L_hid, lambda, beta, rho) or AEParams

    Returns
    -------
    J : float (NumPy scalar of the computation dtype)
    dWe : tuple (dW1, dW2, db1, db2)
    """
    (W1, W2, b1, b2, X), p = _prepare(We, data, params)
    lam, beta, rho = p.lam, p.beta, p.rho
    N = X.shape[0]
    D = X                                    # the targets are the inputs

    # forward pass
    Z2 = X @ W1 + b1                         # (N, L_hid)
    A2 = sigmoid(Z2)
    Z3 = A2 @ W2 + b2                        # (N, L_out)
    O = sigmoid(Z3)

    # the three terms of J; rho_hat clipped into [eps, 1 - eps]
    eps = np.finfo(X.dtype).eps
    rho_hat = A2.mean(axis=0)                # (L_hid,)
    inside = (rho_hat > eps) & (rho_hat < 1 - eps)
    rho_hat = np.clip(rho_hat, eps, 1 - eps)
    J_rec = np.sum((D - O) ** 2) / (2 * N)
    J_decay = lam / 2 * (np.sum(W1 ** 2) + np.sum(W2 ** 2))
    KL = (rho * np.log(rho / rho_hat)
          + (1 - rho) * np.log((1 - rho) / (1 - rho_hat)))
    J_sparse = beta * np.sum(KL)
    J = J_rec + J_decay + J_sparse

    # deltas
    delta3 = -(D - O) * O * (1 - O) / N      # dJ/dZ3, (N, L_out)
    s = -rho / rho_hat + (1 - rho) / (1 - rho_hat)
    s = np.where(inside, s, 0.0)             # a clipped unit: no gradient
    delta2 = (delta3 @ W2.T + beta / N * s) * A2 * (1 - A2)   # dJ/dZ2

    # gradients
    dW2 = A2.T @ delta3 + lam * W2
    db2 = delta3.sum(axis=0)
    dW1 = X.T @ delta2 + lam * W1
    db1 = delta2.sum(axis=0)
    dt = X.dtype
    return dt.type(J), tuple(g.astype(dt) for g in (dW1, dW2, db1, db2))


class CostTerms(NamedTuple):
    """The three terms of the sparse autoencoder's cost J (Python floats)."""

    reconstruction: float
    weight_decay: float
    sparsity: float

    @property
    def total(self) -> float:
        """J, the sum of the three terms."""
        return self.reconstruction + self.weight_decay + self.sparsity


def reconstruction_error(We, data) -> float:
    """The cost's data term ``1/(2N) sum_m ||d(m) - o(m)||^2`` on ``data`` (N, L_in),
    values in [0, 1].

    Useful on held-out patches, where the regularisers do not apply.
    """
    W1, W2, b1, b2 = _check_we(We)
    x = _check_data(data, W1.shape[0])
    _check_data_range(x)
    if W2.shape[1] != x.shape[1]:
        raise ValueError(f"the reconstruction error needs L_out == L_in, got W2 of shape "
                         f"{W2.shape} for data with {x.shape[1]} columns")
    out = reconstruct((W1, W2, b1, b2), x)
    return float(0.5 * np.sum((x - out) ** 2, dtype=np.float64) / x.shape[0])


def cost_terms(We, data, params) -> CostTerms:
    """J split into its three terms: reconstruction, weight decay and sparsity.

    ``cost_terms(We, data, params).total`` equals ``ae_cost(We, data, params)[0]``
    up to rounding; the sparsity term clips rho_hat exactly as ``ae_cost`` does.

    Parameters
    ----------
    We : tuple (W1, W2, b1, b2)
    data : ndarray, shape (N, L_in)
    params : AEParams or tuple (L_in, L_hid, lambda, beta, rho)
    """
    (W1, W2, b1, b2, x), p = _prepare(We, data, params)
    hidden, out = forward((W1, W2, b1, b2), x)
    recon = 0.5 * float(np.sum((x - out) ** 2, dtype=np.float64)) / x.shape[0]
    decay = 0.5 * p.lam * (float(np.vdot(W1, W1)) + float(np.vdot(W2, W2)))
    sparse = _sparsity(hidden, p)[0] if p.beta else 0.0
    return CostTerms(recon, decay, float(sparse))


# --------------------------------------------------------------------------- #
# flat parameter vector
# --------------------------------------------------------------------------- #

def pack(We):
    """Concatenate ``We = (W1, W2, b1, b2)`` into one flat vector.

    Returns
    -------
    theta : ndarray, shape (L_in*L_hid + L_hid*L_out + L_hid + L_out,)
        ``W1``, ``W2``, ``b1``, ``b2``, each raveled in C order.
    """
    W1, W2, b1, b2 = _check_we(We)
    dt = _common_dtype(W1, W2, b1, b2)
    return np.concatenate([np.ravel(w).astype(dt, copy=False) for w in (W1, W2, b1, b2)])


def unpack(theta, L_in, L_hid, L_out=None):
    """Split a flat vector back into ``We = (W1, W2, b1, b2)``.

    Parameters
    ----------
    theta : ndarray, shape (L_in*L_hid + L_hid*L_out + L_hid + L_out,)
    L_in, L_hid : int
    L_out : int, optional
        Defaults to ``L_in``.

    Returns
    -------
    We : tuple of views into ``theta``
        ``W1`` (L_in, L_hid), ``W2`` (L_hid, L_out), ``b1`` (L_hid,), ``b2`` (L_out,).
    """
    L_in = positive_int(L_in, "L_in")
    L_hid = positive_int(L_hid, "L_hid")
    L_out = L_in if L_out is None else positive_int(L_out, "L_out")
    theta = np.asarray(theta)
    if theta.dtype.kind != "f":
        raise TypeError(f"theta must hold floating-point numbers, got dtype {theta.dtype}")
    n = L_in * L_hid + L_hid * L_out + L_hid + L_out
    if theta.ndim != 1 or theta.size != n:
        raise ValueError(f"theta must have shape ({n},) for L_in={L_in}, L_hid={L_hid}, "
                         f"L_out={L_out}, got {theta.shape}")
    i1 = L_in * L_hid
    i2 = i1 + L_hid * L_out
    i3 = i2 + L_hid
    return (theta[:i1].reshape(L_in, L_hid), theta[i1:i2].reshape(L_hid, L_out),
            theta[i2:i3], theta[i3:])


# --------------------------------------------------------------------------- #
# trainers
# --------------------------------------------------------------------------- #

def _report(bar, print_every, i, num_iters, J):
    """Count step ``i`` on the progress bar, showing ``J`` every ``print_every`` steps."""
    bar.update(**({"J": J} if i % print_every == 0 or i == num_iters - 1 else {}))


def _train_setup(We, data, params):
    # data checked once per trainer call (range and finiteness), not per iteration
    (W1, W2, b1, b2, x), p = _prepare(We, data, params)
    # fresh copies: the trainers update these in place, never the caller's
    return [w.copy() for w in (W1, W2, b1, b2)], x, p


def train_gd(We, data, params, lr, num_iters, verbose=False, print_every=100):
    """Full-batch gradient descent, ``We <- We - lr * dJ/dWe``.

    Parameters
    ----------
    We : tuple (W1, W2, b1, b2)
        Initial weights (not modified).
    data : ndarray, shape (N, L_in), values in [0, 1]
    params : tuple (L_in, L_hid, lambda, beta, rho) or AEParams
    lr : float
        Step size, > 0.
    num_iters : int
        Number of steps.
    verbose : bool
        Show a progress bar (:mod:`lab.progress`) with ``J`` every
        ``print_every`` steps.

    Returns
    -------
    We : tuple (W1, W2, b1, b2)
        Weights after ``num_iters`` steps.
    history : ndarray, shape (num_iters,)
        ``history[i]`` is ``J`` at the start of step ``i``.
    """
    lr = finite_float(lr, "lr", low=0.0, low_open=True)
    num_iters = nonneg_int(num_iters, "num_iters")
    print_every = positive_int(print_every, "print_every")
    W, x, p = _train_setup(We, data, params)
    configs = [{"learning_rate": lr} for _ in W]
    history = np.empty(num_iters)
    with _progress(total=num_iters, desc="train_gd",
                   enabled=bool(verbose)) as bar:
        for i in range(num_iters):
            J, grads = _checked_cost(W, x, p)
            history[i] = J
            _report(bar, print_every, i, num_iters, J)
            for k, g in enumerate(grads):
                W[k], configs[k] = _optim.sgd(W[k], g, configs[k])
    return tuple(W), history


def train_lbfgs(We, data, params, maxiter=400, verbose=False, tol=None,
                options=None, return_result=False):
    """Minimise ``J`` with L-BFGS (``scipy.optimize.minimize``,
    ``L-BFGS-B``), in float64.

    This is the counterpart of the course's ``minFunc`` L-BFGS run.

    Parameters
    ----------
    We : tuple (W1, W2, b1, b2)
        Initial weights (not modified).
    data : ndarray, shape (N, L_in), values in [0, 1]
    params : tuple (L_in, L_hid, lambda, beta, rho) or AEParams
    maxiter : int
        Maximum number of L-BFGS iterations.
    verbose : bool
        Show a progress bar (:mod:`lab.progress`) with ``J`` after every
        iteration.
    tol : float, optional
        Passed to ``scipy.optimize.minimize``.
    options : dict, optional
        Extra L-BFGS-B options (``maxiter`` is set from the argument).
    return_result : bool
        Also return scipy's ``OptimizeResult``.

    Returns
    -------
    We : tuple (W1, W2, b1, b2)
        Optimised weights, in the computation dtype of ``We`` and ``data``
        (the optimisation itself runs in float64).
    history : ndarray, shape (n_iterations + 1,)
        ``J`` at the initial point, then after each iteration.
    result : OptimizeResult
        Only if ``return_result``.
    """
    from scipy.optimize import minimize

    maxiter = positive_int(maxiter, "maxiter")
    W, x, p = _train_setup(We, data, params)
    out_dtype = W[0].dtype
    x64 = x.astype(np.float64, copy=False)
    theta0 = pack(tuple(W)).astype(np.float64)
    L_in, L_hid = p.L_in, p.L_hid

    history = []

    def fun(theta):
        J, grads = _checked_cost(unpack(theta, L_in, L_hid), x64, p)
        if not history:
            history.append(J)
        return J, np.concatenate([g.ravel() for g in grads])

    def callback(intermediate_result):
        history.append(float(intermediate_result.fun))
        bar.update(J=history[-1])

    opts = dict(options or {})
    opts["maxiter"] = maxiter
    with _progress(total=maxiter, desc="train_lbfgs",
                   enabled=bool(verbose)) as bar:
        res = minimize(fun, theta0, jac=True, method="L-BFGS-B", tol=tol,
                       options=opts, callback=callback)
    We_out = tuple(w.astype(out_dtype) for w in unpack(res.x, L_in, L_hid))
    history = np.asarray(history)
    if return_result:
        return We_out, history, res
    return We_out, history


def train_adam(We, data, params, lr=1e-2, num_iters=500, batch_size=None,
               beta1=0.9, beta2=0.999, eps=1e-8, seed=0, verbose=False,
               print_every=100):
    """Adam on full batches or on shuffled minibatches.

    With minibatches, ``rho_hat`` (and so the sparsity penalty) is computed on
    each minibatch: a stochastic estimate of the full-batch cost.

    Parameters
    ----------
    We : tuple (W1, W2, b1, b2)
        Initial weights (not modified).
    data : ndarray, shape (N, L_in), values in [0, 1]
    params : tuple (L_in, L_hid, lambda, beta, rho) or AEParams
    lr : float
        Step size, > 0.
    num_iters : int
        Number of updates.
    batch_size : int, optional
        Samples per update, at most N; ``None`` uses all N every step.
        Minibatches run through a fresh random permutation each epoch.
    beta1, beta2, eps : float
        Adam's moment decay rates and denominator offset.
    seed : int >= 0 or None, default 0
        Seed of the minibatch shuffling. seed=0 by default: the same
        minibatches on every call; pass seed=None for fresh randomness
        (``np.random.seed`` has no effect either way).
    verbose : bool
        Show a progress bar (:mod:`lab.progress`) with the loss every
        ``print_every`` updates.

    Returns
    -------
    We : tuple (W1, W2, b1, b2)
    history : ndarray, shape (num_iters,)
        Loss of the batch used at each update, before the update.
    """
    lr = finite_float(lr, "lr", low=0.0, low_open=True)
    num_iters = nonneg_int(num_iters, "num_iters")
    beta1 = finite_float(beta1, "beta1", low=0.0, high=1.0, high_open=True)
    beta2 = finite_float(beta2, "beta2", low=0.0, high=1.0, high_open=True)
    eps = finite_float(eps, "eps", low=0.0, low_open=True)
    seed = None if seed is None else nonneg_int(seed, "seed")
    print_every = positive_int(print_every, "print_every")
    W, x, p = _train_setup(We, data, params)
    N = x.shape[0]
    if batch_size is not None:
        batch_size = positive_int(batch_size, "batch_size")
        if batch_size > N:
            raise ValueError(
                f"batch_size must be at most N={N}, got {batch_size}")
        if batch_size == N:
            batch_size = None
    from lab.data import minibatch_indices

    batches = (None if batch_size is None
               else minibatch_indices(N, batch_size, seed))
    configs = [{"learning_rate": lr, "beta1": beta1, "beta2": beta2,
                "epsilon": eps}
               for _ in W]
    history = np.empty(num_iters)
    with _progress(total=num_iters, desc="train_adam",
                   enabled=bool(verbose)) as bar:
        for i in range(num_iters):
            xb = x if batches is None else x[next(batches)]
            J, grads = _checked_cost(W, xb, p)
            history[i] = J
            _report(bar, print_every, i, num_iters, J)
            for k, g in enumerate(grads):
                W[k], configs[k] = _optim.adam(W[k], g, configs[k])
    return tuple(W), history
