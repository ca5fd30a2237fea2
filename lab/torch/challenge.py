"""The CIFAR-10 challenge: 94% test accuracy within 10 epochs (PyTorch 2).

A fast CIFAR-10 recipe in the line of Page (2018) and Jordan (2024), written
for this book: a small VGG-like network whose first layer is a fixed
*patch-whitening* convolution, trained for ten epochs with Nesterov SGD,
label smoothing, a triangular learning-rate schedule, an exponential moving
average of the weights pulled back into the network every few steps
("lookahead"), random translations and alternating flips, and scored with
six-view test-time augmentation (TTA).

Pieces, in the order the chapter explains them:

* :class:`Net` -- whitening conv (2x2, 24 channels, frozen) -> GELU -> three
  conv groups (conv3x3 - maxpool - BN - GELU - conv3x3 - BN - GELU) of widths
  64/256/256 -> max pool -> linear head, logits scaled by 1/9;
* :func:`whitening_filters` -- the first layer's weights, from the
  eigenvectors of the covariance of 2x2 training patches;
* :func:`augment` -- random 2-pixel translation (reflect padding) and
  alternating flips, on batched in-memory tensors;
* :func:`learning_rate` -- the schedule; :func:`make_optimizer` its groups;
* :func:`train` -- the loop (checkpoint every epoch, bit-identical resume,
  JSON history, DistributedDataParallel under ``torchrun``);
* :func:`evaluate` / :func:`predict` -- accuracy with or without TTA;
* :func:`load` -- a trained model in eval mode from a saved file.

Images are NCHW float32, normalised per channel as
:func:`lab.data.load_cifar10` normalises them.  The command line is
``python -m lab.challenge`` (see :mod:`lab.challenge`).
"""
from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
import pathlib
import platform
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from lab.progress import progress

__all__ = ["DEFAULTS", "Net", "whitening_filters", "augment", "flip_bits",
           "learning_rate", "lookahead_decay", "make_optimizer", "predict",
           "view_logits", "VIEWS", "VIEW_WEIGHTS",
           "evaluate", "train", "load", "save_model", "load_data",
           "CheckpointError"]

#: The recipe.  ``lr`` and ``weight_decay`` are given per 1,024 images with
#: momentum's gain divided out (see :func:`make_optimizer`), so that a change
#: of batch size keeps the step per image.
DEFAULTS = {
    "epochs": 10,
    "batch_size": 512,
    "lr": 11.5,
    "momentum": 0.85,
    "weight_decay": 0.0153,
    "bias_lr_scale": 64.0,
    "label_smoothing": 0.2,
    "warmup": 0.2,            # fraction of the steps to the peak
    "lr_start": 0.2,          # schedule value at step 0 (peak 1, end 0)
    "whiten_bias_epochs": 3,  # the whitening bias trains this long
    "whiten_eps": 5e-4,
    "whiten_images": 5000,
    "widths": [64, 256, 256],
    "bn_momentum": 0.4,       # PyTorch's convention: new = 0.6 old + 0.4 batch
    "logit_scale": 1 / 9,
    "translate": 2,
    "flip": True,
    "lookahead_every": 5,
    "lookahead_base": 0.95 ** 5,
    "whiten": True,           # False: an ordinary trainable first conv (ablation)
    "tta": True,
    "num_training": 49000,
    "num_validation": 1000,
    "seed": 0,
}

CHECKPOINT_KIND = "lab.challenge/checkpoint-1"
MODEL_KIND = "lab.challenge/model-1"


class CheckpointError(ValueError):
    """A checkpoint or model file that cannot be used (corrupt, foreign, or
    made with another configuration)."""


# ----------------------------------------------------------------- the network

class BatchNorm(nn.BatchNorm2d):
    """Batch norm with the scale frozen at 1 (only the shift learns) and a
    tiny epsilon."""

    def __init__(self, num_features, momentum=0.4, eps=1e-12):
        super().__init__(num_features, eps=eps, momentum=momentum)
        self.weight.requires_grad_(False)


class ConvGroup(nn.Module):
    """conv3x3 - maxpool2 - BN - GELU - conv3x3 - BN - GELU."""

    def __init__(self, c_in, c_out, bn_momentum):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2)
        self.norm1 = BatchNorm(c_out, bn_momentum)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.norm2 = BatchNorm(c_out, bn_momentum)
        for conv in (self.conv1, self.conv2):
            # identity ("dirac") on the first c_in filters: the group starts
            # by passing its input through, the rest keep PyTorch's default
            w = conv.weight.data
            nn.init.dirac_(w[:w.size(1)])

    def forward(self, x):
        x = F.gelu(self.norm1(self.pool(self.conv1(x))))
        return F.gelu(self.norm2(self.conv2(x)))


class Net(nn.Module):
    """The challenge network: NCHW float32 (N, 3, 32, 32) in, logits (N, 10)
    out.

    Spatial sizes: 32 -> 31 (whitening, 2x2 valid) -> 15 -> 7 -> 3 (the
    groups' pools) -> 1 (max pool 3).  With widths 64/256/256 it has
    1,971,352 trainable weights (the whitening filters are fixed).
    """

    def __init__(self, widths=(64, 256, 256), bn_momentum=0.4,
                 logit_scale=1 / 9, num_classes=10, whiten=True):
        super().__init__()
        widths = [int(w) for w in widths]
        if len(widths) != 3 or min(widths) < 1:
            raise ValueError("widths must be three positive channel "
                             f"counts, got {widths}")
        self.whiten = nn.Conv2d(3, 24, 2, padding=0, bias=True)
        if whiten:   # filled by whitening_filters, then fixed
            self.whiten.weight.requires_grad_(False)
        nn.init.zeros_(self.whiten.bias)
        self.group1 = ConvGroup(24, widths[0], bn_momentum)
        self.group2 = ConvGroup(widths[0], widths[1], bn_momentum)
        self.group3 = ConvGroup(widths[1], widths[2], bn_momentum)
        self.head = nn.Linear(widths[2], num_classes, bias=False)
        self.logit_scale = float(logit_scale)

    def forward(self, x):
        x = F.gelu(self.whiten(x))
        x = self.group3(self.group2(self.group1(x)))
        x = F.max_pool2d(x, 3).flatten(1)
        return self.head(x) * self.logit_scale


def whitening_filters(images, eps=5e-4):
    """The 24 filters of the whitening layer, (24, 3, 2, 2).

    The 2x2x3 patches of ``images`` (N, 3, H, W) are 12-vectors; with their
    covariance ``C = V diag(lam) V^T`` the filters are the rows of
    ``diag(lam + eps)^(-1/2) V^T`` (each patch's coordinates along the
    principal directions, scaled to unit variance), followed by their
    negatives, so that the GELU after the layer sees both signs.
    """
    x = torch.as_tensor(images, dtype=torch.float32)
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError("whitening needs NCHW images (N, 3, H, W), "
                         f"got shape {tuple(x.shape)}")
    # every 2x2 patch as a row: (N * 31 * 31, 12) for 32x32 images
    patches = F.unfold(x.double(), 2).transpose(1, 2).reshape(-1, 12)
    patches = patches - patches.mean(0)
    cov = patches.T @ patches / patches.shape[0]
    lam, vec = torch.linalg.eigh(cov)                       # ascending
    lam, vec = lam.flip(0), vec.flip(1)                     # largest first
    w = (vec.T / torch.sqrt(lam + eps)[:, None]).reshape(12, 3, 2, 2)
    return torch.cat([w, -w]).float()


# --------------------------------------------------------------- augmentation

def flip_bits(n, seed, rank=0):
    """One random bit per training image (bool tensor of length ``n``): the
    image is flipped in even epochs when its bit is set, and in odd epochs
    when it is not ("alternating flips")."""
    g = torch.Generator().manual_seed(_mix(seed, "flip", rank))
    return torch.rand(n, generator=g) < 0.5


def augment(x, flip, translate, generator):
    """Flip the images where ``flip`` (bool (N,)) is set, then shift each by
    up to ``translate`` pixels in each direction (reflect padding), the
    shift drawn from ``generator``.  Returns a new tensor."""
    if flip is not None:
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    if translate:
        t = int(translate)
        n = x.shape[0]
        size = x.shape[-1]
        padded = F.pad(x, (t, t, t, t), mode="reflect")
        dy = torch.randint(0, 2 * t + 1, (n,), generator=generator)
        dx = torch.randint(0, 2 * t + 1, (n,), generator=generator)
        out = torch.empty_like(x)
        for i in range(2 * t + 1):
            for j in range(2 * t + 1):
                sel = ((dy == i) & (dx == j)).nonzero().flatten()
                if len(sel):
                    out[sel] = padded[sel, :, i:i + size, j:j + size]
        x = out
    return x


# ----------------------------------------------------------------- schedules

def learning_rate(step, total_steps, warmup=0.2, start=0.2):
    """Triangular schedule, as a multiple of the peak: ``start`` at step 0,
    1 after ``warmup`` of the steps, then linearly to 0 at
    ``total_steps``."""
    peak = max(1, int(warmup * total_steps))
    if step <= peak:
        return start + (1 - start) * step / peak
    return max(0.0, (total_steps - step) / max(1, total_steps - peak))


def lookahead_decay(step, total_steps, base=0.95 ** 5):
    """Weight of the moving average at a lookahead update: ``base (t/T)^3``,
    near 0 early (the average follows the network) and ``base`` at the end."""
    return base * (step / total_steps) ** 3


def make_optimizer(model, cfg, global_batch, world_size=1):
    """Nesterov SGD on the *summed* loss, with three parameter groups:
    weights, the whitening bias, and the BN shifts (``bias_lr_scale`` times
    the learning rate).

    Per step, on a loss summed over the batch, the weights move by
    ``lr / K`` times the gradient, ``K = 1024 (1 + 1/(1 - momentum))``: the
    1,024 makes ``lr`` a rate per 1,024 images, the rest divides out the
    gain of momentum.  Weight decay shrinks every parameter by
    ``weight_decay * B / K`` per step (B the global batch) whatever its
    group's learning rate (decoupled from it), scaled by the schedule like
    the learning rate.
    DistributedDataParallel averages the ranks' gradients, so the learning
    rate is multiplied by ``world_size`` to step on the global sum.
    """
    k = 1024 * (1 + 1 / (1 - cfg["momentum"]))
    lr = cfg["lr"] / k * world_size
    decay = cfg["weight_decay"] * global_batch / k
    inner = model.module if hasattr(model, "module") else model
    norm = [p for n, p in inner.named_parameters()
            if ".norm" in n and p.requires_grad]
    whiten = [inner.whiten.bias]
    rest = [p for n, p in inner.named_parameters()
            if p.requires_grad and ".norm" not in n and n != "whiten.bias"]
    groups = [
        dict(params=rest, lr=lr, weight_decay=decay / lr, name="weights"),
        dict(params=whiten, lr=lr, weight_decay=decay / lr,
             name="whiten_bias"),
        dict(params=norm, lr=lr * cfg["bias_lr_scale"],
             weight_decay=decay / (lr * cfg["bias_lr_scale"]),
             name="bn_bias"),
    ]
    for g in groups:
        g["initial_lr"] = g["lr"]
    return torch.optim.SGD(groups, lr=lr, momentum=cfg["momentum"],
                           nesterov=True)


# ---------------------------------------------------------------- evaluation

VIEWS = ("image", "mirror", "up-left", "up-left mirror", "down-right",
         "down-right mirror")
#: weights of the six views in the TTA average
VIEW_WEIGHTS = (0.25, 0.25, 0.125, 0.125, 0.125, 0.125)


def _views(model, x, tta):
    tta = 2 if tta is True else int(tta)   # True is the full six views
    if tta == 0:
        return model(x)
    if tta == 1:
        return 0.5 * (model(x) + model(x.flip(-1)))
    return sum(w * v for w, v in zip(VIEW_WEIGHTS, _six(model, x)))


def _six(model, x):
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    size = x.shape[-1]
    out = []
    for v in (x, padded[..., :size, :size], padded[..., 2:, 2:]):
        v = v.contiguous(memory_format=torch.channels_last)
        out += [model(v), model(v.flip(-1))]
    return out


def _batched(model, X, batch_size, fn):
    x_all = _as_images(X)
    dev = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    try:
        with torch.no_grad():
            for i in range(0, len(x_all), batch_size):
                xb = x_all[i:i + batch_size].to(dev).contiguous(memory_format=torch.channels_last)
                out.append(fn(xb))
    finally:
        model.train(was_training)
    return out


def predict(model, X, tta=True, batch_size=1000):
    """Logits for ``X`` (N, 3, 32, 32), in eval mode under ``torch.no_grad``.

    ``tta``: 0 or False, the image alone; 1, the image and its mirror image;
    2 or True, six views: the image and the image shifted one pixel up-left
    and down-right (reflect padding), each with its mirror image, averaged
    with :data:`VIEW_WEIGHTS` (half the weight on the unshifted pair).
    """
    out = _batched(model, X, batch_size, lambda xb: _views(model, xb, tta).float().cpu())
    return torch.cat(out) if out else torch.empty(0, 10)


def view_logits(model, X, batch_size=1000):
    """The logits of each of the six TTA views, (6, N, 10), in the order of
    :data:`VIEWS`; ``predict(tta=2)`` is their average with
    :data:`VIEW_WEIGHTS`."""
    out = _batched(model, X, batch_size,
                   lambda xb: torch.stack([v.float().cpu() for v in _six(model, xb)]))
    return torch.cat(out, 1) if out else torch.empty(6, 0, 10)


def evaluate(model, X, y, tta=True, batch_size=1000):
    """Accuracy of ``model`` on ``X``, ``y`` (a float in [0, 1])."""
    y = torch.as_tensor(np.asarray(y), dtype=torch.int64)
    logits = predict(model, X, tta=tta, batch_size=batch_size)
    if len(y) != len(logits):
        raise ValueError(f"X holds {len(logits)} images but y {len(y)} labels")
    return float((logits.argmax(1) == y).float().mean())


def _as_images(X):
    if isinstance(X, np.ndarray):
        if X.dtype != np.float32:
            raise TypeError(f"images must be float32 (normalised as lab.data.load_cifar10 "
                            f"does), got {X.dtype}")
        X = torch.from_numpy(X)
    if not isinstance(X, torch.Tensor):
        raise TypeError(f"images must be a float32 array or tensor, got {type(X).__name__}")
    if X.dtype != torch.float32:
        raise TypeError(f"images must be float32, got {X.dtype}")
    if X.ndim != 4 or tuple(X.shape[1:]) != (3, 32, 32):
        hint = " (that looks like NHWC; transpose to NCHW)" if X.ndim == 4 and X.shape[-1] == 3 else ""
        raise ValueError(f"images must be NCHW (N, 3, 32, 32), got {tuple(X.shape)}{hint}")
    return X


# ------------------------------------------------------------------ the data

def load_data(cfg, root=None):
    """``lab.data.load_cifar10`` split per ``cfg`` (NCHW float32,
    normalised), as tensors: a dict with X_train, y_train, X_val, y_val,
    X_test, y_test, mean, std."""
    from lab.data import load_cifar10

    d = load_cifar10(root, num_training=cfg["num_training"],
                     num_validation=cfg["num_validation"])
    out = {k: torch.from_numpy(v) for k, v in d.items() if k.startswith(("X_", "y_"))}
    out["mean"], out["std"] = d["mean"].tolist(), d["std"].tolist()
    return out


# ----------------------------------------------------------------- the loop

def _mix(seed, *parts):
    """A 63-bit seed from ``seed`` and labels (epoch, rank, purpose)."""
    h = hashlib.sha256(repr((int(seed),) + parts).encode()).digest()
    return int.from_bytes(h[:8], "little") & (2 ** 63 - 1)


def _check_config(cfg):
    unknown = sorted(set(cfg) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown challenge option(s) {unknown}; known: {sorted(DEFAULTS)}")
    c = dict(DEFAULTS, **cfg)
    for key in ("epochs", "batch_size", "num_training"):
        if not isinstance(c[key], (int, np.integer)) or isinstance(c[key], bool) or c[key] < 1:
            raise ValueError(f"{key} must be an integer >= 1, got {c[key]!r}")
    if not isinstance(c["seed"], (int, np.integer)) or c["seed"] < 0:
        raise ValueError(f"seed must be an integer >= 0, got {c['seed']!r}")
    for key in ("lr", "weight_decay", "bias_lr_scale", "whiten_eps"):
        if not (isinstance(c[key], (int, float)) and math.isfinite(c[key]) and c[key] > 0):
            raise ValueError(f"{key} must be a finite number > 0, got {c[key]!r}")
    if not 0 <= c["momentum"] < 1:
        raise ValueError(f"momentum must lie in [0, 1), got {c['momentum']!r}")
    if not 0 <= c["label_smoothing"] < 1:
        raise ValueError(f"label_smoothing must lie in [0, 1), got {c['label_smoothing']!r}")
    if not isinstance(c["lookahead_every"], (int, np.integer)) or c["lookahead_every"] < 0:
        raise ValueError(f"lookahead_every must be an integer >= 0 (0: off), "
                         f"got {c['lookahead_every']!r}")
    if c["tta"] not in (0, 1, 2):
        raise ValueError(f"tta must be 0/False (none), 1 (mirror) or 2/True (six views), "
                         f"got {c['tta']!r}")
    c["widths"] = [int(w) for w in c["widths"]]
    c["epochs"], c["batch_size"], c["seed"] = int(c["epochs"]), int(c["batch_size"]), int(c["seed"])
    return c


def _dist():
    """(rank, world_size); a process group is started when ``torchrun``
    set WORLD_SIZE > 1 and none exists."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _atomic_save(obj, path):
    path = pathlib.Path(path)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    if isinstance(obj, (dict, list)) and path.suffix == ".json":
        tmp.write_text(json.dumps(obj, indent=1) + "\n")
    else:
        torch.save(obj, tmp)
    os.replace(tmp, path)


def _environment(threads, world):
    return {
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "processor": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "world_size": world,
        "device": (torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"),
    }


def _cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _param_digest(model):
    h = hashlib.sha256()
    for p in model.parameters():
        h.update(p.detach().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def train(cfg=None, *, out=None, resume=False, data=None, threads=None,
          progress_bar=None, max_steps=None, log=print, command=None):
    """Train the challenge network; returns ``(model, history)``.

    Parameters
    ----------
    cfg : dict, optional
        Overrides of :data:`DEFAULTS` (unknown keys are an error).
    out : path, optional
        Folder for ``checkpoint.pt`` (after every epoch), ``history.json``
        and ``model.pt`` (the final weights); created if missing.  Only rank
        0 writes.
    resume : bool
        Continue from ``out/checkpoint.pt``: the run goes on as if it had
        not stopped (bit-identical on the same machine and thread count).
    data : dict, optional
        Tensors as :func:`load_data` returns them (default: loaded).
    threads : int, optional
        ``torch.set_num_threads``.
    max_steps : int, optional
        Stop after this many steps (for tests); the schedule still spans
        ``epochs``.
    progress_bar : bool or None
        A bar per epoch (None: at a terminal or with ``LAB_PROGRESS=1``).
    log : callable
        Receives one line per epoch (default ``print``).
    command : str, optional
        The command line, recorded in the history.
    """
    cfg = _check_config(cfg or {})
    rank, world = _dist()
    if threads is not None:
        torch.set_num_threads(int(threads))
    threads = torch.get_num_threads()
    dev = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
                       if torch.cuda.is_available() else "cpu")
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    out = pathlib.Path(out) if out is not None else None
    if out is not None and rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    if resume and out is None:
        raise ValueError("resume needs the output folder that holds checkpoint.pt")

    if data is None:
        # rank 0 decodes (and caches) the data first; the others then read
        # its cache, so that rank 0 alone writes files
        if world > 1 and rank != 0:
            torch.distributed.barrier()
        data = load_data(cfg)
        if world > 1 and rank == 0:
            torch.distributed.barrier()
    X, y = data["X_train"], data["y_train"]
    n = len(X)
    if cfg["batch_size"] % world:
        raise ValueError(f"the global batch size {cfg['batch_size']} must be divisible by "
                         f"the number of processes ({world})")
    local_batch = cfg["batch_size"] // world
    per_rank = math.ceil(n / world)
    steps_per_epoch = math.ceil(per_rank / local_batch)
    total_steps = cfg["epochs"] * steps_per_epoch

    torch.manual_seed(cfg["seed"])
    model = Net(cfg["widths"], cfg["bn_momentum"], cfg["logit_scale"], whiten=cfg["whiten"])
    if cfg["whiten"]:
        with torch.no_grad():
            model.whiten.weight.copy_(whitening_filters(X[:cfg["whiten_images"]],
                                                        cfg["whiten_eps"]))
    model = model.to(dev).to(memory_format=torch.channels_last)
    net = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[dev.index] if dev.type == "cuda" else None)
    optimizer = make_optimizer(model, cfg, cfg["batch_size"], world)
    ema = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    history = {
        "config": cfg, "environment": _environment(threads, world),
        "command": command,
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "steps_per_epoch": steps_per_epoch, "total_steps": total_steps,
        "n_train": n, "epochs": [], "loss_steps": [], "loss": [],
    }
    start_epoch, step = 0, 0
    if resume:
        ck = _read_checkpoint(out / "checkpoint.pt", cfg, world)
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        ema = {k: v.to(dev) for k, v in ck["ema"].items()}
        history = ck["history"]
        start_epoch, step = ck["epoch"], ck["step"]
        if start_epoch >= cfg["epochs"]:
            log(f"{out / 'checkpoint.pt'} already holds all {cfg['epochs']} epochs")
    bits = flip_bits(n, cfg["seed"])

    def set_lr(s):
        f = learning_rate(s, total_steps, cfg["warmup"], cfg["lr_start"])
        for g in optimizer.param_groups:
            g["lr"] = g["initial_lr"] * f
            if g["name"] == "whiten_bias" and epoch >= cfg["whiten_bias_epochs"]:
                g["lr"] = 0.0

    net.train()
    for epoch in range(start_epoch, cfg["epochs"]):
        t0 = time.perf_counter()
        order = torch.randperm(n, generator=torch.Generator().manual_seed(_mix(cfg["seed"], "order", epoch)))
        order = torch.cat([order, order[:per_rank * world - n]])[rank::world]  # DistributedSampler-style
        gen = torch.Generator().manual_seed(_mix(cfg["seed"], "augment", epoch, rank))
        correct = seen = 0
        loss_sum = 0.0
        bar = progress(steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg['epochs']}",
                       enabled=progress_bar if rank == 0 else False)
        stopped = False
        with bar:
            for b in range(steps_per_epoch):
                if max_steps is not None and step >= max_steps:
                    stopped = True
                    break
                idx = order[b * local_batch:(b + 1) * local_batch]
                flips = (bits[idx] ^ bool(epoch % 2)) if cfg["flip"] else None
                xb = augment(X[idx], flips, cfg["translate"], gen)
                xb = xb.to(dev).contiguous(memory_format=torch.channels_last)
                yb = y[idx].to(dev)
                set_lr(step)
                logits = net(xb)
                loss = F.cross_entropy(logits, yb, label_smoothing=cfg["label_smoothing"],
                                       reduction="sum")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                if cfg["lookahead_every"] and step % cfg["lookahead_every"] == 0:
                    _lookahead(model, ema, lookahead_decay(step, total_steps, cfg["lookahead_base"]))
                bl = float(loss.detach()) / len(idx)
                loss_sum += float(loss.detach())
                correct += int((logits.argmax(1) == yb).sum())
                seen += len(idx)
                if (step - 1) % 10 == 0:
                    history["loss_steps"].append(step - 1)
                    history["loss"].append(round(bl, 6))
                bar.update(loss=bl, acc=correct / seen,
                           img_s=seen * world / (time.perf_counter() - t0))
        if stopped:
            break
        if epoch == cfg["epochs"] - 1 and cfg["lookahead_every"]:
            _lookahead(model, ema, 1.0)   # end on the average
        train_time = time.perf_counter() - t0
        rec = {"epoch": epoch + 1, "step": step,
               "train_loss": loss_sum / max(seen, 1), "train_acc": correct / max(seen, 1),
               "train_seconds": round(train_time, 2)}
        if world > 1:
            rec["param_digests"] = _gather_digests(model, world)
        if rank == 0:
            t1 = time.perf_counter()
            if len(data.get("X_val", ())):
                rec["val_acc"] = evaluate(model, data["X_val"], data["y_val"], tta=False)
            if len(data.get("X_test", ())):
                rec["test_acc"] = evaluate(model, data["X_test"], data["y_test"], tta=False)
            rec["eval_seconds"] = round(time.perf_counter() - t1, 2)
            history["epochs"].append(rec)
            log("epoch {epoch}: loss {train_loss:.4f}, train {train_acc:.4f}, ".format(**rec)
                + (f"val {rec['val_acc']:.4f}, " if "val_acc" in rec else "")
                + (f"test {rec['test_acc']:.4f}, " if "test_acc" in rec else "")
                + f"{train_time:.0f} s")
            if out is not None:
                _atomic_save({"kind": CHECKPOINT_KIND, "epoch": epoch + 1, "step": step,
                              "config": cfg, "world_size": world,
                              "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                              "ema": ema, "history": history}, out / "checkpoint.pt")
                _atomic_save(history, out / "history.json")
        net.train()
    finished = bool(history["epochs"]) and history["epochs"][-1]["epoch"] == cfg["epochs"]
    if rank == 0 and finished and "train_seconds_total" not in history:
        last = history["epochs"][-1]
        history["train_seconds_total"] = round(sum(e["train_seconds"] for e in history["epochs"]), 1)
        wall = sum(e["train_seconds"] + e["eval_seconds"] for e in history["epochs"])
        if "test_acc" in last:
            history["test_acc"] = last["test_acc"]
            if cfg["tta"]:
                t1 = time.perf_counter()
                history["test_tta_acc"] = evaluate(model, data["X_test"], data["y_test"],
                                                   tta=cfg["tta"])
                history["tta_seconds"] = round(time.perf_counter() - t1, 2)
                wall += history["tta_seconds"]
                log(f"test accuracy {history['test_acc']:.4f}, "
                    f"with TTA {history['test_tta_acc']:.4f}")
        history["wall_seconds_total"] = round(wall, 1)
        history["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        if out is not None:
            _atomic_save(history, out / "history.json")
            save_model(model, out / "model.pt", cfg, data.get("mean"), data.get("std"))
    model.eval()
    return model, history


def _lookahead(model, ema, decay):
    """Move the average toward the network by ``1 - decay`` and put the
    network at the average (floating-point parameters and BN statistics)."""
    with torch.no_grad():
        state = model.state_dict()
        for k, avg in ema.items():
            avg.lerp_(state[k], 1 - decay)
            state[k].copy_(avg)


def _gather_digests(model, world):
    import torch.distributed as dist

    digests = [None] * world
    dist.all_gather_object(digests, _param_digest(model))
    return digests


def _read_checkpoint(path, cfg, world):
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint to resume from: {path} does not exist "
                                "(run without --resume first, with the same --out)")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable checkpoint "
                              f"({type(exc).__name__}: {exc})") from exc
    if not isinstance(ck, dict) or ck.get("kind") != CHECKPOINT_KIND:
        raise CheckpointError(f"{path} is not a lab.challenge checkpoint "
                              f"(expected kind {CHECKPOINT_KIND!r})")
    if ck["config"] != cfg:
        diff = {k: (ck["config"].get(k), cfg.get(k)) for k in cfg if ck["config"].get(k) != cfg.get(k)}
        raise CheckpointError(f"{path} was made with other options; (checkpoint, now): {diff}")
    if ck["world_size"] != world:
        raise CheckpointError(f"{path} was made with {ck['world_size']} processes, now {world}")
    return ck


def save_model(model, path, cfg, mean=None, std=None, dtype=torch.float16):
    """Save the weights (``dtype``, float16 by default: a few MB) with the
    configuration and the normalisation; BN statistics stay float32."""
    state = {k: (v.to(dtype) if v.is_floating_point() and ".running_" not in k else v)
             for k, v in model.state_dict().items()}
    _atomic_save({"kind": MODEL_KIND, "config": cfg, "state": state,
                  "mean": mean, "std": std}, path)


def load(path, device=None):
    """The trained network from ``path`` (a ``model.pt`` written by
    :func:`train`, or a ``checkpoint.pt``), float32, in eval mode: it takes
    (N, 3, 32, 32) float32 batches normalised as ``lab.data.load_cifar10``
    normalises them and returns logits (N, 10)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable model file "
                              f"({type(exc).__name__}: {exc})") from exc
    kind = obj.get("kind") if isinstance(obj, dict) else None
    if kind == MODEL_KIND:
        state = obj["state"]
    elif kind == CHECKPOINT_KIND:
        state = obj["model"]
    else:
        raise CheckpointError(f"{path} is not a lab.challenge model or checkpoint "
                              f"(expected kind {MODEL_KIND!r})")
    cfg = dict(DEFAULTS, **obj["config"])
    model = Net(cfg["widths"], cfg["bn_momentum"], cfg["logit_scale"], whiten=cfg["whiten"])
    try:
        model.load_state_dict({k: v.float() if v.is_floating_point() else v
                               for k, v in state.items()})
    except RuntimeError as exc:
        raise CheckpointError(f"{path} does not hold this network's weights: {exc}") from exc
    model.config = cfg
    model = model.to(device or "cpu").to(memory_format=torch.channels_last)
    return model.eval()
