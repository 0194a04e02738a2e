"""Shapley values of feature groups (Shapley, 1953): sampled (Castro, Gomez & Tejada, 2009, "Polynomial calculation
of the Shapley value based on sampling", Computers & Operations Research 36) and exact.

The game: ``v(S) = F(x with the groups outside S set to their baselines)``. The Shapley value of group ``g`` is the
average over orders of the groups of its marginal contribution ``v(before_g + g) - v(before_g)``.

* :class:`ShapleyValueSampling` averages over ``n_samples`` random orders (per example). Each order is a walk from
  the baseline to the input adding one group at a time; the two end points are the same for every order, so a
  call needs ``N x (2 + n_samples x (G - 1))`` forward rows. The contributions of one order sum exactly to
  ``F(x) - F(baseline)`` (efficiency holds per order, hence for the average). With ``antithetic=True`` (default)
  orders come in pairs, a random order and its reverse (Mitchell et al., 2022, "Sampling permutations for Shapley
  value estimation", JMLR 23): a group early in one is late in the other, which lowers the variance at equal cost.
* :class:`ShapleyValues` enumerates all ``2^G`` coalitions (``N x 2^G`` rows) and weights them exactly; it refuses
  more than :attr:`ShapleyValues.max_features` groups.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import torch
from torch import Tensor

from ..core.errors import check_generator, check_positive_int
from ..core.inputs import BaselineType, TensorOrTuple, restore_form
from ..core.perturb import CoalitionPlan, MaskType, finish, random_permutations
from ..core.targets import TargetType
from ._perturbation import PerturbationAttribution, as_future, run_plan


class ShapleyValueSampling(PerturbationAttribution):
    """Shapley value sampling over random orders of the feature groups.

    ``attribute(inputs, baselines=None, target=None, additional_forward_args=None, feature_mask=None,
    n_samples=25, perturbations_per_eval=None, show_progress=False, *, antithetic=True, generator=None, seed=None,
    forward_kwargs=None, batch_size=None)`` returns the inputs' shapes (``(N, C, ...)`` for every output at once
    with ``target=None`` on an ``(N, C)`` output). ``n_samples`` is the number of orders per example.

    A model whose output aggregates the batch (a scalar or a tensor without a batch dim) is handled as in Captum:
    the orders are shared by the batch, each group is added in all examples at once, and the result has the batch
    output's shape followed by the input's (``(1, ...)`` for a scalar). ``attribute_future`` accepts a model
    returning ``torch.futures.Future``.
    """

    def attribute(
        self,
        inputs: TensorOrTuple,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        feature_mask: MaskType = None,
        n_samples: int = 25,
        perturbations_per_eval: int | None = None,
        show_progress: bool = False,
        *,
        antithetic: bool = True,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        forward_kwargs: Mapping[str, Any] | None = None,
        batch_size: int | None = None,
    ) -> TensorOrTuple:
        check_positive_int(n_samples, "n_samples")
        gen = check_generator(generator, seed)
        call, bases, mask = self.prepare_perturbation(
            inputs, baselines, target, additional_forward_args, forward_kwargs, feature_mask, batch_size,
            perturbations_per_eval, show_progress,
        )
        g, s = mask.n_groups, n_samples
        inner = g - 1  # coalitions strictly between the baseline and the input along one order
        ranks: list[Tensor] = []

        def make_plan(n_draw: int) -> CoalitionPlan:
            # orders per example (one shared order set for the whole batch in aggregate mode)
            order = random_permutations(n_draw, s, g, gen, antithetic).to(call.inputs[0].device)
            rank = order.argsort(-1)  # rank[e, s, group] = position of the group in the order
            ranks.append(rank)

            def present(ex: Tensor, p: Tensor) -> Tensor:
                q = (p - 2).clamp(min=0)
                k = torch.where(p == 0, g, torch.where(p == 1, 0, q % max(inner, 1) + 1))
                r = rank[ex, q // max(inner, 1)] if inner > 0 else rank[ex, 0]
                return r < k.unsqueeze(1)

            return CoalitionPlan(mask, 2 + s * inner, present)

        scores = run_plan(call, bases, make_plan, "shapley", mask)
        v = scores.values  # (N, P, K); (1, P, K) in aggregate mode
        rank = ranks[-1]
        n, kk = v.shape[0], v.shape[2]
        walk = torch.cat(
            [v[:, 1:2].expand(n, s, kk).unsqueeze(2), v[:, 2:].reshape(n, s, inner, kk), v[:, 0:1].expand(n, s, kk).unsqueeze(2)],
            dim=2,
        )  # (N, S, G + 1, K): value after k groups of order s
        step = walk[:, :, 1:] - walk[:, :, :-1]  # (N, S, G, K): contribution of the k-th group of the order
        idx = rank.unsqueeze(-1).expand(n, s, g, kk)
        phi = step.gather(2, idx).mean(1)  # (N, G, K)
        return restore_form(finish(mask.spread(phi.transpose(1, 2)), scores, flat_aggregate=False), call.was_tuple)

    def attribute_future(self, *args: Any, **kwargs: Any) -> Any:
        """``attribute`` for a ``forward_func`` returning ``torch.futures.Future`` (same arguments); returns a
        ``torch.futures.Future`` of the attributions (as Captum's)."""
        return as_future(self, *args, **kwargs)


def shapley_weights(g: int) -> Tensor:
    """``w[k] = k! (g - k - 1)! / g!``, the weight of a coalition of size ``k`` not containing the player."""
    return torch.tensor(
        [math.factorial(k) * math.factorial(g - k - 1) / math.factorial(g) for k in range(g)], dtype=torch.float64
    )


class ShapleyValues(PerturbationAttribution):
    """Exact Shapley values by enumerating all ``2^G`` coalitions of the ``G`` feature groups.

    Raises ``ValueError`` above :attr:`max_features` (16) groups: use :class:`ShapleyValueSampling` or
    :class:`~pellucid.attr.KernelShap` there. Returns the inputs' shapes (``(N, C, ...)`` for every output at once
    with ``target=None`` on an ``(N, C)`` output). The attributions of each example sum to
    ``F(x) - F(baseline)`` up to float rounding. Aggregate outputs and ``attribute_future`` as
    :class:`ShapleyValueSampling`.
    """

    max_features = 16

    def attribute(
        self,
        inputs: TensorOrTuple,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        feature_mask: MaskType = None,
        perturbations_per_eval: int | None = None,
        show_progress: bool = False,
        *,
        forward_kwargs: Mapping[str, Any] | None = None,
        batch_size: int | None = None,
    ) -> TensorOrTuple:
        call, bases, mask = self.prepare_perturbation(
            inputs, baselines, target, additional_forward_args, forward_kwargs, feature_mask, batch_size,
            perturbations_per_eval, show_progress,
        )
        g = mask.n_groups
        if g > self.max_features:
            raise ValueError(
                f"ShapleyValues enumerates 2^G coalitions and accepts at most {self.max_features} feature groups; "
                f"the feature_mask gives {g}. Group features with feature_mask, or use ShapleyValueSampling or KernelShap"
            )
        device = call.inputs[0].device
        bits = 1 << torch.arange(g, device=device)

        def present(ex: Tensor, p: Tensor) -> Tensor:
            return (p.unsqueeze(1) & bits) != 0

        scores = run_plan(call, bases, lambda n: CoalitionPlan(mask, 1 << g, present), "exact-shapley", mask)
        v = scores.values.double()  # (N, 2^G, K); (1, 2^G, K) in aggregate mode
        coalitions = torch.arange(1 << g, device=device)
        size = torch.zeros_like(coalitions)
        for j in range(g):
            size += (coalitions >> j) & 1
        w = shapley_weights(g).to(device)
        phi = []
        for j in range(g):
            without = coalitions[(coalitions & (1 << j)) == 0]
            diff = v[:, without | (1 << j)] - v[:, without]  # (N, 2^(G-1), K)
            phi.append(torch.einsum("npk,p->nk", diff, w[size[without]]))
        phi_t = torch.stack(phi, dim=2).to(scores.values.dtype)  # (N, K, G)
        return restore_form(finish(mask.spread(phi_t), scores, flat_aggregate=False), call.was_tuple)

    def attribute_future(self, *args: Any, **kwargs: Any) -> Any:
        """``attribute`` for a ``forward_func`` returning ``torch.futures.Future`` (same arguments); returns a
        ``torch.futures.Future`` of the attributions (as Captum's)."""
        return as_future(self, *args, **kwargs)
