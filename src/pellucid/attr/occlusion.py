"""Occlusion (Zeiler & Fergus, 2014, "Visualizing and Understanding Convolutional Networks", arXiv:1311.2901).

A window of ``sliding_window_shapes`` slides over each input with ``strides``; for every window position the
output change ``F(x) - F(x with the window set to the baseline)`` is credited to every position it covers, and each
position's credit is averaged over the windows covering it. As in Captum, a dim of size ``d`` gets
``ceil((d - w) / s) + 1`` window positions, the last one cropped at the edge when the strides do not tile the input,
so every position is covered unless a stride exceeds its window (then positions between windows get 0). Rows are examples x
(1 + windows), evaluated in memory-budgeted chunks; window masks are built per chunk, never all at once.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import Tensor

from ..core.inputs import BaselineType, TensorOrTuple, format_baselines, promote_integer_inputs, restore_form
from ..core.perturb import WindowPlan, finish, perturbation_batch_size
from ..core.targets import TargetType
from ._perturbation import PerturbationAttribution, run_plan

_MASK_CHUNK = 256  # windows whose masks are materialised at once when assembling attributions


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _per_input(value: Any, inputs: tuple[Tensor, ...], name: str, default: int | None = None) -> list[tuple[int, ...]]:
    """One tuple of positive ints (one per non-batch dim) per input, from Captum's forms."""
    k = len(inputs)
    if value is None:
        if default is None:
            raise ValueError(f"{name} is required")
        value = default
    if _is_int(value):
        items: Sequence[Any] = [value] * k
    elif isinstance(value, (tuple, list)) and k == 1 and not any(isinstance(v, (tuple, list)) for v in value):
        items = [tuple(value)]
    elif isinstance(value, (tuple, list)) and len(value) == k:
        items = list(value)
    else:
        raise ValueError(
            f"{name} must be an int or a tuple of ints (one input), or a tuple with one entry per input "
            f"({k} inputs); received {value!r}"
        )
    out = []
    for i, (v, x) in enumerate(zip(items, inputs)):
        where = f"{name}[{i}]" if k > 1 else name
        dims = x.dim() - 1
        v = (v,) * dims if _is_int(v) else v
        if not isinstance(v, (tuple, list)) or not all(_is_int(e) for e in v):
            raise TypeError(f"{where} must be an int or a tuple of ints; received {v!r}")
        if len(v) != dims:
            raise ValueError(
                f"{where} has {len(v)} entries but the input (shape {tuple(x.shape)}) has {dims} dims besides the "
                "batch; give one entry per dim"
            )
        if any(e < 1 for e in v):
            raise ValueError(f"{where} must hold positive ints; received {tuple(v)}")
        if any(e >= 2**63 for e in v):  # torch sizes and indices are int64
            raise ValueError(f"{where} must hold ints below 2**63 (torch's int64 sizes); received {tuple(v)}")
        out.append(tuple(v))
    return out


class Occlusion(PerturbationAttribution):
    """Occlusion with sliding windows (Captum-compatible keywords).

    ``attribute(inputs, sliding_window_shapes, strides=None, baselines=None, target=None, ...)`` returns the
    inputs' shapes (``(N, C, ...)`` for every output at once with ``target=None`` on an ``(N, C)`` output).
    Needs ``N x (1 + windows)`` forward rows; ``windows`` = prod over dims of ``ceil((size - window) / stride) + 1``
    (starts past the edge, possible only when ``stride > window``, are skipped; see
    :func:`~pellucid.core.perturb.window_count`). A model whose output aggregates the batch (a scalar or ``(K,)``
    without a batch dim) is occluded in all examples at once, as Captum: result ``(K, *input.shape[1:])``.
    """

    def attribute(
        self,
        inputs: TensorOrTuple,
        sliding_window_shapes: tuple[int, ...] | tuple[tuple[int, ...], ...],
        strides: None | int | tuple = None,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        perturbations_per_eval: int | None = None,
        show_progress: bool = False,
        *,
        forward_kwargs: Mapping[str, Any] | None = None,
        batch_size: int | None = None,
    ) -> TensorOrTuple:
        """Args:
            sliding_window_shapes: window shape per input (without the batch dim), e.g. ``(3, 8, 8)``.
            strides: int or tuple per input (default 1).
            baselines: values written into the window (None = 0; number; tensor of the input's shape or batch 1).
            perturbations_per_eval / batch_size: rows per model call (default: from the memory budget).
        """
        inputs = promote_integer_inputs(inputs, baselines)  # a float baseline of an integer input is used as given
        call = self.prepare(inputs, target, additional_forward_args, forward_kwargs, None, show_progress, needs_grad=False)
        call.ev.batch_size = perturbation_batch_size(batch_size, perturbations_per_eval, call.n)
        windows = _per_input(sliding_window_shapes, call.inputs, "sliding_window_shapes")
        steps = _per_input(strides, call.inputs, "strides", default=1)
        for i, (w, x) in enumerate(zip(windows, call.inputs)):
            if any(a > b for a, b in zip(w, x.shape[1:])):
                where = f"sliding_window_shapes[{i}]" if len(windows) > 1 else "sliding_window_shapes"
                raise ValueError(f"{where} = {w} is larger than the input (shape without batch {tuple(x.shape[1:])})")
        bases = format_baselines(baselines, call.inputs)
        plan = WindowPlan([x.shape[1:] for x in call.inputs], windows, steps)
        scores = run_plan(call, bases, lambda n: plan, "occlusion")
        v = scores.values
        diff = v[:, :1] - v[:, 1:]  # (N, W_total, K)
        out = []
        for i, x in enumerate(call.inputs):
            start = plan.offsets[i] - 1
            n_win = plan.n_windows[i]
            numel = x[0].numel()
            acc = torch.zeros((v.shape[0], v.shape[2], numel), dtype=v.dtype, device=v.device)
            count = torch.zeros(numel, dtype=v.dtype, device=v.device)
            for lo in range(0, n_win, _MASK_CHUNK):
                local = torch.arange(lo, min(n_win, lo + _MASK_CHUNK), device=v.device)
                m = plan.window_masks(i, local).reshape(local.shape[0], numel).to(v.dtype)
                acc += torch.einsum("nwk,wm->nkm", diff[:, start + lo : start + lo + local.shape[0]], m)
                count += m.sum(0)
            acc = acc / count.clamp(min=1)
            out.append(acc.reshape(acc.shape[:2] + tuple(x.shape[1:])))
        return restore_form(finish(out, scores), call.was_tuple)
