"""One training step of the CIFAR-10 challenge network, NCHW against
channels_last memory, at a few batch sizes.

A step is what ``lab.torch.challenge.train`` does per batch: augmentation
(flips and 2-pixel translations), the forward pass, the summed
label-smoothed loss, the backward pass and the Nesterov SGD step, on
random images of CIFAR-10's shape.  Both memory formats hold the same
numbers in the same (N, C, H, W) tensors; ``channels_last`` stores them
NHWC in memory, the order oneDNN's CPU convolutions prefer.  Times are the
minimum over blocks of consecutive steps (``_timing.min_times``), the two
formats taking turns.

    python bench/bench_challenge.py [--threads 2] [--batches 256 512] [--quick]

Prints milliseconds per image and images per second; ``run()`` returns the
rows for a notebook.
"""
from __future__ import annotations

import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from _timing import min_times  # noqa: E402


def _step_fn(batch, memory_format, seed=0):
    import torch
    import torch.nn.functional as F

    from lab.torch import challenge as ch

    torch.manual_seed(seed)
    cfg = ch._check_config({})
    model = ch.Net(cfg["widths"]).to(memory_format=memory_format)
    opt = ch.make_optimizer(model, cfg, batch)
    x = torch.randn(batch, 3, 32, 32)
    y = torch.randint(0, 10, (batch,))
    flips = torch.rand(batch) < 0.5
    gen = torch.Generator().manual_seed(seed)

    def step():
        xb = ch.augment(x, flips, 2, gen).contiguous(memory_format=memory_format)
        loss = F.cross_entropy(model(xb), y, label_smoothing=0.2, reduction="sum")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def run(batches=(256, 512), threads=None, repeats=3, rounds=2):
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    rows = []
    formats = [("NCHW (contiguous)", torch.contiguous_format),
               ("channels_last", torch.channels_last)]
    for batch in batches:
        fns = [_step_fn(batch, fmt) for _, fmt in formats]
        times = min_times(fns, repeats, warmup=1, rounds=rounds, settle=0.5)
        for (name, _), t in zip(formats, times):
            rows.append({"batch": batch, "memory": name, "threads": torch.get_num_threads(),
                         "step_s": t, "ms_per_image": 1000 * t / batch,
                         "images_per_s": batch / t})
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--batches", type=int, nargs="+", default=[256, 512])
    p.add_argument("--quick", action="store_true", help="one block of one step per format")
    a = p.parse_args(argv)
    rows = run(a.batches, a.threads, repeats=1 if a.quick else 3, rounds=1 if a.quick else 2)
    print(f"{'batch':>5}  {'memory':18}{'threads':>8}{'ms/image':>10}{'images/s':>10}")
    for r in rows:
        print(f"{r['batch']:>5}  {r['memory']:18}{r['threads']:>8}"
              f"{r['ms_per_image']:>10.2f}{r['images_per_s']:>10.0f}")


if __name__ == "__main__":
    main()
