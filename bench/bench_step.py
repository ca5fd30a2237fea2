"""One training step of the same three-layer ConvNet in NumPy, TensorFlow and PyTorch.

The network is Part II's ``lab.cnn.ThreeLayerConvNet`` with its defaults:
conv 7x7 (32 filters, stride 1, zero padding 3) - ReLU - 2x2 max pool -
affine (100) - ReLU - affine (10) - softmax loss, in float32 on CIFAR-sized
input (N, 3, 32, 32).  The TensorFlow and PyTorch versions are built here from
the NumPy model's weights, and the script first checks that all three compute
the same loss and the same gradients (float32 rounding) before it times them.

A step is what a training loop does per minibatch: the forward pass, the loss,
the gradients of every parameter, and the SGD update ``w -= lr * dw``:

* NumPy: ``model.loss(X, y)`` (``lab.fast_layers`` inside) and ``lab.optim.sgd``;
* TensorFlow: a ``tf.function`` with a ``GradientTape`` and ``assign_sub``
  (channels-last, the layout TensorFlow's CPU kernels are written for);
* PyTorch: ``loss.backward()`` and an in-place update under ``torch.no_grad()``.

Each time is the minimum over blocks of consecutive steps (``_timing.min_times``),
the blocks of the three libraries taking turns.  All three get as many threads
as NumPy's BLAS (``--threads N`` sets it; one by default, as the book runs).

Run ``python bench/bench_step.py [--batch 50] [--threads N] [--quick]`` or call
``run()`` from a notebook for the rows as a list of dicts.
"""
from __future__ import annotations

import argparse
import os
import sys

from _timing import min_times  # bench/ is on sys.path when these run

if __name__ == "__main__":
    _n = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv[1:-1] else "1"
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, _n)

import numpy as np  # noqa: E402

from lab import optim  # noqa: E402
from lab.cnn import ThreeLayerConvNet  # noqa: E402


def _threads() -> int:
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _numpy_step(model, X, y, lr):
    configs = {k: {"learning_rate": lr} for k in model.params}

    def step():
        loss, grads = model.loss(X, y)
        for k, g in grads.items():
            model.params[k], configs[k] = optim.sgd(model.params[k], g, configs[k])
        return loss

    return step


def _torch_model(params, threads):
    import torch

    torch.set_num_threads(threads)
    t = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    fs = params["W1"].shape[2]

    def loss_fn(x, y):
        h = torch.nn.functional.conv2d(x, t["W1"], t["b1"], padding=(fs - 1) // 2)
        h = torch.nn.functional.max_pool2d(torch.relu(h), 2)
        h = torch.relu(h.flatten(1) @ t["W2"] + t["b2"])
        return torch.nn.functional.cross_entropy(h @ t["W3"] + t["b3"], y)

    return t, loss_fn


def _torch_step(params, X, y, lr, threads):
    import torch

    t, loss_fn = _torch_model(params, threads)
    x, yt = torch.from_numpy(X), torch.from_numpy(y)

    def step():
        loss = loss_fn(x, yt)
        for v in t.values():
            v.grad = None
        loss.backward()
        with torch.no_grad():
            for v in t.values():
                v -= lr * v.grad
        return loss

    return step, (t, loss_fn, x, yt)


def _tf_step(params, X, y, lr, threads):
    import lab.tf  # noqa: F401  (quiet TensorFlow start-up)
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialised in this process
        pass
    v = {"W1": tf.Variable(params["W1"].transpose(2, 3, 1, 0)),   # OIHW -> HWIO
         "b1": tf.Variable(params["b1"]),
         # rows of W2 follow the NCHW flattening (c, h, w); TensorFlow
         # flattens NHWC as (h, w, c), so the rows are reordered once here
         "W2": tf.Variable(_nchw_rows_to_nhwc(params["W2"], params["W1"].shape[0])),
         "b2": tf.Variable(params["b2"]), "W3": tf.Variable(params["W3"]),
         "b3": tf.Variable(params["b3"])}
    x = tf.constant(X.transpose(0, 2, 3, 1))
    yt = tf.constant(y)

    def loss_fn(x, y):
        h = tf.nn.relu(tf.nn.conv2d(x, v["W1"], 1, "SAME") + v["b1"])
        h = tf.nn.max_pool2d(h, 2, 2, "VALID")
        h = tf.nn.relu(tf.reshape(h, (tf.shape(h)[0], -1)) @ v["W2"] + v["b2"])
        scores = h @ v["W3"] + v["b3"]
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, scores))

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(x, y)
        grads = tape.gradient(loss, list(v.values()))
        for var, g in zip(v.values(), grads):
            var.assign_sub(lr * g)
        return loss

    return (lambda: step(x, yt)), (v, loss_fn, x, yt)


def _nchw_rows_to_nhwc(W2, channels):
    side = int(round((W2.shape[0] / channels) ** 0.5))
    return np.ascontiguousarray(
        W2.reshape(channels, side, side, -1).transpose(1, 2, 0, 3).reshape(W2.shape))


def check_same(batch=8, seed=0):
    """Largest relative differences of loss and gradients, TF and torch against NumPy."""
    import tensorflow as tf
    import torch

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((batch, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    model = ThreeLayerConvNet(weight_scale=1e-2, seed=seed)
    loss, grads = model.loss(X, y)
    _, (t, loss_fn, x, yt) = _torch_step(model.params, X, y, 0.0, 1)
    tl = loss_fn(x, yt)
    tl.backward()
    _, (v, tf_loss, xtf, ytf) = _tf_step(model.params, X, y, 0.0, 1)
    with tf.GradientTape() as tape:
        fl = tf_loss(xtf, ytf)
    fgrads = dict(zip(v, tape.gradient(fl, list(v.values()))))
    fgrads["W1"] = fgrads["W1"].numpy().transpose(3, 2, 0, 1)
    side = 16
    fgrads["W2"] = fgrads["W2"].numpy().reshape(side, side, 32, -1).transpose(2, 0, 1, 3) \
        .reshape(grads["W2"].shape)

    def rel(a, b):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))

    out = {"torch": max([rel(float(tl.detach()), loss)] + [rel(t[k].grad.numpy(), grads[k]) for k in grads]),
           "tensorflow": max([rel(float(fl), loss)] + [rel(np.asarray(fgrads[k]), grads[k])
                                                      for k in grads])}
    return out


def run(batch=50, quick=False, seed=0):
    """Seconds per training step of each library; a list of dicts."""
    threads = _threads()
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((batch, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    lr = 1e-4
    model = ThreeLayerConvNet(weight_scale=1e-2, seed=seed)
    params = {k: v.copy() for k, v in model.params.items()}
    steps = [("NumPy (lab)", _numpy_step(model, X, y, lr)),
             ("TensorFlow", _tf_step(params, X, y, lr, threads)[0]),
             ("PyTorch", _torch_step(params, X, y, lr, threads)[0])]
    times = min_times([s for _, s in steps], repeats=3 if quick else 10, rounds=2 if quick else 3)
    return [{"library": name, "batch": batch, "threads": threads, "step_ms": 1e3 * t,
             "images_per_s": batch / t} for (name, _), t in zip(steps, times)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--threads", type=int, default=None,
                    help="threads for BLAS, TensorFlow and PyTorch (default 1)")
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    args = ap.parse_args()
    diffs = check_same()
    print("same loss and gradients as NumPy, max relative difference: "
          + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items()))
    rows = run(batch=args.batch, quick=args.quick)
    print(f"{'library':<12} {'batch':>5} {'threads':>7} {'ms/step':>8} {'images/s':>9}")
    for r in rows:
        print(f"{r['library']:<12} {r['batch']:>5} {r['threads']:>7} {r['step_ms']:>8.1f} "
              f"{r['images_per_s']:>9.0f}")


if __name__ == "__main__":
    main()
