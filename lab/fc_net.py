"""A fully connected network of any depth in NumPy (CS231n's ``FullyConnectedNet``).

Architecture, for L = len(hidden_dims) + 1 layers and inputs of shape
(N, d_1, ..., d_k) with d_1 * ... * d_k = input_dim::

    {affine - [batchnorm] - relu} x (L - 1)  ->  affine - softmax

With ``normalization='batchnorm'`` every hidden layer normalises its affine
output over the minibatch (:func:`lab.layers.batchnorm_forward`) before the
ReLU; the last affine layer is never normalised. It is built from the sandwich
layers of :mod:`lab.layer_utils` and follows the model protocol that
:class:`lab.solver.Solver` expects: a ``params`` dict and ``loss(X, y=None)``.
As in the course, ``loss`` runs batch normalisation in training mode when it
is given labels and in test mode (running averages) when it is not, which is
how the Solver calls it to measure accuracy.
"""
from __future__ import annotations


import numpy as np

from ._validate import (as_float_array, as_labels, finite_float, float_dtype,
                        optional_seed, positive_int)
from .layer_utils import (affine_bn_relu_backward, affine_bn_relu_forward,
                          affine_relu_backward, affine_relu_forward)
from .layers import affine_backward, affine_forward, softmax_loss

__all__ = ["FullyConnectedNet"]

_NORMALIZATIONS = (None, "batchnorm")


class FullyConnectedNet:
    """{affine - [batchnorm] - relu} x (L - 1) - affine - softmax.

    Parameters
    ----------
    hidden_dims : sequence of int
        The widths of the L - 1 hidden layers (may be empty: a linear softmax
        classifier).
    input_dim : int, default 3 * 32 * 32
        D, the number of input features; inputs of any shape (N, ...) with
        D values per example are flattened.
    num_classes : int, default 10
    normalization : None or 'batchnorm', default None
        Batch normalisation after every hidden affine layer.
    reg : float >= 0, default 0.0
        L2 regularisation strength: the loss gains
        ``0.5 * reg * sum_l sum(W_l**2)`` (weights only; not b, gamma, beta).
    weight_scale : float > 0, default 1e-2
        Standard deviation of the normal distribution the weights are drawn
        from; biases start at zero, gamma at one and beta at zero.
    dtype : numpy floating dtype, default np.float32
        dtype of the parameters and of the computation; use np.float64 for
        gradient checks.
    seed : int >= 0 or None, default 0
        Seeds the ``np.random.default_rng`` that draws the weights (seed=None:
        fresh randomness; NumPy's global generator is never used).

    Attributes
    ----------
    params : dict
        ``W1`` (D, H_1), ``b1`` (H_1,), ..., ``WL`` (H_{L-1}, num_classes),
        ``bL`` (num_classes,); with batch normalisation also ``gamma1``,
        ``beta1`` (H_1,), ..., ``gamma{L-1}``, ``beta{L-1}``.
    bn_params : list of dict
        One ``bn_param`` per hidden layer (empty without batch normalisation);
        they carry the running averages between calls.
    num_layers : int
        L.
    normalization, reg, dtype, input_dim, num_classes
    """

    def __init__(self, hidden_dims, input_dim=3 * 32 * 32, num_classes=10, normalization=None,
                 reg=0.0, weight_scale=1e-2, dtype=np.float32, seed=0):
        if isinstance(hidden_dims, (str, bytes)) or not hasattr(hidden_dims, "__iter__"):
            raise TypeError(f"hidden_dims must be a sequence of positive integers, "
                            f"got {hidden_dims!r}")
        hidden = [positive_int(h, f"hidden_dims[{i}]") for i, h in enumerate(hidden_dims)]
        D = positive_int(input_dim, "input_dim")
        classes = positive_int(num_classes, "num_classes")
        if normalization not in _NORMALIZATIONS:
            raise ValueError(f"normalization must be None or 'batchnorm', "
                             f"got {normalization!r}")
        weight_scale = finite_float(weight_scale, "weight_scale", low=0.0, low_open=True)
        dt = float_dtype(dtype)
        seed = optional_seed(seed)

        self.input_dim = D
        self.num_classes = classes
        self.normalization = normalization
        self.reg = finite_float(reg, "reg", low=0.0)
        self.dtype = dt
        self.num_layers = len(hidden) + 1

        rng = np.random.default_rng(seed)
        dims = [D, *hidden, classes]
        self.params = {}
        for l in range(1, self.num_layers + 1):
            fan_in, fan_out = dims[l - 1], dims[l]
            self.params[f"W{l}"] = weight_scale * rng.standard_normal((fan_in, fan_out))
            self.params[f"b{l}"] = np.zeros(fan_out)
            if normalization == "batchnorm" and l < self.num_layers:
                self.params[f"gamma{l}"] = np.ones(fan_out)
                self.params[f"beta{l}"] = np.zeros(fan_out)
        for k, v in self.params.items():
            self.params[k] = v.astype(dt)
        self.bn_params = ([{"mode": "train"} for _ in hidden]
                          if normalization == "batchnorm" else [])

    def loss(self, X, y=None):
        """Class scores, or the loss and its gradients.

        Parameters
        ----------
        X : ndarray, shape (N, d_1, ..., d_k), d_1 * ... * d_k = input_dim
            Inputs; converted to ``self.dtype``.
        y : ndarray of int, shape (N,), optional
            Labels in [0, num_classes). Given: batch normalisation runs in
            training mode (batch statistics; running averages updated).
            None: test mode (running averages).

        Returns
        -------
        scores : ndarray, shape (N, num_classes)
            If ``y`` is None.
        loss : float
            Softmax cross-entropy plus ``0.5 * reg * sum of squared weights``,
            if ``y`` is given.
        grads : dict
            Gradients of ``loss``, with the keys and shapes of ``self.params``.

        Raises
        ------
        ValueError
            For inputs of the wrong size, and in test mode before any training
            call (the running averages do not exist yet).
        """
        X = as_float_array(X, "X")
        if (X.ndim < 2 or X.shape[0] == 0
                or int(np.prod(X.shape[1:])) != self.input_dim):
            raise ValueError(f"X must have shape (N, ...) with N >= 1 and "
                             f"input_dim = {self.input_dim} values per "
                             f"example, got {X.shape}")
        X = X.astype(self.dtype, copy=False)
        p = self.params
        L = self.num_layers
        bn = self.normalization == "batchnorm"
        if y is not None:
            y = as_labels(y, "y", n=X.shape[0], num_classes=self.num_classes)
        mode = "test" if y is None else "train"
        for bn_param in self.bn_params:
            bn_param["mode"] = mode

        h, caches = X, []
        for l in range(1, L):
            if bn:
                h, cache = affine_bn_relu_forward(h, p[f"W{l}"], p[f"b{l}"],
                                                  p[f"gamma{l}"],
                                                  p[f"beta{l}"],
                                                  self.bn_params[l - 1])
            else:
                h, cache = affine_relu_forward(h, p[f"W{l}"], p[f"b{l}"])
            caches.append(cache)
        scores, cache_last = affine_forward(h, p[f"W{L}"], p[f"b{L}"])
        if y is None:
            return scores

        data_loss, dscores = softmax_loss(scores, y)
        weights = [f"W{l}" for l in range(1, L + 1)]
        reg_loss = 0.5 * self.reg * sum(
            float(np.sum(np.square(p[k], dtype=np.float64))) for k in weights)
        loss = data_loss + reg_loss

        grads = {}
        dh, grads[f"W{L}"], grads[f"b{L}"] = affine_backward(dscores,
                                                             cache_last)
        for l in range(L - 1, 0, -1):
            if bn:
                (dh, grads[f"W{l}"], grads[f"b{l}"], grads[f"gamma{l}"],
                 grads[f"beta{l}"]) = affine_bn_relu_backward(dh,
                                                              caches[l - 1])
            else:
                dh, grads[f"W{l}"], grads[f"b{l}"] = affine_relu_backward(
                    dh, caches[l - 1])
        for k in weights:
            grads[k] = grads[k] + self.reg * p[k]
        for k in grads:
            grads[k] = grads[k].astype(p[k].dtype, copy=False)
        return loss, grads
