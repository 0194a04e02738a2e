"""Neuron attribution by composition (DESIGN section 4): a base method explaining one neuron's value.

``neuron_selector`` picks the neuron from the layer's output (or input, ``attribute_to_neuron_input=True``):

* an ``int``: ``y[:, i]`` (layers with a 2-D output);
* a tuple of ints and slices, one per dim after the batch: ``y[:, i, j, ...]``; slices select several neurons,
  whose values are summed;
* a callable ``y -> (N,)`` (any reduction of the layer's output, e.g. a channel's mean).

:class:`NeuronForward` is the model as a function of its inputs returning that value; the forward stops right after
the layer, so nothing after it is evaluated. Saliency, IG, DeepLIFT, DeepLIFT-SHAP, GradientSHAP, guided
backpropagation and deconvolution then run on it unchanged. Neuron conductance is integrated gradients of the
model's target through the selected neurons only (see :class:`NeuronConductance`).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence, Union

import torch
from torch import Tensor, nn

from ..core.inputs import BaselineType, TensorOrTuple, format_baselines, restore_form
from ..core.paths import path_points
from ..core.layers import LayerSpace, LayerType, check_layers_in_model, format_layers
from ..core.targets import TargetType
from ._base import Attribution
from .deeplift import DeepLift, DeepLiftShap
from .feature_ablation import FeatureAblation
from .gradient_shap import GradientShap
from .guided_backprop import Deconvolution, GuidedBackprop
from .integrated_gradients import IntegratedGradients, path_builder
from .layer import check_grad_kwargs
from .saliency import Saliency

SelectorType = Union[int, tuple, Callable[[Any], Tensor]]


def check_selector(selector: Any) -> None:
    """Type check of ``neuron_selector`` before any model call."""
    if callable(selector) and not isinstance(selector, Tensor):
        return
    if isinstance(selector, int) and not isinstance(selector, bool):
        return
    if isinstance(selector, tuple) and selector and all(
        isinstance(s, slice) or (isinstance(s, int) and not isinstance(s, bool)) for s in selector
    ):
        for s in selector:
            if not isinstance(s, slice):
                continue
            if not all(b is None or (isinstance(b, int) and not isinstance(b, bool)) for b in (s.start, s.stop, s.step)):
                raise TypeError(f"neuron_selector {selector!r}: slice bounds and steps must be ints or None; received {s!r}")
            if s.step is not None and s.step < 1:
                raise ValueError(f"neuron_selector {selector!r}: slice steps must be positive ints (as in torch "
                                 f"indexing); received step {s.step} in {s!r}")
        return
    raise TypeError(
        "neuron_selector must be an int, a non-empty tuple of ints/slices (one per layer dim after the batch) or a "
        f"callable mapping the layer's output to (N,); received {selector!r}"
    )


def _unwrap(value: Any) -> Any:
    """A layer value given as a 1-tuple is its tensor (as Captum: selectors see a tuple only for several tensors)."""
    if isinstance(value, (tuple, list)) and len(value) == 1:
        return value[0]
    return value


def _index(value: Any, selector: Any) -> tuple:
    value = _unwrap(value)
    if not isinstance(value, Tensor):
        raise ValueError(
            f"the layer produced {type(value).__name__} of {len(value)} tensors; an index neuron_selector needs a single "
            "tensor: pass a callable neuron_selector that picks from the tuple"
        )
    idx = (selector,) if isinstance(selector, int) else tuple(selector)
    if len(idx) != value.dim() - 1:
        raise ValueError(
            f"neuron_selector {selector!r} has {len(idx)} index(es) but the layer's value has shape "
            f"{tuple(value.shape)}: give one index or slice per dim after the batch ({value.dim() - 1})"
        )
    for i, (s, size) in enumerate(zip(idx, value.shape[1:])):
        if isinstance(s, int) and not -size <= s < size:
            raise ValueError(
                f"neuron_selector {selector!r}: index {s} is out of range for dim {i + 1} of the layer's value "
                f"{tuple(value.shape)}"
            )
        if isinstance(s, slice) and len(range(*s.indices(size))) == 0:
            raise ValueError(
                f"neuron_selector {selector!r}: slice {s!r} selects no neuron of dim {i + 1} of the layer's value "
                f"{tuple(value.shape)}; give a slice that selects at least one index"
            )
    return idx


def select_neuron(value: Any, selector: SelectorType) -> Tensor:
    """The selected neuron's value per example, ``(N,)`` (selected neurons summed). A callable gets the layer's
    tensor (a tuple only for a layer with several tensors) and may return any shape holding one value per example
    (``(N,)``, ``(N, 1)``, or a 0-d tensor for one example)."""
    value = _unwrap(value)
    if callable(selector) and not isinstance(selector, Tensor):
        out = selector(value)
        n = (value if isinstance(value, Tensor) else value[0]).shape[0]
        if not isinstance(out, Tensor):
            raise TypeError(f"the neuron_selector callable must return a tensor of shape ({n},); returned {type(out).__name__}")
        if out.numel() != n or (out.dim() > 0 and out.shape[0] not in (1, n)):
            raise ValueError(f"the neuron_selector callable must return shape ({n},) (one value per example); "
                             f"returned {tuple(out.shape)}")
        return out.reshape(n)
    idx = _index(value, selector)
    picked = value[(slice(None),) + idx]
    return picked.reshape(value.shape[0], -1).sum(1)


def neuron_mask(value: Tensor, selector: SelectorType) -> Tensor:
    """1 at the selected neurons of one example's layer value, 0 elsewhere (shape ``value.shape[1:]``)."""
    idx = _index(value, selector)
    mask = torch.zeros(value.shape[1:], dtype=value.dtype, device=value.device)
    mask[idx] = 1
    return mask


def selector_weights(values: tuple[Tensor, ...], selector: Callable) -> tuple[Tensor, ...]:
    """Weights of a callable ``neuron_selector`` on each neuron, per layer tensor ``(*shape_k)``: the gradient of
    ``selector(y)`` with respect to the layer's value ``y`` of one example at ``y = 0``, i.e. 1 on the neurons a
    selection picks (``y[:, 3]``, ``y[0][:, 2, 1]`` for a tuple layer), ``1/k`` for a mean of ``k`` neurons. A
    selector must be linear in ``y`` (select or sum neurons; Captum warns alike) for the weights to be its own."""
    probe = tuple(torch.zeros((1,) + tuple(v.shape[1:]), dtype=v.dtype if v.is_floating_point() else torch.float32,
                              device=v.device, requires_grad=True) for v in values)
    with torch.enable_grad():
        out = select_neuron(probe if len(probe) > 1 else probe[0], selector)
        grads = torch.autograd.grad(out.sum(), probe, allow_unused=True)
    return tuple(torch.zeros_like(p[0]) if g is None else g[0].detach() for g, p in zip(grads, probe))


class NeuronForward(nn.Module):
    """``inputs -> selected neuron value (N,)``: the model cut after ``space``'s layer (see module docstring)."""

    def __init__(self, space: LayerSpace):
        super().__init__()
        self.space = space
        self.selector: SelectorType | None = None

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        with self.space:
            (value,) = self.space.value(*args, **kwargs)
        return select_neuron(value, self.selector)


class NeuronAttribution(Attribution):
    """Base of neuron methods: ``layer`` is a module of the model."""

    def __init__(self, forward_func: Callable, layer: LayerType, device_ids: Sequence[int] | None = None):
        super().__init__(forward_func)
        layers, was_list = format_layers(layer)
        if was_list:
            raise TypeError("layer must be a single torch.nn.Module for neuron methods; received a list")
        check_layers_in_model(forward_func, layers)
        self.layer = layer
        self.device_ids = device_ids
        self._neurons: dict[bool, NeuronForward] = {}

    def neuron(self, neuron_selector: SelectorType, attribute_to_neuron_input: bool = False) -> NeuronForward:
        """The model returning the selected neuron (kept per instance so measured row costs are reused)."""
        check_selector(neuron_selector)
        key = bool(attribute_to_neuron_input)
        if key not in self._neurons:
            self._neurons[key] = NeuronForward(LayerSpace(self.forward_func, self.layer, key))
        nf = self._neurons[key]
        nf.selector = neuron_selector
        return nf


class NeuronGradient(NeuronAttribution):
    """Gradient of the selected neuron with respect to the inputs (inputs' shapes)."""

    def attribute(self, inputs: TensorOrTuple, neuron_selector: SelectorType, additional_forward_args: Any = None,
                  attribute_to_neuron_input: bool = False, *, forward_kwargs: Mapping[str, Any] | None = None,
                  batch_size: int | None = None, show_progress: bool = False) -> TensorOrTuple:
        nf = self.neuron(neuron_selector, attribute_to_neuron_input)
        with nf.space:  # hooks registered once per call
            return Saliency(nf).attribute(inputs, None, False, additional_forward_args, forward_kwargs=forward_kwargs,
                                      batch_size=batch_size, show_progress=show_progress)


class NeuronIntegratedGradients(NeuronAttribution):
    """Integrated gradients of the selected neuron (Sundararajan et al., 2017, arXiv:1703.01365); inputs' shapes.
    The attributions sum to the neuron's value at the inputs minus at the baselines."""

    def __init__(self, forward_func: Callable, layer: LayerType, device_ids: Sequence[int] | None = None,
                 multiply_by_inputs: bool = True):
        super().__init__(forward_func, layer, device_ids)
        self._multiply_by_inputs = multiply_by_inputs

    def attribute(self, inputs: TensorOrTuple, neuron_selector: SelectorType, baselines: BaselineType = None,
                  additional_forward_args: Any = None, n_steps: int = 50, method: str = "gausslegendre",
                  internal_batch_size: int | None = None, attribute_to_neuron_input: bool = False, *,
                  forward_kwargs: Mapping[str, Any] | None = None, batch_size: int | None = None,
                  show_progress: bool = False) -> TensorOrTuple:
        nf = self.neuron(neuron_selector, attribute_to_neuron_input)
        with nf.space:  # hooks registered once per call
            return IntegratedGradients(nf, self._multiply_by_inputs).attribute(
            inputs, baselines, None, additional_forward_args, n_steps, method, internal_batch_size,
            forward_kwargs=forward_kwargs, batch_size=batch_size, show_progress=show_progress)


class NeuronDeepLift(NeuronAttribution):
    """DeepLIFT (rescale rule; Shrikumar et al., 2017, arXiv:1704.02685) of the selected neuron; inputs' shapes.
    The attributions sum to the neuron's value at the inputs minus at the baselines."""

    def __init__(self, model: Callable, layer: LayerType, multiply_by_inputs: bool = True, eps: float = 1e-10):
        super().__init__(model, layer)
        self._multiply_by_inputs = multiply_by_inputs
        self.eps = eps

    base = DeepLift

    def attribute(self, inputs: TensorOrTuple, neuron_selector: SelectorType, baselines: Any = None,
                  additional_forward_args: Any = None, attribute_to_neuron_input: bool = False,
                  custom_attribution_func: Callable | None = None, *,
                  forward_kwargs: Mapping[str, Any] | None = None, batch_size: int | None = None,
                  show_progress: bool = False) -> TensorOrTuple:
        nf = self.neuron(neuron_selector, attribute_to_neuron_input)
        with nf.space:  # hooks registered once per call
            return self.base(nf, self._multiply_by_inputs, self.eps).attribute(
            inputs, baselines, None, additional_forward_args, False, custom_attribution_func,
            forward_kwargs=forward_kwargs, batch_size=batch_size, show_progress=show_progress)


class NeuronDeepLiftShap(NeuronDeepLift):
    """DeepLIFT-SHAP (Lundberg & Lee, 2017, arXiv:1705.07874) of the selected neuron: NeuronDeepLift averaged over
    baseline samples ``(S, ...)``."""

    base = DeepLiftShap


class NeuronGradientShap(NeuronAttribution):
    """GradientSHAP (Lundberg & Lee, 2017, arXiv:1705.07874) of the selected neuron; inputs' shapes; reproducible
    with ``generator`` / ``seed``."""

    def __init__(self, forward_func: Callable, layer: LayerType, device_ids: Sequence[int] | None = None,
                 multiply_by_inputs: bool = True):
        super().__init__(forward_func, layer, device_ids)
        self._multiply_by_inputs = multiply_by_inputs

    def attribute(self, inputs: TensorOrTuple, neuron_selector: SelectorType, baselines: Any = None,
                  n_samples: int = 5, stdevs: float | tuple[float, ...] = 0.0, additional_forward_args: Any = None,
                  attribute_to_neuron_input: bool = False, *, forward_kwargs: Mapping[str, Any] | None = None,
                  batch_size: int | None = None, generator: torch.Generator | None = None, seed: int | None = None,
                  show_progress: bool = False) -> TensorOrTuple:
        nf = self.neuron(neuron_selector, attribute_to_neuron_input)
        with nf.space:  # hooks registered once per call
            return GradientShap(nf, self._multiply_by_inputs).attribute(
            inputs, baselines, n_samples, stdevs, None, additional_forward_args, forward_kwargs=forward_kwargs,
            batch_size=batch_size, generator=generator, seed=seed, show_progress=show_progress)


class _NeuronModifiedRelu(NeuronAttribution):
    base: type = GuidedBackprop

    def __init__(self, model: Callable, layer: LayerType, device_ids: Sequence[int] | None = None):
        super().__init__(model, layer, device_ids)  # Captum names the first parameter `model` here

    def attribute(self, inputs: TensorOrTuple, neuron_selector: SelectorType, additional_forward_args: Any = None,
                  attribute_to_neuron_input: bool = False, *, forward_kwargs: Mapping[str, Any] | None = None,
                  batch_size: int | None = None, show_progress: bool = False) -> TensorOrTuple:
        nf = self.neuron(neuron_selector, attribute_to_neuron_input)
        with nf.space:  # hooks registered once per call
            return self.base(nf).attribute(inputs, None, additional_forward_args, forward_kwargs=forward_kwargs,
                                       batch_size=batch_size, show_progress=show_progress)


class NeuronGuidedBackprop(_NeuronModifiedRelu):
    """Guided backpropagation (Springenberg et al., 2014, arXiv:1412.6806) of the selected neuron."""

    base = GuidedBackprop


class NeuronDeconvolution(_NeuronModifiedRelu):
    """Deconvolution (Zeiler & Fergus, 2013, arXiv:1311.2901) of the selected neuron."""

    base = Deconvolution


class NeuronConductance(NeuronAttribution):
    """Neuron conductance (Dhamdhere et al., 2018, arXiv:1805.12233): the flow of the model's ``target`` output
    through the selected neuron(s) ``j`` to each input ``i``:
    ``(x_i - x'_i) integral_0^1 sum_j dF/dy_j (x(t)) dy_j/dx_i (x(t)) dt`` on the straight path
    ``x(t) = x' + t (x - x')``. Per path point, ``dF/dy`` is masked to the selected neurons and pulled back by the
    layer's own Jacobian ``dy/dx`` (one forward, two backward passes), so gradient that bypasses the layer (skip
    connections, inputs that also feed later layers) is not counted. Slices select several neurons: the result
    is the sum of their conductances. Summed over the inputs it gives the neurons' layer conductance. A callable
    ``neuron_selector`` (which must select neurons, as Captum requires; it gets the tuple for a layer with several
    tensors) weights every neuron by its gradient (:func:`selector_weights`): 1 on the neurons it picks, so
    ``lambda y: y[:, j]`` equals the index selector ``j``. ``grad_kwargs``: Captum's keywords for ``torch.autograd.grad``, accepted (see
    :func:`pellucid.attr.layer.check_grad_kwargs`). Rows: examples x ``n_steps``. The default quadrature
    ``riemann_trapezoid`` is the trapezoid rule (weights sum to 1; Captum's sum to ``(n_steps - 1) / n_steps``)."""

    def __init__(self, forward_func: Callable, layer: LayerType, device_ids: Sequence[int] | None = None,
                 multiply_by_inputs: bool = True):
        super().__init__(forward_func, layer, device_ids)
        self._multiply_by_inputs = multiply_by_inputs
        self._spaces: dict[bool, LayerSpace] = {}

    def attribute(self, inputs: TensorOrTuple, neuron_selector: SelectorType, baselines: BaselineType = None,
                  target: TargetType = None, additional_forward_args: Any = None, n_steps: int = 50,
                  method: str = "riemann_trapezoid", internal_batch_size: int | None = None,
                  attribute_to_neuron_input: bool = False, grad_kwargs: Mapping[str, Any] | None = None, *,
                  forward_kwargs: Mapping[str, Any] | None = None,
                  batch_size: int | None = None, show_progress: bool = False) -> TensorOrTuple:
        check_selector(neuron_selector)
        check_grad_kwargs(grad_kwargs)
        key = bool(attribute_to_neuron_input)
        if key not in self._spaces:
            self._spaces[key] = LayerSpace(self.forward_func, self.layer, key)
        space = self._spaces[key]
        call = self.prepare(inputs, target, additional_forward_args, forward_kwargs, batch_size, show_progress,
                            internal_batch_size=internal_batch_size)
        bases = format_baselines(baselines, call.inputs)
        alphas, weights = path_points(n_steps, method)
        masks: dict[tuple, Tensor] = {}
        weights_of: list[tuple[Tensor, ...]] = []

        def keep_selected(k: int, g: Tensor) -> Tensor:
            if weights_of:  # a callable selector: its weight on every neuron of every layer tensor
                return g * weights_of[0][k].to(device=g.device, dtype=g.dtype)
            if k > 0:
                raise ValueError("an index neuron_selector needs a layer whose output (or input) is a single tensor; "
                                 f"layer {type(self.layer).__name__} gives several: pass a callable neuron_selector "
                                 "that picks from the tuple")
            mkey = (tuple(g.shape[1:]), g.dtype, g.device)
            if mkey not in masks:
                masks[mkey] = neuron_mask(g, neuron_selector)
            return g * masks[mkey]

        acc = [torch.zeros_like(x) for x in call.inputs]
        build = path_builder(call.inputs, bases, alphas)
        chunker = call.ev.chunks(call.n * n_steps, call.inputs, kind="grad", tag=("neuron-conductance", key))
        with call.guard, space:
            if callable(neuron_selector):  # the layer's tensors' shapes from one example, then the weights
                acts = space.activations(call.ev, tuple(x[:1] for x in call.inputs), torch.arange(1), tag="shape")
                weights_of.append(selector_weights(acts, neuron_selector))
            for rows in chunker:
                xs, ex = build(rows)
                grads, _ = space.grad_through(call.ev, xs, ex, keep_selected, chunker)
                st = rows % n_steps
                for a, g in zip(acc, grads):
                    w = weights.to(device=g.device, dtype=g.dtype)[st.to(g.device)].reshape((-1,) + (1,) * (g.dim() - 1))
                    a.index_add_(0, ex.to(a.device), g * w)
        if self._multiply_by_inputs:
            acc = [a * (x - b) for a, x, b in zip(acc, call.inputs, bases)]
        return restore_form(acc, call.was_tuple)


class NeuronFeatureAblation(NeuronAttribution):
    """Feature ablation of the selected neuron: the change of its value when a group of input features
    (``feature_mask``) is set to its baseline; inputs' shapes. Forward only up to the layer."""

    _multiply_by_inputs = True  # an output difference, as FeatureAblation (Captum's value)

    def attribute(self, inputs: TensorOrTuple, neuron_selector: SelectorType, baselines: BaselineType = None,
                  additional_forward_args: Any = None, feature_mask: Any = None,
                  attribute_to_neuron_input: bool = False, perturbations_per_eval: int | None = None, *,
                  forward_kwargs: Mapping[str, Any] | None = None, batch_size: int | None = None,
                  show_progress: bool = False) -> TensorOrTuple:
        nf = self.neuron(neuron_selector, attribute_to_neuron_input)
        with nf.space:  # hooks registered once per call
            return FeatureAblation(nf).attribute(
                inputs, baselines, None, additional_forward_args, feature_mask, perturbations_per_eval, show_progress,
                forward_kwargs=forward_kwargs, batch_size=batch_size)
