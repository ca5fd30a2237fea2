"""ThreeLayerConvNet: initial loss, numerical gradient check, agreement with
PyTorch, overfitting a small set with the Solver, dtypes and bad input."""
import math

import numpy as np
import pytest
import torch

from lab.cnn import ThreeLayerConvNet
from lab.gradient_check import eval_numerical_gradient, rel_error
from lab.solver import Solver


def random_images(N, shape, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((N, *shape)), rng.integers(10, size=N)


def test_parameter_shapes_and_init():
    model = ThreeLayerConvNet(input_dim=(3, 16, 12), num_filters=5, filter_size=3,
                              hidden_dim=11, num_classes=4, weight_scale=0.5, seed=0)
    shapes = {k: v.shape for k, v in model.params.items()}
    assert shapes == {"W1": (5, 3, 3, 3), "b1": (5,), "W2": (5 * 8 * 6, 11), "b2": (11,),
                      "W3": (11, 4), "b3": (4,)}
    assert all(v.dtype == np.float32 for v in model.params.values())
    for b in ("b1", "b2", "b3"):
        assert not np.any(model.params[b])
    assert model.params["W2"].std() == pytest.approx(0.5, rel=0.05)
    assert abs(model.params["W2"].mean()) < 0.05
    assert model.conv_param == {"stride": 1, "pad": 1}
    # seeded: same seed, same weights; another seed, other weights
    again = ThreeLayerConvNet(input_dim=(3, 16, 12), num_filters=5, filter_size=3,
                              hidden_dim=11, num_classes=4, weight_scale=0.5, seed=0)
    other = ThreeLayerConvNet(input_dim=(3, 16, 12), num_filters=5, filter_size=3,
                              hidden_dim=11, num_classes=4, weight_scale=0.5, seed=1)
    np.testing.assert_array_equal(model.params["W1"], again.params["W1"])
    assert not np.array_equal(model.params["W1"], other.params["W1"])


SMALL = dict(input_dim=(3, 8, 8), num_filters=3, filter_size=3, hidden_dim=5)


def test_default_seed_gives_the_same_weights_every_time():
    # seed=0 by default: two models built with the defaults are identical,
    # whatever NumPy's global generator was seeded with
    np.random.seed(231)
    a = ThreeLayerConvNet(**SMALL)
    np.random.seed(1)
    b = ThreeLayerConvNet(**SMALL)
    c = ThreeLayerConvNet(**SMALL, seed=0)
    assert a.params.keys() == b.params.keys() == c.params.keys()
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
        np.testing.assert_array_equal(a.params[k], c.params[k])
    assert not np.array_equal(a.params["W1"], ThreeLayerConvNet(**SMALL, seed=1).params["W1"])


def test_seed_none_gives_fresh_weights_that_ignore_np_random_seed():
    # seed=None asks for fresh randomness: np.random.seed does not make it repeat
    np.random.seed(231)
    a = ThreeLayerConvNet(**SMALL, seed=None)
    np.random.seed(231)
    b = ThreeLayerConvNet(**SMALL, seed=None)
    assert not np.array_equal(a.params["W1"], b.params["W1"])
    assert not np.array_equal(a.params["W3"], b.params["W3"])


def test_num_classes_and_input_dim_attributes():
    model = ThreeLayerConvNet(**SMALL, num_classes=4)
    assert model.num_classes == 4 and model.input_dim == (3, 8, 8)
    assert model.params["W3"].shape == (5, 4)


def test_initial_loss_is_log_num_classes():
    X, y = random_images(50, (3, 16, 16), seed=1)
    model = ThreeLayerConvNet(input_dim=(3, 16, 16), seed=0)
    loss, grads = model.loss(X, y)
    assert abs(loss - math.log(10)) < 1e-3, loss
    assert set(grads) == set(model.params)

    model.reg = 0.5
    loss_reg, _ = model.loss(X, y)
    expected_penalty = 0.25 * sum(np.sum(model.params[k].astype(np.float64) ** 2)
                                  for k in ("W1", "W2", "W3"))
    assert loss_reg > loss
    assert loss_reg - loss == pytest.approx(expected_penalty, rel=1e-4)
    assert 0.01 < loss_reg - loss < 0.2  # "a little higher"


def test_scores_shape_and_dtype():
    X, _ = random_images(4, (3, 8, 8))
    model = ThreeLayerConvNet(input_dim=(3, 8, 8), num_filters=4, filter_size=5,
                              hidden_dim=6, num_classes=3, seed=0)
    scores = model.loss(X)
    assert scores.shape == (4, 3)
    assert scores.dtype == np.float32
    loss, grads = model.loss(X, np.array([0, 1, 2, 0]))
    assert isinstance(loss, float)
    assert all(grads[k].dtype == np.float32 and grads[k].shape == model.params[k].shape
               for k in grads)


@pytest.mark.parametrize("reg", [0.0, 0.7])
def test_gradient_check_float64(reg):
    N = 2
    X, y = random_images(N, (3, 8, 8), seed=2)
    model = ThreeLayerConvNet(input_dim=(3, 8, 8), num_filters=3, filter_size=3,
                              hidden_dim=7, num_classes=10, weight_scale=1e-1,
                              reg=reg, dtype=np.float64, seed=3)
    loss, grads = model.loss(X, y)
    errors = {}
    for name in sorted(model.params):
        f = lambda _: model.loss(X, y)[0]  # noqa: E731
        num = eval_numerical_gradient(f, model.params[name])
        errors[name] = rel_error(num, grads[name])
        assert np.max(np.abs(grads[name])) > 0, name  # a non-trivial gradient
    assert max(errors.values()) < 1e-6, errors


def test_matches_pytorch():
    """Scores, loss and every gradient against the same network in torch.nn.functional."""
    F_ = torch.nn.functional
    X, y = random_images(3, (2, 10, 6), seed=4)
    model = ThreeLayerConvNet(input_dim=(2, 10, 6), num_filters=4, filter_size=5,
                              hidden_dim=9, num_classes=5, weight_scale=0.3, reg=0.2,
                              dtype=np.float64, seed=5)
    y = y % 5
    scores = model.loss(X)
    loss, grads = model.loss(X, y)

    t = {k: torch.tensor(v, requires_grad=True) for k, v in model.params.items()}
    h = F_.conv2d(torch.tensor(X), t["W1"], t["b1"], stride=1, padding=2)
    h = F_.max_pool2d(F_.relu(h), kernel_size=2, stride=2)
    h = F_.relu(h.reshape(3, -1) @ t["W2"] + t["b2"])
    t_scores = h @ t["W3"] + t["b3"]
    t_loss = F_.cross_entropy(t_scores, torch.tensor(y)) + 0.5 * 0.2 * sum(
        (t[k] ** 2).sum() for k in ("W1", "W2", "W3"))
    t_loss.backward()

    assert rel_error(scores, t_scores.detach().numpy()) < 1e-10
    assert abs(loss - t_loss.item()) < 1e-12
    for k in model.params:
        assert rel_error(grads[k], t[k].grad.numpy()) < 1e-9, k


def test_overfits_small_data_with_solver():
    X, y = random_images(50, (3, 16, 16), seed=6)
    data = {"X_train": X.astype(np.float32), "y_train": y,
            "X_val": X[:10].astype(np.float32), "y_val": y[:10]}
    model = ThreeLayerConvNet(input_dim=(3, 16, 16), num_filters=8, filter_size=3,
                              hidden_dim=50, weight_scale=5e-2, seed=0)
    solver = Solver(model, data, update_rule="adam", optim_config={"learning_rate": 1e-2},
                    batch_size=25, num_epochs=20, verbose=False, seed=0)
    assert solver.check_accuracy(X, y) < 0.3  # random labels: chance before training
    solver.train()
    assert len(solver.loss_history) == 40
    assert solver.loss_history[0] == pytest.approx(math.log(10), abs=0.1)
    assert np.mean(solver.loss_history[-5:]) < 0.1
    assert solver.train_acc_history[-1] > 0.9, solver.train_acc_history
    # train() ends by restoring the parameters of the best validation epoch
    best = int(np.argmax(solver.val_acc_history))
    assert solver.check_accuracy(X, y) == solver.train_acc_history[best]
    assert all(v.dtype == np.float32 for v in model.params.values())


# ------------------------------------------------------------------- bad input

@pytest.mark.parametrize(
    "kwargs, exc, pattern",
    [({"input_dim": (3, 32)}, ValueError, r"input_dim must be a tuple \(C, H, W\)"),
     ({"input_dim": (3, 31, 32)}, ValueError, "even H and W .* got H=31, W=32"),
     ({"input_dim": (0, 32, 32)}, ValueError, r"input_dim\[0\] must be a positive integer"),
     ({"filter_size": 4}, ValueError, "filter_size must be odd .* got 4"),
     ({"num_filters": 0}, ValueError, "num_filters must be a positive integer"),
     ({"hidden_dim": 2.0}, TypeError, "hidden_dim must be a positive integer"),
     ({"num_classes": -3}, ValueError, "num_classes must be a positive integer"),
     ({"weight_scale": 0.0}, ValueError, "weight_scale must lie in"),
     ({"reg": -0.1}, ValueError, "reg must lie in"),
     ({"dtype": np.int32}, TypeError, "dtype must be a numpy floating dtype"),
     ({"dtype": "nonsense"}, TypeError, "dtype must be a numpy floating dtype"),
     ({"seed": 0.5}, TypeError, r"seed must be an int >= 0 or None, got 0.5"),
     ({"seed": True}, TypeError, r"seed must be an int >= 0 or None, got True"),
     ({"seed": -1}, ValueError, "seed must be a non-negative integer, got -1")],
)
def test_bad_construction(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        ThreeLayerConvNet(**kwargs)


def test_bad_loss_input():
    model = ThreeLayerConvNet(input_dim=(3, 8, 8), num_filters=2, filter_size=3,
                              hidden_dim=4, seed=0)
    X, y = random_images(2, (3, 8, 8))
    with pytest.raises(ValueError, match=r"X must have shape \(any, 3, 8, 8\), got \(2, 3, 8, 6\)"):
        model.loss(X[..., :6])
    with pytest.raises(ValueError, match=r"X must have 4 dimensions, got shape \(2, 192\)"):
        model.loss(X.reshape(2, -1))
    with pytest.raises(ValueError, match="X must hold at least one image"):
        model.loss(X[:0])
    with pytest.raises(ValueError, match="X contains NaN or inf"):
        bad = X.copy()
        bad[0, 0, 0, 0] = np.nan
        model.loss(bad)
    with pytest.raises(ValueError, match=r"y must lie in \[0, 9\], got values from 0 to 10"):
        model.loss(X, np.array([0, 10]))
    with pytest.raises(ValueError, match="y must have 2 entries to match the inputs, got 3"):
        model.loss(X, np.array([0, 1, 2]))
    with pytest.raises(TypeError, match="y must hold integer class labels"):
        model.loss(X, np.array([0.0, 1.0]))
