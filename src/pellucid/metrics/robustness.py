"""Robustness: how much does an explanation change under small input perturbations?

The explanation function runs once on the original inputs and once on all ``N x n_perturb_samples`` perturbed
rows together (so an engine-based method batches them through its own memory-budgeted chunks); per-example keyword
arguments (``target`` lists, batch-sized tensors such as ``baselines``) are expanded with the rows.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping

import torch
from torch import Tensor

from ..core.inputs import format_inputs
from ._base import check_int, flat, metric, seeded


def default_perturb_func(inputs, perturb_radius: float = 0.02, generator: torch.Generator | None = None):
    """Uniform noise in the L-infinity ball: ``x + U(-r, r)`` (tuples in, tuples out). Captum's default."""
    xs = inputs if isinstance(inputs, tuple) else (inputs,)
    out = tuple(x + (torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device) * 2 - 1) * perturb_radius
                for x in xs)
    return out if isinstance(inputs, tuple) else out[0]


def call_perturb_func(perturb_func: Callable, inputs: Any, perturb_radius: float) -> Any:
    """``perturb_func(inputs, perturb_radius)``, or ``perturb_func(inputs)`` when it takes one parameter (Captum's
    rule: the radius is passed only to functions with more than one parameter)."""
    if not callable(perturb_func):
        raise TypeError(f"perturb_func must be callable perturb_func(inputs[, perturb_radius]); received "
                        f"{type(perturb_func).__name__}")
    try:
        n_params = len(inspect.signature(perturb_func).parameters)
    except (TypeError, ValueError):  # builtins without a signature: pass the radius
        n_params = 2
    return perturb_func(inputs, perturb_radius) if n_params > 1 else perturb_func(inputs)


def _expand(value: Any, n: int, s: int) -> Any:
    if isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == n:
        return value.repeat_interleave(s, 0)
    if isinstance(value, list) and len(value) == n:
        return [v for v in value for _ in range(s)]
    if isinstance(value, tuple):
        return tuple(_expand(v, n, s) for v in value)
    if isinstance(value, Mapping):  # forward_kwargs
        return {k: _expand(v, n, s) for k, v in value.items()}
    return value


def _slice(value: Any, n: int, start: int, stop: int) -> Any:
    if isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == n:
        return value[start:stop]
    if isinstance(value, list) and len(value) == n:
        return value[start:stop]
    if isinstance(value, tuple):
        return tuple(_slice(v, n, start, stop) for v in value)
    if isinstance(value, Mapping):
        return {k: _slice(v, n, start, stop) for k, v in value.items()}
    return value


def perturbed_explanations(explanation_func: Callable, inputs: Any, perturb_func: Callable, perturb_radius: float,
                           n_perturb_samples: int, max_examples_per_batch: int | None, generator, seed,
                           kwargs: dict) -> tuple[Tensor, Tensor, Tensor]:
    """``(e(x) (N, F), e(x') (N, S, F), x' - x (N, S, Fx))`` with explanations flattened over all inputs."""
    if not callable(explanation_func):
        raise TypeError(f"explanation_func must be callable (e.g. Saliency(model).attribute); received {type(explanation_func).__name__}")
    xs, was_tuple = format_inputs(inputs)
    n = xs[0].shape[0]
    s = check_int(n_perturb_samples, "n_perturb_samples")
    block = n if max_examples_per_batch is None else check_int(max_examples_per_batch, "max_examples_per_batch")
    e0 = flat(format_inputs(explanation_func(inputs, **kwargs), "explanation")[0]).double()
    ep, dx = [], []
    with seeded(generator, seed) as gen:
        for start in range(0, n, block):
            stop = min(n, start + block)
            rep = tuple(x[start:stop].repeat_interleave(s, 0) for x in xs)
            arg = rep if was_tuple else rep[0]
            if perturb_func is default_perturb_func:
                pert = default_perturb_func(arg, perturb_radius, gen)
            else:
                pert = call_perturb_func(perturb_func, arg, perturb_radius)
            pxs = format_inputs(pert, "perturbed inputs")[0]
            kw = {k: _expand(_slice(v, n, start, stop), stop - start, s) for k, v in kwargs.items()}
            e = explanation_func(pert, **kw)
            ep.append(flat(format_inputs(e, "explanation")[0]).double())
            dx.append(flat(tuple(p - r for p, r in zip(pxs, rep))).double())
    ep_t = torch.cat(ep).reshape(n, s, -1)
    dx_t = torch.cat(dx).reshape(n, s, -1)
    return e0, ep_t, dx_t


def _norm(t: Tensor, norm_ord: Any) -> Tensor:
    if norm_ord == "fro":
        norm_ord = 2
    return torch.linalg.vector_norm(t, ord=norm_ord, dim=-1)


def _ratios(explanation_func, inputs, perturb_func, perturb_radius, n_perturb_samples, norm_ord,
            max_examples_per_batch, generator, seed, kwargs) -> Tensor:
    e0, ep, _ = perturbed_explanations(explanation_func, inputs, perturb_func, perturb_radius, n_perturb_samples,
                                       max_examples_per_batch, generator, seed, kwargs)
    num = _norm(ep - e0.unsqueeze(1), norm_ord)
    den = _norm(e0, norm_ord).unsqueeze(1)
    return torch.where(den > 0, num / den.clamp_min(1e-300), num)


@metric("sensitivity_max", False, "robustness", needs=("explain",),
        paper="Yeh et al., 2019, 'On the (In)fidelity and Sensitivity of Explanations', arXiv:1901.09392")
def sensitivity_max(explanation_func: Callable, inputs: Any, perturb_func: Callable = default_perturb_func,
                    perturb_radius: float = 0.02, n_perturb_samples: int = 10, norm_ord: Any = "fro",
                    max_examples_per_batch: int | None = None, *, generator: torch.Generator | None = None,
                    seed: int | None = None, **kwargs: Any) -> Tensor:
    """``max_{x'} ||e(x') - e(x)|| / ||e(x)||`` over ``n_perturb_samples`` perturbations (Captum-compatible).

    ``perturb_func(inputs, perturb_radius) -> perturbed inputs`` (default: uniform noise in the L-infinity ball), or
    ``perturb_func(inputs)`` for a function of one parameter (as Captum decides, by the signature);
    ``kwargs`` go to ``explanation_func`` (``target=``, ``baselines=``, ...). Where ``||e(x)|| = 0`` the unnormalised
    difference is returned. ``(N,)``; lower is better.
    """
    return _ratios(explanation_func, inputs, perturb_func, perturb_radius, n_perturb_samples, norm_ord,
                   max_examples_per_batch, generator, seed, kwargs).amax(1)


@metric("avg_sensitivity", False, "robustness", needs=("explain",),
        paper="Yeh et al., 2019, arXiv:1901.09392; Bhatt, Weller & Moura, 2020, arXiv:2005.00631")
def avg_sensitivity(explanation_func: Callable, inputs: Any, perturb_func: Callable = default_perturb_func,
                    perturb_radius: float = 0.02, n_perturb_samples: int = 10, norm_ord: Any = "fro",
                    max_examples_per_batch: int | None = None, *, generator: torch.Generator | None = None,
                    seed: int | None = None, **kwargs: Any) -> Tensor:
    """As :func:`sensitivity_max` with the mean over perturbations instead of the maximum. ``(N,)``; lower is better."""
    return _ratios(explanation_func, inputs, perturb_func, perturb_radius, n_perturb_samples, norm_ord,
                   max_examples_per_batch, generator, seed, kwargs).mean(1)


@metric("local_lipschitz_estimate", False, "robustness", needs=("explain",),
        paper="Alvarez-Melis & Jaakkola, 2018, 'On the Robustness of Interpretability Methods', arXiv:1806.08049")
def local_lipschitz_estimate(explanation_func: Callable, inputs: Any, perturb_func: Callable = default_perturb_func,
                             perturb_radius: float = 0.02, n_perturb_samples: int = 10,
                             max_examples_per_batch: int | None = None, *, generator: torch.Generator | None = None,
                             seed: int | None = None, **kwargs: Any) -> Tensor:
    """``max_{x'} ||e(x) - e(x')||_2 / ||x - x'||_2`` over sampled neighbours ``x'`` (all inputs concatenated).
    ``(N,)``; lower is better."""
    e0, ep, dx = perturbed_explanations(explanation_func, inputs, perturb_func, perturb_radius, n_perturb_samples,
                                        max_examples_per_batch, generator, seed, kwargs)
    num = torch.linalg.vector_norm(ep - e0.unsqueeze(1), dim=-1)
    den = torch.linalg.vector_norm(dx, dim=-1)
    return torch.where(den > 0, num / den.clamp_min(1e-300), torch.zeros_like(num)).amax(1)
