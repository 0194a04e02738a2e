"""Noisy linear imputation (Rong et al., 2022, ROAD, arXiv:2202.00449), batched over rows.

Each removed pixel takes the weighted mean of its in-image 8 neighbours (weight 1/6 for the 4 direct, 1/12 for the
4 diagonal ones); all removed pixels are solved jointly. Multiplying each equation by the pixel's total neighbour
weight gives a symmetric positive definite system (a graph Laplacian restricted to the removed pixels), solved by
conjugate gradients on all rows and channels at once with convolutions.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

_K = torch.tensor([[1 / 12, 1 / 6, 1 / 12], [1 / 6, 0.0, 1 / 6], [1 / 12, 1 / 6, 1 / 12]], dtype=torch.float64)


def noisy_linear_imputation(x: Tensor, removed: Tensor, noise: Tensor | None = None, tol: float = 1e-6,
                            max_iter: int = 1000) -> Tensor:
    """Impute the ``removed`` pixels of ``x``.

    Args:
        x: images ``(R, C, H, W)``.
        removed: ``(R, 1, H, W)`` or ``(R, C, H, W)`` bool.
        noise: added to the imputed pixels (same shape as ``x``), or None.
        tol, max_iter: conjugate-gradient stopping rule (relative residual).
    Returns ``x`` with removed pixels replaced (dtype of ``x``).
    """
    r, c, h, w = x.shape
    # every (row, channel) is its own system: solve them as R*C single-channel images (fast convolution path)
    m = removed.expand(r, c, h, w).reshape(r * c, 1, h, w).to(torch.float64)
    xd = x.detach().reshape(r * c, 1, h, w).to(torch.float64)
    k = _K.to(x.device).reshape(1, 1, 3, 3)

    def conv(t: Tensor) -> Tensor:
        return F.conv2d(t, k, padding=1)

    deg = conv(torch.ones(1, 1, h, w, dtype=torch.float64, device=x.device))

    def apply_a(u: Tensor) -> Tensor:
        return m * (deg * u - conv(m * u))

    b = m * conv((1 - m) * xd)
    u = torch.zeros_like(xd)
    res = b.clone()
    p = res.clone()
    rs = (res * res).sum((1, 2, 3))
    b_norm = (b * b).sum((1, 2, 3)).clamp_min(1e-300)
    for _ in range(max_iter):
        if bool((rs <= tol**2 * b_norm).all()):
            break
        ap = apply_a(p)
        pap = (p * ap).sum((1, 2, 3))
        alpha = torch.where(pap > 0, rs / pap.clamp_min(1e-300), torch.zeros_like(pap)).reshape(-1, 1, 1, 1)
        u = u + alpha * p
        res = res - alpha * ap
        rs_new = (res * res).sum((1, 2, 3))
        beta = torch.where(rs > 0, rs_new / rs.clamp_min(1e-300), torch.zeros_like(rs)).reshape(-1, 1, 1, 1)
        p = res + beta * p
        rs = rs_new
    out = torch.where(m > 0, u, xd).reshape(r, c, h, w)
    if noise is not None:
        out = out + m.reshape(r, c, h, w) * noise.to(out)
    return out.to(x.dtype)
