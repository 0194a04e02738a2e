"""Shared benchmark harness: lower bounds (DESIGN section 6), interleaved timing, peak memory, markdown tables.

Lower bound of a call = sum over kinds of ``count[kind] * best_row_cost[kind]``, where ``count`` is the number of
sample evaluations the method needs by definition (e.g. integrated gradients: ``N * n_steps`` forward+backward) and
``best_row_cost[kind]`` the best per-row time of that kind of model evaluation, measured in the same run over the
batch sizes :data:`BATCH_SIZES` (the minimum of ``time(b rows) / b``, every repeat; see :class:`RowCost`). Kinds: ``"fwd"`` (a no-grad forward) and
``"fwd+bwd"`` (a forward and the gradient of a scalar score with respect to the inputs, parameters frozen, as the
methods do). Other kinds can be added by passing their runners to :func:`measure`.

Use from a benchmark script::

    from _harness import Case, forward_runner, forward_backward_runner, measure, markdown_table, peak_memory_mb
    units = {("cnn", "fwd"): forward_runner(model, rows), ("cnn", "fwd+bwd"): forward_backward_runner(model, rows)}
    cases = [Case("Saliency", "cnn", lambda: sal.attribute(x, target=t), {"fwd+bwd": 16})]
    results = measure(cases, units, repeats=5)
    print(markdown_table(results))

Timing: wall-clock by default; ``set_clock("cpu")`` with one torch thread measures process CPU time instead
(stable on a loaded machine). Every repeat measures all unit costs, then every case once (order rotated between repeats), and the
case's ratio uses that repeat's bound; reported figures are medians over repeats (robust on a shared machine).

Peak memory: torch's CPU allocations are invisible to ``tracemalloc``, so the harness measures the growth of the
process's peak resident set size (``VmHWM`` in ``/proc/self/status``) during one call, in a fresh subprocess per
case with glibc's mmap threshold fixed at 128 KiB (so freed large tensors go back to the OS and do not hide
later growth). The subprocess runs the call once to warm up, resets the peak (``/proc/self/clear_refs``), and
reports ``peak RSS - RSS before the call``. This counts everything the call allocates (outputs included).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch

BATCH_SIZES: tuple[int, ...] = (1, 8, 16, 32, 64, 128, 256)
Rows = Callable[[int], tuple[Any, Mapping[str, Any]]]  # b -> (inputs tensor or tuple, forward kwargs)


# -- timing ---------------------------------------------------------------------------------------------------
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}
_clock = {"now": time.perf_counter}


def set_clock(name: str) -> None:
    """``"wall"`` (default) or ``"cpu"``: process CPU time, far less disturbed by other processes on a shared
    machine; meaningful with one torch thread (``torch.set_num_threads(1)``), where it equals the compute time."""
    if name not in CLOCKS:
        raise ValueError(f"clock must be one of {sorted(CLOCKS)}; received {name!r}")
    _clock["now"] = CLOCKS[name]


def timed(fn: Callable[[], Any]) -> float:
    """Seconds one call of ``fn()`` takes on the clock of :func:`set_clock` (after a garbage collection, with
    the collector paused)."""
    gc.collect()
    gc.disable()
    now = _clock["now"]
    try:
        start = now()
        fn()
        return now() - start
    finally:
        gc.enable()


@contextmanager
def frozen(model: torch.nn.Module):
    """Parameters with ``requires_grad=False`` inside (as the attribution methods run), restored after."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, f in flags:
            p.requires_grad_(f)


def _as_tuple(x: Any) -> tuple:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _score(out: torch.Tensor) -> torch.Tensor:
    return out.reshape(out.shape[0], -1)[:, 0].sum()


def forward_runner(model: torch.nn.Module, rows: Rows) -> Callable[[int], Callable[[], Any]]:
    """``b -> thunk`` running a no-grad forward on ``b`` rows (rows built outside the timed thunk)."""

    def make(b: int) -> Callable[[], Any]:
        xs, kw = rows(b)

        def run() -> Any:
            with torch.no_grad():
                return _score(model(*_as_tuple(xs), **kw))

        return run

    return make


def forward_backward_runner(model: torch.nn.Module, rows: Rows) -> Callable[[int], Callable[[], Any]]:
    """``b -> thunk`` running a forward on ``b`` rows and the gradient of a scalar score w.r.t. the inputs."""

    def make(b: int) -> Callable[[], Any]:
        xs, kw = rows(b)
        xs = tuple(x.detach().requires_grad_(True) for x in _as_tuple(xs))

        def run() -> Any:
            with frozen(model), torch.enable_grad():
                return torch.autograd.grad(_score(model(*xs, **kw)), xs)

        return run

    return make


class RowCost:
    """Best per-row cost of one kind of evaluation over ``batch_sizes``. Each :meth:`measure` times every batch
    size once (the rows of each size are built, and run once to warm up, on the first call only) and returns the
    minimum of ``time(b rows) / b``; ``best_b`` is the batch size that gave it."""

    def __init__(self, make: Callable[[int], Callable[[], Any]], batch_sizes: Sequence[int] = BATCH_SIZES):
        self.make, self.batch_sizes = make, tuple(batch_sizes)
        self.runs: dict[int, Callable[[], Any]] = {}
        self.best_b = 0

    def measure(self) -> float:
        if not self.runs:
            for b in self.batch_sizes:
                self.runs[b] = self.make(b)
                self.runs[b]()  # warm-up (allocator, kernels)
        costs = {b: timed(run) / b for b, run in self.runs.items()}
        self.best_b = min(costs, key=costs.get)
        return costs[self.best_b]


# -- cases and results ----------------------------------------------------------------------------------------
@dataclass
class Case:
    """One benchmarked call. ``counts``: sample evaluations by kind (``{"fwd+bwd": N * n_steps, "fwd": N}``)."""

    method: str
    model: str
    call: Callable[[], Any]
    counts: Mapping[str, int]
    note: str = ""


@dataclass
class Result:
    method: str
    model: str
    time_s: float
    bound_s: float
    ratio: float
    ratios: list[float] = field(default_factory=list)
    peak_mb: float | None = None
    note: str = ""


def measure(
    cases: Sequence[Case],
    units: Mapping[tuple[str, str], Callable[[int], Callable[[], Any]]],
    repeats: int = 5,
    batch_sizes: Sequence[int] = BATCH_SIZES,
    warmup: bool = True,
    log: Callable[[str], None] | None = None,
) -> list[Result]:
    """Interleaved timing of ``cases`` against their bounds. ``units[(model, kind)]`` is a runner factory (see
    :func:`forward_runner`). Returns one :class:`Result` per case with medians over ``repeats``."""
    for c in cases:
        for kind in c.counts:
            if (c.model, kind) not in units:
                raise ValueError(f"case {c.method}/{c.model} needs unit ({c.model!r}, {kind!r}); give it in units")
    if warmup:
        for c in cases:
            c.call()
    row_costs = {key: RowCost(make, batch_sizes) for key, make in units.items()}
    times: dict[int, list[float]] = {i: [] for i in range(len(cases))}
    bounds: dict[int, list[float]] = {i: [] for i in range(len(cases))}
    for r in range(repeats):
        cost = {key: rc.measure() for key, rc in row_costs.items()}
        order = list(range(len(cases)))
        order = order[r % len(order):] + order[: r % len(order)]
        for i in order:
            c = cases[i]
            times[i].append(timed(c.call))
            bounds[i].append(sum(n * cost[(c.model, k)] for k, n in c.counts.items()))
        if log:
            log(f"repeat {r + 1}/{repeats} done")
    out = []
    for i, c in enumerate(cases):
        ratios = [t / b for t, b in zip(times[i], bounds[i])]
        out.append(Result(c.method, c.model, statistics.median(times[i]), statistics.median(bounds[i]),
                          statistics.median(ratios), ratios, note=c.note))
    return out


# -- peak memory ----------------------------------------------------------------------------------------------
def _status_kb(field_name: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field_name} not in /proc/self/status")


def peak_growth_bytes(call: Callable[[], Any], warmup: bool = True) -> int:
    """In this process: peak RSS growth of one ``call()`` (Linux). Run it in a fresh process (see
    :func:`peak_memory_mb`); with ``warmup`` the call runs once first and the peak is reset before measuring."""
    if warmup:
        call()
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
    except OSError:
        if warmup:
            raise RuntimeError("cannot reset the peak RSS (/proc/self/clear_refs); measure without warm-up")
    before = _status_kb("VmRSS")
    result = call()
    peak = _status_kb("VmHWM")
    del result
    return max(0, peak - before) * 1024


CHILD_FLAG = "--peak-memory-child"


def peak_memory_mb(script: str, key: str, extra_args: Iterable[str] = (), timeout: float = 600) -> float | None:
    """Run ``python script CHILD_FLAG key *extra_args`` in a fresh process; the script must call
    :func:`child_main` with a function ``key -> call``. Returns the peak growth in MB (None on failure)."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", MALLOC_TRIM_THRESHOLD_="131072")
    proc = subprocess.run([sys.executable, script, CHILD_FLAG, key, *extra_args], capture_output=True, text=True,
                          env=env, timeout=timeout)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)["peak_bytes"] / 1e6
    sys.stderr.write(f"peak memory of {key} failed:\n{proc.stderr[-2000:]}\n")
    return None


def child_main(argv: Sequence[str], get_call: Callable[[str], Callable[[], Any]]) -> bool:
    """If ``argv`` asks for a peak-memory child run, measure it, print JSON and return True."""
    if len(argv) < 3 or argv[1] != CHILD_FLAG:
        return False
    call = get_call(argv[2])
    print(json.dumps({"key": argv[2], "peak_bytes": peak_growth_bytes(call)}))
    return True


# -- output ---------------------------------------------------------------------------------------------------
def markdown_table(results: Sequence[Result]) -> str:
    """``method | model | time ms | bound ms | ratio | peak MB`` (medians; ratio = median of per-repeat ratios)."""
    lines = ["| method | model | time ms | bound ms | ratio | peak MB |", "|---|---|---:|---:|---:|---:|"]
    for r in results:
        peak = "-" if r.peak_mb is None else f"{r.peak_mb:.1f}"
        name = f"{r.method} ({r.note})" if r.note else r.method
        lines.append(f"| {name} | {r.model} | {r.time_s * 1e3:.1f} | {r.bound_s * 1e3:.1f} | {r.ratio:.2f} | {peak} |")
    return "\n".join(lines)


# -- command line shared by the bench_*.py scripts ------------------------------------------------------------
def add_common_options(ap: "argparse.ArgumentParser", default_repeats: int) -> None:
    """``--quick``, ``--repeats``, ``--no-memory``, ``--threads``, ``--clock``, ``--compare captum``,
    ``--captum-python`` (each script adds its own selectors)."""
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 repeats, 3 batch sizes, no memory")
    ap.add_argument("--repeats", type=int, default=None,
                    help=f"interleaved repeats (default {default_repeats}; --quick 2)")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: torch's choice; 1 gives stable numbers on a loaded machine)")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall time (default) or process CPU time (with --threads 1: stable on a loaded machine)")
    ap.add_argument("--compare", choices=("captum",), default=None,
                    help="also time every case Captum has, side by side, interleaved (see _compare.py)")
    ap.add_argument("--captum-python", default=None,
                    help="Python with Captum installed (default: this one if it has captum, else $PELLUCID_CAPTUM_PYTHON)")
    ap.add_argument("--rounds", type=int, default=3, help="--compare captum: fresh worker pairs (see _compare.py)")
    ap.add_argument("--same-malloc", action="store_true",
                    help="--compare captum: both sides get pellucid's glibc thresholds (pellucid.core.host_memory)")


def apply_common_options(args: Any, default_repeats: int) -> tuple[int, tuple[int, ...]]:
    """Set the clock and torch threads; return ``(repeats, batch_sizes)``."""
    set_clock(args.clock)
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = args.repeats or (2 if args.quick else default_repeats)
    return repeats, ((8, 32, 128) if args.quick else BATCH_SIZES)


def run_and_report(cases: Sequence[Case], units: Mapping, args: Any, repeats: int,
                   batch_sizes: Sequence[int], script: str) -> list[Result]:
    """Measure ``cases``, add peak memory (unless ``--quick``/``--no-memory``), print the table; return results."""
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.clock} clock; {repeats} repeats; "
          f"bound batch sizes {tuple(batch_sizes)}", file=sys.stderr)
    results = measure(cases, units, repeats=repeats, batch_sizes=batch_sizes,
                      log=lambda s: print(s, file=sys.stderr, flush=True))
    if not (args.quick or args.no_memory):
        for r in results:
            r.peak_mb = peak_memory_mb(os.path.abspath(script), f"{r.model}:{r.method}:{args.threads or 0}")
    print(markdown_table(results))
    if getattr(args, "compare", None) == "captum":
        from _compare import run_comparison

        run_comparison(cases, args, repeats)
    return results
