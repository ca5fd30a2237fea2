"""Speed of the NumPy convolution and max-pooling layers.

Times, side by side and in one run, the naive loops of ``lab.layers``, the
vectorised ``lab.fast_layers`` and ``torch.nn.functional`` on the CPU, for the
forward pass and for forward + backward, in float32 and float64:

* conv on the course shape x=(100, 3, 31, 31), w=(25, 3, 3, 3), stride 2, pad 1
  (naive timed here only, with few repeats: it is slow);
* conv x=(50, 3, 32, 32), w=(32, 3, 7, 7), stride 1, pad 3;
* conv x=(64, 64, 16, 16), w=(64, 64, 3, 3), stride 1, pad 1;
* 2x2 / stride-2 max pooling on x=(100, 3, 32, 32) (naive timed too).

Each time is the minimum over blocks of consecutive calls, each block after
0.2 s of warm-up calls; the blocks of the fast and torch versions take
turns, so that a busy machine slows both alike (see ``_timing.min_times`` for
why calls of the two libraries are not interleaved one by one). PyTorch is
given as many threads as NumPy's BLAS uses, and so is ``lab.fast_layers``,
which splits each batch between that many threads.

Run ``python bench/bench_conv.py`` (``--quick`` for fewer repeats,
``--threads N`` to give NumPy's BLAS and PyTorch N threads), or call
``run(quick=False)`` from a notebook for the rows as a list of dicts.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from _timing import min_times  # bench/ is on sys.path when these run

if __name__ == "__main__" and "--threads" in sys.argv[1:-1]:
    # BLAS reads its thread count when NumPy is imported, so set it first
    _n = sys.argv[sys.argv.index("--threads") + 1]
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = _n

import numpy as np  # noqa: E402

from lab import fast_layers, layers  # noqa: E402

CONV_CASES = [
    # name, x shape, w shape, stride, pad, time the naive version
    ("conv course", (100, 3, 31, 31), (25, 3, 3, 3), 2, 1, True),
    ("conv 7x7", (50, 3, 32, 32), (32, 3, 7, 7), 1, 3, False),
    ("conv 64ch", (64, 64, 16, 16), (64, 64, 3, 3), 1, 1, False),
]
POOL_CASES = [
    ("pool 2x2/2", (100, 3, 32, 32), 2, 2, 2, True),
]


def blas_threads() -> int:
    """Threads NumPy's BLAS uses: the usual environment variables, else the
    CPUs this process may run on."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _naive_times(forward, backward, args, small_args, param, repeats):
    """(forward seconds, backward seconds), minimum over ``repeats``, after a
    warm-up on a small input."""
    out, cache = forward(*small_args, param)
    backward(np.ones_like(out), cache)
    t_f = t_b = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out, cache = forward(*args, param)
        t1 = time.perf_counter()
        backward(np.ones_like(out), cache)
        t2 = time.perf_counter()
        t_f, t_b = min(t_f, t1 - t0), min(t_b, t2 - t1)
    return t_f, t_b


def _row(name, shape, dtype, pass_, naive, fast, torch_):
    return {
        "op": name, "shape": shape, "dtype": np.dtype(dtype).name, "pass": pass_,
        "naive_ms": None if naive is None else 1e3 * naive,
        "fast_ms": 1e3 * fast, "torch_ms": 1e3 * torch_,
        "speedup_vs_naive": None if naive is None else naive / fast,
        "fast_over_torch": fast / torch_,
    }


def _conv_rows(torch, case, dtype, repeats, naive_repeats):
    name, xs, ws, stride, pad, with_naive = case
    F = torch.nn.functional
    rng = np.random.default_rng(0)
    x = rng.standard_normal(xs).astype(dtype)
    w = (0.1 * rng.standard_normal(ws)).astype(dtype)
    b = rng.standard_normal(ws[0]).astype(dtype)
    param = {"stride": stride, "pad": pad}
    out, _ = fast_layers.conv_forward_fast(x, w, b, param)
    dout = rng.standard_normal(out.shape).astype(dtype)

    xt, wt, bt = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
    dout_t = torch.from_numpy(dout)

    def fast_f():
        fast_layers.conv_forward_fast(x, w, b, param)

    def fast_fb():
        _, cache = fast_layers.conv_forward_fast(x, w, b, param)
        fast_layers.conv_backward_fast(dout, cache)

    def torch_f():
        with torch.no_grad():
            F.conv2d(xt, wt, bt, stride=stride, padding=pad)

    def torch_fb():
        xt.grad = wt.grad = bt.grad = None
        F.conv2d(xt, wt, bt, stride=stride, padding=pad).backward(dout_t)

    tf, tfb, ttf, ttfb = min_times([fast_f, fast_fb, torch_f, torch_fb], repeats)
    nf = nfb = None
    if with_naive:
        small = (x[:2], w, b)
        nf, nb = _naive_times(layers.conv_forward_naive, layers.conv_backward_naive,
                              (x, w, b), small, param, naive_repeats)
        nfb = nf + nb
    shape = f"x{xs} w{ws} s{stride} p{pad}"
    return [_row(name, shape, dtype, "fwd", nf, tf, ttf),
            _row(name, shape, dtype, "fwd+bwd", nfb, tfb, ttfb)]


def _pool_rows(torch, case, dtype, repeats, naive_repeats):
    name, xs, ph, pw, stride, with_naive = case
    F = torch.nn.functional
    rng = np.random.default_rng(0)
    x = rng.standard_normal(xs).astype(dtype)
    param = {"pool_height": ph, "pool_width": pw, "stride": stride}
    out, _ = fast_layers.max_pool_forward_fast(x, param)
    dout = rng.standard_normal(out.shape).astype(dtype)
    xt = torch.from_numpy(x).requires_grad_()
    dout_t = torch.from_numpy(dout)

    def fast_f():
        fast_layers.max_pool_forward_fast(x, param)

    def fast_fb():
        _, cache = fast_layers.max_pool_forward_fast(x, param)
        fast_layers.max_pool_backward_fast(dout, cache)

    def torch_f():
        with torch.no_grad():
            F.max_pool2d(xt, (ph, pw), stride=stride)

    def torch_fb():
        xt.grad = None
        F.max_pool2d(xt, (ph, pw), stride=stride).backward(dout_t)

    tf, tfb, ttf, ttfb = min_times([fast_f, fast_fb, torch_f, torch_fb], repeats)
    nf = nfb = None
    if with_naive:
        nf, nb = _naive_times(layers.max_pool_forward_naive, layers.max_pool_backward_naive,
                              (x,), (x[:2],), param, naive_repeats)
        nfb = nf + nb
    shape = f"x{xs} {ph}x{pw} s{stride}"
    return [_row(name, shape, dtype, "fwd", nf, tf, ttf),
            _row(name, shape, dtype, "fwd+bwd", nfb, tfb, ttfb)]


def run(quick: bool = False) -> list[dict]:
    """Time every case; return one dict per (operation, dtype, pass).

    Keys: ``op, shape, dtype, pass, naive_ms, fast_ms, torch_ms,
    speedup_vs_naive, fast_over_torch`` (the naive entries are ``None`` where
    the naive version is not timed). ``quick`` uses fewer repeats.
    """
    import torch  # only the benchmark needs it; `import lab` stays light

    threads = blas_threads()
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    repeats, naive_repeats = (3, 1) if quick else (10, 2)
    rows = []
    try:
        for dtype in (np.float32, np.float64):
            for case in CONV_CASES:
                rows += _conv_rows(torch, case, dtype, repeats, naive_repeats)
            for case in POOL_CASES:
                rows += _pool_rows(torch, case, dtype, repeats, naive_repeats)
    finally:
        torch.set_num_threads(previous)
    for row in rows:
        row["threads"] = threads
    return rows


def format_table(rows) -> str:
    """The rows as a fixed-width text table."""
    head = (f"{'op':<12} {'dtype':<8} {'pass':<8} {'naive ms':>10} {'fast ms':>9} "
            f"{'torch ms':>9} {'naive/fast':>11} {'fast/torch':>11}")
    lines = [head, "-" * len(head)]
    for r in rows:
        naive = "" if r["naive_ms"] is None else f"{r['naive_ms']:.1f}"
        speed = "" if r["speedup_vs_naive"] is None else f"{r['speedup_vs_naive']:.0f}x"
        lines.append(f"{r['op']:<12} {r['dtype']:<8} {r['pass']:<8} {naive:>10} "
                     f"{r['fast_ms']:>9.2f} {r['torch_ms']:>9.2f} {speed:>11} "
                     f"{r['fast_over_torch']:>11.2f}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for NumPy's BLAS and PyTorch (default: all CPUs)")
    args = parser.parse_args(argv)
    if args.threads is not None and blas_threads() != args.threads:
        parser.error("--threads must come before NumPy is imported: run this file as a script")
    rows = run(quick=args.quick)
    print(f"NumPy BLAS and torch threads: {rows[0]['threads']}")
    for name, xs, ws, stride, pad, _ in CONV_CASES:
        print(f"  {name}: x{xs} w{ws} stride {stride} pad {pad}")
    for name, xs, ph, pw, stride, _ in POOL_CASES:
        print(f"  {name}: x{xs} window {ph}x{pw} stride {stride}")
    print(format_table(rows))


if __name__ == "__main__":
    main()
