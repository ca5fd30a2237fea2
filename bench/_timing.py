"""Timing helper shared by the benchmark scripts in this folder."""
import time


def min_times(funcs, repeats, warmup=1, rounds=2, settle=0.2):
    """The minimum seconds per call of each function.

    Each function is timed in blocks of ``repeats`` consecutive calls, each
    block after untimed warm-up calls that last at least ``settle`` seconds
    (and number at least ``warmup``); the blocks of all the functions take
    turns for ``rounds`` rounds, so that a slow moment of the machine hits
    them alike.

    The blocks and the warm-up matter when NumPy and PyTorch are compared with
    several threads. OpenBLAS and OpenMP worker threads keep spinning for up to
    about 0.1 s after their last job, so a call of one library timed right
    after a call of the other competes for the cores with the other's idle
    threads, and is slowed by it (by up to several times on a 2-core
    machine). Pausing instead of warming up does not work either: after a
    pause, the next few dozen calls of either library run slowly.
    """
    best = [float("inf")] * len(funcs)
    for _ in range(rounds):
        for i, f in enumerate(funcs):
            start, calls = time.perf_counter(), 0
            while calls < warmup or time.perf_counter() - start < settle:
                f()
                calls += 1
            for _ in range(repeats):
                t0 = time.perf_counter()
                f()
                best[i] = min(best[i], time.perf_counter() - t0)
    return best
