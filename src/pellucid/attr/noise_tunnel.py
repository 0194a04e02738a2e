"""NoiseTunnel: SmoothGrad (Smilkov et al., 2017, arXiv:1706.03825), SmoothGrad-squared and VarGrad (Adebayo et al.,
2018, arXiv:1810.03307) over any attribution method.

The ``nt_samples`` noisy copies of every example are attributed in *one* call of the wrapped method (rows are
examples x samples, chunked by the memory budget), then reduced: ``smoothgrad`` = mean, ``smoothgrad_sq`` = mean
of squares, ``vargrad`` = variance (population, as in the paper).
"""
from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import Tensor

from ..core.errors import check_choice, check_generator, check_positive_int
from ..core.inputs import ForwardArgs, TensorOrTuple, format_inputs, restore_form
from ._base import Attribution
from .gradient_shap import gaussian_like, noise_stdevs

NT_TYPES = ("smoothgrad", "smoothgrad_sq", "vargrad")


def _repeat_target(target: Any, times: int) -> Any:
    if isinstance(target, list):
        return [t for t in target for _ in range(times)]
    if isinstance(target, Tensor) and target.dim() in (1, 2):
        return target.repeat_interleave(times, dim=0)
    return target


def _repeat_baselines(baselines: Any, n: int, times: int, pick: Tensor | None, inputs: tuple[Tensor, ...]) -> Any:
    """Per-example baselines repeated; with ``pick`` (draw_baseline_from_distrib) one sample drawn per row.

    A tensor counts as per-example only if it has its input's number of dims (a baseline shaped like one example
    has none to repeat, even when its first size happens to equal ``N``)."""
    if isinstance(baselines, (tuple, list)):
        if len(baselines) != len(inputs):
            return baselines  # the wrapped method reports the mismatch
        return tuple(_repeat_baselines(b, n, times, pick, (x,)) for b, x in zip(baselines, inputs))
    if isinstance(baselines, Tensor) and baselines.dim() > 0:
        if pick is not None:
            return baselines.index_select(0, pick.to(baselines.device))
        if baselines.shape[0] == n and n > 1 and baselines.dim() == inputs[0].dim():
            return baselines.repeat_interleave(times, dim=0)
    return baselines


class NoiseTunnel(Attribution):
    """Averages another method's attributions over noisy copies of the input.

    Args:
        attribution_method: any pellucid attribution object (e.g. ``Saliency(model)``).

    ``attribute(inputs, nt_type="smoothgrad", nt_samples=5, nt_samples_batch_size=None, stdevs=1.0,
    draw_baseline_from_distrib=False, generator=None, seed=None, **kwargs)``; ``kwargs`` go to the wrapped
    method. Returns the inputs' shapes; with ``return_convergence_delta=True`` the wrapped method's delta for each
    noisy sample, shape ``(N, nt_samples)``. ``nt_samples_batch_size`` is accepted as the rows per model call.
    """

    def __init__(self, attribution_method: Attribution):
        if not isinstance(attribution_method, Attribution):
            raise TypeError(f"attribution_method must be a pellucid attribution; received {type(attribution_method).__name__}")
        super().__init__(attribution_method.forward_func)
        self.attribution_method = attribution_method

    @property
    def multiplies_by_inputs(self) -> bool:
        return self.attribution_method.multiplies_by_inputs

    def has_convergence_delta(self) -> bool:
        return self.attribution_method.has_convergence_delta()

    def attribute(
        self,
        inputs: TensorOrTuple,
        nt_type: str = "smoothgrad",
        nt_samples: int = 5,
        nt_samples_batch_size: int | None = None,
        stdevs: float | tuple[float, ...] = 1.0,
        draw_baseline_from_distrib: bool = False,
        *,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        **kwargs: Any,
    ):
        check_choice(nt_type, "nt_type", NT_TYPES)
        check_positive_int(nt_samples, "nt_samples")
        gen = check_generator(generator, seed)
        xs, was_tuple = format_inputs(inputs)
        n, s = xs[0].shape[0], nt_samples
        stds = noise_stdevs(stdevs, len(xs))
        noisy = tuple(x.repeat_interleave(s, dim=0) + gaussian_like(x, n * s, sd, gen) for x, sd in zip(xs, stds))
        if nt_samples_batch_size is not None and kwargs.get("batch_size") is None:
            kwargs["batch_size"] = check_positive_int(nt_samples_batch_size, "nt_samples_batch_size")
        if "target" in kwargs:
            kwargs["target"] = _repeat_target(kwargs["target"], s)
        if kwargs.get("baselines") is not None:
            b = kwargs["baselines"]
            first = b[0] if isinstance(b, (tuple, list)) else b
            pick = None
            if draw_baseline_from_distrib and isinstance(first, Tensor):
                pick = torch.randint(0, first.shape[0], (n * s,), generator=gen)
            kwargs["baselines"] = _repeat_baselines(b, n, s, pick, xs)
        fwd = ForwardArgs.make(kwargs.get("additional_forward_args"), kwargs.get("forward_kwargs"), n).repeat(s)
        if kwargs.get("additional_forward_args") is not None:
            kwargs["additional_forward_args"] = fwd.args
        if kwargs.get("forward_kwargs") is not None:
            kwargs["forward_kwargs"] = fwd.kwargs
        if gen is not None and "generator" in inspect.signature(self.attribution_method.attribute).parameters:
            # a random wrapped method (GradientShap) continues the same stream: reproducible with seed=/generator=
            kwargs.setdefault("generator", gen)
        result = self.attribution_method.attribute(restore_form(noisy, was_tuple), **kwargs)
        delta = None
        if kwargs.get("return_convergence_delta"):
            result, delta = result
        attrs, _ = format_inputs(result, "attributions")
        reduced = []
        for a in attrs:
            a = a.reshape((n, s) + tuple(a.shape[1:]))
            if nt_type == "smoothgrad":
                reduced.append(a.mean(1))
            elif nt_type == "smoothgrad_sq":
                reduced.append((a * a).mean(1))
            else:
                reduced.append(a.var(1, unbiased=False))
        out = restore_form(reduced, was_tuple)
        return (out, delta.reshape(n, s)) if delta is not None else out
