"""Neuron ranking by a linear probe's weight mass (Dalvi et al., 2019, "What is one grain of sand in the desert?",
AAAI).

For class ``c`` with absolute weights ``|W[c]|`` sorted in decreasing order, the *top neurons at fraction p* are the
smallest prefix whose cumulative weight reaches ``p`` of the class's total mass; the top neurons of the probe are
the union over classes. Sweeping ``p`` from 0 to 1 adds neurons in order and gives a global ranking.

In the limit of a fine sweep, neuron ``j`` enters class ``c``'s prefix at ``p = (mass of the neurons ranked before
it in c) / (total mass of c)`` and the global ranking orders neurons by the smallest such entry point over classes;
:func:`neuron_ordering` returns that exact order (``search_stride=None``, default) or NeuroX's stepped sweep
(``search_stride=k``: ``p = 0, 1/k, ..., 1``, neurons entering at the same step ordered by their exact entry point).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .probe import LinearProbe


def probe_weights(probe: Any) -> Tensor:
    """``|W|`` ``(C, D)`` in float64 from a :class:`LinearProbe`, an ``nn.Linear`` or a weight tensor/array."""
    if isinstance(probe, LinearProbe):
        w = probe.linear.weight
    elif isinstance(probe, torch.nn.Linear):
        w = probe.weight
    else:
        try:
            w = torch.as_tensor(probe)
        except (TypeError, ValueError, RuntimeError) as e:
            raise TypeError(f"probe must be a LinearProbe, an nn.Linear or a (classes, neurons) weight matrix; "
                            f"received {type(probe).__name__}") from e
    w = w.detach().cpu().double()
    if w.dim() == 1:
        w = w[None]
    if w.dim() != 2 or w.shape[1] == 0:
        raise ValueError(f"probe weights must be a (classes, neurons) matrix; received shape {tuple(w.shape)}")
    return w.abs()


def _check_fraction(p: float, name: str = "percentage") -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
        raise ValueError(f"{name} must be a number in [0, 1]; received {p!r}")
    return float(p)


def _prefix(mass: Tensor, p: float, descending: bool) -> Tensor:
    """The smallest prefix of ``mass`` sorted (desc/asc) whose cumulative sum reaches ``p * total``."""
    order = torch.sort(mass, descending=descending, stable=True).indices
    cum = mass[order].cumsum(0)
    total = cum[-1]
    reached = torch.nonzero(cum >= total * p - 1e-12 * total).reshape(-1)
    k = int(reached[0]) + 1 if reached.numel() else mass.numel()
    return order[:k]


def _select(probe: Any, p: float, descending: bool, classes: Any) -> tuple[Tensor, dict[Any, Tensor]]:
    w = probe_weights(probe)
    p = _check_fraction(p)
    names = classes if classes is not None else (probe.classes if isinstance(probe, LinearProbe) else range(w.shape[0]))
    names = list(names)
    if len(names) != w.shape[0]:
        raise ValueError(f"classes must name the probe's {w.shape[0]} outputs; received {len(names)} names")
    # a class whose weights are all zero (e.g. removed by a strong l1) selects nothing
    per = {c: _prefix(w[i], p, descending) if w[i].sum() > 0 else torch.zeros(0, dtype=torch.long)
           for i, c in enumerate(names)}
    # union, ordered by each neuron's best (smallest) rank in any class
    best: dict[int, int] = {}
    for sel in per.values():
        for r, j in enumerate(sel.tolist()):
            best[j] = min(best.get(j, r), r)
    union = sorted(best, key=lambda j: (best[j], j))
    return torch.tensor(union, dtype=torch.long), per


def top_neurons(probe: Any, percentage: float, classes: Any = None) -> tuple[Tensor, dict[Any, Tensor]]:
    """Top neurons at weight-mass fraction ``percentage`` (Dalvi et al., 2019).

    Args:
        probe: a :class:`LinearProbe`, an ``nn.Linear`` or weights ``(C, D)`` (absolute values are used).
        percentage: in ``[0, 1]``; 0 gives each class's single heaviest neuron, 1 all neurons.
        classes: names of the probe's outputs (default: the probe's classes, or ``0..C-1``).

    Returns:
        ``(union, per_class)``: the union over classes ``(k,)`` (ordered by best per-class rank) and
        ``{class: that class's prefix, heaviest first}``.
    """
    return _select(probe, percentage, True, classes)


def bottom_neurons(probe: Any, percentage: float, classes: Any = None) -> tuple[Tensor, dict[Any, Tensor]]:
    """Bottom neurons: per class the smallest prefix of the *lightest* neurons reaching ``percentage`` of the weight
    mass, union over classes (NeuroX's ``get_bottom_neurons``)."""
    return _select(probe, percentage, False, classes)


def entry_points(probe: Any) -> Tensor:
    """For each neuron, the smallest weight-mass fraction ``p`` at which it joins the top neurons: ``(D,)``
    (``inf`` if every class's weights are zero)."""
    w = probe_weights(probe)
    order = torch.sort(w, dim=1, descending=True, stable=True).indices
    sorted_w = torch.gather(w, 1, order)
    total = sorted_w.sum(1, keepdim=True)
    before = (sorted_w.cumsum(1) - sorted_w) / total.clamp_min(1e-300)
    before = torch.where(total > 0, before, torch.full_like(before, float("inf")))  # all-zero classes never select
    entry = torch.empty_like(w)
    entry.scatter_(1, order, before)
    return entry.min(0).values


def neuron_ordering(probe: Any, search_stride: int | None = None) -> tuple[Tensor, list[int]]:
    """Global neuron ranking by sweeping the weight-mass fraction (Dalvi et al., 2019).

    Args:
        probe: a :class:`LinearProbe`, an ``nn.Linear`` or weights ``(C, D)``.
        search_stride: ``None`` (default): the exact order of entry points (:func:`entry_points`; ties broken by
            the larger maximum absolute weight, then the index); an int ``k``: NeuroX's sweep over
            ``p = 0, 1/k, ..., 1``, returning its cutoffs.

    Returns:
        ``(ordering (D,), cutoffs)``: all neurons, most important first; ``cutoffs[i]`` = number of neurons selected
        up to step ``i`` of the sweep (``search_stride=None``: one cutoff per neuron).
    """
    w = probe_weights(probe)
    entry = entry_points(w)
    peak = w.max(0).values
    d = w.shape[1]
    keys = sorted(range(d), key=lambda j: (float(entry[j]), -float(peak[j]), j))
    ordering = torch.tensor(keys, dtype=torch.long)
    if search_stride is None:
        return ordering, list(range(1, d + 1))
    if isinstance(search_stride, bool) or not isinstance(search_stride, int) or search_stride < 1:
        raise ValueError(f"search_stride must be a positive int or None; received {search_stride!r}")
    # a neuron is selected at step p iff some class's prefix reaching p includes it; prefixes only grow with p
    step_of = torch.full((d,), search_stride, dtype=torch.long)
    for s in range(search_stride, -1, -1):
        union, _ = top_neurons(w, s / search_stride)
        step_of[union] = s
    rank = {j: r for r, j in enumerate(keys)}
    ordered = sorted(range(d), key=lambda j: (int(step_of[j]), rank[j]))
    cutoffs = [int((step_of <= s).sum()) for s in range(search_stride + 1)]
    return torch.tensor(ordered, dtype=torch.long), cutoffs


def random_neurons(n_neurons: int, k: int, seed: int = 0, exclude: Any = None) -> Tensor:
    """``k`` distinct neurons drawn uniformly from ``range(n_neurons)`` (minus ``exclude``), reproducibly."""
    if not isinstance(n_neurons, int) or n_neurons < 1:
        raise ValueError(f"n_neurons must be a positive int; received {n_neurons!r}")
    pool = torch.ones(n_neurons, dtype=torch.bool)
    if exclude is not None:
        pool[torch.as_tensor(exclude, dtype=torch.long)] = False
    cand = torch.nonzero(pool).reshape(-1)
    if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k <= cand.numel():
        raise ValueError(f"k must be an int in [0, {cand.numel()}]; received {k!r}")
    g = torch.Generator().manual_seed(int(seed))
    return cand[torch.randperm(cand.numel(), generator=g)[:k]]
