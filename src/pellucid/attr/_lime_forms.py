"""Captum's per-sample forms of LIME's pluggable parts, run inside pellucid's batched LIME.

Captum calls ``perturb_func(original, **kwargs) -> (1, G)`` binary (or a generator function yielding such samples)
and ``similarity_func(original, perturbed, interpretable, **kwargs) -> float`` once per sample, on one example
(batch 1; the whole batch in aggregate mode), with the keywords ``baselines``, ``feature_mask`` and
``num_interp_features``; its interpretable models (``captum._utils.models.Model``: ``SkLearnLasso``, ...) have
``fit(DataLoader)`` and ``representation()``. pellucid's own forms take whole batches (see :mod:`.lime`).

Detection: a callable that accepts ``**kwargs`` (every Captum-valid one does, since Captum passes those keywords)
or a generator function is the per-sample form; any other callable is the batched form. Captum's
``get_exp_kernel_similarity_function`` kernel is recognised and replaced by the batched kernel with the same
distance and width (the batched fast path). An interpretable model with ``representation()`` and no ``batched``
flag is fitted the Captum way, one example and output at a time.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

import torch
from torch import Tensor

from ..core.inputs import restore_form
from ..core.perturb import FeatureMask


def takes_kwargs(fn: Callable) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def is_per_sample(fn: Callable) -> bool:
    """True for Captum's per-sample form of ``perturb_func`` / ``similarity_func`` (see module docstring)."""
    return inspect.isgeneratorfunction(fn) or takes_kwargs(fn)


def captum_kernel_settings(fn: Callable) -> tuple[str, float] | None:
    """``(distance_mode, kernel_width)`` of a kernel made by Captum's ``get_exp_kernel_similarity_function``."""
    if not getattr(fn, "__qualname__", "").endswith("get_exp_kernel_similarity_function.<locals>.default_exp_kernel"):
        return None
    try:
        found = inspect.getclosurevars(fn).nonlocals
    except (TypeError, ValueError):
        return None
    return found.get("distance_mode", "cosine"), float(found.get("kernel_width", 1.0))


def is_captum_model(model: Any) -> bool:
    """An interpretable model in Captum's form (``fit(DataLoader)``, ``representation()``)."""
    return callable(getattr(model, "representation", None)) and not getattr(model, "batched", False)


class SampleContext:
    """What Captum's per-sample callables receive: one example (or the whole batch in aggregate mode) in the
    user's form, and the keywords ``baselines``, ``feature_mask`` (group ids ``0 .. G-1`` shaped like the
    example) and ``num_interp_features``."""

    def __init__(self, inputs: tuple[Tensor, ...], was_tuple: bool, bases: tuple[Tensor, ...], mask: FeatureMask):
        self.inputs, self.was_tuple, self.bases, self.mask = inputs, was_tuple, bases, mask

    def form(self, ts: tuple[Tensor, ...]) -> Any:
        return restore_form(ts, self.was_tuple)

    def original(self, e: int | None) -> Any:
        """Example ``e`` as a batch of one, or the whole batch (``e=None``, aggregate mode)."""
        return self.form(self.inputs if e is None else tuple(x[e : e + 1] for x in self.inputs))

    def kwargs(self, e: int | None) -> dict[str, Any]:
        bases, ids = [], []
        for x, b, m in zip(self.inputs, self.bases, self.mask.ids):
            if e is None:
                bases.append(b)
                ids.append(m[0].reshape((1,) + tuple(x.shape[1:])))
            else:
                bases.append(b[e : e + 1] if b.shape[0] > 1 else b)
                ids.append(m[e if m.shape[0] > 1 else 0].reshape((1,) + tuple(x.shape[1:])))
        return {"baselines": self.form(tuple(bases)), "feature_mask": self.form(tuple(ids)),
                "num_interp_features": self.mask.n_groups}


def per_sample_perturbations(fn: Callable, ctx: SampleContext, n_draw: int, n_samples: int) -> Tensor:
    """``(n_draw, n_samples, G)`` bool from Captum's per-sample ``perturb_func`` (called ``n_samples`` times per
    example, or once per example if it is a generator function, then advanced ``n_samples`` times)."""
    g = ctx.mask.n_groups
    aggregate = n_draw != ctx.inputs[0].shape[0] or n_draw == 1
    out = torch.empty((n_draw, n_samples, g), dtype=torch.bool)
    for e in range(n_draw):
        which = None if aggregate else e
        orig, kw = ctx.original(which), ctx.kwargs(which)
        stream = fn(orig, **kw) if inspect.isgeneratorfunction(fn) else None
        for s in range(n_samples):
            try:
                sample = next(stream) if stream is not None else fn(orig, **kw)
            except StopIteration:
                raise ValueError(f"perturb_func (a generator) stopped after {s} samples; n_samples is {n_samples}") from None
            if not isinstance(sample, Tensor) or sample.numel() != g:
                raise ValueError(
                    f"perturb_func must return a binary tensor of shape (1, num_interp_features) = (1, {g}); returned "
                    f"{tuple(sample.shape) if isinstance(sample, Tensor) else type(sample).__name__}"
                )
            out[e, s] = sample.reshape(g).to("cpu") != 0
    return out


def per_sample_similarity(fn: Callable, ctx: SampleContext) -> Callable[[tuple, tuple, Tensor, Tensor], Tensor]:
    """Batched ``similarity(original, perturbed, interpretable, ex) -> (R,)`` calling Captum's per-sample
    ``similarity_func`` once per row. Rows shaped ``(1, N, ...)`` (aggregate mode) hold the whole batch."""

    def similarity(original: tuple, perturbed: tuple, interpretable: Tensor, ex: Tensor) -> Tensor:
        aggregate = original[0].dim() == ctx.inputs[0].dim() + 1
        out = torch.empty(interpretable.shape[0], dtype=torch.float64)
        for r in range(interpretable.shape[0]):
            if aggregate:
                orig, pert, kw = ctx.original(None), ctx.form(tuple(p[r] for p in perturbed)), ctx.kwargs(None)
            else:
                e = int(ex[r])
                orig, kw = ctx.original(e), ctx.kwargs(e)
                pert = ctx.form(tuple(p[r : r + 1] for p in perturbed))
            w = fn(orig, pert, interpretable[r : r + 1].long(), **kw)
            if isinstance(w, Tensor):
                if w.numel() != 1:
                    raise ValueError(f"similarity_func must return one number per sample; returned shape {tuple(w.shape)}")
                w = w.item()
            out[r] = float(w)
        return out

    return similarity


def fit_captum_model(model: Any, X: Tensor, y: Tensor, weights: Tensor) -> Tensor:
    """Coefficients ``(N, K, G)`` of a Captum-style interpretable model fitted per example and output on
    ``X (N, S, G)``, ``y (N, S, K)``, ``weights (N, S)`` (one ``fit(DataLoader)`` + ``representation()`` each,
    as Captum's Lime does per example)."""
    from torch.utils.data import DataLoader, TensorDataset

    n, s, g = X.shape
    k = y.shape[2]
    coef = torch.empty((n, k, g), dtype=torch.float64)
    for e in range(n):
        for j in range(k):
            data = TensorDataset(X[e].float().cpu(), y[e, :, j].float().cpu(), weights[e].float().cpu())
            model.fit(DataLoader(data, batch_size=s))
            rep = model.representation()
            rep = torch.as_tensor(rep).reshape(-1)
            if rep.numel() != g:
                raise ValueError(f"interpretable_model.representation() must hold one coefficient per feature ({g}); "
                                 f"returned {rep.numel()} values")
            coef[e, j] = rep.double()
    return coef
