"""Feature groups and the perturbed rows built from them (shared by the perturbation-based faithfulness metrics).

A *feature* is a group of input elements (every element by default; pixels, patches or tokens via a feature mask).
Its attribution is the sum over its elements. A perturbed row is an example with a set of features replaced by a
replacement value (a baseline, a blurred copy, noise); rows are built chunk by chunk, never all at once.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.inputs import format_baselines


class Groups:
    """Feature groups of ``inputs`` and their attribution scores.

    Args:
        inputs: tuple of ``(N, ...)`` tensors.
        attributions: tuple matching ``inputs`` (each broadcastable to its input).
        feature_mask: ``None`` (every element is a feature) or a tuple with one integer tensor per input,
            broadcastable to it (batch 1 or ``N``), holding group ids ``0..G-1`` (groups may span inputs).
    """

    def __init__(self, inputs: tuple[Tensor, ...], attributions: tuple[Tensor, ...], feature_mask: Any = None):
        n = inputs[0].shape[0]
        self.n = n
        if feature_mask is None:
            ids, offset = [], 0
            for x in inputs:
                k = x[0].numel()
                ids.append(torch.arange(offset, offset + k, device=x.device).reshape((1,) + x.shape[1:]))
                offset += k
            masks = tuple(ids)
        else:
            masks = tuple(feature_mask) if isinstance(feature_mask, (tuple, list)) else (feature_mask,)
            if len(masks) != len(inputs):
                raise ValueError(f"feature_mask has {len(masks)} tensors but there are {len(inputs)} inputs; give one per input")
        self.gid: list[Tensor] = []
        for i, (m, x) in enumerate(zip(masks, inputs)):
            if not isinstance(m, Tensor) or m.dtype.is_floating_point or m.dtype == torch.bool:
                raise TypeError(f"feature_mask[{i}] must be an integer tensor of group ids; received "
                                f"{type(m).__name__ if not isinstance(m, Tensor) else m.dtype}")
            if m.dim() == x.dim() - 1:
                m = m.unsqueeze(0)
            try:
                m = m.to(x.device).long().expand((m.shape[0],) + x.shape[1:])
            except RuntimeError:
                raise ValueError(f"feature_mask[{i}] of shape {tuple(m.shape)} does not broadcast to inputs[{i}] {tuple(x.shape)}") from None
            if m.shape[0] not in (1, n):
                raise ValueError(f"feature_mask[{i}] must have batch 1 or {n}; received {m.shape[0]}")
            self.gid.append(m.reshape(m.shape[0], -1))
        self.n_groups = int(max(int(g.max()) for g in self.gid)) + 1
        if min(int(g.min()) for g in self.gid) < 0:
            raise ValueError("feature_mask ids must be non-negative")
        scores = torch.zeros(n, self.n_groups, dtype=torch.float64, device=inputs[0].device)
        for g, a, x in zip(self.gid, attributions, inputs):
            a = a.detach().to(x.device).double().expand_as(x).reshape(n, -1)
            scores.scatter_add_(1, g.expand(n, -1), a)
        self.scores = scores
        present = torch.zeros(n, self.n_groups, dtype=torch.bool, device=scores.device)
        for g in self.gid:
            present.scatter_(1, g.expand(n, -1), True)
        self.present = present

    def ranks(self, descending: bool = True) -> Tensor:
        """``(N, G)``: the position of each group in the order of its attribution (0 = first removed).

        Groups absent from an example's mask come last. Ties keep the group order (stable sort).
        """
        key = self.scores if descending else -self.scores
        key = torch.where(self.present, key, torch.full_like(key, float("-inf")))
        order = key.argsort(dim=1, descending=True, stable=True)
        ranks = torch.empty_like(order)
        ranks.scatter_(1, order, torch.arange(self.n_groups, device=order.device).expand_as(order))
        return ranks

    def apply(self, inputs: tuple[Tensor, ...], replacements: tuple[Tensor, ...], ex: Tensor, removed: Tensor) -> tuple[Tensor, ...]:
        """Rows of ``inputs`` for examples ``ex`` with the groups in ``removed`` ``(rows, G)`` replaced."""
        out = []
        for x, rep, g in zip(inputs, replacements, self.gid):
            e = ex.to(x.device)
            xr = x.index_select(0, e)
            rr = rep.expand_as(x).index_select(0, e) if rep.shape[0] == x.shape[0] else rep.expand((e.shape[0],) + x.shape[1:])
            gr = g.index_select(0, e) if g.shape[0] > 1 else g.expand(e.shape[0], -1)
            elem = removed.to(x.device).gather(1, gr).reshape(xr.shape)
            out.append(torch.where(elem, rr, xr))
        return tuple(out)


def patch_mask(shape: torch.Size, patch_size: int) -> Tensor:
    """Group ids of non-overlapping ``patch_size`` x ``patch_size`` patches of ``(C, H, W)`` inputs: ``(1, 1, H, W)``."""
    h, w = shape[-2], shape[-1]
    rows = torch.arange(h) // patch_size
    cols = torch.arange(w) // patch_size
    per_row = (w + patch_size - 1) // patch_size
    return (rows.reshape(-1, 1) * per_row + cols.reshape(1, -1)).reshape(1, 1, h, w)


def pixel_mask(shape: torch.Size) -> Tensor:
    """Group ids of pixels of ``(C, H, W)`` inputs (channels of a pixel form one feature): ``(1, 1, H, W)``."""
    return patch_mask(shape, 1)


def gaussian_blur(x: Tensor, sigma: float = 5.0) -> Tensor:
    """Gaussian blur of ``(N, C, H, W)`` images (reflect padding, kernel side ``2 * ceil(3 sigma) + 1``)."""
    if x.dim() != 4:
        raise ValueError(f"blur replacement needs images (N, C, H, W); received shape {tuple(x.shape)}")
    radius = max(1, int(3 * sigma + 0.999))
    c = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-(c**2) / (2 * sigma**2))
    k = k / k.sum()
    ch = x.shape[1]
    pad_h, pad_w = min(radius, x.shape[2] - 1), min(radius, x.shape[3] - 1)
    y = F.pad(x, (pad_w, pad_w, pad_h, pad_h), mode="reflect") if pad_h > 0 and pad_w > 0 else x
    kh = k[radius - pad_h: radius + pad_h + 1]
    kw = k[radius - pad_w: radius + pad_w + 1]
    y = F.conv2d(y, (kh / kh.sum()).reshape(1, 1, -1, 1).expand(ch, 1, -1, 1), groups=ch)
    return F.conv2d(y, (kw / kw.sum()).reshape(1, 1, 1, -1).expand(ch, 1, 1, -1), groups=ch)


def replacements(replacement: Any, inputs: tuple[Tensor, ...], blur_sigma: float = 5.0) -> tuple[Tensor, ...]:
    """Replacement values: ``"blur"`` (blurred inputs), or baselines (``None`` = 0, a number, tensors)."""
    if isinstance(replacement, str):
        if replacement != "blur":
            raise ValueError(f"baselines must be None, a number, a tensor, a tuple of these or 'blur'; received {replacement!r}")
        return tuple(gaussian_blur(x.detach(), blur_sigma) for x in inputs)
    return format_baselines(replacement, inputs, "baselines")
