"""Side by side with Captum (``--compare captum``): the same cases timed in pellucid and in Captum, interleaved.

Captum is not a dependency and is never imported here: the Captum side runs in :mod:`captum_worker`, a subprocess
of a Captum interpreter (located by :func:`find_captum_python`), which builds the same model from its seed and the
same call from the case's ``(model, method)`` name, and times it with the same clock. Every repeat times each case
once on each side (which side goes first alternates), so both see the same machine load; the table reports
medians of the per-repeat ratios ``pellucid time / Captum time``. The first call of each side is a warm-up whose
results are compared (``max |pellucid - Captum| / max |Captum|``; meaningful for deterministic methods only).
"""
from __future__ import annotations

import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

from _harness import Case, timed

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "captum_worker.py")
ENV_VAR = "PELLUCID_CAPTUM_PYTHON"
# sampling methods: the two libraries draw different random numbers, so their results are not compared
RANDOM = {"GradientShap", "DeepLiftShap", "NoiseTunnel", "FeaturePermutation", "ShapleyValueSampling", "Lime",
          "KernelShap"}


def find_captum_python(given: str | None = None) -> str:
    """The interpreter for the Captum side: ``given`` (``--captum-python``), else this interpreter if ``captum`` is
    importable here, else ``$PELLUCID_CAPTUM_PYTHON``. ``RuntimeError`` if none."""
    if given:
        return given
    if importlib.util.find_spec("captum") is not None:
        return sys.executable
    found = os.environ.get(ENV_VAR)
    if found:
        return found
    raise RuntimeError(
        f"--compare captum needs a Python with Captum installed: pass --captum-python PATH or set {ENV_VAR} "
        "(Captum is not a dependency of pellucid)"
    )


class CaptumWorker:
    """A running :mod:`captum_worker` process (a context manager)."""

    def __init__(self, python: str, threads: int | None, clock: str):
        env = dict(os.environ, OMP_NUM_THREADS=str(threads or os.environ.get("OMP_NUM_THREADS", "")) or "1")
        self.proc = subprocess.Popen([python, WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=env)
        self.threads, self.clock = threads, clock
        self.dir = tempfile.mkdtemp(prefix="pellucid-captum-")

    def ask(self, **msg: Any) -> dict:
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the Captum worker exited (code {self.proc.wait()}); see its messages above")
        return json.loads(line)

    def setup(self, keys: Sequence[tuple[str, str]]) -> dict:
        return self.ask(cmd="setup", cases=[list(k) for k in keys], clock=self.clock, threads=self.threads,
                        dir=self.dir)

    def result(self, i: int) -> Any:
        return torch.load(os.path.join(self.dir, f"{i}.pt"), weights_only=False)

    def __enter__(self) -> "CaptumWorker":
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self.ask(cmd="quit") if self.proc.poll() is None else None
        except (RuntimeError, BrokenPipeError, ValueError):
            pass
        self.proc.wait(timeout=30)
        for name in os.listdir(self.dir):
            os.remove(os.path.join(self.dir, name))
        os.rmdir(self.dir)


@dataclass
class Comparison:
    method: str
    model: str
    ours_s: float
    captum_s: float
    ratio: float  # median over repeats of ours / Captum
    ratios: list[float] = field(default_factory=list)
    diff: float | None = None  # max |ours - Captum| / max |Captum| of the warm-up results (deterministic methods)
    note: str = ""


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors(v)]
    return []


def relative_difference(ours: Any, theirs: Any) -> float | None:
    a, b = _tensors(ours), _tensors(theirs)
    if len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b)):
        return None
    scale = max(float(y.detach().abs().max()) for y in b) or 1.0
    return max(float((x.detach().double() - y.detach().double()).abs().max()) for x, y in zip(a, b)) / scale


def compare(cases: Sequence[Case], python: str, repeats: int, threads: int | None, clock: str,
            log: Callable[[str], None] | None = None) -> list[Comparison]:
    """Time every case that Captum also has in both libraries, interleaved (see the module docstring)."""
    with CaptumWorker(python, threads, clock) as worker:
        answer = worker.setup([(c.model, c.method) for c in cases])
        for i, msg in answer["errors"].items():
            if msg != "not in Captum" and log:
                log(f"Captum side not timed for {cases[int(i)].method}/{cases[int(i)].model}: {msg}")
        shared = [i for i in answer["ok"]]
        diffs = {}
        for i in shared:
            torch.manual_seed(0)
            ours = cases[i].call()  # warm-up, and the result to compare
            if cases[i].method not in RANDOM:
                diffs[i] = relative_difference(ours, worker.result(i))
        ours_t: dict[int, list[float]] = {i: [] for i in shared}
        theirs_t: dict[int, list[float]] = {i: [] for i in shared}
        for r in range(repeats):
            order = shared[r % max(1, len(shared)):] + shared[: r % max(1, len(shared))]
            for k, i in enumerate(order):
                if (r + k) % 2 == 0:
                    ours_t[i].append(timed(cases[i].call))
                    theirs_t[i].append(worker.ask(cmd="time", i=i)["t"])
                else:
                    theirs_t[i].append(worker.ask(cmd="time", i=i)["t"])
                    ours_t[i].append(timed(cases[i].call))
            if log:
                log(f"side-by-side repeat {r + 1}/{repeats} done")
    out = []
    for i in shared:
        ratios = [a / b for a, b in zip(ours_t[i], theirs_t[i])]
        out.append(Comparison(cases[i].method, cases[i].model, statistics.median(ours_t[i]),
                              statistics.median(theirs_t[i]), statistics.median(ratios), ratios, diffs.get(i),
                              cases[i].note))
    return out


def comparison_table(results: Sequence[Comparison]) -> str:
    """``method | model | pellucid ms | Captum ms | pellucid / Captum | max rel. diff``."""
    lines = ["| method | model | pellucid ms | Captum ms | pellucid / Captum | max rel. diff |",
             "|---|---|---:|---:|---:|---:|"]
    for r in results:
        name = f"{r.method} ({r.note})" if r.note else r.method
        diff = "-" if r.diff is None else f"{r.diff:.0e}"
        lines.append(f"| {name} | {r.model} | {r.ours_s * 1e3:.1f} | {r.captum_s * 1e3:.1f} | {r.ratio:.2f} | {diff} |")
    return "\n".join(lines)


def run_comparison(cases: Sequence[Case], args: Any, repeats: int) -> list[Comparison]:
    """``--compare captum`` of the bench scripts: run :func:`compare` and print the side-by-side table."""
    try:
        python = find_captum_python(getattr(args, "captum_python", None))
    except RuntimeError as e:
        raise SystemExit(str(e)) from None
    print(f"side by side with Captum ({python}), {repeats} interleaved repeats", file=sys.stderr)
    results = compare(cases, python, repeats, args.threads, args.clock,
                      log=lambda s: print(s, file=sys.stderr, flush=True))
    print("\nSide by side with Captum (medians; ratio = median of per-repeat pellucid / Captum)\n")
    print(comparison_table(results))
    return results
