"""Interpretable (surrogate) models for LIME and Kernel SHAP, fitted in torch for all examples of a batch at once.

Every model fits ``y ~ X @ coef + intercept`` per example with sample weights:
``fit(X (N, S, G), y (N, S, K), weights (N, S)) -> (coef (N, K, G), intercept (N, K))``, where ``N`` examples
each have ``S`` samples of ``G`` interpretable features and ``K`` outputs. Solves run in float64.

* :class:`LinearRegression`: weighted least squares (minimum-norm solution when under-determined, e.g. fewer
  samples than features).
* :class:`Ridge`: ``sum_s w_s (y_s - X_s b - c)^2 + alpha |b|^2`` (scikit-learn's Ridge objective).
* :class:`Lasso`: ``1/(2 sum w) sum_s w_s (y_s - X_s b - c)^2 + alpha |b|_1`` (scikit-learn's Lasso objective),
  by FISTA (Beck & Teboulle, 2009, SIAM J. Imaging Sciences 2(1)).
* :func:`efficient_least_squares`: weighted least squares under the constraint ``sum(coef) = total`` (Kernel SHAP).
"""
from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from ..core.errors import check_nonnegative, check_positive_int


class Surrogate(Protocol):
    def fit(self, X: Tensor, y: Tensor, weights: Tensor | None = None) -> tuple[Tensor, Tensor]: ...


def _check(X: Tensor, y: Tensor, weights: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    if X.dim() != 3:
        raise ValueError(f"X must have shape (N, S, G); received {tuple(X.shape)}")
    if y.dim() == 2:
        y = y.unsqueeze(-1)
    if y.dim() != 3 or y.shape[:2] != X.shape[:2]:
        raise ValueError(f"y must have shape (N, S) or (N, S, K) matching X {tuple(X.shape)}; received {tuple(y.shape)}")
    w = torch.ones(X.shape[:2], dtype=torch.float64, device=X.device) if weights is None else weights.double()
    if w.shape != X.shape[:2]:
        raise ValueError(f"weights must have shape (N, S) = {tuple(X.shape[:2])}; received {tuple(w.shape)}")
    if bool((w < 0).any()):
        raise ValueError("weights must be non-negative")
    return X.double(), y.double(), w


def weighted_lstsq(A: Tensor, y: Tensor, w: Tensor) -> Tensor:
    """``argmin_b sum_s w_s |y_s - A_s b|^2`` per example (minimum norm): ``A (N, S, D), y (N, S, K), w (N, S)``
    -> ``(N, D, K)``."""
    sw = w.sqrt().unsqueeze(-1)
    return torch.linalg.pinv(A * sw) @ (y * sw)


def _center(X: Tensor, y: Tensor, w: Tensor, fit_intercept: bool):
    if not fit_intercept:
        return X, y, None, None
    total = w.sum(1, keepdim=True).clamp(min=torch.finfo(torch.float64).tiny).unsqueeze(-1)
    xm = (X * w.unsqueeze(-1)).sum(1, keepdim=True) / total
    ym = (y * w.unsqueeze(-1)).sum(1, keepdim=True) / total
    return X - xm, y - ym, xm, ym


def _result(beta: Tensor, xm: Tensor | None, ym: Tensor | None, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """``beta (N, G, K)`` -> ``coef (N, K, G)`` and the intercept ``(N, K)``."""
    if xm is None:
        intercept = torch.zeros(beta.shape[0], beta.shape[2], dtype=beta.dtype, device=beta.device)
    else:
        intercept = (ym - xm @ beta)[:, 0]
    return beta.transpose(1, 2).to(dtype), intercept.to(dtype)


class LinearRegression:
    """Weighted least squares (with an intercept by default); the minimum-norm solution when under-determined."""

    def __init__(self, fit_intercept: bool = True):
        self.fit_intercept = fit_intercept

    def fit(self, X: Tensor, y: Tensor, weights: Tensor | None = None) -> tuple[Tensor, Tensor]:
        dtype = y.dtype if y.is_floating_point() else torch.get_default_dtype()
        X, y, w = _check(X, y, weights)
        Xc, yc, xm, ym = _center(X, y, w, self.fit_intercept)
        return _result(weighted_lstsq(Xc, yc, w), xm, ym, dtype)


class Ridge:
    """Weighted ridge regression: minimises ``sum_s w_s (y_s - X_s b - c)^2 + alpha |b|^2`` (intercept unpenalised)."""

    def __init__(self, alpha: float = 1.0, fit_intercept: bool = True):
        self.alpha = check_nonnegative(alpha, "alpha")
        self.fit_intercept = fit_intercept

    def fit(self, X: Tensor, y: Tensor, weights: Tensor | None = None) -> tuple[Tensor, Tensor]:
        dtype = y.dtype if y.is_floating_point() else torch.get_default_dtype()
        X, y, w = _check(X, y, weights)
        Xc, yc, xm, ym = _center(X, y, w, self.fit_intercept)
        xtw = (Xc * w.unsqueeze(-1)).transpose(1, 2)  # (N, G, S)
        gram = xtw @ Xc + self.alpha * torch.eye(X.shape[2], dtype=X.dtype, device=X.device)
        beta = torch.linalg.lstsq(gram, xtw @ yc).solution if self.alpha == 0 else torch.linalg.solve(gram, xtw @ yc)
        return _result(beta, xm, ym, dtype)


class Lasso:
    """Weighted Lasso: minimises ``1/(2 sum w) sum_s w_s (y_s - X_s b - c)^2 + alpha |b|_1`` by FISTA, for all
    examples and outputs at once; stops when no coefficient moves more than ``tol`` (or after ``max_iter``)."""

    def __init__(self, alpha: float = 0.01, fit_intercept: bool = True, max_iter: int = 5000, tol: float = 1e-9):
        self.alpha = check_nonnegative(alpha, "alpha")
        self.fit_intercept = fit_intercept
        self.max_iter = check_positive_int(max_iter, "max_iter")
        self.tol = check_nonnegative(tol, "tol")

    def fit(self, X: Tensor, y: Tensor, weights: Tensor | None = None) -> tuple[Tensor, Tensor]:
        dtype = y.dtype if y.is_floating_point() else torch.get_default_dtype()
        X, y, w = _check(X, y, weights)
        Xc, yc, xm, ym = _center(X, y, w, self.fit_intercept)
        total = w.sum(1).clamp(min=torch.finfo(torch.float64).tiny).reshape(-1, 1, 1)
        xtw = (Xc * w.unsqueeze(-1)).transpose(1, 2)
        gram = xtw @ Xc / total  # (N, G, G)
        rhs = xtw @ yc / total  # (N, G, K)
        lip = torch.linalg.eigvalsh(gram)[:, -1].clamp(min=1e-12).reshape(-1, 1, 1)
        step, thresh = 1.0 / lip, self.alpha / lip
        beta = torch.zeros_like(rhs)
        z, t = beta, 1.0
        for it in range(self.max_iter):
            u = z - step * (gram @ z - rhs)
            new = torch.sign(u) * (u.abs() - thresh).clamp(min=0)
            t_new = (1 + (1 + 4 * t * t) ** 0.5) / 2
            z = new + ((t - 1) / t_new) * (new - beta)
            moved = (new - beta).abs().max()
            beta, t = new, t_new
            if it % 10 == 9 and float(moved) <= self.tol:
                break
        return _result(beta, xm, ym, dtype)


def efficient_least_squares(X: Tensor, y: Tensor, w: Tensor, total: Tensor) -> Tensor:
    """``argmin_b sum_s w_s |y_s - X_s b|^2`` subject to ``sum_g b_g = total`` (per example and output), by
    eliminating the last coefficient. ``X (N, S, G), y (N, S, K), w (N, S), total (N, K)`` -> ``(N, K, G)``."""
    X, y, w = _check(X, y, w)
    total = total.double()
    g = X.shape[2]
    if g == 1:
        return total.unsqueeze(-1)
    last = X[:, :, -1:]  # (N, S, 1)
    rest = weighted_lstsq(X[:, :, :-1] - last, y - last * total.unsqueeze(1), w)  # (N, G-1, K)
    coef = torch.cat([rest, (total - rest.sum(1)).unsqueeze(1)], dim=1)  # (N, G, K)
    return coef.transpose(1, 2)
