"""Definitions the DeepLift rule tests compare against (shared by test_deeplift_rules and test_deeplift_fused)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def reference_pool_backward(x, x0, g, kernel, stride):
    """Definition, input-sized: every window's dy * (max(y, y0) - y0) goes to x's winner and dy * (y - max(y, y0))
    to x0's winner; each position divides what it received by its x - x0, or, where |x - x0| < eps, takes the
    plain max-pool gradient instead."""
    y, ix = F.max_pool2d(x, kernel, stride, return_indices=True)
    y0, i0 = F.max_pool2d(x0, kernel, stride, return_indices=True)
    cross = torch.maximum(y, y0)
    flat = lambda t: t.reshape(t.shape[0], t.shape[1], -1)  # noqa: E731
    num = torch.zeros_like(flat(x))
    num.scatter_add_(2, flat(ix), flat(g * (cross - y0))).scatter_add_(2, flat(i0), flat(g * (y - cross)))
    plain = torch.zeros_like(flat(x)).scatter_add_(2, flat(ix), flat(g))
    dx = flat(x - x0)
    small = dx.abs() < 1e-10
    return torch.where(small, plain, num / torch.where(small, torch.ones_like(dx), dx)).reshape(x.shape)
