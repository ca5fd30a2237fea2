"""First-order update rules for training neural networks.

The names and signatures follow CS231n's ``optim.py``.  Every rule has the form

    next_w, config = update(w, dw, config=None)

* ``w``: ndarray of any shape, the current value of one parameter.
* ``dw``: ndarray of the same shape, the gradient of the loss with respect to ``w``.
* ``config``: dict of hyperparameters (learning rate, momentum, ...) *and* of the
  rule's running state (velocity, moment estimates, ...).  Missing
  hyperparameters are filled in with their defaults, so the returned ``config``
  always holds the full set and must be passed back in on the next call for the
  same parameter.  The ``Solver`` keeps one config per parameter.

``w`` and ``dw`` are not modified; ``next_w`` is a new array with ``w``'s dtype.
The state arrays in ``config`` are replaced by new arrays on every call.

``check_config(rule, config)`` runs a rule's checks of its hyperparameters
alone, without a step: the Solver calls it when it is built, so that a typo in
``optim_config`` fails at once rather than when training starts.

Rules
-----
sgd           w <- w - lr * dw
sgd_momentum  v <- mu * v - lr * dw;  w <- w + v
rmsprop       c <- rho * c + (1 - rho) * dw**2;  w <- w - lr * dw / (sqrt(c) + eps)
adam          bias-corrected first and second moment estimates (Kingma & Ba, 2015)
"""
from __future__ import annotations

import numbers

import numpy as np

from ._validate import as_float_array, finite_float, nonneg_int

__all__ = ["sgd", "sgd_momentum", "rmsprop", "adam", "UPDATE_RULES", "check_config"]

#: The names of the update rules defined here.
UPDATE_RULES = ("sgd", "sgd_momentum", "rmsprop", "adam")


def _check_params(w, dw):
    """Validate ``w`` and ``dw``: real floating-point arrays of one shape, finite."""
    w = as_float_array(w, "w")
    try:
        dw = as_float_array(dw, "dw")
    except ValueError as exc:  # only raised for NaN/inf here
        raise ValueError(f"{exc} (shape {np.shape(dw)}); training has probably diverged, "
                         "try a smaller learning_rate") from None
    if w.shape != dw.shape:
        raise ValueError(f"dw must have the shape of w, {w.shape}, got {dw.shape}")
    return w, dw


def _check_config(config, rule, defaults, state):
    """Return ``config`` (a new dict if None) with defaults filled in, after
    checking that it names only known hyperparameters and state entries."""
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict or None, got {type(config).__name__}")
    unknown = sorted(set(config) - set(defaults) - set(state))
    if unknown:
        raise ValueError(
            f"config has entries {unknown} that {rule} does not use; "
            f"expected only {sorted(defaults) + sorted(state)}"
        )
    for key, value in defaults.items():
        config.setdefault(key, value)
    return config


def _check_state(config, key, w):
    """Return the state array ``config[key]`` (zeros like ``w`` if absent)."""
    s = config.get(key)
    if s is None:
        return np.zeros_like(w)
    s = np.asarray(s)
    if s.shape != w.shape:
        raise ValueError(f"config['{key}'] must have the shape of w, {w.shape}, got {s.shape}")
    return s


def _reuse(buf, *others):
    """``buf`` as the ``out`` of an operation of ``buf`` with ``others`` if it
    has the dtype of the result (then nothing is rounded differently), else
    None (a new array)."""
    return buf if buf.dtype == np.result_type(buf, *others) else None


def _unit(config, key):
    return finite_float(config[key], f"config['{key}']", low=0.0, high=1.0, high_open=True)


def _positive(config, key):
    return finite_float(config[key], f"config['{key}']", low=0.0, low_open=True)


def _step_count(config, key):
    t = config[key]
    if isinstance(t, numbers.Integral) and not isinstance(t, bool):
        return nonneg_int(int(t), f"config['{key}']")
    raise TypeError(f"config['{key}'] must be a non-negative integer step count, got {t!r}")


# per rule: its hyperparameters with their defaults (checked in this order),
# and the names of its state entries
_HYPERPARAMETERS = {
    "sgd": ({"learning_rate": 1e-2}, ()),
    "sgd_momentum": ({"learning_rate": 1e-2, "momentum": 0.9}, ("velocity",)),
    "rmsprop": ({"learning_rate": 1e-2, "decay_rate": 0.99, "epsilon": 1e-8}, ("cache",)),
    "adam": ({"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8, "t": 0},
             ("m", "v")),
}
_CHECKS = {"learning_rate": _positive, "momentum": _unit, "decay_rate": _unit,
           "beta1": _unit, "beta2": _unit, "epsilon": _positive, "t": _step_count}


def _hyperparameters(config, rule):
    """``config`` with the defaults of ``rule`` filled in, and the checked
    values of its hyperparameters, in the order of ``_HYPERPARAMETERS``."""
    defaults, state = _HYPERPARAMETERS[rule]
    config = _check_config(config, rule, defaults, state)
    return config, [_CHECKS[key](config, key) for key in defaults]


def check_config(rule, config=None):
    """Check a config for an update rule without taking a step.

    Parameters
    ----------
    rule : str or function
        One of :data:`UPDATE_RULES`, or the rule itself (``lab.optim.adam``).
    config : dict or None
        Hyperparameters (and, optionally, state) as the rule accepts them;
        not modified.

    Returns
    -------
    config : dict
        A new dict: ``config`` with the rule's defaults filled in.

    Raises
    ------
    TypeError, ValueError
        Exactly what the rule itself would raise for this config: unknown
        entries, a learning rate that is not a finite number > 0, a momentum
        or decay rate outside [0, 1), and so on. The shapes of state arrays
        are checked by the rule, against ``w``, at its first step.
    """
    name = getattr(rule, "__name__", rule) if callable(rule) else rule
    if name not in UPDATE_RULES or (callable(rule) and rule is not globals()[name]):
        raise ValueError(f"rule must be one of {list(UPDATE_RULES)} or one of those functions, "
                         f"got {rule!r}")
    if config is not None and not isinstance(config, dict):
        raise TypeError(f"config must be a dict or None, got {type(config).__name__}")
    return _hyperparameters(dict(config or {}), name)[0]


def sgd(w, dw, config=None):
    """Vanilla stochastic gradient descent.

    ``next_w = w - learning_rate * dw``

    Parameters
    ----------
    w : ndarray, any shape
        Current parameter value.
    dw : ndarray, shape of ``w``
        Gradient of the loss with respect to ``w``.
    config : dict or None
        ``learning_rate`` (float > 0, default 1e-2).

    Returns
    -------
    next_w : ndarray, shape and dtype of ``w``
    config : dict
        The same dict, with defaults filled in.
    """
    w, dw = _check_params(w, dw)
    config, (lr,) = _hyperparameters(config, "sgd")
    next_w = w - lr * dw
    return next_w.astype(w.dtype, copy=False), config


def sgd_momentum(w, dw, config=None):
    """Stochastic gradient descent with (classical, heavy-ball) momentum.

    .. math::

        v &\\leftarrow \\mu v - \\eta\\, dw \\\\
        w &\\leftarrow w + v

    With a constant learning rate this is the same trajectory as
    ``torch.optim.SGD(momentum=mu, dampening=0, nesterov=False)``, whose buffer
    is ``-v / lr``.

    Parameters
    ----------
    w : ndarray, any shape
    dw : ndarray, shape of ``w``
    config : dict or None
        ``learning_rate`` (eta, > 0, default 1e-2), ``momentum`` (mu, in
        [0, 1), default 0.9), ``velocity`` (state v, shape of ``w``, zeros at
        first).

    Returns
    -------
    next_w : ndarray, shape and dtype of ``w``
    config : dict
        The same dict, holding the new ``velocity``.
    """
    w, dw = _check_params(w, dw)
    config, (lr, mu) = _hyperparameters(config, "sgd_momentum")
    v = _check_state(config, "velocity", w)
    v = mu * v - lr * dw
    next_w = w + v
    config["velocity"] = v
    return next_w.astype(w.dtype, copy=False), config


def rmsprop(w, dw, config=None):
    """RMSProp: scale each step by a running root mean square of the gradient.

    .. math::

        c &\\leftarrow \\rho c + (1 - \\rho)\\, dw^2 \\\\
        w &\\leftarrow w - \\eta\\, dw / (\\sqrt{c} + \\epsilon)

    This is ``torch.optim.RMSprop(lr=eta, alpha=rho, eps=epsilon)`` without
    momentum or centering.

    Parameters
    ----------
    w : ndarray, any shape
    dw : ndarray, shape of ``w``
    config : dict or None
        ``learning_rate`` (eta, > 0, default 1e-2), ``decay_rate`` (rho, in
        [0, 1), default 0.99), ``epsilon`` (> 0, default 1e-8), ``cache``
        (state c, shape of ``w``, zeros at first).

    Returns
    -------
    next_w : ndarray, shape and dtype of ``w``
    config : dict
        The same dict, holding the new ``cache``.
    """
    w, dw = _check_params(w, dw)
    config, (lr, rho, eps) = _hyperparameters(config, "rmsprop")
    cache = _check_state(config, "cache", w)
    # the formulas above in the same order, in three new arrays instead of
    # six; the arrays passed in are not written to
    tmp = np.multiply(dw, 1.0 - rho)
    tmp *= dw
    cache = np.multiply(cache, rho)
    cache = np.add(cache, tmp, out=_reuse(cache, tmp))   # rho cache + (1 - rho) dw^2
    step = np.multiply(dw, lr)
    denom = np.sqrt(cache, out=_reuse(tmp, cache))
    denom += eps
    step = np.divide(step, denom, out=_reuse(step, denom))  # lr dw / (sqrt(cache) + eps)
    next_w = np.subtract(w, step, out=_reuse(step, w))
    config["cache"] = cache
    return next_w.astype(w.dtype, copy=False), config


def adam(w, dw, config=None):
    """Adam: momentum on the gradient, RMSProp-style scaling, bias correction.

    With step counter t (incremented *before* use, so the first step has t = 1):

    .. math::

        m &\\leftarrow \\beta_1 m + (1 - \\beta_1)\\, dw \\\\
        v &\\leftarrow \\beta_2 v + (1 - \\beta_2)\\, dw^2 \\\\
        \\hat m = m / (1 - \\beta_1^t), &\\quad \\hat v = v / (1 - \\beta_2^t) \\\\
        w &\\leftarrow w - \\eta\\, \\hat m / (\\sqrt{\\hat v} + \\epsilon)

    epsilon is added after the bias correction of sqrt(v), as in
    ``torch.optim.Adam`` and the original paper.

    Parameters
    ----------
    w : ndarray, any shape
    dw : ndarray, shape of ``w``
    config : dict or None
        ``learning_rate`` (eta, > 0, default 1e-3), ``beta1`` (in [0, 1),
        default 0.9), ``beta2`` (in [0, 1), default 0.999), ``epsilon`` (> 0,
        default 1e-8), and the state ``m``, ``v`` (shape of ``w``, zeros at
        first) and ``t`` (int >= 0, default 0).

    Returns
    -------
    next_w : ndarray, shape and dtype of ``w``
    config : dict
        The same dict, holding the new ``m``, ``v`` and ``t``.
    """
    w, dw = _check_params(w, dw)
    config, (lr, beta1, beta2, eps, t) = _hyperparameters(config, "adam")
    m = _check_state(config, "m", w)
    v = _check_state(config, "v", w)
    t += 1
    # the formulas above, term by term in the same order (so with the same
    # rounding), in four new arrays instead of ten; the arrays passed in,
    # the state included, are not written to
    tmp = np.multiply(dw, 1.0 - beta1)
    m = np.multiply(m, beta1)
    m = np.add(m, tmp, out=_reuse(m, tmp))         # beta1 m + (1 - beta1) dw
    np.multiply(dw, 1.0 - beta2, out=tmp)
    tmp *= dw
    v = np.multiply(v, beta2)
    v = np.add(v, tmp, out=_reuse(v, tmp))         # beta2 v + (1 - beta2) dw^2
    step = np.divide(m, 1.0 - beta1 ** t)          # m_hat
    step *= lr
    denom = np.divide(v, 1.0 - beta2 ** t, out=_reuse(tmp, v))   # v_hat
    np.sqrt(denom, out=denom)
    denom += eps
    step = np.divide(step, denom, out=_reuse(step, denom))  # lr m_hat / (sqrt(v_hat) + eps)
    next_w = np.subtract(w, step, out=_reuse(step, w))
    config["m"], config["v"], config["t"] = m, v, t
    return next_w.astype(w.dtype, copy=False), config
