"""``python -m pellucid study NAME [--fast] [--out DIR] [--seed S]``: run one seed study."""
from __future__ import annotations

import argparse
import sys

from . import STUDIES

HELP = "run a seed study (trains its small models here), print its tables, write summary.json, PNGs and index.html"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", choices=sorted(STUDIES), help="the study")
    p.add_argument("--fast", action="store_true", help="small models and data: seconds, for tests")
    p.add_argument("--out", default=None, help="output directory (default: pellucid-study-NAME)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads for torch (default: 1, fastest for the small models; 0: torch's default)")


def run(args: argparse.Namespace) -> int:
    import torch

    from ._output import run_study

    if args.threads < 0:
        print(f"pellucid study: error: --threads must be 0 or a positive int; received {args.threads}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    out = args.out or f"pellucid-study-{args.name}"
    try:
        run_study(args.name, out, fast=args.fast, seed=args.seed)
    except ImportError as e:  # a missing extra
        print(f"pellucid study: error: {e}", file=sys.stderr)
        return 1
    return 0
