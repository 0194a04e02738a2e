"""Kernel SHAP (Lundberg & Lee, 2017, "A Unified Approach to Interpreting Model Predictions", arXiv:1705.07874).

Shapley values as the solution of a weighted linear regression over coalitions ``z`` of the ``G`` feature groups
with the Shapley kernel ``pi(z) = (G - 1) / (C(G, |z|) |z| (G - |z|))``. Coalitions are *sampled* from the kernel
(size ``k`` with probability proportional to ``1 / (k (G - k))``, then a uniform subset of that size) and weighted
equally; the efficiency constraint ``sum(attr) = F(x) - F(baseline)`` is imposed exactly (the empty and full
coalitions have infinite kernel weight), so the estimate converges to the exact Shapley values as ``n_samples``
grows. When ``n_samples`` covers all ``2^G - 2`` proper coalitions they are enumerated with their exact weights and
the result *is* the Shapley value.

``antithetic=True`` (default) draws coalitions in pairs ``z, 1 - z`` (paired sampling; Covert & Lee, 2021,
"Improving KernelSHAP", arXiv:2012.01536), which lowers the variance at equal cost; each pair then enters the
regression as one row (:func:`merge_complement_pairs`: the same constrained minimiser from half the rows). Rows per
call: ``N x (2 + min(n_samples, 2^G - 2))``.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import torch
from torch import Tensor

from ..core.errors import check_generator, check_positive_int
from ..core.inputs import BaselineType, TensorOrTuple
from ..core.perturb import MaskType
from ..core.targets import TargetType
from ._perturbation import PerturbationAttribution
from .lime import coalition_scores, coefficients_result
from .surrogate import efficient_least_squares


def shapley_kernel_samples(n: int, n_samples: int, g: int, generator: torch.Generator | None, antithetic: bool) -> Tensor:
    """``(n, n_samples, g)`` bool coalitions drawn from the Shapley kernel (sizes 1 .. g-1); with ``antithetic``
    consecutive pairs are complements."""
    draws = (n_samples + 1) // 2 if antithetic else n_samples
    k = torch.arange(1, g, dtype=torch.float64)
    probs = 1.0 / (k * (g - k))
    sizes = torch.multinomial(probs.expand(n * draws, g - 1), 1, replacement=True, generator=generator) + 1
    # the ``size`` groups of smallest rank under a uniform random order: position order[j] has rank j
    order = torch.rand((n * draws, g), generator=generator).argsort(1)
    z = torch.empty((n * draws, g), dtype=torch.bool).scatter_(1, order, torch.arange(g) < sizes).reshape(n, draws, g)
    if antithetic:
        z = torch.stack([z, ~z], dim=2).reshape(n, 2 * draws, g)[:, :n_samples]
    return z


def merge_complement_pairs(z: Tensor, y: Tensor, w: Tensor, total: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """One regression row per complementary pair: where samples ``2i`` and ``2i + 1`` are coalitions ``z`` and
    ``1 - z`` of equal weight ``w`` (paired sampling), their terms of the constrained objective
    ``sum_s w_s (y_s - z_s . b)^2`` with ``sum(b) = total`` equal ``2 w (m - z . b)^2 + const`` with
    ``m = (y_2i + total - y_2i+1) / 2`` (since ``(1 - z) . b = total - z . b``), so the pair is replaced by that one
    row: the same minimiser (and minimum-norm solution) from half the rows. ``z (N, S, G)`` bool, ``y (N, S, K)``,
    ``w (N, S)``, ``total (N, K)``; an unpaired last sample (odd ``S``) is kept as it is. Returns the inputs unchanged
    if the samples are not such pairs."""
    full = z.shape[1] // 2
    first, second = z[:, 0 : 2 * full : 2], z[:, 1 : 2 * full : 2]
    w1, w2 = w[:, 0 : 2 * full : 2], w[:, 1 : 2 * full : 2]
    if full == 0 or not torch.equal(second, ~first) or not torch.equal(w1, w2):
        return z, y, w
    merged = (y[:, 0 : 2 * full : 2] + total.unsqueeze(1) - y[:, 1 : 2 * full : 2]) / 2
    if z.shape[1] % 2:
        return (torch.cat([first, z[:, -1:]], 1), torch.cat([merged, y[:, -1:]], 1),
                torch.cat([2 * w1, w[:, -1:]], 1))
    return first, merged, 2 * w1


def all_coalitions(g: int) -> tuple[Tensor, Tensor]:
    """All ``2^g - 2`` proper non-empty coalitions ``(2^g - 2, g)`` bool and their Shapley kernel weights."""
    codes = torch.arange(1, (1 << g) - 1)
    z = (codes.unsqueeze(1) >> torch.arange(g)) & 1 != 0
    size = z.sum(1)
    w = torch.tensor([(g - 1) / (math.comb(g, int(s)) * int(s) * (g - int(s))) for s in size], dtype=torch.float64)
    return z, w


class KernelShap(PerturbationAttribution):
    """Kernel SHAP with the efficiency constraint imposed exactly and batched, torch-native regression.

    ``attribute(inputs, baselines=None, target=None, additional_forward_args=None, feature_mask=None, n_samples=25,
    perturbations_per_eval=None, return_input_shape=True, show_progress=False, *, antithetic=True,
    generator=None, seed=None, forward_kwargs=None, batch_size=None)`` returns the inputs' shapes (or ``(N, G)``
    with ``return_input_shape=False``; ``(N, C, ...)`` for every output with ``target=None`` on ``(N, C)``).
    The attributions of each example sum to ``F(x) - F(baseline)``. ``multiplies_by_inputs`` is False (as Captum).
    A model whose output aggregates the batch is handled as in Captum (coalitions shared by the batch, applied to
    all examples at once; result ``(1, ...)``, or ``(K, ...)`` for a ``(K,)`` batch output).
    """

    _multiply_by_inputs = False

    def attribute(
        self,
        inputs: TensorOrTuple,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        feature_mask: MaskType = None,
        n_samples: int = 25,
        perturbations_per_eval: int | None = None,
        return_input_shape: bool = True,
        show_progress: bool = False,
        *,
        antithetic: bool = True,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        forward_kwargs: Mapping[str, Any] | None = None,
        batch_size: int | None = None,
    ):
        check_positive_int(n_samples, "n_samples")
        gen = check_generator(generator, seed)
        call, bases, mask = self.prepare_perturbation(
            inputs, baselines, target, additional_forward_args, forward_kwargs, feature_mask, batch_size,
            perturbations_per_eval, show_progress,
        )
        g = mask.n_groups
        weights_of: dict[int, Tensor] = {}

        def draw(n: int) -> Tensor:
            if g < 2:
                inner = torch.zeros((n, 0, g), dtype=torch.bool)
                weights = torch.ones((n, 0), dtype=torch.float64)
            elif n_samples >= (1 << g) - 2:
                z_all, w_all = all_coalitions(g)
                inner = z_all.unsqueeze(0).expand(n, -1, -1)
                weights = w_all.unsqueeze(0).expand(n, -1)
            else:
                inner = shapley_kernel_samples(n, n_samples, g, gen, antithetic)
                weights = torch.ones(inner.shape[:2], dtype=torch.float64)
            weights_of[n] = weights
            ends = torch.stack([torch.ones(n, g, dtype=torch.bool), torch.zeros(n, g, dtype=torch.bool)], dim=1)
            return torch.cat([ends, inner], dim=1)  # rows 0 and 1: the input and the baseline

        scores, z, _ = coalition_scores(call, bases, mask, draw, "kernel-shap")
        v = scores.values  # (N, P, K); (1, P, K) in aggregate mode
        f_x, f_b = v[:, 0], v[:, 1]
        inner, y, w, total = z[:, 2:], v[:, 2:] - f_b.unsqueeze(1), weights_of[z.shape[0]].to(v.device), f_x - f_b
        if antithetic and 2 <= g and n_samples < (1 << g) - 2:
            inner, y, w = merge_complement_pairs(inner, y.double(), w, total.double())
        coef = efficient_least_squares(inner.double(), y, w, total).to(v.dtype)
        return coefficients_result(coef, mask, scores, return_input_shape, call.was_tuple)
