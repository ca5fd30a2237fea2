"""A three-layer convolutional network in NumPy (CS231n's ``ThreeLayerConvNet``).

Architecture, for inputs of shape (N, C, H, W)::

    conv (F filters, fs x fs, stride 1, "same" padding) - relu - 2x2 max pool
      -> (N, F, H/2, W/2)
    affine (F * H/2 * W/2 -> hidden_dim) - relu
    affine (hidden_dim -> num_classes) - softmax

It is built from the fast layers (:mod:`lab.fast_layers`) through the sandwich
layers of :mod:`lab.layer_utils`, and follows the model protocol the
:class:`lab.solver.Solver` expects: a ``params`` dict and ``loss(X, y=None)``.
"""
from __future__ import annotations


import numpy as np

from ._validate import (as_float_array, as_labels, finite_float, float_dtype,
                        optional_seed, positive_int)
from .layer_utils import (affine_relu_backward, affine_relu_forward,
                          conv_relu_pool_backward, conv_relu_pool_forward)
from .layers import affine_backward, affine_forward, softmax_loss

__all__ = ["ThreeLayerConvNet"]


class ThreeLayerConvNet:
    """conv - relu - 2x2 max pool - affine - relu - affine - softmax.

    Parameters
    ----------
    input_dim : tuple (C, H, W), default (3, 32, 32)
        Shape of one input image; H and W must be even (for the 2x2 pool).
    num_filters : int, default 32
        F, the number of convolutional filters.
    filter_size : int, default 7
        fs, the (odd) width and height of each filter. The convolution has
        stride 1 and zero padding ``(fs - 1) // 2``, so it keeps H x W.
    hidden_dim : int, default 100
        Units in the hidden affine layer.
    num_classes : int, default 10
    weight_scale : float > 0, default 1e-3
        Standard deviation of the normal distribution the weights are drawn
        from; biases start at zero.
    reg : float >= 0, default 0.0
        L2 regularisation strength: the loss gains
        ``0.5 * reg * (sum(W1**2) + sum(W2**2) + sum(W3**2))``.
    dtype : numpy floating dtype, default np.float32
        dtype of the parameters and of the computation; use np.float64 for
        gradient checks.
    seed : int >= 0 or None, default 0
        Seeds the ``np.random.default_rng`` that draws the weights.
        seed=0 by default: the same weights on every call; pass seed=None
        for fresh randomness. The weights never come from NumPy's global
        generator, so ``np.random.seed`` has no effect on them either way.

    Attributes
    ----------
    params : dict
        ``W1`` (F, C, fs, fs), ``b1`` (F,), ``W2`` (F * H/2 * W/2, hidden_dim),
        ``b2`` (hidden_dim,), ``W3`` (hidden_dim, num_classes),
        ``b3`` (num_classes,).
    reg : float
    dtype : numpy dtype
    input_dim : tuple (C, H, W)
    num_classes : int
    conv_param : dict
        ``{"stride": 1, "pad": (fs - 1) // 2}``
    pool_param : dict
        ``{"pool_height": 2, "pool_width": 2, "stride": 2}``
    """

    def __init__(self, input_dim=(3, 32, 32), num_filters=32, filter_size=7, hidden_dim=100,
                 num_classes=10, weight_scale=1e-3, reg=0.0, dtype=np.float32, seed=0):
        if not isinstance(input_dim, (tuple, list)) or len(input_dim) != 3:
            raise ValueError(f"input_dim must be a tuple (C, H, W), got {input_dim!r}")
        C, H, W = (positive_int(v, f"input_dim[{i}]") for i, v in enumerate(input_dim))
        if H % 2 or W % 2:
            raise ValueError(f"input_dim must have even H and W for the 2x2 max pool, "
                             f"got H={H}, W={W}")
        F = positive_int(num_filters, "num_filters")
        fs = positive_int(filter_size, "filter_size")
        if fs % 2 == 0:
            raise ValueError(f"filter_size must be odd so that 'same' padding keeps the "
                             f"spatial size, got {fs}")
        hidden = positive_int(hidden_dim, "hidden_dim")
        classes = positive_int(num_classes, "num_classes")
        weight_scale = finite_float(weight_scale, "weight_scale", low=0.0, low_open=True)
        dt = float_dtype(dtype)
        seed = optional_seed(seed)

        self.input_dim = (C, H, W)
        self.num_classes = classes
        self.reg = finite_float(reg, "reg", low=0.0)
        self.dtype = dt
        self.conv_param = {"stride": 1, "pad": (fs - 1) // 2}
        self.pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}

        rng = np.random.default_rng(seed)
        pooled = F * (H // 2) * (W // 2)
        self.params = {
            "W1": weight_scale * rng.standard_normal((F, C, fs, fs)),
            "b1": np.zeros(F),
            "W2": weight_scale * rng.standard_normal((pooled, hidden)),
            "b2": np.zeros(hidden),
            "W3": weight_scale * rng.standard_normal((hidden, classes)),
            "b3": np.zeros(classes),
        }
        for k, v in self.params.items():
            self.params[k] = v.astype(dt)

    def loss(self, X, y=None):
        """Class scores, or the loss and its gradients.

        Parameters
        ----------
        X : ndarray, shape (N, C, H, W)
            Input images; converted to ``self.dtype``.
        y : ndarray of int, shape (N,), optional
            Labels in [0, num_classes).

        Returns
        -------
        scores : ndarray, shape (N, num_classes)
            If ``y`` is None.
        loss : float
            Softmax cross-entropy plus ``0.5 * reg * sum of squared weights``
            (W1, W2, W3), if ``y`` is given.
        grads : dict
            Gradients of ``loss``, with the keys and shapes of ``self.params``.
        """
        X = as_float_array(X, "X", ndim=4, shape=(None, *self.input_dim))
        if X.shape[0] == 0:
            raise ValueError(
                f"X must hold at least one image, got shape {X.shape}")
        X = X.astype(self.dtype, copy=False)
        p = self.params
        num_classes = p["W3"].shape[1]
        if y is not None:
            y = as_labels(y, "y", n=X.shape[0], num_classes=num_classes)

        h1, cache1 = conv_relu_pool_forward(X, p["W1"], p["b1"],
                                            self.conv_param, self.pool_param)
        h2, cache2 = affine_relu_forward(h1, p["W2"], p["b2"])
        scores, cache3 = affine_forward(h2, p["W3"], p["b3"])
        if y is None:
            return scores

        data_loss, dscores = softmax_loss(scores, y)
        weights = ("W1", "W2", "W3")
        reg_loss = 0.5 * self.reg * sum(
            float(np.sum(np.square(p[k], dtype=np.float64))) for k in weights)
        loss = data_loss + reg_loss

        grads = {}
        dh2, grads["W3"], grads["b3"] = affine_backward(dscores, cache3)
        dh1, grads["W2"], grads["b2"] = affine_relu_backward(dh2, cache2)
        # the gradient of the images themselves is not needed: skip it
        _, grads["W1"], grads["b1"] = conv_relu_pool_backward(dh1, cache1,
                                                              need_dx=False)
        for k in weights:
            grads[k] += self.reg * p[k]             # grads[k] is a new array
        for k in grads:
            grads[k] = grads[k].astype(p[k].dtype, copy=False)
        return loss, grads
