"""Data for the book: natural image patches (Part I) and CIFAR-10 (Parts II-III).

Patches
-------
``load_patches()`` cuts 10,240 RGB 16x16 patches, seeded, from the colour
photographs that ship inside scikit-image (no download), caches them and
returns a :class:`Patches` record in the course's HDF5 layout::

    data      (N, 3, 16, 16) float64 in [0, 1]
    xForm     (768, 768) ZCA whitening matrix of the flattened, mean-removed patches
    invXForm  (768, 768) its inverse

``load_patches(path)`` reads and validates such an HDF5 file instead;
``save_patches`` writes one.  ``preprocess_patches`` turns RGB patches into the
(N, 256) grayscale rows in [0.1, 0.9] that the sparse autoencoder learns from.

CIFAR-10
--------
``load_cifar10()`` returns train/val/test splits with per-channel normalisation
computed on the training split.  It looks for the data, in order, in an explicit
``root``, in ``$LAB_DATA/cifar10``, in the user cache, and finally downloads the
official ``cifar-10-python.tar.gz`` (checksum-verified).  A data folder may hold
the official python batches or an image-folder tree ``train/<class>/*``,
``test/<class>/*`` named by :data:`CIFAR10_CLASSES`.  Decoded arrays are
cached in the user cache directory (``$LAB_CACHE`` overrides it), never in the
data folder; an official archive is verified by its MD5 wherever it lies.
"""
from __future__ import annotations

import hashlib
import io
import numbers
import os
import pathlib
import pickle
import sys
import tarfile
import tempfile
import zlib
from dataclasses import dataclass

import numpy as np

from lab._validate import as_float_array, nonneg_int, positive_int

__all__ = [
    "Patches", "load_patches", "save_patches", "sample_patches", "PATCH_PHOTOGRAPHS",
    "to_grayscale", "normalize_patches", "preprocess_patches",
    "load_cifar10", "load_cifar10_raw", "CIFAR10_CLASSES", "iterate_minibatches",
    "minibatch_indices", "cache_dir",
]

# ----------------------------------------------------------------------------
# Cache
# ----------------------------------------------------------------------------


def cache_dir() -> pathlib.Path:
    """The folder where lab caches patches, downloads and decoded arrays.

    ``$LAB_CACHE`` when set, else the operating system's user cache folder
    (``$XDG_CACHE_HOME/lab`` or ``~/.cache/lab`` on Linux).  It is created
    when first written to; a file in its place (or in place of one of its
    parents) is a NotADirectoryError that names it.
    """
    env = os.environ.get("LAB_CACHE")
    if env:
        path = pathlib.Path(env).expanduser()
    elif os.name == "nt":
        base = os.environ.get("LOCALAPPDATA") or pathlib.Path.home() / "AppData" / "Local"
        path = pathlib.Path(base) / "lab" / "Cache"
    elif sys.platform == "darwin":
        path = pathlib.Path.home() / "Library" / "Caches" / "lab"
    else:
        base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
        path = pathlib.Path(base) / "lab"
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                where = (f"LAB_CACHE={env!r} must name a folder" if env
                         else f"the cache folder {path} must be a folder")
                raise NotADirectoryError(
                    f"{where} (it is created when missing), but {p} is a file; "
                    + ("point LAB_CACHE at a folder" if env
                       else "move that file away or set LAB_CACHE to a folder")
                )
            break
    return path


def _atomic_write(path: pathlib.Path, write) -> None:
    """Call ``write(file_object)`` on a temporary file beside ``path`` and move
    it into place only when it succeeded, so that no half-written file is left."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# ----------------------------------------------------------------------------
# Patches
# ----------------------------------------------------------------------------

#: The scikit-image photographs the default patches are cut from (all bundled
#: with scikit-image, so no download is needed).
PATCH_PHOTOGRAPHS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle")

_PATCH_KEYS = ("data", "invXForm", "xForm")


@dataclass(frozen=True)
class Patches:
    """RGB image patches in the course layout.

    Attributes
    ----------
    data : ndarray, shape (N, 3, P, P), float64 in [0, 1]
    xForm : ndarray, shape (3*P*P, 3*P*P)
        ZCA whitening matrix: ``xForm @ (x - mean)`` whitens a flattened patch.
    invXForm : ndarray, shape (3*P*P, 3*P*P)
        Inverse of ``xForm``.
    """

    data: np.ndarray
    xForm: np.ndarray
    invXForm: np.ndarray

    def __len__(self) -> int:
        return self.data.shape[0]


def _photographs():
    import warnings

    out = []
    with warnings.catch_warnings():
        # scikit-image loads its data module lazily: pooch, and through it
        # tqdm.auto, are imported at the first photograph call, not at
        # ``import skimage.data``.  In a Jupyter kernel without ipywidgets that
        # import warns on stderr, so the whole loading runs under the filter.
        warnings.filterwarnings("ignore", message="IProgress not found")
        import skimage.data as skd

        for name in PATCH_PHOTOGRAPHS:
            img = skd.stereo_motorcycle()[0] if name == "motorcycle" else getattr(skd, name)()
            out.append(np.asarray(img[..., :3], dtype=np.float64) / 255.0)
    return out


def sample_patches(images, num_patches: int = 10240, patch_size: int = 16, seed: int = 0):
    """Cut ``num_patches`` square patches at seeded random positions.

    The patches are spread as evenly as possible over the images.

    Parameters
    ----------
    images : sequence of ndarray, each (H, W, 3)
    num_patches, patch_size, seed : int

    Returns
    -------
    ndarray, shape (num_patches, 3, patch_size, patch_size), same dtype as the images
    """
    num_patches = positive_int(num_patches, "num_patches")
    patch_size = positive_int(patch_size, "patch_size")
    if len(images) == 0:
        raise ValueError("images must hold at least one image, got an empty sequence")
    for i, img in enumerate(images):
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"images[{i}] must have shape (H, W, 3), got {img.shape}")
        if img.shape[0] < patch_size or img.shape[1] < patch_size:
            raise ValueError(
                f"images[{i}] of shape {img.shape} is smaller than patch_size={patch_size}"
            )
    rng = np.random.default_rng(seed)
    counts = np.full(len(images), num_patches // len(images))
    counts[: num_patches % len(images)] += 1
    out = np.empty((num_patches, 3, patch_size, patch_size), dtype=images[0].dtype)
    k = 0
    for img, n in zip(images, counts):
        rows = rng.integers(0, img.shape[0] - patch_size + 1, size=n)
        cols = rng.integers(0, img.shape[1] - patch_size + 1, size=n)
        for r, c in zip(rows, cols):
            out[k] = img[r:r + patch_size, c:c + patch_size].transpose(2, 0, 1)
            k += 1
    return out


def _zca(data, epsilon=0.1):
    x = data.reshape(data.shape[0], -1)
    x = x - x.mean(axis=0)
    sigma = x.T @ x / x.shape[0]
    s, u = np.linalg.eigh(sigma)
    s = np.clip(s, 0.0, None)
    xform = (u / np.sqrt(s + epsilon)) @ u.T
    inv = (u * np.sqrt(s + epsilon)) @ u.T
    return xform, inv


def _validate_patches(data, xform, inv, where):
    data = np.asarray(data)
    if data.ndim != 4 or data.shape[1] != 3 or data.shape[2] != data.shape[3]:
        raise ValueError(
            f"{where}: 'data' must have shape (N, 3, P, P) (the course layout is (N, 3, 16, 16)), "
            f"got {data.shape}"
        )
    if data.shape[0] == 0:
        raise ValueError(f"{where}: 'data' holds no patches")
    if data.dtype.kind not in "fiu":
        raise TypeError(f"{where}: 'data' must be numeric, got dtype {data.dtype}")
    data = data.astype(np.float64, copy=False)
    if not np.all(np.isfinite(data)):
        raise ValueError(f"{where}: 'data' contains NaN or inf")
    d = int(np.prod(data.shape[1:]))
    mats = []
    for key, m in (("xForm", xform), ("invXForm", inv)):
        m = np.asarray(m, dtype=np.float64)
        if m.shape != (d, d):
            raise ValueError(f"{where}: '{key}' must have shape ({d}, {d}) to match 'data', got {m.shape}")
        mats.append(m)
    return Patches(data, mats[0], mats[1])


def save_patches(path, patches: Patches) -> None:
    """Write ``patches`` to an HDF5 file in the course layout
    (datasets ``data``, ``xForm``, ``invXForm``); the file appears only complete."""
    import h5py

    patches = _validate_patches(patches.data, patches.xForm, patches.invXForm, "patches")
    path = pathlib.Path(path)

    def write(fh):
        with h5py.File(fh, "w") as f:
            for key in _PATCH_KEYS:
                f.create_dataset(key, data=getattr(patches, key))

    _atomic_write(path, write)


def _read_patches(path: pathlib.Path) -> Patches:
    import h5py

    if not path.is_file():
        raise FileNotFoundError(f"patch file not found: {path}")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"{path} is not a readable HDF5 file ({exc})") from exc
    with f:
        missing = [k for k in _PATCH_KEYS if k not in f]
        if missing:
            raise KeyError(
                f"{path} lacks the dataset(s) {missing}; a patch file needs "
                f"{list(_PATCH_KEYS)} ('data' of shape (N, 3, 16, 16))"
            )
        arrays = {k: f[k][()] for k in _PATCH_KEYS}
    return _validate_patches(arrays["data"], arrays["xForm"], arrays["invXForm"], str(path))


def load_patches(path=None, *, num_patches: int = 10240, patch_size: int = 16,
                 seed: int = 0, cache: bool = True) -> Patches:
    """Natural image patches in the course layout.

    Parameters
    ----------
    path : str or path-like, optional
        An HDF5 file with datasets ``data`` (N, 3, P, P), ``xForm`` and
        ``invXForm`` (both (3P^2, 3P^2)).  It is read and validated.
    num_patches, patch_size, seed : int
        Without ``path``: how many patches to cut from scikit-image's bundled
        photographs (:data:`PATCH_PHOTOGRAPHS`), how large, and the seed of
        their positions.  The result is the same on every machine.
    cache : bool
        Without ``path``: keep the patches as HDF5 in :func:`cache_dir` and
        reuse them on the next call.

    Returns
    -------
    Patches
        ``data`` (N, 3, P, P) float64 in [0, 1], ``xForm``, ``invXForm``.
    """
    if path is not None:
        return _read_patches(pathlib.Path(path))
    num_patches = positive_int(num_patches, "num_patches")
    patch_size = positive_int(patch_size, "patch_size")
    seed = nonneg_int(seed, "seed")
    cached = cache_dir() / f"patches-{num_patches}x{patch_size}-seed{seed}.h5" if cache else None
    if cache and cached.is_file():
        try:
            return _read_patches(cached)
        except (OSError, ValueError, KeyError):
            cached.unlink()  # a damaged cache is rebuilt
    data = sample_patches(_photographs(), num_patches, patch_size, seed)
    xform, inv = _zca(data)
    patches = Patches(data, xform, inv)
    if cache:
        save_patches(cached, patches)
    return patches


def to_grayscale(data):
    """Luminosity grayscale of RGB patches: Y = 0.2126 R + 0.7152 G + 0.0722 B.

    Parameters
    ----------
    data : ndarray, shape (N, 3, H, W)

    Returns
    -------
    ndarray, shape (N, H, W)
    """
    data = as_float_array(data, "data", ndim=4)
    if data.shape[1] != 3:
        raise ValueError(
            "data must have 3 colour channels in axis 1 (N, 3, H, W), "
            f"got shape {data.shape}")
    weights = np.array([0.2126, 0.7152, 0.0722], dtype=data.dtype)
    return np.einsum("nchw,c->nhw", data, weights)


def normalize_patches(patches):
    """The course's normalisation of grayscale patches.

    1. flatten each patch to a row and subtract its own mean;
    2. clip to [-3 sigma, 3 sigma], sigma = std of all mean-removed values;
    3. map [-3 sigma, 3 sigma] linearly onto [0.1, 0.9].

    Parameters
    ----------
    patches : ndarray, shape (N, H, W) or (N, D)

    Returns
    -------
    ndarray, shape (N, H*W) or (N, D), values in [0.1, 0.9]
    """
    x = as_float_array(patches, "patches")
    if x.ndim not in (2, 3):
        raise ValueError(
            f"patches must have shape (N, H, W) or (N, D), got {x.shape}")
    if x.shape[0] == 0:
        raise ValueError("patches holds no patches")
    x = x.reshape(x.shape[0], -1)
    x = x - x.mean(axis=1, keepdims=True)
    sigma = 3.0 * x.std()
    if sigma == 0.0:
        raise ValueError("patches are all constant: their standard "
                         "deviation after mean removal is 0")
    x = np.clip(x, -sigma, sigma) / sigma
    return (x + 1.0) * 0.4 + 0.1


def preprocess_patches(data):
    """RGB patches (N, 3, P, P) -> grayscale rows (N, P*P) in [0.1, 0.9]:
    :func:`to_grayscale` followed by :func:`normalize_patches`."""
    return normalize_patches(to_grayscale(data))


# ----------------------------------------------------------------------------
# CIFAR-10
# ----------------------------------------------------------------------------

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "md5:c58f30108f718f92721af3b95e74349a"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
_DOWNLOADER = None  # pooch downloader; replaced in tests


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle names a class or function that a CIFAR-10 batch never holds."""


class _PlainDataUnpickler(pickle.Unpickler):
    """Unpickler for the official CIFAR-10 batches.

    It rebuilds only plain data (dicts, lists, bytes, numbers), NumPy arrays
    and NumPy scalars (a list of ``np.int64`` labels pickles as such); any
    other class or function named in the pickle is refused, so a tampered file
    cannot run code.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 store bytes
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            import importlib

            return getattr(importlib.import_module(module), name)
        raise UnsafePickleError(
            f"refusing to load {module}.{name}: a CIFAR-10 batch holds only plain data"
        )


def _as_integer_array(value, what, where):
    try:
        a = np.asarray(value)
    except Exception as exc:
        raise ValueError(f"{where}: {what} is not an array of numbers ({exc})") from exc
    if a.size == 0 and a.dtype.kind == "f":  # np.asarray([]) is float64
        a = a.astype(np.int64)
    if a.dtype.kind not in "iu":
        raise ValueError(f"{where}: {what} must hold integers, got dtype {a.dtype}")
    return a


def _bad_values(a, lo, hi):
    bad = np.unique(a[(a < lo) | (a > hi)])
    shown = ", ".join(str(v) for v in bad[:5]) + (", ..." if bad.size > 5 else "")
    return f"{bad.size} distinct value(s) outside {lo}..{hi} ({shown})"


def _read_batch(fh, where):
    """Decode one CIFAR-10 batch: uint8 images (n, 32, 32, 3), int64 labels (n,)."""
    try:
        d = _PlainDataUnpickler(fh, encoding="bytes").load()
    except UnsafePickleError:
        raise
    except Exception as exc:
        raise ValueError(f"{where} is not a readable CIFAR-10 batch ({exc})") from exc
    if not isinstance(d, dict) or b"data" not in d or b"labels" not in d:
        raise ValueError(f"{where} is not a CIFAR-10 batch: expected a dict with b'data' and b'labels'")
    x = _as_integer_array(d[b"data"], "b'data' (pixels 0..255)", where)
    y = _as_integer_array(d[b"labels"], "b'labels' (classes 0..9)", where)
    if x.ndim != 2 or x.shape[1] != 3072 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"{where}: expected data of shape (n, 3072) and n labels, got {x.shape} and {y.shape}"
        )
    if x.size and (x.min() < 0 or x.max() > 255):
        raise ValueError(f"{where}: b'data' must hold pixel values 0..255, got {_bad_values(x, 0, 255)}")
    if y.size and (y.min() < 0 or y.max() > 9):
        raise ValueError(f"{where}: b'labels' must hold classes 0..9, got {_bad_values(y, 0, 9)}")
    x = x.astype(np.uint8, copy=False)
    y = y.astype(np.int64, copy=False)
    return x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), y


_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def _read_official_dir(folder: pathlib.Path):
    parts = []
    for b in _BATCHES:
        with open(folder / b, "rb") as fh:
            parts.append(_read_batch(fh, folder / b))
    return _stack_official(parts)


#: Largest archive member read as a batch: an official batch is about 31 MB.
_MAX_BATCH_BYTES = 64 * 2**20


def _read_official_tar(archive: pathlib.Path):
    """Decode the six batches of a ``.tar.gz``, reading the archive once, in order.

    A member named like a batch that declares more than ``_MAX_BATCH_BYTES``
    is refused before any of it is read; a truncated or damaged archive is a
    ValueError that names it.
    """
    damaged = (f"{archive} is truncated or damaged; delete it and download "
               f"{CIFAR10_ARCHIVE} again")
    try:
        tar = tarfile.open(archive, "r:gz")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{archive} is not a readable .tar.gz archive ({exc})") from exc
    found = {}
    with tar:
        try:
            for m in tar:
                b = pathlib.PurePosixPath(m.name).name
                if b not in _BATCHES or not m.isfile():
                    continue
                if b in found:
                    raise ValueError(f"{archive} holds more than one {b} (the second is {m.name})")
                if m.size > _MAX_BATCH_BYTES:
                    raise ValueError(
                        f"{archive}: member {m.name} declares {m.size} bytes; a CIFAR-10 batch "
                        f"is about 31 MB, at most {_MAX_BATCH_BYTES} bytes are read"
                    )
                with tar.extractfile(m) as fh:
                    raw = fh.read(_MAX_BATCH_BYTES + 1)
                if len(raw) != m.size:
                    raise ValueError(f"{damaged} ({m.name}: read {len(raw)} of {m.size} bytes)")
                found[b] = _read_batch(io.BytesIO(raw), f"{archive}:{b}")
                del raw
        except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
            raise ValueError(f"{damaged} ({type(exc).__name__}: {exc})") from exc
    missing = [b for b in _BATCHES if b not in found]
    if missing:
        raise ValueError(f"{archive} lacks the CIFAR-10 batches {missing}")
    return _stack_official([found[b] for b in _BATCHES])


def _stack_official(parts):
    xtr = np.concatenate([p[0] for p in parts[:5]])
    ytr = np.concatenate([p[1] for p in parts[:5]])
    return xtr, ytr, parts[5][0], parts[5][1], CIFAR10_CLASSES


_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".gif", ".tif", ".tiff", ".webp"}


def _list_image_folder(split_dir: pathlib.Path):
    """The images of one split, class by class in CIFAR-10's label order.

    Label k is given to the folder named ``CIFAR10_CLASSES[k]``, whatever else
    the split holds.  Folders whose names start with '.' or '_' (``__MACOSX``,
    ``.ipynb_checkpoints``) and files beside the class folders are ignored, as
    are files whose names start with '.' inside them; any other folder and any
    missing class is an error.

    Returns
    -------
    files : list of str, sorted by name within each class
    labels : int64 (len(files),)
    """
    if not split_dir.is_dir():
        raise FileNotFoundError(f"image folder {split_dir} does not exist")
    found = {p.name for p in split_dir.iterdir()
             if p.is_dir() and not p.name.startswith((".", "_"))}
    expected = ", ".join(CIFAR10_CLASSES)
    if not found:
        raise ValueError(
            f"image folder {split_dir} holds no class folders (expected {split_dir}/<class>/* "
            f"for each of the CIFAR-10 classes {expected})"
        )
    unknown = sorted(found - set(CIFAR10_CLASSES))
    if unknown:
        raise ValueError(
            f"image folder {split_dir} holds folders that are not CIFAR-10 classes: {unknown}; "
            f"expected exactly one folder per class, named {expected}"
        )
    missing = [c for c in CIFAR10_CLASSES if c not in found]
    if missing:
        raise ValueError(
            f"image folder {split_dir} lacks the class folder(s) {missing}; "
            f"expected one folder per CIFAR-10 class, named {expected}"
        )
    files, labels = [], []
    for k, c in enumerate(CIFAR10_CLASSES):
        folder = os.path.join(split_dir, c)
        with os.scandir(folder) as entries:
            names = [e.name for e in entries
                     if os.path.splitext(e.name)[1].lower() in _IMAGE_SUFFIXES
                     and not e.name.startswith(".") and e.is_file()]
        if not names:
            raise ValueError(f"class folder {split_dir / c} holds no images")
        names.sort(key=os.path.normcase)  # the order of sorted paths in this folder
        files += [os.path.join(folder, n) for n in names]
        labels += [k] * len(names)
    return files, np.asarray(labels, dtype=np.int64)


def _decode_images(files):
    from PIL import Image, UnidentifiedImageError

    out = np.empty((len(files), 32, 32, 3), dtype=np.uint8)
    for i, f in enumerate(files):
        try:
            with Image.open(f) as im:
                arr = np.asarray(im.convert("RGB"))
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise ValueError(f"cannot decode image {f} ({exc})") from exc
        if arr.shape != (32, 32, 3):
            raise ValueError(f"image {f} has size {arr.shape[1]}x{arr.shape[0]}, expected 32x32")
        out[i] = arr
    return out


def _read_image_folder(root: pathlib.Path, listing=None):
    f_tr, y_tr, f_te, y_te = _image_folder_listing(root) if listing is None else listing
    # Files are listed class by class; a fixed permutation mixes the classes so
    # that any prefix (for example the validation split) holds all of them.
    p_tr = np.random.default_rng(0).permutation(len(f_tr))
    p_te = np.random.default_rng(1).permutation(len(f_te))
    x_tr = _decode_images([f_tr[i] for i in p_tr])
    x_te = _decode_images([f_te[i] for i in p_te])
    return x_tr, y_tr[p_tr], x_te, y_te[p_te], CIFAR10_CLASSES


def _image_folder_listing(root: pathlib.Path):
    return (*_list_image_folder(root / "train"), *_list_image_folder(root / "test"))


def _source_kind(folder: pathlib.Path):
    """Which CIFAR-10 layout ``folder`` holds: ('official-dir', path),
    ('official-tar', path), ('image-folder', path) or None."""
    if not folder.is_dir():
        return None
    for cand in (folder, folder / "cifar-10-batches-py"):
        if (cand / "data_batch_1").is_file():
            return "official-dir", cand
    if (folder / CIFAR10_ARCHIVE).is_file():
        return "official-tar", folder / CIFAR10_ARCHIVE
    if (folder / "train").is_dir() and (folder / "test").is_dir():
        return "image-folder", folder
    return None


def _batches_digest(folder: pathlib.Path) -> str:
    """SHA-256 of the six batch files' names and contents (about 180 MB, ~0.3 s)."""
    h = hashlib.sha256()
    for b in _BATCHES:
        with open(folder / b, "rb") as fh:
            h.update(f"{b}:{hashlib.file_digest(fh, 'sha256').hexdigest()}\n".encode())
    return h.hexdigest()


def _listing_digest(root: pathlib.Path, listing) -> str:
    """Hash of the image folder's resolved path and of every listed image's
    relative path, size and modification time in nanoseconds."""
    f_tr, _, f_te, _ = listing
    h = hashlib.sha256(f"{root.resolve()}\n".encode())
    start = len(os.path.join(root, ""))
    for f in (*f_tr, *f_te):
        st = os.stat(f)
        h.update(f"{f[start:]}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _check_decoded(x_tr, y_tr, x_te, y_te, classes, where):
    """Check decoded CIFAR-10 arrays (fresh or from the cache) and return them."""
    classes = tuple(str(c) for c in classes)
    if classes != CIFAR10_CLASSES:
        raise ValueError(f"{where}: expected the 10 CIFAR-10 classes {CIFAR10_CLASSES}, got {classes}")
    for split, x, y in (("train", x_tr, y_tr), ("test", x_te, y_te)):
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (32, 32, 3) or x.shape[0] == 0:
            raise ValueError(
                f"{where}: {split} images must be uint8 of shape (N, 32, 32, 3) with N >= 1, "
                f"got {x.dtype} of shape {x.shape}"
            )
        if y.dtype != np.int64 or y.shape != (x.shape[0],):
            raise ValueError(
                f"{where}: {split} labels must be int64 of shape ({x.shape[0]},) to match the "
                f"images, got {y.dtype} of shape {y.shape}"
            )
        if y.min() < 0 or y.max() > 9:
            raise ValueError(f"{where}: {split} labels must lie in 0..9, got {_bad_values(y, 0, 9)}")
    return x_tr, y_tr, x_te, y_te, CIFAR10_CLASSES


def _load_decoded(cached: pathlib.Path):
    """The arrays of a decoded cache file, or None when it is missing; a
    damaged or invalid one is deleted (and so decoded again)."""
    if not cached.is_file():
        return None
    try:
        with np.load(cached, allow_pickle=False) as z:
            arrays = (z["x_train"], z["y_train"], z["x_test"], z["y_test"], z["classes"])
        return _check_decoded(*arrays, where=str(cached))
    except Exception:
        cached.unlink(missing_ok=True)
        return None


def _decode_cached(name: str, decode, where, use_cache: bool):
    cached = cache_dir() / f"cifar10-decoded-{name}.npz" if use_cache else None
    if cached is not None:
        arrays = _load_decoded(cached)
        if arrays is not None:
            return arrays
    arrays = _check_decoded(*decode(), where=str(where))
    if cached is not None:
        x_tr, y_tr, x_te, y_te, classes = arrays
        _atomic_write(cached, lambda fh: np.savez(
            fh, x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te, classes=np.array(classes)))
    return arrays


def _verify_archive(archive: pathlib.Path) -> None:
    expected = CIFAR10_MD5.split(":", 1)[-1].lower()
    with open(archive, "rb") as fh:
        actual = hashlib.file_digest(fh, "md5").hexdigest()
    if actual != expected:
        raise ValueError(
            f"{archive} is not the official {CIFAR10_ARCHIVE}: its MD5 is {actual}, expected "
            f"{expected}. It is damaged or incomplete: delete it and download {CIFAR10_URL} "
            "again (a re-packed archive can be extracted instead: its cifar-10-batches-py/ "
            "folder is read as it is)"
        )


def _decode_archive(archive: pathlib.Path, use_cache: bool):
    """Decode the official archive after checking its MD5.

    Only an archive with the official MD5 is ever decoded, so the decoded cache
    is named by that MD5.  That this file (its path, size, modification and
    status-change times, inode) was verified is remembered by a marker in the
    cache, so the MD5 of the 170 MB is computed once, not on every call.  On
    POSIX systems any change of the file, even a same-size edit with its mtime
    set back, changes its status-change time and so gets it verified again.
    """
    expected = CIFAR10_MD5.split(":", 1)[-1].lower()
    name = f"archive-md5-{expected}"
    marker = None
    if use_cache:
        st = archive.stat()
        key = (f"{archive.resolve()}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:"
               f"{st.st_ino}:{expected}")
        marker = cache_dir() / f"cifar10-verified-{hashlib.sha256(key.encode()).hexdigest()[:20]}"
        if marker.is_file():
            arrays = _load_decoded(cache_dir() / f"cifar10-decoded-{name}.npz")
            if arrays is not None:
                return arrays
    _verify_archive(archive)
    arrays = _decode_cached(name, lambda: _read_official_tar(archive), archive, use_cache)
    if marker is not None:
        marker.touch()
    return arrays


def _decode_source(kind, path, use_cache=True):
    """Decoded arrays of a source found by :func:`_source_kind`, through the cache.

    The decoded cache is named by a fingerprint of the source: for official
    batches the SHA-256 of their contents (any edit is seen); for the official
    archive its verified MD5 (see :func:`_decode_archive`); for an image folder
    the path, size and modification time (ns) of every image, which sees any
    edit that changes an image's mtime (hashing the 60,000 images' contents on
    every load would take three times as long as listing them).
    """
    if kind == "official-tar":
        return _decode_archive(path, use_cache)
    if kind == "official-dir":
        missing = [b for b in _BATCHES if not (path / b).is_file()]
        if missing:
            raise ValueError(f"{path} lacks the CIFAR-10 batches {missing}")
        name = "batches-" + (_batches_digest(path)[:20] if use_cache else "")
        return _decode_cached(name, lambda: _read_official_dir(path), path, use_cache)
    listing = _image_folder_listing(path)
    name = "images-" + (_listing_digest(path, listing)[:20] if use_cache else "")
    return _decode_cached(name, lambda: _read_image_folder(path, listing), path, use_cache)


def _download_official(folder: pathlib.Path) -> pathlib.Path:
    import pooch

    path = pooch.retrieve(CIFAR10_URL, known_hash=CIFAR10_MD5, fname=CIFAR10_ARCHIVE,
                          path=folder, downloader=_DOWNLOADER, progressbar=False)
    return pathlib.Path(path)


def load_cifar10_raw(root=None, *, download: bool = True, cache: bool = True):
    """CIFAR-10 as uint8 arrays, from the first source that holds it.

    Sources, in order: ``root`` (a CIFAR-10 folder or a folder holding
    ``cifar10/``); ``$LAB_DATA/cifar10``; ``cache_dir()/cifar10``; a download of
    the official ``cifar-10-python.tar.gz`` into the cache, verified by its MD5.

    A folder may hold the official python batches (``data_batch_1`` ..
    ``data_batch_5``, ``test_batch``, possibly inside ``cifar-10-batches-py/``),
    the archive ``cifar-10-python.tar.gz``, or an image-folder tree
    ``train/<class>/*``, ``test/<class>/*`` with one folder per name in
    :data:`CIFAR10_CLASSES` (label k is ``CIFAR10_CLASSES[k]``; folders whose
    names start with '.' or '_', such as ``__MACOSX``, are ignored, any other
    unknown folder or a missing class is an error).

    A file named ``cifar-10-python.tar.gz`` is taken for the official archive
    wherever it lies, and is read only when its MD5 is the official one
    (checked once per file; see below).  A re-packed archive can be extracted
    instead: batches are read as they are.  Every batch is checked: pixels
    must be integers 0..255 and labels integers 0..9.

    Decoded arrays are cached in :func:`cache_dir` (with ``cache``) under a
    fingerprint of the source: the SHA-256 of the batch files' contents, the
    archive's verified MD5, or, for an image folder, the path, size and
    modification time of every image (hashing 60,000 images' contents would
    cost more than the listing on every load).  A cache file that does not
    hold valid arrays is decoded again.

    Returns
    -------
    x_train : uint8 (50000, 32, 32, 3)
    y_train : int64 (50000,)
    x_test : uint8 (10000, 32, 32, 3)
    y_test : int64 (10000,)
    classes : tuple of str
    """
    tried = []
    candidates = []
    if root is not None:
        root = pathlib.Path(root).expanduser()
        candidates.append(("root argument", root / "cifar10" if (root / "cifar10").is_dir() else root))
    if os.environ.get("LAB_DATA"):
        candidates.append(("$LAB_DATA", pathlib.Path(os.environ["LAB_DATA"]).expanduser() / "cifar10"))
    candidates.append(("user cache", None))  # cache_dir() only once it is needed
    for label, folder in candidates:
        if folder is None:
            folder = user = cache_dir() / "cifar10"
        found = _source_kind(folder)
        if found is not None:
            return _decode_source(*found, use_cache=cache)
        tried.append(f"  - {label}: {folder} ({'no CIFAR-10 layout inside' if folder.is_dir() else 'does not exist'})")
        if label == "root argument":
            raise FileNotFoundError(
                f"CIFAR-10 not found in the given root {folder}: expected the official python batches "
                "(data_batch_1..5, test_batch, possibly inside cifar-10-batches-py/), "
                f"{CIFAR10_ARCHIVE}, or an image-folder tree train/<class>/*, test/<class>/*"
            )
    if download:
        try:
            archive = _download_official(user)
        except ValueError as exc:  # pooch: hash mismatch
            raise ValueError(
                f"the downloaded {CIFAR10_ARCHIVE} failed its checksum ({exc}); it was discarded. "
                "Try again, or download it yourself and place it in " + str(user)
            ) from exc
        except Exception as exc:
            tried.append(f"  - download of {CIFAR10_URL}: failed ({type(exc).__name__}: {exc})")
        else:
            return _decode_source("official-tar", archive, use_cache=cache)
    else:
        tried.append("  - download: not attempted (download=False)")
    raise FileNotFoundError(
        "CIFAR-10 was not found. Looked in:\n" + "\n".join(tried) + "\n"
        f"To get it: download {CIFAR10_URL} and place the archive (or its extracted "
        f"cifar-10-batches-py/ folder) in {user}, or set LAB_DATA to a folder that holds "
        "cifar10/ (official batches or an image-folder tree train/<class>/*, test/<class>/*)."
    )


def load_cifar10(root=None, *, num_training: int = 49000, num_validation: int = 1000,
                 num_test: int = 10000, layout: str = "NCHW", dtype=np.float32,
                 normalize: bool = True, download: bool = True, cache: bool = True):
    """CIFAR-10 split into training, validation and test sets.

    The validation images are the ``num_validation`` training images that follow
    the first ``num_training``; the test images are the first ``num_test`` of the
    official test set.  With ``normalize`` each channel is shifted and scaled by
    the mean and standard deviation of the training split (pixels in [0, 1]).

    Parameters
    ----------
    root : path-like, optional
        See :func:`load_cifar10_raw` for where the data are looked for.
    num_training, num_validation, num_test : int
        Split sizes; ``num_training + num_validation <= 50000``, ``num_test <= 10000``.
    layout : {"NCHW", "NHWC"}
        NCHW for lab's NumPy layers and PyTorch, NHWC for Keras.
    dtype : floating dtype
        Anything ``np.dtype`` accepts (``np.float32``, ``"float32"``); checked
        before any data are read.
    normalize : bool
        Per-channel standardisation with training-split statistics; a channel
        whose standard deviation is 0 on the training split is a ValueError.

    Returns
    -------
    dict
        ``X_train`` (num_training, 3, 32, 32) (or NHWC), ``y_train`` (num_training,) int64,
        ``X_val``, ``y_val``, ``X_test``, ``y_test``, ``mean`` and ``std`` (3,) of the training
        split in [0, 1] units, ``class_names``.
    """
    num_training = positive_int(num_training, "num_training")
    num_validation = nonneg_int(num_validation, "num_validation")
    num_test = nonneg_int(num_test, "num_test")
    if layout not in ("NCHW", "NHWC"):
        raise ValueError(f"layout must be 'NCHW' or 'NHWC', got {layout!r}")
    try:
        dt = np.dtype(dtype)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"dtype must be a floating-point type such as np.float32 or 'float32', got {dtype!r} ({exc})"
        ) from exc
    if dt.kind != "f":
        raise TypeError(
            f"dtype must be a floating-point type such as np.float32 or 'float32', got {dtype!r} ({dt})"
        )
    dtype = dt
    x_tr, y_tr, x_te, y_te, classes = load_cifar10_raw(root, download=download, cache=cache)
    if num_training + num_validation > x_tr.shape[0]:
        raise ValueError(
            f"num_training + num_validation = {num_training + num_validation} exceeds the "
            f"{x_tr.shape[0]} training images"
        )
    if num_test > x_te.shape[0]:
        raise ValueError(f"num_test = {num_test} exceeds the {x_te.shape[0]} test images")
    splits = {
        "train": (x_tr[:num_training], y_tr[:num_training]),
        "val": (x_tr[num_training:num_training + num_validation],
                y_tr[num_training:num_training + num_validation]),
        "test": (x_te[:num_test], y_te[:num_test]),
    }
    train = splits["train"][0].astype(np.float64) / 255.0
    mean = train.mean(axis=(0, 1, 2))
    std = train.std(axis=(0, 1, 2))
    del train
    if normalize and np.any(std == 0):
        flat = [f"{c} ({name})" for c, name in enumerate(("red", "green", "blue")) if std[c] == 0]
        raise ValueError(
            f"the training split ({num_training} images) has zero standard deviation in "
            f"channel{'s' if len(flat) > 1 else ''} {', '.join(flat)}: "
            "every pixel there has the same value, so it cannot be normalised; "
            "pass normalize=False to get the pixels in [0, 1] unnormalised"
        )
    out = {"class_names": tuple(classes), "mean": mean, "std": std}
    for key, (x, y) in splits.items():
        x = x.astype(dtype) / dtype.type(255.0)
        if normalize:
            x -= mean.astype(dtype)
            x /= std.astype(dtype)
        if layout == "NCHW":
            x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        out[f"X_{key}"] = x
        out[f"y_{key}"] = y.astype(np.int64)
    return out


# ----------------------------------------------------------------------------
# Minibatches
# ----------------------------------------------------------------------------


def iterate_minibatches(X, y=None, batch_size: int = 64, *, shuffle: bool = False,
                        seed=0, drop_last: bool = False):
    """Yield minibatches ``(X[idx], y[idx])`` (or ``X[idx]`` when ``y`` is None).

    Parameters
    ----------
    X : ndarray, shape (N, ...)
    y : ndarray, shape (N, ...), optional
    batch_size : int
    shuffle : bool
        Visit the samples in an order drawn from ``np.random.default_rng(seed)``.
    seed : int, numpy Generator or None, default 0
        The order of a shuffled pass.  An int gives the same order on every
        call (seed=0 by default, so a run is reproducible); to get a new order
        for every epoch and still a reproducible run, pass one
        ``np.random.Generator`` to every call (it advances), or the epoch
        number as the seed.  ``seed=None`` asks for fresh randomness.
        ``np.random.seed`` has no effect either way.
    drop_last : bool
        Skip a final batch smaller than ``batch_size``.
    """
    if not (seed is None or isinstance(seed, np.random.Generator)
            or (isinstance(seed, numbers.Integral) and not isinstance(seed, bool) and seed >= 0)):
        raise TypeError(f"seed must be a non-negative int, a numpy Generator or None, got {seed!r}")
    X = np.asarray(X)
    batch_size = positive_int(batch_size, "batch_size")
    if X.ndim == 0:
        raise ValueError("X must have a first (sample) axis, got a scalar")
    n = X.shape[0]
    if y is not None:
        y = np.asarray(y)
        if y.ndim == 0 or y.shape[0] != n:
            raise ValueError(f"X and y must have the same number of samples, got {n} and "
                             f"{y.shape[0] if y.ndim else 'a scalar'}")
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        idx = order[start:start + batch_size]
        yield (X[idx], y[idx]) if y is not None else X[idx]


def minibatch_indices(n: int, batch_size: int, seed=0, *, replace: bool = False):
    """An endless stream of index minibatches, epoch after epoch, for loops
    that count iterations rather than epochs.

    Each epoch is one shuffled pass of :func:`iterate_minibatches` over
    ``range(n)`` with ``drop_last=True``, all epochs drawn from one
    ``np.random.default_rng(seed)``: epoch k visits the samples in the order of
    that Generator's k-th ``permutation(n)``.

    Parameters
    ----------
    n : int
        Number of samples.
    batch_size : int, 1 <= batch_size <= n (any size with ``replace``)
    seed : int, numpy Generator or None, default 0
        As in :func:`iterate_minibatches`: 0 by default (the same stream on every
        call); None for fresh randomness.  A Generator is drawn from lazily, one
        batch at a time, so other draws from it in between keep their order.
    replace : bool, default False
        Draw every batch independently, with replacement
        (``rng.choice(n, batch_size)``), as CS231n's Solver does, instead of
        epochs of shuffled passes.

    Yields
    ------
    ndarray of int64, shape (batch_size,)
    """
    n = positive_int(n, "n")
    batch_size = positive_int(batch_size, "batch_size")
    if batch_size > n and not replace:
        raise ValueError(f"batch_size must be at most n={n}, got {batch_size}")
    rng = seed if isinstance(seed, np.random.Generator) else None
    if rng is None:
        next(iterate_minibatches(np.zeros(1), batch_size=1, seed=seed))  # validates seed
        rng = np.random.default_rng(seed)
    if replace:
        while True:
            yield rng.choice(n, batch_size)
    idx = np.arange(n)
    while True:
        yield from iterate_minibatches(idx, batch_size=batch_size, shuffle=True, seed=rng,
                                       drop_last=True)
