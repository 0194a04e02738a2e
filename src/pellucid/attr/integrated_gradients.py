"""Integrated gradients (Sundararajan, Taly & Yan, 2017, "Axiomatic Attribution for Deep Networks", arXiv:1703.01365).

``IG_i(x) = (x_i - x'_i) * integral_0^1 dF(x' + a (x - x'))/dx_i da``, the integral by the quadrature of
:mod:`pellucid.core.paths`. Rows are examples x path steps, evaluated in memory-budgeted chunks.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
from torch import Tensor

from ..core.inputs import BaselineType, TensorOrTuple, format_baselines, restore_form
from ..core.paths import path_points
from ..core.targets import TargetType
from ._base import Attribution, Call, attribution_sum, rows_of


def path_builder(
    inputs: tuple[Tensor, ...], baselines: tuple[Tensor, ...], alphas: Tensor
) -> Callable[[Tensor], tuple[tuple[Tensor, ...], Tensor]]:
    """Rows ``r = example * n_steps + step`` on the straight path ``x' + alphas[step] * (x - x')``."""
    steps = alphas.shape[0]

    def build(rows: Tensor):
        ex, st = rows // steps, rows % steps
        out = []
        for x, b in zip(inputs, baselines):
            xr, br = rows_of(x, ex), rows_of(b, ex)
            a = alphas.to(device=x.device, dtype=x.dtype)[st.to(x.device)].reshape((-1,) + (1,) * (x.dim() - 1))
            out.append(br + a * (xr - br))
        return tuple(out), ex

    return build


def endpoint_delta(call: Call, attrs: tuple[Tensor, ...], baselines: tuple[Tensor, ...]) -> Tensor:
    """Completeness gap ``sum(attr) - (F(x) - F(x'))`` per example (two extra forward rows per example)."""
    ex = torch.arange(call.n)
    f_x = call.ev.all_scores(call.inputs, ex, tag="end")
    f_b = call.ev.all_scores(tuple(b.expand_as(x) for b, x in zip(baselines, call.inputs)), ex, tag="start")
    return attribution_sum(attrs) - (f_x - f_b).to(attrs[0].dtype)


class IntegratedGradients(Attribution):
    """Integrated gradients.

    Args:
        forward_func: the model.
        multiply_by_inputs: if False, return the path-averaged gradient without the ``(x - x')`` factor
            (a "global" attribution in Captum's terms).

    ``attribute`` returns the inputs' shapes (tensor in, tensor out; tuple in, tuple out), and with
    ``return_convergence_delta=True`` also ``delta`` ``(N,)`` = sum(attributions) - (F(x) - F(x')).
    """

    def __init__(self, forward_func: Callable, multiply_by_inputs: bool = True):
        super().__init__(forward_func)
        self._multiply_by_inputs = multiply_by_inputs

    def has_convergence_delta(self) -> bool:
        return True

    def attribute(
        self,
        inputs: TensorOrTuple,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        n_steps: int = 50,
        method: str = "gausslegendre",
        internal_batch_size: int | None = None,
        return_convergence_delta: bool = False,
        *,
        forward_kwargs: Mapping[str, Any] | None = None,
        batch_size: int | None = None,
        show_progress: bool = False,
    ):
        """Args beyond Captum's: ``forward_kwargs`` (keyword extras), ``batch_size`` (rows per model call;
        ``internal_batch_size`` is its Captum name; default from the memory budget), ``show_progress``."""
        call = self.prepare(
            inputs, target, additional_forward_args, forward_kwargs, batch_size, show_progress,
            internal_batch_size=internal_batch_size,
        )
        bases = format_baselines(baselines, call.inputs)
        alphas, weights = path_points(n_steps, method)
        acc = [torch.zeros_like(x) for x in call.inputs]

        def consume(rows: Tensor, ex: Tensor, grads: tuple[Tensor, ...], score: Tensor) -> None:
            st = rows % n_steps
            for a, g in zip(acc, grads):
                w = weights.to(device=g.device, dtype=g.dtype)[st.to(g.device)].reshape((-1,) + (1,) * (g.dim() - 1))
                a.index_add_(0, ex.to(g.device), g * w)

        with call.guard:
            call.ev.grad_rows(call.n * n_steps, path_builder(call.inputs, bases, alphas), consume, call.inputs, tag="path")
            attrs = tuple((a * (x - b)) if self._multiply_by_inputs else a for a, x, b in zip(acc, call.inputs, bases))
            if return_convergence_delta:
                delta = endpoint_delta(call, attrs, bases)
        out = restore_form(attrs, call.was_tuple)
        return (out, delta) if return_convergence_delta else out
