"""Timing helper shared by the benchmark scripts in this folder."""
import time


def min_times(funcs, repeats, warmup=1, rounds=2, settle=0.2):
    """The minimum seconds per call of each function.

    Each function is timed in blocks of ``repeats`` consecutive calls, each
    block after a pause of ``settle`` seconds and ``warmup`` untimed calls;
    the blocks of all the functions take turns for ``rounds`` rounds, so that
    a slow moment of the machine hits them alike.

    The blocks and the pause matter when NumPy and PyTorch are compared with
    several threads: OpenBLAS and OpenMP worker threads keep spinning for up
    to about 0.1 s after their last job, so a call of one library timed right
    after a call of the other competes for the cores with the other's idle
    threads, and is slowed by it (by up to several times on a 2-core machine).
    """
    best = [float("inf")] * len(funcs)
    for _ in range(rounds):
        for i, f in enumerate(funcs):
            time.sleep(settle)
            for _ in range(warmup):
                f()
            for _ in range(repeats):
                t0 = time.perf_counter()
                f()
                best[i] = min(best[i], time.perf_counter() - t0)
    return best
