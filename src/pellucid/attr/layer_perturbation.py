"""Layer feature ablation and permutation: :class:`FeatureAblation` and :class:`FeaturePermutation` run in the
layer's activation space (DESIGN section 4). ``layer_mask`` groups the layer's neurons (shape of the layer's value
without the batch, or broadcastable to it; None: every neuron its own group); ``layer_baselines`` are the values an
ablated group takes (None: 0). Each perturbed row runs the model with the layer's value replaced, so only the
activations change; rows of all examples and perturbations are batched together by the perturbation engine.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor

from ..core.inputs import TensorOrTuple, format_baselines
from ..core.perturb import format_feature_mask
from ..core.targets import TargetType
from .feature_ablation import FeatureAblation
from .feature_permutation import FeaturePermutation
from .layer import LayerAttribution, space_args


def _per_activation(value: Any, k: int) -> Any:
    """A single tensor given for a layer with one activation tensor -> a 1-tuple (the base methods see tuples)."""
    if isinstance(value, list):
        value = tuple(v for layer_value in value for v in (layer_value if isinstance(layer_value, tuple) else (layer_value,)))
    if isinstance(value, Tensor) and k == 1:
        return (value,)
    return value


class LayerFeatureAblation(LayerAttribution):
    """Ablate groups of the layer's neurons (``layer_mask``) to ``layer_baselines`` and record the output change;
    returns the layer's shape. ``N x (1 + G)`` forward rows for ``G`` groups."""

    _multiply_by_inputs = True  # an output difference, as FeatureAblation (Captum's value)

    def attribute(
        self,
        inputs: TensorOrTuple,
        layer_baselines: Any = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        layer_mask: Any = None,
        attribute_to_layer_input: bool = False,
        perturbations_per_eval: int | None = None,
        *,
        forward_kwargs: Mapping[str, Any] | None = None,
        batch_size: int | None = None,
        show_progress: bool = False,
    ) -> Any:
        call, space = self.setup(inputs, target, additional_forward_args, forward_kwargs, None, show_progress,
                                 attribute_to_layer_input)
        args, kwargs = space_args(call)
        with call.guard, space:
            acts = space.activations(call.ev, call.inputs, torch.arange(call.n))
            k = len(acts)
            layer_baselines, layer_mask = _per_activation(layer_baselines, k), _per_activation(layer_mask, k)
            # checked here so that errors name this method's arguments, not the inner method's
            format_baselines(layer_baselines, acts, "layer_baselines")
            format_feature_mask(layer_mask, acts, "layer_mask")
            out = FeatureAblation(space).attribute(
                acts, layer_baselines, call.ev.target, args, layer_mask,
                perturbations_per_eval, show_progress, forward_kwargs=kwargs, batch_size=batch_size,
            )
        return space.restore_form(out)


class LayerFeaturePermutation(LayerAttribution):
    """Permute groups of the layer's neurons (``layer_mask``) across the batch and record the output change
    (Breiman, 2001, "Random Forests"; Fisher et al., 2019, arXiv:1801.01489); returns the layer's shape.
    Reproducible with ``generator`` / ``seed``."""

    _multiply_by_inputs = True  # as FeaturePermutation (Captum's value)

    def attribute(
        self,
        inputs: TensorOrTuple,
        target: TargetType = None,
        additional_forward_args: Any = None,
        layer_mask: Any = None,
        perturbations_per_eval: int | None = None,
        attribute_to_layer_input: bool = False,
        *,
        forward_kwargs: Mapping[str, Any] | None = None,
        batch_size: int | None = None,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        show_progress: bool = False,
    ) -> Any:
        call, space = self.setup(inputs, target, additional_forward_args, forward_kwargs, None, show_progress,
                                 attribute_to_layer_input)
        args, kwargs = space_args(call)
        with call.guard, space:
            acts = space.activations(call.ev, call.inputs, torch.arange(call.n))
            layer_mask = _per_activation(layer_mask, len(acts))
            format_feature_mask(layer_mask, acts, "layer_mask")  # errors name this method's argument
            out = FeaturePermutation(space).attribute(
                acts, call.ev.target, args, layer_mask, perturbations_per_eval,
                show_progress, forward_kwargs=kwargs, batch_size=batch_size, generator=generator, seed=seed,
            )
        return space.restore_form(out)
