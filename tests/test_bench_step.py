"""bench/bench_step.py: the same ConvNet step in NumPy, TensorFlow and PyTorch."""
import importlib.util
from pathlib import Path

import numpy as np


def _load(monkeypatch):
    bench_dir = Path(__file__).resolve().parents[1] / "bench"
    monkeypatch.syspath_prepend(str(bench_dir))
    spec = importlib.util.spec_from_file_location("bench_step", bench_dir / "bench_step.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_the_three_libraries_compute_the_same_step(monkeypatch):
    bench = _load(monkeypatch)
    diffs = bench.check_same(batch=4)
    assert set(diffs) == {"torch", "tensorflow"}
    assert all(d < 1e-4 for d in diffs.values()), diffs   # float32 rounding


def test_nhwc_row_order(monkeypatch):
    """W2's rows reordered from NCHW to NHWC flattening multiply the same features."""
    bench = _load(monkeypatch)
    rng = np.random.default_rng(0)
    h = rng.standard_normal((2, 3, 4, 4))
    W2 = rng.standard_normal((3 * 16, 5))
    a = h.reshape(2, -1) @ W2
    b = h.transpose(0, 2, 3, 1).reshape(2, -1) @ bench._nchw_rows_to_nhwc(W2, 3)
    np.testing.assert_allclose(a, b, rtol=1e-12)


def test_run_times_every_library(monkeypatch):
    bench = _load(monkeypatch)
    rows = bench.run(batch=4, quick=True)
    assert [r["library"] for r in rows] == ["NumPy (lab)", "TensorFlow", "PyTorch"]
    assert all(r["step_ms"] > 0 and r["images_per_s"] > 0 for r in rows)
