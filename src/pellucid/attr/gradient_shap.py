"""GradientSHAP (Lundberg & Lee, 2017, "A Unified Approach to Interpreting Model Predictions", arXiv:1705.07874;
the expected-gradients estimator of Erion et al., 2019, arXiv:1906.10670).

For each example, ``n_samples`` draws of a baseline ``b`` from the given distribution, Gaussian noise ``e`` with
standard deviation ``stdevs`` on the input, and ``a ~ U(0, 1)``:
``attr = mean_s (x + e_s - b_s) * dF/dx (b_s + a_s (x + e_s - b_s))``; without ``multiply_by_inputs`` the mean
gradient. The expectation of the sum of attributions is ``F(x) - E_b F(b)`` (with zero noise).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import torch
from torch import Tensor

from ..core.errors import check_generator, check_positive_int
from ..core.inputs import TensorOrTuple, format_distribution, restore_form
from ..core.targets import TargetType
from ._base import Attribution, attribution_sum


def noise_stdevs(stdevs: Any, n_inputs: int, name: str = "stdevs") -> tuple[float, ...]:
    """One non-negative, finite standard deviation per input."""
    items = tuple(stdevs) if isinstance(stdevs, (tuple, list)) else (stdevs,) * n_inputs
    if len(items) != n_inputs:
        raise ValueError(f"{name} has {len(items)} elements but there are {n_inputs} inputs; give one per input")
    for s in items:
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not 0 <= s < math.inf:
            raise ValueError(f"{name} must be non-negative finite numbers; received {stdevs!r}")
    return tuple(float(s) for s in items)


def gaussian_like(x: Tensor, rows: int, std: float, generator: torch.Generator | None) -> Tensor:
    """``rows`` Gaussian noise draws shaped like one row of ``x`` (drawn on the CPU for reproducibility)."""
    shape = (rows,) + tuple(x.shape[1:])
    if std == 0:
        return torch.zeros(shape, dtype=x.dtype, device=x.device)
    return (torch.randn(shape, generator=generator, dtype=torch.float32) * std).to(device=x.device, dtype=x.dtype)


class GradientShap(Attribution):
    """GradientSHAP / expected gradients. ``baselines``: a tensor of samples ``(S, ...)`` per input (or a callable
    returning one); returns the inputs' shapes, and with ``return_convergence_delta`` ``delta`` ``(N,)`` =
    sum(attr) - mean_s(F(x + e_s) - F(b_s)) (zero in expectation, not exactly)."""

    _distribution_baselines = True

    def __init__(self, forward_func: Callable, multiply_by_inputs: bool = True):
        super().__init__(forward_func)
        self._multiply_by_inputs = multiply_by_inputs

    def has_convergence_delta(self) -> bool:
        return True

    def attribute(
        self,
        inputs: TensorOrTuple,
        baselines: Any = None,
        n_samples: int = 5,
        stdevs: float | tuple[float, ...] = 0.0,
        target: TargetType = None,
        additional_forward_args: Any = None,
        return_convergence_delta: bool = False,
        *,
        forward_kwargs: Mapping[str, Any] | None = None,
        batch_size: int | None = None,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        show_progress: bool = False,
    ):
        check_positive_int(n_samples, "n_samples")
        gen = check_generator(generator, seed)
        call = self.prepare(inputs, target, additional_forward_args, forward_kwargs, batch_size, show_progress)
        dist = format_distribution(baselines, call.inputs)
        stds = noise_stdevs(stdevs, len(call.inputs))
        n, s = call.n, n_samples
        rows_total = n * s
        pick = torch.randint(0, dist[0].shape[0], (rows_total,), generator=gen)
        alpha = torch.rand(rows_total, generator=gen, dtype=torch.float64)
        noisy = tuple(
            x.repeat_interleave(s, dim=0) + gaussian_like(x, rows_total, sd, gen) for x, sd in zip(call.inputs, stds)
        )
        acc = [torch.zeros_like(x) for x in call.inputs]

        def build(rows: Tensor):
            ex = rows // s
            out = []
            for xn, d in zip(noisy, dist):
                r = rows.to(xn.device)
                xr, br = xn.index_select(0, r), d.index_select(0, pick[rows].to(d.device))
                a = alpha[rows].to(device=xn.device, dtype=xn.dtype).reshape((-1,) + (1,) * (xn.dim() - 1))
                out.append(br + a * (xr - br))
            return tuple(out), ex

        def consume(rows: Tensor, ex: Tensor, grads: tuple[Tensor, ...], score: Tensor) -> None:
            for a, g, xn, d in zip(acc, grads, noisy, dist):
                if self._multiply_by_inputs:
                    g = g * (xn.index_select(0, rows.to(xn.device)) - d.index_select(0, pick[rows].to(d.device)))
                a.index_add_(0, ex.to(g.device), g / s)

        with call.guard:
            call.ev.grad_rows(rows_total, build, consume, call.inputs, tag="gradshap")
            attrs = tuple(acc)
            if return_convergence_delta:
                ex = torch.arange(rows_total) // s
                f_x = call.ev.all_scores(noisy, ex, tag="end")
                f_b = call.ev.all_scores(tuple(d.index_select(0, pick.to(d.device)) for d in dist), ex, tag="start")
                delta = attribution_sum(attrs) - (f_x - f_b).reshape(n, s).mean(1).to(attrs[0].dtype)
        out = restore_form(attrs, call.was_tuple)
        return (out, delta) if return_convergence_delta else out
