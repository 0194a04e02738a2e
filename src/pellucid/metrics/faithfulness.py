"""Faithfulness: does removing what the attribution calls important change the model's output accordingly?

Every metric evaluates all perturbed rows of all examples through the engine's batcher (rows = examples x
perturbations, example-major, memory-budgeted chunks); results do not depend on the chunking. Random metrics take
``generator=`` or ``seed=``.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor

from ..core.inputs import format_inputs
from ..core.targets import TargetType
from ._base import (check_fraction, check_int, evaluator, format_attributions, metric, rand_like, score_rows,
                    seeded)
from ._features import Groups, patch_mask, replacements
from ._imputation import noisy_linear_imputation

# -------------------------------------------------------------------------------------------------- infidelity


def gaussian_perturbation(std: float = 0.01, generator: torch.Generator | None = None) -> Callable:
    """A ``perturb_func`` for :func:`infidelity`: ``I ~ N(0, std^2)``, returns ``(I, x - I)`` (tuples for tuples)."""

    def perturb(inputs, baselines=None):
        xs = inputs if isinstance(inputs, tuple) else (inputs,)
        noise = tuple(torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device) * std for x in xs)
        pert = tuple(x - i for x, i in zip(xs, noise))
        return (noise, pert) if isinstance(inputs, tuple) else (noise[0], pert[0])

    return perturb


def infidelity_perturb_func_decorator(multiply_by_inputs: bool = True) -> Callable[[Callable], Callable]:
    """Turn a ``perturb_func`` that returns only perturbed inputs into one for :func:`infidelity` (Captum's
    decorator, same contract).

    The decorated ``perturb_func(inputs[, baselines]) -> perturbed_inputs`` becomes
    ``f(inputs, baselines=None) -> (perturbations, perturbed_inputs)`` (tuples), with perturbations
    ``(x - x_perturbed) / (x - baseline)`` when ``multiply_by_inputs`` (the baseline is 0 when none is given;
    where the denominator is 0 it is replaced by 1), else ``x - x_perturbed``. The original function is called
    with ``baselines`` only when they are given. Use ``multiply_by_inputs=True`` with attributions that are
    multiplied by ``x - baseline`` (IG, DeepLIFT, input x gradient, ...), so that ``I . a`` compares like with like.

    Example::

        @infidelity_perturb_func_decorator(multiply_by_inputs=False)
        def perturb(inputs):
            return inputs - 0.01 * torch.randn_like(inputs)

        infidelity(model, perturb, x, attributions, target=0)
    """
    if not isinstance(multiply_by_inputs, bool):
        raise TypeError(f"multiply_by_inputs must be a bool (use @infidelity_perturb_func_decorator(True)); received "
                        f"{type(multiply_by_inputs).__name__}")

    def decorate(perturb_func: Callable) -> Callable:
        if not callable(perturb_func):
            raise TypeError(f"perturb_func must be callable; received {type(perturb_func).__name__}")

        def perturb(inputs: Any, baselines: Any = None) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
            perturbed = perturb_func(inputs, baselines) if baselines is not None else perturb_func(inputs)
            xs, _ = format_inputs(inputs)
            ps, _ = format_inputs(perturbed, "perturbed inputs")
            if len(ps) != len(xs):
                raise ValueError(f"perturb_func returned {len(ps)} tensors for {len(xs)} inputs")
            if baselines is None:
                bs: tuple = (None,) * len(xs)
            else:
                bs = tuple(baselines) if isinstance(baselines, (tuple, list)) else (baselines,) * len(xs)
            out = []
            for x, p, b in zip(xs, ps, bs):
                diff = x - p
                if multiply_by_inputs:
                    denom = x if b is None else x - (b if isinstance(b, Tensor) else torch.as_tensor(b, dtype=x.dtype))
                    denom = torch.where(denom != 0, denom, torch.ones_like(denom))
                    diff = diff / denom
                out.append(diff)
            return tuple(out), ps

        perturb.__wrapped__ = perturb_func  # type: ignore[attr-defined]
        perturb.__doc__ = perturb_func.__doc__
        return perturb

    return decorate


@metric("infidelity", False, "faithfulness",
        paper="Yeh et al., 2019, 'On the (In)fidelity and Sensitivity of Explanations', arXiv:1901.09392")
def infidelity(
    forward_func: Callable,
    perturb_func: Callable,
    inputs: Any,
    attributions: Any,
    baselines: Any = None,
    additional_forward_args: Any = None,
    target: TargetType = None,
    n_perturb_samples: int = 10,
    max_examples_per_batch: int | None = None,
    normalize: bool = False,
    *,
    forward_kwargs: Mapping[str, Any] | None = None,
    batch_size: int | None = None,
    seed: int | None = None,
) -> Tensor:
    """``E_I[(I . a - (F(x) - F(x - I)))^2]`` per example, estimated with ``n_perturb_samples`` perturbations.

    Captum-compatible. ``perturb_func(inputs[, baselines]) -> (perturbations, perturbed_inputs)`` receives the
    inputs repeated ``n_perturb_samples`` times (example-major) and returns tensors (or tuples) of that shape;
    ``perturbed_inputs`` is ``x - I`` for the usual definition. ``normalize=True`` scales the attributions by
    ``beta = E[I.a (F(x) - F(x-I))] / E[(I.a)^2]`` first (the optimal scale, as in the paper's code).
    ``max_examples_per_batch`` bounds the examples per ``perturb_func`` call and model call (default: all, model
    calls chunked by the memory budget). ``seed`` seeds the global RNG inside the call (restored afterwards), making
    a ``perturb_func`` that draws from it reproducible. The perturbed inputs of all ``N x n_perturb_samples`` rows
    are kept (so the result does not depend on the chunking); model calls are chunked. Returns ``(N,)``. Lower is
    better.
    """
    xs, was_tuple = format_inputs(inputs)
    attrs = format_attributions(attributions, xs)
    n = xs[0].shape[0]
    s = check_int(n_perturb_samples, "n_perturb_samples")
    block = n if max_examples_per_batch is None else check_int(max_examples_per_batch, "max_examples_per_batch")
    if batch_size is None and max_examples_per_batch is not None:
        batch_size = block * s
    bases = None if baselines is None else (baselines if isinstance(baselines, tuple) else (baselines,))
    ev, guard = evaluator(forward_func, target, additional_forward_args, forward_kwargs, n, batch_size, "infidelity")
    dots = torch.empty(n * s, dtype=torch.float64)
    perturbed: list[tuple[Tensor, ...]] = []
    with seeded(None, seed):
        for start in range(0, n, block):
            stop = min(n, start + block)
            rep = tuple(x[start:stop].repeat_interleave(s, 0) for x in xs)
            args = [rep if was_tuple else rep[0]]
            if bases is not None:
                args.append(tuple(b[start:stop].repeat_interleave(s, 0) if isinstance(b, Tensor) and b.shape[0] == n
                                  else b for b in bases) if was_tuple else
                            (bases[0][start:stop].repeat_interleave(s, 0)
                             if isinstance(bases[0], Tensor) and bases[0].shape[0] == n else bases[0]))
            result = perturb_func(*args)
            if not isinstance(result, (tuple, list)) or len(result) != 2:
                raise TypeError("perturb_func must return (perturbations, perturbed_inputs)")
            pert, pin = (format_inputs(r, name)[0] for r, name in zip(result, ("perturbations", "perturbed_inputs")))
            if len(pert) != len(xs) or len(pin) != len(xs) or any(p.shape != r.shape for p, r in zip(pin, rep)):
                raise ValueError("perturb_func must return perturbations and perturbed inputs shaped like its input "
                                 f"(rows = examples x n_perturb_samples = {rep[0].shape[0]})")
            d = sum((p.double() * a[start:stop].double().repeat_interleave(s, 0).expand_as(p)).reshape(p.shape[0], -1).sum(1)
                    for p, a in zip(pert, attrs))
            dots[start * s: stop * s] = d.cpu()
            perturbed.append(tuple(p.detach() for p in pin))
    # one pass over N unperturbed rows followed by the N x S perturbed ones (fewer, fuller chunks)
    rows_all = tuple(torch.cat([x.detach()] + [p[i] for p in perturbed]) for i, x in enumerate(xs))
    ex_all = torch.cat([torch.arange(n), torch.arange(n).repeat_interleave(s)])
    with guard:
        f_all = score_rows(ev, n * (s + 1), lambda rows: (tuple(p.index_select(0, rows.to(p.device)) for p in rows_all),
                                                          ex_all[rows]), rows_all, "infid")
    f_x, f_p = f_all[:n], f_all[n:]
    diff = (f_x.repeat_interleave(s) - f_p).reshape(n, s)
    dots = dots.reshape(n, s)
    if normalize:
        num = (dots * diff).mean(1)
        den = (dots * dots).mean(1)
        beta = torch.where(den > 0, num / den.clamp_min(1e-300), torch.zeros_like(den))
        dots = dots * beta.unsqueeze(1)
    return ((dots - diff) ** 2).mean(1)


# ------------------------------------------------------------------------------------------- ordered removal


def _prepared(forward_func, inputs, attributions, target, additional_forward_args, forward_kwargs, batch_size,
              feature_mask, desc):
    xs, _ = format_inputs(inputs)
    attrs = format_attributions(attributions, xs)
    n = xs[0].shape[0]
    ev, guard = evaluator(forward_func, target, additional_forward_args, forward_kwargs, n, batch_size, desc)
    return xs, Groups(xs, attrs, feature_mask), ev, guard


def ordered_scores(ev, guard, xs, groups: Groups, reps, thresholds: Tensor, descending: bool = True,
                   insertion: bool = False, tag: str = "curve", ranks: Tensor | None = None) -> Tensor:
    """Scores ``(N, K)``: at point ``k`` the first ``thresholds[k]`` groups in attribution order are removed
    (``insertion=True``: only they are kept, the rest replaced)."""
    n, k = groups.n, thresholds.shape[0]
    rk = groups.ranks(descending) if ranks is None else ranks
    th = thresholds.to(rk.device)

    def build(rows: Tensor):
        ex, step = rows // k, rows % k
        chosen = rk.index_select(0, ex.to(rk.device)) < th[step.to(rk.device)].unsqueeze(1)
        return groups.apply(xs, reps, ex, ~chosen if insertion else chosen), ex

    with guard:
        return score_rows(ev, n * k, build, xs, tag).reshape(n, k)


def _thresholds(n_groups: int, step_size: int | None, n_steps: int | None = None) -> Tensor:
    if step_size is None:
        step_size = max(1, math.ceil(n_groups / 50))
    check_int(step_size, "step_size")
    points = list(range(0, n_groups, step_size)) + [n_groups]
    return torch.tensor(points, dtype=torch.long)


def _curve(kind, forward_func, inputs, attributions, target, baselines, additional_forward_args, feature_mask,
           step_size, blur_sigma, forward_kwargs, batch_size):
    xs, groups, ev, guard = _prepared(forward_func, inputs, attributions, target, additional_forward_args,
                                      forward_kwargs, batch_size, feature_mask, kind)
    reps = replacements(baselines, xs, blur_sigma)
    th = _thresholds(groups.n_groups, step_size)
    scores = ordered_scores(ev, guard, xs, groups, reps, th, insertion=(kind == "insertion"), tag=kind)
    return th.double() / groups.n_groups, scores


def deletion_curve(forward_func: Callable, inputs: Any, attributions: Any, target: TargetType = None,
                   baselines: Any = None, additional_forward_args: Any = None, feature_mask: Any = None,
                   step_size: int | None = None, blur_sigma: float = 5.0, *,
                   forward_kwargs: Mapping[str, Any] | None = None, batch_size: int | None = None) -> tuple[Tensor, Tensor]:
    """Pixel flipping / deletion: remove features in decreasing attribution order, ``step_size`` at a time.

    Features are input elements, or the groups of ``feature_mask`` (integer ids per input; e.g.
    :func:`pixel_mask` or :func:`patch_mask`). Removed features take ``baselines`` (None = 0, a number, tensors)
    or ``"blur"`` (a Gaussian blur of the input, ``blur_sigma``). ``step_size`` defaults to ``ceil(G / 50)``.
    Returns ``(fractions (K,), scores (N, K))``: the fraction of features removed and the target score; point 0
    is the unperturbed input. Model evaluations: ``N * K``.
    """
    return _curve("deletion", forward_func, inputs, attributions, target, baselines, additional_forward_args,
                  feature_mask, step_size, blur_sigma, forward_kwargs, batch_size)


def insertion_curve(forward_func: Callable, inputs: Any, attributions: Any, target: TargetType = None,
                    baselines: Any = "blur", additional_forward_args: Any = None, feature_mask: Any = None,
                    step_size: int | None = None, blur_sigma: float = 5.0, *,
                    forward_kwargs: Mapping[str, Any] | None = None, batch_size: int | None = None) -> tuple[Tensor, Tensor]:
    """Insertion (Petsiuk, Das & Saenko, 2018, RISE, arXiv:1806.07421): start from the replacement (default a
    blurred input) and insert features in decreasing attribution order. Same arguments and returns as
    :func:`deletion_curve`; the last point is the unperturbed input."""
    return _curve("insertion", forward_func, inputs, attributions, target, baselines, additional_forward_args,
                  feature_mask, step_size, blur_sigma, forward_kwargs, batch_size)


def _auc(fractions: Tensor, scores: Tensor) -> Tensor:
    dx = (fractions[1:] - fractions[:-1]).to(scores)
    return ((scores[:, 1:] + scores[:, :-1]) / 2 * dx).sum(1)


@metric("deletion_auc", False, "faithfulness",
        paper="Samek et al., 2017, 'Evaluating the visualization of what a DNN has learned', arXiv:1509.06321; "
              "Petsiuk et al., 2018, arXiv:1806.07421")
def deletion_auc(forward_func: Callable, inputs: Any, attributions: Any, target: TargetType = None, **kwargs) -> Tensor:
    """Area under :func:`deletion_curve` (trapezoid over the fraction removed, in [0, 1]): ``(N,)``. Lower is better."""
    return _auc(*deletion_curve(forward_func, inputs, attributions, target, **kwargs))


@metric("insertion_auc", True, "faithfulness", paper="Petsiuk, Das & Saenko, 2018, arXiv:1806.07421")
def insertion_auc(forward_func: Callable, inputs: Any, attributions: Any, target: TargetType = None, **kwargs) -> Tensor:
    """Area under :func:`insertion_curve`: ``(N,)``. Higher is better."""
    return _auc(*insertion_curve(forward_func, inputs, attributions, target, **kwargs))


@metric("region_perturbation", True, "faithfulness", inputs="image",
        paper="Samek et al., 2017, 'Evaluating the visualization of what a DNN has learned', arXiv:1509.06321")
def region_perturbation(forward_func: Callable, inputs: Any, attributions: Any, target: TargetType = None,
                        additional_forward_args: Any = None, patch_size: int = 8, n_regions: int | None = None,
                        baselines: Any = "uniform", *, generator: torch.Generator | None = None, seed: int | None = None,
                        forward_kwargs: Mapping[str, Any] | None = None, batch_size: int | None = None) -> Tensor:
    """AOPC of most-relevant-first region perturbation: ``mean_{k=0..L} (F(x) - F(x_k))`` where ``x_k`` has the
    ``k`` most relevant non-overlapping ``patch_size`` x ``patch_size`` patches replaced.

    Images ``(N, C, H, W)``. ``baselines="uniform"`` replaces patches by uniform noise over the inputs' value range
    (one noise image per example, from ``generator``/``seed``); or give a baseline. ``n_regions`` (L) defaults to
    all patches. Returns ``(N,)``; higher is better.
    """
    xs, _ = format_inputs(inputs)
    if len(xs) != 1 or xs[0].dim() != 4:
        raise ValueError(f"region_perturbation needs one image input (N, C, H, W); received shapes {[tuple(x.shape) for x in xs]}")
    x = xs[0]
    mask = patch_mask(x.shape, check_int(patch_size, "patch_size")).to(x.device)
    xs, groups, ev, guard = _prepared(forward_func, x, attributions, target, additional_forward_args,
                                      forward_kwargs, batch_size, mask, "region_perturbation")
    if isinstance(baselines, str) and baselines == "uniform":
        with seeded(generator, seed) as gen:
            lo, hi = float(x.min()), float(x.max())
            reps = (lo + (hi - lo) * rand_like(x, gen),)
    else:
        reps = replacements(baselines, xs)
    count = groups.n_groups if n_regions is None else min(check_int(n_regions, "n_regions"), groups.n_groups)
    scores = ordered_scores(ev, guard, xs, groups, reps, torch.arange(count + 1), tag="region")
    return (scores[:, :1] - scores).mean(1)


@metric("monotonicity", True, "faithfulness",
        paper="Arya et al., 2019, 'One Explanation Does Not Fit All', arXiv:1909.03012")
def monotonicity(forward_func: Callable, inputs: Any, attributions: Any, target: TargetType = None,
                 baselines: Any = None, additional_forward_args: Any = None, feature_mask: Any = None,
                 step_size: int | None = 1, *, forward_kwargs: Mapping[str, Any] | None = None,
                 batch_size: int | None = None) -> Tensor:
    """Start from the baseline and insert features in *increasing* attribution order; the fraction of steps at
    which the target score does not decrease (1 = monotonic, as Arya et al.'s test asks). ``(N,)``."""
    xs, groups, ev, guard = _prepared(forward_func, inputs, attributions, target, additional_forward_args,
                                      forward_kwargs, batch_size, feature_mask, "monotonicity")
    reps = replacements(baselines, xs)
    th = _thresholds(groups.n_groups, step_size)
    scores = ordered_scores(ev, guard, xs, groups, reps, th, descending=False, insertion=True, tag="monotonicity")
    return (scores[:, 1:] >= scores[:, :-1]).double().mean(1)


@metric("faithfulness_correlation", True, "faithfulness",
        paper="Bhatt, Weller & Moura, 2020, 'Evaluating and Aggregating Feature-based Model Explanations', arXiv:2005.00631")
def faithfulness_correlation(forward_func: Callable, inputs: Any, attributions: Any, target: TargetType = None,
                             baselines: Any = None, additional_forward_args: Any = None, feature_mask: Any = None,
                             subset_size: int | float = 0.1, n_samples: int = 50, *,
                             generator: torch.Generator | None = None, seed: int | None = None,
                             forward_kwargs: Mapping[str, Any] | None = None, batch_size: int | None = None) -> Tensor:
    """Pearson correlation, over ``n_samples`` random feature subsets S of size ``subset_size`` (a count or a
    fraction of the features), between ``sum_{i in S} a_i`` and ``F(x) - F(x with S replaced by the baseline)``.
    ``(N,)``; higher is better. Model evaluations: ``N * (n_samples + 1)``."""
    xs, groups, ev, guard = _prepared(forward_func, inputs, attributions, target, additional_forward_args,
                                      forward_kwargs, batch_size, feature_mask, "faithfulness_correlation")
    reps = replacements(baselines, xs)
    n, g = groups.n, groups.n_groups
    size = max(1, round(subset_size * g)) if isinstance(subset_size, float) else check_int(subset_size, "subset_size")
    if size > g:
        raise ValueError(f"subset_size must be at most the number of features ({g}); received {subset_size!r}")
    s = check_int(n_samples, "n_samples")
    chosen = torch.empty(n * s, g, dtype=torch.bool)
    with seeded(generator, seed) as gen:
        block = max(1, 2**22 // g)
        for start in range(0, n * s, block):
            stop = min(n * s, start + block)
            keys = torch.rand(stop - start, g, generator=gen)
            chosen[start:stop] = keys.argsort(1).argsort(1) < size
    chosen = chosen.to(groups.scores.device)
    ex_all = torch.arange(n).repeat_interleave(s)
    with guard:
        f_x = ev.all_scores(xs, torch.arange(n), tag="fc-x").double().cpu()
        f_p = score_rows(ev, n * s, lambda rows: (groups.apply(xs, reps, ex_all[rows], chosen[rows.to(chosen.device)]),
                                                  ex_all[rows]), xs, "fc-p")
    attr_sums = (groups.scores.repeat_interleave(s, 0) * chosen).sum(1).cpu().reshape(n, s)
    diff = (f_x.repeat_interleave(s) - f_p).reshape(n, s)
    from .similarity import pearson

    return pearson(attr_sums, diff)


# ------------------------------------------------------------------------------------------------------- ROAD


@metric("road", False, "faithfulness", inputs="image",
        paper="Rong et al., 2022, 'A Consistent and Efficient Evaluation Strategy for Attribution Methods', arXiv:2202.00449")
def road(forward_func: Callable, inputs: Tensor, attributions: Tensor, target: TargetType = None,
         additional_forward_args: Any = None, percentages: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
         order: str = "morf", noise_std: float = 0.01, *, generator: torch.Generator | None = None,
         seed: int | None = None, return_curve: bool = False, forward_kwargs: Mapping[str, Any] | None = None,
         batch_size: int | None = None):
    """RemOve And Debias: remove the top (``order="morf"``) or bottom (``"lerf"``) ``p`` of pixels by attribution
    (summed over channels) and impute them by noisy linear imputation (each removed pixel the weighted mean of its
    8 neighbours, weights 1/6 direct and 1/12 diagonal, solved jointly, plus ``N(0, noise_std^2)`` noise).

    Images ``(N, C, H, W)``. Returns the mean target score over ``percentages`` ``(N,)`` (MoRF: lower is better;
    LeRF: higher is better), and with ``return_curve=True`` also the scores ``(N, P)``. The imputation runs per
    chunk of rows (conjugate gradients, batched); noise is drawn per row from ``generator``/``seed``, so results do
    not depend on the chunking.
    """
    if not isinstance(inputs, Tensor) or inputs.dim() != 4:
        raise ValueError(f"road needs images (N, C, H, W); received {getattr(inputs, 'shape', type(inputs).__name__)}")
    if order not in ("morf", "lerf"):
        raise ValueError(f"order must be 'morf' or 'lerf'; received {order!r}")
    pcts = torch.tensor([check_fraction(p, "percentages") for p in percentages], dtype=torch.float64)
    if bool((pcts >= 1).any()):
        raise ValueError("percentages must be below 1 (removing every pixel leaves nothing to impute from)")
    x = inputs
    mask = patch_mask(x.shape, 1).to(x.device)
    xs, groups, ev, guard = _prepared(forward_func, x, attributions, target, additional_forward_args,
                                      forward_kwargs, batch_size, mask, "road")
    n, k, g = groups.n, pcts.shape[0], groups.n_groups
    counts = (pcts * g).round().long()
    rk = groups.ranks(descending=(order == "morf"))
    with seeded(generator, seed) as gen:
        row_seeds = torch.randint(0, 2**62, (n * k,), generator=gen)

    def build(rows: Tensor):
        ex, step = rows // k, rows % k
        removed = rk.index_select(0, ex.to(rk.device)) < counts.to(rk.device)[step.to(rk.device)].unsqueeze(1)
        pix = removed.reshape(-1, 1, x.shape[2], x.shape[3])
        xr = x.index_select(0, ex.to(x.device))
        noise = torch.stack([torch.randn(x.shape[1:], generator=torch.Generator().manual_seed(int(row_seeds[r])),
                                         dtype=x.dtype) for r in rows.tolist()]).to(x.device)
        return (noisy_linear_imputation(xr, pix, noise * noise_std),), ex

    with guard:
        scores = score_rows(ev, n * k, build, (x,), "road").reshape(n, k)
    out = scores.mean(1)
    return (out, scores) if return_curve else out


# -------------------------------------------------------------------------------------------- token rationales


def _token_groups(inputs: Tensor) -> Tensor:
    if not isinstance(inputs, Tensor) or inputs.dim() < 2:
        raise ValueError(f"token metrics need inputs of shape (N, L) (ids) or (N, L, D) (embeddings); received "
                         f"{getattr(inputs, 'shape', type(inputs).__name__)}")
    length = inputs.shape[1]
    return torch.arange(length, device=inputs.device).reshape((1, length) + (1,) * (inputs.dim() - 2)).expand(
        (1,) + inputs.shape[1:])


def _rationale(kind, forward_func, inputs, attributions, target, baselines, additional_forward_args, bins,
               forward_kwargs, batch_size):
    mask = _token_groups(inputs)
    if isinstance(attributions, Tensor) and attributions.dim() > 2 and inputs.dim() == 2:
        attributions = attributions.reshape(attributions.shape[0], attributions.shape[1], -1).sum(-1)
    if isinstance(attributions, Tensor) and attributions.dim() == 2 and inputs.dim() > 2:
        # one score per token for embedding inputs: put it on the token's first element (groups sum per token)
        per_token = attributions
        attributions = torch.zeros(inputs.shape, dtype=per_token.dtype, device=per_token.device)
        attributions.reshape(inputs.shape[0], inputs.shape[1], -1)[:, :, 0] = per_token
    xs, groups, ev, guard = _prepared(forward_func, inputs, attributions, target, additional_forward_args,
                                      forward_kwargs, batch_size, mask, kind)
    reps = replacements(0 if baselines is None else baselines, xs)
    g = groups.n_groups
    th = torch.tensor([0] + [max(1, round(check_fraction(b, "bins") * g)) for b in bins], dtype=torch.long)
    if kind == "sufficiency":  # point 0 (nothing kept) is not needed: F(x) comes from one unperturbed row
        scores = ordered_scores(ev, guard, xs, groups, reps, th[1:], insertion=True, tag=kind)
        with guard:
            full = ev.all_scores(xs, torch.arange(groups.n), tag="full").double().cpu()
    else:
        scores = ordered_scores(ev, guard, xs, groups, reps, th, tag=kind)
        full, scores = scores[:, 0], scores[:, 1:]
    return (full.unsqueeze(1) - scores).mean(1)


@metric("comprehensiveness", True, "faithfulness", inputs="tokens",
        paper="DeYoung et al., 2020, 'ERASER: A Benchmark to Evaluate Rationalized NLP Models', arXiv:1911.03429")
def comprehensiveness(forward_func: Callable, inputs: Tensor, attributions: Tensor, target: TargetType = None,
                      baselines: Any = 0, additional_forward_args: Any = None,
                      bins: Sequence[float] = (0.01, 0.05, 0.1, 0.2, 0.5), *,
                      forward_kwargs: Mapping[str, Any] | None = None, batch_size: int | None = None) -> Tensor:
    """``mean_b [F(x) - F(x without its top-b tokens)]``, tokens replaced by ``baselines`` (a pad id for ids).

    ``inputs``: ids ``(N, L)`` or embeddings ``(N, L, D)``; attributions per token ``(N, L)`` or per element
    (summed over trailing dims). Use a probability as the target score (wrap the model with a softmax) to match
    the paper. ``(N,)``; higher is better."""
    return _rationale("comprehensiveness", forward_func, inputs, attributions, target, baselines,
                      additional_forward_args, bins, forward_kwargs, batch_size)


@metric("sufficiency", False, "faithfulness", inputs="tokens",
        paper="DeYoung et al., 2020, 'ERASER: A Benchmark to Evaluate Rationalized NLP Models', arXiv:1911.03429")
def sufficiency(forward_func: Callable, inputs: Tensor, attributions: Tensor, target: TargetType = None,
                baselines: Any = 0, additional_forward_args: Any = None,
                bins: Sequence[float] = (0.01, 0.05, 0.1, 0.2, 0.5), *,
                forward_kwargs: Mapping[str, Any] | None = None, batch_size: int | None = None) -> Tensor:
    """``mean_b [F(x) - F(only the top-b tokens of x)]``, the rest replaced by ``baselines``. Same inputs as
    :func:`comprehensiveness`. ``(N,)``; lower is better."""
    return _rationale("sufficiency", forward_func, inputs, attributions, target, baselines,
                      additional_forward_args, bins, forward_kwargs, batch_size)
