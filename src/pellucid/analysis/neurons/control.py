"""Control tasks and selectivity (Hewitt & Liang, 2019, "Designing and interpreting probes with control tasks",
EMNLP).

A control task gives every word *type* a random label, drawn once per type (from the task's label distribution, or
uniformly), so it can only be solved by memorising word identity. A probe's *selectivity* is its task accuracy
minus its control-task accuracy on held-out words: high selectivity means the accuracy reflects the
representation, not the probe's capacity to memorise. Restricted to a few neurons, selectivity tells whether those
neurons encode the property or just the word.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

import numpy as np

from .probe import encode_labels, probe_accuracy, train_probe, values_of


def control_labels(words: Sequence[str], labels: Sequence[Any], *, sample_from: str = "same",
                   case_sensitive: bool = True, seed: int = 0,
                   extra_words: Sequence[Sequence[str]] = ()) -> list[Any] | tuple[list[Any], ...]:
    """Control-task labels: one random label per word type.

    Args:
        words: the word of each training row.
        labels: the task label of each training row (gives the label set and, with ``sample_from="same"``, the
            distribution labels are drawn from).
        sample_from: ``"same"`` (default: the task's label frequencies) or ``"uniform"``.
        case_sensitive: whether ``"The"`` and ``"the"`` are one type (default: they are not).
        seed: the draws are reproducible with it.
        extra_words: more word lists (e.g. dev and test rows) labelled with the same type -> label map (types first
            seen there get new draws).

    Returns:
        the control labels of ``words`` (a list), or a tuple of lists (``words`` then each of ``extra_words``).
    """
    if sample_from not in ("same", "uniform"):
        raise ValueError(f"sample_from must be 'same' or 'uniform'; received {sample_from!r}")
    words = list(words)
    labels = list(labels.tolist() if hasattr(labels, "tolist") else labels)
    if len(words) != len(labels):
        raise ValueError(f"words has {len(words)} entries but labels has {len(labels)}; give one label per word")
    freq = Counter(labels)
    if not freq:
        raise ValueError("labels is empty")
    try:
        classes = sorted(freq)
    except TypeError:
        classes = list(freq)
    p = np.array([freq[c] for c in classes], dtype=np.float64) if sample_from == "same" else np.ones(len(classes))
    p = p / p.sum()
    rng = np.random.default_rng(seed)
    table: dict[str, Any] = {}

    def label_all(ws: Sequence[str]) -> list[Any]:
        out = []
        for w in ws:
            if not isinstance(w, str):
                raise TypeError(f"words must be strings; received {type(w).__name__}")
            key = w if case_sensitive else w.lower()
            if key not in table:
                table[key] = classes[int(rng.choice(len(classes), p=p))]
            out.append(table[key])
        return out

    results = [label_all(words)] + [label_all(list(ws)) for ws in extra_words]
    return results[0] if not extra_words else tuple(results)


def selectivity(X_train: Any, y_train: Any, words_train: Sequence[str], X_test: Any, y_test: Any,
                words_test: Sequence[str], *, neurons: Any = None, seed: int = 0, sample_from: str = "same",
                case_sensitive: bool = True, **probe_kwargs: Any) -> dict[str, float]:
    """Task accuracy, control accuracy and selectivity (their difference) of linear probes on ``neurons`` (default:
    all), trained on the training rows and scored on the test rows. ``probe_kwargs`` go to
    :func:`~pellucid.analysis.neurons.train_probe` (the same settings for both probes).

    Returns ``{"task_accuracy", "control_accuracy", "selectivity"}``."""
    X_train, X_test = values_of(X_train), values_of(X_test)
    c_train, c_test = control_labels(words_train, y_train, sample_from=sample_from, case_sensitive=case_sensitive,
                                     seed=seed, extra_words=[words_test])
    task = train_probe(X_train, y_train, neurons=neurons, seed=seed, **probe_kwargs)
    control = train_probe(X_train, c_train, neurons=neurons, seed=seed,
                          classes=encode_labels(c_train + c_test)[1], **probe_kwargs)
    ta = float(probe_accuracy(task, X_test, y_test))
    ca = float(probe_accuracy(control, X_test, c_test))
    return {"task_accuracy": ta, "control_accuracy": ca, "selectivity": ta - ca}
