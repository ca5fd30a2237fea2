"""``python -m lab.challenge``: train the CIFAR-10 challenge network.

    python -m lab.challenge --out runs/c10             # 10 epochs, seed 0
    python -m lab.challenge --out runs/c10 --resume    # after an interruption
    torchrun --nproc_per_node 2 -m lab.challenge --out runs/ddp

A checkpoint is written after every epoch (an interrupted run loses at most
the epoch it was in), with ``history.json`` beside it, and ``model.pt`` (the
final weights in float16) at the end.  Under ``torchrun`` every process runs
this same command; rank 0 alone writes.  The recipe lives in
:mod:`lab.torch.challenge`; this module imports PyTorch only when run.
"""
from __future__ import annotations

import argparse
import shlex
import sys

__all__ = ["main", "parser"]


def _int_at_least(low):
    """An argparse type: a whole number >= ``low``."""
    def parse(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a whole number >= {low}, got {text!r}") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {low}, got {v}")
        return v
    return parse


_positive, _nonneg = _int_at_least(1), _int_at_least(0)


def _widths(text):
    try:
        w = [int(t) for t in text.split(",")]
    except ValueError:
        w = []
    if len(w) != 3 or min(w) < 1:
        raise argparse.ArgumentTypeError(
            f"expected three positive channel counts such as 64,256,256, got {text!r}")
    return w


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m lab.challenge",
        description="Train the CIFAR-10 challenge network (lab.torch.challenge).")
    p.add_argument("--epochs", type=_positive, default=10, help="epochs (default 10)")
    p.add_argument("--seed", type=_nonneg, default=0, help="seed of the run (default 0)")
    p.add_argument("--batch-size", type=_positive, default=512,
                   help="global batch size (default 512); the learning rate per image is kept")
    p.add_argument("--out", required=True, help="folder for checkpoint.pt, history.json, model.pt")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--threads", type=_positive, default=None,
                   help="CPU threads per process (default: PyTorch's choice)")
    p.add_argument("--train-images", type=_positive, default=49000,
                   help="training images (default 49000; the next 1000 are the validation set)")
    p.add_argument("--widths", type=_widths, default=[64, 256, 256],
                   help="channels of the three conv groups (default 64,256,256)")
    p.add_argument("--no-tta", action="store_true", help="skip test-time augmentation at the end")
    p.add_argument("--max-steps", type=_positive, default=None,
                   help="stop after this many steps (the schedule still spans --epochs)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    from lab.torch import challenge  # PyTorch from here on

    cfg = {"epochs": args.epochs, "seed": args.seed, "batch_size": args.batch_size,
           "num_training": args.train_images, "widths": args.widths, "tta": not args.no_tta}
    try:
        challenge.train(cfg, out=args.out, resume=args.resume, threads=args.threads,
                        progress_bar=not args.quiet and None, max_steps=args.max_steps,
                        log=lambda m: print(m, flush=True),
                        command="python -m lab.challenge " + shlex.join(
                            sys.argv[1:] if argv is None else argv))
    except (FileNotFoundError, ValueError) as exc:
        print(f"lab.challenge: error: {exc}", file=sys.stderr)
        return 2
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
