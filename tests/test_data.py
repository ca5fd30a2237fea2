import gc
import gzip
import hashlib
import io
import os
import pathlib
import pickle
import tarfile
import warnings

import h5py
import numpy as np
import pytest
from PIL import Image

from lab import data


# --------------------------------------------------------------------- patches

@pytest.fixture(scope="module")
def small_patches():
    return data.load_patches(num_patches=200, cache=False)


def test_default_patches_shape_range_and_determinism(small_patches):
    p = small_patches
    assert p.data.shape == (200, 3, 16, 16) and p.data.dtype == np.float64
    assert p.xForm.shape == (768, 768) and p.invXForm.shape == (768, 768)
    assert 0.0 <= p.data.min() and p.data.max() <= 1.0
    again = data.load_patches(num_patches=200, cache=False)
    assert np.array_equal(again.data, p.data)
    other = data.load_patches(num_patches=200, seed=1, cache=False)
    assert not np.array_equal(other.data, p.data)
    np.testing.assert_allclose(p.xForm @ p.invXForm, np.eye(768), atol=1e-9)


def test_patches_come_from_the_photographs(small_patches):
    """Each patch is a real window of one of the bundled photographs."""
    images = data._photographs()
    patch = small_patches.data[0].transpose(1, 2, 0)
    img = images[0]
    found = any(
        np.array_equal(img[r:r + 16, c:c + 16], patch)
        for r in range(img.shape[0] - 15) for c in range(img.shape[1] - 15)
        if img[r, c, 0] == patch[0, 0, 0]
    )
    assert found


def test_whitening_decorrelates():
    p = data.load_patches(num_patches=2000, cache=False)
    x = p.data.reshape(len(p), -1)
    xc = x - x.mean(0)
    sigma = xc.T @ xc / len(xc)
    # regularised ZCA (epsilon = 0.1): the whitened covariance is Sigma (Sigma + eps I)^-1
    white_cov = p.xForm @ sigma @ p.xForm.T
    np.testing.assert_allclose(white_cov, sigma @ np.linalg.inv(sigma + 0.1 * np.eye(768)), atol=1e-9)
    np.testing.assert_allclose(p.xForm, p.xForm.T, atol=1e-12)  # ZCA matrices are symmetric


def test_patch_cache_written_and_reused(tmp_path):
    first = data.load_patches(num_patches=50)
    cached = list((tmp_path / "cache").glob("patches-*.h5"))
    assert len(cached) == 1
    second = data.load_patches(num_patches=50)
    assert np.array_equal(first.data, second.data)
    cached[0].write_bytes(b"damaged")           # a damaged cache is rebuilt
    third = data.load_patches(num_patches=50)
    assert np.array_equal(first.data, third.data)


def test_hdf5_round_trip_and_bad_files(tmp_path, small_patches):
    path = tmp_path / "p.h5"
    data.save_patches(path, small_patches)
    back = data.load_patches(path)
    assert np.array_equal(back.data, small_patches.data)
    assert np.array_equal(back.invXForm, small_patches.invXForm)

    missing = tmp_path / "missing.h5"
    with h5py.File(missing, "w") as f:
        f["data"] = small_patches.data
    with pytest.raises(KeyError, match=r"lacks the dataset\(s\) \['invXForm', 'xForm'\]"):
        data.load_patches(missing)

    wrong = tmp_path / "wrong.h5"
    with h5py.File(wrong, "w") as f:
        f["data"] = np.zeros((5, 16, 16))
        f["xForm"] = np.eye(768)
        f["invXForm"] = np.eye(768)
    with pytest.raises(ValueError, match=r"\(N, 3, P, P\).*got \(5, 16, 16\)"):
        data.load_patches(wrong)

    wrong_x = tmp_path / "wrong_x.h5"
    with h5py.File(wrong_x, "w") as f:
        f["data"] = small_patches.data
        f["xForm"] = np.eye(10)
        f["invXForm"] = np.eye(768)
    with pytest.raises(ValueError, match=r"'xForm' must have shape \(768, 768\)"):
        data.load_patches(wrong_x)

    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="not a readable HDF5 file"):
        data.load_patches(garbage)
    with pytest.raises(FileNotFoundError, match="patch file not found"):
        data.load_patches(tmp_path / "nope.h5")


def test_failed_save_leaves_nothing(tmp_path, small_patches, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(h5py.Group, "create_dataset", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        data.save_patches(tmp_path / "p.h5", small_patches)
    assert list(tmp_path.iterdir()) == []


def test_preprocessing_matches_the_course_definition(small_patches):
    d = small_patches.data
    gray = 0.2126 * d[:, 0] + 0.7152 * d[:, 1] + 0.0722 * d[:, 2]
    np.testing.assert_allclose(data.to_grayscale(d), gray, rtol=1e-12)
    rows = gray.reshape(len(d), -1)
    rows = rows - rows.mean(axis=1, keepdims=True)
    s = 3 * rows.std()
    expected = (np.clip(rows, -s, s) + s) / (2 * s) * 0.8 + 0.1
    X = data.preprocess_patches(d)
    assert X.shape == (200, 256)
    np.testing.assert_allclose(X, expected, rtol=1e-12)
    assert X.min() >= 0.1 - 1e-12 and X.max() <= 0.9 + 1e-12


def test_preprocessing_bad_input():
    with pytest.raises(ValueError, match="3 colour channels"):
        data.to_grayscale(np.zeros((2, 4, 16, 16)))
    with pytest.raises(ValueError, match="4 dimensions"):
        data.to_grayscale(np.zeros((3, 16, 16)))
    with pytest.raises(ValueError, match="NaN"):
        data.preprocess_patches(np.full((2, 3, 4, 4), np.nan))
    with pytest.raises(ValueError, match="constant"):
        data.normalize_patches(np.ones((3, 16, 16)))
    with pytest.raises(TypeError, match="floating-point"):
        data.normalize_patches(np.array([["a"]]))


def test_sample_patches_bad_input():
    with pytest.raises(ValueError, match="smaller than patch_size"):
        data.sample_patches([np.zeros((8, 8, 3))], num_patches=2, patch_size=16)
    with pytest.raises(ValueError, match="at least one image"):
        data.sample_patches([], num_patches=2)
    with pytest.raises(ValueError, match="positive integer"):
        data.load_patches(num_patches=0)


# -------------------------------------------------------------------- CIFAR-10

def fake_images(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, size=n)


def write_batch(path, x, y):
    d = {b"data": x.transpose(0, 3, 1, 2).reshape(len(x), -1), b"labels": [int(v) for v in y]}
    with open(path, "wb") as f:
        pickle.dump(d, f, protocol=2)


@pytest.fixture
def official_dir(tmp_path):
    folder = tmp_path / "data" / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    parts = []
    for i in range(1, 6):
        x, y = fake_images(20, i)
        write_batch(folder / f"data_batch_{i}", x, y)
        parts.append((x, y))
    xt, yt = fake_images(10, 9)
    write_batch(folder / "test_batch", xt, yt)
    xtr = np.concatenate([p[0] for p in parts])
    ytr = np.concatenate([p[1] for p in parts])
    return tmp_path / "data", (xtr, ytr, xt, yt)


def write_image_tree(root, n_train=2, n_test=1, classes=data.CIFAR10_CLASSES, seed=0):
    """An image-folder tree; channel 0 of every pixel is 20 * (the class's
    CIFAR-10 label), so each decoded image tells which folder it came from."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for k in range(n):
                img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                img[..., 0] = 20 * data.CIFAR10_CLASSES.index(c) if c in data.CIFAR10_CLASSES else 255
                Image.fromarray(img).save(root / split / c / f"{k:04d}.png")
    return root


@pytest.fixture
def image_folder(tmp_path):
    return write_image_tree(tmp_path / "imgs" / "cifar10")


def assert_labels_follow_folders(x, y):
    np.testing.assert_array_equal(x[:, 0, 0, 0], 20 * y)


def snapshot(folder):
    return sorted((str(p), p.stat().st_mtime_ns) for p in pathlib.Path(folder).rglob("*"))


def test_official_batches_from_root(official_dir):
    root, (xtr, ytr, xt, yt) = official_dir
    before = snapshot(root)
    x_tr, y_tr, x_te, y_te, classes = data.load_cifar10_raw(root, download=False)
    assert np.array_equal(x_tr, xtr) and np.array_equal(y_tr, ytr)
    assert np.array_equal(x_te, xt) and np.array_equal(y_te, yt)
    assert classes == data.CIFAR10_CLASSES
    assert snapshot(root) == before  # nothing written into the data folder


def test_official_tar_and_lab_data(official_dir, tmp_path, monkeypatch):
    root, (xtr, *_ ) = official_dir
    tar_home = tmp_path / "tarhome" / "cifar10"
    tar_home.mkdir(parents=True)
    with tarfile.open(tar_home / data.CIFAR10_ARCHIVE, "w:gz") as tar:
        tar.add(root / "cifar10" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    monkeypatch.setattr(data, "CIFAR10_MD5", md5_of(tar_home / data.CIFAR10_ARCHIVE))
    monkeypatch.setenv("LAB_DATA", str(tmp_path / "tarhome"))
    x_tr, *_ = data.load_cifar10_raw(download=False)
    assert np.array_equal(x_tr, xtr)


def test_missing_batch_is_named(official_dir):
    root, _ = official_dir
    (batch_dir(root) / "data_batch_4").unlink()
    (batch_dir(root) / "test_batch").unlink()
    with pytest.raises(ValueError, match=r"lacks the CIFAR-10 batches \['data_batch_4', 'test_batch'\]"):
        data.load_cifar10_raw(root, download=False)


def make_archive(official_root, folder):
    """Pack the fake batches as ``folder/cifar-10-python.tar.gz``, like the official archive."""
    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / data.CIFAR10_ARCHIVE
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(batch_dir(official_root), arcname="cifar-10-batches-py")
    return archive


def md5_of(path):
    return "md5:" + hashlib.md5(pathlib.Path(path).read_bytes()).hexdigest()


def test_truncated_archive(official_dir, tmp_path, monkeypatch):
    root, _ = official_dir
    archive = make_archive(root, tmp_path / "tarhome" / "cifar10")
    raw = archive.read_bytes()
    archive.write_bytes(raw[: len(raw) * 6 // 10])
    monkeypatch.setattr(data, "CIFAR10_MD5", md5_of(archive))  # reach the reading itself
    with pytest.raises(ValueError, match=r"cifar-10-python\.tar\.gz is truncated or damaged; "
                                         r"delete it and download cifar-10-python\.tar\.gz again"):
        data.load_cifar10_raw(tmp_path / "tarhome", download=False)


def test_oversized_archive_member_is_not_read(tmp_path, monkeypatch):
    """A member that declares 300 MiB is refused from its header, before any read."""
    info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
    info.size = 300 * 2**20
    archive = tmp_path / "big" / "cifar10" / data.CIFAR10_ARCHIVE
    archive.parent.mkdir(parents=True)
    archive.write_bytes(gzip.compress(info.tobuf() + bytes(4096)))
    monkeypatch.setattr(data, "CIFAR10_MD5", md5_of(archive))
    with pytest.raises(ValueError, match=r"member cifar-10-batches-py/data_batch_1 declares "
                                         r"314572800 bytes; a CIFAR-10 batch is about 31 MB"):
        data.load_cifar10_raw(tmp_path / "big", download=False)


@pytest.mark.parametrize("where", ["user cache", "LAB_DATA"])
def test_reused_archive_is_verified(official_dir, tmp_path, monkeypatch, where):
    """An archive that is already there is checked against the official MD5."""
    root, _ = official_dir
    if where == "user cache":
        monkeypatch.delenv("LAB_DATA", raising=False)
        folder = tmp_path / "cache" / "cifar10"
    else:
        monkeypatch.setenv("LAB_DATA", str(tmp_path / "tarhome"))
        folder = tmp_path / "tarhome" / "cifar10"
    archive = make_archive(root, folder)
    actual = md5_of(archive)[4:]
    with pytest.raises(ValueError) as info:
        data.load_cifar10_raw(download=False)
    msg = str(info.value)
    assert str(archive) in msg and "not the official cifar-10-python.tar.gz" in msg
    assert f"its MD5 is {actual}, expected c58f30108f718f92721af3b95e74349a" in msg
    assert "delete it and download" in msg
    assert not list((tmp_path / "cache").glob("*.npz"))


def test_verified_archive_is_hashed_once(official_dir, tmp_path, monkeypatch):
    root, (xtr, ytr, xt, yt) = official_dir
    monkeypatch.delenv("LAB_DATA", raising=False)
    archive = make_archive(root, tmp_path / "cache" / "cifar10")
    monkeypatch.setattr(data, "CIFAR10_MD5", md5_of(archive))
    hashed = []
    real_verify = data._verify_archive
    monkeypatch.setattr(data, "_verify_archive", lambda a: hashed.append(a) or real_verify(a))
    for _ in range(3):
        x_tr, y_tr, x_te, y_te, _ = data.load_cifar10_raw(download=False)
        assert np.array_equal(x_tr, xtr) and np.array_equal(y_te, yt)
    assert hashed == [archive]
    # a same-size edit with the mtime set back is still noticed and checked again
    st = archive.stat()
    raw = bytearray(archive.read_bytes())
    raw[-100] ^= 0xFF
    archive.write_bytes(bytes(raw))
    os.utime(archive, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(ValueError, match="its MD5 is"):
        data.load_cifar10_raw(download=False)
    assert hashed == [archive, archive]


def test_split_normalisation_and_layouts(official_dir):
    root, (xtr, ytr, xt, yt) = official_dir
    d = data.load_cifar10(root, num_training=80, num_validation=20, num_test=10, download=False)
    assert d["X_train"].shape == (80, 3, 32, 32) and d["X_train"].dtype == np.float32
    assert d["X_val"].shape == (20, 3, 32, 32) and d["X_test"].shape == (10, 3, 32, 32)
    np.testing.assert_array_equal(d["y_val"], ytr[80:100])
    mean = d["X_train"].astype(np.float64).mean(axis=(0, 2, 3))
    std = d["X_train"].astype(np.float64).std(axis=(0, 2, 3))
    np.testing.assert_allclose(mean, 0.0, atol=1e-5)
    np.testing.assert_allclose(std, 1.0, atol=1e-5)
    expected = (xtr[:80] / 255.0 - d["mean"]) / d["std"]
    np.testing.assert_allclose(d["X_train"].transpose(0, 2, 3, 1), expected, atol=1e-5)
    h = data.load_cifar10(root, num_training=80, num_validation=20, num_test=10, layout="NHWC",
                          dtype=np.float64, normalize=False, download=False)
    assert h["X_train"].shape == (80, 32, 32, 3) and h["X_train"].dtype == np.float64
    np.testing.assert_allclose(h["X_test"], xt / 255.0)


def test_cifar_argument_errors(official_dir):
    root, _ = official_dir
    with pytest.raises(ValueError, match="exceeds the 100 training images"):
        data.load_cifar10(root, num_training=90, num_validation=20, num_test=10, download=False)
    with pytest.raises(ValueError, match="num_test = 11 exceeds"):
        data.load_cifar10(root, num_training=10, num_validation=0, num_test=11, download=False)
    with pytest.raises(ValueError, match="layout must be"):
        data.load_cifar10(root, layout="CHW", num_test=10, download=False)
    with pytest.raises(TypeError, match="floating-point"):
        data.load_cifar10(root, dtype=np.int32, num_test=10, download=False)


def test_dtype_given_by_name(official_dir):
    root, _ = official_dir
    kw = dict(num_training=80, num_validation=20, num_test=10, download=False)
    by_name = data.load_cifar10(root, dtype="float32", **kw)
    by_type = data.load_cifar10(root, dtype=np.float32, **kw)
    assert by_name["X_train"].dtype == np.float32
    for key in ("X_train", "X_val", "X_test"):
        np.testing.assert_array_equal(by_name[key], by_type[key])
    assert data.load_cifar10(root, dtype="f8", **kw)["X_val"].dtype == np.float64


@pytest.mark.parametrize("dtype, shown", [
    ("int32", r"'int32' \(int32\)"), (np.uint8, r"<class 'numpy.uint8'> \(uint8\)"),
    ("float33", r"'float33' \(data type 'float33' not understood\)"),
    (complex, r"<class 'complex'> \(complex128\)"), ("U3", r"'U3' \(<U3\)"), (object(), r"<object object"),
])
def test_bad_dtype_is_refused_before_loading(tmp_path, dtype, shown):
    """No data are needed to refuse a dtype (the root here holds none)."""
    with pytest.raises(TypeError, match=r"dtype must be a floating-point type .*got " + shown):
        data.load_cifar10(tmp_path / "nothing", dtype=dtype, download=False)


@pytest.mark.parametrize("channels", [(0, 1, 2), (1,)])
def test_zero_std_training_split(official_dir, channels):
    root, (xtr, ytr, xt, yt) = official_dir
    xtr = xtr.copy()
    xtr[..., list(channels)] = 0  # all-black in those channels
    for i in range(5):
        part = slice(20 * i, 20 * (i + 1))
        write_batch(batch_dir(root) / f"data_batch_{i + 1}", xtr[part], ytr[part])
    kw = dict(num_training=80, num_validation=20, num_test=10, download=False)
    shown = {(0, 1, 2): r"channels 0 \(red\), 1 \(green\), 2 \(blue\)", (1,): r"channel 1 \(green\)"}
    with pytest.raises(ValueError, match=r"training split \(80 images\) has zero standard deviation "
                                         r"in " + shown[channels] + r": .*pass normalize=False"):
        data.load_cifar10(root, **kw)
    d = data.load_cifar10(root, normalize=False, **kw)
    assert np.isfinite(d["X_train"]).all() and (d["X_train"][:, list(channels)] == 0).all()
    assert (d["std"][list(channels)] == 0).all()


def test_lab_cache_must_be_a_folder(official_dir, tmp_path, monkeypatch):
    root, (xtr, *_ ) = official_dir
    not_a_folder = tmp_path / "cachefile"
    not_a_folder.write_text("a file")
    for value in (not_a_folder, not_a_folder / "sub"):
        monkeypatch.setenv("LAB_CACHE", str(value))
        message = (r"LAB_CACHE='.*cachefile(/sub)?' must name a folder \(it is created when missing\), "
                   r"but .*cachefile is a file")
        with pytest.raises(NotADirectoryError, match=message):
            data.cache_dir()
        with pytest.raises(NotADirectoryError, match=message):
            data.load_cifar10_raw(root, download=False)
        with pytest.raises(NotADirectoryError, match=message):
            data.load_patches(num_patches=20)
        # nothing needs the cache without caching
        assert np.array_equal(data.load_cifar10_raw(root, download=False, cache=False)[0], xtr)
    assert len(data.load_patches(num_patches=20, cache=False)) == 20


def test_restricted_unpickler_refuses_code(official_dir):
    root, _ = official_dir
    batch = root / "cifar10" / "cifar-10-batches-py" / "data_batch_1"

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    batch.write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    with pytest.raises(data.UnsafePickleError, match="refusing to load posix.system|refusing to load nt.system"):
        data.load_cifar10_raw(root, download=False, cache=False)


def test_corrupt_batch(official_dir):
    root, _ = official_dir
    (root / "cifar10" / "cifar-10-batches-py" / "test_batch").write_bytes(b"\x80\x02garbage")
    with pytest.raises(ValueError, match="not a readable CIFAR-10 batch"):
        data.load_cifar10_raw(root, download=False)


def batch_dir(root):
    return root / "cifar10" / "cifar-10-batches-py"


def rewrite_batch(root, name, raw_data=None, raw_labels=None, protocol=2):
    """Replace one batch of the fake tree with the given raw b'data' / b'labels'."""
    x, y = fake_images(20, 1)
    d = {b"data": x.transpose(0, 3, 1, 2).reshape(len(x), -1) if raw_data is None else raw_data,
         b"labels": [int(v) for v in y] if raw_labels is None else raw_labels}
    with open(batch_dir(root) / name, "wb") as f:
        pickle.dump(d, f, protocol=protocol)


_PIXELS = np.zeros((20, 3072), np.int64)


@pytest.mark.parametrize("raw_data, raw_labels, message", [
    (_PIXELS + 300, None, r"pixel values 0\.\.255, got 1 distinct value\(s\) outside 0\.\.255 \(300\)"),
    (_PIXELS - 1, None, r"pixel values 0\.\.255, .*\(-1\)"),
    (_PIXELS.astype(np.float64) + 0.5, None, r"b'data' \(pixels 0\.\.255\) must hold integers, got dtype float64"),
    (_PIXELS.astype(bool), None, r"b'data' .* must hold integers, got dtype bool"),
    (_PIXELS[:, :100], None, r"expected data of shape \(n, 3072\) and n labels, got \(20, 100\) and \(20,\)"),
    (None, [42] + [0] * 19, r"b'labels' must hold classes 0\.\.9, got 1 distinct value\(s\) outside 0\.\.9 \(42\)"),
    (None, [-1, 42] + [0] * 18, r"classes 0\.\.9, got 2 distinct .*\(-1, 42\)"),
    (None, [1.0, 2.7] + [0.0] * 18, r"b'labels' \(classes 0\.\.9\) must hold integers, got dtype float64"),
    (None, ["cat"] * 20, r"b'labels' .* must hold integers, got dtype <U3"),
    (None, [0] * 19, r"expected data of shape \(n, 3072\) and n labels, got \(20, 3072\) and \(19,\)"),
    (None, [[0]] * 20, r"got \(20, 3072\) and \(20, 1\)"),
    ([[0] * 3072, [0]], None, r"b'data' .* is not an array of numbers"),
], ids=["pixel-300", "pixel-minus-1", "float-pixels", "bool-pixels", "short-rows", "label-42",
        "label-minus-1", "float-labels", "string-labels", "too-few-labels", "2d-labels", "ragged-data"])
def test_bad_batch_contents(official_dir, raw_data, raw_labels, message):
    root, _ = official_dir
    rewrite_batch(root, "data_batch_3", raw_data, raw_labels)
    with pytest.raises(ValueError, match=r"data_batch_3: .*" + message):
        data.load_cifar10_raw(root, download=False)


@pytest.mark.parametrize("protocol, module", [
    (2, "numpy._core.multiarray"), (4, "numpy._core.multiarray"),
    (2, "numpy.core.multiarray"),  # how NumPy 1 names the scalar constructor
])
def test_numpy_scalar_labels_are_plain_data(official_dir, protocol, module):
    """Labels pickled as a list of NumPy integers."""
    root, (xtr, ytr, _, _) = official_dir
    x, y = xtr[:20], ytr[:20]
    d = {b"data": x.transpose(0, 3, 1, 2).reshape(20, -1), b"labels": [np.int64(v) for v in y]}
    raw = pickle.dumps(d, protocol=protocol)
    assert b"numpy._core.multiarray" in raw and b"scalar" in raw
    raw = raw.replace(b"numpy._core.multiarray\nscalar", module.encode() + b"\nscalar")
    assert module.encode() + b"\nscalar" in raw or protocol > 2
    (batch_dir(root) / "data_batch_1").write_bytes(raw)
    x_tr, y_tr, *_ = data.load_cifar10_raw(root, download=False)
    np.testing.assert_array_equal(x_tr, xtr)
    np.testing.assert_array_equal(y_tr, ytr)
    assert y_tr.dtype == np.int64


def test_batch_files_are_closed(official_dir):
    root, _ = official_dir
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        data.load_cifar10_raw(root, download=False, cache=False)
        gc.collect()
    leaked = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaked == []


def test_image_folder(image_folder, tmp_path):
    before = snapshot(image_folder)
    x_tr, y_tr, x_te, y_te, classes = data.load_cifar10_raw(image_folder.parent, download=False)
    assert classes == data.CIFAR10_CLASSES
    assert x_tr.shape == (20, 32, 32, 3) and x_te.shape == (10, 32, 32, 3)
    assert np.bincount(y_tr).tolist() == [2] * 10 and np.bincount(y_te).tolist() == [1] * 10
    # the fixed permutation mixes the classes; images still match their labels
    assert not np.array_equal(y_tr, np.sort(y_tr))
    assert_labels_follow_folders(x_tr, y_tr)
    assert_labels_follow_folders(x_te, y_te)
    k = int(np.flatnonzero(y_tr == 5)[0])
    matches = [np.array_equal(x_tr[k], np.asarray(Image.open(p)))
               for p in sorted((image_folder / "train" / "dog").iterdir())]
    assert any(matches)
    assert snapshot(image_folder) == before
    assert list((tmp_path / "cache").glob("cifar10-decoded-*.npz"))


def test_image_folder_ignores_stray_folders_and_files(image_folder):
    """Labels come from the class names, so stray folders shift nothing."""
    clean = data.load_cifar10_raw(image_folder, download=False, cache=False)
    for split in ("train", "test"):
        for junk in ("__MACOSX", ".ipynb_checkpoints", "_trash"):
            (image_folder / split / junk).mkdir()
            Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(image_folder / split / junk / "x.png")
        (image_folder / split / "README.txt").write_text("notes")
        (image_folder / split / "cat" / "._0000.png").write_bytes(b"AppleDouble")
    messy = data.load_cifar10_raw(image_folder, download=False, cache=False)
    assert messy[4] == data.CIFAR10_CLASSES
    for a, b in zip(clean[:4], messy[:4]):
        np.testing.assert_array_equal(a, b)


def _unknown_folder(root):
    for split in ("train", "test"):
        (root / split / "misc").mkdir()
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(root / split / "misc" / "0000.png")


def _missing_class(root):
    for split in ("train", "test"):
        for f in (root / split / "truck").iterdir():
            f.unlink()
        (root / split / "truck").rmdir()


def _renamed_class(root):
    for split in ("train", "test"):
        (root / split / "airplane").rename(root / split / "plane")


def _class_missing_in_test(root):
    for f in (root / "test" / "frog").iterdir():
        f.unlink()
    (root / "test" / "frog").rmdir()


@pytest.mark.parametrize("damage, message", [
    (_unknown_folder, r"train holds folders that are not CIFAR-10 classes: \['misc'\]; "
                      r"expected .*named airplane, automobile, .*, truck"),
    (_missing_class, r"train lacks the class folder\(s\) \['truck'\]"),
    (_renamed_class, r"train holds folders that are not CIFAR-10 classes: \['plane'\]"),
    (_class_missing_in_test, r"test lacks the class folder\(s\) \['frog'\]"),
])
def test_image_folder_classes_must_be_cifar10(image_folder, damage, message):
    damage(image_folder)
    with pytest.raises(ValueError, match=message):
        data.load_cifar10_raw(image_folder, download=False)


def test_decoded_cache_is_reused(image_folder, monkeypatch):
    first = data.load_cifar10_raw(image_folder, download=False)

    def fail(*a, **k):
        raise AssertionError("decoded again")

    monkeypatch.setattr(data, "_read_image_folder", fail)
    second = data.load_cifar10_raw(image_folder, download=False)
    assert np.array_equal(first[0], second[0])


def _cache_file():
    (cached,) = pathlib.Path(os.environ["LAB_CACHE"]).glob("cifar10-decoded-*.npz")
    return cached


@pytest.mark.parametrize("damage, key", [
    (lambda z: z["y_train"].__setitem__(0, 42), "y_train"),
    (lambda z: z["y_test"].__setitem__(0, -1), "y_test"),
    (lambda z: z.__setitem__("y_train", z["y_train"].astype(np.float64)), "y_train"),
    (lambda z: z.__setitem__("y_train", z["y_train"][:-1]), "y_train"),
    (lambda z: z.__setitem__("x_train", z["x_train"].transpose(0, 3, 1, 2)), "x_train"),
    (lambda z: z.__setitem__("x_test", z["x_test"].astype(np.float32)), "x_test"),
    (lambda z: z.__setitem__("x_test", z["x_test"][:0]), "x_test"),
    (lambda z: z.__setitem__("classes", z["classes"][:9]), "classes"),
    (lambda z: z.pop("y_test"), "y_test"),
], ids=["label-42", "label-minus-1", "float-labels", "short-labels", "nchw-images",
        "float-images", "no-test-images", "nine-classes", "missing-array"])
def test_invalid_decoded_cache_is_rebuilt(official_dir, damage, key):
    root, (xtr, ytr, xt, yt) = official_dir
    data.load_cifar10_raw(root, download=False)
    cached = _cache_file()
    with np.load(cached) as z:
        arrays = dict(z)
    damage(arrays)
    np.savez(cached, **arrays)  # a well-formed .npz with the wrong contents
    x_tr, y_tr, x_te, y_te, classes = data.load_cifar10_raw(root, download=False)
    assert np.array_equal(x_tr, xtr) and np.array_equal(y_tr, ytr)
    assert np.array_equal(x_te, xt) and np.array_equal(y_te, yt)
    assert classes == data.CIFAR10_CLASSES and y_tr.dtype == y_te.dtype == np.int64
    assert x_tr.dtype == x_te.dtype == np.uint8
    with np.load(_cache_file()) as z:  # and the cache holds the right arrays again
        assert np.array_equal(z["y_train"], ytr) and np.array_equal(z["x_test"], xt)


def test_same_size_batch_edit_is_seen(official_dir):
    """Editing a batch in place, size and mtime unchanged, gives the new images."""
    root, (xtr, ytr, xt, yt) = official_dir
    data.load_cifar10_raw(root, download=False)
    batch = batch_dir(root) / "data_batch_2"
    st = batch.stat()
    x_new = xtr[20:40][::-1]  # the same bytes in another order: the same file size
    write_batch(batch, x_new, ytr[20:40])
    assert batch.stat().st_size == st.st_size
    os.utime(batch, ns=(st.st_atime_ns, st.st_mtime_ns))
    x_tr, *_ = data.load_cifar10_raw(root, download=False)
    assert np.array_equal(x_tr[20:40], x_new)
    assert np.array_equal(x_tr[:20], xtr[:20]) and np.array_equal(x_tr[40:], xtr[40:])


def test_replaced_image_with_older_mtime_is_seen(image_folder):
    """An image replaced by a same-size file with an older mtime (as `cp -p` of an
    older copy leaves it) is decoded again, although no folder's newest mtime changes."""
    cat = image_folder / "train" / "cat"
    old = np.full((32, 32, 3), 60, np.uint8)
    (cat / "0000.png").unlink()
    Image.fromarray(old).save(cat / "0000.bmp")
    oldest = min(p.stat().st_mtime_ns for p in image_folder.rglob("*"))
    os.utime(cat / "0000.bmp", ns=(oldest - 2 * 10**9, oldest - 2 * 10**9))
    x_tr, y_tr, *_ = data.load_cifar10_raw(image_folder, download=False)
    assert (x_tr == old).all(axis=(1, 2, 3)).sum() == 1
    size = (cat / "0000.bmp").stat().st_size
    new = old.copy()
    new[..., 1:] = 7
    Image.fromarray(new).save(cat / "0000.bmp")
    assert (cat / "0000.bmp").stat().st_size == size
    os.utime(cat / "0000.bmp", ns=(oldest - 10**9, oldest - 10**9))
    x_tr, y_tr, *_ = data.load_cifar10_raw(image_folder, download=False)
    assert (x_tr == old).all(axis=(1, 2, 3)).sum() == 0
    assert (x_tr == new).all(axis=(1, 2, 3)).sum() == 1


def test_empty_and_corrupt_image_folders(image_folder):
    for f in (image_folder / "test" / "ship").iterdir():
        f.unlink()
    with pytest.raises(ValueError, match="holds no images"):
        data.load_cifar10_raw(image_folder, download=False)
    (image_folder / "test" / "ship" / "0000.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"cannot decode image .*0000\.png"):
        data.load_cifar10_raw(image_folder, download=False)
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(image_folder / "test" / "ship" / "0000.png")
    with pytest.raises(ValueError, match="expected 32x32"):
        data.load_cifar10_raw(image_folder, download=False)
    assert not list(pathlib.Path(os.environ["LAB_CACHE"]).glob("*.npz"))  # no half cache


def test_no_class_folders(tmp_path):
    (tmp_path / "c" / "train").mkdir(parents=True)
    (tmp_path / "c" / "test").mkdir()
    with pytest.raises(ValueError, match="no class folders"):
        data.load_cifar10_raw(tmp_path / "c", download=False)


def test_missing_data_message(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError) as info:
        data.load_cifar10_raw(download=False)
    msg = str(info.value)
    assert "$LAB_DATA" in msg and "user cache" in msg and data.CIFAR10_URL in msg
    with pytest.raises(FileNotFoundError, match="not found in the given root"):
        data.load_cifar10_raw(tmp_path / "empty", download=False)


def test_download_failure_is_reported(tmp_path, monkeypatch):
    def offline(url, output_file, pooch):
        raise ConnectionError("network unreachable")

    monkeypatch.delenv("LAB_DATA", raising=False)
    monkeypatch.setattr(data, "_DOWNLOADER", offline)
    with pytest.raises(FileNotFoundError, match="download of .* failed .*network unreachable"):
        data.load_cifar10_raw()


def test_checksum_mismatch_leaves_nothing(tmp_path, monkeypatch):
    def tampered(url, output_file, pooch):
        with open(output_file, "wb") as f:
            f.write(b"this is not the CIFAR-10 archive")

    monkeypatch.delenv("LAB_DATA", raising=False)
    monkeypatch.setattr(data, "_DOWNLOADER", tampered)
    with pytest.raises(ValueError, match="failed its checksum"):
        data.load_cifar10_raw()
    leftovers = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert leftovers == []


@pytest.mark.real_cache
def test_real_cifar10_splits():
    """The real data set, from wherever the loader finds it (LAB_DATA in CI)."""
    d = data.load_cifar10()
    assert d["X_train"].shape == (49000, 3, 32, 32)
    assert d["X_val"].shape == (1000, 3, 32, 32)
    assert d["X_test"].shape == (10000, 3, 32, 32)
    assert d["class_names"] == data.CIFAR10_CLASSES
    assert np.bincount(d["y_test"], minlength=10).tolist() == [1000] * 10
    counts = np.bincount(d["y_val"], minlength=10)
    assert counts.min() > 60  # every class is represented in validation
    assert 0.4 < d["mean"].mean() < 0.55 and 0.2 < d["std"].mean() < 0.3


# ----------------------------------------------------------------- minibatches

def test_minibatches_cover_everything_once():
    X = np.arange(23)[:, None] * np.ones((1, 2))
    y = np.arange(23)
    seen = [yb for _, yb in data.iterate_minibatches(X, y, 5, shuffle=True, seed=3)]
    assert [len(b) for b in seen] == [5, 5, 5, 5, 3]
    assert sorted(np.concatenate(seen).tolist()) == list(range(23))
    again = [yb for _, yb in data.iterate_minibatches(X, y, 5, shuffle=True, seed=3)]
    assert all(np.array_equal(a, b) for a, b in zip(seen, again))
    plain = list(data.iterate_minibatches(X, y, 5, drop_last=True))
    assert len(plain) == 4 and np.array_equal(plain[0][1], np.arange(5))
    for xb, yb in data.iterate_minibatches(X, y, 7, shuffle=True, seed=0):
        assert np.array_equal(xb[:, 0], yb)
    assert len(list(data.iterate_minibatches(X, batch_size=10))) == 3


def test_minibatches_bad_input():
    with pytest.raises(ValueError, match="same number of samples"):
        next(data.iterate_minibatches(np.zeros((4, 2)), np.zeros(3), 2))
    with pytest.raises(ValueError, match="positive integer"):
        next(data.iterate_minibatches(np.zeros((4, 2)), np.zeros(4), 0))


def test_minibatch_order_is_reproducible_by_default():
    X = np.arange(20)
    first = [xb.tolist() for xb in data.iterate_minibatches(X, batch_size=5, shuffle=True)]
    again = [xb.tolist() for xb in data.iterate_minibatches(X, batch_size=5, shuffle=True)]
    assert first == again and sorted(sum(first, [])) == list(range(20))
    assert first != [list(range(i, i + 5)) for i in range(0, 20, 5)]
    # one Generator for every epoch: a new order each epoch, the same run each time
    def epochs(rng):
        return [[xb.tolist() for xb in data.iterate_minibatches(X, batch_size=5, shuffle=True,
                                                                 seed=rng)] for _ in range(3)]
    run1, run2 = epochs(np.random.default_rng(7)), epochs(np.random.default_rng(7))
    assert run1 == run2 and run1[0] != run1[1]


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True])
def test_minibatch_bad_seed(seed):
    with pytest.raises(TypeError, match="seed must be a non-negative int"):
        next(data.iterate_minibatches(np.zeros((4, 2)), batch_size=2, shuffle=True, seed=seed))


def test_minibatch_indices_are_epochs_of_one_generator():
    stream = data.minibatch_indices(10, 3, seed=5)
    got = [next(stream) for _ in range(7)]          # 3 batches per epoch, last 1 dropped
    rng = np.random.default_rng(5)
    expected = []
    for _ in range(3):
        order = rng.permutation(10)
        expected += [order[i:i + 3] for i in (0, 3, 6)]
    assert all(np.array_equal(g, e) for g, e in zip(got, expected))
    with pytest.raises(ValueError, match="batch_size must be at most n=4, got 5"):
        next(data.minibatch_indices(4, 5))
    with pytest.raises(TypeError, match="seed must be"):
        next(data.minibatch_indices(4, 2, seed=-3))


def test_minibatch_indices_with_replacement_draw_lazily():
    rng = np.random.default_rng(2)
    stream = data.minibatch_indices(5, 8, rng, replace=True)   # larger than n: allowed
    first = next(stream)
    between = rng.random()                    # another draw from the same generator
    second = next(stream)
    ref = np.random.default_rng(2)
    assert np.array_equal(first, ref.choice(5, 8))
    assert between == ref.random()
    assert np.array_equal(second, ref.choice(5, 8))
