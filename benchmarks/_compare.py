"""Side by side with Captum (``--compare captum``): the same cases timed in pellucid and in Captum, interleaved.

Captum is not a dependency and is never imported here: the Captum side runs in :mod:`captum_worker`, a subprocess
of a Captum interpreter (located by :func:`find_captum_python`), and the pellucid side in :mod:`pellucid_worker`, a
subprocess of this interpreter; each builds the same model from its seed and the same call from the case's
``(model, method)`` name, and times it with the same clock. Both workers are started afresh for every round.
Every repeat times each case once on each side (which side goes first alternates), so both see the same machine
load; the table reports medians of the per-repeat ratios ``pellucid time / Captum time`` over all rounds. The first call of each side is a warm-up whose
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

from _harness import Case

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


class Worker:
    """A running timing worker (:mod:`captum_worker` or :mod:`pellucid_worker`; protocol in :mod:`_worker`), a
    context manager. ``env``: extra environment variables."""

    def __init__(self, python: str, script: str, threads: int | None, clock: str, env: dict | None = None):
        env = dict(os.environ, OMP_NUM_THREADS=str(threads or os.environ.get("OMP_NUM_THREADS", "")) or "1",
                   **(env or {}))
        self.proc = subprocess.Popen([python, script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=env)
        self.threads, self.clock = threads, clock
        self.dir = tempfile.mkdtemp(prefix="pellucid-side-")

    def ask(self, **msg: Any) -> dict:
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"a timing worker exited (code {self.proc.wait()}); see its messages above")
        return json.loads(line)

    def setup(self, keys: Sequence[tuple[str, str]]) -> dict:
        return self.ask(cmd="setup", cases=[list(k) for k in keys], clock=self.clock, threads=self.threads,
                        dir=self.dir)

    def result(self, i: int) -> Any:
        return torch.load(os.path.join(self.dir, f"{i}.pt"), weights_only=False)

    def __enter__(self) -> "Worker":
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


# glibc settings for --same-malloc: what pellucid sets for itself (pellucid.core.host_memory), given to both sides
SAME_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 * 1024**2), "MALLOC_TRIM_THRESHOLD_": str(64 * 1024**2)}


def compare(cases: Sequence[Case], python: str, repeats: int, threads: int | None, clock: str,
            log: Callable[[str], None] | None = None, rounds: int = 3, same_malloc: bool = False) -> list[Comparison]:
    """Time every case that Captum also has in both libraries (see the module docstring).

    Both sides run in worker processes of the same shape (:mod:`pellucid_worker`, :mod:`captum_worker`), started
    afresh for each of ``rounds`` rounds of ``repeats`` interleaved repeats: a process's history (what it built,
    freed and timed before) moves single-call timings by several percent, so neither side is timed in the driver
    and the ratios are pooled over fresh process pairs. A case under 10 ms is timed as the median of 5 calls per
    repeat (under 50 ms: of ``0.05 s / time`` calls). ``same_malloc``: both workers get glibc's thresholds by
    environment (pellucid then leaves them; see :mod:`pellucid.core.host_memory`), removing the allocator setting
    pellucid makes for itself from the comparison."""
    keys = [(c.model, c.method) for c in cases]
    env = SAME_MALLOC if same_malloc else None
    here = os.path.dirname(os.path.abspath(__file__))
    ours_t: dict[int, list[float]] = {}
    theirs_t: dict[int, list[float]] = {}
    ratios: dict[int, list[float]] = {}
    diffs: dict[int, float | None] = {}
    shared: list[int] = []
    for rnd in range(rounds):
        with Worker(sys.executable, os.path.join(here, "pellucid_worker.py"), threads, clock, env) as ours, \
                Worker(python, WORKER, threads, clock, env) as theirs:
            answer = theirs.setup(keys)
            mine = ours.setup(keys)
            if rnd == 0:
                for i, msg in {**answer["errors"], **mine["errors"]}.items():
                    if msg != "not available" and log:
                        log(f"not timed for {cases[int(i)].method}/{cases[int(i)].model}: {msg}")
                shared = [i for i in answer["ok"] if i in set(mine["ok"])]
                for i in shared:
                    ours_t[i], theirs_t[i], ratios[i] = [], [], []
                    if cases[i].method not in RANDOM:
                        diffs[i] = relative_difference(ours.result(i), theirs.result(i))
                # calls per timing: the median of several for short calls (single calls of a few ms jitter)
                calls = {i: max(1, min(5, int(0.05 / max(ours.ask(cmd="time", i=i)["t"], 1e-6)))) for i in shared}
            for r in range(repeats):
                order = shared[r % max(1, len(shared)):] + shared[: r % max(1, len(shared))]
                for k, i in enumerate(order):
                    if (r + k + rnd) % 2 == 0:
                        a = ours.ask(cmd="time", i=i, n=calls[i])["t"]
                        b = theirs.ask(cmd="time", i=i, n=calls[i])["t"]
                    else:
                        b = theirs.ask(cmd="time", i=i, n=calls[i])["t"]
                        a = ours.ask(cmd="time", i=i, n=calls[i])["t"]
                    ours_t[i].append(a)
                    theirs_t[i].append(b)
                    ratios[i].append(a / b)
                if log:
                    log(f"side-by-side round {rnd + 1}/{rounds}, repeat {r + 1}/{repeats} done")
    out = []
    for i in shared:
        out.append(Comparison(cases[i].method, cases[i].model, statistics.median(ours_t[i]),
                              statistics.median(theirs_t[i]), statistics.median(ratios[i]), ratios[i],
                              diffs.get(i), cases[i].note))
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
                      log=lambda s: print(s, file=sys.stderr, flush=True), rounds=getattr(args, "rounds", 3),
                      same_malloc=getattr(args, "same_malloc", False))
    print("\nSide by side with Captum (medians; ratio = median of per-repeat pellucid / Captum)\n")
    print(comparison_table(results))
    return results
