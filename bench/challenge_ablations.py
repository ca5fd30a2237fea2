"""Short runs of the CIFAR-10 challenge recipe with one part taken out.

Each run trains ``lab.torch.challenge`` for ``--epochs`` epochs (2 by
default; the schedule is compressed to fit) on the same 49,000 images with
the same seed, changing one option, and records the test accuracy without
TTA (the six-view TTA is measured on the full run's weights in the
chapter).  The results go to ``--out`` as JSON after every run, so an
interrupted sweep keeps what it finished.

    python bench/challenge_ablations.py --out book/frameworks/challenge/ablations.json

Runs, in order: the recipe; without the whitening layer (an ordinary
trainable 2x2 convolution in its place); without label smoothing; without
lookahead; without flips and translations; and the recipe on data made
worse: every image (training and test) JPEG-encoded once more at quality
75, a measure of what compression costs.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import platform
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RUNS = [
    ("recipe", {}),
    ("no whitening", {"whiten": False}),
    ("no label smoothing", {"label_smoothing": 0.0}),
    ("no lookahead", {"lookahead_every": 0}),
    ("no flips or translations", {"flip": False, "translate": 0}),
    ("all images JPEG-encoded once more", {}),
]

#: runs whose data are changed rather than the recipe
RECOMPRESS = {"all images JPEG-encoded once more": 75}


def recompress(data, quality):
    """Every image of ``data`` (normalised NCHW tensors) turned back into
    8-bit pixels, encoded as JPEG at ``quality`` (Pillow's defaults: 4:2:0
    chroma subsampling), decoded and normalised again."""
    import io

    import numpy as np
    import torch
    from PIL import Image

    mean = torch.tensor(data["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(data["std"]).view(1, 3, 1, 1)
    out = dict(data)
    for key in ("X_train", "X_val", "X_test"):
        pixels = ((data[key] * std + mean).clamp(0, 1) * 255).round().to(torch.uint8)
        pixels = pixels.permute(0, 2, 3, 1).numpy()
        again = []
        for im in pixels:
            buf = io.BytesIO()
            Image.fromarray(im).save(buf, format="JPEG", quality=quality)
            again.append(np.asarray(Image.open(buf)))
        x = torch.from_numpy(np.stack(again)).permute(0, 3, 1, 2).float() / 255
        out[key] = ((x - mean) / std).contiguous()
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--only", nargs="*", help="names of the runs to make (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of every run (default 0)")
    args = p.parse_args(argv)

    import torch
    from lab.torch import challenge as ch

    torch.set_num_threads(args.threads)
    out = pathlib.Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {"runs": []}
    results.update(epochs=args.epochs, threads=args.threads, seed=args.seed, torch=str(torch.__version__),
                   processor=ch._cpu_name(), python=platform.python_version(),
                   command="python bench/challenge_ablations.py " + " ".join(argv or sys.argv[1:]))
    data = ch.load_data(ch._check_config({}))
    for name, change in RUNS:
        if args.only and name not in args.only:
            continue
        t0 = time.perf_counter()
        run_data = recompress(data, RECOMPRESS[name]) if name in RECOMPRESS else data
        _, h = ch.train(dict(change, epochs=args.epochs, tta=0, seed=args.seed), data=run_data,
                        log=lambda m: print(f"[{name}] {m}", flush=True))
        row = {"name": name, "change": change, "test_acc": h["test_acc"],
               "val_acc": h["epochs"][-1]["val_acc"],
               "train_loss": h["epochs"][-1]["train_loss"],
               "train_seconds": h["train_seconds_total"],
               "seconds": round(time.perf_counter() - t0, 1)}
        results["runs"] = [r for r in results["runs"] if r["name"] != name] + [row]
        out.write_text(json.dumps(results, indent=1) + "\n")
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
