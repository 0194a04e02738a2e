"""Feature ablation (Zeiler & Fergus, 2014, "Visualizing and Understanding Convolutional Networks",
arXiv:1311.2901; Captum's FeatureAblation).

``attr(group g) = F(x) - F(x with group g set to its baseline)``, given to every position of the group. Rows are
examples x (1 + groups), evaluated in memory-budgeted chunks that mix examples and perturbations.
"""
from __future__ import annotations

from typing import Any, Mapping

from ..core.inputs import BaselineType, TensorOrTuple, restore_form
from ..core.perturb import CoalitionPlan, MaskType, ablation_present, finish
from ..core.targets import TargetType
from ._perturbation import PerturbationAttribution, as_future, run_plan


class FeatureAblation(PerturbationAttribution):
    """Ablate one feature group at a time and record the change of the output.

    ``attribute`` returns the inputs' shapes; with ``target=None`` and a model output ``(N, C)`` it returns
    ``(N, C, ...)`` (every output at once). Needs ``N x (1 + G)`` forward rows for ``G`` groups.

    A model whose output aggregates the batch (a scalar such as a loss, or ``(K,)`` without a batch dim) is
    handled as in Captum: each group is ablated in all examples at once and the result is
    ``F(batch) - F(batch with the group ablated)``, shape ``(K, *input.shape[1:])`` (``(1, ...)`` for a scalar);
    the feature mask must then be shared by the batch. ``attribute_future`` does the same for a model returning
    ``torch.futures.Future``.
    """

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
        """Args:
            inputs: tensor ``(N, ...)`` or tuple of them.
            baselines: replacement values (None = 0; number; tensor of the input's shape or batch 1; tuple).
            feature_mask: integer ids per input, broadcastable to it (None: every scalar its own feature); the same
                id in two inputs is one group.
            perturbations_per_eval: Captum's knob, perturbations of every example per model call; ``batch_size``
                (rows per call) is the direct form. Default: chunks sized from the memory budget.

        An integer input with a floating-point baseline is promoted to the baseline's dtype (as Captum's
        ``x * (1 - mask) + baseline * mask`` is), so the baseline is used as given.
        """
        call, bases, mask = self.prepare_perturbation(
            inputs, baselines, target, additional_forward_args, forward_kwargs, feature_mask, batch_size,
            perturbations_per_eval, show_progress,
        )
        g = mask.n_groups
        scores = run_plan(call, bases, lambda n: CoalitionPlan(mask, 1 + g, ablation_present(g)), "ablation", mask)
        v = scores.values
        diff = (v[:, :1] - v[:, 1:]).transpose(1, 2)  # (N, K, G)
        return restore_form(finish(mask.spread(diff), scores), call.was_tuple)

    def attribute_future(self, *args: Any, **kwargs: Any) -> Any:
        """``attribute`` for a ``forward_func`` returning ``torch.futures.Future`` (same arguments); returns a
        ``torch.futures.Future`` of the attributions (as Captum's)."""
        return as_future(self, *args, **kwargs)
