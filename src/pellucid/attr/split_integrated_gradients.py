"""Split integrated gradients: the saturation-aware IG of Miglani, Kokhlikyan, Alsallakh, Martin & Reblitz-Richardson,
2020, "Investigating Saturation Effects in Integrated Gradients", arXiv:2010.12697.

On the right-Riemann path ``a_k = k / n_steps`` (k = 1..n_steps), with ``f0 = F(x')``, ``f1 = F(x)`` and the
threshold ``T = f0 + psi * (f1 - f0)``, the *split* is the first step ``k*`` whose output ``F(x' + a_k (x - x'))``
has covered the fraction ``psi`` of the change, i.e. exceeds ``T`` when ``f1 > f0``. The attribution is the left
integral, the IG sum over the steps before the split (the unsaturated part of the path); the right integral sums
the steps from the split on. ``left + right`` equals right-Riemann IG with the same ``n_steps`` exactly.

Edge cases (documented behaviour, tested):

* no step crosses ``T`` (possible only with ``psi >= 1`` or when the path leaves and returns): the whole path is
  unsaturated; ``left`` is all of IG, ``right`` is zero, ``split_index = n_steps`` and ``split_alpha = 1``.
* ``f1 < f0``: the criterion follows the direction of the change: the split is the first step whose output has
  fallen to ``T`` or below (covered ``psi`` of the decrease). ``f1 == f0``: there is no change to saturate, so the
  whole path is the left part as above.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple

import torch
from torch import Tensor

from ..core.errors import check_nonnegative
from ..core.inputs import BaselineType, TensorOrTuple, format_baselines, restore_form
from ..core.paths import path_points
from ..core.targets import TargetType
from ._base import Attribution
from .integrated_gradients import path_builder


class SplitDetails(NamedTuple):
    """What ``SplitIntegratedGradients.attribute(..., return_split=True)`` returns beside the left integral.

    ``right``: the right integral (inputs' shapes); ``split_alpha`` ``(N,)``: ``a_{k*}``; ``split_index`` ``(N,)``:
    ``k* - 1`` (0-based step of the split, ``n_steps`` when no step crosses); ``alphas`` ``(n_steps,)``;
    ``path_outputs`` ``(N, n_steps)``: ``F`` along the path; ``start_output``/``end_output`` ``(N,)``: f0, f1;
    ``threshold`` ``(N,)``: T.
    """

    right: TensorOrTuple
    split_alpha: Tensor
    split_index: Tensor
    alphas: Tensor
    path_outputs: Tensor
    start_output: Tensor
    end_output: Tensor
    threshold: Tensor


class SplitIntegratedGradients(Attribution):
    """Saturation-aware integrated gradients (left integral up to the saturation split). See module docstring."""

    def __init__(self, forward_func: Callable, multiply_by_inputs: bool = True):
        super().__init__(forward_func)
        self._multiply_by_inputs = multiply_by_inputs

    def attribute(
        self,
        inputs: TensorOrTuple,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        n_steps: int = 50,
        psi: float = 0.9,
        internal_batch_size: int | None = None,
        return_split: bool = False,
        *,
        forward_kwargs: Mapping[str, Any] | None = None,
        batch_size: int | None = None,
        show_progress: bool = False,
    ):
        """Left integral (inputs' shapes); with ``return_split=True`` also a :class:`SplitDetails`."""
        psi = check_nonnegative(psi, "psi")
        call = self.prepare(
            inputs, target, additional_forward_args, forward_kwargs, batch_size, show_progress,
            internal_batch_size=internal_batch_size,
        )
        bases = format_baselines(baselines, call.inputs)
        alphas, _ = path_points(n_steps, "riemann_right")
        n = call.n
        left = [torch.zeros_like(x) for x in call.inputs]
        right = [torch.zeros_like(x) for x in call.inputs]
        outputs = torch.zeros(n, n_steps, dtype=torch.float64)
        first = torch.full((n,), n_steps, dtype=torch.long)  # first crossing step seen so far

        # Rows visit each example's last step (a = 1) first, then steps 0 .. n-2 in order: the last step gives
        # f1 = F(x) (hence T) before the rest of the path, so no extra forward is needed for it.
        order = torch.cat([torch.tensor([n_steps - 1]), torch.arange(n_steps - 1)])
        f1 = torch.zeros(n, dtype=torch.float64)
        last_part = [torch.zeros_like(x) for x in call.inputs]  # last step: left only if no step crosses

        with call.guard:
            ex_all = torch.arange(n)
            f0 = call.ev.all_scores(tuple(b.expand_as(x) for b, x in zip(bases, call.inputs)), ex_all, tag="start")
            f0 = f0.detach().double().cpu()

            def consume(rows: Tensor, ex: Tensor, grads: tuple[Tensor, ...], score: Tensor) -> None:
                st = order[rows % n_steps]
                s = score.detach().double().cpu()
                outputs[ex, st] = s
                last = st == n_steps - 1
                f1[ex[last]] = s[last]
                sign = torch.sign(f1[ex] - f0[ex])
                threshold = f0[ex] + psi * (f1[ex] - f0[ex])
                crossed = (sign > 0) & (s > threshold) | (sign < 0) & (s <= threshold)
                if bool(crossed.any()):
                    cand = torch.where(crossed, st, torch.full_like(st, n_steps))
                    first.scatter_reduce_(0, ex, cand, reduce="amin")
                is_left = (st < first[ex]) & ~last  # earlier steps arrive in order: `first` holds every earlier crossing
                is_right = ~is_left & ~last
                for lf, lp, rt, g in zip(left, last_part, right, grads):
                    c = g / n_steps
                    e = ex.to(g.device)
                    shape = (-1,) + (1,) * (g.dim() - 1)
                    lf.index_add_(0, e, c * is_left.to(g.device, g.dtype).reshape(shape))
                    rt.index_add_(0, e, c * is_right.to(g.device, g.dtype).reshape(shape))
                    if bool(last.any()):
                        keep = last.to(g.device)
                        lp.index_add_(0, e[keep], c[keep])

            call.ev.grad_rows(n * n_steps, path_builder(call.inputs, bases, alphas[order]), consume, call.inputs, tag="path")
        uncrossed = (first == n_steps).reshape(-1)
        for lf, rt, lp in zip(left, right, last_part):
            to_left = uncrossed.to(lp.device, lp.dtype).reshape((-1,) + (1,) * (lp.dim() - 1))
            lf.add_(lp * to_left)
            rt.add_(lp * (1 - to_left))
        threshold = f0 + psi * (f1 - f0)

        def finish(acc):
            return tuple((a * (x - b)) if self._multiply_by_inputs else a for a, x, b in zip(acc, call.inputs, bases))

        left_attr = finish(left)
        out = restore_form(left_attr, call.was_tuple)
        if not return_split:
            return out
        right_attr = finish(right)
        split_alpha = torch.where(first < n_steps, alphas[first.clamp(max=n_steps - 1)], torch.ones(n, dtype=torch.float64))
        details = SplitDetails(
            right=restore_form(right_attr, call.was_tuple),
            split_alpha=split_alpha,
            split_index=first.clone(),
            alphas=alphas,
            path_outputs=outputs,
            start_output=f0,
            end_output=f1,
            threshold=threshold,
        )
        return out, details
