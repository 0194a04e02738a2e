"""What every perturbation method shares: argument preparation (inputs, baselines, feature mask, batch size), the
evaluation of a plan in per-example or aggregate mode, and ``attribute_future``."""
from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
from torch import Tensor

from ..core.inputs import BaselineType, format_baselines, promote_integer_inputs
from ..core.perturb import (AggregateOutput, CoalitionPlan, FeatureMask, MaskType, Plan, Scores, evaluate,
                            evaluate_aggregate, format_feature_mask, perturbation_batch_size)
from ..core.targets import TargetType
from ._base import Attribution, Call

Observe = Callable[[Tensor, Tensor, Tensor, tuple, tuple], None]


class PerturbationAttribution(Attribution):
    """Base of forward-only perturbation methods (no gradients: integer inputs such as token ids are fine).

    ``multiplies_by_inputs`` is True, as Captum's ``PerturbationAttribution``: an output difference between the
    input and its baseline is a global attribution (it scales with the input's distance to the baseline).
    Lime and KernelShap, whose coefficients are local surrogate slopes, set it False (as Captum).
    """

    _multiply_by_inputs = True

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
        # an integer input with a float baseline is promoted (as Captum's x * (1 - m) + b * m): 0.2 stays 0.2
        inputs = promote_integer_inputs(inputs, baselines)
        call = self.prepare(inputs, target, additional_forward_args, forward_kwargs, None, show_progress, needs_grad=False)
        call.ev.batch_size = perturbation_batch_size(batch_size, perturbations_per_eval, call.n)
        bases = format_baselines(baselines, call.inputs)
        mask = format_feature_mask(feature_mask, call.inputs)
        return call, bases, mask

    def attribute_future(self, *args: Any, **kwargs: Any) -> Any:
        """Not implemented for this method (as in Captum): ``FeatureAblation``, ``FeaturePermutation``,
        ``ShapleyValueSampling`` and ``ShapleyValues`` implement it."""
        raise NotImplementedError(f"attribute_future is not implemented for {type(self).__name__}")


def run_plan(
    call: Call,
    bases: tuple[Tensor, ...],
    make_plan: Callable[[int], Plan],
    tag: str,
    mask: FeatureMask | None = None,
    observe: Observe | None = None,
) -> Scores:
    """Evaluate ``make_plan(N)`` row by row (examples x perturbations, batched); if the model's output aggregates
    the batch (a scalar such as a loss, or no batch dim) switch to Captum's aggregate mode: ``make_plan(1)`` (random
    draws for one "example", the whole batch) is applied to all examples at once and the batch output is
    attributed (:func:`~pellucid.core.perturb.evaluate_aggregate`). ``mask`` is checked to be shared by the batch
    there (per-example groups have no meaning when the whole batch is one example)."""
    with call.guard:
        try:
            return evaluate(call.ev, call.inputs, bases, make_plan(call.n), tag=tag, observe=observe)
        except AggregateOutput as agg:
            if mask is not None:
                for i, ids in enumerate(mask.ids):
                    if ids.shape[0] != 1:
                        where = f"feature_mask[{i}]" if len(mask.ids) > 1 else "feature_mask"
                        raise ValueError(
                            f"the model's output aggregates the whole batch (output {agg.args[0]}), so the batch is "
                            f"perturbed as one: {where} must be shared by all examples (batch dim 1); received "
                            f"{ids.shape[0]} per-example masks"
                        ) from None
            plan = make_plan(1)
            if isinstance(plan, CoalitionPlan):
                plan.shared = True
            return evaluate_aggregate(call.ev, call.inputs, bases, plan, observe=observe)


class FutureModel(torch.nn.Module):
    """A model returning ``torch.futures.Future`` seen as one returning its value (``wait()`` per call), so the
    batched engine evaluates it unchanged. Holds the user's model (parameters and mode untouched)."""

    def __init__(self, model: Callable):
        super().__init__()
        self.inner = model

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        out = self.inner(*args, **kwargs)
        if not isinstance(out, torch.futures.Future):
            raise TypeError(f"attribute_future needs a forward_func returning torch.futures.Future; it returned "
                            f"{type(out).__name__} (use attribute instead)")
        return out.wait()


def as_future(method: Attribution, *args: Any, **kwargs: Any) -> "torch.futures.Future":
    """Run ``method.attribute(*args, **kwargs)`` on ``FutureModel(model)`` and return a completed Future of the
    result (Captum's ``attribute_future`` contract: a model returning futures, a future of the attributions). The
    model's futures are awaited chunk by chunk, so the rows stay batched as in ``attribute``."""
    twin = type(method).__new__(type(method))
    twin.__dict__.update(method.__dict__)
    twin.forward_func = FutureModel(method.forward_func)
    result = twin.attribute(*args, **kwargs)  # bad arguments raise here, before any future is returned
    fut: torch.futures.Future = torch.futures.Future()
    fut.set_result(result)
    return fut
