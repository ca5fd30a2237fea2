"""Input checks shared by the package.

Every public function validates its arguments with these helpers so that bad
input fails early with a message naming the argument, what was received and
what was expected, rather than as a NaN or a broadcasting error deep inside
NumPy.
"""
from __future__ import annotations

import numbers

import numpy as np


def as_float_array(x, name: str, ndim: int | None = None, shape: tuple | None = None):
    """Return ``x`` as a floating-point ndarray after checking it.

    Parameters
    ----------
    x : array_like
    name : str
        Argument name used in error messages.
    ndim : int, optional
        Required number of dimensions.
    shape : tuple, optional
        Required shape; ``None`` entries match any size.

    Raises
    ------
    TypeError
        If ``x`` is not numeric or is not floating point (integer arrays are
        accepted and converted to float64; bool, complex and object are not).
    ValueError
        If the number of dimensions or the shape differs, or ``x`` holds NaN or inf.
    """
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except Exception as exc:  # pragma: no cover - exotic inputs
            raise TypeError(f"{name} must be array-like, got {type(x).__name__}") from exc
    if x.dtype.kind in "iu":
        x = x.astype(np.float64)
    elif x.dtype.kind != "f":
        raise TypeError(f"{name} must hold real floating-point numbers, got dtype {x.dtype}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {x.shape}")
    if shape is not None:
        if len(shape) != x.ndim or any(s is not None and s != t for s, t in zip(shape, x.shape)):
            want = "(" + ", ".join("any" if s is None else str(s) for s in shape) + ")"
            raise ValueError(f"{name} must have shape {want}, got {x.shape}")
    # a sum is NaN or infinite if any entry is (and, rarely, when it overflows):
    # one pass with no temporary array; only then look at every entry
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.sum(x)
    if not np.isfinite(total) and not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or inf")
    return x


def as_labels(y, name: str, n: int | None = None, num_classes: int | None = None):
    """Return integer class labels of shape (n,) after checking them."""
    y = np.asarray(y)
    if y.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer class labels, got dtype {y.dtype}")
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {y.shape}")
    if n is not None and y.shape[0] != n:
        raise ValueError(f"{name} must have {n} entries to match the inputs, got {y.shape[0]}")
    if num_classes is not None and y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(
            f"{name} must lie in [0, {num_classes - 1}], got values from {y.min()} to {y.max()}"
        )
    return y


def positive_int(v, name: str) -> int:
    """Check that ``v`` is a positive integer and return it as ``int``."""
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name} must be a positive integer, got {v!r}")
    if v <= 0:
        raise ValueError(f"{name} must be a positive integer, got {v}")
    return int(v)


def nonneg_int(v, name: str) -> int:
    """Check that ``v`` is a non-negative integer and return it as ``int``."""
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name} must be a non-negative integer, got {v!r}")
    if v < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {v}")
    return int(v)


def finite_float(v, name: str, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False) -> float:
    """Check that ``v`` is a real number within the given bounds and return it."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {v!r}")
    v = float(v)
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    lo_bad = low is not None and (v <= low if low_open else v < low)
    hi_bad = high is not None and (v >= high if high_open else v > high)
    if lo_bad or hi_bad:
        lo = "" if low is None else ("(" if low_open else "[") + f"{low}"
        hi = "" if high is None else f"{high}" + (")" if high_open else "]")
        rng = f"{lo or '(-inf'}, {hi or 'inf)'}"
        raise ValueError(f"{name} must lie in {rng}, got {v}")
    return v


def float_dtype(dtype, name: str = "dtype") -> np.dtype:
    """Check that ``dtype`` names a NumPy floating dtype and return it."""
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"{name} must be a numpy floating dtype, got {dtype!r}") from exc
    if dt.kind != "f":
        raise TypeError(f"{name} must be a numpy floating dtype such as np.float32 or "
                        f"np.float64, got {dt}")
    return dt


def optional_seed(seed, name: str = "seed"):
    """Check that ``seed`` is an int >= 0 or None (fresh randomness) and return it."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"{name} must be an int >= 0 or None, got {seed!r}")
    return nonneg_int(seed, name)
