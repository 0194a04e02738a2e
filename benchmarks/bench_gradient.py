"""Gradient attribution methods against their lower bounds (DESIGN section 6, issue 2).

    python benchmarks/bench_gradient.py            # full run (a few minutes on 2 CPU cores)
    python benchmarks/bench_gradient.py --quick    # smoke run: fewer repeats and batch sizes, no memory column

Prints a markdown table ``method | model | time ms | bound ms | ratio | peak MB`` for every method at default
arguments on the two models of :mod:`models`, then IG (50 steps) peak memory at defaults against an unchunked
run (``batch_size`` = all rows). See :mod:`_harness` for how bounds, ratios and peak memory are measured.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from typing import Any, Callable

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _harness import (  # noqa: E402
    add_common_options, apply_common_options, Case, child_main, forward_backward_runner, forward_runner,
    peak_memory_mb, run_and_report, timed,
)
from models import N_BASELINES, baseline_distribution, workload  # noqa: E402

from pellucid.core.paths import path_points  # noqa: E402
from pellucid.attr import (  # noqa: E402
    Deconvolution, DeepLift, DeepLiftShap, GradientShap, GuidedBackprop, InputXGradient, IntegratedGradients,
    NoiseTunnel, Saliency, SplitIntegratedGradients,
)

N_STEPS = 50  # IntegratedGradients / SplitIntegratedGradients default
N_SAMPLES = 5  # GradientShap and NoiseTunnel default
METHODS = ("Saliency", "InputXGradient", "IntegratedGradients", "SplitIntegratedGradients", "GradientShap",
           "DeepLift", "DeepLiftShap", "GuidedBackprop", "Deconvolution", "NoiseTunnel")


def cases_for(model_name: str) -> dict[str, tuple[Callable[[], Any], dict[str, int], str]]:
    """``method -> (call, counts, note)`` for one model. ``counts`` are the evaluations the method needs by
    definition, keyed ``"fwd+bwd@rows"`` / ``"fwd@rows"`` by the kind of rows they run on (see :func:`units_for`)."""
    w = workload(model_name)
    m, x, t, kw, n = w.model, w.inputs, w.target, w.forward_kwargs, w.n
    dist = baseline_distribution(x)
    common = {"target": t, "forward_kwargs": kw}
    return {
        "Saliency": (lambda: Saliency(m).attribute(x, **common), {"fwd+bwd@x": n}, ""),
        "InputXGradient": (lambda: InputXGradient(m).attribute(x, **common), {"fwd+bwd@x": n}, ""),
        "IntegratedGradients": (lambda: IntegratedGradients(m).attribute(x, **common),
                                {"fwd+bwd@gl": n * N_STEPS}, f"{N_STEPS} steps"),
        "SplitIntegratedGradients": (lambda: SplitIntegratedGradients(m).attribute(x, **common),
                                     {"fwd+bwd@right": n * N_STEPS, "fwd@zero": n}, f"{N_STEPS} steps"),
        "GradientShap": (lambda: GradientShap(m).attribute(x, baselines=dist, seed=0, **common),
                         {"fwd+bwd@gshap": n * N_SAMPLES}, f"{N_SAMPLES} samples"),
        "DeepLift": (lambda: DeepLift(m).attribute(x, **common), {"fwd+bwd@x": n, "fwd@zero": n}, ""),
        "DeepLiftShap": (lambda: DeepLiftShap(m).attribute(x, baselines=dist, **common),
                         {"fwd+bwd@x": n * N_BASELINES, "fwd@dist": n * N_BASELINES}, f"{N_BASELINES} baselines"),
        "GuidedBackprop": (lambda: GuidedBackprop(m).attribute(x, **common), {"fwd+bwd@x": n}, ""),
        "Deconvolution": (lambda: Deconvolution(m).attribute(x, **common), {"fwd+bwd@x": n}, ""),
        "NoiseTunnel": (lambda: NoiseTunnel(Saliency(m)).attribute(x, seed=0, **common),
                        {"fwd+bwd@noisy": n * N_SAMPLES}, f"SmoothGrad, {N_SAMPLES} samples"),
        # memory only: IG with every row in one model call (Captum's default behaviour)
        "IG-unchunked": (lambda: IntegratedGradients(m).attribute(x, batch_size=n * N_STEPS, **common),
                         {"fwd+bwd@gl": n * N_STEPS}, "batch_size = all rows"),
    }


def middle_block(b: int, total: int) -> torch.Tensor:
    """``b`` consecutive row numbers from the middle of ``total`` rows (cycling when ``b > total``). Consecutive,
    like the methods' chunks: on the CNN a chunk of consecutive path rows runs ~20% faster than the same number
    of rows spread over the path."""
    start = max(0, (total - b) // 2)
    return (torch.arange(b) + start) % total


def units_for(model_name: str) -> dict[tuple[str, str], Callable[[int], Callable[[], Any]]]:
    """Bound runners on the rows the methods evaluate, since the cost of a model can depend on the data (max
    pooling and ReLU on rows near a zero baseline are cheaper). Kinds of rows: ``x`` the inputs, ``gl`` and
    ``right`` the IG paths (Gauss-Legendre, right Riemann, 50 steps, zero baseline), ``gshap`` GradientShap's
    rows, ``noisy`` SmoothGrad's rows, ``zero`` the zero baseline, ``dist`` the baseline distribution. ``b`` rows
    are consecutive rows from the middle of the method's rows (examples x steps/samples, example-major)."""
    w = workload(model_name)
    x, n = w.inputs, w.n
    dist = baseline_distribution(x)
    g = torch.Generator().manual_seed(2)

    def path(method: str) -> tuple[torch.Tensor, torch.Tensor]:
        alphas, _ = path_points(N_STEPS, method)
        a = alphas.to(x.dtype).repeat(n).reshape((-1,) + (1,) * (x.dim() - 1))
        return x.repeat_interleave(N_STEPS, 0) * a, torch.arange(n * N_STEPS) // N_STEPS

    ex_s = torch.arange(n * N_SAMPLES) // N_SAMPLES
    pick = torch.randint(0, N_BASELINES, (n * N_SAMPLES,), generator=g)
    alpha = torch.rand(n * N_SAMPLES, generator=g).reshape((-1,) + (1,) * (x.dim() - 1))
    base = dist[pick]
    full = {
        "x": (x, torch.arange(n)),
        "gl": path("gausslegendre"),
        "right": path("riemann_right"),
        "gshap": (base + alpha * (x[ex_s] - base), ex_s),
        "noisy": (x[ex_s] + torch.randn(x[ex_s].shape, generator=g), ex_s),
        "zero": (torch.zeros_like(x), torch.arange(n)),
        "dist": (dist[torch.arange(n * N_BASELINES) % N_BASELINES], torch.arange(n * N_BASELINES) // N_BASELINES),
    }

    def rows_of(kind: str):
        data, ex = full[kind]

        def rows(b: int):
            r = middle_block(b, data.shape[0])
            return data[r].clone(), {k: v[ex[r]].clone() for k, v in w.forward_kwargs.items()}

        return rows

    units = {}
    for kind in ("x", "gl", "right", "gshap", "noisy"):
        units[(model_name, f"fwd+bwd@{kind}")] = forward_backward_runner(w.model, rows_of(kind))
    for kind in ("zero", "dist"):
        units[(model_name, f"fwd@{kind}")] = forward_runner(w.model, rows_of(kind))
    return units


def batch_floor(results, units, models, repeats: int = 7) -> dict[str, tuple[int, float, float]]:
    """``model -> (N, median time of a fwd+bwd on the N input rows, Saliency's bound)``."""
    out = {}
    for name in models:
        sal = next((r for r in results if r.model == name and r.method == "Saliency"), None)
        if sal is None:
            continue
        n = workload(name).n
        run = units[(name, "fwd+bwd@x")](n)
        run()
        out[name] = (n, statistics.median(timed(run) for _ in range(repeats)), sal.bound_s)
    return out


def child_call(key: str) -> Callable[[], Any]:
    model_name, method, threads = key.split(":")
    if int(threads):
        torch.set_num_threads(int(threads))
    return cases_for(model_name)[method][0]


def main() -> None:
    if child_main(sys.argv, child_call):
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_options(ap, default_repeats=7)
    ap.add_argument("--models", default="cnn,transformer")
    ap.add_argument("--methods", default=",".join(METHODS))
    a = ap.parse_args()
    repeats, batch_sizes = apply_common_options(a, default_repeats=7)
    models = [s for s in a.models.split(",") if s]
    methods = [s for s in a.methods.split(",") if s]

    units: dict = {}
    cases = []
    for name in models:
        units.update(units_for(name))
        table = cases_for(name)
        for meth in methods:
            call, counts, note = table[meth]
            cases.append(Case(meth, name, call, counts, note))
    results = run_and_report(cases, units, a, repeats, batch_sizes, __file__)
    memory = not (a.quick or a.no_memory)
    script = os.path.abspath(__file__)
    floor = batch_floor(results, units, models)
    if floor:
        print("\nFloor from batch size alone: a forward+backward of the N input rows in one call, over N x the best "
              "per-row cost (what Saliency-like methods, which have only N rows, can reach at best)\n")
        print("| model | N | N rows ms | bound ms | floor ratio |\n|---|---:|---:|---:|---:|")
        for name, (n, t, b) in floor.items():
            print(f"| {name} | {n} | {t * 1e3:.1f} | {b * 1e3:.1f} | {t / b:.2f} |")
    if memory and "IntegratedGradients" in methods:
        print("\nIG (50 steps) peak memory, default chunking vs batch_size = all rows (target: ratio <= 0.25)\n")
        print("| model | default MB | unchunked MB | ratio |\n|---|---:|---:|---:|")
        for name in models:
            ig = next(r.peak_mb for r in results if r.model == name and r.method == "IntegratedGradients")
            full = peak_memory_mb(script, f"{name}:IG-unchunked:{a.threads or 0}")
            if ig is not None and full:
                print(f"| {name} | {ig:.1f} | {full:.1f} | {ig / full:.2f} |")


if __name__ == "__main__":
    main()
