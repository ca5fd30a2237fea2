"""A Solver that trains classification models with minibatch gradient descent.

The interface follows CS231n's ``solver.py``::

    solver = Solver(model, data, update_rule="adam",
                    optim_config={"learning_rate": 1e-3},
                    lr_decay=0.95, num_epochs=10, batch_size=100,
                    print_every=100, seed=0)
    solver.train()
    solver.loss_history, solver.train_acc_history, solver.val_acc_history

Model protocol
--------------
``model.params``
    dict mapping parameter names to ndarrays.  The Solver replaces its
    entries with updated arrays at every step and, at the end of ``train``,
    with copies of the parameters that scored best on the validation set.
``model.loss(X, y=None)``
    With ``y=None``: class scores of shape (N, C).  With labels: a tuple
    ``(loss, grads)`` where ``loss`` is a scalar and ``grads`` has the keys of
    ``model.params`` with arrays of the same shapes.

Data
----
A dict with ``X_train`` (N_train, ...), ``y_train`` (N_train,), ``X_val``
(N_val, ...) and ``y_val`` (N_val,); labels are integers in [0, C).  Other
entries (``X_test``, ...) are ignored.
"""
from __future__ import annotations

import math
import numbers
import os
import pickle
from collections.abc import Mapping

import numpy as np
from tqdm import tqdm

from . import optim
from ._validate import as_labels, finite_float, positive_int

__all__ = ["Solver"]

_DEFAULTS = {
    "update_rule": "sgd",
    "optim_config": None,
    "lr_decay": 1.0,
    "batch_size": 100,
    "num_epochs": 10,
    "num_train_samples": 1000,
    "num_val_samples": None,
    "checkpoint_name": None,
    "print_every": 10,
    "verbose": True,
    "progress": False,
    "seed": 0,
}


def _check_data(data):
    if not isinstance(data, Mapping):
        raise TypeError(f"data must be a dict with X_train, y_train, X_val, y_val, "
                        f"got {type(data).__name__}")
    required = ("X_train", "y_train", "X_val", "y_val")
    missing = [k for k in required if k not in data]
    if missing:
        raise ValueError(f"data is missing {missing}; expected keys {list(required)}, "
                         f"got {sorted(map(str, data))}")
    out = {}
    for split in ("train", "val"):
        X = np.asarray(data[f"X_{split}"])
        if X.dtype.kind not in "fiu":
            raise TypeError(f"data['X_{split}'] must hold real numbers, got dtype {X.dtype}")
        if X.ndim < 2 or X.shape[0] == 0:
            raise ValueError(f"data['X_{split}'] must have shape (N, ...) with N >= 1 and at "
                             f"least 2 dimensions, got {X.shape}")
        y = as_labels(data[f"y_{split}"], f"data['y_{split}']")
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"data['y_{split}'] must have one label per row of "
                             f"data['X_{split}'] ({X.shape[0]}), got {y.shape[0]}")
        if y.min() < 0:
            raise ValueError(f"data['y_{split}'] must hold non-negative class labels, "
                             f"got minimum {y.min()}")
        out[f"X_{split}"], out[f"y_{split}"] = X, y
    if out["X_train"].shape[1:] != out["X_val"].shape[1:]:
        raise ValueError(f"data['X_val'] rows must have the shape of data['X_train'] rows, "
                         f"{out['X_train'].shape[1:]}, got {out['X_val'].shape[1:]}")
    return out


def _optional_positive_int(v, name):
    return None if v is None else positive_int(v, name)


class Solver:
    """Train a model by minibatch gradient descent and track its accuracy.

    Parameters
    ----------
    model : object
        Has ``params`` (dict of ndarrays) and ``loss(X, y=None)`` (see the
        module docstring).
    data : dict
        ``X_train`` (N_train, ...), ``y_train`` (N_train,), ``X_val``
        (N_val, ...), ``y_val`` (N_val,).
    update_rule : str or callable, default "sgd"
        A name in ``lab.optim`` (``"sgd"``, ``"sgd_momentum"``, ``"rmsprop"``,
        ``"adam"``) or a function ``update(w, dw, config) -> (next_w, config)``.
    optim_config : dict, optional
        Hyperparameters for the update rule; every parameter gets its own copy,
        which also carries that parameter's optimizer state.
    lr_decay : float > 0, default 1.0
        ``learning_rate`` is multiplied by this after every epoch.
    batch_size : int, default 100
        Minibatch size; minibatches are drawn with replacement, as in CS231n.
    num_epochs : int, default 10
        An epoch is ``max(N_train // batch_size, 1)`` iterations.
    num_train_samples : int or None, default 1000
        Training points (a random subset) used to measure training accuracy;
        None uses all of them.
    num_val_samples : int or None, default None
        Validation points used to measure validation accuracy; None uses all.
    checkpoint_name : str or None, default None
        If given, a pickle ``{checkpoint_name}_epoch_{epoch}.pkl`` is written
        after every epoch.
    print_every : int, default 10
        Print the training loss every this many iterations (when verbose).
    verbose : bool, default True
        Print the loss and accuracies during training.
    progress : bool, default False
        Show a tqdm progress bar over iterations.
    seed : int, numpy Generator or None, default 0
        Seeds this Solver's own ``np.random.default_rng``, which draws the
        minibatches and the accuracy subsets; the same seed gives the same run.

    Attributes
    ----------
    loss_history : list of float
        The minibatch loss at every iteration (length ``num_iterations``).
    train_acc_history, val_acc_history : list of float
        Accuracies after the first iteration and at the end of every epoch:
        length ``num_epochs + 1``, or ``num_epochs`` when an epoch is a single
        iteration (the first iteration then ends epoch 1).
    best_val_acc : float
    best_params : dict of ndarrays
        Copies of the parameters with the highest validation accuracy; loaded
        into ``model.params`` when ``train`` finishes.
    epoch : int
    optim_configs : dict
        One config dict per parameter name.
    """

    def __init__(self, model, data, **kwargs):
        if not isinstance(getattr(model, "params", None), dict):
            raise TypeError(f"model must have a dict attribute 'params', got "
                            f"{type(getattr(model, 'params', None)).__name__} on "
                            f"{type(model).__name__}")
        if not callable(getattr(model, "loss", None)):
            raise TypeError(f"model must have a method loss(X, y=None), "
                            f"{type(model).__name__} has none")
        if not model.params:
            raise ValueError("model.params is empty; there is nothing to train")
        unknown = sorted(set(kwargs) - set(_DEFAULTS))
        if unknown:
            raise ValueError(f"Solver got unrecognized arguments {unknown}; "
                             f"expected some of {sorted(_DEFAULTS)}")
        opts = {**_DEFAULTS, **kwargs}

        self.model = model
        d = _check_data(data)
        self.X_train, self.y_train = d["X_train"], d["y_train"]
        self.X_val, self.y_val = d["X_val"], d["y_val"]

        rule = opts["update_rule"]
        if isinstance(rule, str):
            if rule not in optim.__all__:
                raise ValueError(f"update_rule must be one of {optim.__all__} or a callable, "
                                 f"got {rule!r}")
            self.update_rule = getattr(optim, rule)
        elif callable(rule):
            self.update_rule = rule
        else:
            raise TypeError(f"update_rule must be a name in lab.optim or a callable, "
                            f"got {type(rule).__name__}")
        cfg = opts["optim_config"]
        if cfg is None:
            cfg = {}
        if not isinstance(cfg, Mapping):
            raise TypeError(f"optim_config must be a dict, got {type(cfg).__name__}")
        self.optim_config = dict(cfg)
        self.lr_decay = finite_float(opts["lr_decay"], "lr_decay", low=0.0, low_open=True)
        self.batch_size = positive_int(opts["batch_size"], "batch_size")
        self.num_epochs = positive_int(opts["num_epochs"], "num_epochs")
        self.num_train_samples = _optional_positive_int(opts["num_train_samples"],
                                                        "num_train_samples")
        self.num_val_samples = _optional_positive_int(opts["num_val_samples"], "num_val_samples")
        name = opts["checkpoint_name"]
        if name is not None and not isinstance(name, (str, os.PathLike)):
            raise TypeError(f"checkpoint_name must be a str or None, got {type(name).__name__}")
        self.checkpoint_name = name
        self.print_every = positive_int(opts["print_every"], "print_every")
        for flag in ("verbose", "progress"):
            if not isinstance(opts[flag], (bool, np.bool_)):
                raise TypeError(f"{flag} must be True or False, got {opts[flag]!r}")
        self.verbose = bool(opts["verbose"])
        self.progress = bool(opts["progress"])
        seed = opts["seed"]
        if not (seed is None or isinstance(seed, np.random.Generator)
                or (isinstance(seed, numbers.Integral) and not isinstance(seed, bool))):
            raise TypeError(f"seed must be an int, a numpy Generator or None, got {seed!r}")
        self.seed = seed
        self._reset()

    def _reset(self):
        """Set up the bookkeeping; called by ``__init__`` only."""
        self.rng = np.random.default_rng(self.seed)
        self.epoch = 0
        self.best_val_acc = 0.0
        self.best_params = {}
        self.loss_history = []
        self.train_acc_history = []
        self.val_acc_history = []
        self.optim_configs = {p: dict(self.optim_config) for p in self.model.params}

    def _step(self):
        """One gradient update on a random minibatch (drawn with replacement)."""
        num_train = self.X_train.shape[0]
        batch_mask = self.rng.choice(num_train, self.batch_size)
        X_batch = self.X_train[batch_mask]
        y_batch = self.y_train[batch_mask]

        out = self.model.loss(X_batch, y_batch)
        if not (isinstance(out, tuple) and len(out) == 2):
            raise TypeError("model.loss(X, y) must return a tuple (loss, grads), got "
                            f"{type(out).__name__}")
        loss, grads = out
        loss = float(loss)
        if not math.isfinite(loss):
            raise FloatingPointError(
                f"the training loss became {loss} at iteration {len(self.loss_history) + 1}; "
                "the learning rate is probably too high")
        missing = sorted(set(self.model.params) - set(grads))
        if missing:
            raise ValueError(f"model.loss returned no gradients for parameters {missing}")
        self.loss_history.append(loss)

        for p, w in list(self.model.params.items()):
            next_w, next_config = self.update_rule(w, grads[p], self.optim_configs[p])
            self.model.params[p] = next_w
            self.optim_configs[p] = next_config

    def _save_checkpoint(self):
        if self.checkpoint_name is None:
            return
        checkpoint = {
            "model": self.model,
            "update_rule": getattr(self.update_rule, "__name__", repr(self.update_rule)),
            "lr_decay": self.lr_decay,
            "optim_config": self.optim_config,
            "batch_size": self.batch_size,
            "num_train_samples": self.num_train_samples,
            "num_val_samples": self.num_val_samples,
            "epoch": self.epoch,
            "loss_history": self.loss_history,
            "train_acc_history": self.train_acc_history,
            "val_acc_history": self.val_acc_history,
        }
        filename = f"{os.fspath(self.checkpoint_name)}_epoch_{self.epoch}.pkl"
        if self.verbose:
            self._print(f'Saving checkpoint to "{filename}"')
        with open(filename, "wb") as f:
            pickle.dump(checkpoint, f)

    def _print(self, msg):
        if self.progress:
            tqdm.write(msg)
        else:
            print(msg)

    def check_accuracy(self, X, y, num_samples=None, batch_size=100):
        """Fraction of points the model classifies correctly.

        Parameters
        ----------
        X : ndarray, shape (N, ...)
        y : ndarray of int, shape (N,)
        num_samples : int or None
            If given and smaller than N, score a random subset of this size
            (drawn with this Solver's generator, without replacement).
        batch_size : int
            Points per call to ``model.loss``.

        Returns
        -------
        acc : float in [0, 1]
        """
        X = np.asarray(X)
        if X.ndim < 2 or X.shape[0] == 0:
            raise ValueError(f"X must have shape (N, ...) with N >= 1, got {X.shape}")
        y = as_labels(y, "y", n=X.shape[0])
        num_samples = _optional_positive_int(num_samples, "num_samples")
        batch_size = positive_int(batch_size, "batch_size")

        N = X.shape[0]
        if num_samples is not None and N > num_samples:
            mask = self.rng.choice(N, num_samples, replace=False)
            N = num_samples
            X, y = X[mask], y[mask]

        y_pred = []
        for start in range(0, N, batch_size):
            scores = np.asarray(self.model.loss(X[start:start + batch_size]))
            if scores.ndim != 2 or scores.shape[0] != min(batch_size, N - start):
                raise ValueError(f"model.loss(X) must return scores of shape (N, C), got "
                                 f"{scores.shape} for {min(batch_size, N - start)} inputs")
            y_pred.append(np.argmax(scores, axis=1))
        y_pred = np.concatenate(y_pred)
        return float(np.mean(y_pred == y))

    def train(self):
        """Run ``num_epochs`` epochs of optimisation, recording the histories,
        then load the best parameters (by validation accuracy) into the model.
        """
        num_train = self.X_train.shape[0]
        iterations_per_epoch = max(num_train // self.batch_size, 1)
        num_iterations = self.num_epochs * iterations_per_epoch

        bar = tqdm(total=num_iterations, disable=not self.progress, unit="it", leave=True)
        try:
            for t in range(num_iterations):
                self._step()
                bar.update(1)
                if self.progress:
                    bar.set_postfix(loss=f"{self.loss_history[-1]:.4f}", refresh=False)

                if self.verbose and t % self.print_every == 0:
                    self._print(f"(Iteration {t + 1} / {num_iterations}) "
                                f"loss: {self.loss_history[-1]:f}")

                epoch_end = (t + 1) % iterations_per_epoch == 0
                if epoch_end:
                    self.epoch += 1
                    for k in self.optim_configs:
                        if "learning_rate" in self.optim_configs[k]:
                            self.optim_configs[k]["learning_rate"] *= self.lr_decay

                first_it = t == 0
                last_it = t == num_iterations - 1
                if first_it or last_it or epoch_end:
                    train_acc = self.check_accuracy(self.X_train, self.y_train,
                                                    num_samples=self.num_train_samples)
                    val_acc = self.check_accuracy(self.X_val, self.y_val,
                                                  num_samples=self.num_val_samples)
                    self.train_acc_history.append(train_acc)
                    self.val_acc_history.append(val_acc)
                    self._save_checkpoint()
                    if self.verbose:
                        self._print(f"(Epoch {self.epoch} / {self.num_epochs}) "
                                    f"train acc: {train_acc:f}; val_acc: {val_acc:f}")
                    if val_acc > self.best_val_acc or not self.best_params:
                        self.best_val_acc = val_acc
                        self.best_params = {k: np.array(v, copy=True)
                                            for k, v in self.model.params.items()}
        finally:
            bar.close()

        for k, v in self.best_params.items():
            self.model.params[k] = v.copy()
