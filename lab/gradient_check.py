"""Numerical gradients by central differences, and the relative error used to
compare them with analytic gradients.

The names and signatures follow CS231n's ``gradient_check.py``:

* ``rel_error(x, y)``: max_i |x_i - y_i| / max(1e-8, |x_i| + |y_i|)
* ``eval_numerical_gradient(f, x)``: gradient of a scalar function ``f(x)``
* ``eval_numerical_gradient_array(f, x, df)``: gradient of ``sum(f(x) * df)``,
  i.e. the vector-Jacobian product a layer's backward pass computes.

Both numerical gradients perturb ``x`` in place, one entry at a time, and
restore it afterwards, so ``f`` must read ``x`` each time it is called.
"""
from __future__ import annotations

import numpy as np

__all__ = ["rel_error", "norm_rel_error", "eval_numerical_gradient",
           "eval_numerical_gradient_array", "grad_check_sparse"]


def rel_error(x, y) -> float:
    """Largest elementwise relative error between two arrays of the same shape.

    ``max |x - y| / max(1e-8, |x| + |y|)``; the floor keeps entries where both
    are (near) zero from dominating.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"rel_error needs arrays of one shape, got {x.shape} and {y.shape}")
    if x.size == 0:
        return 0.0
    return float(np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y))))


def norm_rel_error(num, grad) -> float:
    """The course's relative difference ``||num - grad|| / ||num + grad||``."""
    num = np.asarray(num, dtype=np.float64).ravel()
    grad = np.asarray(grad, dtype=np.float64).ravel()
    if num.shape != grad.shape:
        raise ValueError(f"norm_rel_error needs arrays of one size, got {num.size} and {grad.size}")
    denom = np.linalg.norm(num + grad)
    if denom == 0.0:
        return 0.0 if np.linalg.norm(num - grad) == 0.0 else float("inf")
    return float(np.linalg.norm(num - grad) / denom)


def _check_x(x, h):
    if not isinstance(x, np.ndarray) or x.dtype.kind != "f":
        raise TypeError(
            "x must be a floating-point ndarray that f reads (it is perturbed in place), "
            f"got {type(x).__name__}" + (f" of dtype {x.dtype}" if isinstance(x, np.ndarray) else "")
        )
    if not (np.isfinite(h) and h > 0):
        raise ValueError(f"h must be a positive step size, got {h}")


def eval_numerical_gradient(f, x, verbose=False, h=1e-5):
    """Central-difference gradient of a scalar function at ``x``.

    Parameters
    ----------
    f : callable
        ``f(x) -> float``.
    x : ndarray of float, any shape
        Point at which to differentiate; perturbed in place and restored.
    verbose : bool
        Print every entry's index and gradient.
    h : float
        Step size.

    Returns
    -------
    grad : ndarray, same shape as ``x``
        ``(f(x + h e_i) - f(x - h e_i)) / (2h)`` for every entry i.
    """
    _check_x(x, h)
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        ix = it.multi_index
        old = x[ix]
        x[ix] = old + h
        fxph = float(f(x))
        x[ix] = old - h
        fxmh = float(f(x))
        x[ix] = old
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
    x : ndarray of float, any shape
        Perturbed in place and restored.
    df : ndarray
        Upstream gradient, shape of ``f(x)``.

    Returns
    -------
    grad : ndarray, same shape as ``x``
    """
    _check_x(x, h)
    df = np.asarray(df)
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        ix = it.multi_index
        old = x[ix]
        x[ix] = old + h
        pos = np.array(f(x), dtype=np.float64, copy=True)
        x[ix] = old - h
        neg = np.array(f(x), dtype=np.float64, copy=True)
        x[ix] = old
        if pos.shape != df.shape:
            raise ValueError(f"f(x) has shape {pos.shape} but df has shape {df.shape}")
        grad[ix] = np.sum((pos - neg) * df) / (2 * h)
        it.iternext()
    return grad


def grad_check_sparse(f, x, analytic_grad, num_checks=10, h=1e-5, seed=0):
    """Compare ``analytic_grad`` with central differences at ``num_checks``
    random entries of ``x``; returns the list of relative errors."""
    _check_x(x, h)
    rng = np.random.default_rng(seed)
    errors = []
    for _ in range(num_checks):
        ix = tuple(int(rng.integers(m)) for m in x.shape)
        old = x[ix]
        x[ix] = old + h
        fxph = float(f(x))
        x[ix] = old - h
        fxmh = float(f(x))
        x[ix] = old
        num = (fxph - fxmh) / (2 * h)
        ana = float(analytic_grad[ix])
        errors.append(abs(num - ana) / max(1e-12, abs(num) + abs(ana)))
    return errors
