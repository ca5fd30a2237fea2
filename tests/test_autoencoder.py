"""Tests of the NumPy sparse autoencoder (lab.autoencoder)."""
import math
import subprocess
import sys

import numpy as np
import pytest

from lab import autoencoder as ae
from lab import data
from lab.gradient_check import eval_numerical_gradient, norm_rel_error, rel_error

L_IN, L_HID, N = 8, 5, 10


def make_data(n=N, l_in=L_IN, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).uniform(0.1, 0.9, size=(n, l_in)).astype(dtype)


# --------------------------------------------------------------------------- #
# plain loop-based reference
# --------------------------------------------------------------------------- #

def _sig(z):
    return 1.0 / (1.0 + math.exp(-z))


def reference_terms(We, data, lam, beta, rho):
    """The three terms of J, one sample, one unit at a time."""
    W1, W2, b1, b2 = We
    n, l_in = data.shape
    l_hid = W1.shape[1]
    l_out = W2.shape[1]
    sq = 0.0
    rho_hat = [0.0] * l_hid
    for m in range(n):
        a = []
        for b in range(l_hid):
            z = b1[b] + sum(data[m, i] * W1[i, b] for i in range(l_in))
            a.append(_sig(z))
            rho_hat[b] += a[b] / n
        for c in range(l_out):
            z = b2[c] + sum(a[b] * W2[b, c] for b in range(l_hid))
            sq += (data[m, c] - _sig(z)) ** 2
    data_term = sq / (2 * n)
    decay = lam / 2 * (sum(w * w for w in W1.ravel()) + sum(w * w for w in W2.ravel()))
    kl = sum(rho * math.log(rho / q) + (1 - rho) * math.log((1 - rho) / (1 - q)) for q in rho_hat)
    return data_term, decay, beta * kl, rho_hat


# --------------------------------------------------------------------------- #
# init_weights, sigmoid, forward
# --------------------------------------------------------------------------- #

def test_init_weights_shapes_ranges_and_seed():
    W1, W2, b1, b2 = ae.init_weights(256, 64)
    assert W1.shape == (256, 64) and W2.shape == (64, 256)
    assert b1.shape == (64,) and b2.shape == (256,)
    w0 = math.sqrt(6 / (256 + 64))
    for w in (W1, W2, b1, b2):
        assert w.dtype == np.float64
        assert np.abs(w).max() <= w0
    # uniform on [-w0, w0]: the extremes come close to the bounds, the mean to 0
    assert np.abs(W1).max() > 0.99 * w0
    assert abs(W1.mean()) < 0.01
    assert np.isclose(W1.std(), w0 / math.sqrt(3), rtol=0.02)
    again = ae.init_weights(256, 64)
    assert all(np.array_equal(u, v) for u, v in zip((W1, W2, b1, b2), again))
    other = ae.init_weights(256, 64, seed=1)
    assert not np.array_equal(W1, other[0])


def test_init_weights_per_layer_bound_and_dtype():
    W1, W2, b1, b2 = ae.init_weights(10, 4, L_out=30, seed=3, dtype=np.float32)
    assert W2.shape == (4, 30) and b2.shape == (30,)
    assert all(w.dtype == np.float32 for w in (W1, W2, b1, b2))
    assert np.abs(W1).max() <= math.sqrt(6 / 14) and np.abs(b1).max() <= math.sqrt(6 / 14)
    assert np.abs(W2).max() <= math.sqrt(6 / 34) and np.abs(b2).max() <= math.sqrt(6 / 34)
    assert np.abs(W1).max() > math.sqrt(6 / 34)   # the first layer's bound is the wider one


@pytest.mark.parametrize("args, exc", [
    ((0, 5), ValueError), ((8, -1), ValueError), ((8.0, 5), TypeError),
    ((8, 5, 0), ValueError), ((8, 5, None, -1), ValueError),
])
def test_init_weights_bad_sizes(args, exc):
    with pytest.raises(exc):
        ae.init_weights(*args)


def test_init_weights_bad_dtype():
    with pytest.raises(TypeError, match="dtype"):
        ae.init_weights(8, 5, dtype=np.int64)


@pytest.mark.filterwarnings("error")
def test_sigmoid_values_and_extremes():
    z = np.array([-1e4, -800.0, -40.0, -1.0, 0.0, 1.0, 40.0, 800.0, 1e4])
    s = ae.sigmoid(z)
    expected = np.array([0.0, 0.0, math.exp(-40) / (1 + math.exp(-40)), 1 / (1 + math.e), 0.5,
                         1 / (1 + math.exp(-1)), 1 / (1 + math.exp(-40)), 1.0, 1.0])
    assert rel_error(s, expected) < 1e-15
    assert s[2] > 0  # small values keep their relative precision
    assert abs(s[2] / math.exp(-40) - 1) < 1e-14
    s32 = ae.sigmoid(z.astype(np.float32))
    assert s32.dtype == np.float32
    assert np.all(np.isfinite(s32)) and s32[0] == 0.0 and s32[-1] == 1.0


def test_forward_shapes_and_values():
    We = ae.init_weights(L_IN, L_HID, L_out=3, seed=1)
    x = make_data()
    hidden, out = ae.forward(We, x)
    assert hidden.shape == (N, L_HID) and out.shape == (N, 3)
    W1, W2, b1, b2 = We
    h_ref = 1 / (1 + np.exp(-(x @ W1 + b1)))
    o_ref = 1 / (1 + np.exp(-(h_ref @ W2 + b2)))
    assert rel_error(hidden, h_ref) < 1e-14
    assert rel_error(out, o_ref) < 1e-14
    assert rel_error(ae.reconstruct(We, x), o_ref) < 1e-14


def test_forward_bad_inputs():
    We = ae.init_weights(L_IN, L_HID)
    with pytest.raises(ValueError, match=r"data.*\(N, 8\).*\(10, 7\)"):
        ae.forward(We, make_data(l_in=7))
    bad = make_data()
    bad[2, 3] = np.nan
    with pytest.raises(ValueError, match="data contains NaN"):
        ae.forward(We, bad)
    with pytest.raises(ValueError, match="W2"):
        ae.forward((We[0], We[1][:4], We[2], We[3]), make_data())


# --------------------------------------------------------------------------- #
# ae_cost: value
# --------------------------------------------------------------------------- #

def test_cost_terms_match_loop_reference():
    x = make_data(n=7, seed=4)
    We = ae.init_weights(L_IN, L_HID, seed=2)
    lam, beta, rho = 0.03, 2.5, 0.2
    data_term, decay, sparse, rho_hat = reference_terms(We, x, lam, beta, rho)
    J_data, _ = ae.ae_cost(We, x, (L_IN, L_HID, 0.0, 0.0, rho))
    J_decay, _ = ae.ae_cost(We, x, (L_IN, L_HID, lam, 0.0, rho))
    J_sparse, _ = ae.ae_cost(We, x, (L_IN, L_HID, 0.0, beta, rho))
    J_all, _ = ae.ae_cost(We, x, ae.AEParams(L_IN, L_HID, lam, beta, rho))
    assert rel_error(J_data, data_term) < 1e-13
    assert rel_error(J_decay - J_data, decay) < 1e-12
    assert rel_error(J_sparse - J_data, sparse) < 1e-12
    assert rel_error(J_all, data_term + decay + sparse) < 1e-13
    hidden, _ = ae.forward(We, x)
    assert rel_error(hidden.mean(axis=0), np.array(rho_hat)) < 1e-14
    # all three terms matter here
    assert min(data_term, decay, sparse) > 1e-3


def test_cost_is_zero_sparsity_at_target_and_positive_elsewhere():
    x = make_data()
    We = ae.init_weights(L_IN, L_HID)
    rho_hat = ae.forward(We, x)[0].mean(axis=0)
    # with a KL target equal to a unit's actual mean, that unit adds nothing
    W1, W2, b1, b2 = We
    one = (W1[:, :1], W2[:1], b1[:1], b2)
    J0, _ = ae.ae_cost(one, x, (L_IN, 1, 0.0, 0.0, 0.5))
    J1, _ = ae.ae_cost(one, x, (L_IN, 1, 0.0, 10.0, float(rho_hat[0])))
    assert abs(J1 - J0) < 1e-14
    J2, _ = ae.ae_cost(one, x, (L_IN, 1, 0.0, 10.0, 0.05))
    assert J2 - J0 > 1e-3


# --------------------------------------------------------------------------- #
# ae_cost: gradient
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize("lam", [0.0, 0.01])
@pytest.mark.parametrize("beta", [0.0, 3.0])
def test_gradient_check(lam, beta):
    x = make_data()
    We = ae.init_weights(L_IN, L_HID, seed=1)
    params = (L_IN, L_HID, lam, beta, 0.1)
    theta = ae.pack(We)

    def f(t):
        return ae.ae_cost(ae.unpack(t, L_IN, L_HID), x, params)[0]

    num = eval_numerical_gradient(f, theta.copy(), h=1e-5)
    grad = ae.pack(ae.ae_cost(We, x, params)[1])
    assert norm_rel_error(num, grad) < 1e-9
    assert np.linalg.norm(grad) > 1e-3


def test_gradient_check_with_clipped_unit():
    # unit 0 is switched off (rho_hat ~ 1e-22 < eps): J does not depend on its
    # rho_hat through the clipped KL, and the gradient must agree with that
    x = make_data()
    W1, W2, b1, b2 = ae.init_weights(L_IN, L_HID, seed=1)
    b1 = b1.copy()
    b1[0] = -50.0
    We = (W1, W2, b1, b2)
    params = (L_IN, L_HID, 0.01, 3.0, 0.1)
    theta = ae.pack(We)

    def f(t):
        return ae.ae_cost(ae.unpack(t, L_IN, L_HID), x, params)[0]

    num = eval_numerical_gradient(f, theta.copy(), h=1e-5)
    J, dWe = ae.ae_cost(We, x, params)
    assert norm_rel_error(num, ae.pack(dWe)) < 1e-9
    eps = np.finfo(np.float64).eps
    kl_clipped = 0.1 * math.log(0.1 / eps) + 0.9 * math.log(0.9 / (1 - eps))
    J_without0, _ = ae.ae_cost((W1[:, 1:], W2[1:], b1[1:], b2), x, (L_IN, L_HID - 1, 0.01, 3.0, 0.1))
    # removing the dead unit removes its clipped KL term and its tiny decay/data parts
    decay0 = 0.005 * (np.sum(W1[:, 0] ** 2) + np.sum(W2[0] ** 2))
    assert abs(J - J_without0 - 3.0 * kl_clipped - decay0) < 1e-9


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_saturated_units_are_finite_without_warnings(dtype):
    x = make_data(n=50, dtype=dtype)
    W1, W2, b1, b2 = ae.init_weights(L_IN, L_HID, seed=0, dtype=dtype)
    # huge weights: every pre-activation is in the thousands, so all units are
    # saturated at exactly 0 or 1 and rho_hat hits 0 and 1
    W1 = (W1 * 1e4).astype(dtype)
    b1 = np.array([-1e4, 1e4, -2e3, 3e3, 0.0], dtype=dtype)
    W2 = (W2 * 1e4).astype(dtype)
    for We in ((W1, W2, b1, b2), (np.zeros_like(W1), W2, b1, b2)):
        rho_hat = ae.forward(We, x)[0].mean(axis=0)
        assert rho_hat.min() == 0.0 and rho_hat.max() == 1.0
        J, dWe = ae.ae_cost(We, x, (L_IN, L_HID, 1e-4, 3.0, 0.05))
        assert np.isfinite(J) and J > 0
        assert all(np.all(np.isfinite(g)) for g in dWe)
        assert all(g.dtype == dtype for g in dWe)


# --------------------------------------------------------------------------- #
# dtypes, batch sizes
# --------------------------------------------------------------------------- #

def test_float32_preserved_and_close_to_float64():
    x64 = make_data(n=40)
    We64 = ae.init_weights(L_IN, L_HID, seed=5)
    params = (L_IN, L_HID, 1e-3, 3.0, 0.1)
    J64, g64 = ae.ae_cost(We64, x64, params)
    We32 = tuple(w.astype(np.float32) for w in We64)
    J32, g32 = ae.ae_cost(We32, x64.astype(np.float32), params)
    assert isinstance(J32, np.float32) and isinstance(J64, np.float64)
    assert all(g.dtype == np.float32 for g in g32)
    assert all(g.dtype == np.float64 for g in g64)
    assert abs(J32 - J64) / J64 < 1e-5
    for a, b in zip(g32, g64):
        assert np.linalg.norm(a - b) / np.linalg.norm(b) < 1e-4
    # mixed inputs follow NumPy's promotion: float64
    Jm, gm = ae.ae_cost(We32, x64, params)
    assert all(g.dtype == np.float64 for g in gm)


def test_integer_data_becomes_float64():
    x = np.random.default_rng(0).integers(0, 2, size=(N, L_IN))
    We = ae.init_weights(L_IN, L_HID)
    J, dWe = ae.ae_cost(We, x, (L_IN, L_HID, 0.0, 0.0, 0.1))
    J_ref, _ = ae.ae_cost(We, x.astype(np.float64), (L_IN, L_HID, 0.0, 0.0, 0.1))
    assert J == J_ref and dWe[0].dtype == np.float64


def test_single_sample_and_split_batches():
    x = make_data(n=12)
    We = ae.init_weights(L_IN, L_HID)
    params = (L_IN, L_HID, 0.0, 0.0, 0.1)
    J1, g1 = ae.ae_cost(We, x[:1], params)
    assert np.isfinite(J1) and g1[0].shape == (L_IN, L_HID)
    # without sparsity the cost is a mean over samples, so halves average to the whole
    Ja, ga = ae.ae_cost(We, x[:6], params)
    Jb, gb = ae.ae_cost(We, x[6:], params)
    J, g = ae.ae_cost(We, x, params)
    assert rel_error((Ja + Jb) / 2, J) < 1e-14
    for a, b, c in zip(ga, gb, g):
        assert rel_error((a + b) / 2, c) < 1e-12


def test_inputs_not_modified():
    x = make_data()
    We = ae.init_weights(L_IN, L_HID)
    x0, We0 = x.copy(), tuple(w.copy() for w in We)
    ae.ae_cost(We, x, (L_IN, L_HID, 0.1, 3.0, 0.1))
    ae.forward(We, x)
    assert np.array_equal(x, x0) and all(np.array_equal(a, b) for a, b in zip(We, We0))


# --------------------------------------------------------------------------- #
# bad input
# --------------------------------------------------------------------------- #

GOOD = (L_IN, L_HID, 1e-3, 3.0, 0.1)


@pytest.mark.parametrize("params, exc, msg", [
    ((L_IN, L_HID, 1e-3, 3.0, 0.0), ValueError, r"rho must lie in \(0.0, 1.0\), got 0.0"),
    ((L_IN, L_HID, 1e-3, 3.0, 1.0), ValueError, "rho"),
    ((L_IN, L_HID, 1e-3, 3.0, 1.5), ValueError, "rho"),
    ((L_IN, L_HID, -1e-3, 3.0, 0.1), ValueError, "lambda"),
    ((L_IN, L_HID, 1e-3, -3.0, 0.1), ValueError, "beta"),
    ((L_IN, L_HID, float("nan"), 3.0, 0.1), ValueError, "lambda"),
    ((L_IN, L_HID, 1e-3, 3.0), ValueError, "5 entries"),
    ((L_IN, 5.5, 1e-3, 3.0, 0.1), TypeError, "L_hid"),
    ((L_IN, L_HID, "a", 3.0, 0.1), TypeError, "lambda"),
    ({"L_in": 8}, TypeError, "params"),
    (None, TypeError, "params"),
])
def test_bad_params(params, exc, msg):
    with pytest.raises(exc, match=msg):
        ae.ae_cost(ae.init_weights(L_IN, L_HID), make_data(), params)


@pytest.mark.filterwarnings("error")
def test_bad_data():
    We = ae.init_weights(L_IN, L_HID)
    with pytest.raises(ValueError, match=r"data must have shape \(N, 8\).*\(10, 9\)"):
        ae.ae_cost(We, make_data(l_in=9), GOOD)
    with pytest.raises(ValueError, match="data must have 2 dimensions"):
        ae.ae_cost(We, make_data()[0], GOOD)
    with pytest.raises(ValueError, match="at least one sample"):
        ae.ae_cost(We, np.zeros((0, L_IN)), GOOD)
    with pytest.raises(TypeError, match="data"):
        ae.ae_cost(We, make_data() > 0.5, GOOD)
    for bad_value in (np.nan, np.inf, -np.inf):
        x = make_data()
        x[3, 1] = bad_value
        with pytest.raises(ValueError, match="data contains NaN or inf"):
            ae.ae_cost(We, x, GOOD)


def test_bad_weights():
    W1, W2, b1, b2 = ae.init_weights(L_IN, L_HID)
    x = make_data()
    with pytest.raises(ValueError, match=r"W1 must have shape \(8, 5\).*got \(8, 4\)"):
        ae.ae_cost((W1[:, :4], W2, b1, b2), x, GOOD)
    with pytest.raises(ValueError, match=r"W2 must have shape \(5, 8\)"):
        ae.ae_cost((W1, W2.T, b1, b2), x, GOOD)
    with pytest.raises(ValueError, match=r"b1 must have shape \(5,\)"):
        ae.ae_cost((W1, W2, b1[:3], b2), x, GOOD)
    with pytest.raises(ValueError, match="b2 must have 1 dimension"):
        ae.ae_cost((W1, W2, b1, b2[None]), x, GOOD)
    with pytest.raises(ValueError, match="W1 must have shape"):
        ae.ae_cost((W1, W2, b1, b2), x, (L_IN, 6, 0.0, 0.0, 0.1))
    with pytest.raises(ValueError, match="4 entries"):
        ae.ae_cost((W1, W2, b1), x, GOOD)
    with pytest.raises(TypeError, match="We must be a tuple"):
        ae.ae_cost(ae.pack((W1, W2, b1, b2)), x, GOOD)
    bad = W2.copy()
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match="W2 contains NaN"):
        ae.ae_cost((W1, bad, b1, b2), x, GOOD)
    bad = b1.copy()
    bad[0] = np.inf
    with pytest.raises(ValueError, match="b1 contains NaN or inf"):
        ae.ae_cost((W1, W2, bad, b2), x, (L_IN, L_HID, 0.0, 0.0, 0.1))


def test_overflowing_cost_is_reported():
    W1, W2, b1, b2 = ae.init_weights(L_IN, L_HID)
    with pytest.raises(ValueError, match="overflowed"):
        ae.ae_cost((W1 * 1e160, W2, b1, b2), make_data(), (L_IN, L_HID, 1.0, 0.0, 0.1))


# --------------------------------------------------------------------------- #
# pack / unpack
# --------------------------------------------------------------------------- #

def test_pack_unpack_round_trip():
    We = ae.init_weights(6, 3, L_out=4, seed=2)
    theta = ae.pack(We)
    assert theta.shape == (6 * 3 + 3 * 4 + 3 + 4,)
    back = ae.unpack(theta, 6, 3, 4)
    assert all(np.array_equal(a, b) for a, b in zip(We, back))
    assert all(np.shares_memory(b, theta) for b in back)
    assert np.array_equal(theta[:18], We[0].ravel())
    with pytest.raises(ValueError, match=r"theta must have shape \(37,\)"):
        ae.unpack(theta[:-1], 6, 3, 4)
    with pytest.raises(TypeError, match="theta"):
        ae.unpack(np.arange(37), 6, 3, 4)


# --------------------------------------------------------------------------- #
# trainers
# --------------------------------------------------------------------------- #

PARAMS = (16, 6, 1e-4, 3.0, 0.1)


@pytest.fixture(scope="module")
def train_data():
    return make_data(n=120, l_in=16, seed=7)


def test_train_gd_decreases_and_matches_manual_steps(train_data):
    We = ae.init_weights(16, 6, seed=0)
    We0 = tuple(w.copy() for w in We)
    We_out, hist = ae.train_gd(We, train_data, PARAMS, lr=0.5, num_iters=200)
    assert hist.shape == (200,)
    assert hist[-1] < 0.7 * hist[0]
    assert np.all(np.diff(hist) < 1e-12)              # small steps: monotone
    assert all(np.array_equal(a, b) for a, b in zip(We, We0))   # input untouched
    # the history is J before each step; the final weights are 200 steps on
    W = We0
    for i in range(3):
        J, g = ae.ae_cost(W, train_data, PARAMS)
        assert J == hist[i]
        W = tuple(w - 0.5 * gw for w, gw in zip(W, g))
    J_end, _ = ae.ae_cost(We_out, train_data, PARAMS)
    assert J_end < hist[-1]


def test_train_lbfgs_beats_gd(train_data):
    We = ae.init_weights(16, 6, seed=0)
    We_out, hist = ae.train_lbfgs(We, train_data, PARAMS, maxiter=100)
    assert 2 <= len(hist) <= 101
    J0, _ = ae.ae_cost(We, train_data, PARAMS)
    J_end, g_end = ae.ae_cost(We_out, train_data, PARAMS)
    assert hist[0] == J0
    assert rel_error(hist[-1], J_end) < 1e-12
    assert np.all(np.diff(hist) <= 1e-12)
    _, hist_gd = ae.train_gd(We, train_data, PARAMS, lr=0.5, num_iters=100)
    assert J_end < 0.8 * hist_gd[-1]
    assert np.linalg.norm(ae.pack(g_end)) < 0.1 * np.linalg.norm(ae.pack(ae.ae_cost(We, train_data, PARAMS)[1]))
    We32 = tuple(w.astype(np.float32) for w in We)
    out32, _, res = ae.train_lbfgs(We32, train_data.astype(np.float32), PARAMS, maxiter=5,
                                   return_result=True)
    assert all(w.dtype == np.float32 for w in out32)
    assert res.nit <= 5


def test_train_adam_full_and_minibatch(train_data):
    We = ae.init_weights(16, 6, seed=0)
    _, hist = ae.train_adam(We, train_data, PARAMS, lr=0.02, num_iters=150)
    assert hist.shape == (150,) and hist[-1] < 0.5 * hist[0]
    We_mb, hist_mb = ae.train_adam(We, train_data, PARAMS, lr=0.02, num_iters=150,
                                   batch_size=32, seed=1)
    J_end, _ = ae.ae_cost(We_mb, train_data, PARAMS)
    assert J_end < 0.5 * hist[0]
    again = ae.train_adam(We, train_data, PARAMS, lr=0.02, num_iters=150, batch_size=32, seed=1)
    assert np.array_equal(hist_mb, again[1])
    other = ae.train_adam(We, train_data, PARAMS, lr=0.02, num_iters=150, batch_size=32, seed=2)
    assert not np.array_equal(hist_mb, other[1])


def test_train_adam_first_step_is_sign_step(train_data):
    # Adam's first update is lr * g / (|g| + eps) elementwise
    We = ae.init_weights(16, 6, seed=0)
    We1, _ = ae.train_adam(We, train_data, PARAMS, lr=1e-3, num_iters=1, eps=1e-12)
    _, g = ae.ae_cost(We, train_data, PARAMS)
    for w, w1, gw in zip(We, We1, g):
        assert rel_error(w - w1, 1e-3 * gw / (np.abs(gw) + 1e-12)) < 1e-9


@pytest.mark.parametrize("name", ["train_gd", "train_adam", "train_lbfgs"])
def test_trainers_verbose_show_a_progress_bar(train_data, capsys, name):
    """verbose=True: a lab.progress bar on stderr with J; otherwise silence."""
    We = ae.init_weights(16, 6)
    kwargs = dict(maxiter=3) if name == "train_lbfgs" else dict(num_iters=3)
    if name == "train_gd":
        kwargs["lr"] = 0.1
    trainer = getattr(ae, name)
    _, hist = trainer(We, train_data, PARAMS, verbose=True, **kwargs)
    out = capsys.readouterr()
    assert out.out == "" and name in out.err and f"J={hist[-1]:.4g}" in out.err
    trainer(We, train_data, PARAMS, **kwargs)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_trainers_step_with_lab_optim(train_data):
    """train_gd and train_adam are loops over lab.optim.sgd / lab.optim.adam."""
    from lab import optim

    We = ae.init_weights(16, 6)
    for name, rule, kwargs, config in [
            ("train_gd", optim.sgd, dict(lr=0.1), {"learning_rate": 0.1}),
            ("train_adam", optim.adam, dict(lr=0.01, batch_size=20, seed=3),
             {"learning_rate": 0.01, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8})]:
        got, _ = getattr(ae, name)(We, train_data, PARAMS, num_iters=4, **kwargs)
        W = list(We)
        configs = [dict(config) for _ in W]
        batches = data.minibatch_indices(len(train_data), 20, 3)
        for _ in range(4):
            xb = train_data if name == "train_gd" else train_data[next(batches)]
            _, grads = ae.ae_cost(tuple(W), xb, PARAMS)
            for k, g in enumerate(grads):
                W[k], configs[k] = rule(W[k], g, configs[k])
        assert all(np.array_equal(a, b) for a, b in zip(got, W)), name


@pytest.mark.parametrize("kwargs, exc, msg", [
    (dict(lr=0.0), ValueError, "lr"),
    (dict(lr=-1.0), ValueError, "lr"),
    (dict(num_iters=-1), ValueError, "num_iters"),
    (dict(num_iters=2.5), TypeError, "num_iters"),
])
def test_train_gd_bad_args(train_data, kwargs, exc, msg):
    args = dict(lr=0.1, num_iters=2)
    args.update(kwargs)
    with pytest.raises(exc, match=msg):
        ae.train_gd(ae.init_weights(16, 6), train_data, PARAMS, **args)


def test_trainers_bad_args(train_data):
    We = ae.init_weights(16, 6)
    with pytest.raises(ValueError, match="batch_size must be at most N=120"):
        ae.train_adam(We, train_data, PARAMS, batch_size=500)
    with pytest.raises(ValueError, match="maxiter"):
        ae.train_lbfgs(We, train_data, PARAMS, maxiter=0)
    bad = train_data.copy()
    bad[0, 0] = np.nan
    for trainer in (ae.train_gd, ae.train_lbfgs, ae.train_adam):
        with pytest.raises(ValueError, match="data contains NaN"):
            trainer(We, bad, PARAMS, **({"lr": 0.1, "num_iters": 2} if trainer is ae.train_gd else {}))


def test_import_lab_stays_light():
    code = ("import sys, lab, lab.autoencoder, lab.gradient_check; "
            "bad = [m for m in ('torch', 'tensorflow', 'keras') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_blocked_output_layer_matches_single_block(monkeypatch):
    # the output layer runs in blocks of rows; blocks of 3 rows (the last one
    # short) must give the same cost and gradient as one block
    x = make_data(n=10)
    We = ae.init_weights(L_IN, L_HID, seed=2)
    params = (L_IN, L_HID, 0.01, 3.0, 0.1)
    J_one, g_one = ae.ae_cost(We, x, params)
    monkeypatch.setattr(ae, "_BLOCK_NUMBERS", 3 * L_IN)
    J_blk, g_blk = ae.ae_cost(We, x, params)
    assert rel_error(J_blk, J_one) < 1e-14
    for a, b in zip(g_blk, g_one):
        assert rel_error(a, b) < 1e-12
    theta = ae.pack(We)
    num = eval_numerical_gradient(lambda t: ae.ae_cost(ae.unpack(t, L_IN, L_HID), x, params)[0],
                                  theta.copy(), h=1e-5)
    assert norm_rel_error(num, ae.pack(g_blk)) < 1e-9


def test_cost_terms_sum_to_J_and_match_a_direct_computation():
    rng = np.random.default_rng(5)
    x = rng.uniform(0.1, 0.9, size=(40, 12))
    We = ae.init_weights(12, 6, seed=2)
    p = ae.AEParams(12, 6, 3e-3, 0.7, 0.1)
    terms = ae.cost_terms(We, x, p)
    J = ae.ae_cost(We, x, p)[0]
    assert abs(terms.total - J) <= 1e-12 * abs(J)
    W1, W2, b1, b2 = We
    a = 1 / (1 + np.exp(-(x @ W1 + b1)))
    o = 1 / (1 + np.exp(-(a @ W2 + b2)))
    rh = a.mean(axis=0)
    kl = 0.1 * np.log(0.1 / rh) + 0.9 * np.log(0.9 / (1 - rh))
    assert terms.reconstruction == pytest.approx(0.5 * np.sum((x - o) ** 2) / 40, rel=1e-12)
    assert terms.weight_decay == pytest.approx(1.5e-3 * (np.sum(W1 ** 2) + np.sum(W2 ** 2)), rel=1e-12)
    assert terms.sparsity == pytest.approx(0.7 * np.sum(kl), rel=1e-12)
    assert ae.reconstruction_error(We, x) == pytest.approx(terms.reconstruction, rel=1e-12)
    no_reg = ae.cost_terms(We, x, ae.AEParams(12, 6, 0.0, 0.0, 0.1))
    assert no_reg.weight_decay == 0.0 and no_reg.sparsity == 0.0


def test_cost_terms_bad_input():
    We = ae.init_weights(12, 6, seed=2)
    with pytest.raises(ValueError, match="data"):
        ae.cost_terms(We, np.zeros((4, 11)), (12, 6, 0.0, 0.0, 0.1))
    with pytest.raises(ValueError, match="NaN"):
        ae.reconstruction_error(We, np.full((4, 12), np.nan))


# --------------------------------------------------------------------------- #
# data outside [0, 1]
# --------------------------------------------------------------------------- #

def _call(fn, We, x):
    """Call one of the functions that compare the outputs with the data."""
    if fn is ae.reconstruction_error:
        return fn(We, x)
    if fn is ae.train_gd:
        return fn(We, x, PARAMS, lr=0.1, num_iters=2)
    if fn in (ae.train_lbfgs, ae.train_adam):
        return fn(We, x, PARAMS, **({"maxiter": 2} if fn is ae.train_lbfgs else {"num_iters": 2}))
    return fn(We, x, PARAMS)


DATA_CHECKED = [ae.ae_cost, ae.cost_terms, ae.reconstruction_error,
                ae.train_gd, ae.train_lbfgs, ae.train_adam]


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("fn", DATA_CHECKED, ids=lambda f: f.__name__)
@pytest.mark.parametrize("transform, lo, hi", [
    (lambda x: np.round(255 * x), r"2\d", r"2\d\d"),     # 8-bit pixels, not scaled
    (lambda x: x - 0.5, r"-0.\d+", r"0.\d+"),            # centred data
    (lambda x: x + 0.2, r"0.\d+", r"1.\d+"),             # just above 1
], ids=["0..255", "centred", "above-1"])
def test_data_outside_unit_interval_is_refused(fn, transform, lo, hi, train_data):
    x = transform(train_data)
    We = ae.init_weights(16, 6)
    with pytest.raises(ValueError, match=rf"data must lie in the range \[0, 1\] .*got values "
                                         rf"from {lo} to {hi}; .*divide 8-bit pixels by 255, "
                                         r"or use lab.data.preprocess_patches"):
        _call(fn, We, x)


@pytest.mark.parametrize("fn", DATA_CHECKED, ids=lambda f: f.__name__)
def test_data_at_the_ends_of_the_unit_interval_is_accepted(fn, train_data):
    x = train_data.copy()
    x[0, 0], x[1, 1] = 0.0, 1.0
    _call(fn, ae.init_weights(16, 6), x)
    _call(fn, ae.init_weights(16, 6), x.astype(np.float32))


def test_range_check_runs_once_per_trainer_call(train_data, monkeypatch):
    calls = []
    real = ae._check_data_range
    monkeypatch.setattr(ae, "_check_data_range", lambda x, *a: calls.append(x.shape) or real(x, *a))
    We = ae.init_weights(16, 6)
    ae.train_gd(We, train_data, PARAMS, lr=0.1, num_iters=5)
    ae.train_adam(We, train_data, PARAMS, num_iters=5, batch_size=16)
    ae.train_lbfgs(We, train_data, PARAMS, maxiter=5)
    assert calls == [train_data.shape] * 3


# --------------------------------------------------------------------------- #
# seeds: fixed by default, fresh with seed=None
# --------------------------------------------------------------------------- #

def test_init_weights_default_seed_is_fixed_and_ignores_np_random_seed():
    np.random.seed(231)
    a = ae.init_weights(L_IN, L_HID)
    np.random.seed(1)
    b = ae.init_weights(L_IN, L_HID)
    for u, v, w in zip(a, b, ae.init_weights(L_IN, L_HID, seed=0)):
        np.testing.assert_array_equal(u, v)
        np.testing.assert_array_equal(u, w)


def test_init_weights_seed_none_is_fresh():
    np.random.seed(231)
    a = ae.init_weights(L_IN, L_HID, seed=None)
    np.random.seed(231)
    b = ae.init_weights(L_IN, L_HID, seed=None)
    assert not np.array_equal(a[0], b[0])
    with pytest.raises(ValueError, match="seed must be a non-negative integer, got -1"):
        ae.init_weights(L_IN, L_HID, seed=-1)


def test_train_adam_seed_none_draws_fresh_minibatches(train_data):
    We = ae.init_weights(16, 6)
    a = ae.train_adam(We, train_data, PARAMS, num_iters=8, batch_size=16)[1]
    b = ae.train_adam(We, train_data, PARAMS, num_iters=8, batch_size=16, seed=0)[1]
    np.testing.assert_array_equal(a, b)
    c = ae.train_adam(We, train_data, PARAMS, num_iters=8, batch_size=16, seed=None)[1]
    d = ae.train_adam(We, train_data, PARAMS, num_iters=8, batch_size=16, seed=None)[1]
    assert not np.array_equal(c, d)


# --------------------------------------------------------------------------- #
# the blocked, in-place ae_cost against the plain reference version
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize("n, l_in, l_hid, lam, beta", [
    (1, 3, 2, 0.0, 0.0),
    (10, 8, 5, 1e-3, 0.5),
    (50, 64, 16, 1e-2, 3.0),
    (37, 20, 40, 0.0, 0.1),          # more hidden units than inputs
    (600, 256, 25, 5e-4, 0.01),      # N * L_out > 2**17: several output blocks
])
def test_ae_cost_equals_reference(n, l_in, l_hid, lam, beta):
    x = make_data(n, l_in, seed=n)
    We = ae.init_weights(l_in, l_hid, seed=l_hid)
    p = (l_in, l_hid, lam, beta, 0.05)
    J, grads = ae.ae_cost(We, x, p)
    J_ref, grads_ref = ae.ae_cost_reference(We, x, p)
    assert J.dtype == J_ref.dtype == np.float64
    assert rel_error(J, J_ref) < 1e-12
    for g, g_ref in zip(grads, grads_ref):
        assert g.shape == g_ref.shape and g.dtype == g_ref.dtype == np.float64
        assert norm_rel_error(g, g_ref) < 1e-12
        assert rel_error(g, g_ref) < 1e-9            # elementwise, near-zero entries included


def test_ae_cost_reference_clips_like_ae_cost():
    # a unit driven to zero activity: rho_hat clipped, no sparsity gradient for it
    x = make_data()
    W1, W2, b1, b2 = ae.init_weights(L_IN, L_HID, seed=2)
    b1 = b1.copy()
    b1[0] = -800.0
    We = (W1, W2, b1, b2)
    p = (L_IN, L_HID, 1e-3, 0.5, 0.05)
    J, grads = ae.ae_cost(We, x, p)
    J_ref, grads_ref = ae.ae_cost_reference(We, x, p)
    assert np.isfinite(J_ref) and rel_error(J, J_ref) < 1e-12
    for g, g_ref in zip(grads, grads_ref):
        assert norm_rel_error(g, g_ref) < 1e-12
