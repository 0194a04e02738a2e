"""Feature permutation importance (Breiman, 2001, "Random Forests", Machine Learning 45; Fisher, Rudin & Dominici,
2019, arXiv:1801.01489; Captum's FeaturePermutation).

For each feature group, its values are shuffled across the examples of the batch:
``attr(group g)[e] = F(x_e) - F(x_e with group g taken from example perm_g(e))``. One random permutation of the
batch per group (never the identity), drawn from ``generator``/``seed``. Needs a batch of at least 2 examples.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor

from ..core.errors import check_generator
from ..core.inputs import TensorOrTuple, restore_form
from ..core.perturb import CoalitionPlan, MaskType, ablation_present, evaluate, finish
from ..core.targets import TargetType
from ._perturbation import PerturbationAttribution


def batch_permutations(n_groups: int, n: int, generator: torch.Generator | None) -> Tensor:
    """``(n_groups, n)``: one random permutation of the ``n`` examples per group, none of them the identity."""
    perm = torch.rand((n_groups, n), generator=generator).argsort(1)
    identity = (perm == torch.arange(n)).all(1)
    perm[identity] = perm[identity].roll(1, dims=1)
    return perm


class FeaturePermutation(PerturbationAttribution):
    """Permutation importance of feature groups within the batch. Returns the inputs' shapes (``(N, C, ...)`` for
    every output at once with ``target=None`` on an ``(N, C)`` output). ``N x (1 + G)`` forward rows."""

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
        ``seed`` for the permutations."""
        gen = check_generator(generator, seed)
        call, bases, mask = self.prepare_perturbation(
            inputs, None, target, additional_forward_args, forward_kwargs, feature_mask, batch_size,
            perturbations_per_eval, show_progress,
        )
        if call.n < 2:
            raise ValueError(f"FeaturePermutation permutes features across the batch and needs at least 2 examples; received {call.n}")
        g = mask.n_groups
        perms = batch_permutations(g, call.n, gen).to(call.inputs[0].device)

        def source(ex: Tensor, p: Tensor) -> Tensor:
            return perms[(p - 1).clamp(min=0), ex]

        plan = CoalitionPlan(mask, 1 + g, ablation_present(g), source)
        with call.guard:
            scores = evaluate(call.ev, call.inputs, bases, plan, tag="permutation")
        v = scores.values
        diff = (v[:, :1] - v[:, 1:]).transpose(1, 2)
        return restore_form(finish(mask.spread(diff), scores), call.was_tuple)
