"""Layer methods against their lower bounds (DESIGN section 6, issue 4).

    python benchmarks/bench_layer.py            # full run
    python benchmarks/bench_layer.py --quick    # smoke run: fewer repeats and batch sizes, no memory column

Cases at default arguments: LayerIntegratedGradients on the transformer's embedding layer (fed token ids, 50
steps), LayerConductance (50 steps) and LayerGradCam on the CNN's second convolution. Bounds (see
:mod:`_harness`): LayerIntegratedGradients needs ``N x 50`` forward+backward evaluations of the model on
embedding-path rows; LayerConductance ``N x 50`` forward+backward on input-path rows; LayerGradCam ``N``
forward+backward on the inputs. The layer methods stop their backward pass at the layer, and the extra
evaluations they make beyond the definition (activations of inputs and baselines, conductance's two path ends)
count against them.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable

import torch
from torch import Tensor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _harness import (  # noqa: E402
    add_common_options, apply_common_options, Case, child_main, forward_backward_runner, run_and_report,
)
from models import token_workload, workload  # noqa: E402

from pellucid.attr import LayerConductance, LayerGradCam, LayerIntegratedGradients  # noqa: E402
from pellucid.core.paths import path_points  # noqa: E402

N_STEPS = 50
METHODS = ("LayerIntegratedGradients", "LayerConductance", "LayerGradCam")


def gl_path(x: Tensor, base: Tensor) -> tuple[Tensor, Tensor]:
    """Rows on the Gauss-Legendre path from ``base`` to ``x`` (example-major) and their example numbers."""
    alphas, _ = path_points(N_STEPS, "gausslegendre")
    n = x.shape[0]
    a = alphas.to(x.dtype).repeat(n).reshape((-1,) + (1,) * (x.dim() - 1))
    xr = x.repeat_interleave(N_STEPS, 0)
    return base + a * (xr - base), torch.arange(n * N_STEPS) // N_STEPS


def middle_block(b: int, total: int) -> Tensor:
    start = max(0, (total - b) // 2)
    return (torch.arange(b) + start) % total


def rows_from(data: Tensor, ex: Tensor, kwargs: dict[str, Tensor]):
    def rows(b: int):
        r = middle_block(b, data.shape[0])
        return data[r].clone(), {k: v[ex[r]].clone() for k, v in kwargs.items()}

    return rows


def setup(model_name: str) -> tuple[dict[str, tuple[Callable[[], Any], dict[str, int], str]], dict]:
    """``(cases, units)`` for one model: ``method -> (call, counts, note)`` and the bound runners."""
    if model_name == "transformer":
        model, ids, target, kw = token_workload()
        n = ids.shape[0]
        inner = model.model
        with torch.no_grad():
            emb, emb0 = inner.embed(ids), inner.embed(torch.zeros_like(ids))
        path, ex = gl_path(emb, emb0.repeat_interleave(N_STEPS, 0))
        lig = LayerIntegratedGradients(model, inner.embedding)
        cases = {"LayerIntegratedGradients": (
            lambda: lig.attribute(ids, target=target, forward_kwargs=kw), {"fwd+bwd@path": n * N_STEPS},
            f"embedding, token ids, {N_STEPS} steps")}
        units = {(model_name, "fwd+bwd@path"): forward_backward_runner(inner, rows_from(path, ex, kw))}
        return cases, units
    w = workload(model_name)
    m, x, t, n = w.model, w.inputs, w.target, w.n
    path, ex = gl_path(x, torch.zeros_like(x[:1]))
    cond, cam = LayerConductance(m, m.conv2), LayerGradCam(m, m.conv2)
    cases = {
        "LayerConductance": (lambda: cond.attribute(x, target=t), {"fwd+bwd@path": n * N_STEPS},
                             f"conv2, {N_STEPS} steps"),
        "LayerGradCam": (lambda: cam.attribute(x, target=t), {"fwd+bwd@x": n}, "conv2"),
    }
    units = {
        (model_name, "fwd+bwd@path"): forward_backward_runner(m, rows_from(path, ex, {})),
        (model_name, "fwd+bwd@x"): forward_backward_runner(m, rows_from(x, torch.arange(n), {})),
    }
    return cases, units


MODEL_OF = {"LayerIntegratedGradients": "transformer", "LayerConductance": "cnn", "LayerGradCam": "cnn"}


def child_call(key: str) -> Callable[[], Any]:
    model_name, method, threads = key.split(":")
    if int(threads):
        torch.set_num_threads(int(threads))
    return setup(model_name)[0][method][0]


def main() -> None:
    if child_main(sys.argv, child_call):
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_options(ap, default_repeats=7)
    ap.add_argument("--methods", default=",".join(METHODS))
    a = ap.parse_args()
    repeats, batch_sizes = apply_common_options(a, default_repeats=7)
    methods = [s for s in a.methods.split(",") if s]
    units: dict = {}
    cases = []
    for model_name in dict.fromkeys(MODEL_OF[m] for m in methods):
        table, u = setup(model_name)
        units.update(u)
        for meth in methods:
            if meth in table:
                call, counts, note = table[meth]
                cases.append(Case(meth, model_name, call, counts, note))
    run_and_report(cases, units, a, repeats, batch_sizes, __file__)


if __name__ == "__main__":
    main()
