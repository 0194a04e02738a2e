"""Projected gradient descent (Madry et al. 2018, "Towards deep learning models resistant to adversarial
attacks", arXiv:1706.06083)."""
from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import Tensor

from .fgsm import FGSM
from .perturbation import Perturbation, format_attack_inputs, format_mask, input_gradients, restore_form

_NORMS = ("Linf", "L2")


def _flat_norm(x: Tensor) -> Tensor:
    """Per-example L2 norm, shaped to broadcast against ``x``."""
    return x.flatten(1).norm(dim=1).clamp_min(1e-12).reshape((-1,) + (1,) * (x.dim() - 1))


class PGD(Perturbation):
    """``step_num`` projected gradient steps of size ``step_size`` inside the ``norm`` ball of ``radius`` around
    the inputs:

    * ``Linf``: ``x_{t+1} = clip_r(x_t +/- step_size * sign(grad))`` (the FGSM step);
    * ``L2``: ``x_{t+1} = proj_r(x_t +/- step_size * grad / ||grad||_2)`` (steepest ascent for the L2 norm, as in
      Madry et al.; Captum takes sign steps in both norms, see docs/migrating-from-captum.md);

    then clamped to ``[lower_bound, upper_bound]``; ``+`` untargeted (away from the true label), ``-`` targeted.
    Each input tensor of a tuple is projected onto its own ball (as Captum). ``random_start`` starts from a
    uniform point of the ball (``generator`` for reproducibility, beyond Captum).
    """

    def __init__(self, forward_func: Callable, loss_func: Callable | None = None,
                 lower_bound: float = float("-inf"), upper_bound: float = float("inf")) -> None:
        self.fgsm = FGSM(forward_func, loss_func, lower_bound, upper_bound)
        self.forward_func = forward_func

    def bound(self, x: Tensor) -> Tensor:
        return self.fgsm.bound(x)

    def perturb(self, inputs: Any, radius: float, step_size: float, step_num: int, target: Any,
                additional_forward_args: Any = None, targeted: bool = False, random_start: bool = False,
                norm: str = "Linf", mask: Any = None, generator: torch.Generator | None = None) -> Any:
        """Perturbed inputs within ``radius`` of ``inputs`` (same form and shapes)."""
        for name, v in (("radius", radius), ("step_size", step_size)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"{name} must be a non-negative finite number; received {v!r}")
        if isinstance(step_num, bool) or not isinstance(step_num, int) or step_num < 0:
            raise ValueError(f"step_num must be a non-negative int; received {step_num!r}")
        if norm not in _NORMS:
            raise ValueError(f"norm must be 'Linf' or 'L2'; received {norm!r}")
        xs, was_tuple = format_attack_inputs(inputs)
        masks = format_mask(mask, xs)
        x0 = tuple(x.detach() for x in xs)
        cur = x0
        if random_start:
            cur = tuple(self.bound(self._random_point(x, float(radius), norm, m, generator)) for x, m in zip(x0, masks))
        loss = self.fgsm._loss(target)
        sign = -1.0 if targeted else 1.0
        for _ in range(step_num):
            grads = input_gradients(self.forward_func, cur, loss, additional_forward_args)
            if norm == "Linf":
                stepped = self.fgsm._step(cur, grads, float(step_size), targeted, masks)
            else:
                stepped = [x + sign * step_size * (g * m) / _flat_norm(g * m) for x, g, m in zip(cur, grads, masks)]
            cur = tuple(self.bound(self._project(x, s, float(radius), norm)).detach() for x, s in zip(x0, stepped))
        return restore_form(list(cur), was_tuple)

    @staticmethod
    def _project(center: Tensor, x: Tensor, radius: float, norm: str) -> Tensor:
        diff = x - center
        if norm == "Linf":
            return center + diff.clamp(-radius, radius)
        return center + diff * torch.clamp(radius / _flat_norm(diff), max=1.0)

    @staticmethod
    def _random_point(center: Tensor, radius: float, norm: str, mask: Any,
                      generator: torch.Generator | None) -> Tensor:
        """A uniform random point of the ball around ``center`` (per example), restricted to ``mask``."""
        kw = dict(dtype=center.dtype, device=center.device, generator=generator)
        if norm == "Linf":
            u = (torch.rand(center.shape, **kw) * 2 - 1) * radius
        else:
            d = center[0].numel()
            direction = torch.randn(center.shape, **kw)
            direction = direction / _flat_norm(direction)
            r = torch.rand((center.shape[0],), **kw) ** (1.0 / d) * radius
            u = direction * r.reshape((-1,) + (1,) * (center.dim() - 1))
        return center + u * mask
