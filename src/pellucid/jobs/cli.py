"""``python -m pellucid attribute --config job.toml [--restart]``: a resumable dataset attribution job."""
from __future__ import annotations

import argparse

HELP = "attribute a whole dataset into a resumable on-disk store (config in TOML)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="the job's TOML file")
    p.add_argument("--restart", action="store_true", help="discard a store written with a different configuration")


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("issue 13: the jobs helper fills this in")
