"""Fast convolution and pooling: property tests against the naive loops over
random geometries (hypothesis, derandomised), the benchmark shapes against
PyTorch, dtype preservation and bad input."""
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from lab import fast_layers, layer_utils, layers
from lab.gradient_check import rel_error

SETTINGS = settings(max_examples=100, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.filter_too_much])


@st.composite
def conv_cases(draw):
    N = draw(st.integers(1, 4))
    C = draw(st.sampled_from([1, 2, 3, 5, 16, 18]))  # both internal layouts
    F = draw(st.integers(1, 20))                     # F <= C and F > C
    HH, WW = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    stride, pad = draw(st.integers(1, 3)), draw(st.integers(0, 5))
    H_out, W_out = draw(st.integers(1, 4)), draw(st.integers(1, 7))
    H = (H_out - 1) * stride + HH - 2 * pad
    W = (W_out - 1) * stride + WW - 2 * pad
    assume(H >= 1 and W >= 1)
    seed = draw(st.integers(0, 2**32 - 1))
    r = np.random.default_rng(seed)
    x = r.standard_normal((N, C, H, W))
    w = r.standard_normal((F, C, HH, WW))
    b = r.standard_normal(F)
    dout = r.standard_normal((N, F, H_out, W_out))
    return x, w, b, {"stride": stride, "pad": pad}, dout


@st.composite
def pool_cases(draw):
    N, C = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    tiling = draw(st.booleans())
    if tiling:
        stride = draw(st.integers(1, 4))
        ph = pw = stride
        H, W = stride * draw(st.integers(1, 5)), stride * draw(st.integers(1, 5))
    else:
        ph, pw, stride = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
        H = (draw(st.integers(1, 5)) - 1) * stride + ph
        W = (draw(st.integers(1, 5)) - 1) * stride + pw
    seed = draw(st.integers(0, 2**32 - 1))
    r = np.random.default_rng(seed)
    if draw(st.booleans()):   # few distinct values: many ties inside windows
        x = r.integers(-2, 3, size=(N, C, H, W)).astype(np.float64)
    else:
        x = r.standard_normal((N, C, H, W))
    param = {"pool_height": ph, "pool_width": pw, "stride": stride}
    dout = r.standard_normal((N, C, (H - ph) // stride + 1, (W - pw) // stride + 1))
    return x, param, dout


@SETTINGS
@given(conv_cases(), st.data(), st.booleans(), st.integers(1, 3))
def test_conv_fast_equals_naive(case, data, full_conv_dx, threads):
    """Any geometry, both memory layouts (C < W' and C >= W'), chunks of one or
    several images (the last one possibly partial), both ways of computing dx,
    and the batch split between one to three threads."""
    x, w, b, param, dout = case
    images_per_chunk = data.draw(st.integers(1, max(1, x.shape[0] - 1)))
    K, P = w[0].size, dout[0, 0].size
    chunk_bytes = images_per_chunk * K * P * x.itemsize
    out_naive, cache_naive = layers.conv_forward_naive(x, w, b, param)
    grads_naive = layers.conv_backward_naive(dout, cache_naive)
    names = ("CHUNK_BYTES", "FULL_CONV_DX", "THREADS", "MIN_PART_MACS")
    saved = [getattr(fast_layers, name) for name in names]
    try:
        for name, value in zip(names, (chunk_bytes, full_conv_dx, threads, 0)):
            setattr(fast_layers, name, value)
        out_fast, cache_fast = fast_layers.conv_forward_fast(x, w, b, param)
        grads_fast = fast_layers.conv_backward_fast(dout, cache_fast)
        no_dx = fast_layers.conv_backward_fast(dout, cache_fast, need_dx=False)
    finally:
        for name, value in zip(names, saved):
            setattr(fast_layers, name, value)
    assert out_fast.shape == out_naive.shape
    assert rel_error(out_fast, out_naive) < 1e-9
    for g_fast, g_naive in zip(grads_fast, grads_naive):
        assert g_fast.shape == g_naive.shape
        assert rel_error(g_fast, g_naive) < 1e-9
    # skipping dx leaves dw and db exactly as they were
    assert no_dx[0] is None
    assert np.array_equal(no_dx[1], grads_fast[1]) and np.array_equal(no_dx[2], grads_fast[2])


@SETTINGS
@given(pool_cases())
def test_max_pool_fast_equals_naive(case):
    x, param, dout = case
    out_naive, cache_naive = layers.max_pool_forward_naive(x, param)
    out_fast, cache_fast = fast_layers.max_pool_forward_fast(x, param)
    assert np.array_equal(out_fast, out_naive)
    dx_fast = fast_layers.max_pool_backward_fast(dout, cache_fast)
    dx_naive = layers.max_pool_backward_naive(dout, cache_naive)
    assert rel_error(dx_fast, dx_naive) < 1e-12
    # every window passes on exactly its own gradient
    assert abs(dx_fast.sum() - dout.sum()) < 1e-9 * (1 + np.abs(dout).sum())


@pytest.mark.parametrize("xs,ws,stride,pad", [
    ((100, 3, 31, 31), (25, 3, 3, 3), 2, 1),
    ((50, 3, 32, 32), (32, 3, 7, 7), 1, 3),
    ((8, 64, 16, 16), (64, 64, 3, 3), 1, 1),
    ((4, 20, 9, 11), (40, 20, 3, 5), 2, 2),
])
def test_conv_fast_against_torch_on_large_shapes(xs, ws, stride, pad):
    r = np.random.default_rng(0)
    x, w, b = r.standard_normal(xs), r.standard_normal(ws), r.standard_normal(ws[0])
    out, cache = fast_layers.conv_forward_fast(x, w, b, {"stride": stride, "pad": pad})
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ot = TF.conv2d(xt, wt, bt, stride=stride, padding=pad)
    assert rel_error(out, ot.detach().numpy()) < 1e-9
    dout = r.standard_normal(out.shape)
    ot.backward(torch.tensor(dout))
    dx, dw, db = fast_layers.conv_backward_fast(dout, cache)
    assert rel_error(dx, xt.grad.numpy()) < 1e-9
    assert rel_error(dw, wt.grad.numpy()) < 1e-9
    assert rel_error(db, bt.grad.numpy()) < 1e-9


@pytest.mark.parametrize("ph,pw,stride", [(2, 2, 2), (3, 3, 2), (3, 2, 1)])
def test_max_pool_fast_against_torch(ph, pw, stride):
    r = np.random.default_rng(1)
    x = r.standard_normal((20, 3, 3 + 10 * stride, 2 + 12 * stride))
    param = {"pool_height": ph, "pool_width": pw, "stride": stride}
    H, W = x.shape[2:]
    x = x[:, :, :H - (H - ph) % stride, :W - (W - pw) % stride].copy()
    out, cache = fast_layers.max_pool_forward_fast(x, param)
    xt = torch.tensor(x, requires_grad=True)
    ot = TF.max_pool2d(xt, (ph, pw), stride=stride)
    assert np.array_equal(out, ot.detach().numpy())
    dout = r.standard_normal(out.shape)
    ot.backward(torch.tensor(dout))
    assert rel_error(fast_layers.max_pool_backward_fast(dout, cache), xt.grad.numpy()) < 1e-12


@pytest.mark.parametrize("C,F,stride", [(3, 4, 1), (3, 2, 2), (16, 8, 1), (16, 24, 1), (17, 5, 3)])
def test_conv_fast_keeps_float32(C, F, stride):
    r = np.random.default_rng(2)
    x = r.standard_normal((2, C, 7, 7))
    w = r.standard_normal((F, C, 3, 3))
    b = r.standard_normal(F)
    param = {"stride": stride, "pad": 1}
    out64, cache64 = fast_layers.conv_forward_fast(x, w, b, param)
    out32, cache32 = fast_layers.conv_forward_fast(*(a.astype(np.float32) for a in (x, w, b)),
                                                   param)
    assert out32.dtype == np.float32
    dout = r.standard_normal(out64.shape)
    grads64 = fast_layers.conv_backward_fast(dout, cache64)
    grads32 = fast_layers.conv_backward_fast(dout.astype(np.float32), cache32)
    assert all(g.dtype == np.float32 for g in grads32)
    for a32, a64 in zip((out32, *grads32), (out64, *grads64)):
        assert np.linalg.norm(a32 - a64) < 1e-5 * np.linalg.norm(a64)


@pytest.mark.parametrize("param,size", [({"pool_height": 2, "pool_width": 2, "stride": 2}, 8),
                                        ({"pool_height": 3, "pool_width": 3, "stride": 2}, 9)])
def test_max_pool_fast_keeps_float32(param, size):
    x = np.random.default_rng(3).standard_normal((2, 3, size, size)).astype(np.float32)
    out, cache = fast_layers.max_pool_forward_fast(x, param)
    assert out.dtype == np.float32
    dx = fast_layers.max_pool_backward_fast(np.ones_like(out), cache)
    assert dx.dtype == np.float32
    assert dx.sum() == out.size


def test_fast_layers_bad_input():
    x = np.zeros((2, 3, 8, 8))
    w = np.zeros((4, 3, 3, 3))
    b = np.zeros(4)
    with pytest.raises(ValueError, match="not a whole number"):
        fast_layers.conv_forward_fast(x, w, b, {"stride": 2, "pad": 0})
    with pytest.raises(ValueError, match="input channels"):
        fast_layers.conv_forward_fast(x, np.zeros((4, 2, 3, 3)), b, {"stride": 1, "pad": 1})
    with pytest.raises(ValueError, match="b must have shape"):
        fast_layers.conv_forward_fast(x, w, np.zeros(3), {"stride": 1, "pad": 1})
    with pytest.raises(TypeError, match="conv_param must be a dict"):
        fast_layers.conv_forward_fast(x, w, b, None)
    with pytest.raises(TypeError, match="real floating-point"):
        fast_layers.conv_forward_fast(x.astype(complex), w, b, {"stride": 1, "pad": 1})
    out, cache = fast_layers.conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})
    with pytest.raises(ValueError, match=r"dout must have the shape of the forward output"):
        fast_layers.conv_backward_fast(out[:1], cache)
    with pytest.raises(TypeError, match="need_dx must be True or False"):
        fast_layers.conv_backward_fast(out, cache, need_dx="no")
    with pytest.raises(ValueError, match="not a whole number"):
        fast_layers.max_pool_forward_fast(x, {"pool_height": 3, "pool_width": 3, "stride": 2})
    with pytest.raises(ValueError, match="does not fit"):
        fast_layers.max_pool_forward_fast(x, {"pool_height": 9, "pool_width": 3, "stride": 1})
    with pytest.raises(ValueError, match="pool_param"):
        fast_layers.max_pool_forward_fast(x, {"pool_height": 2, "pool_width": 2, "stride": 0})
    out, cache = fast_layers.max_pool_forward_fast(
        x, {"pool_height": 2, "pool_width": 2, "stride": 2})
    with pytest.raises(ValueError, match=r"dout must have the shape of the forward output"):
        fast_layers.max_pool_backward_fast(np.zeros((2, 3, 4, 5)), cache)


@pytest.mark.parametrize("xs,ws,stride,pad", [
    ((100, 3, 31, 31), (25, 3, 3, 3), 2, 1),       # channels-first, col2im
    ((12, 64, 16, 16), (64, 64, 3, 3), 1, 1),      # channels-last, dx as a full convolution
    ((10, 20, 9, 11), (40, 20, 3, 5), 2, 2),       # channels-last, col2im
])
def test_conv_threads_split_the_batch(monkeypatch, xs, ws, stride, pad):
    """Two and three threads give the gradients of one thread, each thread
    really gets a part of the batch, and BLAS gets its thread count back."""
    from threadpoolctl import threadpool_info

    r = np.random.default_rng(1)
    x, w, b = r.standard_normal(xs), r.standard_normal(ws), r.standard_normal(ws[0])
    param = {"stride": stride, "pad": pad}
    blas_before = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    results = {}
    monkeypatch.setattr(fast_layers, "MIN_PART_MACS", 0)
    for threads in (1, 2, 3):
        monkeypatch.setattr(fast_layers, "THREADS", threads)
        out, cache = fast_layers.conv_forward_fast(x, w, b, param)
        assert len(cache[-2]) == threads                  # the parts of the batch
        dout = np.random.default_rng(2).standard_normal(out.shape)
        results[threads] = (out,) + fast_layers.conv_backward_fast(dout, cache)
    for threads in (2, 3):
        for got, want in zip(results[threads], results[1]):
            assert rel_error(got, want) < 1e-10     # the same sums, up to their order
    blas_after = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    assert blas_after == blas_before


def test_conv_threads_setting(monkeypatch):
    x, w, b = np.zeros((4, 3, 8, 8)), np.zeros((2, 3, 3, 3)), np.zeros(2)
    monkeypatch.setattr(fast_layers, "THREADS", 0)
    with pytest.raises(ValueError, match="THREADS"):
        fast_layers.conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})
    # small batches are not worth a thread per image
    monkeypatch.setattr(fast_layers, "THREADS", 4)
    assert len(fast_layers.conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})[1][-2]) == 1


@pytest.mark.parametrize("threads", [1, 2])
def test_interleaved_layers_do_not_share_memory(monkeypatch, threads):
    """Two layers' forward passes, then their backward passes in reverse order
    (as in a network), with chunks small enough that the reused scratch
    buffers are in play: each layer gets exactly the gradients it gets alone."""
    monkeypatch.setattr(fast_layers, "THREADS", threads)
    monkeypatch.setattr(fast_layers, "MIN_PART_MACS", 0)
    monkeypatch.setattr(fast_layers, "CHUNK_BYTES", 20_000)
    r = np.random.default_rng(5)
    cases = [((6, 3, 9, 9), (4, 3, 3, 3), {"stride": 2, "pad": 1}),    # col2im
             ((6, 8, 6, 6), (5, 8, 3, 3), {"stride": 1, "pad": 1})]    # full convolution
    data = [(r.standard_normal(xs), r.standard_normal(ws), r.standard_normal(ws[0]), p)
            for xs, ws, p in cases]
    alone = []
    for x, w, b, p in data:
        out, cache = fast_layers.conv_forward_fast(x, w, b, p)
        dout = np.cos(out)
        alone.append((out,) + fast_layers.conv_backward_fast(dout, cache))
    outs_caches = [fast_layers.conv_forward_fast(x, w, b, p) for x, w, b, p in data]
    for i in (1, 0):
        out, cache = outs_caches[i]
        grads = fast_layers.conv_backward_fast(np.cos(out), cache)
        for got, want in zip((out,) + grads, alone[i]):
            assert np.array_equal(got, want)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_gets_a_fresh_pool(monkeypatch):
    """A child process forked after the pool started computes with threads of
    its own (a pool inherited from the parent would have no threads)."""
    monkeypatch.setattr(fast_layers, "THREADS", 2)
    monkeypatch.setattr(fast_layers, "MIN_PART_MACS", 0)
    x, w, b = np.ones((4, 2, 6, 6)), np.ones((3, 2, 3, 3)), np.zeros(3)
    fast_layers.conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})   # starts the pool
    assert fast_layers._POOL is not None
    pid = os.fork()
    if pid == 0:                                    # child: exit code 0 if all is well
        if fast_layers._POOL is not None:           # (an inherited pool would hang)
            os._exit(1)
        out, _ = fast_layers.conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})
        os._exit(0 if out[0, 0, 2, 2] == 18.0 else 2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def _fast_forward_cases():
    r = np.random.default_rng(40)
    x = r.standard_normal((3, 4, 8, 8))
    x16 = r.standard_normal((2, 16, 6, 6))
    relu_x = np.round(x * 2)                         # ties between window entries
    return [
        ("conv channels-first", lambda: fast_layers.conv_forward_fast(
            x, r2((5, 4, 3, 3)), np.ones(5), {"stride": 1, "pad": 1}),
         fast_layers.conv_backward_fast),
        ("conv channels-last", lambda: fast_layers.conv_forward_fast(
            x16, r2((8, 16, 3, 3)), np.ones(8), {"stride": 1, "pad": 1}),
         fast_layers.conv_backward_fast),
        ("conv stride 2", lambda: fast_layers.conv_forward_fast(
            x, r2((5, 4, 2, 2)), np.ones(5), {"stride": 2, "pad": 0}),
         fast_layers.conv_backward_fast),
        ("pool 2x2/2 (tiles)", lambda: fast_layers.max_pool_forward_fast(
            x, {"pool_height": 2, "pool_width": 2, "stride": 2}), fast_layers.max_pool_backward_fast),
        ("pool 2x2/2 with ties", lambda: fast_layers.max_pool_forward_fast(
            relu_x, {"pool_height": 2, "pool_width": 2, "stride": 2}),
         fast_layers.max_pool_backward_fast),
        ("pool 3x3/1 (overlap)", lambda: fast_layers.max_pool_forward_fast(
            x, {"pool_height": 3, "pool_width": 3, "stride": 1}), fast_layers.max_pool_backward_fast),
        ("pool 1x1", lambda: fast_layers.max_pool_forward_fast(
            x, {"pool_height": 1, "pool_width": 1, "stride": 1}), fast_layers.max_pool_backward_fast),
        ("pool 2x2/3 (gaps)", lambda: fast_layers.max_pool_forward_fast(
            x, {"pool_height": 2, "pool_width": 2, "stride": 3}), fast_layers.max_pool_backward_fast),
        ("conv_relu_pool", lambda: layer_utils.conv_relu_pool_forward(
            x, r2((5, 4, 3, 3)), np.ones(5), {"stride": 1, "pad": 1},
            {"pool_height": 2, "pool_width": 2, "stride": 2}), layer_utils.conv_relu_pool_backward),
    ]


def r2(shape):
    return np.linspace(-1, 1, int(np.prod(shape))).reshape(shape)


@pytest.mark.parametrize("forward,backward", [c[1:] for c in _fast_forward_cases()],
                         ids=[c[0] for c in _fast_forward_cases()])
def test_changing_the_output_leaves_the_backward_pass_alone(forward, backward):
    """The cache must not hold the array the forward pass returns: changing
    it in place (out *= 2) once turned the pooling gradient into zeros."""
    def grads(dout, cache):
        g = backward(dout, cache)
        return (g,) if isinstance(g, np.ndarray) else g

    out, cache = forward()
    _, untouched_cache = forward()
    dout = np.random.default_rng(41).standard_normal(out.shape)
    out *= 2
    out += 1
    got, want = grads(dout, cache), grads(dout, untouched_cache)
    assert np.any(want[0] != 0)
    for g, w in zip(got, want, strict=True):
        assert np.array_equal(g, w)
