"""LIME (Ribeiro, Singh & Guestrin, 2016, "Why Should I Trust You?": Explaining the Predictions of Any Classifier,
arXiv:1602.04938).

For each example, ``n_samples`` binary vectors ``z`` over the ``G`` feature groups are drawn (1 = group kept,
0 = group set to its baseline), the model is evaluated on the perturbed inputs, every sample is weighted by its
similarity to the original input, and an interpretable model is fitted to ``F(perturbed) ~ z``; its coefficients
are the attributions. All samples of all examples go through the batched engine together and the interpretable
model is solved in torch for the whole batch at once.

Pluggable parts (batched, unlike Captum's one-sample-at-a-time callables, which are also accepted: see
:mod:`._lime_forms`):

* ``perturb_func(n, n_samples, n_features, generator) -> (n, n_samples, n_features)`` bool (default
  :func:`bernoulli_sampler`: every group kept with probability 1/2).
* ``similarity_func(original, perturbed, interpretable) -> (R,)`` weights, where ``original`` and ``perturbed``
  are tuples of ``(R, ...)`` row tensors and ``interpretable`` is ``(R, G)`` (default
  :func:`exp_cosine_similarity`: ``exp(-d^2 / (2 width^2))`` with ``d`` the cosine distance in input space and
  width 1, Captum's default kernel). The built-in kernels (this one, :func:`exp_kernel_similarity` and Captum's
  ``get_exp_kernel_similarity_function``) are evaluated from per-group sums of the input and baseline
  (:func:`exp_kernel_weights`), not row by row.
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
from ..core.perturb import AggregateOutput, CoalitionPlan, FeatureMask, MaskType, Scores, aggregates, finish
from ..core.targets import TargetType
from ._base import Call
from ._lime_forms import (SampleContext, captum_kernel_settings, fit_captum_model, is_captum_model, is_per_sample,
                          per_sample_perturbations, per_sample_similarity)
from ._perturbation import PerturbationAttribution, run_plan
from .surrogate import LinearRegression, Surrogate


def bernoulli_sampler(p: float = 0.5) -> Callable[[int, int, int, torch.Generator | None], Tensor]:
    """Sampler keeping every feature group independently with probability ``p``."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1); received {p!r}")

    def sample(n: int, n_samples: int, n_features: int, generator: torch.Generator | None) -> Tensor:
        return torch.rand((n, n_samples, n_features), generator=generator) < p

    return sample


def exp_kernel_similarity(
    distance_mode: str = "cosine", kernel_width: float = 1.0
) -> Callable[[tuple[Tensor, ...], tuple[Tensor, ...], Tensor], Tensor]:
    """``exp(-d^2 / (2 kernel_width^2))`` with ``d`` the cosine distance ``1 - cos(original, perturbed)`` or the
    Euclidean distance ``|original - perturbed|``, over all inputs of a row flattened and concatenated (Captum's
    ``get_exp_kernel_similarity_function(distance_mode, kernel_width)``, LIME's kernel), in the batched form:
    ``similarity(original, perturbed, interpretable) -> (R,)`` float64 weights in ``(0, 1]``."""
    if distance_mode not in ("cosine", "euclidean"):
        raise ValueError(f"distance_mode must be 'cosine' or 'euclidean'; received {distance_mode!r}")
    if isinstance(kernel_width, bool) or not isinstance(kernel_width, (int, float)) or kernel_width <= 0:
        raise ValueError(f"kernel_width must be a positive number; received {kernel_width!r}")

    def flat(ts: tuple[Tensor, ...]) -> Tensor:
        parts = [t.reshape(t.shape[0], -1) for t in ts]
        parts = [t if t.is_floating_point() else t.float() for t in parts]
        return parts[0] if len(parts) == 1 else torch.cat(parts, 1)

    def similarity(original: tuple[Tensor, ...], perturbed: tuple[Tensor, ...], interpretable: Tensor) -> Tensor:
        a, b = flat(original), flat(perturbed)
        if distance_mode == "cosine":
            d = 1 - torch.nn.functional.cosine_similarity(a, b, dim=1, eps=1e-12).double()
        else:
            d = torch.linalg.vector_norm((a - b).double(), dim=1)
        return torch.exp(-(d**2) / (2.0 * kernel_width**2))

    similarity.exp_kernel = (distance_mode, float(kernel_width))  # Lime computes it from group sums (see below)
    return similarity


_SUM_BLOCK = 1 << 19  # values per input summed at once in exp_kernel_weights (4 MB of float64 per temporary)


def exp_kernel_weights(
    inputs: tuple[Tensor, ...], bases: tuple[Tensor, ...], mask: FeatureMask, z: Tensor, distance_mode: str,
    kernel_width: float, aggregate: bool = False,
) -> Tensor:
    """The weights ``(M, S)`` that :func:`exp_kernel_similarity` gives the rows of coalitions ``z (M, S, G)``
    (``M = N`` examples, or 1 for the whole batch in aggregate mode), from per-group sums instead of the rows. A row
    keeps the input ``x`` on its groups and has the baseline ``b`` elsewhere, so with ``xx_g, xb_g, bb_g, dd_g`` the
    sums of ``x^2, x b, b^2, (x - b)^2`` over group ``g``: ``x . row = sum_g z_g xx_g + (1 - z_g) xb_g``,
    ``|row|^2 = sum_g z_g xx_g + (1 - z_g) bb_g`` and ``|x - row|^2 = sum_g (1 - z_g) dd_g``. One pass over the
    inputs, then ``O(M S G)`` (float64), instead of a pass over every row."""
    m, g = z.shape[0], mask.n_groups
    sums = torch.zeros(4, m, g, dtype=torch.float64, device=z.device)  # xx, xb, bb, dd
    for x, b, ids in zip(inputs, bases, mask.ids):
        n, numel = x.shape[0], max(1, x[:1].numel())
        b = b.to(z.device).expand(x.shape)
        ids = ids.to(z.device)
        block = max(1, _SUM_BLOCK // numel)  # examples per step: a few MB of float64 temporaries at a time
        for start in range(0, n, block):
            stop = min(n, start + block)
            xf = x[start:stop].reshape(stop - start, -1).to(device=z.device, dtype=torch.float64)
            bf = b[start:stop].reshape(stop - start, -1).double()
            idx = (ids[start:stop] if ids.shape[0] > 1 else ids).expand(stop - start, -1)
            out = sums[:, start:stop]
            if aggregate:  # the batch is one example
                xf, bf, idx, out = xf.reshape(1, -1), bf.reshape(1, -1), idx.reshape(1, -1), sums[:, :1]
            for k, v in enumerate((xf * xf, xf * bf, bf * bf, (xf - bf) ** 2)):
                out[k].scatter_add_(1, idx, v)
    on = z.to(torch.float64)
    off = 1 - on
    xx, xb, bb, dd = (t.unsqueeze(-1) for t in sums)  # (M, G, 1)
    if distance_mode == "cosine":
        dot = (on @ xx + off @ xb)[..., 0]
        row_norm = (on @ xx + off @ bb)[..., 0].sqrt()
        x_norm = xx[..., 0].sum(1, keepdim=True).sqrt()
        d = 1 - dot / (x_norm.clamp_min(1e-12) * row_norm.clamp_min(1e-12))
    else:
        d = (off @ dd)[..., 0].sqrt()
    return torch.exp(-(d**2) / (2.0 * kernel_width**2))


def exp_cosine_similarity(kernel_width: float = 1.0) -> Callable[[tuple[Tensor, ...], tuple[Tensor, ...], Tensor], Tensor]:
    """:func:`exp_kernel_similarity` with the cosine distance (Captum's and LIME's default kernel)."""
    return exp_kernel_similarity("cosine", kernel_width)


def get_exp_kernel_similarity_function(distance_mode: str = "cosine", kernel_width: float = 1.0) -> Callable:
    """Captum's name for :func:`exp_kernel_similarity` (the batched kernel; pass it as ``similarity_func``)."""
    return exp_kernel_similarity(distance_mode, kernel_width)


def coalition_scores(
    call: Call, bases: tuple[Tensor, ...], mask: FeatureMask, draw: Callable[[int], Tensor], tag: str,
    similarity: Callable | None = None,
) -> tuple[Scores, Tensor, Tensor | None]:
    """Scores of the coalitions ``z = draw(n) (n, P, G)`` bool, and (with ``similarity(original, perturbed,
    interpretable, ex) -> (R,)``) the weights ``(n, P)`` of the perturbed rows. ``n`` is ``N`` (one set of
    coalitions per example) or, when the model's output aggregates the batch, 1 (one set for the whole batch,
    Captum's aggregate mode). Returns ``(scores, z, weights)``."""
    state: dict[str, Any] = {}

    def make_plan(n_draw: int) -> CoalitionPlan:
        z = draw(n_draw).to(call.inputs[0].device)
        state["z"] = z
        state["w"] = torch.empty(z.shape[0] * z.shape[1], dtype=torch.float64, device=z.device)

        def present(ex: Tensor, p: Tensor) -> Tensor:
            return z[ex, p]

        return CoalitionPlan(mask, z.shape[1], present)

    def observe(rows: Tensor, ex: Tensor, p: Tensor, xs: tuple[Tensor, ...], original: tuple[Tensor, ...]) -> None:
        z, weights = state["z"], state["w"]
        zi = z[ex.to(z.device) if z.shape[0] > 1 else torch.zeros_like(ex, device=z.device), p.to(z.device)]
        w = similarity(original, xs, zi, ex)
        if not isinstance(w, Tensor) or w.shape != (rows.shape[0],):
            raise ValueError(f"similarity_func must return one weight per row, shape ({rows.shape[0]},); returned "
                             f"{tuple(w.shape) if isinstance(w, Tensor) else type(w).__name__}")
        weights[rows.to(weights.device)] = w.to(device=weights.device, dtype=torch.float64)

    scores = run_plan(call, bases, make_plan, tag, mask, observe if similarity is not None else None)
    z = state["z"]
    return scores, z, None if similarity is None else state["w"].reshape(z.shape[0], z.shape[1])


def coefficients_result(coef: Tensor, mask: FeatureMask, scores: Scores, return_input_shape: bool, was_tuple: bool):
    """``coef (N, K, G)`` -> the inputs' shapes, or ``(N, G)`` (``(N, *out_shape, G)`` for all outputs); in
    aggregate mode ``(K, ...)`` / ``(K, G)``.

    Without the input shape, column ``j`` is the coefficient of the user's feature id ``j`` (as in Captum): with
    ids that skip numbers (``{0, 2, 5}``) the result has ``max id + 1`` columns and an id that labels no position
    gets 0 (it cannot change the output)."""
    if return_input_shape:
        return restore_form(finish(mask.spread(coef), scores), was_tuple)
    out = finish([coef], scores)[0]
    labels = mask.labels.to(out.device)
    if labels.numel() and int(labels.min()) >= 0 and not torch.equal(labels, torch.arange(labels.numel(), device=out.device)):
        full = out.new_zeros(out.shape[:-1] + (int(labels.max()) + 1,))
        full[..., labels] = out
        out = full
    return out


class Lime(PerturbationAttribution):
    """LIME with batched sampling, evaluation and surrogate fits.

    Args:
        forward_func: the model.
        interpretable_model: surrogate with the batched ``fit(X (N, S, G), y (N, S, K), weights (N, S)) ->
            (coef (N, K, G), intercept (N, K))`` (default weighted linear regression; also :class:`Ridge`,
            :class:`Lasso`, the ``SkLearn*`` wrappers), or a Captum model with ``fit(DataLoader)`` and
            ``representation()`` (fitted one example at a time, as Captum).
        similarity_func: row weights, batched ``(original, perturbed, interpretable) -> (R,)`` (default
            :func:`exp_cosine_similarity` with width 1), or Captum's per-sample
            ``(original, perturbed, interpretable, **kwargs) -> float``; Captum's
            ``get_exp_kernel_similarity_function`` kernels run batched.
        perturb_func: coalition sampler, batched ``(n, n_samples, n_features, generator) -> (n, n_samples,
            n_features)`` bool (default :func:`bernoulli_sampler` with p = 0.5), or Captum's per-sample
            ``(original, **kwargs) -> (1, n_features)`` binary tensor or generator function yielding them.
            Captum's per-sample forms are told apart by their ``**kwargs`` (see :mod:`._lime_forms`).

    ``attribute`` returns the inputs' shapes (``return_input_shape=True``, every position gets its group's
    coefficient) or the coefficients ``(N, G)``; ``(N, C, ...)`` for every output at once with ``target=None`` on
    an ``(N, C)`` output. ``N x n_samples`` forward rows (``n_samples`` defaults to 25, as Captum's
    ``Lime.attribute``). A model whose output aggregates the batch is handled as in Captum: the samples are shared
    by the batch, and the result is ``(1, ...)`` (``(K, ...)`` for a ``(K,)`` batch output).
    ``multiplies_by_inputs`` is False (as Captum: the coefficients are local slopes).
    """

    _multiply_by_inputs = False

    def __init__(
        self,
        forward_func: Callable,
        interpretable_model: Surrogate | Any | None = None,
        similarity_func: Callable | None = None,
        perturb_func: Callable | None = None,
    ):
        super().__init__(forward_func)
        model = interpretable_model if interpretable_model is not None else LinearRegression()
        if not callable(getattr(model, "fit", None)):
            raise TypeError(f"interpretable_model must have fit(X, y, weights) (or Captum's fit(DataLoader) and "
                            f"representation()); received {type(model).__name__}")
        for name, f in (("similarity_func", similarity_func), ("perturb_func", perturb_func)):
            if f is not None and not callable(f):
                raise TypeError(f"{name} must be callable; received {type(f).__name__}")
        if similarity_func is not None and captum_kernel_settings(similarity_func) is not None:
            similarity_func = exp_kernel_similarity(*captum_kernel_settings(similarity_func))
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
        g = mask.n_groups
        ctx = SampleContext(call.inputs, call.was_tuple, bases, mask)
        per_sample = is_per_sample(self.perturb_func)
        # Captum's per-sample perturb_func must see one example, or the whole batch when the model's output
        # aggregates it: a forward of two rows tells which before any call (the engine still checks every chunk)
        batch_output = per_sample and call.n > 1 and self._aggregates(call)

        def draw(n: int) -> Tensor:
            if per_sample:
                if batch_output and n == call.n:
                    raise AggregateOutput("detected on two rows")
                return per_sample_perturbations(self.perturb_func, ctx, n, n_samples)
            z = self.perturb_func(n, n_samples, g, gen)
            if not isinstance(z, Tensor) or tuple(z.shape) != (n, n_samples, g):
                raise ValueError(
                    f"perturb_func must return a tensor of shape (n, n_samples, G) = {(n, n_samples, g)}; "
                    f"returned {tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__}"
                )
            return z.bool()

        kernel = getattr(self.similarity_func, "exp_kernel", None)
        if kernel is not None and not any(t.is_complex() for t in call.inputs + bases):
            scores, z, _ = coalition_scores(call, bases, mask, draw, "lime")
            weights = exp_kernel_weights(call.inputs, bases, mask, z, *kernel, aggregate=scores.aggregate)
        else:
            if is_per_sample(self.similarity_func):
                similarity = per_sample_similarity(self.similarity_func, ctx)
            else:
                def similarity(original: tuple, perturbed: tuple, interpretable: Tensor, ex: Tensor) -> Tensor:
                    return self.similarity_func(original, perturbed, interpretable)

            scores, z, weights = coalition_scores(call, bases, mask, draw, "lime", similarity)
        X = z.to(scores.values.dtype)
        if is_captum_model(self.interpretable_model):
            y = scores.values if scores.values.dim() == 3 else scores.values.unsqueeze(-1)
            coef = fit_captum_model(self.interpretable_model, X, y, weights).to(X.device)
        else:
            coef, _ = self.interpretable_model.fit(X, scores.values, weights)
        return coefficients_result(coef.to(scores.values.dtype), mask, scores, return_input_shape, call.was_tuple)

    @staticmethod
    def _aggregates(call: Call) -> bool:
        """Whether the model's output for the first two examples aggregates them (no row per example)."""
        two = torch.arange(2)
        with call.guard, torch.no_grad():
            return aggregates(call.ev.run(tuple(x[:2] for x in call.inputs), two), 2)
