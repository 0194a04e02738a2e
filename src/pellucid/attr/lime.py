"""LIME (Ribeiro, Singh & Guestrin, 2016, "Why Should I Trust You?": Explaining the Predictions of Any Classifier,
arXiv:1602.04938).

For each example, ``n_samples`` binary vectors ``z`` over the ``G`` feature groups are drawn (1 = group kept,
0 = group set to its baseline), the model is evaluated on the perturbed inputs, every sample is weighted by its
similarity to the original input, and an interpretable model is fitted to ``F(perturbed) ~ z``; its coefficients
are the attributions. All samples of all examples go through the batched engine together and the interpretable
model is solved in torch for the whole batch at once.

Pluggable parts (batched, unlike Captum's one-sample-at-a-time callables):

* ``perturb_func(n, n_samples, n_features, generator) -> (n, n_samples, n_features)`` bool (default
  :func:`bernoulli_sampler`: every group kept with probability 1/2).
* ``similarity_func(original, perturbed, interpretable) -> (R,)`` weights, where ``original`` and ``perturbed``
  are tuples of ``(R, ...)`` row tensors and ``interpretable`` is ``(R, G)`` (default
  :func:`exp_cosine_similarity`: ``exp(-d^2 / (2 width^2))`` with ``d`` the cosine distance in input space and
  width 1, Captum's default kernel).
* ``interpretable_model`` with ``fit(X, y, weights) -> (coef (N, K, G), intercept (N, K))`` (default
  :class:`~pellucid.attr.surrogate.LinearRegression`; also ``Ridge`` and ``Lasso``). Captum's default is
  ``Lasso(alpha=0.01)``; pass ``interpretable_model=Lasso(0.01)`` to match it.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
from torch import Tensor

from ..core.errors import check_generator, check_positive_int
from ..core.inputs import BaselineType, TensorOrTuple, restore_form
from ..core.perturb import CoalitionPlan, FeatureMask, MaskType, Scores, evaluate, finish
from ..core.targets import TargetType
from ._base import Call
from ._perturbation import PerturbationAttribution
from .surrogate import LinearRegression, Surrogate


def bernoulli_sampler(p: float = 0.5) -> Callable[[int, int, int, torch.Generator | None], Tensor]:
    """Sampler keeping every feature group independently with probability ``p``."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1); received {p!r}")

    def sample(n: int, n_samples: int, n_features: int, generator: torch.Generator | None) -> Tensor:
        return torch.rand((n, n_samples, n_features), generator=generator) < p

    return sample


def exp_cosine_similarity(kernel_width: float = 1.0) -> Callable[[tuple[Tensor, ...], tuple[Tensor, ...], Tensor], Tensor]:
    """``exp(-d^2 / (2 kernel_width^2))`` with ``d = 1 - cos(original, perturbed)`` over all inputs flattened
    and concatenated (Captum's ``get_exp_kernel_similarity_function("cosine", kernel_width)``, LIME's default
    kernel). Returns ``similarity(original, perturbed, interpretable) -> (R,)`` float64 weights in ``(0, 1]``."""
    if isinstance(kernel_width, bool) or not isinstance(kernel_width, (int, float)) or kernel_width <= 0:
        raise ValueError(f"kernel_width must be a positive number; received {kernel_width!r}")

    def flat(ts: tuple[Tensor, ...]) -> Tensor:
        parts = [t.reshape(t.shape[0], -1) for t in ts]
        parts = [t if t.is_floating_point() else t.float() for t in parts]
        return parts[0] if len(parts) == 1 else torch.cat(parts, 1)

    def similarity(original: tuple[Tensor, ...], perturbed: tuple[Tensor, ...], interpretable: Tensor) -> Tensor:
        cos = torch.nn.functional.cosine_similarity(flat(original), flat(perturbed), dim=1, eps=1e-12).double()
        return torch.exp(-((1 - cos) ** 2) / (2.0 * kernel_width**2))

    return similarity


def coalition_scores(
    call: Call, bases: tuple[Tensor, ...], mask: FeatureMask, z: Tensor, tag: str, similarity: Callable | None = None,
) -> tuple[Scores, Tensor | None]:
    """Scores of the coalitions ``z (N, P, G)`` bool for every example, and (with ``similarity``) the weights
    ``(N, P)`` of the perturbed rows."""
    n, per = z.shape[:2]
    weights = torch.empty(n * per, dtype=torch.float64, device=z.device) if similarity is not None else None

    def present(ex: Tensor, p: Tensor) -> Tensor:
        return z[ex, p]

    def observe(rows: Tensor, ex: Tensor, p: Tensor, xs: tuple[Tensor, ...], original: tuple[Tensor, ...]) -> None:
        w = similarity(original, xs, z[ex, p])
        if not isinstance(w, Tensor) or w.shape != (rows.shape[0],):
            raise ValueError(f"similarity_func must return one weight per row, shape ({rows.shape[0]},); returned "
                             f"{tuple(w.shape) if isinstance(w, Tensor) else type(w).__name__}")
        weights[rows.to(z.device)] = w.to(device=z.device, dtype=torch.float64)

    with call.guard:
        scores = evaluate(call.ev, call.inputs, bases, CoalitionPlan(mask, per, present), tag=tag,
                          observe=observe if similarity is not None else None)
    return scores, None if weights is None else weights.reshape(n, per)


def coefficients_result(coef: Tensor, mask: FeatureMask, scores: Scores, return_input_shape: bool, was_tuple: bool):
    """``coef (N, K, G)`` -> the inputs' shapes, or ``(N, G)`` (``(N, *out_shape, G)`` for all outputs)."""
    if return_input_shape:
        return restore_form(finish(mask.spread(coef), scores), was_tuple)
    return finish([coef], scores)[0]


class Lime(PerturbationAttribution):
    """LIME with batched sampling, evaluation and surrogate fits.

    Args:
        forward_func: the model.
        interpretable_model: surrogate with ``fit(X, y, weights)`` (default weighted linear regression).
        similarity_func: row weights (default :func:`exp_cosine_similarity` with width 1).
        perturb_func: coalition sampler (default :func:`bernoulli_sampler` with p = 0.5).

    ``attribute`` returns the inputs' shapes (``return_input_shape=True``, every position gets its group's
    coefficient) or the coefficients ``(N, G)``; ``(N, C, ...)`` for every output at once with ``target=None`` on
    an ``(N, C)`` output. ``N x n_samples`` forward rows (``n_samples`` defaults to 25, as Captum's
    ``Lime.attribute``).
    """

    def __init__(
        self,
        forward_func: Callable,
        interpretable_model: Surrogate | None = None,
        similarity_func: Callable | None = None,
        perturb_func: Callable | None = None,
    ):
        super().__init__(forward_func)
        model = interpretable_model if interpretable_model is not None else LinearRegression()
        if not callable(getattr(model, "fit", None)):
            raise TypeError(f"interpretable_model must have fit(X, y, weights); received {type(model).__name__}")
        for name, f in (("similarity_func", similarity_func), ("perturb_func", perturb_func)):
            if f is not None and not callable(f):
                raise TypeError(f"{name} must be callable; received {type(f).__name__}")
        self.interpretable_model = model
        self.similarity_func = similarity_func if similarity_func is not None else exp_cosine_similarity()
        self.perturb_func = perturb_func if perturb_func is not None else bernoulli_sampler()

    def attribute(
        self,
        inputs: TensorOrTuple,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        feature_mask: MaskType = None,
        n_samples: int = 25,
        perturbations_per_eval: int | None = None,
        return_input_shape: bool = True,
        show_progress: bool = False,
        *,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        forward_kwargs: Mapping[str, Any] | None = None,
        batch_size: int | None = None,
    ):
        check_positive_int(n_samples, "n_samples")
        gen = check_generator(generator, seed)
        call, bases, mask = self.prepare_perturbation(
            inputs, baselines, target, additional_forward_args, forward_kwargs, feature_mask, batch_size,
            perturbations_per_eval, show_progress,
        )
        z = self.perturb_func(call.n, n_samples, mask.n_groups, gen)
        if not isinstance(z, Tensor) or tuple(z.shape) != (call.n, n_samples, mask.n_groups):
            raise ValueError(
                f"perturb_func must return a tensor of shape (N, n_samples, G) = {(call.n, n_samples, mask.n_groups)}; "
                f"returned {tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__}"
            )
        z = z.to(device=call.inputs[0].device).bool()
        scores, weights = coalition_scores(call, bases, mask, z, "lime", self.similarity_func)
        coef, _ = self.interpretable_model.fit(z.to(scores.values.dtype), scores.values, weights)
        return coefficients_result(coef.to(scores.values.dtype), mask, scores, return_input_shape, call.was_tuple)
