"""Fast gradient sign method (Goodfellow, Shlens & Szegedy 2015, "Explaining and harnessing adversarial
examples", arXiv:1412.6572)."""
from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import Tensor

from .perturbation import Perturbation, default_loss, format_attack_inputs, format_mask, input_gradients, restore_form


class FGSM(Perturbation):
    """One signed-gradient step of size ``epsilon`` on the loss ``L(f(x), y)``:

    * untargeted: ``x' = x + epsilon * sign(grad_x L(f(x), y))`` (move away from the true label ``y``),
    * targeted: ``x' = x - epsilon * sign(grad_x L(f(x), t))`` (move toward the target class ``t``),

    then clamped to ``[lower_bound, upper_bound]``. Elements whose gradient magnitude is at most ``zero_thresh``
    (1e-6, as Captum) are left unchanged. ``loss_func(outputs, target) -> loss`` defaults to the negative
    log-likelihood of the target (see :func:`pellucid.robust.perturbation.default_loss`).

    >>> adv = FGSM(model, lower_bound=0, upper_bound=1).perturb(images, epsilon=8 / 255, target=labels)
    """

    def __init__(self, forward_func: Callable, loss_func: Callable | None = None,
                 lower_bound: float = float("-inf"), upper_bound: float = float("inf")) -> None:
        if not callable(forward_func):
            raise TypeError(f"forward_func must be a model or callable; received {type(forward_func).__name__}")
        if loss_func is not None and not callable(loss_func):
            raise TypeError(f"loss_func must be callable(outputs, target) -> loss; received {type(loss_func).__name__}")
        if not lower_bound <= upper_bound:
            raise ValueError(f"lower_bound ({lower_bound}) must not exceed upper_bound ({upper_bound})")
        self.forward_func = forward_func
        self.loss_func = loss_func
        self.lower_bound, self.upper_bound = lower_bound, upper_bound
        self.zero_thresh = 1e-6

    def bound(self, x: Tensor) -> Tensor:
        """Clamp to ``[lower_bound, upper_bound]``."""
        return torch.clamp(x, min=self.lower_bound, max=self.upper_bound)

    def _loss(self, target: Any) -> Callable[[Any], Tensor]:
        if self.loss_func is None:
            return lambda out: default_loss(out, target)
        return lambda out: self.loss_func(out, target)

    def perturb(self, inputs: Any, epsilon: float, target: Any, additional_forward_args: Any = None,
                targeted: bool = False, mask: Any = None) -> Any:
        """Perturbed inputs, same form and shapes as ``inputs`` (tensor or tuple of tensors, dim 0 the batch).

        ``target``: true labels (untargeted) or target classes (targeted), any target form (int, per-example
        list/tensor, tuple) or whatever ``loss_func`` takes; ``mask``: 0/1 tensors (per input) of the elements that
        may change."""
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not math.isfinite(epsilon):
            raise TypeError(f"epsilon must be a finite number; received {epsilon!r}")
        xs, was_tuple = format_attack_inputs(inputs)
        masks = format_mask(mask, xs)
        grads = input_gradients(self.forward_func, xs, self._loss(target), additional_forward_args)
        out = self._step(xs, grads, float(epsilon), targeted, masks)
        return restore_form([self.bound(x) for x in out], was_tuple)

    def _step(self, xs: tuple[Tensor, ...], grads: tuple[Tensor, ...], epsilon: float, targeted: bool,
              masks: tuple) -> list[Tensor]:
        direction = -1.0 if targeted else 1.0
        return [torch.where(g.abs() > self.zero_thresh, x + direction * epsilon * torch.sign(g) * m, x).detach()
                for x, g, m in zip(xs, grads, masks)]
