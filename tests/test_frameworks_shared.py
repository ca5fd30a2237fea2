"""lab._frameworks: the checks and the epoch loop lab.tf and lab.torch share,
tested without either framework."""
import sys

import numpy as np
import pytest

from lab import _frameworks as fw


def test_no_framework_is_imported():
    import subprocess
    code = ("import sys, lab._frameworks; "
            "assert not {'torch', 'tensorflow'} & set(sys.modules), sys.modules.keys()")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("layout, shape, other", [
    ("NCHW", (2, 32, 32, 3), "looks like NHWC (channels last); PyTorch and lab.torch "
                             "expect NCHW (N, C, H, W): transpose it with x.transpose(0, 3, 1, 2)"),
    ("NHWC", (2, 3, 32, 32), "looks like NCHW (channels first); Keras and lab.tf "
                             "expect NHWC (N, H, W, C): transpose it with x.transpose(0, 2, 3, 1)"),
])
def test_the_other_layout_is_named(layout, shape, other):
    with pytest.raises(ValueError) as exc:
        fw.check_images(shape, "float32", "X", layout)
    assert other in str(exc.value)
    assert f"lab.data.load_cifar10(layout='{layout}')" in str(exc.value)


def test_good_images_pass_and_return_the_shape():
    assert fw.check_images((5, 3, 32, 32), "float32", "X", "NCHW", 3, (32, 32)) == (5, 3, 32, 32)
    assert fw.check_images((5, 32, 32, 3), "float32", "X", "NHWC", 3, (32, 32)) == (5, 32, 32, 3)
    # Keras may not know the batch or spatial size yet
    assert fw.check_images((None, None, None, 3), "float32", "X", "NHWC", 3, (32, 32))


@pytest.mark.parametrize("layout, shape, channels, size, message", [
    ("NCHW", (2, 3, 32), None, None, "must be a batch of images of shape (N, C, H, W) (NCHW)"),
    ("NHWC", (2, 32, 32), None, None, "must be a batch of images of shape (N, H, W, C) (NHWC)"),
    ("NCHW", (2, 5, 32, 32), 3, None, "must have 3 channels on axis 1 (NCHW (N, 3, H, W))"),
    ("NHWC", (2, 32, 32, 5), 3, None, "must have 3 channels on its last axis (NHWC (N, H, W, 3))"),
    ("NCHW", (2, 3, 28, 28), 3, (32, 32), "must have images of size (32, 32) (NCHW (N, 3, 32, 32))"),
    ("NHWC", (2, 28, 28, 3), 3, (32, 32), "must have images of size (32, 32) (NHWC (N, 32, 32, 3))"),
])
def test_wrong_shapes(layout, shape, channels, size, message):
    with pytest.raises(ValueError) as exc:
        fw.check_images(shape, "float32", "X", layout, channels, size)
    assert message in str(exc.value)


@pytest.mark.parametrize("dtype, message", [
    ("uint8", "must be float32, got uint8 (raw pixels?)"),
    ("float64", "must be float32, got float64; convert it with x.astype(np.float32)"),
])
def test_dtypes(dtype, message):
    with pytest.raises(TypeError) as exc:
        fw.check_images((2, 3, 32, 32), dtype, "X", "NCHW")
    assert message in str(exc.value)


def test_labels_and_data():
    assert fw.check_labels([0, 9, 3], "y", 3, 10).dtype == np.int64
    with pytest.raises(ValueError):
        fw.check_labels([0, 10], "y", 2, 10)
    with pytest.raises(ValueError, match=r"data is missing \['X_val', 'y_val'\]"):
        fw.check_data({"X_train": 0, "y_train": 0})
    with pytest.raises(TypeError, match="data must be a dict"):
        fw.check_data([1, 2])
    assert fw.shape_tuple(5) == (5,) and fw.shape_tuple([2, 3]) == (2, 3)
    with pytest.raises(TypeError, match="seed must be a non-negative int"):
        fw.rng(-1)


def test_epoch_loop_counts_steps_and_scores_each_epoch():
    X = np.arange(10, dtype=np.float32)[:, None]
    y = np.arange(10) % 2
    seen = []

    def step(xb, yb):
        seen.extend(xb[:, 0].tolist())
        return float(len(seen))

    h = fw.train_part2_loop(step, lambda X_, y_: len(X_) / 10, X, y, X[:4], y[:4],
                            epochs=2, batch_size=3, generator=np.random.default_rng(0),
                            learning_rate=0.1, print_every=100, num_train_samples=5,
                            verbose=False)
    assert len(h["loss_history"]) == 8                      # ceil(10/3) per epoch
    assert sorted(seen[:10]) == list(range(10)) and sorted(seen[10:]) == list(range(10))
    assert h["train_acc_history"] == [0.5, 0.5] and h["val_acc_history"] == [0.4, 0.4]
    with pytest.raises(FloatingPointError, match="the loss became nan at iteration 1"):
        fw.train_part2_loop(lambda a, b: float("nan"), None, X, y, X, y, epochs=1,
                            batch_size=3, generator=np.random.default_rng(0),
                            learning_rate=0.1, print_every=100, num_train_samples=None,
                            verbose=False)
