"""Dataset jobs against a hand-written loop (issue 13): the overhead of ``attribute_dataset``.

    python benchmarks/bench_jobs.py                          # full run (5 interleaved repeats)
    python benchmarks/bench_jobs.py --quick                  # smoke run
    python benchmarks/bench_jobs.py --threads 1 --clock cpu  # stable numbers on a loaded machine

Both sides attribute the same dataset (``--examples``, default 256 random 3x32x32 images; the benchmark CNN of
:mod:`models`) in the same batches (``--batch``, default 64) with the same method and target (the predicted class):

* **loop**: ``for`` each batch: ``pred = model(x).argmax(1)``; ``a = method.attribute(x, target=pred, ...)``; keep
  ``a.numpy()`` in a list (the work a user's script does, with nothing written to disk);
* **job**: ``attribute_dataset(...)`` into a fresh zarr store: the same computation plus fingerprinting (weights,
  first batch), the store, outputs/predictions/targets/ids arrays, atomic chunk commits and the manifest.

``overhead = job time / loop time - 1``; medians over interleaved repeats (job and loop alternate, the order
rotated) of the per-repeat ratios. Target: at most 10%.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from typing import Any, Callable

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _harness import add_common_options, apply_common_options, timed  # noqa: E402
from models import BenchCNN  # noqa: E402

from pellucid.attr import FeatureAblation, IntegratedGradients, Saliency  # noqa: E402
from pellucid.jobs import attribute_dataset  # noqa: E402

N, BATCH = 256, 64


def superpixels(size: int = 32, patch: int = 4) -> torch.Tensor:
    """Feature mask ``(1, 1, size, size)``: 4x4-pixel squares (64 groups on 32x32), shared by the channels."""
    side = size // patch
    ids = torch.arange(side * side).reshape(side, side)
    return ids.repeat_interleave(patch, 0).repeat_interleave(patch, 1).reshape(1, 1, size, size)


METHODS: dict[str, tuple[type, dict]] = {
    "Saliency": (Saliency, {}),
    "IntegratedGradients (32 steps)": (IntegratedGradients, {"n_steps": 32}),
    "FeatureAblation (64 groups)": (FeatureAblation, {"feature_mask": superpixels()}),
}


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return BenchCNN().eval()


def make_data(n: int = N) -> torch.utils.data.TensorDataset:
    g = torch.Generator().manual_seed(0)
    return torch.utils.data.TensorDataset(torch.rand(n, 3, 32, 32, generator=g))


def loop_call(model: torch.nn.Module, data: Any, cls: type, kwargs: dict, batch: int = BATCH) -> Callable[[], Any]:
    method = cls(model)
    x_all = data.tensors[0]
    device = next(model.parameters()).device
    kwargs = {k: v.to(device) if torch.is_tensor(v) else v for k, v in kwargs.items()}

    def run() -> list:
        out = []
        for start in range(0, x_all.shape[0], batch):
            x = x_all[start:start + batch].to(device)
            with torch.no_grad():
                pred = model(x).argmax(1)
            out.append(method.attribute(x, target=pred, **kwargs).cpu().numpy())
        return out

    return run


def job_call(model: torch.nn.Module, data: Any, cls: type, kwargs: dict, root: str, batch: int = BATCH
             ) -> Callable[[], Any]:
    count = [0]

    def run() -> Any:  # a fresh store each time (deleted with ``root`` at the end, outside the timing)
        count[0] += 1
        store = os.path.join(root, f"{cls.__name__}-{count[0]}")
        return attribute_dataset(lambda: model, data, cls, kwargs, store=store, batch_size=batch,
                                 show_progress=False, device=str(next(model.parameters()).device))

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_options(ap, default_repeats=5)
    ap.add_argument("--methods", default="", help="comma-separated subset of: " + ", ".join(METHODS))
    ap.add_argument("--examples", type=int, default=N, help=f"dataset size (default {N})")
    ap.add_argument("--batch", type=int, default=BATCH, help=f"examples per batch, both sides (default {BATCH})")
    ap.add_argument("--device", default="cpu", help="where the model runs, for both sides (default cpu)")
    a = ap.parse_args()
    repeats, _ = apply_common_options(a, default_repeats=5)
    wanted = [m for m in METHODS if not a.methods or m.split(" ")[0] in a.methods.split(",")]
    model, data = make_model().to(a.device), make_data(a.examples)
    root = tempfile.mkdtemp(prefix="pellucid-bench-jobs-")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {a.clock} clock; {repeats} repeats; "
          f"{a.examples} images 3x32x32, batches of {a.batch}, on {a.device}", file=sys.stderr)
    rows = []
    try:
        for name in wanted:
            cls, kwargs = METHODS[name]
            calls = {"loop": loop_call(model, data, cls, kwargs, a.batch),
                     "job": job_call(model, data, cls, kwargs, root, a.batch)}
            for fn in calls.values():  # warm-up (and the memory probe of the engine's chunker)
                fn()
            times: dict[str, list[float]] = {"loop": [], "job": []}
            for r in range(repeats):
                order = ["loop", "job"] if r % 2 == 0 else ["job", "loop"]
                for k in order:
                    times[k].append(timed(calls[k]))
                print(f"  {name} repeat {r}: loop {times['loop'][-1] * 1e3:.1f} ms, job {times['job'][-1] * 1e3:.1f} ms",
                      file=sys.stderr, flush=True)
            ratios = [j / lp for j, lp in zip(times["job"], times["loop"])]
            rows.append((name, statistics.median(times["loop"]), statistics.median(times["job"]), statistics.median(ratios)))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("| method | loop ms | job ms | job / loop | overhead |")
    print("|---|---:|---:|---:|---:|")
    for name, lp, j, ratio in rows:
        print(f"| {name} | {lp * 1e3:.1f} | {j * 1e3:.1f} | {ratio:.3f} | {100 * (ratio - 1):+.1f}% |")


if __name__ == "__main__":
    main()
