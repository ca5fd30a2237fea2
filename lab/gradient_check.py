"""Numerical gradients by central differences, and the relative error used to
compare them with analytic gradients.

The names and signatures follow CS231n's ``gradient_check.py``:

* ``rel_error(x, y)``: max_i |x_i - y_i| / max(1e-8, |x_i| + |y_i|)
* ``eval_numerical_gradient(f, x)``: gradient of a scalar function ``f(x)``
* ``eval_numerical_gradient_array(f, x, df)``: gradient of ``sum(f(x) * df)``,
  i.e. the vector-Jacobian product a layer's backward pass computes.

Both numerical gradients perturb ``x`` in place, one entry at a time, and
restore it afterwards (also when ``f`` raises), so ``f`` must read ``x`` each
time it is called. ``x`` must be precise enough for the step ``h``: float16,
or entries so large that ``x + h`` rounds back to ``x``, are refused rather
than giving a gradient of zeros.

A NaN or an infinity in one of two compared arrays that the other does not
match exactly makes the relative errors infinite, so that a check such as
``rel_error(num, grad) < 1e-7`` fails instead of comparing NaN (always False
either way round, so ``err > tol`` would let a broken gradient pass).
"""
from __future__ import annotations

import math

import numpy as np

from ._validate import positive_int

__all__ = ["rel_error", "norm_rel_error", "eval_numerical_gradient",
           "eval_numerical_gradient_array", "grad_check_sparse"]


def _nonfinite_mismatch(x, y):
    """Whether some entry is NaN or infinite in ``x`` or ``y`` without being
    exactly equal in the other (NaN never is); also returns the mask of the
    entries where both are finite."""
    finite = np.isfinite(x) & np.isfinite(y)
    return bool(np.any(~finite & ~(x == y))), finite


def rel_error(x, y) -> float:
    """Largest elementwise relative error between two arrays of the same shape.

    ``max |x - y| / max(1e-8, |x| + |y|)``; the floor keeps entries where both
    are (near) zero from dominating. ``inf`` if an entry is NaN or infinite in
    one array and not the same infinity in the other; equal infinities count
    as no error.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"rel_error needs arrays of one shape, got {x.shape} and {y.shape}")
    if x.size == 0:
        return 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        err = float(np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y))))
    if math.isfinite(err):
        return err
    mismatch, finite = _nonfinite_mismatch(x, y)
    if mismatch:
        return float("inf")
    if not finite.any():
        return 0.0
    # finite entries only, halved so that x - y cannot overflow (same ratios)
    x, y = x[finite] / 2, y[finite] / 2
    return float(np.max(np.abs(x - y) / np.maximum(0.5e-8, np.abs(x) + np.abs(y))))


def norm_rel_error(num, grad) -> float:
    """The course's relative difference ``||num - grad|| / ||num + grad||``.

    ``inf`` if an entry is NaN or infinite in one array and not the same
    infinity in the other; entries equal in both (infinities included) add
    nothing to ``||num - grad||`` and are left out.
    """
    num = np.asarray(num, dtype=np.float64).ravel()
    grad = np.asarray(grad, dtype=np.float64).ravel()
    if num.shape != grad.shape:
        raise ValueError(f"norm_rel_error needs arrays of one size, got {num.size} and {grad.size}")
    with np.errstate(over="ignore", invalid="ignore"):
        denom = np.linalg.norm(num + grad)
        diff = np.linalg.norm(num - grad)
    if not (np.isfinite(denom) and np.isfinite(diff)):
        mismatch, finite = _nonfinite_mismatch(num, grad)
        if mismatch:
            return float("inf")
        num, grad = num[finite], grad[finite]
        # divided by the largest magnitude so that the norms cannot overflow
        big = max(np.max(np.abs(num), initial=0.0), np.max(np.abs(grad), initial=0.0))
        if big > 0:
            num, grad = num / big, grad / big
        denom, diff = np.linalg.norm(num + grad), np.linalg.norm(num - grad)
    if denom == 0.0:
        return 0.0 if diff == 0.0 else float("inf")
    return float(diff / denom)


def _check_x(x, h):
    if not isinstance(x, np.ndarray) or x.dtype.kind != "f":
        raise TypeError(
            "x must be a floating-point ndarray that f reads (it is perturbed in place), "
            f"got {type(x).__name__}" + (f" of dtype {x.dtype}" if isinstance(x, np.ndarray) else "")
        )
    if x.dtype.itemsize < 4:
        raise TypeError(
            f"x has dtype {x.dtype}, too coarse for central differences (x + h rounds to "
            f"a few representable values, or back to x): use float64, e.g. x.astype(np.float64)")
    if not (np.isfinite(h) and h > 0):
        raise ValueError(f"h must be a positive step size, got {h}")
    if x.size and not np.all(np.isfinite(x)):
        raise ValueError("x contains NaN or inf; a numerical gradient needs finite entries")
    # each entry must change when h is added or subtracted (checked again in the loop)
    with np.errstate(over="ignore"):
        up = np.asarray(x + h, dtype=x.dtype)
        down = np.asarray(x - h, dtype=x.dtype)
    lost = (up == x) | (down == x)
    if lost.any():
        _raise_step_lost(x, tuple(int(i) for i in np.argwhere(lost)[0]), h, int(lost.sum()))


def _raise_step_lost(x, ix, h, count=1):
    raise ValueError(
        f"x + h or x - h rounds back to x in {x.dtype} for {count} entr"
        f"{'y' if count == 1 else 'ies'} (e.g. x[{', '.join(map(str, ix))}] = {x[ix]!r} "
        f"with h = {h}), which would give a gradient of 0: use float64 "
        f"(x.astype(np.float64)) or a larger h")


def _perturbed_values(f, x, ix, h, value):
    """``value(f(x))`` with ``x[ix]`` increased by ``h`` and then decreased by
    ``h``; ``x[ix]`` is restored afterwards, also when ``f`` raises."""
    old = x[ix]
    try:
        x[ix] = old + h
        if x[ix] == old:
            _raise_step_lost(x, ix, h)
        pos = value(f(x))
        x[ix] = old - h
        if x[ix] == old:
            _raise_step_lost(x, ix, h)
        neg = value(f(x))
    finally:
        x[ix] = old
    return pos, neg


def _as_scalar(v):
    return float(v)


def _as_array(v):
    return np.array(v, dtype=np.float64, copy=True)


def eval_numerical_gradient(f, x, verbose=False, h=1e-5):
    """Central-difference gradient of a scalar function at ``x``.

    Parameters
    ----------
    f : callable
        ``f(x) -> float``.
    x : ndarray of float32 or float64, any shape
        Point at which to differentiate; perturbed in place and restored
        (also when ``f`` raises).
    verbose : bool
        Print every entry's index and gradient.
    h : float
        Step size.

    Returns
    -------
    grad : ndarray, same shape as ``x``
        ``(f(x + h e_i) - f(x - h e_i)) / (2h)`` for every entry i.

    Raises
    ------
    TypeError
        If ``x`` is not a floating-point ndarray, or is float16.
    ValueError
        If ``x`` holds NaN or inf, or ``x + h`` or ``x - h`` rounds back to
        ``x`` for some entry (a step too small for the magnitude and dtype).
    """
    _check_x(x, h)
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        ix = it.multi_index
        fxph, fxmh = _perturbed_values(f, x, ix, h, _as_scalar)
        grad[ix] = (fxph - fxmh) / (2 * h)
        if verbose:
            print(ix, grad[ix])
        it.iternext()
    return grad


def eval_numerical_gradient_array(f, x, df, h=1e-5):
    """Central-difference gradient of ``sum(f(x) * df)`` with respect to ``x``.

    Parameters
    ----------
    f : callable
        ``f(x) -> ndarray`` of the same shape as ``df``.
    x : ndarray of float32 or float64, any shape
        Perturbed in place and restored (also when ``f`` raises).
    df : ndarray
        Upstream gradient, shape of ``f(x)``.

    Returns
    -------
    grad : ndarray, same shape as ``x``

    Raises
    ------
    TypeError, ValueError
        As for :func:`eval_numerical_gradient`; ValueError also if ``f(x)``
        does not have the shape of ``df``.
    """
    _check_x(x, h)
    df = np.asarray(df)
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        ix = it.multi_index
        pos, neg = _perturbed_values(f, x, ix, h, _as_array)
        if pos.shape != df.shape:
            raise ValueError(f"f(x) has shape {pos.shape} but df has shape {df.shape}")
        grad[ix] = np.sum((pos - neg) * df) / (2 * h)
        it.iternext()
    return grad


def grad_check_sparse(f, x, analytic_grad, num_checks=10, h=1e-5, seed=0):
    """Compare ``analytic_grad`` with central differences at ``num_checks``
    random entries of ``x``; returns the list of relative errors
    ``|num - ana| / max(1e-12, |num| + |ana|)``, ``inf`` where one of the two
    is NaN or infinite and the other not the same infinity.

    ``analytic_grad`` must have the shape of ``x``; ``x`` is perturbed in
    place and restored, as in :func:`eval_numerical_gradient`.
    """
    _check_x(x, h)
    num_checks = positive_int(num_checks, "num_checks")
    analytic_grad = np.asarray(analytic_grad)
    if analytic_grad.shape != x.shape:
        raise ValueError(f"analytic_grad must have the shape of x {x.shape}, "
                         f"got {analytic_grad.shape}")
    if x.size == 0:
        raise ValueError(f"x has no entries to check (shape {x.shape})")
    rng = np.random.default_rng(seed)
    errors = []
    for _ in range(num_checks):
        ix = tuple(int(rng.integers(m)) for m in x.shape)
        fxph, fxmh = _perturbed_values(f, x, ix, h, _as_scalar)
        num = (fxph - fxmh) / (2 * h)
        ana = float(analytic_grad[ix])
        errors.append(_scalar_rel_error(num, ana))
    return errors


def _scalar_rel_error(num, ana):
    if math.isfinite(num) and math.isfinite(ana):
        err = abs(num - ana) / max(1e-12, abs(num) + abs(ana))
        if math.isfinite(err):
            return err
        return abs(num / 2 - ana / 2) / max(0.5e-12, abs(num / 2) + abs(ana / 2))
    return 0.0 if num == ana else float("inf")
