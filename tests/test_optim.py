"""Update rules: one step on the fixed case against a scalar re-derivation,
several steps against torch.optim, and the bad-input paths."""
import math

import numpy as np
import pytest
import torch

from lab import optim
from lab.gradient_check import rel_error

N, D = 4, 5


def fixed_case():
    w = np.linspace(-0.4, 0.6, num=N * D).reshape(N, D)
    dw = np.linspace(-0.6, 0.4, num=N * D).reshape(N, D)
    s1 = np.linspace(0.6, 0.9, num=N * D).reshape(N, D)
    s2 = np.linspace(0.7, 0.5, num=N * D).reshape(N, D)
    return w, dw, s1, s2


def elementwise(fn, *arrays):
    """Apply a scalar function entry by entry with Python floats (math module),
    independently of the vectorised NumPy code under test."""
    flat = [a.ravel().tolist() for a in arrays]
    outs = [fn(*vals) for vals in zip(*flat)]
    return [np.array(o).reshape(arrays[0].shape) for o in zip(*outs)]


def test_sgd_fixed_case():
    w, dw, _, _ = fixed_case()
    w0 = w.copy()
    next_w, config = optim.sgd(w, dw, {"learning_rate": 1e-3})
    (expected,) = elementwise(lambda a, g: (a - 1e-3 * g,), w, dw)
    assert rel_error(next_w, expected) < 1e-12
    assert np.array_equal(w, w0), "w must not be modified"
    assert config == {"learning_rate": 1e-3}


def test_sgd_default_learning_rate():
    w, dw, _, _ = fixed_case()
    next_w, config = optim.sgd(w, dw)
    assert config["learning_rate"] == 1e-2
    np.testing.assert_allclose(next_w, w - 1e-2 * dw, rtol=0, atol=1e-15)


def test_sgd_momentum_fixed_case():
    w, dw, v, _ = fixed_case()
    lr, mu = 1e-3, 0.9
    next_w, config = optim.sgd_momentum(w, dw, {"learning_rate": lr, "velocity": v})

    def step(a, g, vel):
        vel = mu * vel - lr * g
        return a + vel, vel

    exp_w, exp_v = elementwise(step, w, dw, v)
    assert rel_error(next_w, exp_w) < 1e-8
    assert rel_error(config["velocity"], exp_v) < 1e-8
    assert config["momentum"] == 0.9


def test_rmsprop_fixed_case():
    w, dw, cache, _ = fixed_case()
    lr = 1e-2
    next_w, config = optim.rmsprop(w, dw, {"learning_rate": lr, "cache": cache})

    def step(a, g, c):
        c = 0.99 * c + 0.01 * g * g
        return a - lr * g / (math.sqrt(c) + 1e-8), c

    exp_w, exp_c = elementwise(step, w, dw, cache)
    assert rel_error(next_w, exp_w) < 1e-8
    assert rel_error(config["cache"], exp_c) < 1e-8
    assert (config["decay_rate"], config["epsilon"]) == (0.99, 1e-8)


def test_adam_fixed_case():
    w, dw, m, v = fixed_case()
    lr, t0 = 1e-2, 5
    next_w, config = optim.adam(w, dw, {"learning_rate": lr, "m": m, "v": v, "t": t0})

    def step(a, g, m1, v1):
        t = t0 + 1
        m1 = 0.9 * m1 + 0.1 * g
        v1 = 0.999 * v1 + 0.001 * g * g
        mh = m1 / (1 - 0.9 ** t)
        vh = v1 / (1 - 0.999 ** t)
        return a - lr * mh / (math.sqrt(vh) + 1e-8), m1, v1

    exp_w, exp_m, exp_v = elementwise(step, w, dw, m, v)
    assert rel_error(next_w, exp_w) < 1e-8
    assert rel_error(config["m"], exp_m) < 1e-8
    assert rel_error(config["v"], exp_v) < 1e-8
    assert config["t"] == t0 + 1


def test_adam_counter_starts_at_zero_and_first_step_is_lr_sign():
    # On the first step the bias-corrected ratio m_hat / sqrt(v_hat) is
    # dw / |dw|, so every entry moves by (almost exactly) learning_rate.
    w, dw, _, _ = fixed_case()
    next_w, config = optim.adam(w, dw)
    assert config["t"] == 1
    assert config["learning_rate"] == 1e-3
    expected = w - 1e-3 * dw / (np.abs(dw) + 1e-8)
    assert rel_error(next_w, expected) < 1e-10
    assert np.all(np.abs(np.abs(next_w - w) - 1e-3) < 1e-9)


# ---------------------------------------------------------------- torch parity

def _torch_trajectory(make_opt, w0, grads):
    p = torch.nn.Parameter(torch.tensor(w0, dtype=torch.float64))
    opt = make_opt([p])
    out = []
    for g in grads:
        opt.zero_grad()
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        out.append(p.detach().numpy().copy())
    return out


def _lab_trajectory(rule, config, w0, grads):
    w = w0.copy()
    out = []
    for g in grads:
        w, config = rule(w, g, config)
        out.append(w.copy())
    return out


@pytest.mark.parametrize(
    "rule, config, make_opt",
    [
        (optim.sgd, {"learning_rate": 0.05},
         lambda ps: torch.optim.SGD(ps, lr=0.05)),
        (optim.sgd_momentum, {"learning_rate": 0.05, "momentum": 0.9},
         lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, dampening=0, nesterov=False)),
        (optim.rmsprop, {"learning_rate": 0.01, "decay_rate": 0.95, "epsilon": 1e-8},
         lambda ps: torch.optim.RMSprop(ps, lr=0.01, alpha=0.95, eps=1e-8)),
        (optim.adam, {"learning_rate": 0.01, "beta1": 0.8, "beta2": 0.99, "epsilon": 1e-8},
         lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.8, 0.99), eps=1e-8)),
    ],
    ids=["sgd", "sgd_momentum", "rmsprop", "adam"],
)
def test_matches_torch_over_several_steps(rule, config, make_opt):
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(3, 7))
    grads = [rng.normal(size=(3, 7)) * (1 + k) for k in range(8)]
    ours = _lab_trajectory(rule, dict(config), w0, grads)
    theirs = _torch_trajectory(make_opt, w0, grads)
    for k, (a, b) in enumerate(zip(ours, theirs)):
        assert rel_error(a, b) < 1e-10, f"step {k}: rel error {rel_error(a, b):.2e}"
    # the parameters really moved
    assert np.max(np.abs(ours[-1] - w0)) > 1e-2


def test_sgd_momentum_velocity_is_minus_lr_times_torch_buffer():
    rng = np.random.default_rng(1)
    w0 = rng.normal(size=(6,))
    grads = [rng.normal(size=(6,)) for _ in range(4)]
    p = torch.nn.Parameter(torch.tensor(w0))
    opt = torch.optim.SGD([p], lr=0.1, momentum=0.5)
    config = {"learning_rate": 0.1, "momentum": 0.5}
    w = w0.copy()
    for g in grads:
        p.grad = torch.tensor(g)
        opt.step()
        w, config = optim.sgd_momentum(w, g, config)
    buf = opt.state[p]["momentum_buffer"].numpy()
    assert rel_error(config["velocity"], -0.1 * buf) < 1e-12


# ------------------------------------------------------------------- dtypes

@pytest.mark.parametrize("rule", [optim.sgd, optim.sgd_momentum, optim.rmsprop, optim.adam])
def test_float32_stays_float32(rule):
    w, dw, _, _ = fixed_case()
    w32, dw32 = w.astype(np.float32), dw.astype(np.float32)
    next_w, config = rule(w32, dw32, None)
    assert next_w.dtype == np.float32
    ref, _ = rule(w, dw, None)
    assert rel_error(next_w, ref) < 1e-5


def test_integer_arrays_are_accepted_as_float64():
    next_w, _ = optim.sgd(np.array([1, 2]), np.array([1, -1]), {"learning_rate": 0.5})
    assert next_w.dtype == np.float64
    np.testing.assert_array_equal(next_w, [0.5, 2.5])


# ------------------------------------------------------------------- bad input

ALL = [optim.sgd, optim.sgd_momentum, optim.rmsprop, optim.adam]


@pytest.mark.parametrize("rule", ALL)
def test_shape_mismatch(rule):
    with pytest.raises(ValueError, match=r"dw must have the shape of w, \(2, 3\), got \(3, 2\)"):
        rule(np.zeros((2, 3)), np.zeros((3, 2)))


@pytest.mark.parametrize("rule", ALL)
@pytest.mark.parametrize("lr", [0.0, -1e-3, float("nan"), float("inf")])
def test_bad_learning_rate(rule, lr):
    with pytest.raises(ValueError, match=r"config\['learning_rate'\]"):
        rule(np.zeros(3), np.ones(3), {"learning_rate": lr})


@pytest.mark.parametrize("rule", ALL)
def test_learning_rate_wrong_type(rule):
    with pytest.raises(TypeError, match=r"config\['learning_rate'\] must be a real number"):
        rule(np.zeros(3), np.ones(3), {"learning_rate": "0.1"})


@pytest.mark.parametrize("rule", ALL)
def test_nonfinite_gradient(rule):
    with pytest.raises(ValueError, match="dw contains NaN or inf"):
        rule(np.zeros(3), np.array([0.0, np.nan, 1.0]))
    with pytest.raises(ValueError, match="w contains NaN or inf"):
        rule(np.array([np.inf, 0.0, 0.0]), np.zeros(3))


@pytest.mark.parametrize("rule", ALL)
def test_non_numeric(rule):
    with pytest.raises(TypeError, match="w must hold real floating-point numbers"):
        rule(np.array(["a", "b"]), np.zeros(2))
    with pytest.raises(TypeError, match="dw must hold real floating-point numbers"):
        rule(np.zeros(2), np.array([1 + 1j, 0j]))


@pytest.mark.parametrize("rule", ALL)
def test_config_must_be_dict(rule):
    with pytest.raises(TypeError, match="config must be a dict or None, got list"):
        rule(np.zeros(2), np.zeros(2), [0.1])


@pytest.mark.parametrize("rule, key", [(optim.sgd, "momentum"), (optim.sgd_momentum, "beta1"),
                                       (optim.rmsprop, "velocity"), (optim.adam, "decay_rate")])
def test_unknown_config_entry(rule, key):
    with pytest.raises(ValueError, match=rf"config has entries \['{key}'\] that {rule.__name__}"):
        rule(np.zeros(2), np.zeros(2), {key: 0.5})


@pytest.mark.parametrize(
    "rule, key, value",
    [(optim.sgd_momentum, "momentum", 1.0), (optim.sgd_momentum, "momentum", -0.1),
     (optim.rmsprop, "decay_rate", 1.0), (optim.rmsprop, "epsilon", 0.0),
     (optim.adam, "beta1", 1.0), (optim.adam, "beta2", 1.5), (optim.adam, "epsilon", -1e-8)],
)
def test_hyperparameter_ranges(rule, key, value):
    with pytest.raises(ValueError, match=rf"config\['{key}'\] must lie in"):
        rule(np.zeros(2), np.ones(2), {key: value})


@pytest.mark.parametrize("rule, key", [(optim.sgd_momentum, "velocity"), (optim.rmsprop, "cache"),
                                       (optim.adam, "m"), (optim.adam, "v")])
def test_state_shape_mismatch(rule, key):
    with pytest.raises(ValueError, match=rf"config\['{key}'\] must have the shape of w, \(2,\), got \(3,\)"):
        rule(np.zeros(2), np.ones(2), {key: np.zeros(3)})


@pytest.mark.parametrize("t", [-1, 1.5, True, "3"])
def test_adam_bad_counter(t):
    with pytest.raises((TypeError, ValueError), match=r"config\['t'\]"):
        optim.adam(np.zeros(2), np.ones(2), {"t": t})


def _adam_formula(w, dw, m, v, t, lr=1e-2, b1=0.9, b2=0.999, eps=1e-8):
    """Adam written out term by term, every operation a new array."""
    m = b1 * m + (1.0 - b1) * dw
    v = b2 * v + (1.0 - b2) * dw * dw
    return (w - lr * (m / (1.0 - b1 ** t)) / (np.sqrt(v / (1.0 - b2 ** t)) + eps)).astype(
        w.dtype, copy=False), m, v


def _rmsprop_formula(w, dw, cache, lr=1e-2, rho=0.99, eps=1e-8):
    cache = rho * cache + (1.0 - rho) * dw * dw
    return (w - lr * dw / (np.sqrt(cache) + eps)).astype(w.dtype, copy=False), cache


@pytest.mark.parametrize("w_dtype, dw_dtype, state_dtype", [
    (np.float32, np.float32, None), (np.float64, np.float64, None),
    (np.float32, np.float64, None), (np.float32, np.float32, np.float64),
    (np.float64, np.float64, np.int64)])
def test_updates_round_exactly_like_the_formulas(w_dtype, dw_dtype, state_dtype):
    """adam and rmsprop reuse their temporaries; over 20 steps they still give
    bit for bit what the formulas give with a new array per operation, in
    every mix of float32, float64 and integer state, and never write to the
    arrays passed in."""
    r = np.random.default_rng(0)
    w0 = r.standard_normal((6, 7)).astype(w_dtype)
    init = (lambda: None) if state_dtype is None else (
        lambda: (3 * r.random((6, 7))).astype(state_dtype))
    m0, v0, c0 = init(), init(), init()
    w0_copy = w0.copy()
    w_a = w_ref = w_r = w_rref = w0
    cfg_a = {"learning_rate": 1e-2} if m0 is None else {"learning_rate": 1e-2, "m": m0, "v": v0}
    cfg_r = {"learning_rate": 1e-2} if c0 is None else {"learning_rate": 1e-2, "cache": c0}
    if m0 is not None:
        m0_passed, c0_passed = m0.copy(), c0.copy()
    m = np.zeros_like(w0) if m0 is None else m0
    v = np.zeros_like(w0) if v0 is None else v0
    c = np.zeros_like(w0) if c0 is None else c0
    for t in range(1, 21):
        dw = r.standard_normal((6, 7)).astype(dw_dtype)
        w_a, cfg_a = optim.adam(w_a, dw, cfg_a)
        w_ref, m, v = _adam_formula(w_ref, dw, m, v, t)
        w_r, cfg_r = optim.rmsprop(w_r, dw, cfg_r)
        w_rref, c = _rmsprop_formula(w_rref, dw, c)
        assert w_a.dtype == w_ref.dtype == w_r.dtype == np.dtype(w_dtype)
        assert np.array_equal(w_a, w_ref) and np.array_equal(w_r, w_rref)
        for got, want in ((cfg_a["m"], m), (cfg_a["v"], v), (cfg_r["cache"], c)):
            assert got.dtype == want.dtype and np.array_equal(got, want)
    if m0 is not None:
        assert np.array_equal(m0, m0_passed) and np.array_equal(c0, c0_passed)
    assert np.array_equal(w0, w0_copy)


# ------------------------------------------------------------ check_config

def test_check_config_fills_defaults_without_modifying_its_argument():
    cfg = {"learning_rate": 0.5}
    out = optim.check_config("adam", cfg)
    assert cfg == {"learning_rate": 0.5}
    assert out == {"learning_rate": 0.5, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8, "t": 0}
    assert optim.check_config(optim.sgd) == {"learning_rate": 1e-2}
    assert optim.UPDATE_RULES == ("sgd", "sgd_momentum", "rmsprop", "adam")
    # the defaults are those a first step fills in (adam's counter then reads 1)
    for name in optim.UPDATE_RULES:
        _, filled = getattr(optim, name)(np.zeros(2), np.ones(2))
        hyper = {k: v for k, v in filled.items() if not isinstance(v, np.ndarray)}
        assert hyper == dict(optim.check_config(name), **({"t": 1} if name == "adam" else {}))


@pytest.mark.parametrize("rule, config, exc, pattern", [
    ("sgd", {"lr": 0.1}, ValueError, r"config has entries \['lr'\] that sgd does not use; "
                                     r"expected only \['learning_rate'\]"),
    ("sgd", {"learning_rate": -1.0}, ValueError,
     r"config\['learning_rate'\] must lie in \(0.0, inf\), got -1.0"),
    ("sgd", {"learning_rate": float("nan")}, ValueError,
     r"config\['learning_rate'\] must be finite"),
    ("sgd_momentum", {"learning_rate": "1e-3"}, TypeError,
     r"config\['learning_rate'\] must be a real number, got '1e-3'"),
    ("sgd_momentum", {"momentum": 1.0}, ValueError,
     r"config\['momentum'\] must lie in \[0.0, 1.0\)"),
    ("rmsprop", {"epsilon": 0.0}, ValueError, r"config\['epsilon'\] must lie in"),
    ("adam", {"beta2": 1.5}, ValueError, r"config\['beta2'\] must lie in"),
    ("adam", {"t": 1.5}, TypeError, r"config\['t'\] must be a non-negative integer step count"),
    ("adam", {"momentum": 0.9}, ValueError, r"config has entries \['momentum'\] that adam"),
    ("adam", [0.1], TypeError, "config must be a dict or None, got list"),
])
def test_check_config_raises_what_the_rule_raises(rule, config, exc, pattern):
    with pytest.raises(exc, match=pattern):
        optim.check_config(rule, config)
    with pytest.raises(exc, match=pattern):
        getattr(optim, rule)(np.zeros(2), np.ones(2), config)


@pytest.mark.parametrize("rule", ["adagrad", "check_config", None, np.mean, 3])
def test_check_config_unknown_rule(rule):
    with pytest.raises(ValueError, match=r"rule must be one of \['sgd', 'sgd_momentum', "
                                         r"'rmsprop', 'adam'\] or one of those functions"):
        optim.check_config(rule, {})
