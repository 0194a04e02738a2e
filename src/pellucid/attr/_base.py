"""What every attribution method shares: argument preparation and the convergence delta."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from torch import Tensor

from ..core.batching import resolve_batch_size
from ..core.errors import check_forward_arguments, warn_nonfinite
from ..core.gradients import Evaluator
from ..core.guard import ModelGuard
from ..core.inputs import BaselineType, ForwardArgs, format_baselines, format_inputs, require_float
from ..core.targets import TargetType


@dataclass
class Call:
    """A prepared call: inputs as a tuple, the user's form, the evaluator and the model guard."""

    inputs: tuple[Tensor, ...]
    was_tuple: bool
    ev: Evaluator
    guard: ModelGuard

    @property
    def n(self) -> int:
        return self.inputs[0].shape[0]


class Attribution:
    """Base of all attribution methods. ``forward_func`` is a ``nn.Module`` or any callable model."""

    name = "attribution"
    # the model is called as model(*inputs, *additional_forward_args, **forward_kwargs); a method that calls it on
    # something else (LimeBase: the user's transformed samples) sets this False to skip that signature check
    _model_takes_inputs = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        from ._multi_target import install

        install(cls)  # a 2-D target (N, K) works for every method

    def __init__(self, forward_func: Callable):
        if not callable(forward_func):
            raise TypeError(f"forward_func must be a model (callable); received {type(forward_func).__name__}")
        self.forward_func = forward_func

    @property
    def multiplies_by_inputs(self) -> bool:
        return getattr(self, "_multiply_by_inputs", False)

    def has_convergence_delta(self) -> bool:
        return False

    def attribute_future(self, *args: Any, **kwargs: Any) -> Any:
        """Attribution of a model returning ``torch.futures.Future``: only the perturbation methods that Captum
        gives it (FeatureAblation, FeaturePermutation, ShapleyValueSampling, ShapleyValues) implement it."""
        raise NotImplementedError(f"attribute_future is not implemented for {type(self).__name__} (as in Captum)")

    def prepare(
        self,
        inputs: Any,
        target: TargetType,
        additional_forward_args: Any,
        forward_kwargs: Mapping[str, Any] | None,
        batch_size: int | None,
        show_progress: bool = False,
        needs_grad: bool = True,
        **captum_batch_names: int | None,
    ) -> Call:
        xs, was_tuple = format_inputs(inputs)
        if needs_grad:
            require_float(xs, type(self).__name__)
        bs = resolve_batch_size(batch_size, **captum_batch_names)
        ev = Evaluator(
            self.forward_func,
            target,
            additional_forward_args,
            forward_kwargs,
            n=xs[0].shape[0],
            batch_size=bs,
            show_progress=show_progress,
            desc=type(self).__name__,
        )
        return Call(xs, was_tuple, ev, ModelGuard(self.forward_func, inputs=xs))

    def compute_convergence_delta(
        self,
        attributions: Tensor | tuple[Tensor, ...],
        start_point: BaselineType,
        end_point: Tensor | tuple[Tensor, ...],
        target: TargetType = None,
        additional_forward_args: Any = None,
        forward_kwargs: Mapping[str, Any] | None = None,
    ) -> Tensor:
        """Completeness gap ``sum(attributions) - (F(end_point) - F(start_point))``, shape ``(N,)``."""
        ends, _ = format_inputs(end_point, "end_point")
        attrs, _ = format_inputs(attributions, "attributions")
        starts = format_baselines(start_point, ends, "start_point")
        n = ends[0].shape[0]
        ev = Evaluator(self.forward_func, target, additional_forward_args, forward_kwargs, n=n)
        with ModelGuard(self.forward_func):
            ex = torch.arange(n)
            f_end = ev.all_scores(ends, ex)
            f_start = ev.all_scores(tuple(s.expand_as(e) for s, e in zip(starts, ends)), ex)
        return attribution_sum(attrs) - (f_end - f_start).to(attrs[0].dtype)


def check_user_call(method: Attribution, arguments: Mapping[str, Any], var_keyword: str | None = None) -> None:
    """Checks of a user's ``attribute`` call, run once before any work (by the wrapper every method's
    ``attribute`` gets, see :mod:`pellucid.attr._multi_target`), on the arguments as the user passed them.

    * ``inputs``: a tensor or a tuple of tensors with a common, non-empty batch (else ``TypeError``/``ValueError``
      naming ``inputs``).
    * NaN/Inf in ``inputs`` (or in tensor ``baselines``) propagate, in every method; a ``RuntimeWarning`` names
      the argument and the examples (rows) concerned. Rows are independent, so only the attributions computed
      from them become non-finite (surrogate fits and decompositions are per example: no failure of the batch).
    * ``additional_forward_args`` / ``forward_kwargs`` must fit the model's ``forward`` signature
      (``model(*inputs, *additional_forward_args, **forward_kwargs)``), else a ``TypeError`` naming them (skipped
      for methods with ``_model_takes_inputs = False``, whose model is called on something else).

    Methods whose ``inputs`` are not tensors (none in pellucid.attr today) are left to their own checks.
    """
    inputs = arguments.get("inputs")
    items = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    if not items or not all(isinstance(t, Tensor) for t in items):
        return
    xs, _ = format_inputs(inputs)
    warn_nonfinite(xs, stacklevel=4)
    for name in ("baselines", "layer_baselines"):
        value = arguments.get(name)
        values = tuple(value) if isinstance(value, (tuple, list)) else (value,)
        if values and all(isinstance(v, Tensor) and v.dim() > 0 for v in values):
            warn_nonfinite(values, name, stacklevel=4, unit="row")
    extra = dict(arguments.get(var_keyword) or {}) if var_keyword else {}
    args = arguments.get("additional_forward_args", extra.get("additional_forward_args"))
    kwargs = arguments.get("forward_kwargs", extra.get("forward_kwargs"))
    fwd = ForwardArgs.make(args, kwargs, xs[0].shape[0])
    if getattr(method, "_model_takes_inputs", True):
        check_forward_arguments(method.forward_func, xs, fwd.args, fwd.kwargs)


def attribution_sum(attrs: tuple[Tensor, ...]) -> Tensor:
    """Sum of attributions per example over all inputs and features: ``(N,)``."""
    return sum(a.reshape(a.shape[0], -1).sum(1) for a in attrs)


def rows_of(t: Tensor, ex: Tensor) -> Tensor:
    """Rows of a per-example tensor (or a batch-1 tensor, broadcast) for example numbers ``ex``."""
    if t.shape[0] == 1:
        return t.expand((ex.shape[0],) + t.shape[1:])
    return t.index_select(0, ex.to(t.device))
