"""Evaluation metrics against their lower bounds (DESIGN section 6, issue 5).

    python benchmarks/bench_metrics.py                  # full run
    python benchmarks/bench_metrics.py --quick          # smoke run
    python benchmarks/bench_metrics.py --threads 1 --clock cpu   # stable numbers on a loaded machine

Every model-evaluating metric on the two models of :mod:`models`, with the attributions of InputXGradient given.
The bound is (model evaluations the metric's definition needs) x (best per-row cost of that kind of evaluation,
measured in the same run over batch sizes). Evaluations per example (CNN: 64 superpixels of 4x4 pixels;
transformer: one feature per token, 64 tokens):

* infidelity, ``n_perturb_samples`` S = 10: ``1 + S`` forwards.
* deletion / insertion AUC and monotonicity, one feature per step: ``G + 1`` forwards.
* region perturbation (8x8 patches, 16 regions): 17 forwards. faithfulness correlation, 50 subsets: 51 forwards.
* ROAD, 9 percentages: 9 forwards (the noisy linear imputation is extra work outside the bound).
* comprehensiveness / sufficiency, 5 bins: 6 forwards.
* sensitivity_max / avg_sensitivity / local Lipschitz with Saliency, S = 10: ``1 + S`` forward+backward
  (the explanations). Parameter randomisation with Saliency: ``1 + L`` forward+backward (L layers).

Prints ``method | model | time ms | bound ms | ratio | peak MB``; see :mod:`_harness`.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _harness import (  # noqa: E402
    add_common_options, apply_common_options, Case, child_main, forward_backward_runner, forward_runner, run_and_report,
)
from models import workload  # noqa: E402

import pellucid.metrics as M  # noqa: E402
from pellucid.attr import InputXGradient, Saliency  # noqa: E402

S = 10


def cases_for(model_name: str) -> dict[str, tuple[Callable[[], Any], dict[str, int], str]]:
    """``metric -> (call, {kind: evaluations}, note)``."""
    w = workload(model_name)
    m, x, n = w.model, w.inputs, w.n
    kw = {"target": w.target, "forward_kwargs": w.forward_kwargs}
    attr = InputXGradient(m).attribute(x, **kw)
    if model_name == "cnn":
        mask = M.patch_mask(x.shape, 4)
    else:
        mask = torch.arange(x.shape[1]).reshape(1, -1, 1).expand(1, -1, x.shape[2])
    g = int(mask.max()) + 1
    pf = M.gaussian_perturbation(0.01)
    sal = Saliency(m).attribute
    layers = len(M.default_layers(m))
    out: dict[str, tuple[Callable[[], Any], dict[str, int], str]] = {
        "infidelity": (lambda: M.infidelity(m, pf, x, attr, n_perturb_samples=S, seed=0, **kw),
                       {"fwd": n * (1 + S)}, f"S={S}"),
        "deletion_auc": (lambda: M.deletion_auc(m, x, attr, feature_mask=mask, step_size=1, **kw),
                         {"fwd": n * (g + 1)}, f"{g} features"),
        "insertion_auc": (lambda: M.insertion_auc(m, x, attr, feature_mask=mask, step_size=1,
                                                  baselines="blur" if model_name == "cnn" else 0.0, **kw),
                          {"fwd": n * (g + 1)}, f"{g} features"),
        "monotonicity": (lambda: M.monotonicity(m, x, attr, feature_mask=mask, **kw), {"fwd": n * (g + 1)},
                         f"{g} features"),
        "faithfulness_correlation": (lambda: M.faithfulness_correlation(m, x, attr, feature_mask=mask, seed=0,
                                                                        **kw), {"fwd": n * 51}, "50 subsets"),
        "sensitivity_max": (lambda: M.sensitivity_max(sal, x, n_perturb_samples=S, seed=0, **kw),
                            {"fwd+bwd": n * (1 + S)}, f"Saliency, S={S}"),
        "avg_sensitivity": (lambda: M.avg_sensitivity(sal, x, n_perturb_samples=S, seed=0, **kw),
                            {"fwd+bwd": n * (1 + S)}, f"Saliency, S={S}"),
        "local_lipschitz": (lambda: M.local_lipschitz_estimate(sal, x, n_perturb_samples=S, seed=0, **kw),
                            {"fwd+bwd": n * (1 + S)}, f"Saliency, S={S}"),
        "parameter_randomisation": (lambda: M.model_parameter_randomisation(m, Saliency, x, w.target, seed=0,
                                                                            similarity="spearman",
                                                                            attribute_kwargs={"forward_kwargs": w.forward_kwargs}),
                                    {"fwd+bwd": n * (1 + layers)}, f"Saliency, {layers} layers"),
    }
    if model_name == "cnn":
        out["region_perturbation"] = (lambda: M.region_perturbation(m, x, attr, seed=0, **kw), {"fwd": n * 17},
                                      "8x8 patches")
        out["road"] = (lambda: M.road(m, x, attr, seed=0, **kw), {"fwd": n * 9}, "9 percentages")
    else:
        tok_attr = attr.sum(-1)
        out["comprehensiveness"] = (lambda: M.comprehensiveness(m, x, tok_attr, **kw), {"fwd": n * 6}, "5 bins")
        out["sufficiency"] = (lambda: M.sufficiency(m, x, tok_attr, **kw), {"fwd": n * 6}, "5 bins")
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
    add_common_options(ap, default_repeats=5)
    ap.add_argument("--models", default="cnn,transformer")
    ap.add_argument("--metrics", default="", help="comma-separated subset (default: all)")
    a = ap.parse_args()
    repeats, batch_sizes = apply_common_options(a, default_repeats=5)
    units, cases = {}, []
    wanted = {s for s in a.metrics.split(",") if s}
    for name in [s for s in a.models.split(",") if s]:
        w = workload(name)
        units[(name, "fwd")] = forward_runner(w.model, w.rows)
        units[(name, "fwd+bwd")] = forward_backward_runner(w.model, w.rows)
        for metric, (call, counts, note) in cases_for(name).items():
            if not wanted or metric in wanted:
                cases.append(Case(metric, name, call, counts, note))
    run_and_report(cases, units, a, repeats, batch_sizes, __file__)


if __name__ == "__main__":
    main()
