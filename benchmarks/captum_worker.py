"""The Captum side of the side-by-side benchmark (run by :mod:`_compare` in an interpreter where Captum is installed).

Captum is never imported into pellucid's process: the driver starts ``python captum_worker.py`` and talks to it
with the protocol of :mod:`_worker`. Each case is built as in ``bench_*.py`` (same models, seeds, inputs,
targets, masks and settings), at Captum's defaults otherwise. Only torch, Captum and the torch-only modules of
this folder (:mod:`models`, :mod:`_harness`, :mod:`_worker`) are imported.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Callable

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _worker import serve  # noqa: E402
from models import (  # noqa: E402
    baseline_distribution, occlusion_windows, perturbation_masks, token_workload, workload,
)

N_STEPS, N_SAMPLES = 50, 5  # IG / conductance steps; GradientShap and NoiseTunnel samples
PERTURBATION_SAMPLES = 25  # ShapleyValueSampling, Lime, KernelShap
# cases not timed on the Captum side, with the reason (reported by the driver)
SKIPPED = {"ShapleyValues": "Captum's ShapleyValues walks all 8! = 40320 feature orders (322,560 model calls per "
                            "example batch), minutes per call; pellucid evaluates the 2^8 coalitions once"}


class UnsharedCNN(torch.nn.Module):
    """The benchmark CNN (same parameters, same arithmetic) with one ReLU and max-pool module per use: Captum's
    DeepLift hooks modules and refuses a module used more than once (the benchmark CNN reuses ``relu``/``pool``)."""

    def __init__(self, cnn: torch.nn.Module):
        super().__init__()
        self.conv1, self.conv2, self.fc1, self.fc2 = cnn.conv1, cnn.conv2, cnn.fc1, cnn.fc2
        self.relu1, self.relu2, self.relu3 = torch.nn.ReLU(), torch.nn.ReLU(), torch.nn.ReLU()
        self.pool1, self.pool2 = torch.nn.MaxPool2d(2), torch.nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        return self.fc2(self.relu3(self.fc1(x.flatten(1))))


def build(model_name: str, method: str) -> Callable[[], Any]:
    """The Captum call of one benchmark case (``KeyError`` if Captum has no such case)."""
    import captum.attr as ca

    if method == "LayerIntegratedGradients":
        if model_name != "transformer":
            raise KeyError(method)
        model, ids, target, kw = token_workload()
        lig = ca.LayerIntegratedGradients(model, model.model.embedding)
        return lambda: lig.attribute(ids, target=target, additional_forward_args=(kw["attention_mask"],))
    w = workload(model_name)
    m, x, t = w.model, w.inputs, w.target
    unshared = UnsharedCNN(m).eval() if model_name == "cnn" else m  # for Captum's DeepLift (see UnsharedCNN)
    extra = (w.forward_kwargs["attention_mask"],) if w.forward_kwargs else None
    common = {"target": t, "additional_forward_args": extra}
    dist = baseline_distribution(x)
    fine, coarse = perturbation_masks(model_name, x)
    shapes, strides, _, _ = occlusion_windows(model_name, x)
    cases: dict[str, Callable[[], Callable[[], Any]]] = {
        "Saliency": lambda: (lambda: ca.Saliency(m).attribute(x, **common)),
        "InputXGradient": lambda: (lambda: ca.InputXGradient(m).attribute(x, **common)),
        "IntegratedGradients": lambda: (lambda: ca.IntegratedGradients(m).attribute(x, n_steps=N_STEPS, **common)),
        "GradientShap": lambda: (lambda: ca.GradientShap(m).attribute(x, baselines=dist, n_samples=N_SAMPLES,
                                                                      **common)),
        "DeepLift": lambda: (lambda: ca.DeepLift(unshared).attribute(x, **common)),
        "DeepLiftShap": lambda: (lambda: ca.DeepLiftShap(unshared).attribute(x, baselines=dist, **common)),
        "GuidedBackprop": lambda: (lambda: ca.GuidedBackprop(m).attribute(x, **common)),
        "Deconvolution": lambda: (lambda: ca.Deconvolution(m).attribute(x, **common)),
        "NoiseTunnel": lambda: (lambda: ca.NoiseTunnel(ca.Saliency(m)).attribute(
            x, nt_type="smoothgrad", nt_samples=N_SAMPLES, stdevs=1.0, **common)),
        "FeatureAblation": lambda: (lambda: ca.FeatureAblation(m).attribute(x, feature_mask=fine, **common)),
        "Occlusion": lambda: (lambda: ca.Occlusion(m).attribute(x, shapes, strides, **common)),
        "FeaturePermutation": lambda: (lambda: ca.FeaturePermutation(m).attribute(x, feature_mask=fine, **common)),
        "ShapleyValueSampling": lambda: (lambda: ca.ShapleyValueSampling(m).attribute(
            x, feature_mask=fine, n_samples=PERTURBATION_SAMPLES, **common)),
        "ShapleyValues": lambda: (lambda: ca.ShapleyValues(m).attribute(x, feature_mask=coarse, **common)),
        "Lime": lambda: (lambda: ca.Lime(m).attribute(x, feature_mask=fine, n_samples=PERTURBATION_SAMPLES,
                                                      **common)),
        "KernelShap": lambda: (lambda: ca.KernelShap(m).attribute(x, feature_mask=fine,
                                                                  n_samples=PERTURBATION_SAMPLES, **common)),
    }
    if model_name == "cnn":
        cases["LayerGradCam"] = lambda: (lambda: ca.LayerGradCam(m, m.conv2).attribute(x, **common))
        cases["LayerConductance"] = lambda: (lambda: ca.LayerConductance(m, m.conv2).attribute(
            x, n_steps=N_STEPS, **common))
    return cases[method]()


if __name__ == "__main__":
    serve(build, SKIPPED)
