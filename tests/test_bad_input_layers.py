"""Bad input to the layers and the gradient checks: one table per module of
calls that must raise, with the exception and the words its message must
hold (the argument, what was received, what was expected). Without these
checks each call would return a result without a word: a gradient of zeros,
an ignored key, a statistic made up from zeros."""
import numpy as np
import pytest

from lab import fast_layers, layers
from lab.gradient_check import (eval_numerical_gradient, eval_numerical_gradient_array,
                                grad_check_sparse)

X2 = np.arange(12.0).reshape(4, 3)
G3, B3 = np.ones(3), np.zeros(3)
X4 = np.arange(2 * 6 * 4 * 4, dtype=float).reshape(2, 6, 4, 4) / 10
W4, BW = np.ones((2, 6, 3, 3)), np.zeros(2)
G6, B6 = np.ones(6), np.zeros(6)
GG, BG = np.ones((1, 6, 1, 1)), np.zeros((1, 6, 1, 1))
POOL = {"pool_height": 2, "pool_width": 2, "stride": 2}


def bn(param, x=X2):
    return layers.batchnorm_forward(x, G3, B3, param)


def sbn(param):
    return layers.spatial_batchnorm_forward(X4, G6, B6, param)


LAYERS_BAD = [
    # unknown keys in the parameter dicts
    ("bn_param misspelt momentum", lambda: bn({"mode": "train", "momentun": 0.5}), ValueError,
     r"bn_param has unknown key\(s\) \['momentun'\] \(did you mean 'momentun' -> 'momentum'\?\)"
     r"; accepted keys are \['mode', 'eps', 'momentum', 'running_mean', 'running_var'\]"),
    ("bn_param unknown key in test mode",
     lambda: bn({"mode": "test", "running_mean": G3, "running_var": G3, "epsilon": 1e-3}),
     ValueError, r"bn_param has unknown key\(s\) \['epsilon'\].*'eps'"),
    ("spatial bn_param unknown key", lambda: sbn({"mode": "train", "momemtum": 0.1}),
     ValueError, r"bn_param has unknown key\(s\) \['momemtum'\]"),
    ("conv_param dilation", lambda: layers.conv_forward_naive(
        X4, W4, BW, {"stride": 1, "pad": 1, "dilation": 2}), ValueError,
     r"conv_param has unknown key\(s\) \['dilation'\]; accepted keys are \['stride', 'pad'\]"),
    ("conv_param misspelt pad", lambda: layers.conv_forward_naive(
        X4, W4, BW, {"stride": 1, "pad": 1, "padding": 1}), ValueError,
     r"conv_param has unknown key\(s\) \['padding'\] \(did you mean 'padding' -> 'pad'\?\)"),
    ("pool_param unknown key", lambda: layers.max_pool_forward_naive(X4, {**POOL, "pad": 1}),
     ValueError, r"pool_param has unknown key\(s\) \['pad'\]; accepted keys are "
                 r"\['pool_height', 'pool_width', 'stride'\]"),
    ("gn_param misspelt eps", lambda: layers.spatial_groupnorm_forward(
        X4, GG, BG, 2, {"epsilon": 1e-3}), ValueError,
     r"gn_param has unknown key\(s\) \['epsilon'\].*accepted keys are \['eps', 'mode'\]"),
    ("gn_param bad mode", lambda: layers.spatial_groupnorm_forward(X4, GG, BG, 2, {"mode": "eval"}),
     ValueError, r"gn_param\['mode'\] must be 'train' or 'test', got 'eval'"),
    ("ln_param unknown key", lambda: layers.layernorm_forward(X2, G3, B3, {"momentum": 0.9}),
     ValueError, r"ln_param has unknown key\(s\) \['momentum'\]"),
    # test mode needs running averages
    ("bn test mode without running stats", lambda: bn({"mode": "test"}), ValueError,
     r"bn_param\['mode'\] is 'test'.*no 'running_mean' or 'running_var'.*mode 'train' first"
     r".*running_mean and running_var of shape \(3,\)"),
    ("bn test mode without running_var", lambda: bn({"mode": "test", "running_mean": G3}),
     ValueError, r"bn_param\['mode'\] is 'test'.*no 'running_var':"),
    ("spatial bn test mode without running stats", lambda: sbn({"mode": "test"}), ValueError,
     r"no 'running_mean' or 'running_var'.*shape \(6,\)"),
    # running averages
    ("bn negative running_var, test",
     lambda: bn({"mode": "test", "running_mean": G3, "running_var": np.array([1.0, -0.5, 2.0])}),
     ValueError, r"bn_param\['running_var'\] must be non-negative \(a variance\), got -0.5 "
                 r"for feature 1"),
    ("bn negative running_var, train",
     lambda: bn({"mode": "train", "running_mean": G3, "running_var": -G3}),
     ValueError, r"bn_param\['running_var'\] must be non-negative"),
    ("bn running_var of the wrong shape",
     lambda: bn({"mode": "test", "running_mean": G3, "running_var": np.ones(4)}),
     ValueError, r"bn_param\['running_var'\] must have shape \(3\), got \(4,\)"),
    ("bn running_mean of the wrong shape",
     lambda: bn({"mode": "train", "running_mean": np.zeros((1, 3))}),
     ValueError, r"bn_param\['running_mean'\] must have shape \(3\), got \(1, 3\)"),
]


@pytest.mark.parametrize("call,exc,match", [c[1:] for c in LAYERS_BAD],
                         ids=[c[0] for c in LAYERS_BAD])
def test_layers_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


FAST_BAD = [
    ("conv_param dilation", lambda: fast_layers.conv_forward_fast(
        X4, W4, BW, {"stride": 1, "pad": 1, "dilation": 2}), ValueError,
     r"conv_param has unknown key\(s\) \['dilation'\]; accepted keys are \['stride', 'pad'\]"),
    ("conv_param groups", lambda: fast_layers.conv_forward_fast(
        X4, W4, BW, {"stride": 1, "pad": 0, "groups": 2}), ValueError,
     r"conv_param has unknown key\(s\) \['groups'\]"),
    ("pool_param padding", lambda: fast_layers.max_pool_forward_fast(X4, {**POOL, "padding": 0}),
     ValueError, r"pool_param has unknown key\(s\) \['padding'\]"),
    ("pool_param misspelt stride", lambda: fast_layers.max_pool_forward_fast(
        X4, {"pool_height": 2, "pool_width": 2, "stride": 2, "strides": 1}), ValueError,
     r"pool_param has unknown key\(s\) \['strides'\] \(did you mean 'strides' -> 'stride'\?\)"),
]


@pytest.mark.parametrize("call,exc,match", [c[1:] for c in FAST_BAD],
                         ids=[c[0] for c in FAST_BAD])
def test_fast_layers_bad_input_table(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def _square_sum(v):
    return float(np.sum(v.astype(np.float64) ** 2))


def _x16():
    return np.array([0.5, 1.0, 2.0], dtype=np.float16)


GRADIENT_CHECK_BAD = [
    ("float16, eval_numerical_gradient",
     lambda: eval_numerical_gradient(_square_sum, _x16()), TypeError,
     r"x has dtype float16, too coarse.*use float64"),
    ("float16, eval_numerical_gradient_array",
     lambda: eval_numerical_gradient_array(lambda v: v * 2, _x16(), np.ones(3)), TypeError,
     r"x has dtype float16.*float64"),
    ("float16, grad_check_sparse",
     lambda: grad_check_sparse(_square_sum, _x16(), 2 * _x16()), TypeError,
     r"x has dtype float16.*float64"),
    ("float16 with a step it could hold",
     lambda: eval_numerical_gradient(_square_sum, _x16(), h=0.1), TypeError, r"float16"),
    ("float32 entries too large for h",
     lambda: eval_numerical_gradient(_square_sum, np.array([1.0, 1e4], dtype=np.float32)),
     ValueError, r"x \+ h or x - h rounds back to x in float32 for 1 entry "
                 r"\(e.g. x\[1\] = np.float32\(10000.0\) with h = 1e-05\).*float64.*larger h"),
    ("float64 entries too large for h",
     lambda: eval_numerical_gradient_array(lambda v: v, np.array([[1e12, 3e12]]), np.ones((1, 2))),
     ValueError, r"rounds back to x in float64 for 2 entries \(e.g. x\[0, 0\]"),
    ("grad_check_sparse, float32 entry too large",
     lambda: grad_check_sparse(_square_sum, np.full(4, 1e4, dtype=np.float32), np.zeros(4)),
     ValueError, r"rounds back to x in float32"),
    ("x with NaN", lambda: eval_numerical_gradient(_square_sum, np.array([1.0, np.nan])),
     ValueError, r"x contains NaN or inf"),
    ("x with inf", lambda: eval_numerical_gradient_array(
        lambda v: v, np.array([np.inf, 1.0]), np.ones(2)), ValueError, r"x contains NaN or inf"),
    ("analytic_grad of another shape", lambda: grad_check_sparse(
        _square_sum, np.ones((3, 4)), np.zeros((6, 8))), ValueError,
     r"analytic_grad must have the shape of x \(3, 4\), got \(6, 8\)"),
    ("analytic_grad transposed", lambda: grad_check_sparse(
        _square_sum, np.ones((3, 4)), np.zeros((4, 3))), ValueError,
     r"analytic_grad must have the shape of x \(3, 4\), got \(4, 3\)"),
    ("num_checks zero", lambda: grad_check_sparse(_square_sum, np.ones(3), np.zeros(3),
                                                  num_checks=0),
     ValueError, r"num_checks must be a positive integer, got 0"),
]


@pytest.mark.parametrize("call,exc,match", [c[1:] for c in GRADIENT_CHECK_BAD],
                         ids=[c[0] for c in GRADIENT_CHECK_BAD])
def test_gradient_check_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_accepted_keys_still_work():
    """Every key the docstrings name is accepted, including those that
    batchnorm_forward writes back into bn_param."""
    bn_param = {"mode": "train", "eps": 1e-5, "momentum": 0.9}
    layers.batchnorm_forward(X2, G3, B3, bn_param)
    assert set(bn_param) == {"mode", "eps", "momentum", "running_mean", "running_var"}
    bn_param["mode"] = "test"
    layers.batchnorm_forward(X2, G3, B3, bn_param)
    layers.layernorm_forward(X2, G3, B3, {"eps": 1e-5, "mode": "test"})
    layers.spatial_groupnorm_forward(X4, GG, BG, 3, {"eps": 1e-5, "mode": "train"})
    conv_param = {"stride": 1, "pad": 1}
    layers.conv_forward_naive(X4, W4, BW, conv_param)
    fast_layers.conv_forward_fast(X4, W4, BW, conv_param)
    layers.max_pool_forward_naive(X4, POOL)
    fast_layers.max_pool_forward_fast(X4, POOL)
    x32 = np.array([0.5, 1.0, 2.0], dtype=np.float32)
    assert np.allclose(eval_numerical_gradient(_square_sum, x32, h=1e-2), 2 * x32, rtol=1e-3)
