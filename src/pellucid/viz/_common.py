"""Shared helpers of the drawing functions: arrays from tensors, axes creation, sign modes and normalisation."""
from __future__ import annotations

from typing import Any

import numpy as np

SIGNS = ("positive", "negative", "absolute", "all")


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend unless a backend was already chosen."""
    try:
        import matplotlib
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("pellucid.viz needs matplotlib: pip install 'pellucid[viz]'") from e
    import sys

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def to_numpy(x: Any, name: str) -> np.ndarray:
    """A float64 NumPy copy of a tensor (any device, detached), array or nested list."""
    try:
        import torch

        if isinstance(x, torch.Tensor):
            return x.detach().to("cpu", torch.float64).numpy()
    except ImportError:  # pragma: no cover
        pass
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name} must be a tensor or an array of numbers; received {type(x).__name__}") from e


def get_axes(ax: Any = None, figsize: tuple[float, float] = (4, 4)):
    """``(fig, ax)``: the given axes and their figure, or a new figure with one axes."""
    if ax is not None:
        return ax.figure, ax
    fig, ax = pyplot().subplots(figsize=figsize)
    return fig, ax


def check_sign(sign: str) -> str:
    if sign not in SIGNS:
        raise ValueError(f"sign must be one of {', '.join(map(repr, SIGNS))}; received {sign!r}")
    return sign


def normalize(values: np.ndarray, sign: str = "absolute", outlier_perc: float = 2.0) -> np.ndarray:
    """Scale attributions for display.

    ``sign`` selects what is shown: ``"positive"`` (values below 0 become 0), ``"negative"`` (magnitudes of the
    negative values; positives become 0), ``"absolute"`` (``|v|``) or ``"all"`` (signed). The result is divided by
    the ``100 - outlier_perc`` percentile of the selected magnitudes (the maximum if that percentile is 0; so the top ``outlier_perc`` percent of values
    saturate instead of washing out the rest) and clipped: in ``[0, 1]`` for the first three modes, ``[-1, 1]``
    for ``"all"``. An all-zero selection stays zero.
    """
    check_sign(sign)
    if not 0 <= outlier_perc < 100:
        raise ValueError(f"outlier_perc must be in [0, 100); received {outlier_perc!r}")
    v = np.asarray(values, dtype=np.float64)
    if sign == "positive":
        v = np.clip(v, 0, None)
    elif sign == "negative":
        v = np.clip(-v, 0, None)
    elif sign == "absolute":
        v = np.abs(v)
    mags = np.abs(v)
    top = mags.max() if mags.size else 0.0
    if top == 0:
        return np.zeros_like(v)
    scale = np.percentile(mags, 100 - outlier_perc)
    if scale <= 0:  # most values are zero: scale by the largest instead
        scale = top
    lo = -1.0 if sign == "all" else 0.0
    return np.clip(v / scale, lo, 1.0)


def default_cmap(sign: str) -> str:
    return {"positive": "Greens", "negative": "Reds", "absolute": "Blues", "all": "RdBu_r"}[sign]
