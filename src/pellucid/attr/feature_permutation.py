"""Feature permutation importance (Breiman, 2001, "Random Forests", Machine Learning 45; Fisher, Rudin & Dominici,
2019, arXiv:1801.01489; Captum's FeaturePermutation).

For each feature group, its values are shuffled across the examples of the batch:
``attr(group g)[e] = F(x_e) - F(x_e with group g taken from example perm_g(e))``. By default one random permutation
of the batch per group, uniform over the permutations other than the identity (identity draws are redrawn, as in
Captum), drawn from ``generator``/``seed``; a group spanning several inputs moves as one (the same permutation for
all its inputs). ``perm_func=`` (Captum's constructor argument) replaces the default. Needs a batch of at least 2.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
from torch import Tensor

from ..core.errors import check_generator
from ..core.inputs import TensorOrTuple, restore_form
from ..core.perturb import CoalitionPlan, FeatureMask, MaskType, ablation_present, finish
from ..core.targets import TargetType
from ._perturbation import PerturbationAttribution, as_future, run_plan


def batch_permutations(n_groups: int, n: int, generator: torch.Generator | None) -> Tensor:
    """``(n_groups, n)``: one random permutation of the ``n >= 2`` examples per group, uniform over the ``n! - 1``
    permutations that are not the identity (rows that draw the identity are redrawn from ``generator``)."""
    if n < 2:
        raise ValueError(f"n must be at least 2 (the only permutation of {n} example is the identity); received {n}")
    perm = torch.rand((n_groups, n), generator=generator).argsort(1)
    order = torch.arange(n)
    while True:
        identity = (perm == order).all(1)
        k = int(identity.sum())
        if k == 0:
            return perm
        perm[identity] = torch.rand((k, n), generator=generator).argsort(1)


PermFunc = Callable[[Tensor, Tensor], Tensor]


def permuted_values(perm_func: PermFunc, inputs: tuple[Tensor, ...], mask: FeatureMask) -> tuple[Tensor, ...]:
    """Per input ``i`` a tensor ``(N, *shape_i)`` holding, at every position of group ``g``, the value that
    ``perm_func(inputs[i], mask_ig)`` put there, where ``mask_ig`` is the bool mask ``(M_i, *shape_i)`` of group
    ``g``'s positions (``M_i`` = 1 for a mask shared by the batch, else ``N``). ``perm_func`` is called once per
    (group, input holding the group), on the whole batch ``(N, *shape_i)``, and must return that shape."""
    out = []
    for i, x in enumerate(inputs):
        n, shape = x.shape[0], tuple(x.shape[1:])
        ids = mask.ids[i].to(x.device)
        filled = x.reshape(n, -1).clone()
        for g in torch.unique(ids).tolist():
            sel = ids == g  # (M_i, numel)
            res = perm_func(x, sel.reshape((sel.shape[0],) + shape))
            if not isinstance(res, Tensor) or tuple(res.shape) != tuple(x.shape):
                raise ValueError(
                    f"perm_func must return a tensor of the input's shape {tuple(x.shape)}; returned "
                    f"{tuple(res.shape) if isinstance(res, Tensor) else type(res).__name__}"
                )
            res = res.to(device=x.device, dtype=x.dtype).reshape(n, -1)
            if sel.shape[0] == 1:
                cols = sel[0].nonzero().squeeze(1)
                filled[:, cols] = res[:, cols]
            else:
                filled = torch.where(sel, res, filled)
        out.append(filled.reshape((n,) + shape))
    return tuple(out)


class FeaturePermutation(PerturbationAttribution):
    """Permutation importance of feature groups within the batch. Returns the inputs' shapes (``(N, C, ...)`` for
    every output at once with ``target=None`` on an ``(N, C)`` output). ``N x (1 + G)`` forward rows.

    Args:
        forward_func: the model.
        perm_func: optional ``perm_func(x, feature_mask) -> x_permuted`` as in Captum: ``x`` is one input's whole
            batch ``(N, ...)``, ``feature_mask`` a bool tensor ``(1 or N, ...)`` marking one group's positions, and
            the result (shape of ``x``) gives the group's values after permuting them along the batch (only the
            masked positions are used). In the batched engine it is called once per group and input before any
            model call (``G`` calls, each on the full batch; a group spanning several inputs gets one call per
            input, as in Captum); the results are then evaluated in memory-budgeted chunks like baselines. Default
            None: one permutation per group drawn with ``generator``/``seed`` and gathered chunk by chunk (no
            per-group calls), uniform over the non-identity permutations like Captum's default.

    A model whose output aggregates the batch (a loss or an accuracy over the batch, ``(K,)`` without a batch dim)
    gives Captum's permutation importance of the batch: ``F(batch) - F(batch with group g permuted)``, shape
    ``(K, *input.shape[1:])`` (``(1, ...)`` for a scalar). ``attribute_future`` accepts a model returning
    ``torch.futures.Future``.
    """

    def __init__(self, forward_func: Callable, perm_func: PermFunc | None = None):
        super().__init__(forward_func)
        if perm_func is not None and not callable(perm_func):
            raise TypeError(f"perm_func must be callable perm_func(x, feature_mask) -> tensor; received {type(perm_func).__name__}")
        self.perm_func = perm_func

    def attribute(
        self,
        inputs: TensorOrTuple,
        target: TargetType = None,
        additional_forward_args: Any = None,
        feature_mask: MaskType = None,
        perturbations_per_eval: int | None = None,
        show_progress: bool = False,
        *,
        forward_kwargs: Mapping[str, Any] | None = None,
        batch_size: int | None = None,
        generator: torch.Generator | None = None,
        seed: int | None = None,
    ) -> TensorOrTuple:
        """Args as :class:`FeatureAblation` (no baselines: values come from other examples), plus ``generator`` or
        ``seed`` for the default permutations (with ``perm_func`` they raise ``ValueError``: ``perm_func`` draws
        its own randomness, e.g. from ``torch.manual_seed``)."""
        gen = check_generator(generator, seed)
        if self.perm_func is not None and (generator is not None or seed is not None):
            raise ValueError("generator/seed drive the default permutations only; with perm_func, seed its own "
                             f"randomness instead (received generator={generator!r}, seed={seed!r})")
        call, bases, mask = self.prepare_perturbation(
            inputs, None, target, additional_forward_args, forward_kwargs, feature_mask, batch_size,
            perturbations_per_eval, show_progress,
        )
        if call.n < 2:
            raise ValueError(f"FeaturePermutation permutes features across the batch and needs at least 2 examples; received {call.n}")
        g = mask.n_groups
        if self.perm_func is not None:
            bases = permuted_values(self.perm_func, call.inputs, mask)
            plan = CoalitionPlan(mask, 1 + g, ablation_present(g))
        else:
            perms = batch_permutations(g, call.n, gen).to(call.inputs[0].device)

            def source(ex: Tensor, p: Tensor) -> Tensor:
                return perms[(p - 1).clamp(min=0), ex]

            plan = CoalitionPlan(mask, 1 + g, ablation_present(g), source)
        scores = run_plan(call, bases, lambda n: plan, "permutation", mask)
        v = scores.values
        diff = (v[:, :1] - v[:, 1:]).transpose(1, 2)
        return restore_form(finish(mask.spread(diff), scores), call.was_tuple)

    def attribute_future(self, *args: Any, **kwargs: Any) -> Any:
        """``attribute`` for a ``forward_func`` returning ``torch.futures.Future`` (same arguments); returns a
        ``torch.futures.Future`` of the attributions (as Captum's)."""
        return as_future(self, *args, **kwargs)
