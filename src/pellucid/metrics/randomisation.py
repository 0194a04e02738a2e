"""Randomisation sanity checks (Adebayo et al., 2018, "Sanity Checks for Saliency Maps", arXiv:1810.03292;
Sixt, Granz & Landgraf, 2020, "When Explanations Lie", arXiv:1912.09818).

The model-parameter randomisation test re-initialises layers of a *deep copy* of the model (the user's model is
never written) and measures how similar the explanation stays. An explanation that does not change when the
weights it should explain are destroyed cannot be explaining them.

Explainers: an attribution class (``Saliency``; built on each model with ``method_kwargs``), an attribution
instance or a bound ``attribute`` method (re-bound to the copy by deep-copying it with the user's model mapped to
the copy, so wrappers such as ``NoiseTunnel(Saliency(model))`` work), or a plain function ``factory(model) ->
explanation_func``. Re-binding maps the model object itself: an explainer built on a closure over the model
(``Saliency(lambda x: model(x).softmax(1))``) would keep explaining the intact model; use a factory then.
"""
from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from ..core.inputs import format_inputs
from ._base import flat, metric, seeded
from .similarity import _corr, ranks, resolve_similarity, spearman, spearman_abs


def bind_explainer(method: Any, model: nn.Module, original: nn.Module | None = None, **method_kwargs: Any) -> Callable:
    """An explanation function ``(inputs, **kwargs) -> attributions`` for ``model`` (see the module docstring)."""
    if isinstance(method, type):
        return method(model, **method_kwargs).attribute
    if hasattr(method, "attribute") and not inspect.isroutine(method):
        memo = {id(original): model} if original is not None else {}
        return copy.deepcopy(method, memo).attribute
    if inspect.ismethod(method):
        memo = {id(original): model} if original is not None else {}
        return copy.deepcopy(method, memo)
    if callable(method):
        fn = method(model)
        if not callable(fn):
            raise TypeError("a function given as method must be a factory model -> explanation_func; it returned "
                            f"{type(fn).__name__}")
        return fn
    raise TypeError("method must be an attribution class, an attribution instance, a bound attribute method or a "
                    f"factory model -> explanation_func; received {type(method).__name__}")


def default_layers(model: nn.Module) -> list[str]:
    """Names of modules with parameters of their own, top (last registered) first."""
    names = [name for name, m in model.named_modules() if any(True for _ in m.parameters(recurse=False))]
    return names[::-1]


def randomise_module(module: nn.Module, seed: int) -> None:
    """Re-initialise ``module``'s own parameters in place: its ``reset_parameters()`` under ``seed`` if it has one,
    else ``N(0, std^2)`` with each parameter's current standard deviation."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
            return
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in module.parameters(recurse=False):
                std = float(p.std()) if p.numel() > 1 else 1.0
                p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype).to(p.device) * (std or 1.0))


@dataclass
class RandomisationResult:
    """Result of :func:`model_parameter_randomisation`.

    Attributes:
        layers: names of the randomised layers, in order (top first); with ``mode="cascading"`` entry ``i`` has
            layers ``0..i`` randomised.
        similarity: ``{measure name: (L, N) tensor}``.
        original: attributions of the intact model.
        attributions: per layer, if requested.
    """

    layers: list[str]
    similarity: dict[str, Tensor]
    original: Any
    attributions: list[Any] = field(default_factory=list)


def model_parameter_randomisation(
    model: nn.Module,
    method: Any,
    inputs: Any,
    target: Any = None,
    *,
    layers: Sequence[str] | None = None,
    mode: str = "cascading",
    similarity: Any = ("spearman", "spearman_abs", "ssim"),
    generator: torch.Generator | None = None,
    seed: int | None = None,
    method_kwargs: dict | None = None,
    attribute_kwargs: dict | None = None,
    return_attributions: bool = False,
) -> RandomisationResult:
    """The model-parameter randomisation test.

    Args:
        model: the model (only a deep copy is randomised).
        method: the explainer (see the module docstring).
        inputs, target: passed to the explainer with ``attribute_kwargs``.
        layers: module names to randomise (default :func:`default_layers`: every module with parameters, top first).
        mode: ``"cascading"`` (layers randomised cumulatively from the top) or ``"independent"`` (one at a time,
            the others intact).
        similarity: a measure name or callable, or a sequence of them (see
            :func:`pellucid.metrics.similarity.resolve_similarity`); ``"ssim"`` is skipped for non-image inputs.
        generator, seed: the re-initialisation is reproducible with either.
    Returns a :class:`RandomisationResult`. Similarities near 1 after randomisation flag an explanation that does
    not depend on the model's parameters.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module (its parameters are randomised); received {type(model).__name__}")
    if mode not in ("cascading", "independent"):
        raise ValueError(f"mode must be 'cascading' or 'independent'; received {mode!r}")
    kwargs = dict(attribute_kwargs or {})
    if target is not None:
        kwargs["target"] = target
    sims = similarity if isinstance(similarity, (list, tuple)) else (similarity,)
    measures = {s if isinstance(s, str) else getattr(s, "__name__", "similarity"): resolve_similarity(s) for s in sims}
    xs, _ = format_inputs(inputs)
    work = copy.deepcopy(model)
    names = list(layers) if layers is not None else default_layers(work)
    modules = dict(work.named_modules())
    for name in names:
        if name not in modules:
            raise ValueError(f"layers: {name!r} is not a module of the model; names are those of model.named_modules()")
    with seeded(generator, seed) as gen:
        seeds = torch.randint(0, 2**62, (len(names),), generator=gen).tolist()
    explain = bind_explainer(method, work, model, **(method_kwargs or {}))
    original = explain(inputs, **kwargs)
    scores: dict[str, list[Tensor]] = {k: [] for k in measures}
    cached = {k: _original_ranks(fn, original) for k, fn in measures.items()}
    per_layer = []
    for name, s in zip(names, seeds):
        module = modules[name]
        saved = None if mode == "cascading" else {k: v.detach().clone() for k, v in module.state_dict().items()}
        randomise_module(module, int(s))
        attr = explain(inputs, **kwargs)
        for k, fn in measures.items():
            if cached[k] is not None:  # Spearman: the original's ranks are computed once
                scores[k].append(_corr(cached[k], ranks(_abs_if(fn, flat(attr).double()))))
            else:
                scores[k].append(_similarity(fn, k, original, attr))
        if return_attributions:
            per_layer.append(attr)
        if saved is not None:
            module.load_state_dict(saved)
    sim = {k: torch.stack(v) for k, v in scores.items() if v and v[0] is not None}
    return RandomisationResult(names, sim, original, per_layer)


def _abs_if(fn: Callable, x: Tensor) -> Tensor:
    return x.abs() if fn is spearman_abs else x


def _original_ranks(fn: Callable, original: Any) -> Tensor | None:
    if fn is spearman or fn is spearman_abs:
        return ranks(_abs_if(fn, flat(original).double()))
    return None


def _similarity(fn: Callable, name: str, a: Any, b: Any) -> Tensor | None:
    if name == "ssim":
        if isinstance(a, tuple) or a.dim() < 3:
            return None
        return fn(a.reshape(a.shape[0], -1, *a.shape[-2:]) if a.dim() > 4 else a, b.reshape(b.shape[0], -1, *b.shape[-2:]) if b.dim() > 4 else b)
    return fn(a, b)


@metric("parameter_randomisation", False, "randomisation", needs=("model", "method"),
        paper="Adebayo et al., 2018, 'Sanity Checks for Saliency Maps', arXiv:1810.03292")
def parameter_randomisation(model: nn.Module, method: Any, inputs: Any, target: Any = None, *,
                            similarity: Any = "spearman", mode: str = "cascading", **kwargs: Any) -> Tensor:
    """One number per example for tables: the mean, over the randomised layers, of the similarity between the
    original explanation and the randomised model's. ``(N,)``; lower is better."""
    res = model_parameter_randomisation(model, method, inputs, target, similarity=similarity, mode=mode, **kwargs)
    return next(iter(res.similarity.values())).double().mean(0)


@metric("random_logit", False, "randomisation", needs=("explain",),
        paper="Sixt, Granz & Landgraf, 2020, 'When Explanations Lie', arXiv:1912.09818")
def random_logit(explanation_func: Callable, inputs: Any, target: Any, n_classes: int, *,
                 similarity: Any = "spearman", generator: torch.Generator | None = None, seed: int | None = None,
                 **kwargs: Any) -> Tensor:
    """Similarity between the explanation of ``target`` and of a uniformly drawn *other* class. ``(N,)``; lower is
    better (a class-insensitive explanation scores 1)."""
    xs, _ = format_inputs(inputs)
    n = xs[0].shape[0]
    t = torch.as_tensor(target).long().reshape(-1)
    t = t.expand(n) if t.numel() == 1 else t
    if t.shape[0] != n:
        raise ValueError(f"target must be an int or one class per example ({n}); received {t.shape[0]} entries")
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
        raise ValueError(f"n_classes must be an int >= 2; received {n_classes!r}")
    with seeded(generator, seed) as gen:
        other = (t + torch.randint(1, n_classes, (n,), generator=gen)) % n_classes
    fn = resolve_similarity(similarity)
    a = explanation_func(inputs, target=t.tolist(), **kwargs)
    b = explanation_func(inputs, target=other.tolist(), **kwargs)
    return fn(a, b).double() if not isinstance(a, tuple) else fn(flat(a), flat(b)).double()
