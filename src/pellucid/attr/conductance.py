"""Layer conductance (Dhamdhere, Sundararajan & Yan, 2018, "How Important Is a Neuron?", arXiv:1805.12233) and
internal influence (Leino et al., 2018, "Influence-Directed Explanations for Deep Convolutional Networks",
arXiv:1802.03788).

Both integrate along the straight path in *input* space, ``x(t) = x' + t (x - x')``, and take gradients at the
layer (one forward and a backward through the layers after the tap per path point):

* internal influence: ``integral_0^1 dF/dy (x(t)) dt`` with the quadrature of :mod:`pellucid.core.paths`;
* conductance of neuron ``j``: ``integral_0^1 dF/dy_j (x(t)) dy_j(x(t))/dt dt``, the line integral of the layer
  gradient along the layer's own path ``y(x(t))``. It is evaluated by the trapezoid rule on the grid formed by
  the ``method``'s path points together with both ends ``0`` and ``1``:
  ``sum_k (g_k + g_{k+1}) / 2 * (y_{k+1} - y_k)``. Because the grid includes both ends, the neurons'
  conductances sum to ``F(x) - F(x')`` up to the rule's O(h^2) error, and exactly when the layers after the tap
  are linear (Captum's rule uses the left gradients only, first order, and misses the ends for Gauss-Legendre
  points). The two end points also give ``F(x)`` and ``F(x')``, so the convergence delta costs nothing extra.

``grad_kwargs`` (Captum's keywords for ``torch.autograd.grad``) is accepted; see
:func:`pellucid.attr.layer.check_grad_kwargs`.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor

from ..core.inputs import BaselineType, TensorOrTuple, format_baselines, require_float
from ..core.paths import path_points
from ..core.targets import TargetType
from .integrated_gradients import path_builder
from .layer import LayerAttribution, check_grad_kwargs


def conductance_grid(n_steps: int, method: str) -> Tensor:
    """The ``method``'s path points with both ends added, ascending (float64)."""
    alphas, _ = path_points(n_steps, method)
    return torch.unique(torch.cat([alphas, torch.tensor([0.0, 1.0], dtype=alphas.dtype)]))


class InternalInfluence(LayerAttribution):
    """Internal influence: the layer gradient integrated along the input path (no multiplication by activation
    differences). Returns the layer's shape. Rows: examples x ``n_steps``."""

    def attribute(
        self,
        inputs: TensorOrTuple,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        n_steps: int = 50,
        method: str = "gausslegendre",
        internal_batch_size: int | None = None,
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
        require_float(call.inputs, type(self).__name__)
        bases = format_baselines(baselines, call.inputs)
        alphas, weights = path_points(n_steps, method)
        acc: list[Tensor] = []

        def consume(rows, ex, acts, grads, score):
            st = rows % n_steps
            if not acc:
                acc.extend(torch.zeros((call.n,) + tuple(g.shape[1:]), dtype=g.dtype, device=g.device) for g in grads)
            for a, g in zip(acc, grads):
                w = weights.to(device=g.device, dtype=g.dtype)[st.to(g.device)].reshape((-1,) + (1,) * (g.dim() - 1))
                a.index_add_(0, ex.to(g.device), g * w)

        with call.guard, space:
            space.grad_rows(call.ev, call.n * n_steps, path_builder(call.inputs, bases, alphas), consume, call.inputs,
                            tag="influence")
        return space.restore_form(acc)


class LayerConductance(LayerAttribution):
    """Conductance of every neuron of the layer (see the module docstring). Returns the layer's shape; with
    ``return_convergence_delta`` also ``delta`` ``(N,)`` = sum(conductance) - (F(x) - F(x')). Rows: examples x
    (``n_steps`` + the end points not among the method's points)."""

    _multiply_by_inputs = True  # conductance multiplies by the layer's difference from its baseline (as Captum)

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
        require_float(call.inputs, type(self).__name__)
        bases = format_baselines(baselines, call.inputs)
        grid = conductance_grid(n_steps, method)
        m = grid.shape[0]
        acc: list[Tensor] = []
        ends = torch.zeros(call.n, 2, dtype=torch.float64)
        prev: dict[str, Any] = {}

        def consume(rows, ex, acts, grads, score):
            st = rows % m
            if not acc:
                acc.extend(torch.zeros((call.n,) + tuple(a.shape[1:]), dtype=a.dtype, device=a.device) for a in acts)
            has_prev = st >= 1
            for i, (c, a, g) in enumerate(zip(acc, acts, grads)):
                a0, g0 = prev.get(i, (a[:1], g[:1]))
                a_all, g_all = torch.cat([a0, a]), torch.cat([g0, g])
                piece = 0.5 * (g_all[:-1] + g_all[1:]) * (a_all[1:] - a_all[:-1])
                keep = has_prev.to(piece.device).reshape((-1,) + (1,) * (piece.dim() - 1))
                c.index_add_(0, ex.to(c.device), torch.where(keep, piece, torch.zeros_like(piece)))
                prev[i] = (a[-1:], g[-1:])
            first, last = st == 0, st == m - 1
            ends[ex[first], 0] = score[first.to(score.device)].double().cpu()
            ends[ex[last], 1] = score[last.to(score.device)].double().cpu()

        with call.guard, space:
            space.grad_rows(call.ev, call.n * m, path_builder(call.inputs, bases, grid), consume, call.inputs,
                            tag="conductance")
        out = space.restore_form(acc)
        if not return_convergence_delta:
            return out
        total = sum(c.reshape(call.n, -1).sum(1) for c in acc)
        return out, total - (ends[:, 1] - ends[:, 0]).to(total.dtype).to(total.device)
