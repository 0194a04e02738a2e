"""Localisation: does the attribution fall on a ground-truth region? No model evaluations.

``masks`` are boolean (or 0/1) tensors broadcastable to the attributions (e.g. ``(N, 1, H, W)`` for ``(N, C, H, W)``
attributions). When the mask has one channel and the attributions several, attributions are summed over channels
first (pixel-level localisation). Every function returns ``(N,)`` (float64).
"""
from __future__ import annotations

import torch
from torch import Tensor

from ._base import metric


def _prepare(attributions, masks) -> tuple[Tensor, Tensor]:
    if isinstance(attributions, (tuple, list)):
        if not isinstance(masks, (tuple, list)) or len(masks) != len(attributions):
            raise ValueError("with a tuple of attributions give a tuple of masks, one per input")
        pairs = [_prepare(a, m) for a, m in zip(attributions, masks)]
        return torch.cat([p[0] for p in pairs], 1), torch.cat([p[1] for p in pairs], 1)
    if not isinstance(attributions, Tensor) or not isinstance(masks, Tensor):
        raise TypeError(f"attributions and masks must be tensors; received {type(attributions).__name__} and {type(masks).__name__}")
    a = attributions.detach().double()
    m = masks.detach().to(a.device)
    if m.dtype != torch.bool:
        m = m != 0
    if m.dim() == a.dim() and a.dim() >= 3 and m.shape[1] == 1 and a.shape[1] > 1:
        a = a.sum(1, keepdim=True)
    try:
        m = m.expand_as(a)
    except RuntimeError:
        raise ValueError(f"masks of shape {tuple(masks.shape)} do not broadcast to attributions of shape {tuple(a.shape)}") from None
    n = a.shape[0]
    return a.reshape(n, -1), m.reshape(n, -1)


@metric("pointing_game", True, "localisation", needs=("attributions", "masks"),
        paper="Zhang et al., 2018, 'Top-down Neural Attention by Excitation Backprop', arXiv:1608.00507")
def pointing_game(attributions, masks) -> Tensor:
    """1 where the feature with the largest attribution lies in the mask, else 0 (ties: any maximum counts)."""
    a, m = _prepare(attributions, masks)
    top = a == a.amax(1, keepdim=True)
    return (top & m).any(1).double()


@metric("relevance_mass_accuracy", True, "localisation", needs=("attributions", "masks"),
        paper="Arras, Osman & Samek, 2022, 'CLEVR-XAI: A benchmark dataset for the ground truth evaluation of neural network explanations', arXiv:2003.07258")
def relevance_mass_accuracy(attributions, masks) -> Tensor:
    """Positive relevance inside the mask over all positive relevance: ``sum_{mask} a+ / sum a+`` (0 if none)."""
    a, m = _prepare(attributions, masks)
    pos = a.clamp_min(0)
    total = pos.sum(1)
    return torch.where(total > 0, (pos * m).sum(1) / total.clamp_min(1e-300), torch.zeros_like(total))


@metric("relevance_rank_accuracy", True, "localisation", needs=("attributions", "masks"),
        paper="Arras, Osman & Samek, 2022, arXiv:2003.07258")
def relevance_rank_accuracy(attributions, masks) -> Tensor:
    """Fraction of the K highest-relevance features that lie in the mask, K = the mask's size."""
    a, m = _prepare(attributions, masks)
    k = m.sum(1)
    order = a.argsort(dim=1, descending=True, stable=True)
    in_mask = m.gather(1, order)
    pos = torch.arange(a.shape[1], device=a.device).expand_as(a)
    hits = (in_mask & (pos < k.unsqueeze(1))).sum(1).double()
    return torch.where(k > 0, hits / k.clamp_min(1).double(), torch.zeros_like(hits))


@metric("top_k_intersection", True, "localisation", needs=("attributions", "masks"),
        paper="Theiner, Mueller-Budack & Ewerth, 2022, 'Interpretable Semantic Photo Geolocation', arXiv:2104.14995")
def top_k_intersection(attributions, masks, k: int | float = 0.1) -> Tensor:
    """Fraction of the ``k`` highest-attribution features (a count, or a fraction of features if a float in (0,1))
    that lie in the mask."""
    a, m = _prepare(attributions, masks)
    kk = max(1, int(round(k * a.shape[1]))) if isinstance(k, float) and 0 < k < 1 else k
    if isinstance(kk, bool) or not isinstance(kk, int) or not 1 <= kk <= a.shape[1]:
        raise ValueError(f"k must be an int in [1, {a.shape[1]}] or a fraction in (0, 1); received {k!r}")
    idx = a.topk(kk, dim=1).indices
    return m.gather(1, idx).sum(1).double() / kk
