"""``python -m pellucid attribute --config job.toml [--restart]``: a resumable dataset attribution job."""
from __future__ import annotations

import argparse
import sys

HELP = "attribute a whole dataset into a resumable on-disk store (config in TOML)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="the job's TOML file")
    p.add_argument("--restart", action="store_true", help="discard a store written with a different configuration")
    p.add_argument("--engine", choices=("local", "ray"), default=None, help="override the config's engine")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    try:
        import zarr  # noqa: F401
    except ImportError:
        print("pellucid attribute needs the jobs extra: pip install 'pellucid[jobs]'", file=sys.stderr)
        return 1
    from .config import JobConfigError, load_config
    from .run import run_job
    from .store import StoreError

    try:
        config = load_config(args.config)
        if args.engine is not None:
            config.engine = args.engine
        if args.no_progress:
            config.show_progress = False
        result = run_job(config, restart=args.restart)
    except (JobConfigError, StoreError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ImportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{result.path}: {result.n_examples} examples ({result.n_computed} computed now, {result.n_resumed} "
          f"already stored) in {result.seconds:.1f} s, {result.throughput:.1f} examples/s")
    return 0
