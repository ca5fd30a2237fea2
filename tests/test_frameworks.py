"""Part III's networks in TensorFlow/Keras and PyTorch: every version of each
network, in both backends, is the same function of the same weights.

Fast: tiny random inputs; the smoke tests train on a small synthetic data set
(tests/test_frameworks_cifar.py trains on 1,000 CIFAR-10 images).
"""
import numpy as np
import pytest

import lab.tf  # noqa: F401  (first: quiets TensorFlow before it loads)
from lab.tf import barebones as tbb, models as tm, train as ttr
from lab.torch import barebones as pbb, models as pm, train as ptr

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
import torch  # noqa: E402

CONV_PARAMS = (3 * 32 * 25 + 32) + (32 * 16 * 9 + 16) + (16 * 32 * 32 * 10 + 10)
FC_WEIGHTS = 3 * 32 * 32 * 4000 + 4000 * 10


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-8))


def np_params(params):
    return [tbb._as_numpy(p) for p in params]


def tf_vars(params):
    return [tf.Variable(np.asarray(p, np.float32)) for p in params]


def torch_leaves(params):
    return [torch.tensor(np.asarray(p, np.float32), requires_grad=True) for p in params]


def tf_convnets(H=32, W=32, c1=32, c2=16):
    return {"subclassed": tm.ThreeLayerConvNet(3, c1, c2, 10, image_size=(H, W)),
            "sequential": tm.three_layer_convnet_sequential(3, c1, c2, 10, image_size=(H, W)),
            "functional": tm.three_layer_convnet_functional(3, c1, c2, 10, image_size=(H, W))}


def torch_convnets(H=32, W=32, c1=32, c2=16):
    return {"nn.Module": pm.ThreeLayerConvNet(3, c1, c2, 10, image_size=(H, W)),
            "nn.Sequential": pm.three_layer_convnet_sequential(3, c1, c2, 10, image_size=(H, W))}


def n_params_tf(model):
    return int(sum(np.prod(w.shape) for w in model.weights))


def n_params_torch(model):
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def x_nchw():
    return np.random.default_rng(1).standard_normal((5, 3, 32, 32)).astype(np.float32)


# ------------------------------------------------------------------ shapes

def test_convnet_parameter_count_every_version():
    """conv1 3*32*25+32, conv2 32*16*9+16, fc 16*32*32*10+10, in every version."""
    assert sum(int(np.prod(p.shape)) for p in tbb.three_layer_convnet_init()) == CONV_PARAMS
    assert sum(p.numel() for p in pbb.three_layer_convnet_init()) == CONV_PARAMS
    for name, m in tf_convnets().items():
        tm.set_params(m, tbb.three_layer_convnet_init())  # builds the subclassed one
        assert n_params_tf(m) == CONV_PARAMS, name
    for name, m in torch_convnets().items():
        assert n_params_torch(m) == CONV_PARAMS, name
    shapes = [tuple(p.shape) for p in tbb.three_layer_convnet_init()]
    assert shapes == [(5, 5, 3, 32), (32,), (3, 3, 32, 16), (16,), (16384, 10), (10,)]
    shapes = [tuple(p.shape) for p in pbb.three_layer_convnet_init()]
    assert shapes == [(32, 3, 5, 5), (32,), (16, 32, 3, 3), (16,), (16384, 10), (10,)]


def test_two_layer_parameter_count_every_version():
    """Hidden 4000: barebones w1, w2 without biases; the models add 4000 + C biases
    (8x8 images here, to keep the test fast)."""
    D, weights = 3 * 8 * 8, 3 * 8 * 8 * 4000 + 4000 * 10
    assert sum(int(np.prod(p.shape)) for p in tbb.two_layer_fc_init(D)) == weights
    assert sum(p.numel() for p in pbb.two_layer_fc_init(D)) == weights
    assert [tuple(p.shape) for p in pbb.two_layer_fc_init()] == [(3072, 4000), (4000, 10)]
    keras_models = [tm.TwoLayerFC(D, 4000, 10), tm.two_layer_fc_sequential(D, 4000, 10, input_shape=(8, 8, 3)),
                    tm.two_layer_fc_functional(D, 4000, 10, input_shape=(8, 8, 3))]
    keras_models[0](np.zeros((1, 8, 8, 3), np.float32))
    for m in keras_models:
        assert n_params_tf(m) == weights + 4010
    for m in [pm.TwoLayerFC(D, 4000, 10), pm.two_layer_fc_sequential(D, 4000, 10)]:
        assert n_params_torch(m) == weights + 4010
    assert FC_WEIGHTS == 3072 * 4000 + 40000


def test_paddings_filters_and_wiring_are_the_courses():
    """5x5 then 3x3, stride 1, padding 2 then 1 ('same' in Keras), in that order."""
    for name, m in tf_convnets().items():
        convs = [layer for layer in m.layers if isinstance(layer, keras.layers.Conv2D)]
        assert [c.kernel_size for c in convs] == [(5, 5), (3, 3)], name
        assert [c.padding for c in convs] == ["same", "same"], name
        assert [c.strides for c in convs] == [(1, 1), (1, 1)], name
        assert [c.filters for c in convs] == [32, 16], name
    for name, m in torch_convnets().items():
        convs = [c for c in m.modules() if isinstance(c, torch.nn.Conv2d)]
        assert [c.kernel_size for c in convs] == [(5, 5), (3, 3)], name
        assert [c.padding for c in convs] == [(2, 2), (1, 1)], name
        assert [c.stride for c in convs] == [(1, 1), (1, 1)], name
        assert [(c.in_channels, c.out_channels) for c in convs] == [(3, 32), (32, 16)], name


def _np_conv(x, w, b, pad):
    """NumPy reference: x (N, C, H, W), w (F, C, k, k), zero padding ``pad``, stride 1."""
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    k = w.shape[2]
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))
    return np.einsum("nchwkl,fckl->nfhw", win, w) + b[None, :, None, None]


def test_convnets_equal_a_numpy_reference(x_nchw):
    """conv(pad 2) - relu - conv(pad 1) on the first relu - relu - fc, in float64 NumPy."""
    p = np_params(pbb.three_layer_convnet_init(seed=3))
    p[1] += 0.1
    p[3] -= 0.05  # non-zero biases, so that they are tested too
    x = x_nchw.astype(np.float64)
    r1 = np.maximum(_np_conv(x, p[0], p[1], 2), 0)
    r2 = np.maximum(_np_conv(r1, p[2], p[3], 1), 0)
    ref = r2.reshape(len(x), -1) @ p[4] + p[5]
    got = pbb.three_layer_convnet(torch.as_tensor(x_nchw), torch_leaves(p)).detach().numpy()
    assert rel(got, ref) < 1e-5
    got = tbb.three_layer_convnet(tf.constant(x_nchw.transpose(0, 2, 3, 1)),
                                  tf_vars(tbb.convert_params(p))).numpy()
    assert rel(got, ref) < 1e-5


# ------------------------------------------------ same weights, same scores

def test_tf_convnet_versions_agree(x_nchw):
    x = x_nchw.transpose(0, 2, 3, 1)
    p = tbb.three_layer_convnet_init(seed=1)
    ref = tbb.three_layer_convnet(tf.constant(x), p).numpy()
    for name, m in tf_convnets().items():
        tm.set_params(m, p)
        assert rel(m(x).numpy(), ref) < 1e-5, name
        assert all(np.array_equal(a, b) for a, b in zip(tm.get_params(m), np_params(p))), name


def test_torch_convnet_versions_agree(x_nchw):
    p = pbb.three_layer_convnet_init(seed=1)
    ref = pbb.three_layer_convnet(torch.as_tensor(x_nchw), p).detach().numpy()
    for name, m in torch_convnets().items():
        pm.set_params(m, p)
        with torch.no_grad():
            assert rel(m(torch.as_tensor(x_nchw)).numpy(), ref) < 1e-5, name
        assert all(np.array_equal(a, b) for a, b in zip(pm.get_params(m), np_params(p))), name


def _two_layer_case(seed=2):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((4, 3, 8, 8)).astype(np.float32)
    w = np_params(pbb.two_layer_fc_init(3 * 8 * 8, 50, 10, seed=seed))
    return x, w


def test_two_layer_versions_agree_in_each_backend():
    """Models with zero biases give the barebones (bias-free) scores."""
    x, w = _two_layer_case()
    ref = pbb.two_layer_fc(torch.as_tensor(x), torch_leaves(w)).detach().numpy()
    for m in [pm.TwoLayerFC(192, 50, 10), pm.two_layer_fc_sequential(192, 50, 10)]:
        pm.set_params(m, w)
        with torch.no_grad():
            assert rel(m(torch.as_tensor(x)).numpy(), ref) < 1e-5
    xh, wt = x.transpose(0, 2, 3, 1), tbb.convert_params(w, image_size=(8, 8))
    ref_tf = tbb.two_layer_fc(tf.constant(xh), tf_vars(wt)).numpy()
    for m in [tm.TwoLayerFC(192, 50, 10), tm.two_layer_fc_sequential(192, 50, 10, input_shape=(8, 8, 3)),
              tm.two_layer_fc_functional(192, 50, 10, input_shape=(8, 8, 3))]:
        m(xh)
        tm.set_params(m, wt)
        assert rel(m(xh).numpy(), ref_tf) < 1e-5
    assert rel(ref_tf, ref) < 1e-5  # and across backends


def test_tf_and_torch_convnets_agree(x_nchw):
    """Same weights: kernels OIHW <-> HWIO, fc rows (c, h, w) <-> (h, w, c)."""
    p_torch = pbb.three_layer_convnet_init(seed=4)
    s_torch = pbb.three_layer_convnet(torch.as_tensor(x_nchw), p_torch).detach().numpy()
    p_tf = tbb.convert_params(p_torch)
    x = x_nchw.transpose(0, 2, 3, 1)
    s_tf = tbb.three_layer_convnet(tf.constant(x), tf_vars(p_tf)).numpy()
    assert rel(s_tf, s_torch) < 1e-5
    for name, m in tf_convnets().items():
        tm.set_params(m, p_tf)
        assert rel(m(x).numpy(), s_torch) < 1e-5, name
    back = pbb.convert_params(p_tf)
    assert all(np.array_equal(a, b) for a, b in zip(back, np_params(p_torch)))
    # the permutation of the fc rows matters: kernels converted, rows left as they were
    naive = list(p_tf)
    naive[4] = np_params(p_torch)[4]
    wrong = tbb.three_layer_convnet(tf.constant(x), tf_vars(naive)).numpy()
    assert rel(wrong, s_torch) > 1e-2


def test_tf_and_torch_two_layer_nets_agree(x_nchw):
    w_tf = tbb.two_layer_fc_init(seed=5)
    s_tf = tbb.two_layer_fc(tf.constant(x_nchw.transpose(0, 2, 3, 1)), w_tf).numpy()
    s_torch = pbb.two_layer_fc(torch.as_tensor(x_nchw),
                               torch_leaves(pbb.convert_params(w_tf))).detach().numpy()
    assert rel(s_torch, s_tf) < 1e-5
    assert all(np.array_equal(a, b) for a, b in
               zip(tbb.convert_params(pbb.convert_params(w_tf)), np_params(w_tf)))


# --------------------------------------------------------------- one SGD step

def _small_convnet_case():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 3, 6, 6)).astype(np.float32)
    y = np.array([0, 4, 9])
    p = np_params(pbb.three_layer_convnet_init(3, 4, 5, 10, image_size=(6, 6), seed=6))
    p[1] += 0.1
    return x, y, p


@pytest.mark.parametrize("compiled", [False, True])
def test_tf_training_step_is_sgd_with_torch_gradients(compiled):
    """w - lr * dw, the gradient of the mean cross-entropy taken by PyTorch's autodiff."""
    x, y, p = _small_convnet_case()
    lr = 0.05
    leaves = torch_leaves(p)
    loss = torch.nn.functional.cross_entropy(pbb.three_layer_convnet(torch.as_tensor(x), leaves),
                                             torch.as_tensor(y))
    loss.backward()
    expected = [w.detach().numpy() - lr * w.grad.numpy() for w in leaves]
    params = tf_vars(tbb.convert_params(p, image_size=(6, 6)))
    step = tbb.compiled_training_step if compiled else tbb.training_step
    got_loss = step(tbb.three_layer_convnet, tf.constant(x.transpose(0, 2, 3, 1)),
                    tf.constant(y), params, lr)
    assert abs(float(got_loss) - loss.item()) < 1e-5
    for a, b in zip(pbb.convert_params(params, image_size=(6, 6)), expected):
        assert rel(a, b) < 1e-5


def test_torch_training_step_is_sgd_with_tf_gradients():
    x, y, p = _small_convnet_case()
    lr = 0.05
    tfp = tf_vars(tbb.convert_params(p, image_size=(6, 6)))
    with tf.GradientTape() as tape:
        scores = tbb.three_layer_convnet(tf.constant(x.transpose(0, 2, 3, 1)), tfp)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, scores))
    grads = pbb.convert_params(tape.gradient(loss, tfp), image_size=(6, 6))
    expected = [w - lr * g for w, g in zip(p, grads)]
    leaves = torch_leaves(p)
    got_loss = pbb.training_step(pbb.three_layer_convnet, torch.as_tensor(x), torch.as_tensor(y),
                                 leaves, lr)
    assert abs(got_loss - float(loss)) < 1e-5
    for a, b in zip(leaves, expected):
        assert rel(a.detach().numpy(), b) < 1e-5
        assert not a.grad.any()  # zeroed for the next step


def test_two_layer_step_equals_a_hand_gradient():
    """A tiny two-layer case whose gradient is written out by hand in NumPy."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 6)).astype(np.float32)
    y = np.array([0, 2, 1, 2])
    w1 = rng.standard_normal((6, 5)).astype(np.float32)
    w2 = rng.standard_normal((5, 3)).astype(np.float32)
    lr = 0.1
    h = np.maximum(x @ w1, 0)
    s = h @ w2
    pr = np.exp(s - s.max(1, keepdims=True))
    pr /= pr.sum(1, keepdims=True)
    ds = pr.copy()
    ds[np.arange(4), y] -= 1
    ds /= 4
    dw2 = h.T @ ds
    dw1 = x.T @ ((ds @ w2.T) * (h > 0))
    loss = -np.mean(np.log(pr[np.arange(4), y]))
    tv = tf_vars([w1, w2])
    got = tbb.training_step(tbb.two_layer_fc, tf.constant(x), tf.constant(y), tv, lr)
    assert abs(float(got) - loss) < 1e-5
    assert rel(tv[0].numpy(), w1 - lr * dw1) < 1e-5 and rel(tv[1].numpy(), w2 - lr * dw2) < 1e-5
    pv = torch_leaves([w1, w2])
    got = pbb.training_step(pbb.two_layer_fc, torch.as_tensor(x), torch.as_tensor(y), pv, lr)
    assert abs(got - loss) < 1e-5
    assert rel(pv[0].detach().numpy(), w1 - lr * dw1) < 1e-5
    assert rel(pv[1].detach().numpy(), w2 - lr * dw2) < 1e-5


# ------------------------------------------------------- seeding and devices

def test_seed_everything_repeats_model_construction():
    builders_tf = [lambda: tm.ThreeLayerConvNet(3, 8, 4, 10, image_size=(8, 8)),
                   lambda: tm.three_layer_convnet_sequential(3, 8, 4, 10, image_size=(8, 8)),
                   lambda: tm.two_layer_fc_functional(192, 20, 10, input_shape=(8, 8, 3))]
    for build in builders_tf:
        def weights(seed):
            ttr.seed_everything(seed)
            m = build()
            m(np.zeros((1, 8, 8, 3), np.float32))
            return tm.get_params(m)
        a, b, c = weights(0), weights(0), weights(1)
        assert all(np.array_equal(u, v) for u, v in zip(a, b))
        assert not np.array_equal(a[0], c[0])
    for build in [lambda: pm.ThreeLayerConvNet(3, 8, 4, 10, image_size=(8, 8)),
                  lambda: pm.two_layer_fc_sequential(192, 20, 10)]:
        def weights(seed):
            ptr.seed_everything(seed)
            return pm.get_params(build())
        a, b, c = weights(0), weights(0), weights(1)
        assert all(np.array_equal(u, v) for u, v in zip(a, b))
        assert not np.array_equal(a[0], c[0])
    # barebones: seed=None draws from the backend generator that seed_everything seeds
    for mod, tr in [(tbb, ttr), (pbb, ptr)]:
        tr.seed_everything(3)
        a = np_params(mod.three_layer_convnet_init(3, 4, 5, 10, image_size=(6, 6), seed=None))
        tr.seed_everything(3)
        b = np_params(mod.three_layer_convnet_init(3, 4, 5, 10, image_size=(6, 6), seed=None))
        assert all(np.array_equal(u, v) for u, v in zip(a, b))
    # an int seed draws with NumPy: the same numbers in both backends
    a = tbb.kaiming_normal((7, 3), seed=0).numpy()
    b = pbb.random_weight((7, 3), seed=0).detach().numpy()
    assert np.array_equal(a, b) and pbb.random_weight((7, 3)).requires_grad
    assert abs(np.std(tbb.kaiming_normal((2000, 50), seed=1).numpy()) - np.sqrt(2 / 2000)) < 1e-3
    assert not pbb.zero_weight((4,)).detach().any() and pbb.zero_weight(4).requires_grad


def test_device_helpers_say_which(capsys):
    assert ttr.device() in ("/GPU:0", "/CPU:0")
    d = ptr.device(verbose=True)
    assert isinstance(d, torch.device) and d.type == ("cuda" if torch.cuda.is_available() else "cpu")
    out = capsys.readouterr().out
    assert out.strip() == ptr.describe_device()
    if not torch.cuda.is_available():
        assert out.strip() == "using CPU (no CUDA device found)"
    if ttr.device() == "/CPU:0":
        assert ttr.describe_device() == "using CPU (no GPU found)"


# ----------------------------------------------------------------- bad input

def _tiny_data(layout, n=40, seed=0, H=8):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 3, H, H)).astype(np.float32)
    if layout == "NHWC":
        X = X.transpose(0, 2, 3, 1).copy()
    y = rng.integers(0, 10, n)
    return {"X_train": X, "y_train": y, "X_val": X[:10], "y_val": y[:10]}


def _swap(X):
    return X.transpose(0, 2, 3, 1) if X.shape[1] == 3 else X.transpose(0, 3, 1, 2)


BACKENDS = {
    "tf": dict(layout="NHWC", wrong="NCHW", tr=ttr, bb=tbb,
               model=lambda: tm.three_layer_convnet_sequential(3, 4, 4, 10, image_size=(8, 8))),
    "torch": dict(layout="NCHW", wrong="NHWC", tr=ptr, bb=pbb,
                  model=lambda: pm.three_layer_convnet_sequential(3, 4, 4, 10, image_size=(8, 8))),
}


def _callers(b):
    """train, check_accuracy and train_part2 of one backend, as f(data)."""
    init = lambda: b["bb"].three_layer_convnet_init(3, 4, 4, 10, image_size=(8, 8))  # noqa: E731
    return {
        "train": lambda d: b["tr"].train(b["model"](), d, verbose=False),
        "check_accuracy": lambda d: b["tr"].check_accuracy(b["model"](), d["X_train"], d["y_train"]),
        "train_part2": lambda d: b["bb"].train_part2(b["bb"].three_layer_convnet, init, 1e-3, d,
                                                     verbose=False),
    }


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_wrong_layout_is_named(backend):
    b = BACKENDS[backend]
    for name, call in _callers(b).items():
        d = _tiny_data(b["layout"])
        d["X_train"], d["X_val"] = _swap(d["X_train"]), _swap(d["X_val"])
        with pytest.raises(ValueError, match=f"looks like {b['wrong']}.*expect {b['layout']}"):
            call(d)
    d = _tiny_data(b["layout"])
    bad = _swap(d["X_train"])
    if backend == "tf":
        p = tbb.three_layer_convnet_init(3, 4, 4, 10, image_size=(8, 8))
        with pytest.raises(ValueError, match=r"shape \(40, 3, 8, 8\), which looks like NCHW"):
            tbb.three_layer_convnet(tf.constant(bad), p)
        with pytest.raises(ValueError, match="looks like NCHW"):
            tm.ThreeLayerConvNet(3, 4, 4, 10, image_size=(8, 8))(bad)
        with pytest.raises(ValueError, match="looks like NCHW"):
            tbb.two_layer_fc(tf.constant(bad), tbb.two_layer_fc_init(192, 5, 10))
    else:
        p = pbb.three_layer_convnet_init(3, 4, 4, 10, image_size=(8, 8))
        with pytest.raises(ValueError, match=r"shape \(40, 8, 8, 3\), which looks like NHWC"):
            pbb.three_layer_convnet(torch.as_tensor(bad), p)
        for m in [pm.ThreeLayerConvNet(3, 4, 4, 10, image_size=(8, 8)), b["model"](),
                  pm.TwoLayerFC(192, 5, 10)]:
            with pytest.raises(ValueError, match="looks like NHWC"):
                m(torch.as_tensor(bad))


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("dtype", [np.float64, np.uint8])
def test_wrong_dtype_is_named(backend, dtype):
    b = BACKENDS[backend]
    for name, call in _callers(b).items():
        d = _tiny_data(b["layout"])
        d["X_train"] = d["X_train"].astype(dtype)
        d["X_val"] = d["X_val"].astype(dtype)
        with pytest.raises(TypeError, match=f"must be float32, got {np.dtype(dtype).name}"):
            call(d)
    X = _tiny_data(b["layout"])["X_train"].astype(dtype)
    if backend == "tf":
        with pytest.raises(TypeError, match="x must be float32"):
            tbb.three_layer_convnet(tf.constant(X), tbb.three_layer_convnet_init(
                3, 4, 4, 10, image_size=(8, 8)))
    else:
        with pytest.raises(TypeError, match="x must be float32"):
            pbb.three_layer_convnet(torch.as_tensor(X), pbb.three_layer_convnet_init(
                3, 4, 4, 10, image_size=(8, 8)))
        with pytest.raises(TypeError, match="x must be float32"):
            b["model"]()(torch.as_tensor(X))


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("label", [-1, 10])
def test_labels_out_of_range_are_named(backend, label):
    b = BACKENDS[backend]
    for name, call in _callers(b).items():
        d = _tiny_data(b["layout"])
        d["y_train"] = d["y_train"].copy()
        d["y_train"][3] = label
        with pytest.raises(ValueError, match=r"y.* must lie in \[0, 9\]"):
            call(d)
    d = _tiny_data(b["layout"])
    d["y_val"] = d["y_val"] + 10
    with pytest.raises(ValueError, match=r"data\['y_val'\] must lie in \[0, 9\]"):
        b["tr"].train(b["model"](), d, verbose=False)


def test_other_bad_arguments():
    d = _tiny_data("NCHW")
    m = pm.three_layer_convnet_sequential(3, 4, 4, 10, image_size=(8, 8))
    with pytest.raises(ValueError, match="missing"):
        ptr.train(m, {"X_train": d["X_train"]}, verbose=False)
    with pytest.raises(ValueError, match="either optimizer or learning_rate"):
        ptr.train(m, d, torch.optim.SGD(m.parameters(), lr=1e-2), learning_rate=1e-2)
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        ptr.train(m, d, batch_size=0)
    with pytest.raises(ValueError, match=r"images of size \(8, 8\)"):
        m(torch.zeros(2, 3, 9, 9))
    with pytest.raises(ValueError, match="params must be conv_w1"):
        pbb.three_layer_convnet(torch.zeros(2, 3, 8, 8), pbb.three_layer_convnet_init(
            3, 4, 4, 10, image_size=(8, 8))[::-1])
    with pytest.raises(ValueError, match="must have shapes"):
        tm.set_params(tm.three_layer_convnet_sequential(), [np.zeros(3, np.float32)] * 6)
    with pytest.raises(ValueError, match="input_size must equal the product"):
        tm.two_layer_fc_sequential(100, 10, 10)
    with pytest.raises(TypeError, match="model must be a keras.Model"):
        ttr.train(m, _tiny_data("NHWC"))
    with pytest.raises(ValueError, match="learning_rate must lie"):
        tbb.train_part2(tbb.two_layer_fc, lambda: tbb.two_layer_fc_init(192, 5, 10), -1.0,
                        _tiny_data("NHWC"))


# ---------------------------------------------------------------- smoke tests

def synthetic_images(n=1200, layout="NCHW", seed=0):
    """A small learnable 10-class set: a fixed random 32x32x3 pattern per class
    plus twice as much noise, standardised, float32."""
    rng = np.random.default_rng(seed)
    patterns = rng.standard_normal((10, 3, 32, 32))
    y = rng.integers(0, 10, n)
    X = (patterns[y] + 2.0 * rng.standard_normal((n, 3, 32, 32))) / np.sqrt(5.0)
    X = X.astype(np.float32)
    if layout == "NHWC":
        X = X.transpose(0, 2, 3, 1).copy()
    return {"X_train": X[:1000], "y_train": y[:1000], "X_val": X[1000:], "y_val": y[1000:]}


def _check_history(h, epochs, n_train, batch_size=64):
    assert len(h["loss_history"]) == epochs * -(-n_train // batch_size)
    assert len(h["train_acc_history"]) == len(h["val_acc_history"]) == epochs
    assert all(np.isfinite(h["loss_history"]))
    assert all(0 <= a <= 1 for a in h["train_acc_history"] + h["val_acc_history"])


def test_tf_train_smoke_one_epoch():
    d = synthetic_images(layout="NHWC")
    ttr.seed_everything(0)
    h = ttr.train(tm.ThreeLayerConvNet(3, 32, 16, 10),
                  d, keras.optimizers.SGD(3e-3, momentum=0.9, nesterov=True), verbose=False)
    _check_history(h, 1, 1000)
    assert h["val_acc_history"][-1] > 0.3  # chance is 0.1
    h = tbb.train_part2(tbb.three_layer_convnet, tbb.three_layer_convnet_init, 3e-3, d,
                        verbose=False)
    _check_history(h, 1, 1000)
    assert h["val_acc_history"][-1] > 0.3 and len(h["params"]) == 6


def test_torch_train_smoke_one_epoch():
    d = synthetic_images(layout="NCHW")
    ptr.seed_everything(0)
    h = ptr.train(pm.three_layer_convnet_sequential(), d,
                  lambda p: torch.optim.SGD(p, lr=1e-2, momentum=0.9, nesterov=True),
                  verbose=False)
    _check_history(h, 1, 1000)
    assert h["val_acc_history"][-1] > 0.3
    h = pbb.train_part2(pbb.three_layer_convnet, pbb.three_layer_convnet_init, 3e-3, d,
                        verbose=False)
    _check_history(h, 1, 1000)
    assert h["val_acc_history"][-1] > 0.3 and len(h["params"]) == 6


def test_train_is_reproducible_and_reports_progress(capsys):
    d = synthetic_images(n=300, layout="NCHW")
    d["X_val"], d["y_val"] = d["X_train"][:50], d["y_train"][:50]

    def run(verbose):
        ptr.seed_everything(0)
        return ptr.train(pm.ThreeLayerConvNet(3, 8, 8, 10), d, learning_rate=1e-2, epochs=2,
                         batch_size=100, seed=5, verbose=verbose, print_every=2)
    a, b = run(False), run(True)
    assert a["loss_history"] == b["loss_history"] and a["val_acc_history"] == b["val_acc_history"]
    assert len(a["loss_history"]) == 6 and a["epochs"] == 2
    out = capsys.readouterr()
    assert "Iteration 0, loss =" in out.out + out.err and "(Epoch 2 / 2)" in out.out + out.err
