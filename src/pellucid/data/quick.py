"""Ready-trained built-in models: a model, its training and test data, trained seeded in seconds.

Nothing is downloaded: the models are trained on the spot with :func:`train_quick` on the built-in data.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .models import MLP, SimpleCNN, TinyTransformer
from .sequences import make_sequences
from .shapes import make_shapes
from .train import TrainResult, evaluate, train_quick


@dataclass
class Trained:
    """A trained model (in ``eval()`` mode), its training and test data, the training log and the test score."""

    model: nn.Module
    train: Any
    test: Any
    log: TrainResult
    test_score: float


def shapes_cnn(
    n_train: int = 2000, n_test: int = 500, epochs: int = 6, seed: int = 0, trigger_fraction: float = 0.0,
    progress: bool = False, num_threads: int | None = 1, **shape_kwargs: Any,
) -> Trained:
    """:class:`SimpleCNN` trained on :func:`make_shapes` (test data from the same seed, disjoint images).

    With ``trigger_fraction > 0`` the *training* images carry the backdoor; the test images are clean (use
    :func:`add_trigger` to measure the attack). ``test_score`` is the test accuracy. ``num_threads``: see
    :func:`train_quick`.
    """
    data = make_shapes(n_train + n_test, seed=seed, **shape_kwargs)
    train, test = data.split(n_train)
    if trigger_fraction > 0:
        train = make_shapes(n_train, seed=seed + 1, trigger_fraction=trigger_fraction, **shape_kwargs)
    torch.manual_seed(seed)
    model = SimpleCNN(train.images.shape[1], len(train.classes))
    log = train_quick(model, train.images, train.labels, epochs=epochs, lr=1e-2, seed=seed, progress=progress,
                      num_threads=num_threads)
    return Trained(model, train, test, log, evaluate(model, test.images, test.labels))


def digits_mlp(epochs: int = 20, seed: int = 0, n_test: int = 297) -> Trained:
    """:class:`MLP` on scikit-learn's digits (needs the ``data`` extra); ``test_score`` is the test accuracy."""
    from .tabular import load_digits

    d = load_digits()
    perm = torch.randperm(d.x.shape[0], generator=torch.Generator().manual_seed(seed))
    te, tr = perm[:n_test], perm[n_test:]
    torch.manual_seed(seed)
    model = MLP(d.x.shape[1], 10)
    log = train_quick(model, d.x[tr], d.y[tr], epochs=epochs, lr=3e-3, seed=seed, weight_decay=1e-4)
    return Trained(model, (d.x[tr], d.y[tr]), (d.x[te], d.y[te]), log, evaluate(model, d.x[te], d.y[te]))


def sequence_transformer(n_train: int = 2000, n_test: int = 400, epochs: int = 6, seed: int = 0) -> Trained:
    """:class:`TinyTransformer` on :func:`make_sequences`; ``test_score`` is the test accuracy."""
    data = make_sequences(n_train + n_test, seed=seed)
    train = type(data)(*(t[:n_train] for t in (data.ids, data.attention_mask, data.labels, data.key_mask)))
    test = type(data)(*(t[n_train:] for t in (data.ids, data.attention_mask, data.labels, data.key_mask)))
    torch.manual_seed(seed)
    model = TinyTransformer(vocab=64, n_classes=2, max_length=train.ids.shape[1])
    log = train_quick(model, train.ids, train.labels, epochs=epochs, lr=3e-3, seed=seed,
                      forward_kwargs={"attention_mask": train.attention_mask})
    score = evaluate(model, test.ids, test.labels, forward_kwargs={"attention_mask": test.attention_mask})
    return Trained(model, train, test, log, score)
