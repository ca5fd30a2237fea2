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
``model.num_classes`` (optional)
    C.  Without it, C is read from the parameters when they follow the
    CS231n naming (only ``W1``, ``b1``, ..., ``WL``, ``bL``, and ``gammaK``,
    ``betaK`` for normalisation): the length of ``bL``, the last layer's
    bias.  Otherwise C is unknown and labels are only checked to be >= 0.
``model.input_dim`` (optional)
    If a tuple, the shape of one input, checked against the data.

Data
----
A dict with ``X_train`` (N_train, ...), ``y_train`` (N_train,), ``X_val``
(N_val, ...) and ``y_val`` (N_val,); inputs are finite real numbers, labels
are integers in [0, C).  Other entries (``X_test``, ...) are ignored.

Everything is checked when the Solver is built, before any training: the
data (shapes, dtypes, finiteness, label range), ``optim_config`` (for the
rules of :mod:`lab.optim`, exactly as the rule would check it) and the
checkpoint folder.  During training a loss, gradient or parameter that
becomes NaN or inf stops the run with a ``FloatingPointError`` that says
where it happened and which learning rate was in use.
"""
from __future__ import annotations

import math
import numbers
import os
import pickle
import re
from collections.abc import Mapping

import numpy as np
from lab.data import minibatch_indices
from lab.progress import progress as _progress

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


_CS231N_PARAM = re.compile(r"(W|b|gamma|beta)(\d+)")


def _model_num_classes(model):
    """The number of classes of ``model`` if it can be known, else None: its
    ``num_classes`` attribute, or the length of the last bias ``bL`` when the
    parameters follow the CS231n naming and ``WL`` (D, C) matches ``bL`` (C,)."""
    n = getattr(model, "num_classes", None)
    if n is not None:
        return positive_int(n, "model.num_classes")
    names = [_CS231N_PARAM.fullmatch(str(k)) for k in model.params]
    if not all(names):
        return None
    layers = [int(m.group(2)) for m in names if m.group(1) == "W"]
    if not layers:
        return None
    last = max(layers)
    W, b = np.shape(model.params[f"W{last}"]), np.shape(model.params.get(f"b{last}"))
    if len(W) == 2 and len(b) == 1 and W[1] == b[0] > 0:
        return int(b[0])
    return None


def _check_finite(x, name):
    """Raise a ValueError if the float array ``x`` holds NaN or inf: one sum,
    no copy (then, only if the sum is not finite, every entry)."""
    if x.dtype.kind != "f":
        return
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.sum(x)
    if not np.isfinite(total) and not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or inf")


def _check_data(data, num_classes=None, input_dim=None):
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
        if input_dim is not None and X.shape[1:] != input_dim:
            want = ", ".join(map(str, input_dim))
            raise ValueError(f"data['X_{split}'] must have shape (N, {want}) to match the "
                             f"model's input_dim {input_dim}, got {X.shape}")
        _check_finite(X, f"data['X_{split}']")
        y = as_labels(data[f"y_{split}"], f"data['y_{split}']")
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"data['y_{split}'] must have one label per row of "
                             f"data['X_{split}'] ({X.shape[0]}), got {y.shape[0]}")
        if y.min() < 0:
            raise ValueError(f"data['y_{split}'] must hold non-negative class labels, "
                             f"got minimum {y.min()}")
        if num_classes is not None and y.max() >= num_classes:
            raise ValueError(f"data['y_{split}'] must lie in [0, {num_classes - 1}] for a model "
                             f"with {num_classes} classes, got values from {y.min()} to {y.max()}")
        out[f"X_{split}"], out[f"y_{split}"] = X, y
    if out["X_train"].shape[1:] != out["X_val"].shape[1:]:
        raise ValueError(f"data['X_val'] rows must have the shape of data['X_train'] rows, "
                         f"{out['X_train'].shape[1:]}, got {out['X_val'].shape[1:]}")
    return out


def _optional_positive_int(v, name):
    return None if v is None else positive_int(v, name)


def _check_optim_config(rule, cfg):
    """Check ``optim_config`` now rather than at the first update: for a rule
    of lab.optim exactly as the rule checks it; for any other callable, only
    ``learning_rate`` (the Solver itself multiplies it by ``lr_decay``).
    Returns the learning rate the first update will use, or None if unknown."""
    name = getattr(rule, "__name__", None)
    if name in optim.UPDATE_RULES and rule is getattr(optim, name):
        try:
            return optim.check_config(name, cfg)["learning_rate"]
        except (TypeError, ValueError) as exc:
            inner = re.sub(r"\bconfig\b", "optim_config", str(exc))
            raise type(exc)(f"optim_config is not valid for update_rule {name!r}: "
                            f"{inner}") from None
    if "learning_rate" in cfg:
        return finite_float(cfg["learning_rate"], "optim_config['learning_rate']", low=0.0,
                            low_open=True)
    return None


def _check_checkpoint_folder(name):
    """The folder that ``checkpoint_name`` writes into must exist and be
    writable; it is not created."""
    folder = os.path.dirname(os.fspath(name)) or os.curdir
    if not os.path.isdir(folder):
        what = "is not a folder" if os.path.exists(folder) else "does not exist"
        raise ValueError(f"checkpoint_name {os.fspath(name)!r} writes into the folder "
                         f"{folder!r}, which {what}; create it first (the Solver does not)")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"checkpoint_name {os.fspath(name)!r} writes into the folder "
                         f"{folder!r}, which is not writable")


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
        after every epoch.  Its folder must exist and be writable (checked
        here; it is not created).
    print_every : int, default 10
        Print the training loss every this many iterations (when verbose).
    verbose : bool, default True
        Print the loss and accuracies during training.
    progress : bool, default False
        Show a progress bar over iterations (:mod:`lab.progress`).
    seed : int, numpy Generator or None, default 0
        Seeds this Solver's own ``np.random.default_rng``, which draws the
        minibatches and the accuracy subsets; the same seed gives the same run.
        seed=0 by default: the same minibatches on every call; pass seed=None
        for fresh randomness (``np.random.seed`` has no effect either way).

    Raises
    ------
    TypeError, ValueError
        At once, for a malformed model, data, option, ``optim_config`` or
        checkpoint folder.
    FloatingPointError
        From :meth:`train`, when training diverges: the loss, a gradient or a
        parameter became NaN or inf, or ``model.loss`` met NaN or inf in its
        activations.  The message gives the iteration, the epoch and the
        learning rate.

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
    num_classes : int or None
        C, as read from the model (see the module docstring), or None.
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
        for k, v in model.params.items():
            _check_finite(np.asarray(v), f"model.params[{k!r}]")
        self.num_classes = _model_num_classes(model)
        input_dim = getattr(model, "input_dim", None)
        input_dim = input_dim if isinstance(input_dim, tuple) else None
        d = _check_data(data, self.num_classes, input_dim)
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
        self._initial_lr = _check_optim_config(self.update_rule, self.optim_config)
        self.lr_decay = finite_float(opts["lr_decay"], "lr_decay", low=0.0, low_open=True)
        self.batch_size = positive_int(opts["batch_size"], "batch_size")
        self.num_epochs = positive_int(opts["num_epochs"], "num_epochs")
        self.num_train_samples = _optional_positive_int(opts["num_train_samples"],
                                                        "num_train_samples")
        self.num_val_samples = _optional_positive_int(opts["num_val_samples"], "num_val_samples")
        name = opts["checkpoint_name"]
        if name is not None and not isinstance(name, (str, os.PathLike)):
            raise TypeError(f"checkpoint_name must be a str or None, got {type(name).__name__}")
        if name is not None:
            _check_checkpoint_folder(name)
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
        # minibatches drawn with replacement, one at a time, from the same
        # generator as the accuracy subsets (the course's Solver)
        self._batches = minibatch_indices(self.X_train.shape[0], self.batch_size, self.rng,
                                          replace=True)
        self.epoch = 0
        self.best_val_acc = 0.0
        self.best_params = {}
        self.loss_history = []
        self.train_acc_history = []
        self.val_acc_history = []
        self.optim_configs = {p: dict(self.optim_config) for p in self.model.params}
        self._lr_used = self._initial_lr

    def _iterations_per_epoch(self):
        return max(self.X_train.shape[0] // self.batch_size, 1)

    def _diverged(self, what, t):
        """The FloatingPointError for a run that diverged at iteration ``t``
        (0-based): where, what, and the learning rate of the last update."""
        per_epoch = self._iterations_per_epoch()
        total = self.num_epochs * per_epoch
        epoch = min(t // per_epoch + 1, self.num_epochs)
        lr = self._lr_used
        if isinstance(lr, numbers.Real) and not isinstance(lr, bool):
            hint = (f"the learning rate is probably too high (learning_rate={lr:g}): "
                    f"lower it, e.g. to {lr / 10:g}")
        else:
            hint = "the step size of the update rule is probably too large: lower it"
        return FloatingPointError(f"training diverged at iteration {t + 1} of {total} (epoch "
                                  f"{epoch} of {self.num_epochs}): {what}; {hint}")

    def _largest_param(self):
        """A note naming the parameter of largest magnitude, for messages."""
        mags = {k: float(np.max(np.abs(v))) for k, v in self.model.params.items()
                if np.size(v) and np.asarray(v).dtype.kind == "f"}
        if not mags:
            return ""
        k = max(mags, key=mags.get)
        return f" (the parameters have grown to magnitudes of {mags[k]:.3g}, in {k!r})"

    def _model_loss(self, t, X, y=None, where="the minibatch"):
        """``model.loss``; once the parameters have been updated, an error about
        NaN or inf inside the model (the data and the initial parameters were
        checked to be finite) is reported as divergence."""
        try:
            return self.model.loss(X) if y is None else self.model.loss(X, y)
        except (ValueError, FloatingPointError) as exc:
            if self.loss_history and "NaN or inf" in str(exc):
                raise self._diverged(f"model.loss on {where} failed with "
                                     f"'{exc}'{self._largest_param()}", t) from exc
            raise

    def _step(self, t=None):
        """One gradient update on a random minibatch (drawn with replacement);
        ``t`` is the 0-based iteration, for messages."""
        if t is None:
            t = len(self.loss_history)
        batch_mask = next(self._batches)
        X_batch = self.X_train[batch_mask]
        y_batch = self.y_train[batch_mask]

        out = self._model_loss(t, X_batch, y_batch)
        if not (isinstance(out, tuple) and len(out) == 2):
            raise TypeError("model.loss(X, y) must return a tuple (loss, grads), got "
                            f"{type(out).__name__}")
        loss, grads = out
        loss = float(loss)
        if not math.isfinite(loss):
            raise self._diverged(f"the training loss became {loss}", t)
        missing = sorted(set(self.model.params) - set(grads))
        if missing:
            raise ValueError(f"model.loss returned no gradients for parameters {missing}")
        for p in self.model.params:
            try:
                _check_finite(np.asarray(grads[p]), f"the gradient of {p!r}")
            except ValueError as exc:
                raise self._diverged(f"{exc} (the loss was {loss:g})", t) from None
        self.loss_history.append(loss)

        for p, w in list(self.model.params.items()):
            next_w, next_config = self.update_rule(w, grads[p], self.optim_configs[p])
            self.model.params[p] = next_w
            self.optim_configs[p] = next_config
            if isinstance(next_config, Mapping):
                self._lr_used = next_config.get("learning_rate", self._lr_used)
        for p, w in self.model.params.items():
            try:
                _check_finite(np.asarray(w), f"{p!r} after the update")
            except ValueError as exc:
                raise self._diverged(str(exc), t) from None

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
        bar = getattr(self, "_bar", None)
        if bar is not None and bar.enabled:
            bar.write(msg)
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

        Raises
        ------
        ValueError
            If ``model.loss(X)`` returns scores with NaN or inf (during
            :meth:`train`, the FloatingPointError of a diverged run instead).
        """
        return self._accuracy(X, y, num_samples, batch_size)

    def _accuracy(self, X, y, num_samples=None, batch_size=100, t=None):
        """:meth:`check_accuracy`; with ``t``, the 0-based iteration of
        :meth:`train`, NaN or inf in the model is reported as divergence."""
        X = np.asarray(X)
        if X.ndim < 2 or X.shape[0] == 0:
            raise ValueError(f"X must have shape (N, ...) with N >= 1, got {X.shape}")
        y = as_labels(y, "y", n=X.shape[0], num_classes=self.num_classes)
        num_samples = _optional_positive_int(num_samples, "num_samples")
        batch_size = positive_int(batch_size, "batch_size")

        N = X.shape[0]
        if num_samples is not None and N > num_samples:
            mask = self.rng.choice(N, num_samples, replace=False)
            N = num_samples
            X, y = X[mask], y[mask]

        y_pred = []
        for start in range(0, N, batch_size):
            batch = X[start:start + batch_size]
            if t is None:
                scores = np.asarray(self.model.loss(batch))
            else:
                scores = np.asarray(self._model_loss(t, batch, where="the accuracy points"))
            if scores.ndim != 2 or scores.shape[0] != min(batch_size, N - start):
                raise ValueError(f"model.loss(X) must return scores of shape (N, C), got "
                                 f"{scores.shape} for {min(batch_size, N - start)} inputs")
            if scores.dtype.kind == "f" and not np.all(np.isfinite(scores)):
                what = (f"model.loss(X) returned scores with NaN or inf for points "
                        f"{start} to {start + len(batch) - 1}")
                if t is not None:
                    raise self._diverged(what + self._largest_param(), t)
                raise ValueError(what)
            y_pred.append(np.argmax(scores, axis=1))
        y_pred = np.concatenate(y_pred)
        return float(np.mean(y_pred == y))

    def train(self):
        """Run ``num_epochs`` epochs of optimisation, recording the histories,
        then load the best parameters (by validation accuracy) into the model.
        """
        iterations_per_epoch = self._iterations_per_epoch()
        num_iterations = self.num_epochs * iterations_per_epoch

        bar = self._bar = _progress(total=num_iterations, unit="it", enabled=self.progress)
        try:
            for t in range(num_iterations):
                self._step(t)
                bar.update(1, loss=self.loss_history[-1])

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
                    train_acc = self._accuracy(self.X_train, self.y_train,
                                               num_samples=self.num_train_samples, t=t)
                    val_acc = self._accuracy(self.X_val, self.y_val,
                                             num_samples=self.num_val_samples, t=t)
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
            self._bar = None

        for k, v in self.best_params.items():
            self.model.params[k] = v.copy()
