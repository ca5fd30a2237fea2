"""The sparse autoencoder in NumPy (hand-derived gradient), PyTorch (autograd)
and Keras/TensorFlow (GradientTape) agree: same cost, same gradient, same
training curve, from the same initial weights, in float64."""
import logging

import numpy as np
import pytest

from lab import autoencoder as ae
from lab.gradient_check import rel_error
from lab.tf import autoencoder as tfa
from lab.torch import autoencoder as tha

import tensorflow as tf  # noqa: E402  (after lab.tf, which quiets its logging)
import torch  # noqa: E402

L_IN, L_HID, N = 64, 16, 200
LAM, BETA, RHO = 1e-3, 3.0, 0.1


def make_data(n, l_in, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).uniform(0.1, 0.9, size=(n, l_in)).astype(dtype)


@pytest.fixture(scope="module", autouse=True)
def torch_single_thread():
    # these problems are far too small to gain from intra-op threads, and
    # OpenMP threads slow to a crawl on a busy machine; restore afterwards
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data():
    return make_data(N, L_IN)


@pytest.fixture(scope="module")
def keras_model():
    return tfa.build_model(L_IN, L_HID, LAM, BETA, RHO, dtype="float64")


def three_costs(We, x, lam, beta, rho, keras_model=None):
    """(J, dWe) from NumPy, PyTorch and Keras, all starting from We."""
    l_in, l_hid = We[0].shape
    np_res = ae.ae_cost(We, x, (l_in, l_hid, lam, beta, rho))
    tm = tha.SparseAutoencoder.from_numpy(We, lam, beta, rho)
    torch_res = tha.cost_and_grad(tm, x)
    km = keras_model if keras_model is not None else tfa.build_model(l_in, l_hid, lam, beta, rho)
    tfa.set_weights(km, We)
    tf_res = tfa.cost_and_grad(km, x)
    return np_res, torch_res, tf_res


def assert_agree(results, tol=1e-10):
    (J0, g0), *others = results
    for J, g in others:
        assert rel_error(J, J0) < tol
        assert len(g) == 4
        for a, b in zip(g, g0):
            assert a.shape == b.shape and a.dtype == b.dtype == np.float64
            assert rel_error(a, b) < tol


def test_backends_agree_on_cost_and_gradient(data, keras_model):
    We = ae.init_weights(L_IN, L_HID, seed=3)
    results = three_costs(We, data, LAM, BETA, RHO, keras_model)
    assert_agree(results)
    # every term is active and the gradient is far from zero
    assert results[0][0] > 1.0 and np.linalg.norm(ae.pack(results[0][1])) > 1e-2


@pytest.mark.parametrize("lam, beta", [(0.0, 0.0), (0.01, 0.0), (0.0, 3.0)])
def test_backends_agree_term_by_term(data, lam, beta):
    We = ae.init_weights(L_IN, L_HID, seed=4)
    assert_agree(three_costs(We, data, lam, beta, 0.05))


def test_backends_agree_full_size():
    x = make_data(500, 256, seed=1)
    We = ae.init_weights(256, 64, seed=0)
    assert_agree(three_costs(We, x, 1e-4, 3.0, 0.01))


def test_gradient_descent_curves_agree(data, keras_model):
    We = ae.init_weights(L_IN, L_HID, seed=5)
    lr, steps = 0.2, 100
    We_np, hist_np = ae.train_gd(We, data, (L_IN, L_HID, LAM, BETA, RHO), lr, steps)
    tm = tha.SparseAutoencoder.from_numpy(We, LAM, BETA, RHO)
    hist_torch = tha.train_gd(tm, data, lr, steps)
    tfa.set_weights(keras_model, We)
    hist_tf = tfa.train_gd(keras_model, data, lr, steps)
    assert hist_np.shape == hist_torch.shape == hist_tf.shape == (steps,)
    assert hist_np[-1] < 0.5 * hist_np[0]          # it really trained,
    assert np.all(np.diff(hist_np) < 0)             # smoothly
    assert rel_error(hist_torch, hist_np) < 1e-8
    assert rel_error(hist_tf, hist_np) < 1e-8
    for a, b, c in zip(We_np, tm.to_numpy(), tfa.get_weights(keras_model)):
        assert rel_error(a, b) < 1e-8 and rel_error(a, c) < 1e-8


@pytest.mark.parametrize("batch_size", [None, 50])
def test_adam_numpy_matches_torch(data, batch_size):
    We = ae.init_weights(L_IN, L_HID, seed=6)
    params = (L_IN, L_HID, LAM, BETA, RHO)
    We_np, hist_np = ae.train_adam(We, data, params, lr=0.01, num_iters=40,
                                   batch_size=batch_size, seed=2)
    tm = tha.SparseAutoencoder.from_numpy(We, LAM, BETA, RHO)
    hist_torch = tha.train_adam(tm, data, lr=0.01, num_iters=40, batch_size=batch_size, seed=2)
    assert hist_np[-1] < 0.8 * hist_np[0]
    assert rel_error(hist_torch, hist_np) < 1e-8
    for a, b in zip(We_np, tm.to_numpy()):
        assert rel_error(a, b) < 1e-7


def test_keras_total_loss_is_J(data, keras_model):
    We = ae.init_weights(L_IN, L_HID, seed=7)
    J_np, _ = ae.ae_cost(We, data, (L_IN, L_HID, LAM, BETA, RHO))
    tfa.set_weights(keras_model, We)
    x = tf.constant(data)
    y = keras_model(x, training=True)
    assert y.dtype == tf.float64
    assert [w.dtype for w in keras_model.trainable_weights] == ["float64"] * 4
    # data term (Keras loss reduction) + model.losses = J
    data_term = tfa.HalfSquaredError(dtype="float64")(x, y)
    extra = [float(v) for v in keras_model.losses]
    assert len(extra) == 3                          # sparsity + two kernel L2 terms
    assert rel_error(float(data_term) + sum(extra), J_np) < 1e-12
    assert rel_error(float(keras_model.compute_loss(x=x, y=x, y_pred=y)), J_np) < 1e-12
    # Keras's own evaluate loop reports it too (its running mean is float32)
    reported = keras_model.evaluate(data, data, batch_size=N, verbose=0)
    assert abs(reported - J_np) / J_np < 1e-6
    # the pieces separately
    J_data, _ = ae.ae_cost(We, data, (L_IN, L_HID, 0.0, 0.0, RHO))
    assert rel_error(float(data_term), J_data) < 1e-12


def test_keras_fit_is_gradient_descent(data):
    # model.fit with plain SGD on one full batch per epoch is the same descent
    # (Keras keeps the learning rate as float32, hence the looser tolerance)
    We = ae.init_weights(L_IN, L_HID, seed=8)
    model = tfa.build_model(L_IN, L_HID, LAM, BETA, RHO)
    tfa.set_weights(model, We)
    model.optimizer.learning_rate = 0.2
    fit = model.fit(data, data, batch_size=N, epochs=5, shuffle=False, verbose=0)
    _, hist_np = ae.train_gd(We, data, (L_IN, L_HID, LAM, BETA, RHO), 0.2, 5)
    assert rel_error(np.array(fit.history["loss"]), hist_np) < 1e-5


def test_float32_backends_agree_loosely():
    x = make_data(N, L_IN, dtype=np.float32)
    We = ae.init_weights(L_IN, L_HID, seed=9, dtype=np.float32)
    J_np, g_np = ae.ae_cost(We, x, (L_IN, L_HID, LAM, BETA, RHO))
    tm = tha.SparseAutoencoder.from_numpy(We, LAM, BETA, RHO)
    assert tm.dtype == torch.float32
    J_t, g_t = tha.cost_and_grad(tm, x)
    km = tfa.build_model(L_IN, L_HID, LAM, BETA, RHO, dtype="float32")
    tfa.set_weights(km, We)
    J_k, g_k = tfa.cost_and_grad(km, x)
    for J, g in ((J_t, g_t), (J_k, g_k)):
        assert abs(J - J_np) / J_np < 1e-5
        for a, b in zip(g, g_np):
            assert a.dtype == np.float32
            assert np.linalg.norm(a - b) / np.linalg.norm(b) < 1e-4


def test_weights_round_trip(keras_model):
    We = ae.init_weights(L_IN, L_HID, seed=10)
    tm = tha.SparseAutoencoder(L_IN, L_HID, LAM, BETA, RHO)
    assert tm.from_numpy(We) is tm                 # loads into an existing model
    for a, b in zip(We, tm.to_numpy()):
        assert np.array_equal(a, b)
    assert tuple(tm.encoder.weight.shape) == (L_HID, L_IN)
    for a, b in zip(We, tha.get_weights(tha.set_weights(tm, We))):
        assert np.array_equal(a, b)
    tfa.set_weights(keras_model, We)
    for a, b in zip(We, tfa.get_weights(keras_model)):
        assert np.array_equal(a, b)
    # default initial weights are init_weights(seed) in every backend
    ref = ae.init_weights(L_IN, L_HID, seed=0)
    for a, b in zip(ref, tha.SparseAutoencoder(L_IN, L_HID, LAM, BETA, RHO).to_numpy()):
        assert np.array_equal(a, b)


def test_torch_bad_inputs():
    tm = tha.SparseAutoencoder(L_IN, L_HID, LAM, BETA, RHO)
    with pytest.raises(ValueError, match=r"data must have shape \(N, 64\)"):
        tm.cost(make_data(10, 63))
    with pytest.raises(ValueError, match=r"data must have shape \(N, 64\)"):
        tm.cost(torch.zeros(10, 63, dtype=torch.float64))
    bad = make_data(10, L_IN)
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="data contains NaN"):
        tm.cost(bad)
    with pytest.raises(ValueError, match="data contains NaN"):
        tm.cost(torch.from_numpy(bad))
    with pytest.raises(ValueError, match="data contains NaN"):
        tha.train_gd(tm, bad, 0.1, 2)
    with pytest.raises(ValueError, match="rho"):
        tha.SparseAutoencoder(L_IN, L_HID, LAM, BETA, 1.0)
    with pytest.raises(ValueError, match="W1 must have shape"):
        tm.load_numpy(ae.init_weights(L_IN, 8))
    with pytest.raises(ValueError, match="lr"):
        tha.train_gd(tm, make_data(10, L_IN), -0.1, 2)
    with pytest.raises(TypeError, match="SparseAutoencoder"):
        tha.cost_and_grad(object(), make_data(10, L_IN))


def test_keras_bad_inputs(keras_model):
    with pytest.raises(ValueError, match=r"data must have shape \(N, 64\)"):
        tfa.cost_and_grad(keras_model, make_data(10, 63))
    bad = make_data(10, L_IN)
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="data contains NaN or inf"):
        tfa.cost_and_grad(keras_model, bad)
    with pytest.raises(ValueError, match="beta"):
        tfa.build_model(L_IN, L_HID, LAM, -1.0, RHO)
    with pytest.raises(TypeError, match="dtype"):
        tfa.build_model(L_IN, L_HID, LAM, BETA, RHO, dtype="int32")
    with pytest.raises(ValueError, match=r"W2 must have shape \(16, 64\)"):
        tfa.set_weights(keras_model, ae.init_weights(L_IN, L_HID, L_out=10))


def test_keras_models_in_a_sweep_trace_quietly():
    # one compiled function per model: a sweep over several models is normal
    # use, not the "excessive retracing" TensorFlow would otherwise report
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    handler = Keep(level=logging.WARNING)
    tf_logger = logging.getLogger("tensorflow")
    tf_logger.addHandler(handler)
    try:
        x = make_data(20, 6)
        costs = []
        for beta in (0.0, 0.5, 1.0, 1.5, 2.0, 2.5):   # TensorFlow warns from the 5th
            model = tfa.build_model(6, 3, 0.0, beta, RHO)
            costs.append(tfa.cost_and_grad(model, x)[0])
    finally:
        tf_logger.removeHandler(handler)
    assert np.all(np.diff(costs) > 0)               # the KL term grows with beta
    assert not [r for r in records if "retracing" in r], records


def test_bench_runs_and_backends_agree(monkeypatch):
    import importlib.util
    from pathlib import Path

    bench_dir = Path(__file__).resolve().parents[1] / "bench"
    monkeypatch.syspath_prepend(str(bench_dir))   # as when the script runs: its helpers beside it
    path = bench_dir / "bench_autoencoder.py"
    spec = importlib.util.spec_from_file_location("bench_autoencoder", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rows = bench.run(repeats=1, n=64, l_in=16, l_hid=4)
    assert [(r["dtype"], r["backend"]) for r in rows] == [
        (dt, b) for dt in ("float32", "float64") for b in bench.BACKENDS]
    assert all(r["ms"] > 0 for r in rows)
    for dt, tol in (("float32", 1e-5), ("float64", 1e-12)):
        costs = [r["J"] for r in rows if r["dtype"] == dt]
        assert max(costs) - min(costs) < tol * costs[0]
        assert [r["vs_numpy"] for r in rows if r["dtype"] == dt][0] == 1.0
    table = bench.format_table(rows)
    assert len(table.splitlines()) == 2 + len(rows)


# --------------------------------------------------------------------------- #
# data outside [0, 1]; seeds
# --------------------------------------------------------------------------- #

def _torch_model():
    return tha.SparseAutoencoder(L_IN, L_HID, LAM, BETA, RHO)


ENTRY_POINTS = {
    "torch cost": lambda x: _torch_model().cost(x),
    "torch cost (tensor)": lambda x: _torch_model().cost(torch.from_numpy(x)),
    "torch cost_and_grad": lambda x: tha.cost_and_grad(_torch_model(), x),
    "torch train_gd": lambda x: tha.train_gd(_torch_model(), x, 0.1, 2),
    "torch train_adam": lambda x: tha.train_adam(_torch_model(), x, num_iters=2, batch_size=5),
    "keras cost_and_grad": lambda x: tfa.cost_and_grad(
        tfa.build_model(L_IN, L_HID, LAM, BETA, RHO), x),
    "keras train_gd": lambda x: tfa.train_gd(tfa.build_model(L_IN, L_HID, LAM, BETA, RHO),
                                             x, 0.1, 2),
}


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize("scale, shift, lo, hi", [
    (255.0, 0.0, r"2\d\.\d+", r"2\d\d\.\d+"),     # 8-bit pixels, not scaled
    (1.0, -0.5, r"-0\.\d+", r"0\.\d+"),           # centred
], ids=["0..255", "centred"])
def test_backends_refuse_data_outside_unit_interval(entry, scale, shift, lo, hi):
    x = make_data(10, L_IN) * scale + shift
    with pytest.raises(ValueError, match=rf"data must lie in the range \[0, 1\] .*got values "
                                         rf"from {lo} to {hi}; .*divide 8-bit pixels by 255"):
        ENTRY_POINTS[entry](x)


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_backends_accept_the_ends_of_the_unit_interval(entry):
    x = make_data(10, L_IN)
    x[0, 0], x[1, 1] = 0.0, 1.0
    ENTRY_POINTS[entry](x)


def test_torch_trainers_check_the_range_once(monkeypatch):
    calls = []
    real = ae._check_unit_range
    monkeypatch.setattr(ae, "_check_unit_range", lambda *a: calls.append(1) or real(*a))
    x = make_data(20, L_IN)
    tha.train_gd(_torch_model(), x, 0.1, 5)
    tha.train_adam(_torch_model(), x, num_iters=5, batch_size=4)
    assert len(calls) == 2


def test_backend_default_seed_is_fixed_and_seed_none_is_fresh():
    np.random.seed(231)
    torch.manual_seed(231)
    t0 = _torch_model().to_numpy()
    k0 = tfa.get_weights(tfa.build_model(L_IN, L_HID, LAM, BETA, RHO))
    np.random.seed(1)
    torch.manual_seed(1)
    t1 = _torch_model().to_numpy()
    k1 = tfa.get_weights(tfa.build_model(L_IN, L_HID, LAM, BETA, RHO))
    for a, b, c, d in zip(t0, t1, k0, k1):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(a, d)
    fresh_t = [tha.SparseAutoencoder(L_IN, L_HID, LAM, BETA, RHO, seed=None).to_numpy()[0]
               for _ in range(2)]
    fresh_k = [tfa.get_weights(tfa.build_model(L_IN, L_HID, LAM, BETA, RHO, seed=None))[0]
               for _ in range(2)]
    assert not np.array_equal(*fresh_t) and not np.array_equal(*fresh_k)
    x = make_data(20, L_IN)
    runs = [tha.train_adam(_torch_model(), x, num_iters=6, batch_size=4, seed=None)
            for _ in range(2)]
    assert not np.array_equal(*runs)
