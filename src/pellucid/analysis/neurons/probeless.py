"""Probeless neuron ranking (Antverg & Belinkov, 2022, "On the pitfalls of analyzing individual neurons in language
models", ICLR): rank neurons by how far apart the class means of their activations are, with no probe.

With ``q_c`` the mean activation vector of the rows of class ``c``, the score of neuron ``j`` for class ``c`` is
``sum_{c' != c} |q_c[j] - q_c'[j]|`` and the overall score is ``sum_{c < c'} |q_c[j] - q_c'[j]|`` (every pair once;
the sum of the per-class scores is twice it, so the order is the same). Higher is more important.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .probe import _check_rows, encode_labels, values_of


def class_means(X: Any, y: Any, chunk_rows: int = 65536) -> tuple[Tensor, list[Any]]:
    """``(means (C, D) float64, classes)``: the mean activation of each class's rows, streamed over row chunks."""
    X = values_of(X)
    yi, classes = encode_labels(y)
    _check_rows(X, yi)
    sums = torch.zeros(len(classes), X.shape[1], dtype=torch.float64)
    for i in range(0, X.shape[0], chunk_rows):
        sums.index_add_(0, yi[i: i + chunk_rows], X[i: i + chunk_rows].double())
    counts = torch.bincount(yi, minlength=len(classes)).double()
    return sums / counts[:, None], classes


def probeless_scores(X: Any, y: Any) -> tuple[Tensor, dict[Any, Tensor]]:
    """``(overall (D,), {class: (D,)})`` probeless scores (see the module docstring)."""
    means, classes = class_means(X, y)
    if len(classes) < 2:
        raise ValueError(f"y must hold at least two classes; received {classes}")
    diff = (means[:, None, :] - means[None, :, :]).abs()  # (C, C, D)
    per = {c: diff[i].sum(0) for i, c in enumerate(classes)}
    overall = diff.sum((0, 1)) / 2
    return overall, per


def probeless_ranking(X: Any, y: Any) -> tuple[Tensor, dict[Any, Tensor]]:
    """Probeless neuron ranking (Antverg & Belinkov, 2022): ``(overall order (D,), {class: order (D,)})``, most
    important first (ties by index).

    Args:
        X: activations ``(N, D)`` (tensor, array or :class:`Activations`).
        y: one label per row (at least two classes).
    """
    overall, per = probeless_scores(X, y)

    def order(s: Tensor) -> Tensor:
        return torch.sort(-s, stable=True).indices

    return order(overall), {c: order(s) for c, s in per.items()}
