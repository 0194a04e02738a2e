"""Grad-CAM and guided Grad-CAM (Selvaraju et al., 2017, "Grad-CAM: Visual Explanations from Deep Networks via
Gradient-based Localization", arXiv:1610.02391).

Grad-CAM at a layer with activations ``A`` ``(N, K, *spatial)``: ``relu(sum_k mean_spatial(dF/dA_k) A_k)``,
shape ``(N, 1, *spatial)``. One forward and a backward through the layers after the tap per example.
Guided Grad-CAM multiplies guided backpropagation by Grad-CAM upsampled to the input's size.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import warnings

import torch
from torch import Tensor

from ..core.errors import check_choice
from ..core.inputs import TensorOrTuple, format_inputs, restore_form
from ..core.layers import LayerType
from ..core.targets import TargetType
from .guided_backprop import GuidedBackprop
from .layer import LayerAttribution, check_grad_kwargs, interpolate, layer_gradients

# the modes of torch.nn.functional.interpolate
INTERPOLATE_MODES = ("nearest", "nearest-exact", "linear", "bilinear", "bicubic", "trilinear", "area")


def grad_cam(acts: Tensor, grads: Tensor, relu: bool = True, sum_channels: bool = True) -> Tensor:
    """``sum_k mean_spatial(grads_k) acts_k`` (channels are dim 1; dims 2.. are spatial; a 2-D layer has none)."""
    weights = grads.mean(dim=tuple(range(2, grads.dim())), keepdim=True) if grads.dim() > 2 else grads
    cam = weights * acts
    if sum_channels:
        cam = cam.sum(dim=1, keepdim=True)
    return torch.relu(cam) if relu else cam


class LayerGradCam(LayerAttribution):
    """Grad-CAM at ``layer``. ``attribute`` returns ``(N, 1, *spatial)`` per layer tensor (``(N, K, *spatial)``
    with ``attr_dim_summation=False``); ``relu_attributions`` applies the final ReLU (Captum's keywords).
    Upsample with ``LayerGradCam.interpolate(attr, input.shape[2:])``. ``grad_kwargs`` (Captum's keywords for
    ``torch.autograd.grad``) is accepted; see :func:`pellucid.attr.layer.check_grad_kwargs`."""

    _layers_in_one_pass = True  # gradients at every tapped layer of one pass: nested layers need no second pass

    def attribute(
        self,
        inputs: TensorOrTuple,
        target: TargetType = None,
        additional_forward_args: Any = None,
        attribute_to_layer_input: bool = False,
        relu_attributions: bool = False,
        attr_dim_summation: bool = True,
        grad_kwargs: Mapping[str, Any] | None = None,
        *,
        forward_kwargs: Mapping[str, Any] | None = None,
        batch_size: int | None = None,
        show_progress: bool = False,
    ) -> Any:
        check_grad_kwargs(grad_kwargs)
        call, space = self.setup(inputs, target, additional_forward_args, forward_kwargs, batch_size, show_progress,
                                 attribute_to_layer_input)
        with call.guard, space:
            out = layer_gradients(
                space, call,
                lambda acts, grads: tuple(grad_cam(a, g, relu_attributions, attr_dim_summation) for a, g in zip(acts, grads)),
                "gradcam",
            )
        return space.restore_form(out)


class GuidedGradCam(LayerAttribution):
    """Guided Grad-CAM: guided backpropagation times Grad-CAM (with the ReLU) upsampled to each input's spatial
    size (``interpolate_mode``). Returns the inputs' shapes. As in Captum, an input that Grad-CAM cannot be
    upsampled to (not ``(N, C, *spatial)`` with the layer's number of spatial dims, e.g. a 2-D or token input) gets
    an empty tensor ``torch.empty(0)`` and a ``UserWarning`` naming it."""

    def __init__(self, model: Callable, layer: LayerType, device_ids: Sequence[int] | None = None):
        super().__init__(model, layer, device_ids)
        self._cam = LayerGradCam(model, layer, device_ids)
        self._guided = GuidedBackprop(model)

    def attribute(
        self,
        inputs: TensorOrTuple,
        target: TargetType = None,
        additional_forward_args: Any = None,
        interpolate_mode: str = "nearest",
        attribute_to_layer_input: bool = False,
        *,
        forward_kwargs: Mapping[str, Any] | None = None,
        batch_size: int | None = None,
        show_progress: bool = False,
    ) -> TensorOrTuple:
        check_choice(interpolate_mode, "interpolate_mode", INTERPOLATE_MODES)
        xs, was_tuple = format_inputs(inputs)
        cam = self._cam.attribute(inputs, target, additional_forward_args, attribute_to_layer_input, True,
                                  forward_kwargs=forward_kwargs, batch_size=batch_size, show_progress=show_progress)
        if not isinstance(cam, Tensor):
            raise ValueError("GuidedGradCam needs a layer with one output tensor (or one input with "
                             "attribute_to_layer_input=True)")
        usable = [x.dim() == cam.dim() and x.dim() >= 3 for x in xs]
        for i, (x, ok) in enumerate(zip(xs, usable)):
            if not ok:  # Captum's behaviour: a warning and an empty tensor for this input
                where = f"inputs[{i}]" if was_tuple else "inputs"
                warnings.warn(
                    f"GuidedGradCam: {where} has shape {tuple(x.shape)} but the layer's Grad-CAM has shape "
                    f"{tuple(cam.shape)}; it can be upsampled only to an input (N, C, *spatial) with the layer's number "
                    f"of spatial dims ({cam.dim() - 2}), so the attribution of {where} is an empty tensor",
                    UserWarning, stacklevel=2,
                )
        if not any(usable):
            return restore_form([torch.empty(0) for _ in xs], was_tuple)
        guided = self._guided.attribute(inputs, target, additional_forward_args, forward_kwargs=forward_kwargs,
                                        batch_size=batch_size, show_progress=show_progress)
        gs, _ = format_inputs(guided)
        return restore_form([g * interpolate(cam, tuple(g.shape[2:]), interpolate_mode) if ok else torch.empty(0)
                             for g, ok in zip(gs, usable)], was_tuple)
