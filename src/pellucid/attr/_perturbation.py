"""What every perturbation method shares: argument preparation (inputs, baselines, feature mask, batch size)."""
from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor

from ..core.inputs import BaselineType, format_baselines
from ..core.perturb import FeatureMask, MaskType, format_feature_mask, perturbation_batch_size
from ..core.targets import TargetType
from ._base import Attribution, Call


class PerturbationAttribution(Attribution):
    """Base of forward-only perturbation methods (no gradients: integer inputs such as token ids are fine)."""

    def prepare_perturbation(
        self,
        inputs: Any,
        baselines: BaselineType,
        target: TargetType,
        additional_forward_args: Any,
        forward_kwargs: Mapping[str, Any] | None,
        feature_mask: MaskType,
        batch_size: int | None,
        perturbations_per_eval: int | None,
        show_progress: bool,
    ) -> tuple[Call, tuple[Tensor, ...], FeatureMask]:
        call = self.prepare(inputs, target, additional_forward_args, forward_kwargs, None, show_progress, needs_grad=False)
        call.ev.batch_size = perturbation_batch_size(batch_size, perturbations_per_eval, call.n)
        bases = format_baselines(baselines, call.inputs)
        mask = format_feature_mask(feature_mask, call.inputs)
        return call, bases, mask
