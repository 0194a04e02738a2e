"""Complexity of an attribution: how concentrated it is. No model evaluations.

All take attributions (a tensor or a tuple, concatenated per example) and return ``(N,)`` (float64).
"""
from __future__ import annotations

import torch
from torch import Tensor

from ._base import flat, metric


@metric("sparseness", True, "complexity", needs=("attributions",),
        paper="Chalasani et al., 2020, 'Concise Explanations of Neural Networks using Adversarial Training', arXiv:1810.06583")
def sparseness(attributions) -> Tensor:
    """Gini index of ``|a|``: ``sum_i (2i - F - 1) |a|_(i) / (F sum|a|)`` over ascending ``|a|_(i)``, i = 1..F.

    0 for a uniform attribution, ``1 - 1/F`` for one non-zero feature. All-zero attributions give 0.
    """
    a = flat(attributions).double().abs()
    s, _ = torch.sort(a, dim=1)
    n_feat = a.shape[1]
    i = torch.arange(1, n_feat + 1, dtype=torch.float64, device=a.device)
    total = s.sum(1)
    g = ((2 * i - n_feat - 1) * s).sum(1) / (n_feat * total.clamp_min(1e-300))
    return torch.where(total > 0, g, torch.zeros_like(g))


@metric("complexity", False, "complexity", needs=("attributions",),
        paper="Bhatt, Weller & Moura, 2020, 'Evaluating and Aggregating Feature-based Model Explanations', arXiv:2005.00631")
def complexity(attributions) -> Tensor:
    """Entropy of the fractional contributions ``p_i = |a_i| / sum|a|``: ``-sum p_i log p_i`` (natural log).

    0 for one non-zero feature, ``log F`` for a uniform attribution (and for all zeros, taken as uniform).
    """
    a = flat(attributions).double().abs()
    total = a.sum(1, keepdim=True)
    p = torch.where(total > 0, a / total.clamp_min(1e-300), torch.full_like(a, 1.0 / a.shape[1]))
    return -(torch.where(p > 0, p * p.clamp_min(1e-300).log(), torch.zeros_like(p))).sum(1)


@metric("effective_complexity", False, "complexity", needs=("attributions",),
        paper="Nguyen & Martinez, 2020, 'On Quantitative Aspects of Model Interpretability', arXiv:2007.07584")
def effective_complexity(attributions, eps: float = 1e-5, normalise: bool = False) -> Tensor:
    """Number of features with ``|a_i| > eps`` (``normalise=True``: ``|a|`` divided by its per-example maximum first)."""
    a = flat(attributions).double().abs()
    if normalise:
        a = a / a.amax(1, keepdim=True).clamp_min(1e-300)
    return (a > eps).sum(1).double()
