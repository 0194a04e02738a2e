"""Demo factories for ``python -m pellucid attribute --config examples/job.toml``: the shapes images and a small
CNN trained on them (seeded, deterministic, a few seconds on one CPU thread). Named in a job's TOML as
``pellucid.jobs.demo:shapes_model`` and ``pellucid.jobs.demo:shapes_dataset``."""
from __future__ import annotations

import torch
from torch import nn

from ..data import ShapesData, SimpleCNN, make_shapes, train_quick


def shapes_dataset(n: int = 512, seed: int = 1, size: int = 32) -> ShapesData:
    """``n`` procedural shape images ``(3, size, size)`` with labels (:func:`pellucid.data.make_shapes`), generated
    from ``seed`` (default 1: images the model was not trained on)."""
    return make_shapes(n, size=size, seed=seed)


def shapes_model(n_train: int = 2000, epochs: int = 6, seed: int = 0, size: int = 32) -> nn.Module:
    """:class:`pellucid.data.SimpleCNN` trained on ``n_train`` shape images (seed ``seed``) with one thread, so
    every process (and every Ray actor) builds the same weights."""
    data = make_shapes(n_train, size=size, seed=seed)
    torch.manual_seed(seed)
    model = SimpleCNN(data.images.shape[1], len(data.classes))
    train_quick(model, data.images, data.labels, epochs=epochs, lr=1e-2, seed=seed, num_threads=1)
    return model.eval()


def tiny_model(n_in: int = 6, n_classes: int = 3, hidden: int = 8, seed: int = 0) -> nn.Module:
    """A seeded two-layer MLP ``(N, n_in) -> (N, n_classes)`` (untrained): for tests and smoke runs of jobs."""
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(n_in, hidden), nn.Tanh(), nn.Linear(hidden, n_classes))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return model.eval()


def tiny_dataset(n: int = 256, n_in: int = 6, n_classes: int = 3, seed: int = 0) -> torch.utils.data.TensorDataset:
    """``n`` seeded Gaussian examples ``(n_in,)`` with labels ``0 .. n_classes - 1`` (a ``TensorDataset``)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, n_in, generator=g)
    y = torch.randint(0, n_classes, (n,), generator=g)
    return torch.utils.data.TensorDataset(x, y)
