"""Correlation clustering of redundant neurons (Dalvi et al., 2020, "Analyzing redundancy in pretrained transformer
models", EMNLP).

Neurons whose activations are strongly correlated (or anti-correlated) carry the same information. The distance
between neurons ``i`` and ``j`` is ``1 - |rho_ij|`` (Pearson correlation over the rows; ``1 - rho`` with
``use_abs=False``); hierarchical clustering with average linkage cut at distance ``threshold`` (default 0.5) gives
groups of redundant neurons, and one representative per group gives a non-redundant set. The correlation matrix is
accumulated over row chunks in float64 (memory ``D x D``); the clustering uses ``scipy.cluster.hierarchy``
(installed with the ``data`` extra: scikit-learn depends on scipy).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .activations import as_index
from .probe import values_of


def correlation_matrix(X: Any, chunk_rows: int = 65536) -> Tensor:
    """Pearson correlations between the columns of ``X`` ``(N, D)``: ``(D, D)`` float64, symmetric, unit diagonal.
    Constant columns get correlation 0 with every other column."""
    X = values_of(X)
    n, d = X.shape
    if n < 2:
        raise ValueError(f"X must have at least two rows to correlate neurons; received {n}")
    s = torch.zeros(d, dtype=torch.float64)
    for i in range(0, n, chunk_rows):
        s += X[i: i + chunk_rows].double().sum(0)
    mean = s / n
    cov = torch.zeros(d, d, dtype=torch.float64)
    for i in range(0, n, chunk_rows):
        c = X[i: i + chunk_rows].double() - mean
        cov += c.T @ c
    std = cov.diagonal().clamp_min(0).sqrt()
    ok = std > 1e-12 * max(float(std.max()), 1e-300)
    denom = torch.where(ok, std, torch.ones_like(std))
    corr = cov / denom[:, None] / denom[None, :]
    corr = torch.where(ok[:, None] & ok[None, :], corr, torch.zeros_like(corr))
    corr = ((corr + corr.T) / 2).clamp(-1, 1)
    corr.fill_diagonal_(1.0)
    return corr


# scipy.cluster.hierarchy.linkage's methods ("centroid", "median" and "ward" assume Euclidean distances)
LINKAGES = ("single", "complete", "average", "weighted", "centroid", "median", "ward")


def correlation_clusters(X: Any, threshold: float = 0.5, use_abs: bool = True, method: str = "average") -> Tensor:
    """Cluster labels ``(D,)`` (``0..k-1``, numbered by each cluster's smallest neuron) of hierarchical clustering
    of the neurons with distance ``1 - |rho|`` (``use_abs``), ``method`` linkage (default average), cut at
    ``threshold`` (default 0.5: neurons in one cluster correlate by about ``|rho| > 0.5`` on average)."""
    try:
        from scipy.cluster.hierarchy import fcluster, linkage
        from scipy.spatial.distance import squareform
    except ImportError as e:  # pragma: no cover - scipy comes with the data extra
        raise ImportError("correlation clustering needs scipy: pip install 'pellucid[data]'") from e
    top = 1.0 if use_abs else 2.0  # the largest distance: 1 - |rho| <= 1, 1 - rho <= 2
    if not isinstance(threshold, (int, float)) or isinstance(threshold, bool) or not 0 <= threshold <= top:
        raise ValueError(f"threshold must be a distance 1 - {'|rho|' if use_abs else 'rho'} in [0, {top:g}] "
                         f"(use_abs={use_abs}); received {threshold!r}")
    if method not in LINKAGES:
        raise ValueError(f"method must be a linkage among {', '.join(map(repr, LINKAGES))}; received {method!r}")
    corr = correlation_matrix(X)
    d = corr.shape[0]
    if d == 1:
        return torch.zeros(1, dtype=torch.long)
    dist = 1 - (corr.abs() if use_abs else corr)
    dist.fill_diagonal_(0.0)
    dist = dist.clamp_min(0)
    z = linkage(squareform(dist.numpy(), checks=False), method=method)
    raw = torch.as_tensor(fcluster(z, float(threshold), criterion="distance"), dtype=torch.long)
    relabel: dict[int, int] = {}
    for r in raw.tolist():
        relabel.setdefault(r, len(relabel))
    return torch.tensor([relabel[r] for r in raw.tolist()], dtype=torch.long)


def independent_neurons(X: Any, threshold: float = 0.5, use_abs: bool = True, ranking: Any = None,
                        clusters: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """One representative per correlation cluster: ``(neurons (k,), cluster labels (D,))``.

    The representative is the cluster member that comes first in ``ranking`` (e.g. a probe's neuron order) when one
    is given, else the member with the largest mean ``|rho|`` to the rest of its cluster (the medoid). Returned in
    ``ranking`` order when given, else by cluster."""
    X = values_of(X)
    labels = correlation_clusters(X, threshold, use_abs) if clusters is None else torch.as_tensor(clusters).long()
    d = labels.numel()
    if ranking is not None:
        order = as_index(ranking, d, "ranking")
        seen: set[int] = set()
        reps = []
        for j in order.tolist():
            if int(labels[j]) not in seen:
                seen.add(int(labels[j]))
                reps.append(j)
        missing = sorted(set(labels.tolist()) - seen)
        reps += [int(torch.nonzero(labels == c)[0]) for c in missing]
        return torch.tensor(reps, dtype=torch.long), labels
    corr = correlation_matrix(X).abs() if use_abs else correlation_matrix(X)
    reps = []
    for c in range(int(labels.max()) + 1):
        members = torch.nonzero(labels == c).reshape(-1)
        sub = corr[members][:, members]
        reps.append(int(members[int(torch.argmax(sub.sum(1)))]))
    return torch.tensor(reps, dtype=torch.long), labels
