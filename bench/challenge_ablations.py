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
lookahead; without flips and translations.
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
]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--only", nargs="*", help="names of the runs to make (default: all)")
    args = p.parse_args(argv)

    import torch
    from lab.torch import challenge as ch

    torch.set_num_threads(args.threads)
    out = pathlib.Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {"runs": []}
    results.update(epochs=args.epochs, threads=args.threads, torch=str(torch.__version__),
                   processor=ch._cpu_name(), python=platform.python_version(),
                   command="python bench/challenge_ablations.py " + " ".join(argv or sys.argv[1:]))
    data = ch.load_data(ch._check_config({}))
    for name, change in RUNS:
        if args.only and name not in args.only:
            continue
        t0 = time.perf_counter()
        _, h = ch.train(dict(change, epochs=args.epochs, tta=0), data=data,
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
