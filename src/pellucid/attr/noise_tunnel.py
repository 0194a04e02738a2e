"""NoiseTunnel: SmoothGrad (Smilkov et al., 2017, arXiv:1706.03825), SmoothGrad-squared and VarGrad (Adebayo et al.,
2018, arXiv:1810.03307) over any attribution method.

The ``nt_samples`` noisy copies of every example are attributed in *one* call of the wrapped method (rows are
examples x samples, chunked by the memory budget), then reduced: ``smoothgrad`` = mean, ``smoothgrad_sq`` = mean
of squares, ``vargrad`` = variance (population, as in the paper).
"""
from __future__ import annotations

import inspect
import re
from typing import Any, Callable

import torch
from torch import Tensor

from ..core.errors import check_choice, check_generator, check_positive_int
from ..core.inputs import ForwardArgs, TensorOrTuple, format_baselines, format_distribution, format_inputs, restore_form
from ..core.perturb import format_feature_mask
from ..core.targets import Target, _plain
from ._base import Attribution
from .gradient_shap import gaussian_like, noise_stdevs

NT_TYPES = ("smoothgrad", "smoothgrad_sq", "vargrad")


# keyword arguments of the wrapped methods that may hold one row per example (repeated with the noisy copies)
LAYER_ROW_ARGS = ("layer_baselines", "layer_mask")


def _check_target(target: Any, n: int) -> None:
    """The user's target against the user's ``n`` examples (messages speak of what the user passed)."""
    if target is None or (callable(target) and not isinstance(target, Tensor)):
        return
    if isinstance(target, Tensor) and target.dim() == 2 and target.numel() > 1:
        if target.shape[0] != n:
            raise ValueError(f"a 2-D target must have shape (N, K) with N = {n} examples; received {tuple(target.shape)}")
        return
    Target(target, n)


def _repeat_target(target: Any, times: int) -> Any:
    """Per-example targets repeated with the noisy copies: lists and tensors of more than one element (as Captum);
    an int, a tuple, a callable or a one-element tensor applies to every row as it is."""
    if isinstance(target, list):
        return [t for t in target for _ in range(times)]
    if isinstance(target, Tensor) and target.numel() > 1:
        return target.repeat_interleave(times, dim=0)
    return target


def _rows_of_input(value: Any, x: Tensor, n: int) -> bool:
    """A tensor with one row per example of input ``x``: the input's number of dims and ``n > 1`` rows (a tensor
    shaped like one example, or with batch 1, applies to every row)."""
    return isinstance(value, Tensor) and n > 1 and value.dim() == x.dim() and value.shape[0] == n


def _per_input(value: Any, xs: tuple[Tensor, ...], fn: Callable[[Any, Tensor], Any]) -> Any:
    """``fn(item, input)`` for each item of a per-input argument (a tensor for one input or a tuple/list)."""
    if isinstance(value, (tuple, list)):
        if len(value) != len(xs):
            return value
        return type(value)(fn(v, x) for v, x in zip(value, xs))
    return fn(value, xs[0]) if len(xs) == 1 else value


def _repeat_rows(value: Any, n: int, times: int) -> Any:
    if isinstance(value, Tensor) and n > 1 and value.dim() > 0 and value.shape[0] == n:
        return value.repeat_interleave(times, dim=0)
    if isinstance(value, (tuple, list)):
        return type(value)(_repeat_rows(v, n, times) for v in value)
    return value


def _expand_arguments(kwargs: dict, xs: tuple[Tensor, ...], times: int, distribution: bool, draw: bool,
                      gen: torch.Generator | None) -> dict:
    """Check the wrapped method's per-example arguments against the user's ``N`` examples ``xs`` (so every error
    speaks of what the user passed), then repeat them with the ``times`` noisy copies of every example
    (example-major): ``target``, ``baselines`` (per-example ones; with ``draw_baseline_from_distrib`` one sample
    drawn per noisy row; a distribution of a method such as GradientShap stays as it is), ``feature_mask``,
    ``additional_forward_args``, ``forward_kwargs`` and the layer methods' ``layer_baselines`` / ``layer_mask``."""
    n = xs[0].shape[0]
    kwargs = dict(kwargs)
    if "target" in kwargs:
        kwargs["target"] = _plain(kwargs["target"])  # numpy integers / arrays as ints / tensors (then repeated)
        _check_target(kwargs["target"], n)
        kwargs["target"] = _repeat_target(kwargs["target"], times)
    b = kwargs.get("baselines")
    if b is not None:
        if callable(b) and not isinstance(b, Tensor):
            pass  # drawn by the wrapped method itself
        elif draw or distribution:
            dist = format_distribution(b, xs)
            if draw:
                pick = torch.randint(0, dist[0].shape[0], (n * times,), generator=gen)
                drawn = tuple(d.index_select(0, pick.to(d.device)) for d in dist)
                kwargs["baselines"] = drawn if isinstance(b, (tuple, list)) else drawn[0]
        else:
            format_baselines(b, xs)
            kwargs["baselines"] = _per_input(
                b, xs, lambda v, x: v.repeat_interleave(times, dim=0) if _rows_of_input(v, x, n) else v)
    mask = kwargs.get("feature_mask")
    if mask is not None:
        format_feature_mask(mask, xs)
        kwargs["feature_mask"] = _per_input(
            mask, xs, lambda v, x: v.repeat_interleave(times, dim=0) if _rows_of_input(v, x, n) else v)
    for name in LAYER_ROW_ARGS:
        if kwargs.get(name) is not None:
            kwargs[name] = _repeat_rows(kwargs[name], n, times)
    extra, kw = kwargs.get("additional_forward_args"), kwargs.get("forward_kwargs")
    if extra is not None or kw is not None:
        fwd = ForwardArgs.make(extra, kw, n).repeat(times)
        if extra is not None:
            kwargs["additional_forward_args"] = fwd.args
        if kw is not None:
            kwargs["forward_kwargs"] = fwd.kwargs
    return kwargs


class NoiseTunnel(Attribution):
    """Averages another method's attributions over noisy copies of the input.

    Args:
        attribution_method: any pellucid attribution object (e.g. ``Saliency(model)``).

    ``attribute(inputs, nt_type="smoothgrad", nt_samples=5, nt_samples_batch_size=None, stdevs=1.0,
    draw_baseline_from_distrib=False, generator=None, seed=None, **kwargs)``; ``kwargs`` go to the wrapped
    method. Returns the inputs' shapes; with ``return_convergence_delta=True`` the wrapped method's delta for each
    noisy sample, shape ``(N, nt_samples)``. ``nt_samples_batch_size`` is accepted as the rows per model call.

    The wrapped method's per-example arguments are checked against the ``N`` examples passed (errors speak of
    them, not of the ``N * nt_samples`` noisy rows) and repeated with the noisy copies: a per-example list or
    tensor ``target`` (one with a single element applies to all rows, as in Captum), per-example ``baselines``
    and ``feature_mask`` (tensors with the input's dims and ``N`` rows), ``additional_forward_args`` /
    ``forward_kwargs`` tensors with ``N`` rows, and ``layer_baselines`` / ``layer_mask`` with ``N`` rows.
    Baselines that a method draws from as a distribution (GradientShap, DeepLiftShap) are passed unchanged;
    ``draw_baseline_from_distrib=True`` draws one baseline sample per noisy row.
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
        if nt_samples_batch_size is not None and kwargs.get("batch_size") is None:
            kwargs["batch_size"] = check_positive_int(nt_samples_batch_size, "nt_samples_batch_size")
        distribution = bool(getattr(self.attribution_method, "_distribution_baselines", False))
        noisy = tuple(x.repeat_interleave(s, dim=0) + gaussian_like(x, n * s, sd, gen) for x, sd in zip(xs, stds))
        kwargs = _expand_arguments(kwargs, xs, s, distribution, draw_baseline_from_distrib, gen)
        if gen is not None and "generator" in inspect.signature(self.attribution_method.attribute).parameters:
            # a random wrapped method (GradientShap) continues the same stream: reproducible with seed=/generator=
            kwargs.setdefault("generator", gen)
        try:
            result = self.attribution_method.attribute(restore_form(noisy, was_tuple), **kwargs)
        except ValueError as e:
            # the engine names the example of a bad target by its row; give the user's example number instead
            message = re.sub(r"\(example (\d+)\)", lambda m: f"(example {int(m.group(1)) // s})", str(e))
            if message == str(e):
                raise
            raise ValueError(message) from e
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
