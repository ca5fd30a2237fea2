"""FullyConnectedNet: shapes, initial loss, numerical gradient check of every
parameter with and without batch normalisation, train/test mode, the Solver,
seed determinism and bad input."""
import math

import numpy as np
import pytest

from lab.fc_net import FullyConnectedNet
from lab.gradient_check import eval_numerical_gradient, rel_error
from lab.solver import Solver


def data(N=6, D=15, C=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((N, D)), rng.integers(C, size=N)


def test_parameter_shapes_and_init():
    model = FullyConnectedNet([7, 5], input_dim=15, num_classes=4,
                              normalization="batchnorm", weight_scale=0.5)
    shapes = {k: v.shape for k, v in model.params.items()}
    assert shapes == {"W1": (15, 7), "b1": (7,), "gamma1": (7,), "beta1": (7,),
                      "W2": (7, 5), "b2": (5,), "gamma2": (5,), "beta2": (5,),
                      "W3": (5, 4), "b3": (4,)}
    assert all(v.dtype == np.float32 for v in model.params.values())
    assert model.num_layers == 3 and len(model.bn_params) == 2
    np.testing.assert_array_equal(model.params["gamma1"], 1)
    assert not np.any(model.params["beta2"]) and not np.any(model.params["b3"])
    plain = FullyConnectedNet([7, 5], input_dim=15, num_classes=4)
    assert set(plain.params) == {"W1", "b1", "W2", "b2", "W3", "b3"} and not plain.bn_params
    linear = FullyConnectedNet([], input_dim=15, num_classes=4)
    assert set(linear.params) == {"W1", "b1"}


@pytest.mark.parametrize("normalization", [None, "batchnorm"])
def test_initial_loss_is_log_num_classes(normalization):
    X, y = data(N=50, C=10)
    model = FullyConnectedNet([20, 20], input_dim=15, normalization=normalization,
                              weight_scale=1e-3, dtype=np.float64)
    loss, _ = model.loss(X, y)
    assert loss == pytest.approx(math.log(10), rel=1e-3)


@pytest.mark.parametrize("normalization", [None, "batchnorm"])
@pytest.mark.parametrize("reg", [0.0, 3.14])
def test_gradients_match_numerical(normalization, reg):
    X, y = data()
    model = FullyConnectedNet([7, 5], input_dim=15, num_classes=4, normalization=normalization,
                              reg=reg, weight_scale=0.2 if normalization is None else 0.5,
                              dtype=np.float64, seed=1)
    if normalization:
        rng = np.random.default_rng(2)
        for k in model.params:          # gamma and beta away from 1 and 0
            if k.startswith(("gamma", "beta")):
                model.params[k] = model.params[k] + 0.2 * rng.standard_normal(model.params[k].shape)
    loss, grads = model.loss(X, y)
    assert set(grads) == set(model.params)
    for k in model.params:
        f = lambda _: model.loss(X, y)[0]
        num = eval_numerical_gradient(f, model.params[k], h=1e-5)
        assert grads[k].shape == model.params[k].shape
        if normalization and k[0] == "b" and k[1:].isdigit() and k != f"b{model.num_layers}":
            # a bias just before batch normalisation is cancelled by the mean:
            # its gradient is exactly zero (the numerical one is rounding noise)
            assert np.abs(grads[k]).max() < 1e-12 and np.abs(num).max() < 1e-8, k
            continue
        assert rel_error(num, grads[k]) < 1e-6, (k, rel_error(num, grads[k]))


def test_regularisation_adds_half_reg_sum_of_squared_weights():
    X, y = data()
    a = FullyConnectedNet([7], input_dim=15, num_classes=4, dtype=np.float64)
    b = FullyConnectedNet([7], input_dim=15, num_classes=4, reg=2.0, dtype=np.float64)
    sq = sum(np.sum(a.params[k] ** 2) for k in ("W1", "W2"))
    assert b.loss(X, y)[0] == pytest.approx(a.loss(X, y)[0] + sq, rel=1e-12)


def test_batchnorm_mode_follows_labels():
    X, y = data(N=20)
    model = FullyConnectedNet([6], input_dim=15, num_classes=4, normalization="batchnorm",
                              dtype=np.float64)
    with pytest.raises(ValueError, match="running"):
        model.loss(X)                   # test mode needs running averages first
    model.loss(X, y)
    assert model.bn_params[0]["mode"] == "train"
    assert model.bn_params[0]["running_mean"].shape == (6,)
    s1 = model.loss(X)
    assert model.bn_params[0]["mode"] == "test"
    # test mode: each example's scores do not depend on the rest of the batch
    np.testing.assert_allclose(model.loss(X[:3]), s1[:3], rtol=1e-12)


def test_scores_shape_and_dtype():
    X, _ = data(N=3, D=2 * 3 * 4)
    model = FullyConnectedNet([5], input_dim=24, num_classes=4)
    scores = model.loss(X.reshape(3, 2, 3, 4))
    assert scores.shape == (3, 4) and scores.dtype == np.float32
    _, grads = model.loss(X, np.array([0, 1, 3]))
    assert all(g.dtype == np.float32 for g in grads.values())


def test_seed_determinism():
    a = FullyConnectedNet([5, 5], input_dim=15)
    b = FullyConnectedNet([5, 5], input_dim=15, seed=0)
    c = FullyConnectedNet([5, 5], input_dim=15, seed=1)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    assert not np.array_equal(a.params["W1"], c.params["W1"])
    d = FullyConnectedNet([5, 5], input_dim=15, seed=None)
    e = FullyConnectedNet([5, 5], input_dim=15, seed=None)
    assert not np.array_equal(d.params["W1"], e.params["W1"])


@pytest.mark.parametrize("normalization", [None, "batchnorm"])
def test_solver_overfits_small_data(normalization):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 15))
    y = rng.integers(4, size=40)
    model = FullyConnectedNet([30, 30], input_dim=15, num_classes=4,
                              normalization=normalization, weight_scale=0.1)
    solver = Solver(model, {"X_train": X, "y_train": y, "X_val": X, "y_val": y},
                    update_rule="adam", optim_config={"learning_rate": 1e-2},
                    num_epochs=20, batch_size=20, verbose=False)
    solver.train()
    assert solver.train_acc_history[-1] >= 0.9
    again = FullyConnectedNet([30, 30], input_dim=15, num_classes=4,
                              normalization=normalization, weight_scale=0.1)
    s2 = Solver(again, {"X_train": X, "y_train": y, "X_val": X, "y_val": y},
                update_rule="adam", optim_config={"learning_rate": 1e-2},
                num_epochs=20, batch_size=20, verbose=False)
    s2.train()
    assert s2.loss_history == solver.loss_history


@pytest.mark.parametrize("kwargs, exc, word", [
    ({"hidden_dims": 5}, TypeError, "hidden_dims"),
    ({"hidden_dims": "55"}, TypeError, "hidden_dims"),
    ({"hidden_dims": [5, 0]}, ValueError, r"hidden_dims\[1\]"),
    ({"hidden_dims": [5, 2.5]}, TypeError, r"hidden_dims\[1\]"),
    ({"input_dim": 0}, ValueError, "input_dim"),
    ({"num_classes": -1}, ValueError, "num_classes"),
    ({"normalization": "layernorm"}, ValueError, "normalization"),
    ({"reg": -1.0}, ValueError, "reg"),
    ({"weight_scale": 0.0}, ValueError, "weight_scale"),
    ({"weight_scale": float("nan")}, ValueError, "weight_scale"),
    ({"dtype": np.int32}, TypeError, "dtype"),
    ({"dtype": "nonsense"}, TypeError, "dtype"),
    ({"seed": -1}, ValueError, "seed"),
    ({"seed": 1.5}, TypeError, "seed"),
])
def test_bad_constructor_arguments(kwargs, exc, word):
    args = {"hidden_dims": [5], "input_dim": 15, **kwargs}
    with pytest.raises(exc, match=word):
        FullyConnectedNet(**args)


def test_bad_loss_inputs():
    model = FullyConnectedNet([5], input_dim=15, num_classes=4)
    X, y = data()
    with pytest.raises(ValueError, match="X must have shape"):
        model.loss(X[:, :14], y)
    with pytest.raises(ValueError, match="X must have shape"):
        model.loss(X[:0])
    with pytest.raises(ValueError, match="X contains NaN"):
        model.loss(np.full_like(X, np.nan), y)
    with pytest.raises(TypeError, match="X must hold"):
        model.loss(X.astype(complex), y)
    with pytest.raises(ValueError, match="y must lie in"):
        model.loss(X, y + 4)
    with pytest.raises(ValueError, match="y must have 6 entries"):
        model.loss(X, y[:5])
    with pytest.raises(TypeError, match="y must hold integer"):
        model.loss(X, y.astype(float))
