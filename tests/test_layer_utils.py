"""Sandwich layers: each forward equals its parts in sequence, and each
backward pass matches a numerical gradient of every input."""
import numpy as np
import pytest

from lab import layer_utils as lu
from lab import layers
from lab.gradient_check import eval_numerical_gradient_array, rel_error


def check(forward, backward, args, names, tol=1e-7, seed=0, zero=()):
    out, cache = forward(*args)
    dout = np.random.default_rng(seed).standard_normal(out.shape)
    grads = backward(dout, cache)
    assert len(grads) == len(names)
    for i, (name, g) in enumerate(zip(names, grads)):
        def f(_, i=i):
            return forward(*args)[0]
        num = eval_numerical_gradient_array(f, args[i], dout)
        assert g.shape == args[i].shape
        if name in zero:
            # cancelled by the batch mean: exactly zero, numerically rounding noise
            assert np.abs(g).max() < 1e-12 and np.abs(num).max() < 1e-8, name
            continue
        assert rel_error(num, g) < tol, (name, rel_error(num, g))


def test_affine_relu():
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((12, 10)), rng.standard_normal(10)
    out, _ = lu.affine_relu_forward(x, w, b)
    np.testing.assert_array_equal(out, np.maximum(0, x.reshape(2, -1) @ w + b))
    check(lu.affine_relu_forward, lu.affine_relu_backward, (x, w, b), ("dx", "dw", "db"))


def test_affine_bn_relu():
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal((6, 5)), rng.standard_normal((5, 4)), rng.standard_normal(4)
    gamma, beta = 1 + 0.3 * rng.standard_normal(4), rng.standard_normal(4)
    bn_param = {"mode": "train"}
    out, _ = lu.affine_bn_relu_forward(x, w, b, gamma, beta, bn_param)
    ref, _ = layers.batchnorm_forward(x @ w + b, gamma, beta, {"mode": "train"})
    np.testing.assert_allclose(out, np.maximum(0, ref), rtol=1e-12)
    assert "running_mean" in bn_param
    fwd = lambda x, w, b, g, be: lu.affine_bn_relu_forward(x, w, b, g, be, bn_param)
    check(fwd, lu.affine_bn_relu_backward, (x, w, b, gamma, beta),
          ("dx", "dw", "db", "dgamma", "dbeta"), tol=1e-6, zero=("db",))


def test_conv_relu_and_conv_relu_pool():
    rng = np.random.default_rng(2)
    x, w, b = (rng.standard_normal((2, 3, 8, 8)), rng.standard_normal((3, 3, 3, 3)),
               rng.standard_normal(3))
    conv = {"stride": 1, "pad": 1}
    pool = {"pool_height": 2, "pool_width": 2, "stride": 2}
    out, _ = lu.conv_relu_pool_forward(x, w, b, conv, pool)
    a, _ = layers.conv_forward_naive(x, w, b, conv)
    ref, _ = layers.max_pool_forward_naive(np.maximum(a, 0), pool)
    assert rel_error(out, ref) < 1e-9
    check(lambda x, w, b: lu.conv_relu_forward(x, w, b, conv), lu.conv_relu_backward,
          (x, w, b), ("dx", "dw", "db"))
    check(lambda x, w, b: lu.conv_relu_pool_forward(x, w, b, conv, pool),
          lu.conv_relu_pool_backward, (x, w, b), ("dx", "dw", "db"))
    _, cache = lu.conv_relu_pool_forward(x, w, b, conv, pool)
    dx, dw, db = lu.conv_relu_pool_backward(np.ones_like(out), cache, need_dx=False)
    assert dx is None and dw.shape == w.shape


def test_conv_bn_relu():
    rng = np.random.default_rng(3)
    x, w, b = (rng.standard_normal((3, 2, 5, 5)), rng.standard_normal((4, 2, 3, 3)),
               rng.standard_normal(4))
    gamma, beta = 1 + 0.3 * rng.standard_normal(4), rng.standard_normal(4)
    conv = {"stride": 1, "pad": 1}
    bn_param = {"mode": "train"}
    fwd = lambda x, w, b, g, be: lu.conv_bn_relu_forward(x, w, b, g, be, conv, bn_param)
    check(fwd, lu.conv_bn_relu_backward, (x, w, b, gamma, beta),
          ("dx", "dw", "db", "dgamma", "dbeta"), tol=1e-6, zero=("db",))
