"""Guided backpropagation (Springenberg et al., 2014, "Striving for Simplicity", arXiv:1412.6806) and
deconvolution (Zeiler & Fergus, 2013, arXiv:1311.2901).

Both change only the backward pass of ReLU: deconvolution passes ``relu(grad)``; guided backprop passes
``relu(grad) * (x > 0)``. Every ReLU is overridden, whether it is an ``nn.ReLU`` module (also one used twice or in
place) or a functional ``F.relu`` / ``torch.relu`` / ``x.relu()`` call inside ``forward``: the rules are hooked on
the ``ReluBackward0`` nodes of each pass's autograd graph (:mod:`pellucid.core.graph_rules`), which every ReLU
call creates, so the forward pass runs untouched and at full speed. A model whose backward autograd rejects because
an in-place operation overwrote a tensor saved for it (two ``ReLU(inplace=True)`` in a row: the second overwrites
the first one's saved output) is then run again with the rules applied to every ReLU *call*
(:class:`~pellucid.core.hooks.FunctionRules`), whose outputs own their memory, as Captum's module hooks do; a
model that still fails (an in-place ReLU overwriting what Tanh saved) raises autograd's error.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.graph_rules import GraphRules
from ..core.hooks import FunctionRules, out_of_place, override_grad, write_back
from ..core.inputs import TensorOrTuple, restore_form
from ..core.targets import TargetType
from ._base import Attribution

T = torch.Tensor
RELUS: dict[Callable, int | None] = {
    F.relu: 1, torch.relu: None, T.relu: None, torch.relu_: None, T.relu_: None, F.relu_: None,
}


def relu_backward_rule(guided: bool) -> Callable:
    def rule(func: Callable, args: tuple, kwargs: dict) -> Tensor:
        x, pos = args[0], RELUS[func]
        with torch.no_grad():
            y = out_of_place(func, args, kwargs, x.detach(), pos)
        # relu(x) itself is the guided mask, no copy: the output returned below is a copy that owns its memory
        # (the next function may modify it in place), so y stays as computed. Bool-mask ops (x > 0, torch.where)
        # are several times slower on CPU than threshold_backward, relu's own backward.

        def backward(g: Tensor) -> Tensor:
            if guided:  # a fresh tensor from threshold_backward, so clamped in place
                return torch.ops.aten.threshold_backward(g, y, 0).clamp_(min=0)
            return g.clamp(min=0)

        return write_back(func, args, kwargs, override_grad(x, y, backward, fresh=True), pos)

    return rule


@contextmanager
def relu_override(guided: bool):
    """Context manager: every ReLU inside uses the guided (or deconvolution) backward."""
    rule = relu_backward_rule(guided)
    with FunctionRules({f: rule for f in RELUS}):
        yield


RELU_NODE = "ReluBackward0"  # the autograd node of relu, relu_, F.relu (also inplace=True), x.relu(), nn.ReLU


def _positive_part(grads: tuple) -> tuple:
    return tuple(None if g is None else g.clamp(min=0) for g in grads)


# guided: before the node, the incoming gradient's negative part is dropped; ReLU's own backward then applies x > 0.
# deconvolution: instead of the node's result, the positive part of the incoming gradient, whatever the sign of x.
GUIDED = GraphRules(pre={RELU_NODE: _positive_part})
DECONVOLUTION = GraphRules(post={RELU_NODE: lambda grad_inputs, grad_outputs: _positive_part(grad_outputs)})


def relu_rules(guided: bool) -> GraphRules:
    """The backward rules of guided backprop (``guided=True``) or deconvolution, for one pass's graph."""
    return GUIDED if guided else DECONVOLUTION


class _ModifiedReluGradient(Attribution):
    guided = True

    def __init__(self, model: Callable):
        super().__init__(model)  # Captum names this parameter `model` for GuidedBackprop and Deconvolution
        self.model = model

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
            try:
                out = call.ev.input_grads(call.inputs, lambda x, g: g, graph_rules=relu_rules(self.guided))
            except RuntimeError as e:
                if "modified by an inplace operation" not in str(e):
                    raise
                out = call.ev.input_grads(call.inputs, lambda x, g: g,
                                          context=lambda xs, ex: relu_override(self.guided))
        return restore_form(out, call.was_tuple)


class GuidedBackprop(_ModifiedReluGradient):
    """Gradient with ReLU backward ``relu(grad) * (x > 0)``; returns the inputs' shapes."""

    guided = True


class Deconvolution(_ModifiedReluGradient):
    """Gradient with ReLU backward ``relu(grad)``; returns the inputs' shapes."""

    guided = False
