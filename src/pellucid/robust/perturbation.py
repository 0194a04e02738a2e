"""The base class of attacks: ``attack(inputs, ...)`` is ``attack.perturb(inputs, ...)``."""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from ..core.guard import ModelGuard
from ..core.inputs import ForwardArgs, format_inputs, restore_form
from ..core.targets import Target


class Perturbation:
    """An attack or perturbation of inputs. Subclasses implement :meth:`perturb`; calling the object calls it
    (so attacks and plain functions are interchangeable in :class:`~pellucid.robust.AttackComparator`)."""

    def perturb(self, inputs: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement perturb()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.perturb(*args, **kwargs)


def default_loss(outputs: Tensor, target: Any) -> Tensor:
    """Negative log-likelihood of ``target`` per example, ``(N,)``.

    Outputs that are a probability distribution along dim 1 (non-negative, summing to 1) give ``-log(p_target)``
    (Captum's default "negative log"); other outputs are taken as logits and give ``-log_softmax(outputs)[target]``
    (cross-entropy), where Captum would take the log of raw logits and step in a wrong direction when a logit is
    negative. ``(N,)`` outputs must be probabilities in ``[0, 1]``."""
    if not isinstance(outputs, Tensor) or outputs.dim() == 0:
        raise TypeError("the default loss needs a model output tensor of shape (N, ...); pass loss_func= otherwise")
    n = outputs.shape[0]
    with torch.no_grad():
        is_prob = bool((outputs >= 0).all()) and (
            outputs.dim() == 1 or bool(torch.allclose(outputs.sum(dim=1), torch.ones((), dtype=outputs.dtype), atol=1e-4)))
    if is_prob:
        nll = -torch.log(outputs)
    elif outputs.dim() >= 2:
        nll = -torch.log_softmax(outputs, dim=1)
    else:
        raise ValueError("the model's output has shape (N,) and is not a probability in [0, 1]: pass loss_func= "
                         "(a function of the outputs and target returning a loss)")
    return Target(target, n).select(nll, torch.arange(n))


def input_gradients(
    forward_func: Callable, inputs: tuple[Tensor, ...], loss: Callable[[Any], Tensor], additional_forward_args: Any,
) -> tuple[Tensor, ...]:
    """Gradients of ``loss(forward_func(*inputs, *args)).sum()`` with respect to ``inputs``; the model is left as
    it came (parameters frozen inside, modes and hooks untouched)."""
    args = ForwardArgs.make(additional_forward_args, None, inputs[0].shape[0])
    xs = tuple(x.detach().requires_grad_(True) for x in inputs)
    with ModelGuard(forward_func), torch.enable_grad():
        value = loss(forward_func(*xs, *args.args))
        if not isinstance(value, Tensor):
            raise TypeError(f"loss_func must return a tensor; returned {type(value).__name__}")
        grads = torch.autograd.grad(value.sum(), xs, allow_unused=True)
    return tuple(torch.zeros_like(x) if g is None else g for g, x in zip(grads, xs))


def format_attack_inputs(inputs: Any) -> tuple[tuple[Tensor, ...], bool]:
    xs, was_tuple = format_inputs(inputs)
    for i, x in enumerate(xs):
        if not x.is_floating_point():
            raise TypeError(f"inputs[{i}] must be a floating-point tensor to be attacked; received dtype {x.dtype}")
    return xs, was_tuple


def format_mask(mask: Any, inputs: tuple[Tensor, ...]) -> tuple[Tensor | float, ...]:
    """``mask`` as one tensor per input (1 = may change), broadcastable to the input; ``None`` = everything."""
    if mask is None:
        return (1.0,) * len(inputs)
    masks, _ = format_inputs(mask, name="mask")
    if len(masks) != len(inputs):
        raise ValueError(f"mask must have one tensor per input ({len(inputs)}); received {len(masks)}")
    for i, (m, x) in enumerate(zip(masks, inputs)):
        try:
            torch.broadcast_shapes(m.shape, x.shape)
        except RuntimeError:
            raise ValueError(f"mask[{i}] of shape {tuple(m.shape)} does not broadcast to the input's shape "
                             f"{tuple(x.shape)}") from None
    return tuple(m.to(x.dtype) for m, x in zip(masks, inputs))


__all__ = ["Perturbation", "default_loss", "format_attack_inputs", "format_mask", "input_gradients", "restore_form"]
