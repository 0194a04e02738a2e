"""The loop of a side-by-side timing worker (:mod:`captum_worker`, :mod:`pellucid_worker`): one JSON object per
line on stdin, one answer per line on stdout. Imports only torch and :mod:`_harness`, so the Captum worker never
imports pellucid.

* ``{"cmd": "setup", "cases": [[model, method], ...], "clock": "cpu", "threads": 1, "dir": path}``: builds every
  case ``build(model, method)`` knows (``KeyError``: not available; a name in ``skipped``: not timed, with the
  reason), runs each once (warm-up) and saves that result to ``dir/<i>.pt``; answers
  ``{"ok": [i, ...], "errors": {i: message}}``.
* ``{"cmd": "time", "i": i, "n": n}``: times ``n`` calls (default 1) of case ``i`` with the harness's clock;
  answers ``{"t": median seconds}``.
* ``{"cmd": "quit"}``.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import traceback
from typing import Any, Callable, Mapping

import torch

from _harness import set_clock, timed


def serve(build: Callable[[str, str], Callable[[], Any]], skipped: Mapping[str, str] | None = None) -> None:
    calls: dict[int, Callable[[], Any]] = {}
    skipped = skipped or {}
    for line in sys.stdin:
        msg = json.loads(line)
        if msg["cmd"] == "quit":
            break
        if msg["cmd"] == "setup":
            set_clock(msg.get("clock", "cpu"))
            if msg.get("threads"):
                torch.set_num_threads(int(msg["threads"]))
            errors = {}
            for i, (model_name, method) in enumerate(msg["cases"]):
                if method in skipped:
                    errors[i] = skipped[method]
                    continue
                try:
                    call = build(model_name, method)
                except KeyError:
                    errors[i] = "not available"
                    continue
                try:
                    torch.manual_seed(0)
                    torch.save(call(), os.path.join(msg["dir"], f"{i}.pt"))
                except Exception as e:  # noqa: BLE001 - reported to the driver, which prints it
                    traceback.print_exc(file=sys.stderr)
                    errors[i] = f"{type(e).__name__}: {e}"[:300]
                    continue
                calls[i] = call
            reply: dict[str, Any] = {"ok": sorted(calls), "errors": errors}
        elif msg["cmd"] == "time":
            reply = {"t": statistics.median(timed(calls[msg["i"]]) for _ in range(int(msg.get("n", 1))))}
        else:
            reply = {"error": f"unknown command {msg['cmd']!r}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
