"""Ablating neurons: in a model (a context manager on its layers) and in a probe's input (on activation matrices).

Dalvi et al. (2019) confirm a neuron ranking by ablation: setting the top-ranked neurons to zero (or to their mean
over the data, which keeps the layer's expected input to later layers) should hurt a probe, and the model's own
task, far more than ablating as many random or bottom-ranked neurons. :func:`ablate_neurons` does it inside a model
with a forward hook (:class:`pellucid.core.hooks.LayerTap` replacing the layer's output), removed on exit, also on
error; :func:`ablate_columns` does it on an activation matrix; :func:`probe_ablation` compares top, random and bottom
neurons on a probe.
"""
from __future__ import annotations

from contextlib import ExitStack
from typing import Any, Callable, Mapping

import torch
from torch import Tensor, nn

from ...core.hooks import LayerTap
from .activations import as_index
from .probe import LinearProbe, probe_accuracy, values_of
from .ranking import random_neurons


def _fill(value: Any, neurons: Tensor, like: Tensor, n_total: int) -> Tensor:
    """The replacement values for ``neurons`` ``(k,)`` from a number or a per-neuron vector: the full neuron vector
    (``n_total`` values, indexed by ``neurons``) or one value per selected neuron."""
    if isinstance(value, bool):
        raise TypeError("value must be 'zero', a number or a tensor of per-neuron values; received bool")
    if isinstance(value, (int, float)):
        return torch.full((neurons.numel(),), float(value), dtype=like.dtype, device=like.device)
    v = torch.as_tensor(value).to(like.device, like.dtype).reshape(-1)
    if v.numel() == n_total:
        return v[neurons.to(v.device)]
    if v.numel() == neurons.numel():
        return v
    raise ValueError(f"value must hold one value per neuron of the layer ({n_total}) or per selected neuron "
                     f"({neurons.numel()}); received {v.numel()} values")


def _value_arg(value: Any) -> Any:
    if isinstance(value, str):
        if value != "zero":
            raise ValueError(
                f"value must be 'zero', a number or a tensor (e.g. the neurons' means); received {value!r}")
        return 0.0
    return value


class ablate_neurons:  # noqa: N801 - a context manager used like a function
    """Context manager: inside it, ``neurons`` of ``layer`` are replaced by ``value`` in every forward pass.

    Args:
        layer: a module, or a mapping ``{module: neurons}`` to ablate several layers at once (then ``neurons`` is
            ``None``).
        neurons: indices into the layer's neuron axis (see ``per``).
        value: ``"zero"`` (default), a number, or a per-neuron tensor (the layer's full neuron vector, e.g.
            ``Activations.mean()[columns]`` for mean ablation, or one value per selected neuron).
        per: ``"example"`` (default): neurons index the layer's value flattened after the batch dim, as in
            ``extract_activations(per="example")``; ``"token"``: neurons index the last dim (features) at every
            position, as with ``per="token"`` or word activations.

    The layer's output (first element of a tuple output) is cloned and the neurons overwritten, so nothing is
    modified in place; the hooks are removed on exit. Usage::

        with ablate_neurons(model.encoder.layer[3], top[:10], per="token"):
            out = model(**batch)
    """

    def __init__(self, layer: nn.Module | Mapping[nn.Module, Any], neurons: Any = None, value: Any = "zero",
                 per: str = "example"):
        if per not in ("example", "token"):
            raise ValueError(f"per must be 'example' or 'token'; received {per!r}")
        if isinstance(layer, Mapping):
            if neurons is not None:
                raise ValueError("give neurons inside the {layer: neurons} mapping, not as neurons=")
            spec = list(layer.items())
        else:
            spec = [(layer, neurons)]
        for m, _ in spec:
            if not isinstance(m, nn.Module):
                raise TypeError("layer must be a torch.nn.Module (or a {module: neurons} mapping); "
                                f"received {type(m).__name__}")
        self.spec = spec
        self.value = _value_arg(value)
        self.per = per
        self._stack: ExitStack | None = None

    def _replace(self, neurons: Any) -> Callable[[Any], Any]:
        def fn(out: Any) -> Any:
            t = out if isinstance(out, Tensor) else out[0]
            if not isinstance(t, Tensor):
                raise TypeError("ablate_neurons needs a layer whose output is a tensor (or a tuple starting with "
                                f"one); received {type(out).__name__}")
            n_neurons = t.shape[-1] if self.per == "token" else int(t[0].numel()) if t.shape[0] else 0
            idx = as_index(neurons, n_neurons, "neurons").to(t.device)
            new = t.clone()
            fill = _fill(self.value, idx, t, n_neurons)
            if self.per == "token":
                new[..., idx] = fill
            else:
                flat = new.reshape(new.shape[0], -1)
                flat[:, idx] = fill
                new = flat.reshape(t.shape)
            if isinstance(out, Tensor):
                return new
            return type(out)((new,) + tuple(out[1:])) if isinstance(out, tuple) else [new] + list(out[1:])

        return fn

    def __enter__(self) -> "ablate_neurons":
        stack = ExitStack()
        try:
            for m, neurons in self.spec:
                stack.enter_context(LayerTap(m, replace=self._replace(neurons)))
        except BaseException:
            stack.close()
            raise
        self._stack = stack
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None


def ablate_columns(X: Any, neurons: Any, value: Any = "zero", keep: bool = False) -> Tensor:
    """A copy of the activation matrix ``X`` ``(N, D)`` with ``neurons`` set to ``value`` (``"zero"``, a number or a
    per-neuron vector of length ``D``, e.g. the column means). ``keep=True`` ablates every *other* neuron instead
    (NeuroX's ``zero_out_activations_keep_neurons``)."""
    X = values_of(X)
    d = X.shape[1]
    idx = as_index(neurons, d, "neurons")
    if keep:
        mask = torch.ones(d, dtype=torch.bool)
        mask[idx] = False
        idx = torch.nonzero(mask).reshape(-1)
    out = X.clone() if X.dtype.is_floating_point else X.double()
    value = _value_arg(value)
    if not isinstance(value, (int, float)) and torch.as_tensor(value).numel() != d:
        raise ValueError(f"value must be a number or hold one value per neuron ({d}); "
                         f"received {torch.as_tensor(value).numel()} values")
    out[:, idx] = _fill(value, idx, out, d)
    return out


def probe_ablation(probe: LinearProbe, X: Any, y: Any, ordering: Any, ks: Any, *, value: Any = "zero",
                   keep: bool = False, n_random: int = 5, seed: int = 0) -> dict[str, list[float]]:
    """Probe accuracy with the top ``k``, ``k`` random and the bottom ``k`` neurons of ``ordering`` ablated (or,
    with ``keep=True``, kept and all others ablated), for each ``k`` in ``ks``.

    Returns ``{"k": ks, "top": [...], "random": [...] (mean of n_random draws), "bottom": [...], "none": [accuracy
    unablated]}``. A ranking that finds the important neurons shows ``top`` far below ``random`` and ``bottom``
    (or, with ``keep=True``, far above)."""
    X = values_of(X)
    d = X.shape[1]
    order = as_index(ordering, d, "ordering")
    ks = [int(k) for k in (ks if isinstance(ks, (list, tuple)) else [ks])]
    for k in ks:
        if not 0 <= k <= order.numel():
            raise ValueError(f"every k must be in [0, {order.numel()}]; received {k}")
    base = probe_accuracy(probe, X, y)
    res: dict[str, list[float]] = {"k": ks, "top": [], "random": [], "bottom": [], "none": [base] * len(ks)}
    for k in ks:
        res["top"].append(probe_accuracy(probe, ablate_columns(X, order[:k], value, keep), y))
        res["bottom"].append(probe_accuracy(probe, ablate_columns(X, order[order.numel() - k:], value, keep), y))
        accs = [probe_accuracy(probe, ablate_columns(X, random_neurons(d, k, seed + r), value, keep), y)
                for r in range(n_random)]
        res["random"].append(sum(accs) / len(accs))
    return res
