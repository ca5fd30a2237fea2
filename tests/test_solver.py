"""Solver: training a small model to high accuracy, history bookkeeping,
restoring the best parameters, reproducibility, checkpoints and bad input."""
import pickle

import numpy as np
import pytest

from lab import optim
from lab.solver import Solver


class TwoLayerNet:
    """affine - relu - affine - softmax, written out here so that the Solver
    tests do not depend on lab.layers."""

    def __init__(self, input_dim, hidden_dim, num_classes, weight_scale=1e-1, reg=0.0, seed=0):
        rng = np.random.default_rng(seed)
        self.reg = reg
        self.params = {
            "W1": weight_scale * rng.normal(size=(input_dim, hidden_dim)),
            "b1": np.zeros(hidden_dim),
            "W2": weight_scale * rng.normal(size=(hidden_dim, num_classes)),
            "b2": np.zeros(num_classes),
        }

    def loss(self, X, y=None):
        p = self.params
        h_pre = X @ p["W1"] + p["b1"]
        h = np.maximum(h_pre, 0)
        scores = h @ p["W2"] + p["b2"]
        if y is None:
            return scores
        N = X.shape[0]
        shifted = scores - scores.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        loss = -log_probs[np.arange(N), y].mean()
        loss += 0.5 * self.reg * (np.sum(p["W1"] ** 2) + np.sum(p["W2"] ** 2))
        dscores = np.exp(log_probs)
        dscores[np.arange(N), y] -= 1
        dscores /= N
        grads = {"W2": h.T @ dscores + self.reg * p["W2"], "b2": dscores.sum(axis=0)}
        dh = dscores @ p["W2"].T
        dh[h_pre <= 0] = 0
        grads["W1"] = X.T @ dh + self.reg * p["W1"]
        grads["b1"] = dh.sum(axis=0)
        return loss, grads


def blobs(n_per_class=100, num_classes=3, dim=5, spread=0.6, seed=0):
    """Gaussian clusters around well separated centres: a separable problem."""
    rng = np.random.default_rng(seed)
    centres = 3.0 * rng.normal(size=(num_classes, dim))
    X = np.concatenate([c + spread * rng.normal(size=(n_per_class, dim)) for c in centres])
    y = np.repeat(np.arange(num_classes), n_per_class)
    perm = rng.permutation(len(y))
    return X[perm], y[perm]


@pytest.fixture(scope="module")
def data():
    X, y = blobs(n_per_class=100, seed=0)
    return {"X_train": X[:240], "y_train": y[:240], "X_val": X[240:], "y_val": y[240:],
            "X_test": X[:5]}


def make_solver(data, seed=0, **kwargs):
    model = TwoLayerNet(input_dim=5, hidden_dim=20, num_classes=3, seed=seed)
    opts = dict(update_rule="sgd_momentum", optim_config={"learning_rate": 0.05},
                batch_size=30, num_epochs=5, verbose=False, seed=seed)
    opts.update(kwargs)
    return model, Solver(model, data, **opts)


def test_model_gradient_is_right(data):
    # the test model itself must be correct for the training tests to mean anything
    from lab.gradient_check import eval_numerical_gradient, rel_error
    model = TwoLayerNet(5, 6, 3, reg=0.1, seed=3)
    X, y = data["X_train"][:7], data["y_train"][:7]
    _, grads = model.loss(X, y)
    for name, w in model.params.items():
        num = eval_numerical_gradient(lambda _: model.loss(X, y)[0], w)
        assert rel_error(num, grads[name]) < 1e-6, name


@pytest.mark.parametrize("rule, lr", [("sgd", 0.2), ("sgd_momentum", 0.05),
                                      ("rmsprop", 1e-2), ("adam", 1e-2)])
def test_reaches_high_accuracy(data, rule, lr):
    model, solver = make_solver(data, update_rule=rule, optim_config={"learning_rate": lr})
    assert solver.check_accuracy(data["X_val"], data["y_val"]) < 0.8  # not solved before training
    solver.train()
    assert solver.best_val_acc >= 0.95
    assert solver.check_accuracy(data["X_val"], data["y_val"]) >= 0.95
    assert solver.train_acc_history[-1] >= 0.95
    assert np.mean(solver.loss_history[-5:]) < 0.5 * np.mean(solver.loss_history[:3])


def test_history_lengths(data):
    _, solver = make_solver(data, batch_size=50, num_epochs=3)
    solver.train()
    iters_per_epoch = 240 // 50
    assert len(solver.loss_history) == 3 * iters_per_epoch
    assert len(solver.train_acc_history) == 3 + 1
    assert len(solver.val_acc_history) == 3 + 1
    assert solver.epoch == 3
    assert all(0.0 <= a <= 1.0 for a in solver.train_acc_history + solver.val_acc_history)


def test_batch_larger_than_training_set(data):
    # one iteration per epoch: the first iteration is also the end of epoch 1,
    # so there is one accuracy entry per epoch (as in CS231n)
    _, solver = make_solver(data, batch_size=1000, num_epochs=2)
    solver.train()
    assert len(solver.loss_history) == 2
    assert len(solver.val_acc_history) == len(solver.train_acc_history) == 2


def test_best_params_are_restored(data):
    # Start from a trained model, then climb the loss (gradient *ascent*):
    # validation accuracy falls, and train() must hand back the best params.
    model, solver = make_solver(data, num_epochs=6)
    solver.train()
    good = {k: v.copy() for k, v in model.params.items()}

    def ascent(w, dw, config):
        config.setdefault("learning_rate", 0.5)
        return w + config["learning_rate"] * dw, config

    solver2 = Solver(model, data, update_rule=ascent, lr_decay=2.0, batch_size=30,
                     num_epochs=4, verbose=False, seed=1)
    solver2.train()
    hist = solver2.val_acc_history
    assert hist[-1] < max(hist) - 0.2, hist
    assert solver2.best_val_acc == max(hist)
    for k in model.params:
        np.testing.assert_array_equal(model.params[k], solver2.best_params[k])
        assert model.params[k] is not solver2.best_params[k]
        assert not np.array_equal(model.params[k], good[k])  # it did move
    assert solver2.check_accuracy(data["X_val"], data["y_val"]) == solver2.best_val_acc
    # lr decay applied once per epoch to every parameter's config
    for cfg in solver2.optim_configs.values():
        assert cfg["learning_rate"] == pytest.approx(0.5 * 2.0 ** 4)


def test_lr_decay(data):
    _, solver = make_solver(data, num_epochs=3, lr_decay=0.5,
                            update_rule="adam", optim_config={"learning_rate": 1e-2})
    solver.train()
    for cfg in solver.optim_configs.values():
        assert cfg["learning_rate"] == pytest.approx(1e-2 * 0.5 ** 3)
        assert cfg["t"] == len(solver.loss_history)
    assert solver.optim_config == {"learning_rate": 1e-2}  # the template is untouched


def test_seeded_runs_are_reproducible(data):
    m1, s1 = make_solver(data, seed=7, num_train_samples=50, num_val_samples=30)
    m2, s2 = make_solver(data, seed=7, num_train_samples=50, num_val_samples=30)
    s1.train()
    s2.train()
    assert s1.loss_history == s2.loss_history
    assert s1.train_acc_history == s2.train_acc_history
    assert s1.val_acc_history == s2.val_acc_history
    for k in m1.params:
        np.testing.assert_array_equal(m1.params[k], m2.params[k])
    # a different seed for the Solver alone draws different minibatches
    m3 = TwoLayerNet(5, 20, 3, seed=7)
    s3 = Solver(m3, data, update_rule="sgd_momentum", optim_config={"learning_rate": 0.05},
                batch_size=30, num_epochs=5, verbose=False, seed=8)
    s3.train()
    assert s3.loss_history[0] != s1.loss_history[0]


def test_check_accuracy_matches_direct_computation(data):
    model, solver = make_solver(data)
    solver.train()
    X, y = data["X_val"], data["y_val"]
    direct = np.mean(np.argmax(model.loss(X), axis=1) == y)
    for bs in (1, 7, 60, 1000):
        assert solver.check_accuracy(X, y, batch_size=bs) == direct
    # a subsample is scored on exactly num_samples points
    acc = solver.check_accuracy(X, y, num_samples=7)
    assert acc * 7 == pytest.approx(round(acc * 7))


def test_verbose_output(data, capsys):
    _, solver = make_solver(data, verbose=True, print_every=3, batch_size=60, num_epochs=2)
    solver.train()
    out = capsys.readouterr().out.splitlines()
    its = [line for line in out if line.startswith("(Iteration")]
    eps = [line for line in out if line.startswith("(Epoch")]
    assert its[0].startswith("(Iteration 1 / 8) loss: ")
    assert len(its) == 3  # t = 0, 3, 6
    assert len(eps) == 3
    assert eps[-1].startswith("(Epoch 2 / 2) train acc: ")


def test_progress_bar(data, capsys):
    _, solver = make_solver(data, progress=True, batch_size=60, num_epochs=2)
    solver.train()
    err = capsys.readouterr().err
    assert "8/8" in err
    _, quiet = make_solver(data, progress=False, batch_size=60, num_epochs=2)
    quiet.train()
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_checkpoints(data, tmp_path):
    name = tmp_path / "ckpt"
    model, solver = make_solver(data, num_epochs=2, checkpoint_name=str(name))
    solver.train()
    files = sorted(p.name for p in tmp_path.iterdir())
    # written at the first iteration (epoch 0) and at the end of each epoch
    assert files == ["ckpt_epoch_0.pkl", "ckpt_epoch_1.pkl", "ckpt_epoch_2.pkl"]
    with open(tmp_path / "ckpt_epoch_2.pkl", "rb") as f:
        ck = pickle.load(f)
    assert ck["epoch"] == 2
    assert ck["update_rule"] == "sgd_momentum"
    assert ck["val_acc_history"] == solver.val_acc_history
    assert set(ck["model"].params) == set(model.params)


def test_callable_update_rule(data):
    calls = []

    def rule(w, dw, config):
        calls.append(w.shape)
        return optim.sgd(w, dw, config)

    _, solver = make_solver(data, update_rule=rule, optim_config={"learning_rate": 0.2},
                            num_epochs=3)
    solver.train()
    assert len(calls) == 4 * len(solver.loss_history)
    assert solver.best_val_acc >= 0.95


def test_float32_model_and_data(data):
    d32 = {k: (v.astype(np.float32) if k.startswith("X") else v) for k, v in data.items()}
    model, solver = make_solver(d32, update_rule="adam", optim_config={"learning_rate": 1e-2})
    for k in model.params:
        model.params[k] = model.params[k].astype(np.float32)
    solver.train()
    assert all(v.dtype == np.float32 for v in model.params.values())
    assert solver.best_val_acc >= 0.95


# ------------------------------------------------------------------- bad input

def test_unknown_kwargs_are_named(data):
    model = TwoLayerNet(5, 4, 3)
    with pytest.raises(ValueError, match=r"unrecognized arguments \['learning_rate', 'numepochs'\]"):
        Solver(model, data, numepochs=3, learning_rate=0.1)


def test_unknown_update_rule(data):
    model = TwoLayerNet(5, 4, 3)
    with pytest.raises(ValueError, match=r"update_rule must be one of .*'adam'.*got 'adagrad'"):
        Solver(model, data, update_rule="adagrad")
    with pytest.raises(TypeError, match="update_rule must be a name in lab.optim or a callable"):
        Solver(model, data, update_rule=3)


@pytest.mark.parametrize("drop", ["X_train", "y_train", "X_val", "y_val"])
def test_missing_data_key(data, drop):
    d = {k: v for k, v in data.items() if k != drop}
    with pytest.raises(ValueError, match=rf"data is missing \['{drop}'\]"):
        Solver(TwoLayerNet(5, 4, 3), d)


def test_bad_data(data):
    model = TwoLayerNet(5, 4, 3)
    with pytest.raises(TypeError, match="data must be a dict"):
        Solver(model, [data["X_train"], data["y_train"]])
    d = dict(data, y_train=data["y_train"][:-1])
    with pytest.raises(ValueError, match=r"data\['y_train'\] must have one label per row of "
                                         r"data\['X_train'\] \(240\), got 239"):
        Solver(model, d)
    d = dict(data, X_val=data["X_val"][:, :4])
    with pytest.raises(ValueError, match=r"data\['X_val'\] rows must have the shape"):
        Solver(model, d)
    d = dict(data, y_val=data["y_val"].astype(float))
    with pytest.raises(TypeError, match=r"data\['y_val'\] must hold integer class labels"):
        Solver(model, d)
    d = dict(data, y_val=-data["y_val"] - 1)
    with pytest.raises(ValueError, match=r"data\['y_val'\] must hold non-negative"):
        Solver(model, d)
    d = dict(data, X_train=data["X_train"][:0], y_train=data["y_train"][:0])
    with pytest.raises(ValueError, match=r"data\['X_train'\] must have shape \(N, \.\.\.\) with N >= 1"):
        Solver(model, d)


@pytest.mark.parametrize(
    "kwargs, exc, pattern",
    [({"batch_size": 0}, ValueError, "batch_size must be a positive integer, got 0"),
     ({"batch_size": 2.5}, TypeError, "batch_size must be a positive integer"),
     ({"num_epochs": -1}, ValueError, "num_epochs must be a positive integer"),
     ({"num_train_samples": 0}, ValueError, "num_train_samples must be a positive integer"),
     ({"num_val_samples": "all"}, TypeError, "num_val_samples must be a positive integer"),
     ({"print_every": 0}, ValueError, "print_every must be a positive integer"),
     ({"lr_decay": 0.0}, ValueError, "lr_decay must lie in"),
     ({"lr_decay": float("nan")}, ValueError, "lr_decay must be finite"),
     ({"optim_config": 0.1}, TypeError, "optim_config must be a dict"),
     ({"verbose": "yes"}, TypeError, "verbose must be True or False"),
     ({"progress": 1}, TypeError, "progress must be True or False"),
     ({"seed": 1.5}, TypeError, "seed must be an int"),
     ({"checkpoint_name": 3}, TypeError, "checkpoint_name must be a str or None")],
)
def test_bad_kwargs(data, kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        Solver(TwoLayerNet(5, 4, 3), data, **kwargs)


def test_bad_model(data):
    class NoParams:
        def loss(self, X, y=None):
            return X

    class NoLoss:
        params = {"W": np.zeros(2)}

    with pytest.raises(TypeError, match="model must have a dict attribute 'params'"):
        Solver(NoParams(), data)
    with pytest.raises(TypeError, match="model must have a method loss"):
        Solver(NoLoss(), data)


def test_model_returning_bad_values(data):
    class ScoresOnly(TwoLayerNet):
        def loss(self, X, y=None):
            return super().loss(X)

    with pytest.raises(TypeError, match=r"model.loss\(X, y\) must return a tuple \(loss, grads\)"):
        Solver(ScoresOnly(5, 4, 3), data, verbose=False).train()

    class MissingGrad(TwoLayerNet):
        def loss(self, X, y=None):
            out = super().loss(X, y)
            if y is None:
                return out
            out[1].pop("b2")
            return out

    with pytest.raises(ValueError, match=r"no gradients for parameters \['b2'\]"):
        Solver(MissingGrad(5, 4, 3), data, verbose=False).train()


def test_diverging_training_stops_with_a_clear_error(data):
    class Diverging(TwoLayerNet):
        calls = 0

        def loss(self, X, y=None):
            out = super().loss(X, y)
            if y is None:
                return out
            Diverging.calls += 1
            return (np.nan if Diverging.calls == 4 else out[0]), out[1]

    solver = Solver(Diverging(5, 4, 3), data, num_epochs=5, verbose=False)
    with pytest.raises(FloatingPointError,
                       match=r"training diverged at iteration 4 of 10 \(epoch 2 of 5\): the "
                             r"training loss became nan; the learning rate is probably too high "
                             r"\(learning_rate=0.01\): lower it, e.g. to 0.001"):
        solver.train()
    assert len(solver.loss_history) == 3


def _small_convnet(**kwargs):
    from lab.cnn import ThreeLayerConvNet
    return ThreeLayerConvNet(input_dim=(3, 8, 8), num_filters=4, filter_size=3, hidden_dim=10,
                             **kwargs)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3, 8, 8)).astype(np.float32)
    y = rng.integers(10, size=40)
    return {"X_train": X, "y_train": y, "X_val": X[:20], "y_val": y[:20]}


@pytest.mark.parametrize("rule", ["sgd", "sgd_momentum", "rmsprop", "adam"])
def test_huge_learning_rate_is_reported_as_divergence(images, rule):
    # one step with lr=1e30 leaves finite but enormous weights, whose
    # activations overflow inside the network: the Solver says so itself
    solver = Solver(_small_convnet(), images, update_rule=rule,
                    optim_config={"learning_rate": 1e30}, batch_size=10, verbose=False)
    with pytest.raises(FloatingPointError,
                       match=r"training diverged at iteration 1 of 40 \(epoch 1 of 10\): .*NaN "
                             r"or inf.*the parameters have grown to magnitudes of .*; the "
                             r"learning rate is probably too high \(learning_rate=1e\+30\): "
                             r"lower it, e.g. to 1e\+29") as info:
        with np.errstate(over="ignore"):
            solver.train()
    assert isinstance(info.value.__cause__, ValueError)   # what the model raised
    assert len(solver.loss_history) == 1


def test_scores_with_nan_are_reported_as_divergence(data):
    # a model that does not check its activations: NaN scores, not a wrong accuracy
    solver = Solver(TwoLayerNet(5, 4, 3), data, optim_config={"learning_rate": 1e300},
                    verbose=False)
    with pytest.raises(FloatingPointError, match=r"training diverged at iteration 1 of 20 "
                                                 r"\(epoch 1 of 10\): "):
        with np.errstate(all="ignore"):
            solver.train()


def test_parameters_made_infinite_by_the_update(data):
    def explode(w, dw, config):
        return w * np.inf, config

    solver = Solver(TwoLayerNet(5, 4, 3), data, update_rule=explode, verbose=False)
    with pytest.raises(FloatingPointError,
                       match=r"iteration 1 of 20 \(epoch 1 of 10\): 'W1' after the update "
                             r"contains NaN or inf; the step size of the update rule is "
                             r"probably too large"):
        with np.errstate(all="ignore"):
            solver.train()


def test_nonfinite_gradient_is_reported_before_the_update(data):
    class BadGrad(TwoLayerNet):
        def loss(self, X, y=None):
            out = super().loss(X, y)
            if y is not None:
                out[1]["b1"] = out[1]["b1"] * np.inf
            return out

    model = BadGrad(5, 4, 3)
    before = {k: v.copy() for k, v in model.params.items()}
    solver = Solver(model, data, update_rule="adam", verbose=False)
    with pytest.raises(FloatingPointError, match=r"iteration 1 of 20 \(epoch 1 of 10\): the "
                                                 r"gradient of 'b1' contains NaN or inf \(the "
                                                 r"loss was .*\); .*learning_rate=0.001"):
        with np.errstate(all="ignore"):
            solver.train()
    for k in before:                                    # nothing was updated
        np.testing.assert_array_equal(model.params[k], before[k])


def test_nan_error_before_any_update_is_not_called_divergence(data):
    class Broken(TwoLayerNet):
        def loss(self, X, y=None):
            raise ValueError("x contains NaN or inf")

    with pytest.raises(ValueError, match="x contains NaN or inf"):
        Solver(Broken(5, 4, 3), data, verbose=False).train()


def test_check_accuracy_refuses_nan_scores(data):
    model, solver = make_solver(data)
    model.params["b2"] = np.full(3, np.nan)
    with pytest.raises(ValueError, match=r"model.loss\(X\) returned scores with NaN or inf "
                                         r"for points 0 to 59"):
        solver.check_accuracy(data["X_val"], data["y_val"])


@pytest.mark.parametrize("rule, cfg, exc, pattern", [
    ("sgd", {"lr": 0.1}, ValueError,
     r"optim_config is not valid for update_rule 'sgd': optim_config has entries \['lr'\] "
     r"that sgd does not use; expected only \['learning_rate'\]"),
    ("sgd", {"learning_rate": -0.1}, ValueError,
     r"update_rule 'sgd': optim_config\['learning_rate'\] must lie in \(0.0, inf\), got -0.1"),
    ("adam", {"learning_rate": float("nan")}, ValueError,
     r"update_rule 'adam': optim_config\['learning_rate'\] must be finite, got nan"),
    ("rmsprop", {"learning_rate": "1e-3"}, TypeError,
     r"update_rule 'rmsprop': optim_config\['learning_rate'\] must be a real number, got '1e-3'"),
    ("sgd_momentum", {"momentum": 1.0}, ValueError,
     r"update_rule 'sgd_momentum': optim_config\['momentum'\] must lie in \[0.0, 1.0\)"),
    (optim.adam, {"beta1": 1.5}, ValueError,
     r"update_rule 'adam': optim_config\['beta1'\] must lie in \[0.0, 1.0\), got 1.5"),
    (optim.adam, {"momentum": 0.9}, ValueError,
     r"update_rule 'adam': optim_config has entries \['momentum'\] that adam does not use"),
    (lambda w, dw, c: (w, c), {"learning_rate": 0.0}, ValueError,
     r"optim_config\['learning_rate'\] must lie in \(0.0, inf\), got 0.0"),
    (lambda w, dw, c: (w, c), {"learning_rate": None}, TypeError,
     r"optim_config\['learning_rate'\] must be a real number, got None"),
])
def test_bad_optim_config_fails_when_the_solver_is_built(data, rule, cfg, exc, pattern):
    with pytest.raises(exc, match=pattern):
        Solver(TwoLayerNet(5, 4, 3), data, update_rule=rule, optim_config=cfg)


def test_good_optim_config_and_callable_rule_options_are_accepted(data):
    Solver(TwoLayerNet(5, 4, 3), data, update_rule="adam",
           optim_config={"learning_rate": 1e-3, "beta1": 0.8, "t": 0})
    # a callable's own hyperparameters are its business
    Solver(TwoLayerNet(5, 4, 3), data, update_rule=lambda w, dw, c: (w, c),
           optim_config={"learning_rate": 0.1, "anything": "goes"})


class CountedModel(TwoLayerNet):
    """Parameters not named in the CS231n way: the class count comes from an attribute."""

    def __init__(self, num_classes=None):
        super().__init__(5, 4, 3)
        self.params = {"hidden_w": self.params["W1"], "hidden_b": self.params["b1"],
                       "out_w": self.params["W2"], "out_b": self.params["b2"]}
        if num_classes is not None:
            self.num_classes = num_classes


@pytest.mark.parametrize("make, d, exc, pattern", [
    # the number of classes from the CS231n parameter names (b2 of TwoLayerNet)
    (lambda: TwoLayerNet(5, 4, 3),
     lambda d: dict(d, y_val=np.where(d["y_val"] == 0, 3, d["y_val"])),
     ValueError, r"data\['y_val'\] must lie in \[0, 2\] for a model with 3 classes, got "
                 r"values from 1 to 3"),
    (lambda: TwoLayerNet(5, 4, 3), lambda d: dict(d, y_train=d["y_train"] + 5), ValueError,
     r"data\['y_train'\] must lie in \[0, 2\] for a model with 3 classes, got values from 5 to 7"),
    # ... or from a num_classes attribute
    (lambda: CountedModel(num_classes=3), lambda d: dict(d, y_val=d["y_val"] + 1), ValueError,
     r"data\['y_val'\] must lie in \[0, 2\] for a model with 3 classes, got values from 1 to 3"),
    (lambda: CountedModel(num_classes=0), lambda d: d, ValueError,
     "model.num_classes must be a positive integer, got 0"),
    # inputs
    (lambda: TwoLayerNet(5, 4, 3),
     lambda d: dict(d, X_val=np.where(d["X_val"] > 2, np.inf, d["X_val"])),
     ValueError, r"data\['X_val'\] contains NaN or inf"),
    (lambda: TwoLayerNet(5, 4, 3), lambda d: dict(d, X_train=np.full_like(d["X_train"], np.nan)),
     ValueError, r"data\['X_train'\] contains NaN or inf"),
    (lambda: TwoLayerNet(5, 4, 3), lambda d: dict(d, X_train=d["X_train"] > 0), TypeError,
     r"data\['X_train'\] must hold real numbers, got dtype bool"),
])
def test_bad_data_fails_when_the_solver_is_built(data, make, d, exc, pattern):
    with pytest.raises(exc, match=pattern):
        Solver(make(), d(data))


def test_labels_of_a_model_with_unknown_classes_need_only_be_non_negative(data):
    solver = Solver(CountedModel(), dict(data, y_val=data["y_val"] + 7), verbose=False)
    assert solver.num_classes is None
    assert Solver(CountedModel(num_classes=3), data).num_classes == 3
    assert Solver(TwoLayerNet(5, 4, 3), data).num_classes == 3


def test_convnet_labels_and_input_shape_are_checked(images):
    y_val = images["y_val"].copy()
    y_val[3] = 10
    with pytest.raises(ValueError, match=r"data\['y_val'\] must lie in \[0, 9\] for a model "
                                         r"with 10 classes, got values from 0 to 10"):
        Solver(_small_convnet(), dict(images, y_val=y_val))
    with pytest.raises(ValueError, match=r"data\['X_train'\] must have shape \(N, 3, 8, 8\) to "
                                         r"match the model's input_dim \(3, 8, 8\), got "
                                         r"\(40, 3, 8, 6\)"):
        Solver(_small_convnet(), dict(images, X_train=images["X_train"][..., :6],
                                      X_val=images["X_val"][..., :6]))
    solver = Solver(_small_convnet(), images, verbose=False)
    with pytest.raises(ValueError, match=r"y must lie in \[0, 9\], got values from 0 to 10"):
        solver.check_accuracy(images["X_val"], y_val)


def test_nonfinite_initial_parameters(data):
    model = TwoLayerNet(5, 4, 3)
    model.params["W2"][0, 0] = np.nan
    with pytest.raises(ValueError, match=r"model.params\['W2'\] contains NaN or inf"):
        Solver(model, data)


def test_checkpoint_folder_is_checked_when_the_solver_is_built(data, tmp_path, monkeypatch):
    missing = tmp_path / "no_such_folder" / "ckpt"
    with pytest.raises(ValueError, match=r"checkpoint_name '.*ckpt' writes into the folder "
                                         r"'.*no_such_folder', which does not exist; create it "
                                         r"first \(the Solver does not\)"):
        Solver(TwoLayerNet(5, 4, 3), data, checkpoint_name=str(missing))
    assert not missing.parent.exists()
    a_file = tmp_path / "plain_file"
    a_file.write_text("")
    with pytest.raises(ValueError, match="which is not a folder"):
        Solver(TwoLayerNet(5, 4, 3), data, checkpoint_name=str(a_file / "ckpt"))
    import lab.solver
    monkeypatch.setattr(lab.solver.os, "access", lambda path, mode: False)
    with pytest.raises(ValueError, match=r"writes into the folder '.*', which is not writable"):
        Solver(TwoLayerNet(5, 4, 3), data, checkpoint_name=str(tmp_path / "ckpt"))


def test_check_accuracy_bad_input(data):
    _, solver = make_solver(data)
    with pytest.raises(ValueError, match="y must have 60 entries to match the inputs, got 59"):
        solver.check_accuracy(data["X_val"], data["y_val"][:-1])
    with pytest.raises(ValueError, match="num_samples must be a positive integer"):
        solver.check_accuracy(data["X_val"], data["y_val"], num_samples=0)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        solver.check_accuracy(data["X_val"], data["y_val"], batch_size=-5)
