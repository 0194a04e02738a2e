"""Layer attribution by composition (DESIGN section 4): a base method run in a layer's activation space.

The model is split at the layer with :class:`pellucid.core.layers.LayerSpace`: the activations of the inputs (and
of the baselines) become the base method's ``inputs`` (and ``baselines``), and the real inputs travel as extra
forward arguments, so :class:`IntegratedGradients`, :class:`DeepLift` and :class:`GradientShap` run unchanged.
Layer methods return the layer's shape (a tensor for a tensor output, a tuple for a tuple output or for several
inputs with ``attribute_to_layer_input=True``, a list for a list of layers).

Beyond Captum: ``forward_kwargs``, callable and every other target form, ``batch_size`` / the memory budget, and
``show_progress`` everywhere. ``device_ids`` (Captum's DataParallel argument) is accepted and not needed: hooks
see every replica's rows in one call.
"""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.errors import check_generator, check_positive_int
from ..core.inputs import BaselineType, TensorOrTuple, format_baselines, format_distribution
from ..core.layers import LayerSpace, LayerType, check_layers_in_model, format_layers
from ..core.targets import TargetType
from ._base import Attribution, Call
from .deeplift import DeepLift, _custom_arity
from .gradient_shap import GradientShap, gaussian_like, noise_stdevs
from .integrated_gradients import IntegratedGradients, endpoint_delta


def interpolate(layer_attribution: Tensor, interpolate_dims: int | tuple[int, ...], interpolate_mode: str = "nearest") -> Tensor:
    """Upsample a layer attribution ``(N, C, *spatial)`` to ``interpolate_dims`` (e.g. the input's ``(H, W)``).

    ``interpolate_mode``: any mode of ``torch.nn.functional.interpolate`` ("nearest", "bilinear", "bicubic", ...).
    """
    if not isinstance(layer_attribution, Tensor) or layer_attribution.dim() < 3:
        got = tuple(layer_attribution.shape) if isinstance(layer_attribution, Tensor) else type(layer_attribution).__name__
        raise ValueError(f"layer_attribution must be a tensor (N, C, *spatial) with at least one spatial dim; received {got}")
    size = (interpolate_dims,) if isinstance(interpolate_dims, int) else tuple(interpolate_dims)
    if len(size) != layer_attribution.dim() - 2:
        raise ValueError(
            f"interpolate_dims has {len(size)} dims but the attribution {tuple(layer_attribution.shape)} has "
            f"{layer_attribution.dim() - 2} spatial dims"
        )
    linear = interpolate_mode in ("linear", "bilinear", "bicubic", "trilinear")
    return F.interpolate(layer_attribution, size=size, mode=interpolate_mode, align_corners=False if linear else None)


def _each_layer_when_dependent(attribute: Callable) -> Callable:
    """Wrap a layer method's ``attribute``: for a list of layers of which one is computed from another (a block
    and a layer inside it, or two layers in sequence), every layer is attributed alone and the results come back
    as a list, since replacing all the layers at once would cut the earlier ones off (they would get zero).
    Layers that do not depend on one another are attributed together, in one call (as in Captum)."""
    signature = inspect.signature(attribute)

    @functools.wraps(attribute)
    def wrapped(self: "LayerAttribution", *args: Any, **kwargs: Any) -> Any:
        layers, _ = format_layers(self.layer)
        if len(layers) < 2 or self._one_layer_at_a_time:
            return attribute(self, *args, **kwargs)
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        given = bound.arguments
        if "inputs" not in given:
            return attribute(self, *args, **kwargs)
        to_input = bool(given.get("attribute_to_layer_input", False))
        if not self.layers_depend(given["inputs"], given.get("additional_forward_args"), given.get("forward_kwargs"),
                                  to_input):
            return attribute(self, *args, **kwargs)
        if given.get("return_convergence_delta"):
            raise ValueError(
                f"return_convergence_delta=True with layers that depend on one another "
                f"({', '.join(type(m).__name__ for m in layers)}): each layer is attributed alone, so each has its "
                "own completeness gap; attribute the layers one at a time to get each delta"
            )
        results = []
        saved = self.layer, self._spaces
        try:
            self._one_layer_at_a_time = True
            for layer in layers:
                self.layer, self._spaces = layer, {}
                results.append(attribute(self, *args, **kwargs))
        finally:
            self.layer, self._spaces = saved
            self._one_layer_at_a_time = False
        return results

    wrapped._each_layer_when_dependent = True  # type: ignore[attr-defined]
    return wrapped


class LayerAttribution(Attribution):
    """Base of layer methods. ``layer``: a module of the model (or a list of modules where supported).

    With a list of layers of which one is computed from another (nested or consecutive layers), methods that
    replace the layers' values (integrated gradients, DeepLIFT, GradientSHAP, ablation, ...) attribute each
    layer alone (see :func:`_each_layer_when_dependent`, applied to every subclass's ``attribute``); a subclass
    whose computation is exact for such lists in one pass sets ``_layers_in_one_pass = True``.
    """

    _layers_in_one_pass = False
    _one_layer_at_a_time = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("attribute")
        if own is not None and not cls.__dict__.get("_layers_in_one_pass", False) \
                and not getattr(own, "_each_layer_when_dependent", False):
            cls.attribute = _each_layer_when_dependent(own)

    def __init__(self, forward_func: Callable, layer: LayerType, device_ids: Sequence[int] | None = None):
        super().__init__(forward_func)
        layers, _ = format_layers(layer)
        check_layers_in_model(forward_func, layers)
        self.layer = layer
        self.device_ids = device_ids
        self._spaces: dict[bool, LayerSpace] = {}

    def layers_depend(self, inputs: Any, additional_forward_args: Any = None,
                      forward_kwargs: Mapping[str, Any] | None = None, attribute_to_layer_input: bool = False) -> bool:
        """Whether one of the layers is computed from another (one traced forward of the first example)."""
        call = self.prepare(inputs, None, additional_forward_args, forward_kwargs, None, False, needs_grad=False)
        space = LayerSpace(self.forward_func, self.layer, attribute_to_layer_input)
        with call.guard, space:
            return space.dependent(call.ev, call.inputs)

    interpolate = staticmethod(interpolate)

    def space(self, attribute_to_layer_input: bool = False) -> LayerSpace:
        """The model seen from the layer (kept per instance so the engine's measured row costs are reused)."""
        key = bool(attribute_to_layer_input)
        if key not in self._spaces:
            self._spaces[key] = LayerSpace(self.forward_func, self.layer, key)
        return self._spaces[key]

    def setup(self, inputs: Any, target: TargetType, additional_forward_args: Any, forward_kwargs: Any,
              batch_size: int | None, show_progress: bool, attribute_to_layer_input: bool,
              **captum_batch_names: int | None) -> tuple[Call, LayerSpace]:
        """Prepared call on the model (inputs may be token ids) and the layer space."""
        call = self.prepare(inputs, target, additional_forward_args, forward_kwargs, batch_size, show_progress,
                            needs_grad=False, **captum_batch_names)
        return call, self.space(attribute_to_layer_input)


_AUTOGRAD_KEYS = ("retain_graph", "create_graph", "allow_unused", "materialize_grads", "only_inputs", "is_grads_batched")


def check_grad_kwargs(grad_kwargs: Mapping[str, Any] | None) -> None:
    """Captum's ``grad_kwargs`` (keywords of ``torch.autograd.grad``). Accepted for compatibility; they change
    nothing here: the engine keeps the graph as long as it needs (``retain_graph``), treats unused tensors as zero
    gradients (``allow_unused``/``materialize_grads``) and returns detached results. ``create_graph=True`` and
    ``is_grads_batched=True`` would change the result's meaning and are rejected."""
    if grad_kwargs is None:
        return
    if not isinstance(grad_kwargs, Mapping):
        raise TypeError(f"grad_kwargs must be a dict of torch.autograd.grad keywords or None; received {type(grad_kwargs).__name__}")
    unknown = [k for k in grad_kwargs if k not in _AUTOGRAD_KEYS]
    if unknown:
        raise ValueError(f"grad_kwargs: unknown torch.autograd.grad keyword(s) {unknown}; expected some of {list(_AUTOGRAD_KEYS)}")
    for k in ("create_graph", "is_grads_batched"):
        if grad_kwargs.get(k):
            raise ValueError(f"grad_kwargs: {k}=True is not supported (attributions are returned detached); received {dict(grad_kwargs)}")


def layer_pair(space: LayerSpace, call: Call, baselines: tuple[Tensor, ...]) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
    """Activations of the inputs and of the baselines (per example, with each example's extra arguments)."""
    n = call.n
    both = tuple(torch.cat([x, b.expand_as(x).to(x.dtype)]) for x, b in zip(call.inputs, baselines))
    acts = space.activations(call.ev, both, torch.arange(n).repeat(2), tag="pair")
    return tuple(a[:n] for a in acts), tuple(a[n:] for a in acts)


def space_args(call: Call, inputs: tuple[Tensor, ...] | None = None, fwd: Any = None) -> tuple[tuple, dict]:
    """``additional_forward_args`` and ``forward_kwargs`` for a base method run on a space: the model inputs
    followed by the user's extras."""
    fwd = call.ev.fwd if fwd is None else fwd
    return tuple(call.inputs if inputs is None else inputs) + tuple(fwd.args), dict(fwd.kwargs)


def finish(space: LayerSpace, result: Any, with_delta: bool) -> Any:
    """Base-method output (on flat activations) -> the layer's form."""
    if with_delta:
        attrs, delta = result
        return space.restore_form(attrs), delta
    return space.restore_form(result)


def layer_gradients(space: LayerSpace, call: Call, fn: Callable[[tuple[Tensor, ...], tuple[Tensor, ...]], tuple[Tensor, ...]],
                    tag: str) -> tuple[Tensor, ...]:
    """``fn(activations, gradients)`` for every example, from one forward and a backward through the layers after
    the tap per chunk of examples; results concatenated over examples."""
    parts: list[tuple[Tensor, ...]] = []

    def build(rows: Tensor):
        return tuple(x.index_select(0, rows.to(x.device)) for x in call.inputs), rows

    def consume(rows, ex, acts, grads, score):
        parts.append(tuple(fn(acts, grads)))

    space.grad_rows(call.ev, call.n, build, consume, call.inputs, tag=tag)
    return tuple(torch.cat(p) for p in zip(*parts))


class LayerActivation(LayerAttribution):
    """The layer's activations (output, or input with ``attribute_to_layer_input=True``); a list of layers gives a
    list. The forward stops after the layer(s)."""

    _layers_in_one_pass = True  # capturing values never cuts another layer off
    _multiply_by_inputs = True  # Captum's value: activations are "inputs times one"

    def attribute(
        self,
        inputs: TensorOrTuple,
        additional_forward_args: Any = None,
        attribute_to_layer_input: bool = False,
        *,
        forward_kwargs: Mapping[str, Any] | None = None,
        batch_size: int | None = None,
        show_progress: bool = False,
    ) -> Any:
        call, space = self.setup(inputs, None, additional_forward_args, forward_kwargs, batch_size, show_progress,
                                 attribute_to_layer_input)
        with call.guard, space:
            acts = space.activations(call.ev, call.inputs, torch.arange(call.n))
        return space.restore_form(acts)


class LayerGradientXActivation(LayerAttribution):
    """``a * dF/da`` at the layer (input x gradient in activation space; Shrikumar et al., 2016,
    arXiv:1605.01713); ``multiply_by_inputs=False`` gives the layer gradient. One forward and a backward through
    the layers after the tap per example. ``memory_efficient=True`` (Captum's option) moves each chunk's result to
    the CPU as soon as it is computed (the result is then on the CPU); the engine's chunking already bounds the
    accelerator memory either way. A list of layers (nested ones too) is done in one pass, each layer getting its
    full gradient."""

    _layers_in_one_pass = True  # LayerSpace's gradient mode keeps every tapped layer in the graph

    def __init__(self, forward_func: Callable, layer: LayerType, device_ids: Sequence[int] | None = None,
                 multiply_by_inputs: bool = True, memory_efficient: bool = False):
        super().__init__(forward_func, layer, device_ids)
        self._multiply_by_inputs = multiply_by_inputs
        self._memory_efficient = bool(memory_efficient)

    def attribute(
        self,
        inputs: TensorOrTuple,
        target: TargetType = None,
        additional_forward_args: Any = None,
        attribute_to_layer_input: bool = False,
        grad_kwargs: Mapping[str, Any] | None = None,
        *,
        forward_kwargs: Mapping[str, Any] | None = None,
        batch_size: int | None = None,
        show_progress: bool = False,
    ) -> Any:
        check_grad_kwargs(grad_kwargs)
        call, space = self.setup(inputs, target, additional_forward_args, forward_kwargs, batch_size, show_progress,
                                 attribute_to_layer_input)
        mult, offload = self._multiply_by_inputs, self._memory_efficient

        def gxa(acts: tuple[Tensor, ...], grads: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
            out = tuple(x * y if mult else y for x, y in zip(acts, grads))
            return tuple(o.cpu() for o in out) if offload else out

        with call.guard, space:
            out = layer_gradients(space, call, gxa, "gxa")
        return space.restore_form(out)


class LayerIntegratedGradients(LayerAttribution):
    """Integrated gradients in the layer's activation space (Sundararajan et al., 2017, arXiv:1703.01365):
    ``(a - a') * integral dF/da (a' + t (a - a')) dt`` with ``a, a'`` the layer's activations for the inputs and
    the baselines (input space). Works for embeddings fed token ids (baselines are ids too, default 0) and for a
    list of layers (all replaced at once; a list of attributions comes back). ``delta`` ``(N,)`` =
    sum(attributions) - (F(x) - F(x')) with *all* model inputs at their baselines in ``F(x')`` (completeness with
    respect to the model's inputs, Captum's definition; one extra forward each on the inputs and the baselines).
    When inputs also reach the output around the layer (skip connections, several inputs), the layer
    attributions do not account for that part and delta shows it. Rows: examples x ``n_steps`` (+ one forward of
    the pre-layer part per input and baseline to get the activations). ``grad_kwargs``: see
    :func:`check_grad_kwargs`."""

    def __init__(self, forward_func: Callable, layer: LayerType, device_ids: Sequence[int] | None = None,
                 multiply_by_inputs: bool = True):
        super().__init__(forward_func, layer, device_ids)
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
        attribute_to_layer_input: bool = False,
        grad_kwargs: Mapping[str, Any] | None = None,
        *,
        forward_kwargs: Mapping[str, Any] | None = None,
        batch_size: int | None = None,
        show_progress: bool = False,
    ) -> Any:
        check_grad_kwargs(grad_kwargs)
        call, space = self.setup(inputs, target, additional_forward_args, forward_kwargs, batch_size, show_progress,
                                 attribute_to_layer_input, internal_batch_size=internal_batch_size)
        bases = format_baselines(baselines, call.inputs)
        args, kwargs = space_args(call)
        with call.guard, space:
            a_x, a_b = layer_pair(space, call, bases)
            attrs = IntegratedGradients(space, self._multiply_by_inputs).attribute(
                a_x, a_b, call.ev.target, args, n_steps, method, None, False,
                forward_kwargs=kwargs, batch_size=call.ev.batch_size, show_progress=show_progress,
            )
            if return_convergence_delta:
                delta = endpoint_delta(call, attrs, tuple(b.to(x.dtype) for b, x in zip(bases, call.inputs)))
        return (space.restore_form(attrs), delta) if return_convergence_delta else space.restore_form(attrs)


class _Bypass(nn.Module):
    """``G(*a, s, *x, *b, *rest) = space(*a, *where(s, x, b), *rest)``: the layer space whose model inputs are the
    inputs ``x`` on rows with switch ``s = 1`` and the baselines ``b`` on rows with ``s = 0``. DeepLIFT on
    ``(a, s)`` from ``(a', 0)`` to ``(a, 1)`` therefore takes its references from a full forward pass on the
    baselines: nonlinearities after the layer see the baselines on the paths that bypass it too. The switch
    gets no gradient (``where`` is not differentiable in its condition), so its attribution is zero."""

    def __init__(self, space: LayerSpace, n_acts: int, n_inputs: int):
        super().__init__()
        self.space, self.k, self.m = space, n_acts, n_inputs

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        k, m = self.k, self.m
        s, xs, bs = args[k], args[k + 1: k + 1 + m], args[k + 1 + m: k + 1 + 2 * m]
        chosen = tuple(torch.where(s.reshape((-1,) + (1,) * (x.dim() - 1)) > 0.5, x, b) for x, b in zip(xs, bs))
        return self.space(*args[:k], *chosen, *args[k + 1 + 2 * m:], **kwargs)


class LayerDeepLift(LayerAttribution):
    """DeepLIFT (rescale rule; Shrikumar et al., 2017, arXiv:1704.02685) in the layer's activation space. As in the
    method's definition the references come from a full forward pass on the baselines: the baselines'
    activations at the layer and, on paths that bypass the layer (skip connections, several inputs), the
    baselines themselves. Attributions are given to the layer only; ``delta`` ``(N,)`` =
    sum(attr) - (F(x) - F(x')) (so it includes what the bypass contributes). ``grad_kwargs``: see
    :func:`check_grad_kwargs`."""

    def __init__(self, model: Callable, layer: LayerType, multiply_by_inputs: bool = True, eps: float = 1e-10):
        super().__init__(model, layer)
        self._multiply_by_inputs = multiply_by_inputs
        self.eps = eps

    def has_convergence_delta(self) -> bool:
        return True

    def _deeplift(self, space: LayerSpace, call: Call, a_x: tuple[Tensor, ...], a_b: tuple[Tensor, ...],
                  xs: tuple[Tensor, ...], bs: tuple[Tensor, ...], target: Any, fwd: Any, delta: bool,
                  custom: Callable | None, show_progress: bool) -> Any:
        """DeepLIFT of :class:`_Bypass` on rows ``(a_x, x)`` with references ``(a_b, b)``; layer part only."""
        k = len(a_x)
        on = torch.ones(a_x[0].shape[0], 1, dtype=a_x[0].dtype, device=a_x[0].device)
        wrapped = None
        if custom is not None:
            def wrapped(m, i, b):
                out = custom(*(tuple(m[:k]), tuple(i[:k]), tuple(b[:k]))[:_custom_arity(custom)])
                out = tuple(out) if isinstance(out, (tuple, list)) else (out,)
                return out + (torch.zeros_like(m[k]),)
        res = DeepLift(_Bypass(space, k, len(xs)), self._multiply_by_inputs, self.eps).attribute(
            a_x + (on,), a_b + (torch.zeros_like(on),), target, tuple(xs) + tuple(bs) + tuple(fwd.args), delta,
            wrapped, forward_kwargs=dict(fwd.kwargs), batch_size=call.ev.batch_size, show_progress=show_progress,
        )
        return (res[0][:k], res[1]) if delta else res[:k]

    def attribute(
        self,
        inputs: TensorOrTuple,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        return_convergence_delta: bool = False,
        attribute_to_layer_input: bool = False,
        custom_attribution_func: Callable | None = None,
        grad_kwargs: Mapping[str, Any] | None = None,
        *,
        forward_kwargs: Mapping[str, Any] | None = None,
        batch_size: int | None = None,
        show_progress: bool = False,
    ) -> Any:
        check_grad_kwargs(grad_kwargs)
        call, space = self.setup(inputs, target, additional_forward_args, forward_kwargs, batch_size, show_progress,
                                 attribute_to_layer_input)
        bases = tuple(b.expand_as(x).to(x.dtype) for b, x in zip(format_baselines(baselines, call.inputs), call.inputs))
        with call.guard, space:
            a_x, a_b = layer_pair(space, call, bases)
            res = self._deeplift(space, call, a_x, a_b, call.inputs, bases, call.ev.target, call.ev.fwd,
                                 return_convergence_delta, custom_attribution_func, show_progress)
        return finish(space, res, return_convergence_delta)


def pairs(call: Call, samples: int) -> tuple[Tensor, Any, Any]:
    """Examples x samples laid out example-major: the example of each pair, its extra arguments and targets."""
    return torch.arange(call.n).repeat_interleave(samples), call.ev.fwd.repeat(samples), call.ev.target.repeat(samples)


def mean_over_samples(result: Any, n: int, samples: int, with_delta: bool) -> Any:
    """Average the per-pair results ``(n * samples, ...)`` of a base method into ``(n, ...)``."""
    attrs, delta = result if with_delta else (result, None)
    attrs = tuple(a.reshape((n, samples) + tuple(a.shape[1:])).mean(1) for a in attrs)
    return (attrs, delta.reshape(n, samples).mean(1)) if with_delta else attrs


class LayerDeepLiftShap(LayerDeepLift):
    """DeepLIFT-SHAP at the layer (Lundberg & Lee, 2017, arXiv:1705.07874): LayerDeepLift averaged over the
    baseline samples ``baselines`` ``(S, ...)`` (or a callable returning them). Each (example, sample) pair is one
    DeepLIFT row (references from a full forward pass on the sample, bypassing paths included), with the
    sample's activations computed with the example's extra arguments.
    ``delta`` ``(N,)`` = sum(attr) - (F(x) - mean_s F(b_s))."""

    _distribution_baselines = True

    def attribute(
        self,
        inputs: TensorOrTuple,
        baselines: Any = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        return_convergence_delta: bool = False,
        attribute_to_layer_input: bool = False,
        custom_attribution_func: Callable | None = None,
        *,
        forward_kwargs: Mapping[str, Any] | None = None,
        batch_size: int | None = None,
        show_progress: bool = False,
    ) -> Any:
        call, space = self.setup(inputs, target, additional_forward_args, forward_kwargs, batch_size, show_progress,
                                 attribute_to_layer_input)
        dist = format_distribution(baselines, call.inputs)
        s, n = dist[0].shape[0], call.n
        ex, fwd, tgt = pairs(call, s)
        base_rows = tuple(d.repeat((n,) + (1,) * (d.dim() - 1)) for d in dist)
        xs = tuple(x.index_select(0, ex.to(x.device)) for x in call.inputs)
        base_rows = tuple(b.to(x.dtype) for b, x in zip(base_rows, xs))
        with call.guard, space:
            a_x = tuple(a.index_select(0, ex.to(a.device)) for a in space.activations(call.ev, call.inputs, torch.arange(n)))
            a_b = space.activations(call.ev, base_rows, ex, tag="baselines")
            res = self._deeplift(space, call, a_x, a_b, xs, base_rows, tgt, fwd, return_convergence_delta,
                                 custom_attribution_func, show_progress)
        return finish(space, mean_over_samples(res, n, s, return_convergence_delta), return_convergence_delta)


class _Shifted(nn.Module):
    """``G(u, b, *rest) = space(u + b, *rest)``: a layer space with per-row origins ``b``, so that GradientSHAP
    from the origin in ``u`` is GradientSHAP from each row's own baseline activations."""

    def __init__(self, space: LayerSpace, k: int):
        super().__init__()
        self.space, self.k = space, k

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        k = self.k
        return self.space(*(u + b for u, b in zip(args[:k], args[k:2 * k])), *args[2 * k:], **kwargs)


class LayerGradientShap(LayerAttribution):
    """GradientSHAP in the layer's activation space (Lundberg & Lee, 2017, arXiv:1705.07874): for each example
    ``n_samples`` draws of a baseline from ``baselines`` ``(S, ...)``, Gaussian noise (``stdevs``, added to the
    *inputs*) and ``t ~ U(0, 1)``; attribution ``mean (a(x + e) - a(b)) * dF/da (a(b) + t (a(x + e) - a(b)))``.
    Its expected sum is ``F(x) - E F(b)`` (zero noise). ``delta`` ``(N,)`` = sum(attr) - mean(F(x + e) - F(b)).
    Reproducible with ``generator`` or ``seed``."""

    _distribution_baselines = True

    def __init__(self, forward_func: Callable, layer: LayerType, device_ids: Sequence[int] | None = None,
                 multiply_by_inputs: bool = True):
        super().__init__(forward_func, layer, device_ids)
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
        attribute_to_layer_input: bool = False,
        *,
        forward_kwargs: Mapping[str, Any] | None = None,
        batch_size: int | None = None,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        show_progress: bool = False,
    ) -> Any:
        check_positive_int(n_samples, "n_samples")
        gen = check_generator(generator, seed)
        call, space = self.setup(inputs, target, additional_forward_args, forward_kwargs, batch_size, show_progress,
                                 attribute_to_layer_input)
        dist = format_distribution(baselines, call.inputs)
        stds = noise_stdevs(stdevs, len(call.inputs))
        n, s = call.n, n_samples
        ex, fwd, tgt = pairs(call, s)
        pick = torch.randint(0, dist[0].shape[0], (n * s,), generator=gen)
        noisy = []
        for x, sd in zip(call.inputs, stds):
            rows = x.index_select(0, ex.to(x.device))
            if sd > 0:
                if not torch.is_floating_point(x):
                    raise ValueError(f"stdevs must be 0 for integer inputs (dtype {x.dtype}); received {stdevs!r}")
                rows = rows + gaussian_like(x, n * s, sd, gen)
            noisy.append(rows)
        base_rows = tuple(d.index_select(0, pick.to(d.device)) for d in dist)
        with call.guard, space:
            a_x = space.activations(call.ev, tuple(noisy), ex, tag="noisy")
            a_b = space.activations(call.ev, base_rows, ex, tag="baselines")
            shifted = _Shifted(space, len(a_x))
            args, kwargs = space_args(call, a_b + tuple(noisy), fwd)
            res = GradientShap(shifted, self._multiply_by_inputs).attribute(
                tuple(x - b for x, b in zip(a_x, a_b)), tuple(torch.zeros_like(b[:1]) for b in a_b), 1, 0.0, tgt,
                args, return_convergence_delta, forward_kwargs=kwargs, batch_size=call.ev.batch_size,
                generator=gen, show_progress=show_progress,
            )
        return finish(space, mean_over_samples(res, n, s, return_convergence_delta), return_convergence_delta)
