"""The sparse autoencoder in Keras 3 (TensorFlow backend).

The network of :mod:`lab.autoencoder` written the Keras way: two ``Dense``
sigmoid layers, an L2 kernel regulariser on both, a KL-divergence activity
regulariser on the hidden layer, and a loss whose total -- data term plus
``model.losses`` -- is exactly the sparse autoencoder cost

    J = 1/(2N) sum_m ||x(m) - o(m)||^2 + lambda/2 (|W1|^2 + |W2|^2)
        + beta sum_b KL(rho || rho_hat_b).

Three details make the Keras total equal ``J``:

* ``keras.regularizers.L2(l)`` adds ``l * sum(w**2)``, so ``l = lambda / 2``
  (:class:`L2` is Keras's ``L2`` with its factor kept in the weight's dtype:
  Keras's own rounds it through float32).
* Keras reduces a loss by averaging it over the batch, so the per-sample loss
  is ``0.5 * sum over outputs (d - o)**2`` (:class:`HalfSquaredError`), whose
  mean over samples is ``1/(2N) sum ||d - o||^2``.
* Keras 3 divides an activity regulariser's value by the batch size before
  adding it to ``model.losses``. The sparsity penalty is a property of the
  whole batch (``rho_hat`` is a batch mean), not a per-sample sum, so
  :class:`KLSparsity` returns ``N * beta * sum KL`` and the total receives
  ``beta * sum KL``.

Dense kernels have shape ``(inputs, units)``, the NumPy convention, so
``We = (W1, W2, b1, b2)`` maps directly onto the layers' variables.
"""
from __future__ import annotations

import os
import weakref

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402
from keras import ops  # noqa: E402

from lab import autoencoder as _np_ae  # noqa: E402
from lab._validate import finite_float, nonneg_int, positive_int
from lab.progress import progress  # noqa: E402

if keras.backend.backend() != "tensorflow":  # pragma: no cover - environment guard
    raise ImportError("lab.tf needs Keras with the TensorFlow backend, but KERAS_BACKEND is "
                      f"{keras.backend.backend()!r}")

__all__ = ["KLSparsity", "L2", "HalfSquaredError", "SparseAutoencoderModel", "build_model", "set_weights", "get_weights",
           "cost_and_grad", "train_gd"]


def _dtype_name(dtype):
    if isinstance(dtype, tf.dtypes.DType):
        dtype = dtype.name
    name = np.dtype(dtype).name
    if name not in ("float32", "float64"):
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}")
    return name


@keras.saving.register_keras_serializable(package="lab")
class KLSparsity(keras.regularizers.Regularizer):
    """Activity regulariser ``beta * sum_b KL(rho || rho_hat_b)``.

    ``rho_hat_b`` is the mean of hidden unit ``b`` over the batch, clipped
    into ``[eps, 1 - eps]`` (``eps`` the dtype's machine epsilon).

    Called on activations of shape (N, L_hid), it returns
    ``N * beta * sum KL``: Keras 3 divides activity regularisation by the
    batch size, and this makes the amount added to ``model.losses`` exactly
    ``beta * sum KL``.
    """

    def __init__(self, beta, rho):
        self.beta = finite_float(beta, "beta", low=0.0)
        self.rho = finite_float(rho, "rho", low=0.0, high=1.0, low_open=True, high_open=True)

    def __call__(self, x):
        eps = float(np.finfo(x.dtype.name if hasattr(x.dtype, "name") else x.dtype).eps)
        n = ops.cast(ops.shape(x)[0], x.dtype)
        rho_hat = ops.clip(ops.mean(x, axis=0), eps, 1.0 - eps)
        rho = self.rho
        kl = rho * ops.log(rho / rho_hat) + (1.0 - rho) * ops.log((1.0 - rho) / (1.0 - rho_hat))
        return n * (self.beta * ops.sum(kl))

    def get_config(self):
        return {"beta": self.beta, "rho": self.rho}


@keras.saving.register_keras_serializable(package="lab")
class L2(keras.regularizers.L2):
    """``keras.regularizers.L2`` computed in the weight's own dtype: ``l2 * sum(w**2)``.

    Keras's ``L2`` turns its factor into a tensor before casting it to the
    weight's dtype, and a Python float becomes float32 on the way, so a
    float64 model would see ``lambda / 2`` rounded to about 7 digits. This
    subclass multiplies by the Python float directly.
    """

    def __call__(self, x):
        return self.l2 * ops.sum(ops.square(x))


@keras.saving.register_keras_serializable(package="lab")
class HalfSquaredError(keras.losses.Loss):
    """Per-sample loss ``0.5 * sum_j (y_true_j - y_pred_j)**2``.

    With Keras's default ``"sum_over_batch_size"`` reduction the loss of a
    batch of N samples is ``1/(2N) sum ||y_true - y_pred||^2``.
    """

    def __init__(self, name="half_squared_error", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        return 0.5 * ops.sum(ops.square(y_pred - y_true), axis=-1)


class SparseAutoencoderModel(keras.Model):
    """A functional ``keras.Model`` whose total loss is computed in its own dtype.

    Keras's compiled loss is always cast to ``keras.config.floatx()``
    (float32 unless changed globally), which would round the data term of a
    float64 model and break the sum with its float64 regularisation losses.
    This model's :meth:`compute_loss` returns the data term
    (:class:`HalfSquaredError` in the model's dtype) plus ``sum(model.losses)``,
    so ``fit``/``evaluate`` and :func:`cost_and_grad` all see exactly ``J``,
    without touching global Keras settings.
    """

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Data term plus ``sum(self.losses)`` (weight decay and sparsity), a scalar."""
        del x, training
        loss = self._lab_data_loss(y, y_pred, sample_weight)
        for extra in self.losses:
            loss = loss + ops.cast(extra, loss.dtype)
        return loss


def build_model(L_in, L_hid, lam, beta, rho, dtype="float64", L_out=None, seed=0):
    """The sparse autoencoder as a compiled ``keras.Model``.

    Parameters
    ----------
    L_in, L_hid : int
        Input and hidden sizes.
    lam, beta, rho : float
        Weight decay ``>= 0``, sparsity weight ``>= 0``, target activation in ``(0, 1)``.
    dtype : "float32" or "float64"
        Dtype of the layers' variables and computations (the layers get this
        dtype policy, so float64 really computes in float64).
    L_out : int, optional
        Output size, defaults to ``L_in``.
    seed : int >= 0 or None, default 0
        Initial weights are ``lab.autoencoder.init_weights(L_in, L_hid, L_out, seed)``.
        seed=0 by default: the same weights on every call; pass seed=None for
        fresh randomness (``np.random.seed`` has no effect either way).

    Returns
    -------
    model : SparseAutoencoderModel (a functional keras.Model)
        Maps (N, L_in) to (N, L_out); layers ``"hidden"`` and ``"output"``;
        compiled with :class:`HalfSquaredError` and plain SGD, so the loss
        Keras computes (``model.compute_loss``, and ``model.evaluate(x, x,
        batch_size=N)`` up to its float32 metric) is ``J``.
    """
    p = _np_ae._check_params((L_in, L_hid, lam, beta, rho))
    L_out = p.L_in if L_out is None else positive_int(L_out, "L_out")
    dt = _dtype_name(dtype)
    kernel_reg = L2(p.lam / 2.0) if p.lam else None
    inputs = keras.Input(shape=(p.L_in,), dtype=dt, name="patches")
    hidden = keras.layers.Dense(
        p.L_hid, activation="sigmoid", kernel_regularizer=kernel_reg,
        activity_regularizer=KLSparsity(p.beta, p.rho) if p.beta else None,
        dtype=dt, name="hidden")(inputs)
    outputs = keras.layers.Dense(
        L_out, activation="sigmoid", kernel_regularizer=kernel_reg,
        dtype=dt, name="output")(hidden)
    model = SparseAutoencoderModel(inputs, outputs, name="sparse_autoencoder")
    model._lab_data_loss = HalfSquaredError(dtype=dt)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1),
                  loss=model._lab_data_loss)
    np_dt = np.float64 if dt == "float64" else np.float32
    set_weights(model, _np_ae.init_weights(p.L_in, L_hid, L_out, seed=seed, dtype=np_dt))
    return model


def _layers(model):
    try:
        return model.get_layer("hidden"), model.get_layer("output")
    except (ValueError, AttributeError):
        raise TypeError("model must come from lab.tf.autoencoder.build_model (a keras.Model "
                        f"with layers 'hidden' and 'output'), got {type(model).__name__}") from None


def _model_dtype(model):
    return _layers(model)[0].kernel.dtype


def set_weights(model, We):
    """Copy NumPy weights ``We = (W1, W2, b1, b2)`` into ``model``; return it.

    ``W1`` (L_in, L_hid), ``W2`` (L_hid, L_out), ``b1`` (L_hid,), ``b2`` (L_out,).
    """
    hid, out = _layers(model)
    L_in, L_hid = hid.kernel.shape
    L_out = out.kernel.shape[1]
    W1, W2, b1, b2 = _np_ae._check_we(We, L_in, L_hid, L_out)
    dt = _model_dtype(model)
    for var, value in ((hid.kernel, W1), (out.kernel, W2), (hid.bias, b1), (out.bias, b2)):
        var.assign(np.asarray(value, dtype=dt))
    return model


def get_weights(model):
    """``model``'s weights as NumPy ``(W1, W2, b1, b2)``: ``W1`` (L_in, L_hid),
    ``W2`` (L_hid, L_out), ``b1`` (L_hid,), ``b2`` (L_out,)."""
    hid, out = _layers(model)
    return tuple(np.array(v.numpy()) for v in (hid.kernel, out.kernel, hid.bias, out.bias))


def _variables(model):
    hid, out = _layers(model)
    return [hid.kernel, out.kernel, hid.bias, out.bias]


def _as_input(model, data):
    """``data`` (N, L_in), values in [0, 1], checked once and made a tensor."""
    hid, _ = _layers(model)
    x = _np_ae._check_data(data, hid.kernel.shape[0])
    _np_ae._check_data_range(x)
    return tf.convert_to_tensor(np.ascontiguousarray(x, dtype=_model_dtype(model)))


def _total_loss(model, x):
    """The model's total loss (data term + ``model.losses``) on inputs ``x``."""
    y = model(x, training=True)
    return model.compute_loss(x=x, y=x, y_pred=y, training=True)


_COMPILED = weakref.WeakKeyDictionary()


def _functions(model):
    """Per-model compiled (``tf.function``) cost-and-gradient and GD-step functions."""
    fns = _COMPILED.get(model)
    if fns is None:
        variables = _variables(model)

        @tf.function(reduce_retracing=True)
        def cost_grad(x):
            with tf.GradientTape() as tape:
                J = _total_loss(model, x)
            return J, tape.gradient(J, variables)

        @tf.function(reduce_retracing=True)
        def gd_step(x, lr):
            J, grads = cost_grad(x)
            for v, g in zip(variables, grads):
                v.assign_sub(lr * g)
            return J

        fns = {"cost_grad": cost_grad, "gd_step": gd_step}
        # Each model traces its own functions once; TensorFlow counts traces by
        # source code, across models, and would call a sweep over a few
        # models "excessive retracing". The flag silences that false alarm.
        for fn in fns.values():
            fn._omit_frequent_tracing_warning = True
        _COMPILED[model] = fns
    return fns


def cost_and_grad(model, data):
    """``J`` and its gradient by ``tf.GradientTape``, in the NumPy convention.

    Parameters
    ----------
    model : keras.Model from :func:`build_model`
    data : ndarray, shape (N, L_in), values in [0, 1]

    Returns
    -------
    J : float
        Data term plus ``model.losses`` (weight decay, sparsity).
    dWe : tuple of ndarrays
        ``dW1`` (L_in, L_hid), ``dW2`` (L_hid, L_out), ``db1`` (L_hid,), ``db2`` (L_out,).
    """
    x = _as_input(model, data)
    J, grads = _functions(model)["cost_grad"](x)
    J = float(J)
    if not np.isfinite(J):
        _diagnose_nonfinite(model, J)
    return J, tuple(np.array(g.numpy()) for g in grads)


def _diagnose_nonfinite(model, J):
    for name, w in zip(("W1", "W2", "b1", "b2"), get_weights(model)):
        if not np.all(np.isfinite(w)):
            raise ValueError(f"model weight {name} contains NaN or inf")
    raise ValueError(f"the cost overflowed to {J} with finite inputs; the weights or data are "
                     "far too large for this dtype")


def train_gd(model, data, lr, num_iters, verbose=False, print_every=100):
    """Full-batch gradient descent ``w <- w - lr * dJ/dw`` on ``model`` (in place).

    A custom loop: each step is one compiled ``tf.function`` that computes
    ``J`` under a ``GradientTape`` and updates the variables.

    Parameters
    ----------
    model : keras.Model from :func:`build_model`
    data : ndarray, shape (N, L_in), values in [0, 1]
        Checked once (range and finiteness), not at every step.
    lr : float
        Step size, > 0.
    num_iters : int

    Returns
    -------
    history : ndarray, shape (num_iters,)
        ``J`` at the start of each step.
    """
    lr = finite_float(lr, "lr", low=0.0, low_open=True)
    num_iters = nonneg_int(num_iters, "num_iters")
    print_every = positive_int(print_every, "print_every")
    x = _as_input(model, data)
    lr_t = tf.constant(lr, dtype=_model_dtype(model))
    step = _functions(model)["gd_step"]
    history = np.empty(num_iters)
    bar = progress(total=num_iters, desc="train_gd (Keras)", enabled=bool(verbose))
    for i in range(num_iters):
        history[i] = float(step(x, lr_t))
        if not np.isfinite(history[i]):
            _diagnose_nonfinite(model, history[i])
        bar.update(**({"J": history[i]} if i % print_every == 0 or i == num_iters - 1 else {}))
    bar.close()
    return history
