"""Speed of one sparse-autoencoder cost-and-gradient evaluation.

Times, side by side and in one run, on the full-size problem (10,240 patches
of 256 pixels, random in [0.1, 0.9]; 64 hidden units; lambda = 1e-4,
beta = 3, rho = 0.01), in float32 and float64:

* NumPy, the hand-derived gradient of ``lab.autoencoder.ae_cost``;
* PyTorch autograd: ``SparseAutoencoder.cost(x).backward()``;
* TensorFlow: ``tf.GradientTape`` over the Keras model, inside a ``tf.function``.

Each time is the minimum over blocks of consecutive calls, each block after
0.2 s of warm-up calls (which also trace the ``tf.function``); the
blocks of the three take turns so that a busy machine slows all alike (see
``_timing.min_times``). Every framework runs with its default threading
unless ``--threads N`` is given: then NumPy's BLAS, PyTorch and TensorFlow all
get N threads (on a machine shared with other work, ``--threads 1`` compares
the work each does rather than how each copes with contention). The load
average is printed with the table for the same reason.

Run ``python bench/bench_autoencoder.py`` (``--quick`` for fewer repeats), or
call ``run(quick=False)`` from a notebook for the rows as a list of dicts.
"""
from __future__ import annotations

import argparse
import os
import sys

from _timing import min_times  # bench/ is on sys.path when these run

N, L_IN, L_HID = 10240, 256, 64
LAM, BETA, RHO = 1e-4, 3.0, 0.01
BACKENDS = ("NumPy (by hand)", "PyTorch autograd", "TF GradientTape")


def _set_threads(threads):
    """Give PyTorch and TensorFlow ``threads`` threads (NumPy's BLAS takes its
    count from the environment when NumPy loads: see :func:`main`)."""
    from lab.tf import autoencoder as _  # noqa: F401  (quiets TensorFlow's logging first)

    import tensorflow as tf
    import torch

    torch.set_num_threads(threads)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow's runtime already started in this process
        print("note: TensorFlow already initialised; its thread counts are unchanged",
              file=sys.stderr)


def _callables(dtype, n, l_in, l_hid, seed=0):
    """One cost-and-gradient evaluation per backend, all on the same data and
    initial weights, plus the three costs (to check they agree)."""
    import numpy as np

    from lab import autoencoder as ae
    from lab.tf import autoencoder as tfa        # before TensorFlow: it quiets its logging
    from lab.torch import autoencoder as tha

    import tensorflow as tf

    x = np.random.default_rng(seed).uniform(0.1, 0.9, size=(n, l_in)).astype(dtype)
    We = ae.init_weights(l_in, l_hid, seed=seed, dtype=dtype)
    params = ae.AEParams(l_in, l_hid, LAM, BETA, RHO)

    def numpy_eval():
        return ae.ae_cost(We, x, params)[0]

    model = tha.SparseAutoencoder.from_numpy(We, LAM, BETA, RHO)
    xt = model.as_input(x)

    def torch_eval():
        model.zero_grad(set_to_none=True)
        J = model.cost(xt)
        J.backward()
        return float(J.detach())

    kmodel = tfa.build_model(l_in, l_hid, LAM, BETA, RHO, dtype=np.dtype(dtype).name)
    tfa.set_weights(kmodel, We)
    cost_grad = tfa._functions(kmodel)["cost_grad"]     # the compiled tf.function
    xk = tf.constant(x)

    def tf_eval():
        J, grads = cost_grad(xk)
        return float(J)

    funcs = (numpy_eval, torch_eval, tf_eval)
    return funcs, [float(f()) for f in funcs]


def run(quick=False, repeats=None, n=N, l_in=L_IN, l_hid=L_HID,
        dtypes=("float32", "float64"), threads=None):
    """Time the three backends.

    Parameters
    ----------
    quick : bool
        Fewer repeats (3 instead of 15).
    repeats : int, optional
        Overrides the number of repeats.
    n, l_in, l_hid : int
        Problem size: data (n, l_in), l_hid hidden units.
    dtypes : sequence of "float32"/"float64"
    threads : int, optional
        Threads for PyTorch and TensorFlow (NumPy's BLAS keeps the count it
        started with); ``None`` leaves every framework at its default.

    Returns
    -------
    rows : list of dict
        One per (dtype, backend): ``dtype``, ``backend``, ``ms`` (minimum
        milliseconds per evaluation), ``vs_numpy`` (time / NumPy's time at
        that dtype) and ``J`` (the cost, equal across backends up to rounding).
    """
    import numpy as np

    repeats = repeats if repeats is not None else (3 if quick else 15)
    if threads is not None:
        _set_threads(threads)
    rows = []
    for dtype in dtypes:
        funcs, costs = _callables(np.dtype(dtype), n, l_in, l_hid)
        times = min_times(funcs, repeats, warmup=2)
        for backend, t, J in zip(BACKENDS, times, costs):
            rows.append({"dtype": np.dtype(dtype).name, "backend": backend, "ms": 1e3 * t,
                         "vs_numpy": t / times[0], "J": J})
    return rows


def format_table(rows):
    """The rows of :func:`run` as a fixed-width text table."""
    lines = [f"{'dtype':8s} {'backend':18s} {'ms':>9s} {'x NumPy':>8s}",
             "-" * 46]
    for r in rows:
        lines.append(f"{r['dtype']:8s} {r['backend']:18s} {r['ms']:9.2f} {r['vs_numpy']:8.2f}")
    return "\n".join(lines)


def _load():
    try:
        return "load average %.1f %.1f %.1f" % os.getloadavg()
    except (AttributeError, OSError):  # pragma: no cover - not Unix
        return "load average unknown"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--repeats", type=int, default=None, help="repeats per timing")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for NumPy's BLAS, PyTorch and TensorFlow alike")
    args = parser.parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be at least 1, got {args.threads}")
        if "numpy" in sys.modules:
            print("note: NumPy already loaded; its BLAS thread count is unchanged",
                  file=sys.stderr)
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.threads)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"sparse autoencoder cost + gradient, data ({N}, {L_IN}), {L_HID} hidden units, "
          "minimum over repeats")
    print(f"{cpus} CPUs, threads: {args.threads or 'framework defaults'}, {_load()} before")
    rows = run(quick=args.quick, repeats=args.repeats, threads=args.threads)
    print(format_table(rows))
    for dtype in sorted({r["dtype"] for r in rows}):
        costs = [r["J"] for r in rows if r["dtype"] == dtype]
        spread = (max(costs) - min(costs)) / abs(costs[0])
        print(f"{dtype}: J = {costs[0]:.6f} in all three (relative spread {spread:.1e})")
    print(f"{_load()} after")
    try:
        busy = os.getloadavg()[0] > cpus
    except (AttributeError, OSError):  # pragma: no cover - not Unix
        busy = False
    if busy and args.threads is None:
        print("note: more runnable threads than CPUs; multi-threaded timings then measure how "
              "each library copes with contention more than the work it does (try --threads 1)")


if __name__ == "__main__":
    main()
