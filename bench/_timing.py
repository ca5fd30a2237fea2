"""Timing helper shared by the benchmark scripts in this folder."""
import time


def min_times(funcs, repeats, warmup=1):
    """Call every function ``warmup`` times, then ``repeats`` rounds of all of
    them in turn (so that a slow moment of the machine hits them alike);
    return the minimum seconds of each."""
    for _ in range(warmup):
        for f in funcs:
            f()
    best = [float("inf")] * len(funcs)
    for _ in range(repeats):
        for i, f in enumerate(funcs):
            t0 = time.perf_counter()
            f()
            best[i] = min(best[i], time.perf_counter() - t0)
    return best
