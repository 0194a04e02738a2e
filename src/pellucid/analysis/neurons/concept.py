"""Ranking neurons for one binary concept: average precision and intersection over union.

* **Average precision** (NeuroX's ``iou_probe``, after Antverg & Belinkov, 2022): each neuron's activations are
  scores for the concept's rows (after zeroing activations with ``|a| < threshold``); the neuron's score is the
  average precision ``AP = sum_n (R_n - R_{n-1}) P_n`` over decreasing thresholds (tied scores share one threshold:
  the definition of scikit-learn's ``average_precision_score``).
* **IoU** (Bau et al., 2017, "Network dissection", CVPR; Mu & Andreas, 2020, "Compositional explanations of
  neurons", NeurIPS): the neuron *fires* on the rows where its activation exceeds its ``quantile`` (default the top
  0.5%, as in network dissection) or a given threshold; its score is ``|fires & concept| / |fires | concept|``.

``direction="both"`` also scores the negated activations and keeps the better, for neurons that encode a concept by
switching off.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .probe import values_of


def _binary(y: Any, n: int) -> Tensor:
    t = torch.as_tensor(y.detach().cpu() if isinstance(y, Tensor) else y).reshape(-1)
    if t.dtype.is_floating_point:
        if not bool(((t == 0) | (t == 1)).all()):
            raise ValueError("y must be a binary concept (0/1 or booleans); received other values")
    elif t.dtype != torch.bool and not bool(((t == 0) | (t == 1)).all()):
        raise ValueError("y must be a binary concept (0/1 or booleans); received other values")
    y = t.bool()
    if y.shape[0] != n:
        raise ValueError(f"y has {y.shape[0]} labels but X has {n} rows; give one label per row")
    if not y.any() or y.all():
        raise ValueError("y must contain both concept rows (1) and other rows (0)")
    return y


def _check_direction(direction: str) -> None:
    if direction not in ("positive", "both"):
        raise ValueError(f"direction must be 'positive' or 'both'; received {direction!r}")


def average_precision(scores: Tensor, y: Tensor) -> Tensor:
    """Average precision of each column of ``scores`` ``(N, D)`` for the binary labels ``y`` ``(N,)``: ``(D,)``.
    Tied scores form one threshold (precision taken at the end of the tie)."""
    n = scores.shape[0]
    s, order = torch.sort(scores.double(), dim=0, descending=True, stable=True)
    pos = y.double()[order]  # (N, D)
    tp = pos.cumsum(0)
    idx = torch.arange(n, dtype=torch.float64)[:, None].expand_as(s)
    is_end = torch.ones_like(s, dtype=torch.bool)
    is_end[:-1] = s[:-1] != s[1:]
    # the end of each position's tie run: reverse cumulative minimum of the end indices
    end_idx = torch.where(is_end, idx, torch.full_like(idx, float(n)))
    end = torch.flip(torch.cummin(torch.flip(end_idx, [0]), 0).values, [0]).long()
    prec_at_end = torch.gather(tp, 0, end) / (end + 1).double()
    return (pos * prec_at_end).sum(0) / pos.sum(0).clamp_min(1)


def ap_scores(X: Any, y: Any, threshold: float = 0.0, direction: str = "positive") -> Tensor:
    """Average-precision score of every neuron for the binary concept ``y`` ``(D,)``."""
    _check_direction(direction)
    X = values_of(X).double()
    yb = _binary(y, X.shape[0])
    X = torch.where(X.abs() < threshold, torch.zeros_like(X), X)
    score = average_precision(X, yb)
    if direction == "both":
        score = torch.maximum(score, average_precision(-X, yb))
    return score


def iou_scores(X: Any, y: Any, quantile: float = 0.995, threshold: float | None = None,
               direction: str = "positive") -> Tensor:
    """IoU of each neuron's firing rows (activation above its ``quantile``, or above ``threshold`` if given) with
    the concept rows ``(D,)``."""
    _check_direction(direction)
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must be in (0, 1); received {quantile!r}")
    X = values_of(X).double()
    yb = _binary(y, X.shape[0])

    def iou(A: Tensor) -> Tensor:
        t = torch.quantile(A, quantile, dim=0, keepdim=True) if threshold is None else torch.tensor(float(threshold))
        fires = A > t
        inter = (fires & yb[:, None]).sum(0).double()
        union = (fires | yb[:, None]).sum(0).double()
        return inter / union

    score = iou(X)
    if direction == "both":
        score = torch.maximum(score, iou(-X))
    return score


def concept_ranking(X: Any, y: Any, method: str = "ap", **kwargs: Any) -> Tensor:
    """Neurons ordered by their score for the binary concept ``y`` (best first; ties by index).

    ``method="ap"``: :func:`ap_scores` (``threshold``, ``direction``); ``"iou"``: :func:`iou_scores`
    (``quantile``, ``threshold``, ``direction``)."""
    if method == "ap":
        s = ap_scores(X, y, **kwargs)
    elif method == "iou":
        s = iou_scores(X, y, **kwargs)
    else:
        raise ValueError(f"method must be 'ap' or 'iou'; received {method!r}")
    return torch.sort(-s, stable=True).indices
