"""NumPy layers: forward values against PyTorch, backward passes against
numerical gradients and PyTorch autograd, sandwich layers, and bad input."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

from lab import layer_utils, layers
from lab.gradient_check import (eval_numerical_gradient, eval_numerical_gradient_array,
                                norm_rel_error, rel_error)


def rng(seed=0):
    return np.random.default_rng(seed)


def t(a, grad=False):
    """float64 torch tensor sharing nothing with the array."""
    return torch.tensor(np.array(a, dtype=np.float64), requires_grad=grad)


def num_grads(f, args, dout, h=1e-5):
    """Numerical gradients of sum(f(*args) * dout) with respect to every array in args."""
    grads = []
    for i, a in enumerate(args):
        def fi(v, i=i):
            return f(*args[:i], v, *args[i + 1:])
        grads.append(eval_numerical_gradient_array(fi, a, dout, h=h))
    return grads


def conv_fixed_case():
    x = np.linspace(-0.1, 0.5, num=2 * 3 * 4 * 4).reshape(2, 3, 4, 4)
    w = np.linspace(-0.2, 0.3, num=3 * 3 * 4 * 4).reshape(3, 3, 4, 4)
    b = np.linspace(-0.1, 0.2, num=3)
    return x, w, b


# ----------------------------------------------------------------------------
# affine, relu, softmax
# ----------------------------------------------------------------------------

def test_affine_forward_fixed_case():
    num_inputs, input_shape, output_dim = 2, (4, 5, 6), 3
    D = int(np.prod(input_shape))
    x = np.linspace(-0.1, 0.5, num=num_inputs * D).reshape(num_inputs, *input_shape)
    w = np.linspace(-0.2, 0.3, num=D * output_dim).reshape(D, output_dim)
    b = np.linspace(-0.3, 0.1, num=output_dim)
    out, _ = layers.affine_forward(x, w, b)
    expected = TF.linear(t(x).reshape(num_inputs, D), t(w).T, t(b)).numpy()
    assert out.shape == (2, 3)
    assert rel_error(out, expected) < 1e-12
    # CS231n's reference values for this case
    correct = np.array([[1.49834967, 1.70660132, 1.91485297],
                        [3.25553199, 3.5141327, 3.77273342]])
    assert rel_error(out, correct) < 1e-8


def test_affine_backward_numerical_and_torch():
    r = rng(1)
    x = r.standard_normal((10, 2, 3))
    w = r.standard_normal((6, 5))
    b = r.standard_normal(5)
    dout = r.standard_normal((10, 5))
    _, cache = layers.affine_forward(x, w, b)
    dx, dw, db = layers.affine_backward(dout, cache)
    ndx, ndw, ndb = num_grads(lambda *a: layers.affine_forward(*a)[0], [x, w, b], dout)
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == b.shape
    assert rel_error(dx, ndx) < 1e-9
    assert rel_error(dw, ndw) < 1e-9
    assert rel_error(db, ndb) < 1e-9
    xt, wt, bt = t(x, True), t(w, True), t(b, True)
    (xt.reshape(10, 6) @ wt + bt).backward(t(dout))
    assert rel_error(dx, xt.grad.numpy()) < 1e-12
    assert rel_error(dw, wt.grad.numpy()) < 1e-12


def test_relu_forward_and_backward():
    x = np.linspace(-0.5, 0.5, num=12).reshape(3, 4)
    out, cache = layers.relu_forward(x)
    assert np.array_equal(out, np.where(x > 0, x, 0.0))
    r = rng(2)
    x = r.standard_normal((10, 10))
    dout = r.standard_normal(x.shape)
    _, cache = layers.relu_forward(x)
    dx = layers.relu_backward(dout, cache)
    ndx = eval_numerical_gradient_array(lambda v: layers.relu_forward(v)[0], x, dout)
    assert rel_error(dx, ndx) < 1e-10
    assert np.array_equal(dx, dout * (x > 0))


def test_relu_keeps_float32():
    x = rng(3).standard_normal((4, 5)).astype(np.float32)
    out, cache = layers.relu_forward(x)
    assert out.dtype == np.float32
    assert layers.relu_backward(np.ones_like(x), cache).dtype == np.float32


def test_softmax_loss_against_torch_and_numerical():
    r = rng(4)
    N, C = 50, 10
    x = 0.001 * r.standard_normal((N, C))
    y = r.integers(C, size=N)
    loss, dx = layers.softmax_loss(x, y)
    assert abs(loss - np.log(C)) < 0.05  # near-uniform scores
    xt = t(x, True)
    lt = TF.cross_entropy(xt, torch.tensor(y))
    lt.backward()
    assert abs(loss - lt.item()) < 1e-12
    assert rel_error(dx, xt.grad.numpy()) < 1e-10
    ndx = eval_numerical_gradient(lambda v: layers.softmax_loss(v, y)[0], x, verbose=False)
    assert rel_error(dx, ndx) < 1e-7


def test_softmax_loss_is_stable_for_large_scores():
    x = np.array([[1000.0, 0.0, -1000.0], [0.0, 2000.0, 0.0]])
    y = np.array([0, 0])
    loss, dx = layers.softmax_loss(x, y)
    assert np.isfinite(loss) and np.all(np.isfinite(dx))
    assert abs(loss - 1000.0) < 1e-9  # row 1 costs 0, row 2 costs 2000
    lt = TF.cross_entropy(t(x), torch.tensor(y)).item()
    assert abs(loss - lt) < 1e-9


# ----------------------------------------------------------------------------
# convolution
# ----------------------------------------------------------------------------

def test_conv_forward_naive_fixed_case_against_torch():
    x, w, b = conv_fixed_case()
    out, _ = layers.conv_forward_naive(x, w, b, {"stride": 2, "pad": 1})
    expected = TF.conv2d(t(x), t(w), t(b), stride=2, padding=1).numpy()
    assert out.shape == (2, 3, 2, 2)
    assert rel_error(out, expected) < 1e-8
    # CS231n's reference values for this case
    correct = np.array([[[[-0.08759809, -0.10987781], [-0.18387192, -0.2109216]],
                         [[0.21027089, 0.21661097], [0.22847626, 0.23004637]],
                         [[0.50813986, 0.54309974], [0.64082444, 0.67101435]]],
                        [[[-0.98053589, -1.03143541], [-1.19128892, -1.24695841]],
                         [[0.69108355, 0.66880383], [0.59480972, 0.56776003]],
                         [[2.36270298, 2.36904306], [2.38090835, 2.38247847]]]])
    assert rel_error(out, correct) < 1e-7  # the reference is rounded to 8 decimals


@pytest.mark.parametrize("stride,pad,shape,kernel", [
    (1, 1, (4, 3, 5, 5), (3, 3)), (2, 0, (2, 2, 7, 5), (3, 1)),
    (3, 2, (2, 3, 5, 8), (3, 6)), (1, 0, (2, 2, 6, 6), (2, 4))])
def test_conv_naive_against_torch(stride, pad, shape, kernel):
    r = rng(5)
    x = r.standard_normal(shape)
    w = r.standard_normal((4, shape[1], *kernel))
    b = r.standard_normal(4)
    out, cache = layers.conv_forward_naive(x, w, b, {"stride": stride, "pad": pad})
    xt, wt, bt = t(x, True), t(w, True), t(b, True)
    ot = TF.conv2d(xt, wt, bt, stride=stride, padding=pad)
    assert rel_error(out, ot.detach().numpy()) < 1e-10
    dout = r.standard_normal(out.shape)
    ot.backward(t(dout))
    dx, dw, db = layers.conv_backward_naive(dout, cache)
    assert rel_error(dx, xt.grad.numpy()) < 1e-10
    assert rel_error(dw, wt.grad.numpy()) < 1e-10
    assert rel_error(db, bt.grad.numpy()) < 1e-10


def test_conv_backward_naive_numerical():
    r = rng(6)
    x = r.standard_normal((4, 3, 5, 5))
    w = r.standard_normal((2, 3, 3, 3))
    b = r.standard_normal(2)
    param = {"stride": 1, "pad": 1}
    dout = r.standard_normal((4, 2, 5, 5))
    _, cache = layers.conv_forward_naive(x, w, b, param)
    dx, dw, db = layers.conv_backward_naive(dout, cache)
    ndx, ndw, ndb = num_grads(lambda *a: layers.conv_forward_naive(*a, param)[0], [x, w, b],
                              dout)
    # central differences of a linear map are exact up to rounding, which is
    # ~1e-11 absolute here; rel_error floors the denominator at 1e-8 only, so
    # the smallest gradient entries set the error (~1e-8)
    assert rel_error(dx, ndx) < 5e-8
    assert rel_error(dw, ndw) < 5e-8
    assert rel_error(db, ndb) < 5e-8


def test_conv_naive_keeps_float32():
    x, w, b = (a.astype(np.float32) for a in conv_fixed_case())
    out, cache = layers.conv_forward_naive(x, w, b, {"stride": 2, "pad": 1})
    assert out.dtype == np.float32
    assert all(g.dtype == np.float32 for g in layers.conv_backward_naive(np.ones_like(out), cache))


# ----------------------------------------------------------------------------
# max pooling
# ----------------------------------------------------------------------------

def test_max_pool_forward_naive_fixed_case():
    x = np.linspace(-0.3, 0.4, num=2 * 3 * 4 * 4).reshape(2, 3, 4, 4)
    out, _ = layers.max_pool_forward_naive(x, {"pool_width": 2, "pool_height": 2, "stride": 2})
    expected = TF.max_pool2d(t(x), 2, stride=2).numpy()
    assert out.shape == (2, 3, 2, 2)
    assert rel_error(out, expected) < 1e-12
    correct = np.array([[[[-0.26315789, -0.24842105], [-0.20421053, -0.18947368]],
                         [[-0.14526316, -0.13052632], [-0.08631579, -0.07157895]],
                         [[-0.02736842, -0.01263158], [0.03157895, 0.04631579]]],
                        [[[0.09052632, 0.10526316], [0.14947368, 0.16421053]],
                         [[0.20842105, 0.22315789], [0.26736842, 0.28210526]],
                         [[0.32631579, 0.34105263], [0.38526316, 0.4]]]])
    assert rel_error(out, correct) < 1e-7


@pytest.mark.parametrize("ph,pw,stride,shape", [(2, 2, 2, (3, 2, 8, 8)), (3, 3, 2, (2, 3, 7, 9)),
                                                (2, 3, 1, (2, 2, 5, 6)), (2, 1, 3, (2, 2, 8, 7))])
def test_max_pool_naive_against_torch_and_numerical(ph, pw, stride, shape):
    r = rng(7)
    x = r.standard_normal(shape)
    param = {"pool_height": ph, "pool_width": pw, "stride": stride}
    out, cache = layers.max_pool_forward_naive(x, param)
    xt = t(x, True)
    ot = TF.max_pool2d(xt, (ph, pw), stride=stride)
    assert rel_error(out, ot.detach().numpy()) < 1e-14
    dout = r.standard_normal(out.shape)
    dx = layers.max_pool_backward_naive(dout, cache)
    ot.backward(t(dout))
    assert rel_error(dx, xt.grad.numpy()) < 1e-12
    ndx = eval_numerical_gradient_array(lambda v: layers.max_pool_forward_naive(v, param)[0],
                                        x, dout)
    assert rel_error(dx, ndx) < 1e-11


def test_max_pool_backward_routes_ties_to_first_max():
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 1, 1] = x[0, 0, 0, 3] = x[0, 0, 1, 2] = 1.0  # a tie in the second window
    param = {"pool_height": 2, "pool_width": 2, "stride": 2}
    out, cache = layers.max_pool_forward_naive(x, param)
    dx = layers.max_pool_backward_naive(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]), cache)
    expected = np.zeros((4, 4))
    expected[1, 1] = 1.0   # unique max
    expected[0, 3] = 2.0   # first of the two ones in row-major order
    expected[2, 0] = 3.0   # all-zero window: first entry
    expected[2, 2] = 4.0
    assert np.array_equal(dx[0, 0], expected)
    # overlapping windows accumulate
    x = np.array([[[[0.0, 5.0, 0.0, 0.0, 0.0]]]])
    out, cache = layers.max_pool_forward_naive(x, {"pool_height": 1, "pool_width": 3, "stride": 1})
    dx = layers.max_pool_backward_naive(np.array([[[[1.0, 10.0, 100.0]]]]), cache)
    assert np.array_equal(dx, np.array([[[[0.0, 11.0, 100.0, 0.0, 0.0]]]]))


# ----------------------------------------------------------------------------
# batch normalisation
# ----------------------------------------------------------------------------

def test_batchnorm_forward_train_and_test_against_torch():
    r = rng(8)
    N, D = 200, 3
    x = 3.0 + 2.5 * r.standard_normal((N, D))
    gamma = np.array([1.0, 2.0, 3.0])
    beta = np.array([11.0, 12.0, 13.0])
    rm0, rv0 = r.standard_normal(D), 1.0 + r.random(D)
    bn_param = {"mode": "train", "running_mean": rm0.copy(), "running_var": rv0.copy()}
    out, _ = layers.batchnorm_forward(x, gamma, beta, bn_param)
    expected = TF.batch_norm(t(x), t(rm0), t(rv0), t(gamma), t(beta), training=True,
                             momentum=0.1, eps=1e-5).numpy()
    assert rel_error(out, expected) < 1e-10
    assert np.allclose(out.mean(axis=0), beta) and np.allclose(out.std(axis=0), gamma, rtol=1e-4)
    # running averages, with the biased batch variance as in CS231n
    assert rel_error(bn_param["running_mean"], 0.9 * rm0 + 0.1 * x.mean(axis=0)) < 1e-12
    assert rel_error(bn_param["running_var"], 0.9 * rv0 + 0.1 * x.var(axis=0)) < 1e-12
    bn_param["mode"] = "test"
    rm, rv = bn_param["running_mean"].copy(), bn_param["running_var"].copy()
    out, _ = layers.batchnorm_forward(x, gamma, beta, bn_param)
    expected = TF.batch_norm(t(x), t(rm), t(rv), t(gamma), t(beta), training=False,
                             eps=1e-5).numpy()
    assert rel_error(out, expected) < 1e-10
    assert np.array_equal(bn_param["running_mean"], rm)


def test_batchnorm_running_statistics_converge():
    r = rng(9)
    bn_param = {"mode": "train"}
    gamma, beta = np.ones(4), np.zeros(4)
    for _ in range(60):
        layers.batchnorm_forward(2.0 + 3.0 * r.standard_normal((100, 4)), gamma, beta, bn_param)
    assert np.allclose(bn_param["running_mean"], 2.0, atol=0.3)
    assert np.allclose(bn_param["running_var"], 9.0, atol=1.5)
    bn_param["mode"] = "test"
    out, _ = layers.batchnorm_forward(2.0 + 3.0 * r.standard_normal((500, 4)), gamma, beta,
                                      bn_param)
    assert np.allclose(out.mean(axis=0), 0.0, atol=0.2)
    assert np.allclose(out.std(axis=0), 1.0, atol=0.2)


@pytest.mark.parametrize("backward", [layers.batchnorm_backward, layers.batchnorm_backward_alt])
@pytest.mark.parametrize("mode", ["train", "test"])
def test_batchnorm_backward_numerical_and_torch(backward, mode):
    r = rng(10)
    N, D = 4, 5
    x = 5 * r.standard_normal((N, D)) + 12
    gamma, beta = r.standard_normal(D), r.standard_normal(D)
    dout = r.standard_normal((N, D))
    rm, rv = r.standard_normal(D), 1.0 + r.random(D)

    def fwd(xx, g, bb):
        return layers.batchnorm_forward(xx, g, bb, {"mode": mode, "running_mean": rm.copy(),
                                                    "running_var": rv.copy()})[0]

    _, cache = layers.batchnorm_forward(x, gamma, beta, {"mode": mode, "running_mean": rm.copy(),
                                                         "running_var": rv.copy()})
    dx, dgamma, dbeta = backward(dout, cache)
    ndx, ndgamma, ndbeta = num_grads(fwd, [x, gamma, beta], dout)
    assert rel_error(dx, ndx) < 1e-7
    assert rel_error(dgamma, ndgamma) < 1e-9
    assert rel_error(dbeta, ndbeta) < 1e-9
    xt, gt, bt = t(x, True), t(gamma, True), t(beta, True)
    TF.batch_norm(xt, t(rm), t(rv), gt, bt, training=(mode == "train"), eps=1e-5).backward(t(dout))
    assert rel_error(dx, xt.grad.numpy()) < 1e-9
    assert rel_error(dgamma, gt.grad.numpy()) < 1e-10
    assert rel_error(dbeta, bt.grad.numpy()) < 1e-12


def test_batchnorm_backward_and_alt_agree():
    r = rng(11)
    x = r.standard_normal((50, 500))
    gamma, beta = r.standard_normal(500), r.standard_normal(500)
    dout = r.standard_normal((50, 500))
    _, cache = layers.batchnorm_forward(x, gamma, beta, {"mode": "train"})
    for a, b in zip(layers.batchnorm_backward(dout, cache),
                    layers.batchnorm_backward_alt(dout, cache)):
        assert rel_error(a, b) < 1e-8


def test_spatial_batchnorm_forward_against_torch():
    r = rng(12)
    N, C, H, W = 10, 4, 5, 6
    x = 4 * r.standard_normal((N, C, H, W)) + 10
    gamma, beta = np.array([3.0, 4.0, 5.0, 6.0]), np.array([6.0, 7.0, 8.0, 9.0])
    bn_param = {"mode": "train"}
    out, _ = layers.spatial_batchnorm_forward(x, gamma, beta, bn_param)
    expected = TF.batch_norm(t(x), None, None, t(gamma), t(beta), training=True,
                             eps=1e-5).numpy()
    assert out.shape == x.shape
    assert rel_error(out, expected) < 1e-10
    assert rel_error(bn_param["running_mean"], 0.1 * x.mean(axis=(0, 2, 3))) < 1e-12
    bn_param["mode"] = "test"
    out, _ = layers.spatial_batchnorm_forward(x, gamma, beta, bn_param)
    expected = TF.batch_norm(t(x), t(bn_param["running_mean"]), t(bn_param["running_var"]),
                             t(gamma), t(beta), training=False, eps=1e-5).numpy()
    assert rel_error(out, expected) < 1e-10


def test_spatial_batchnorm_backward_numerical():
    r = rng(13)
    N, C, H, W = 2, 3, 4, 5
    # unit-scale inputs keep the central differences well conditioned
    # (with x ~ 5 N(0, 1) + 12 the smallest entries of dx drift to ~1e-6)
    x = r.standard_normal((N, C, H, W))
    gamma, beta = r.standard_normal(C), r.standard_normal(C)
    dout = r.standard_normal(x.shape)
    _, cache = layers.spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"})
    dx, dgamma, dbeta = layers.spatial_batchnorm_backward(dout, cache)
    ndx, ndgamma, ndbeta = num_grads(
        lambda a, g, bb: layers.spatial_batchnorm_forward(a, g, bb, {"mode": "train"})[0],
        [x, gamma, beta], dout)
    assert rel_error(dx, ndx) < 1e-6
    assert rel_error(dgamma, ndgamma) < 1e-8
    assert rel_error(dbeta, ndbeta) < 1e-8
    xt, gt, bt = t(x, True), t(gamma, True), t(beta, True)
    TF.batch_norm(xt, None, None, gt, bt, training=True, eps=1e-5).backward(t(dout))
    assert rel_error(dx, xt.grad.numpy()) < 1e-9
    assert rel_error(dgamma, gt.grad.numpy()) < 1e-10


# ----------------------------------------------------------------------------
# layer and group normalisation
# ----------------------------------------------------------------------------

def test_layernorm_forward_and_backward():
    r = rng(14)
    N, D = 4, 6
    x = 3 * r.standard_normal((N, D)) + 2
    gamma, beta = r.standard_normal(D), r.standard_normal(D)
    out, cache = layers.layernorm_forward(x, gamma, beta, {})
    xt, gt, bt = t(x, True), t(gamma, True), t(beta, True)
    ot = TF.layer_norm(xt, (D,), gt, bt, eps=1e-5)
    assert rel_error(out, ot.detach().numpy()) < 1e-10
    dout = r.standard_normal((N, D))
    dx, dgamma, dbeta = layers.layernorm_backward(dout, cache)
    ndx, ndgamma, ndbeta = num_grads(lambda *a: layers.layernorm_forward(*a, {})[0],
                                     [x, gamma, beta], dout)
    assert rel_error(dx, ndx) < 1e-7
    assert rel_error(dgamma, ndgamma) < 1e-9
    assert rel_error(dbeta, ndbeta) < 1e-9
    ot.backward(t(dout))
    assert rel_error(dx, xt.grad.numpy()) < 1e-9


def test_spatial_groupnorm_forward_against_torch():
    r = rng(15)
    N, C, H, W, G = 2, 6, 4, 5, 2
    x = 4 * r.standard_normal((N, C, H, W)) + 10
    gamma = r.standard_normal((1, C, 1, 1))
    beta = r.standard_normal((1, C, 1, 1))
    out, _ = layers.spatial_groupnorm_forward(x, gamma, beta, G, {"eps": 1e-5})
    expected = TF.group_norm(t(x), G, t(gamma.ravel()), t(beta.ravel()), eps=1e-5).numpy()
    assert rel_error(out, expected) < 1e-10
    # with gamma = 1, beta = 0 every (image, group) has mean 0 and variance ~1
    out, _ = layers.spatial_groupnorm_forward(x, np.ones((1, C, 1, 1)), np.zeros((1, C, 1, 1)),
                                              G, {})
    groups = out.reshape(N, G, -1)
    assert np.allclose(groups.mean(axis=2), 0, atol=1e-12)
    assert np.allclose(groups.var(axis=2), 1, atol=1e-5)


def test_spatial_groupnorm_backward_numerical_and_torch():
    r = rng(16)
    N, C, H, W, G = 2, 6, 4, 5, 2
    x = r.standard_normal((N, C, H, W))  # unit scale, as for spatial batchnorm
    gamma = r.standard_normal((1, C, 1, 1))
    beta = r.standard_normal((1, C, 1, 1))
    dout = r.standard_normal(x.shape)
    _, cache = layers.spatial_groupnorm_forward(x, gamma, beta, G, {})
    dx, dgamma, dbeta = layers.spatial_groupnorm_backward(dout, cache)
    assert dgamma.shape == (1, C, 1, 1) and dbeta.shape == (1, C, 1, 1)
    ndx, ndgamma, ndbeta = num_grads(
        lambda a, g, bb: layers.spatial_groupnorm_forward(a, g, bb, G, {})[0],
        [x, gamma, beta], dout)
    assert rel_error(dx, ndx) < 1e-7
    assert rel_error(dgamma, ndgamma) < 1e-9
    assert rel_error(dbeta, ndbeta) < 1e-9
    xt, gt, bt = t(x, True), t(gamma.ravel(), True), t(beta.ravel(), True)
    TF.group_norm(xt, G, gt, bt, eps=1e-5).backward(t(dout))
    assert rel_error(dx, xt.grad.numpy()) < 1e-9
    assert rel_error(dgamma.ravel(), gt.grad.numpy()) < 1e-10


# ----------------------------------------------------------------------------
# sandwich layers
# ----------------------------------------------------------------------------

def test_affine_relu_sandwich_numerical():
    r = rng(17)
    x = r.standard_normal((2, 3, 4))
    w = r.standard_normal((12, 10))
    b = r.standard_normal(10)
    dout = r.standard_normal((2, 10))
    out, cache = layer_utils.affine_relu_forward(x, w, b)
    assert np.array_equal(out, np.maximum(layers.affine_forward(x, w, b)[0], 0))
    grads = layer_utils.affine_relu_backward(dout, cache)
    ngrads = num_grads(lambda *a: layer_utils.affine_relu_forward(*a)[0], [x, w, b], dout)
    for g, n in zip(grads, ngrads):
        assert rel_error(g, n) < 1e-8


def sandwich_close(g, n):
    """Analytic vs numerical gradient of a sandwich layer: the largest
    elementwise relative error (~1e-8, up to ~2e-7 on the smallest entries of a
    large case) and the relative error of the whole vector (~1e-10)."""
    return rel_error(g, n) < 1e-6 and norm_rel_error(n, g) < 1e-9


def assert_need_dx_false_keeps_dw_db(backward, dout, cache, grads):
    """``need_dx=False`` returns no dx and exactly the same dw and db."""
    dx_skipped, dw, db = backward(dout, cache, need_dx=False)
    assert dx_skipped is None
    assert np.array_equal(dw, grads[1]) and np.array_equal(db, grads[2])


def test_conv_relu_sandwich_numerical():
    r = rng(18)
    x = r.standard_normal((2, 3, 8, 8))
    w = r.standard_normal((3, 3, 3, 3))
    b = r.standard_normal(3)
    param = {"stride": 1, "pad": 1}
    dout = r.standard_normal((2, 3, 8, 8))
    out, cache = layer_utils.conv_relu_forward(x, w, b, param)
    assert rel_error(out, np.maximum(layers.conv_forward_naive(x, w, b, param)[0], 0)) < 1e-12
    grads = layer_utils.conv_relu_backward(dout, cache)
    ngrads = num_grads(lambda *a: layer_utils.conv_relu_forward(*a, param)[0], [x, w, b], dout)
    for g, n in zip(grads, ngrads):
        assert sandwich_close(g, n)
    assert_need_dx_false_keeps_dw_db(layer_utils.conv_relu_backward, dout, cache, grads)


def test_conv_relu_pool_sandwich_numerical_and_torch():
    r = rng(19)
    x = r.standard_normal((2, 3, 16, 16))
    w = r.standard_normal((3, 3, 3, 3))
    b = r.standard_normal(3)
    conv_param = {"stride": 1, "pad": 1}
    pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}
    dout = r.standard_normal((2, 3, 8, 8))
    out, cache = layer_utils.conv_relu_pool_forward(x, w, b, conv_param, pool_param)
    grads = layer_utils.conv_relu_pool_backward(dout, cache)
    ngrads = num_grads(lambda *a: layer_utils.conv_relu_pool_forward(*a, conv_param,
                                                                     pool_param)[0],
                       [x, w, b], dout)
    for g, n in zip(grads, ngrads):
        assert sandwich_close(g, n)
    xt, wt, bt = t(x, True), t(w, True), t(b, True)
    ot = TF.max_pool2d(TF.relu(TF.conv2d(xt, wt, bt, padding=1)), 2, stride=2)
    assert rel_error(out, ot.detach().numpy()) < 1e-12
    ot.backward(t(dout))
    for g, tt in zip(grads, (xt, wt, bt)):
        assert rel_error(g, tt.grad.numpy()) < 1e-10
    assert_need_dx_false_keeps_dw_db(layer_utils.conv_relu_pool_backward, dout, cache, grads)


def test_bn_sandwiches_numerical():
    r = rng(20)
    x = r.standard_normal((4, 2, 5, 5))
    w = r.standard_normal((3, 2, 3, 3))
    b = r.standard_normal(3)
    gamma, beta = 1 + 0.1 * r.standard_normal(3), 0.1 * r.standard_normal(3)
    conv_param = {"stride": 1, "pad": 1}
    dout = r.standard_normal((4, 3, 5, 5))
    _, cache = layer_utils.conv_bn_relu_forward(x, w, b, gamma, beta, conv_param,
                                                {"mode": "train"})
    grads = layer_utils.conv_bn_relu_backward(dout, cache)
    ngrads = num_grads(lambda *a: layer_utils.conv_bn_relu_forward(
        *a, conv_param, {"mode": "train"})[0], [x, w, b, gamma, beta], dout)
    # b has no effect after batch normalisation: both gradients are ~0
    assert np.max(np.abs(grads[2])) < 1e-10 and np.max(np.abs(ngrads[2])) < 1e-8
    for i in (0, 1, 3, 4):
        assert rel_error(grads[i], ngrads[i]) < 1e-6

    x = r.standard_normal((5, 6))
    w = r.standard_normal((6, 4))
    b = r.standard_normal(4)
    gamma, beta = 1 + 0.1 * r.standard_normal(4), 0.1 * r.standard_normal(4)
    dout = r.standard_normal((5, 4))
    _, cache = layer_utils.affine_bn_relu_forward(x, w, b, gamma, beta, {"mode": "train"})
    grads = layer_utils.affine_bn_relu_backward(dout, cache)
    ngrads = num_grads(lambda *a: layer_utils.affine_bn_relu_forward(
        *a, {"mode": "train"})[0], [x, w, b, gamma, beta], dout)
    assert np.max(np.abs(grads[2])) < 1e-10
    for i in (0, 1, 3, 4):
        assert rel_error(grads[i], ngrads[i]) < 1e-6


# ----------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------

def test_conv_bad_input():
    x, w, b = conv_fixed_case()
    with pytest.raises(ValueError, match="not a whole number"):
        layers.conv_forward_naive(x, w, b, {"stride": 3, "pad": 1})
    with pytest.raises(ValueError, match="input channels"):
        layers.conv_forward_naive(x, w[:, :2], b, {"stride": 2, "pad": 1})
    with pytest.raises(ValueError, match="b must have shape"):
        layers.conv_forward_naive(x, w, b[:2], {"stride": 2, "pad": 1})
    with pytest.raises(ValueError, match="does not fit"):
        layers.conv_forward_naive(x[:, :, :2, :2], w, b, {"stride": 1, "pad": 0})
    with pytest.raises(ValueError, match="missing"):
        layers.conv_forward_naive(x, w, b, {"stride": 2})
    with pytest.raises(TypeError, match="conv_param must be a dict"):
        layers.conv_forward_naive(x, w, b, (2, 1))
    with pytest.raises(ValueError, match="stride"):
        layers.conv_forward_naive(x, w, b, {"stride": 0, "pad": 1})
    with pytest.raises(ValueError, match="pad"):
        layers.conv_forward_naive(x, w, b, {"stride": 2, "pad": -1})
    with pytest.raises(ValueError, match="4 dimensions"):
        layers.conv_forward_naive(x[0], w, b, {"stride": 2, "pad": 1})
    bad = x.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        layers.conv_forward_naive(bad, w, b, {"stride": 2, "pad": 1})
    out, cache = layers.conv_forward_naive(x, w, b, {"stride": 2, "pad": 1})
    with pytest.raises(ValueError, match="dout must have the shape"):
        layers.conv_backward_naive(out[:, :2], cache)


def test_pool_bad_input():
    x = np.zeros((2, 3, 5, 5))
    with pytest.raises(ValueError, match="not a whole number"):
        layers.max_pool_forward_naive(x, {"pool_height": 2, "pool_width": 2, "stride": 2})
    with pytest.raises(ValueError, match="does not fit"):
        layers.max_pool_forward_naive(x, {"pool_height": 6, "pool_width": 2, "stride": 1})
    with pytest.raises(ValueError, match="missing"):
        layers.max_pool_forward_naive(x, {"pool_height": 2, "stride": 1})
    with pytest.raises(TypeError, match="pool_width"):
        layers.max_pool_forward_naive(x, {"pool_height": 2, "pool_width": 2.0, "stride": 1})


def test_affine_softmax_bad_input():
    with pytest.raises(ValueError, match=r"w must have shape \(6, M\)"):
        layers.affine_forward(np.zeros((2, 2, 3)), np.zeros((5, 4)), np.zeros(4))
    with pytest.raises(ValueError, match="b must have shape"):
        layers.affine_forward(np.zeros((2, 6)), np.zeros((6, 4)), np.zeros(3))
    with pytest.raises(ValueError, match="y must lie in"):
        layers.softmax_loss(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="2 entries"):
        layers.softmax_loss(np.zeros((2, 3)), np.array([0, 1, 2]))
    with pytest.raises(TypeError, match="integer class labels"):
        layers.softmax_loss(np.zeros((2, 3)), np.array([0.0, 1.0]))
    _, cache = layers.relu_forward(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="dout must have the shape"):
        layers.relu_backward(np.zeros((3, 2)), cache)


def test_norm_bad_input():
    x = np.zeros((4, 3))
    g, b = np.ones(3), np.zeros(3)
    with pytest.raises(ValueError, match="'train' or 'test'"):
        layers.batchnorm_forward(x, g, b, {"mode": "eval"})
    with pytest.raises(ValueError, match="missing"):
        layers.batchnorm_forward(x, g, b, {})
    with pytest.raises(ValueError, match=r"gamma must have shape \(3,\)"):
        layers.batchnorm_forward(x, np.ones(4), b, {"mode": "train"})
    with pytest.raises(ValueError, match="running_mean"):
        layers.batchnorm_forward(x, g, b, {"mode": "test", "running_mean": np.zeros(2)})
    with pytest.raises(ValueError, match="eps"):
        layers.batchnorm_forward(x, g, b, {"mode": "train", "eps": 0.0})
    x4 = np.zeros((2, 6, 3, 3))
    with pytest.raises(ValueError, match=r"gamma must have shape \(6,\)"):
        layers.spatial_batchnorm_forward(x4, np.ones(5), np.zeros(5), {"mode": "train"})
    gamma, beta = np.ones((1, 6, 1, 1)), np.zeros((1, 6, 1, 1))
    with pytest.raises(ValueError, match="G must divide"):
        layers.spatial_groupnorm_forward(x4, gamma, beta, 4, {})
    with pytest.raises(ValueError, match=r"gamma must have shape \(1, 6, 1, 1\)"):
        layers.spatial_groupnorm_forward(x4, np.ones(6), beta, 3, {})
    with pytest.raises(ValueError, match=r"beta must have shape \(1, 6, 1, 1\)"):
        layers.spatial_groupnorm_forward(x4, gamma, np.zeros((1, 3, 1, 1)), 3, {})
    with pytest.raises(TypeError, match="G must be a positive integer"):
        layers.spatial_groupnorm_forward(x4, gamma, beta, 2.0, {})
    with pytest.raises(TypeError, match="gn_param must be a dict"):
        layers.spatial_groupnorm_forward(x4, gamma, beta, 2, None)


# ----------------------------------------------------------------------------
# normalisation of values whose variance overflows the dtype
# ----------------------------------------------------------------------------

def _ref_eps(scale):
    """eps = 1e-5 in units of ``scale`` (kept positive)."""
    return max(1e-5 / scale / scale, 1e-300)


def _reference_bn(x, gamma, beta, dout, scale):
    """Batch norm of x / scale in float64 (no overflow there), its gradients
    with respect to x (divided by scale) and its batch statistics."""
    xs = x.astype(np.float64) / scale
    out, cache = layers.batchnorm_forward(xs, gamma.astype(np.float64), beta.astype(np.float64),
                                          {"mode": "train", "eps": _ref_eps(scale)})
    dx, dgamma, dbeta = layers.batchnorm_backward_alt(dout.astype(np.float64), cache)
    return out, dx / scale, dgamma, dbeta, xs.mean(axis=0) * scale, xs.var(axis=0) * scale ** 2


@pytest.mark.parametrize("dtype,big", [(np.float32, 1e20), (np.float32, 1e37), (np.float16, 300.0),
                                       (np.float64, 1e154)])
@pytest.mark.parametrize("backward", [layers.batchnorm_backward, layers.batchnorm_backward_alt])
def test_batchnorm_huge_values(dtype, big, backward):
    r = rng(30)
    x = (big * np.sign(r.standard_normal((6, 3))) * r.uniform(0.5, 1, (6, 3))).astype(dtype)
    x[:, 0] = np.array([1, -1, 1, -1, 1, -1]) * dtype(big)        # exactly +-1 after normalising
    gamma, beta = r.uniform(1, 2, 3).astype(dtype), r.standard_normal(3).astype(dtype)
    dout = r.standard_normal((6, 3)).astype(dtype)
    bn_param = {"mode": "train"}
    out, cache = layers.batchnorm_forward(x, gamma, beta, bn_param)
    assert out.dtype == dtype
    ref_out, ref_dx, ref_dgamma, ref_dbeta, ref_mean, ref_var = _reference_bn(
        x, gamma, beta, dout, float(big))
    tol = 10 * np.finfo(dtype).eps
    np.testing.assert_allclose(out, ref_out, rtol=tol, atol=tol)
    np.testing.assert_allclose((out[:, 0] - beta[0]) / gamma[0], [1, -1, 1, -1, 1, -1], rtol=tol)
    dx, dgamma, dbeta = backward(dout, cache)
    assert dx.dtype == dgamma.dtype == dbeta.dtype == dtype
    np.testing.assert_allclose(dx, ref_dx, rtol=100 * tol, atol=100 * tol * np.abs(ref_dx).max())
    np.testing.assert_allclose(dgamma, ref_dgamma, rtol=100 * tol, atol=100 * tol)
    # the running averages hold the batch statistics (kept in float64 when
    # they do not fit the dtype of x), and test mode uses them
    assert np.all(np.isfinite(bn_param["running_var"]))
    np.testing.assert_allclose(bn_param["running_mean"], 0.1 * ref_mean, rtol=1e-3,
                               atol=1e-3 * big)
    np.testing.assert_allclose(bn_param["running_var"], 0.1 * ref_var, rtol=1e-3)
    bn_param["mode"] = "test"
    out_test, _ = layers.batchnorm_forward(x, gamma, beta, bn_param)
    expected = (gamma * (x.astype(np.float64) - bn_param["running_mean"])
                / np.sqrt(bn_param["running_var"]) + beta)
    np.testing.assert_allclose(out_test, expected, rtol=100 * tol, atol=100 * tol)


def test_batchnorm_running_variance_beyond_float64_raises():
    x = np.array([[1e160], [-1e160]])
    with pytest.raises(ValueError, match=r"bn_param\['running_var'\] cannot hold the batch "
                                         r"statistics of x: they overflow float64"):
        layers.batchnorm_forward(x, np.ones(1), np.zeros(1), {"mode": "train"})


def test_batchnorm_test_mode_difference_beyond_float32():
    """x - running_mean overflows float32 although the normalised value does not."""
    x = np.array([[3e38], [0.0]], dtype=np.float32)
    bn_param = {"mode": "test", "running_mean": np.array([-3e38], dtype=np.float32),
                "running_var": np.array([1e38], dtype=np.float32)}
    out, cache = layers.batchnorm_forward(x, np.ones(1, np.float32), np.zeros(1, np.float32),
                                          bn_param)
    np.testing.assert_allclose(out[:, 0], [6e38 / np.sqrt(1e38), 3e38 / np.sqrt(1e38)], rtol=1e-6)


def test_spatial_batchnorm_huge_float32():
    r = rng(31)
    x = (1e20 * r.standard_normal((2, 3, 4, 4))).astype(np.float32)
    gamma, beta = np.ones(3, np.float32), np.zeros(3, np.float32)
    out, cache = layers.spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"})
    ref, ref_cache = layers.spatial_batchnorm_forward(x.astype(np.float64) / 1e20, gamma, beta,
                                                      {"mode": "train", "eps": 1e-45})
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
    dout = r.standard_normal(x.shape).astype(np.float32)
    dx, _, _ = layers.spatial_batchnorm_backward(dout, cache)
    ref_dx, _, _ = layers.spatial_batchnorm_backward(dout, ref_cache)
    ref_dx /= 1e20
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-4, atol=1e-4 * np.abs(ref_dx).max())


@pytest.mark.parametrize("dtype,big", [(np.float32, 1e20), (np.float16, 300.0),
                                       (np.float64, 1e160)])
def test_layernorm_and_groupnorm_huge_values(dtype, big):
    r = rng(32)
    tol = 10 * np.finfo(dtype).eps
    x = (big * r.uniform(0.2, 1, (3, 4)) * np.sign(r.standard_normal((3, 4)))).astype(dtype)
    gamma, beta = np.ones(4, dtype), np.zeros(4, dtype)
    out, cache = layers.layernorm_forward(x, gamma, beta, {})
    xs = x.astype(np.float64) / big
    ref, ref_cache = layers.layernorm_forward(xs, np.ones(4), np.zeros(4), {"eps": _ref_eps(big)})
    assert out.dtype == dtype
    np.testing.assert_allclose(out, ref, rtol=tol, atol=tol)
    dout = r.standard_normal(x.shape).astype(dtype)
    dx = layers.layernorm_backward(dout, cache)[0]
    ref_dx = layers.layernorm_backward(dout.astype(np.float64), ref_cache)[0] / big
    assert dx.dtype == dtype
    np.testing.assert_allclose(dx, ref_dx, rtol=100 * tol, atol=100 * tol * np.abs(ref_dx).max())

    x4 = big * r.uniform(0.2, 1, (2, 4, 3, 3)) * np.sign(r.standard_normal((2, 4, 3, 3)))
    x4 = x4.astype(dtype)
    g4, b4 = np.ones((1, 4, 1, 1), dtype), np.zeros((1, 4, 1, 1), dtype)
    out, cache = layers.spatial_groupnorm_forward(x4, g4, b4, 2, {})
    ref, ref_cache = layers.spatial_groupnorm_forward(x4.astype(np.float64) / big, g4, b4, 2,
                                                      {"eps": _ref_eps(big)})
    assert out.dtype == dtype
    np.testing.assert_allclose(out, ref, rtol=tol, atol=tol)
    dout = r.standard_normal(x4.shape).astype(dtype)
    dx = layers.spatial_groupnorm_backward(dout, cache)[0]
    ref_dx = layers.spatial_groupnorm_backward(dout.astype(np.float64), ref_cache)[0] / big
    np.testing.assert_allclose(dx, ref_dx, rtol=100 * tol, atol=100 * tol * np.abs(ref_dx).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normalisation_of_ordinary_values_is_the_plain_formula(dtype):
    """On values whose variance fits the dtype, the layers compute exactly
    (bit for bit) the textbook formulas, in the dtype of the input."""
    r = rng(33)
    x = (3 + 2 * r.standard_normal((7, 5))).astype(dtype)
    gamma, beta = r.standard_normal(5).astype(dtype), r.standard_normal(5).astype(dtype)
    eps = 1e-5
    mu = x.mean(axis=0)
    xmu = x - mu
    var = np.mean(xmu ** 2, axis=0)
    expected = gamma * (xmu * (1.0 / np.sqrt(var + eps))) + beta
    bn_param = {"mode": "train"}
    out, _ = layers.batchnorm_forward(x, gamma, beta, bn_param)
    assert np.array_equal(out, expected)
    assert np.array_equal(bn_param["running_var"], 0.9 * np.zeros(5, dtype) + (1 - 0.9) * var)
    bn_param["mode"] = "test"
    out, _ = layers.batchnorm_forward(x, gamma, beta, bn_param)
    rv, rm = bn_param["running_var"], bn_param["running_mean"]
    assert np.array_equal(out, gamma * ((x - rm) * (1.0 / np.sqrt(rv + eps))) + beta)
    mu = x.mean(axis=1, keepdims=True)
    xmu = x - mu
    var = np.mean(xmu ** 2, axis=1, keepdims=True)
    out, _ = layers.layernorm_forward(x, gamma, beta, {})
    assert np.array_equal(out, gamma * (xmu * (1.0 / np.sqrt(var + eps))) + beta)


# ----------------------------------------------------------------------------
# the cache never shares memory with the returned output
# ----------------------------------------------------------------------------

def r2(*shape):
    return np.linspace(-1, 1, int(np.prod(shape))).reshape(shape)


def _naive_forward_cases():
    r = rng(34)
    x4 = r.standard_normal((2, 4, 6, 6))
    w = r.standard_normal((3, 4, 3, 3))
    x2 = r.standard_normal((5, 4))
    g, b = r.standard_normal(4), r.standard_normal(4)
    rm, rv = r.standard_normal(4), 1 + r.random(4)
    gg, bg = r.standard_normal((1, 4, 1, 1)), r.standard_normal((1, 4, 1, 1))
    return [
        ("affine", lambda: layers.affine_forward(x4, r2(x4.size // 2, 3), np.ones(3)),
         layers.affine_backward),
        ("relu", lambda: layers.relu_forward(x4), layers.relu_backward),
        ("conv_naive", lambda: layers.conv_forward_naive(x4, w, np.ones(3),
                                                         {"stride": 1, "pad": 1}),
         layers.conv_backward_naive),
        ("max_pool_naive", lambda: layers.max_pool_forward_naive(
            x4, {"pool_height": 2, "pool_width": 2, "stride": 2}), layers.max_pool_backward_naive),
        ("max_pool_naive overlapping", lambda: layers.max_pool_forward_naive(
            x4, {"pool_height": 3, "pool_width": 3, "stride": 1}), layers.max_pool_backward_naive),
        ("batchnorm train", lambda: layers.batchnorm_forward(x2, g, b, {"mode": "train"}),
         layers.batchnorm_backward),
        ("batchnorm train, alt", lambda: layers.batchnorm_forward(x2, g, b, {"mode": "train"}),
         layers.batchnorm_backward_alt),
        ("batchnorm test", lambda: layers.batchnorm_forward(
            x2, g, b, {"mode": "test", "running_mean": rm.copy(), "running_var": rv.copy()}),
         layers.batchnorm_backward),
        ("spatial batchnorm", lambda: layers.spatial_batchnorm_forward(x4, g, b, {"mode": "train"}),
         layers.spatial_batchnorm_backward),
        ("spatial batchnorm 1x1", lambda: layers.spatial_batchnorm_forward(
            x4[:, :, :1, :1].copy(), g, b, {"mode": "train"}), layers.spatial_batchnorm_backward),
        ("layernorm", lambda: layers.layernorm_forward(x2, g, b, {}), layers.layernorm_backward),
        ("groupnorm", lambda: layers.spatial_groupnorm_forward(x4, gg, bg, 2, {}),
         layers.spatial_groupnorm_backward),
    ]


@pytest.mark.parametrize("forward,backward", [c[1:] for c in _naive_forward_cases()],
                         ids=[c[0] for c in _naive_forward_cases()])
def test_changing_the_output_leaves_the_backward_pass_alone(forward, backward):
    def grads(dout, cache):
        g = backward(dout, cache)
        return (g,) if isinstance(g, np.ndarray) else g

    out, cache = forward()
    _, untouched_cache = forward()
    dout = rng(35).standard_normal(out.shape)
    out *= 2
    out += 1
    got, want = grads(dout, cache), grads(dout, untouched_cache)
    assert np.any(want[0] != 0)
    for g, w in zip(got, want, strict=True):
        assert np.array_equal(g, w)
