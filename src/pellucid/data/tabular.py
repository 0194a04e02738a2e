"""scikit-learn's bundled datasets as tensors (no download: they ship inside scikit-learn).

Needs the ``data`` extra: ``pip install pellucid[data]``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Tabular:
    """``x`` ``(N, D)`` float32, ``y`` ``(N,)`` (long for classification, float32 for regression), feature names."""

    x: Tensor
    y: Tensor
    feature_names: tuple[str, ...]
    task: str


def _sklearn():
    try:
        import sklearn.datasets as ds
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("this dataset needs scikit-learn: pip install 'pellucid[data]'") from e
    return ds


def load_digits(standardize: bool = True) -> Tabular:
    """The 1797 8x8 handwritten digits (10 classes); ``x`` ``(1797, 64)``, pixel values / 16 (in [0, 1])
    or standardised per feature (``standardize=True``; constant pixels stay 0). Reshape to ``(N, 1, 8, 8)`` for
    images."""
    d = _sklearn().load_digits()
    x = torch.tensor(d.data, dtype=torch.float32) / 16.0
    if standardize:
        x = (x - x.mean(0)) / x.std(0).clamp_min(1e-6)
    names = tuple(f"pixel_{i // 8}_{i % 8}" for i in range(64))
    return Tabular(x, torch.tensor(d.target, dtype=torch.long), names, "classification")


def load_diabetes(standardize: bool = True) -> Tabular:
    """The diabetes regression data (442 patients, 10 features, disease progression); ``y`` standardised too
    when ``standardize`` (so a mean squared error of 1 is the variance)."""
    d = _sklearn().load_diabetes()
    x = torch.tensor(d.data, dtype=torch.float32)
    y = torch.tensor(d.target, dtype=torch.float32)
    if standardize:
        x = (x - x.mean(0)) / x.std(0)
        y = (y - y.mean()) / y.std()
    return Tabular(x, y, tuple(d.feature_names), "regression")
