"""Similarity of two attributions, per example: the measures used by the randomisation sanity checks.

Every function takes two tensors (or tuples of tensors, concatenated per example) with batch dim ``N`` and returns
``(N,)`` (float64). Spearman and Pearson follow their textbook definitions (Spearman with average ranks for ties,
as used by Adebayo et al., 2018, "Sanity Checks for Saliency Maps", arXiv:1810.03292); SSIM is Wang et al., 2004,
"Image quality assessment: from error visibility to structural similarity".
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ._base import flat


def _pair(a, b) -> tuple[Tensor, Tensor]:
    fa, fb = flat(a).double(), flat(b).double()
    if fa.shape != fb.shape:
        raise ValueError(f"the two attributions must have the same shape per example; received {tuple(fa.shape)} and {tuple(fb.shape)}")
    return fa, fb


def ranks(x: Tensor) -> Tensor:
    """Average ranks (0-based) along the last dim; ties share the mean of their positions. ``x``: ``(N, F)``.

    One sort: tie groups are runs of equal sorted values; each gets the mean position of its run.
    """
    n, f = x.shape
    s, order = torch.sort(x, dim=-1)
    pos = torch.arange(f, dtype=torch.float64, device=x.device).expand(n, f)
    new = torch.ones_like(s, dtype=torch.long)
    new[:, 1:] = (s[:, 1:] != s[:, :-1]).long()
    gid = new.cumsum(1) - 1 + torch.arange(n, device=x.device).unsqueeze(1) * f  # unique group ids over rows
    total = torch.zeros(n * f, dtype=torch.float64, device=x.device).index_add_(0, gid.reshape(-1), pos.reshape(-1))
    count = torch.zeros(n * f, dtype=torch.float64, device=x.device).index_add_(
        0, gid.reshape(-1), torch.ones(n * f, dtype=torch.float64, device=x.device))
    mean_pos = (total / count.clamp_min(1)).index_select(0, gid.reshape(-1)).reshape(n, f)
    return torch.empty_like(mean_pos).scatter_(1, order, mean_pos)


def _corr(x: Tensor, y: Tensor) -> Tensor:
    x = x - x.mean(1, keepdim=True)
    y = y - y.mean(1, keepdim=True)
    den = (x.square().sum(1) * y.square().sum(1)).sqrt()
    return torch.where(den > 0, (x * y).sum(1) / den.clamp_min(1e-300), torch.zeros_like(den))


def pearson(a, b) -> Tensor:
    """Pearson correlation per example (0 where either attribution is constant)."""
    return _corr(*_pair(a, b))


def spearman(a, b, abs: bool = False) -> Tensor:
    """Spearman rank correlation per example; ``abs=True`` ranks absolute values (Adebayo et al.'s two variants)."""
    x, y = _pair(a, b)
    if abs:
        x, y = x.abs(), y.abs()
    return _corr(ranks(x), ranks(y))


def spearman_abs(a, b) -> Tensor:
    """:func:`spearman` of absolute values."""
    return spearman(a, b, abs=True)


def cosine(a, b) -> Tensor:
    """Cosine similarity per example (0 where either is all zeros)."""
    x, y = _pair(a, b)
    den = x.norm(dim=1) * y.norm(dim=1)
    return torch.where(den > 0, (x * y).sum(1) / den.clamp_min(1e-300), torch.zeros_like(den))


def top_k_overlap(a, b, k: int | float = 0.1, abs: bool = True) -> Tensor:
    """Fraction of the ``k`` largest features of ``a`` that are also among the ``k`` largest of ``b``.

    ``k``: a count, or a fraction of the features if a float in (0, 1). Ranks ``|a|`` with ``abs=True`` (default).
    """
    x, y = _pair(a, b)
    if abs:
        x, y = x.abs(), y.abs()
    n_feat = x.shape[1]
    kk = max(1, int(round(k * n_feat))) if isinstance(k, float) and 0 < k < 1 else int(k)
    if kk < 1 or kk > n_feat:
        raise ValueError(f"k must be in [1, {n_feat}] or a fraction in (0, 1); received {k!r}")
    ia = torch.zeros_like(x, dtype=torch.bool).scatter_(1, x.topk(kk, dim=1).indices, True)
    ib = torch.zeros_like(y, dtype=torch.bool).scatter_(1, y.topk(kk, dim=1).indices, True)
    return (ia & ib).sum(1).double() / kk


def _window(size: int, kind: str, sigma: float) -> Tensor:
    """The 1-D factor of the separable 2-D window (normalised to sum 1)."""
    if kind == "uniform":
        w = torch.ones(size, dtype=torch.float64)
    elif kind == "gaussian":
        c = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
        w = torch.exp(-(c**2) / (2 * sigma**2))
    else:
        raise ValueError(f"window must be 'gaussian' or 'uniform'; received {kind!r}")
    return w / w.sum()


def ssim(a: Tensor, b: Tensor, window_size: int = 11, window: str = "gaussian", sigma: float = 1.5,
         data_range: float | None = None, k1: float = 0.01, k2: float = 0.03) -> Tensor:
    """Structural similarity of 2-D maps, per example.

    Args:
        a, b: ``(N, H, W)`` or ``(N, C, H, W)`` (channels are averaged after computing SSIM per channel).
        window_size: side of the local window (shrunk to the largest odd size fitting the map); ``window``:
            ``"gaussian"`` (``sigma``, Wang et al.'s default 11x11, 1.5) or ``"uniform"``. Only windows fully inside
            the map count (no padding).
        data_range: dynamic range L in ``C1 = (k1 L)^2, C2 = (k2 L)^2``; default per example
            ``max(a, b) - min(a, b)``.
    Returns ``(N,)``: the mean SSIM over windows.
    """
    if not isinstance(a, Tensor) or not isinstance(b, Tensor) or a.shape != b.shape:
        raise ValueError("ssim needs two tensors of the same shape (N, H, W) or (N, C, H, W)")
    if a.dim() == 3:
        a, b = a.unsqueeze(1), b.unsqueeze(1)
    if a.dim() != 4:
        raise ValueError(f"ssim needs maps of shape (N, H, W) or (N, C, H, W); received {tuple(a.shape)}")
    a, b = a.detach().double(), b.detach().double()
    n, c, h, w = a.shape
    size = min(window_size, h, w)
    size = size if size % 2 == 1 else size - 1
    w1 = _window(max(size, 1), window, sigma).to(a.device)
    if data_range is None:
        both = torch.cat([a.reshape(n, -1), b.reshape(n, -1)], 1)
        rng = (both.max(1).values - both.min(1).values).clamp_min(1e-12).reshape(n, 1, 1, 1)
    else:
        rng = torch.full((n, 1, 1, 1), float(data_range), dtype=torch.float64, device=a.device)
    c1, c2 = (k1 * rng) ** 2, (k2 * rng) ** 2

    def f(t: Tensor) -> Tensor:  # separable window, one channel at a time (fast float64 path)
        t = F.conv2d(t.reshape(n * c, 1, h, w), w1.reshape(1, 1, -1, 1))
        t = F.conv2d(t, w1.reshape(1, 1, 1, -1))
        return t.reshape(n, c, t.shape[-2], t.shape[-1])

    mu_a, mu_b = f(a), f(b)
    var_a = f(a * a) - mu_a**2
    var_b = f(b * b) - mu_b**2
    cov = f(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.reshape(n, -1).mean(1)


SIMILARITIES: dict[str, Callable[..., Tensor]] = {
    "spearman": spearman, "spearman_abs": spearman_abs, "pearson": pearson, "cosine": cosine,
    "ssim": ssim, "top_k": top_k_overlap,
}


def resolve_similarity(similarity: str | Callable) -> Callable[[Tensor, Tensor], Tensor]:
    """A similarity function from its name (``"spearman"``, ``"spearman_abs"``, ``"pearson"``, ``"cosine"``,
    ``"ssim"``, ``"top_k"``) or a callable ``(a, b) -> (N,)``."""
    if callable(similarity):
        return similarity
    if similarity in SIMILARITIES:
        return SIMILARITIES[similarity]
    raise ValueError(f"similarity must be one of {sorted(SIMILARITIES)} or a callable (a, b) -> (N,); received {similarity!r}")


