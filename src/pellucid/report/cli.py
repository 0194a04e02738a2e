"""``python -m pellucid demo``: train a small CNN on built-in data, explain and evaluate it, write an HTML report."""
from __future__ import annotations

import argparse
import sys

HELP = "train a small CNN on built-in data, explain and evaluate it, write an HTML report"


def add_arguments(d: argparse.ArgumentParser) -> None:
    from .demo import DEFAULT_METHODS, METHOD_NAMES

    d.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), metavar="NAME",
                   help=f"attribution methods (space or comma separated) from: {', '.join(METHOD_NAMES)} "
                        f"(default: {' '.join(DEFAULT_METHODS)})")
    d.add_argument("--out", default="pellucid-report", help="output directory (default: pellucid-report)")
    d.add_argument("--no-text", action="store_true", help="skip the text examples (MiniLM sentence similarity and the tiny LM attribution)")
    d.add_argument("--quick", action="store_true", help="less training data and fewer steps (about half the time)")
    d.add_argument("--examples", type=int, default=8, help="test images to explain (default: 8)")
    d.add_argument("--train-size", type=int, default=None, help="training images (default: 2000, quick 1200)")
    d.add_argument("--epochs", type=int, default=None, help="training epochs (default: 6, quick 4)")
    d.add_argument("--threads", type=int, default=1,
                   help="CPU threads for torch (default: 1, fastest for the demo's small models; 0: torch's default)")
    d.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    d.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from .demo import DemoConfig, check_methods, run_demo

    methods = [m for item in args.methods for m in item.split(",") if m]
    try:
        methods = check_methods(methods)
        for flag, value in (("--examples", args.examples), ("--train-size", args.train_size), ("--epochs", args.epochs)):
            if value is not None and value < 1:
                raise ValueError(f"{flag} must be a positive int; received {value}")
        if args.threads < 0:
            raise ValueError(f"--threads must be 0 (torch's default) or a positive int; received {args.threads}")
    except ValueError as e:
        print(f"pellucid demo: error: {e}", file=sys.stderr)
        return 2
    cfg = DemoConfig(methods=methods, out=args.out, text=not args.no_text, quick=args.quick, seed=args.seed,
                     examples=args.examples, progress=not args.no_progress, n_train=args.train_size,
                     epochs=args.epochs, threads=args.threads or None)
    try:
        run_demo(cfg)
    except ImportError as e:  # a missing extra (matplotlib for the report)
        print(f"pellucid demo: error: {e}", file=sys.stderr)
        return 1
    return 0
