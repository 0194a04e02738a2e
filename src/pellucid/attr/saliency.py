"""Saliency (Simonyan et al., 2013, arXiv:1312.6034) and input x gradient (Shrikumar et al., 2016, arXiv:1605.01713)."""
from __future__ import annotations

from typing import Any, Mapping


from ..core.inputs import TensorOrTuple, restore_form
from ..core.targets import TargetType
from ._base import Attribution


class Saliency(Attribution):
    """Gradient of the target with respect to the inputs: ``|dF/dx|`` (``abs=True``, the default) or ``dF/dx``.

    Returns the inputs' shapes. One forward+backward per example.
    """

    def attribute(
        self,
        inputs: TensorOrTuple,
        target: TargetType = None,
        abs: bool = True,
        additional_forward_args: Any = None,
        *,
        forward_kwargs: Mapping[str, Any] | None = None,
        batch_size: int | None = None,
        show_progress: bool = False,
    ) -> TensorOrTuple:
        call = self.prepare(inputs, target, additional_forward_args, forward_kwargs, batch_size, show_progress)
        with call.guard:
            out = call.ev.input_grads(call.inputs, (lambda x, g: g.abs()) if abs else (lambda x, g: g))
        return restore_form(out, call.was_tuple)


class InputXGradient(Attribution):
    """``x * dF/dx`` (Shrikumar et al., 2016). Equals DeepLIFT and IG with a zero baseline on linear models."""

    _multiply_by_inputs = True

    def attribute(
        self,
        inputs: TensorOrTuple,
        target: TargetType = None,
        additional_forward_args: Any = None,
        *,
        forward_kwargs: Mapping[str, Any] | None = None,
        batch_size: int | None = None,
        show_progress: bool = False,
    ) -> TensorOrTuple:
        call = self.prepare(inputs, target, additional_forward_args, forward_kwargs, batch_size, show_progress)
        with call.guard:
            out = call.ev.input_grads(call.inputs, lambda x, g: x * g)
        return restore_form(out, call.was_tuple)
