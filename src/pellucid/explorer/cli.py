"""``python -m pellucid explore [--host H] [--port P]``: serve the explorer on the built-in demo model and data."""
from __future__ import annotations

import argparse

HELP = "serve the interactive explorer on the built-in demo models and data (prints the URL)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, loopback only)")
    p.add_argument("--port", type=int, default=0, help="port (default: 0, a free port)")


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("issue 10: the explorer's helper fills this in")
