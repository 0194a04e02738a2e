"""Causation for selected neurons: what in the input drives them, and what they do to the output.

Probing finds neurons whose activations *correlate* with a property; the NAACL 2021 tutorial on fine-grained
interpretation (Sajjad, Durrani & Dalvi, arXiv:2105.08039) pairs it with *causal* checks. For a selected neuron:

* :func:`neuron_attributions`: neuron conductance (Dhamdhere et al., 2018, arXiv:1805.12233; the flow of the model's
  ``target`` output through the neuron to each input feature) or neuron integrated gradients (Sundararajan et al.,
  2017, arXiv:1703.01365; the neuron's own value attributed to the inputs), from :mod:`pellucid.attr`;
* :func:`ablation_effect`: the change of the model's ``target`` output when the neurons are ablated
  (:func:`~pellucid.analysis.neurons.ablate_neurons`).
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from torch import Tensor, nn

from ...attr import NeuronConductance, NeuronIntegratedGradients
from ...core.guard import ModelGuard
from ...core.inputs import ForwardArgs, call_model, format_inputs, restore_form
from ...core.layers import LayerSpace
from ...core.targets import Target, TargetType
from .ablation import ablate_neurons
from .activations import as_index, first_tensor

METHODS = ("conductance", "integrated_gradients")


def layer_shape(model: Any, layer: nn.Module, inputs: Any, additional_forward_args: Any = None,
                forward_kwargs: Mapping[str, Any] | None = None) -> tuple[int, ...]:
    """The shape of ``layer``'s value (after the batch dim) for ``inputs`` (one forward of the first example, up to
    the layer only)."""
    xs, _ = format_inputs(inputs)
    n = xs[0].shape[0]
    fwd = ForwardArgs.make(additional_forward_args, forward_kwargs, n)
    args, kwargs = fwd.rows(torch.zeros(1, dtype=torch.long))
    space = LayerSpace(model, layer)
    with ModelGuard(model), space, torch.no_grad():
        (value,) = space.value(*(x[:1] for x in xs), *args, **kwargs)
    return tuple(first_tensor(value).shape[1:])


def _selector(j: int, shape: tuple[int, ...], per: str, position: Any) -> tuple:
    if per == "token":
        if len(shape) != 2:
            raise ValueError(f"per='token' needs a layer with (N, L, D) values; the layer gives (N, *{shape})")
        pos = slice(None) if position is None else position
        if not isinstance(pos, (int, slice)) or isinstance(pos, bool):
            raise TypeError("position must be an int token position, a slice or None (all positions); "
                            f"received {position!r}")
        return (pos, j)
    return tuple(int(i) for i in np.unravel_index(j, shape))


def neuron_attributions(
    model: Any,
    layer: nn.Module,
    neurons: Any,
    inputs: Any,
    *,
    method: str = "conductance",
    target: TargetType = None,
    baselines: Any = None,
    per: str = "example",
    position: int | slice | None = None,
    additional_forward_args: Any = None,
    forward_kwargs: Mapping[str, Any] | None = None,
    n_steps: int = 50,
    batch_size: int | None = None,
) -> Any:
    """Attributions of each selected neuron to the inputs, stacked: ``(k, *input shape)`` (a tuple of such for tuple
    inputs).

    Args:
        model, layer: the model and the layer holding the neurons.
        neurons: neuron indices on the layer's neuron axis (see ``per``).
        inputs: float inputs ``(N, ...)`` (or a tuple); for token ids attribute on embeddings (pass a model taking
            ``inputs_embeds``).
        method: ``"conductance"`` (default; needs ``target`` unless the model returns one scalar per example) or
            ``"integrated_gradients"`` (the neuron's value).
        target, baselines, additional_forward_args, forward_kwargs, n_steps, batch_size: as in
            :class:`pellucid.attr.NeuronConductance` / :class:`pellucid.attr.NeuronIntegratedGradients`.
        per: ``"example"`` (neuron ``j`` indexes the layer value flattened after the batch) or ``"token"`` (``j`` is
            a feature of ``(N, L, D)`` values, at ``position`` or, by default, summed over all positions).

    Conductance summed over the inputs gives the neuron's conductance (its share of ``F(x) - F(x')``); neuron IG
    sums to the neuron's value at the inputs minus at the baselines.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; received {method!r}")
    if per not in ("example", "token"):
        raise ValueError(f"per must be 'example' or 'token'; received {per!r}")
    shape = layer_shape(model, layer, inputs, additional_forward_args, forward_kwargs)
    n_neurons = shape[-1] if per == "token" else int(np.prod(shape))
    idx = as_index(neurons, n_neurons, "neurons")
    results = []
    for j in idx.tolist():
        sel = _selector(j, shape, per, position)
        if method == "conductance":
            a = NeuronConductance(model, layer).attribute(
                inputs, sel, baselines=baselines, target=target, additional_forward_args=additional_forward_args,
                n_steps=n_steps, forward_kwargs=forward_kwargs, batch_size=batch_size)
        else:
            a = NeuronIntegratedGradients(model, layer).attribute(
                inputs, sel, baselines=baselines, additional_forward_args=additional_forward_args, n_steps=n_steps,
                forward_kwargs=forward_kwargs, batch_size=batch_size)
        results.append(a if isinstance(a, tuple) else (a,))
    was_tuple = isinstance(inputs, (tuple, list))
    n_in = len(inputs) if was_tuple else 1
    stacked = [torch.stack([r[i] for r in results]) if results else torch.zeros(0) for i in range(n_in)]
    return restore_form(stacked, was_tuple)


def ablation_effect(
    model: Any,
    layer: nn.Module,
    neurons: Any,
    inputs: Any,
    *,
    target: TargetType = None,
    value: Any = "zero",
    per: str = "example",
    additional_forward_args: Any = None,
    forward_kwargs: Mapping[str, Any] | None = None,
) -> dict[str, Tensor]:
    """The model's ``target`` output with and without ``neurons`` of ``layer`` ablated (``value``: ``"zero"``, a
    number or per-neuron means; ``per`` as in :class:`~pellucid.analysis.neurons.ablate_neurons`).

    Returns ``{"before": (N,), "after": (N,), "change": after - before}``. The model runs as it is (its mode is not
    changed) without gradients; the hooks are removed afterwards."""
    xs, _ = format_inputs(inputs)
    n = xs[0].shape[0]
    tgt = Target(target, n)
    fwd = ForwardArgs.make(additional_forward_args, forward_kwargs, n)
    ex = torch.arange(n)
    args, kwargs = fwd.rows(ex)
    with ModelGuard(model), torch.no_grad():
        before = tgt.select(call_model(model, xs, args, kwargs), ex).detach()
        with ablate_neurons(layer, neurons, value=value, per=per):
            after = tgt.select(call_model(model, xs, args, kwargs), ex).detach()
    return {"before": before, "after": after, "change": after - before}
