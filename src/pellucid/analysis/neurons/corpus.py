"""Which words make a neuron fire: top words per neuron (NeuroX's ``get_top_words``; Dalvi et al., 2019).

A row's score for neuron ``j`` is its absolute z-score ``|a - mean| / std`` over all rows; a word type's score is
the mean over its occurrences, divided by the largest type score (so the top word scores 1). ``signed=True`` ranks
by the mean raw activation instead (the words that drive the neuron highest).
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Sequence

import torch

from .activations import Activations
from .probe import values_of


def top_words(X: Any, neuron: int, words: Sequence[str] | None = None, k: int | None = 10,
              min_score: float | None = None, signed: bool = False) -> list[tuple[str, float]]:
    """The words that most distinguish ``neuron``: ``[(word, score), ...]``, best first.

    Args:
        X: activations ``(N, D)`` (an :class:`Activations` with ``items`` supplies ``words``).
        neuron: the column.
        words: the word of each row (default: ``X.items``).
        k: at most this many words (``None``: all).
        min_score: keep words scoring above it (NeuroX's ``min_threshold``; only with the z-score).
        signed: rank by mean raw activation instead of the normalised mean ``|z|``.
    """
    if words is None:
        if not isinstance(X, Activations) or X.items is None:
            raise ValueError("words must be given (one per row) unless X is Activations with items (word activations)")
        words = X.items
    X = values_of(X)
    if isinstance(neuron, bool) or not isinstance(neuron, int) or not 0 <= neuron < X.shape[1]:
        raise ValueError(f"neuron must be an int in [0, {X.shape[1]}); received {neuron!r}")
    if len(words) != X.shape[0]:
        raise ValueError(f"words has {len(words)} entries but X has {X.shape[0]} rows; give one word per row")
    a = X[:, neuron].double()
    if signed:
        score = a
    else:
        std = a.std(unbiased=False)
        score = ((a - a.mean()) / std).abs() if std > 0 else torch.zeros_like(a)
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for w, s in zip(words, score.tolist()):
        sums[w] += s
        counts[w] += 1
    per_type = {w: sums[w] / counts[w] for w in sums}
    if not signed:
        top = max(per_type.values())
        per_type = {w: (v / top if top > 0 else 0.0) for w, v in per_type.items()}
    ranked = sorted(per_type.items(), key=lambda t: (-t[1], t[0]))
    if min_score is not None:
        ranked = [(w, v) for w, v in ranked if v > min_score]
    return ranked if k is None else ranked[:k]
