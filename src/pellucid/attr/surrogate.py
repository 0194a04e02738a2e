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

An example whose samples, outputs or weights hold NaN/Inf (e.g. from NaN inputs) gets NaN coefficients; the
other examples of the batch are fitted as usual (never a linear-algebra failure for the whole batch).
"""
from __future__ import annotations

from typing import Any, Protocol

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


def _nonfinite(*tensors: Tensor) -> tuple[Tensor | None, tuple[Tensor, ...]]:
    """``(bad, tensors)``: ``bad`` (N,) marks examples (dim 0) with NaN/Inf in any tensor, whose rows are zeroed
    so they cannot break a batched solve (``None`` when every example is finite)."""
    bad = torch.zeros(tensors[0].shape[0], dtype=torch.bool, device=tensors[0].device)
    for t in tensors:
        bad |= ~torch.isfinite(t).reshape(t.shape[0], -1).all(1)
    if not bool(bad.any()):
        return None, tensors
    return bad, tuple(torch.where(bad.reshape((-1,) + (1,) * (t.dim() - 1)), torch.zeros_like(t), t) for t in tensors)


def _nan_examples(bad: Tensor | None, *results: Tensor) -> tuple[Tensor, ...]:
    if bad is None:
        return results
    return tuple(torch.where(bad.reshape((-1,) + (1,) * (r.dim() - 1)), torch.full_like(r, float("nan")), r) for r in results)


def weighted_lstsq(A: Tensor, y: Tensor, w: Tensor) -> Tensor:
    """``argmin_b sum_s w_s |y_s - A_s b|^2`` per example (minimum norm): ``A (N, S, D), y (N, S, K), w (N, S)``
    -> ``(N, D, K)``. Singular values below ``eps * max(S, D)`` of the largest count as zero (``pinv``'s default):
    on the CPU by LAPACK's SVD-based ``gelsd`` (no pseudo-inverse matrix is formed), elsewhere by ``pinv``."""
    sw = w.sqrt().unsqueeze(-1)
    Aw, yw = A * sw, y * sw
    if Aw.device.type == "cpu" and Aw.shape[1] and Aw.shape[2]:
        return torch.linalg.lstsq(Aw, yw, driver="gelsd").solution
    return torch.linalg.pinv(Aw) @ yw


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
        bad, (X, y, w) = _nonfinite(*_check(X, y, weights))
        Xc, yc, xm, ym = _center(X, y, w, self.fit_intercept)
        return _nan_examples(bad, *_result(weighted_lstsq(Xc, yc, w), xm, ym, dtype))


class Ridge:
    """Weighted ridge regression: minimises ``sum_s w_s (y_s - X_s b - c)^2 + alpha |b|^2`` (intercept unpenalised)."""

    def __init__(self, alpha: float = 1.0, fit_intercept: bool = True):
        self.alpha = check_nonnegative(alpha, "alpha")
        self.fit_intercept = fit_intercept

    def fit(self, X: Tensor, y: Tensor, weights: Tensor | None = None) -> tuple[Tensor, Tensor]:
        dtype = y.dtype if y.is_floating_point() else torch.get_default_dtype()
        bad, (X, y, w) = _nonfinite(*_check(X, y, weights))
        Xc, yc, xm, ym = _center(X, y, w, self.fit_intercept)
        xtw = (Xc * w.unsqueeze(-1)).transpose(1, 2)  # (N, G, S)
        gram = xtw @ Xc + self.alpha * torch.eye(X.shape[2], dtype=X.dtype, device=X.device)
        beta = torch.linalg.lstsq(gram, xtw @ yc).solution if self.alpha == 0 else torch.linalg.solve(gram, xtw @ yc)
        return _nan_examples(bad, *_result(beta, xm, ym, dtype))


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
        bad, (X, y, w) = _nonfinite(*_check(X, y, weights))
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
        return _nan_examples(bad, *_result(beta, xm, ym, dtype))


def efficient_least_squares(X: Tensor, y: Tensor, w: Tensor, total: Tensor) -> Tensor:
    """``argmin_b sum_s w_s |y_s - X_s b|^2`` subject to ``sum_g b_g = total`` (per example and output), by
    eliminating the last coefficient. ``X (N, S, G), y (N, S, K), w (N, S), total (N, K)`` -> ``(N, K, G)``."""
    bad, (X, y, w, total) = _nonfinite(*_check(X, y, w), total.double())
    g = X.shape[2]
    if g == 1:
        return _nan_examples(bad, total.unsqueeze(-1))[0]
    last = X[:, :, -1:]  # (N, S, 1)
    rest = weighted_lstsq(X[:, :, :-1] - last, y - last * total.unsqueeze(1), w)  # (N, G-1, K)
    coef = torch.cat([rest, (total - rest.sum(1)).unsqueeze(1)], dim=1)  # (N, G, K)
    return _nan_examples(bad, coef.transpose(1, 2))[0]


class SkLearnLinearModel:
    """A scikit-learn linear model as LIME's interpretable model (Captum's ``SkLearnLinearModel``): fitted with
    ``sample_weight`` once per example and output (scikit-learn is imported lazily, at the first fit).

    ``sklearn_module`` names the estimator under ``sklearn``, e.g. ``"linear_model.Lasso"``; ``kwargs`` go to its
    constructor. Batched ``fit(X (N, S, G), y (N, S, K), weights (N, S)) -> (coef (N, K, G), intercept (N, K))``;
    also Captum's ``fit(DataLoader)`` (one example: batches of ``(X, y[, weights])``) with ``representation()``
    (coefficients ``(1, G)``) and ``bias()`` of the last fit.
    """

    batched = True  # pellucid's Lime uses the batched fit

    def __init__(self, sklearn_module: str, **kwargs: Any):
        if not isinstance(sklearn_module, str) or not sklearn_module:
            raise TypeError(f"sklearn_module must name an estimator under sklearn, e.g. 'linear_model.Lasso'; "
                            f"received {sklearn_module!r}")
        self.sklearn_module, self.construct_kwargs = sklearn_module, kwargs
        self._coef: Tensor | None = None
        self._bias: Tensor | None = None

    def _estimator(self) -> Any:
        try:
            import sklearn  # noqa: F401  (lazy: an optional dependency)
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError(f"{type(self).__name__} needs scikit-learn: pip install scikit-learn") from e
        import importlib

        module, _, name = ("sklearn." + self.sklearn_module).rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"sklearn_module {self.sklearn_module!r} is not an estimator in scikit-learn") from e
        return cls(**self.construct_kwargs)

    def _fit_one(self, X: Any, y: Any, w: Any) -> tuple[Any, float]:
        est = self._estimator()
        est.fit(X, y, sample_weight=w)
        coef = est.coef_.reshape(-1)
        intercept = float(est.intercept_.reshape(-1)[0]) if hasattr(est.intercept_, "reshape") else float(est.intercept_)
        return coef, intercept

    def fit(self, X: Any, y: Tensor | None = None, weights: Tensor | None = None, **kwargs: Any) -> Any:
        from torch.utils.data import DataLoader

        if isinstance(X, DataLoader):  # Captum's form: one example
            xs, ys, ws = [], [], []
            for batch in X:
                xs.append(batch[0])
                ys.append(batch[1])
                if len(batch) > 2:
                    ws.append(batch[2])
            Xt, yt = torch.cat(xs).double(), torch.cat(ys).double()
            wt = torch.cat(ws).double() if ws else None
            coef, intercept = self._fit_one(Xt.numpy(), yt.reshape(-1).numpy(), None if wt is None else wt.numpy())
            self._coef = torch.as_tensor(coef).reshape(1, -1).float()
            self._bias = torch.tensor([intercept]).float()
            return None
        dtype = y.dtype if y.is_floating_point() else torch.get_default_dtype()
        Xd, yd, w = _check(X, y, weights)
        n, _, g = Xd.shape
        k = yd.shape[2]
        Xn, yn, wn = Xd.cpu().numpy(), yd.cpu().numpy(), w.cpu().numpy()
        coef = torch.empty((n, k, g), dtype=torch.float64)
        intercept = torch.empty((n, k), dtype=torch.float64)
        for e in range(n):
            for j in range(k):
                c, b = self._fit_one(Xn[e], yn[e, :, j], wn[e])
                coef[e, j] = torch.as_tensor(c, dtype=torch.float64)
                intercept[e, j] = b
        self._coef, self._bias = coef[-1, -1:].float(), intercept[-1, -1:].float()
        return coef.to(device=X.device, dtype=dtype), intercept.to(device=X.device, dtype=dtype)

    def representation(self) -> Tensor:
        """Coefficients ``(1, G)`` of the last fit (Captum's ``representation``)."""
        if self._coef is None:
            raise ValueError("representation() needs a fit first")
        return self._coef

    def bias(self) -> Tensor | None:
        """Intercept of the last fit."""
        return self._bias


class SkLearnLasso(SkLearnLinearModel):
    """``sklearn.linear_model.Lasso`` (Captum's default LIME surrogate is ``SkLearnLasso(alpha=0.01)``); the
    torch-native :class:`Lasso` solves the same objective for the whole batch at once and is faster."""

    def __init__(self, **kwargs: Any):
        super().__init__("linear_model.Lasso", **kwargs)


class SkLearnRidge(SkLearnLinearModel):
    """``sklearn.linear_model.Ridge`` (see also the torch-native :class:`Ridge`)."""

    def __init__(self, **kwargs: Any):
        super().__init__("linear_model.Ridge", **kwargs)


class SkLearnLinearRegression(SkLearnLinearModel):
    """``sklearn.linear_model.LinearRegression`` (see also the torch-native :class:`LinearRegression`)."""

    def __init__(self, **kwargs: Any):
        super().__init__("linear_model.LinearRegression", **kwargs)
