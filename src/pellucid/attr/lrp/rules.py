"""LRP rules as data, and the one function that applies any of them.

Layer-wise relevance propagation (Bach et al., 2015, PLoS ONE 10(7): e0130140; Montavon et al., 2019, "Layer-Wise
Relevance Propagation: An Overview", in *Explainable AI*, LNCS 11700) redistributes the relevance ``R_j`` of a
layer's outputs to its inputs. Every rule here has the form

    ``R_i = sum_terms scale * sum_parts sign * x'_i * sum_j W'_ij R_j / stab(z_j)``,
    ``z_j = sum_parts sign * (sum_i x'_i W'_ij + b'_j)``

where each *part* modifies the input ``x -> x'``, the weight ``W -> W'`` and the bias ``b -> b'`` (or drops it),
and ``stab(z) = z + epsilon * sign(z)`` (``sign(0) = 1``). A rule is a small frozen dataclass whose ``terms``
list its parts; :func:`relevance` applies any of them with the "modified gradient" trick: with ``z`` computed by
the layer on the modified inputs and parameters, ``R_i = sum_parts x'_i * d(z . s)/dx'_i`` with
``s = R / stab(z)`` held constant. Parameter-free linear layers (average pooling) use the input modifiers only.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Modifier = Callable[[Tensor], Tensor]
LayerFunction = Callable[[Tensor, "Tensor | None", "Tensor | None"], Tensor]


def identity(t: Tensor) -> Tensor:
    return t


def positive(t: Tensor) -> Tensor:
    return t.clamp(min=0)


def negative(t: Tensor) -> Tensor:
    return t.clamp(max=0)


def ones(t: Tensor) -> Tensor:
    return torch.ones_like(t)


def square(t: Tensor) -> Tensor:
    return t * t


@dataclass(frozen=True)
class Part:
    """One contribution ``sign * layer(inputs(x), weight(W), bias(b))`` (``bias=None``: the bias is dropped)."""

    inputs: Modifier = identity
    weight: Modifier = identity
    bias: Modifier | None = identity
    sign: float = 1.0


@dataclass(frozen=True)
class Term:
    """Parts sharing one normaliser ``z``; the term's relevance is multiplied by ``scale``."""

    parts: tuple[Part, ...]
    scale: float = 1.0


@dataclass(frozen=True)
class Rule(ABC):
    """Base of the rules. ``terms`` (empty for :class:`Pass`) and ``epsilon`` (the stabiliser of ``z``; a field
    of the rules that expose it, else ``1e-9``) define a rule."""

    epsilon = 1e-9  # not a field: subclasses declare their own

    @property
    @abstractmethod
    def terms(self) -> tuple[Term, ...]:
        ...


@dataclass(frozen=True)
class Pass(Rule):
    """No rule: the layer's ordinary gradient carries the relevance (use to exclude a layer)."""

    @property
    def terms(self) -> tuple[Term, ...]:
        return ()


@dataclass(frozen=True)
class Epsilon(Rule):
    """LRP-epsilon (Bach et al., 2015): ``R_i = sum_j x_i W_ij R_j / stab(z_j)``. ``epsilon -> 0`` is LRP-0, which
    on ReLU networks equals gradient x input. The bias is kept in ``z``, so it absorbs its share ``b_j / z_j``."""

    epsilon: float = 1e-6

    @property
    def terms(self) -> tuple[Term, ...]:
        return (Term((Part(),)),)


@dataclass(frozen=True)
class Gamma(Rule):
    """LRP-gamma (Montavon et al., 2019): weights and bias ``W + gamma * W+``; favours positive contributions.
    Meant for layers whose inputs are non-negative (after ReLU)."""

    gamma: float = 0.25
    epsilon: float = 1e-6

    @property
    def terms(self) -> tuple[Term, ...]:
        g = self.gamma

        def modify(t: Tensor) -> Tensor:
            return t + g * t.clamp(min=0)

        return (Term((Part(weight=modify, bias=modify),)),)


@dataclass(frozen=True)
class ZPlus(Rule):
    """z+ rule (Montavon et al., 2017, "Explaining nonlinear classification decisions with deep Taylor
    decomposition", Pattern Recognition 65): ``R_i = sum_j x_i W+_ij R_j / sum_i x_i W+_ij``, no bias; for
    non-negative inputs (negative inputs get no relevance)."""

    @property
    def terms(self) -> tuple[Term, ...]:
        return (Term((Part(inputs=positive, weight=positive, bias=None),)),)


@dataclass(frozen=True)
class AlphaBeta(Rule):
    """LRP-alpha-beta (Bach et al., 2015): ``alpha * (positive contributions) - beta * (negative ones)``, each part
    normalised separately; positive contributions are ``x+ W+``, ``x- W-`` and ``b+`` (negative: ``x+ W-``,
    ``x- W+``, ``b-``). Conserves relevance when ``alpha - beta = 1``."""

    alpha: float = 2.0
    beta: float = 1.0

    def __post_init__(self) -> None:
        for name in ("alpha", "beta"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise ValueError(f"AlphaBeta {name} must be a non-negative number; received {v!r}")

    @property
    def terms(self) -> tuple[Term, ...]:
        pos = Term((Part(positive, positive, positive), Part(negative, negative, None)), scale=self.alpha)
        neg = Term((Part(positive, negative, negative), Part(negative, positive, None)), scale=-self.beta)
        return (pos, neg) if self.beta != 0 else (pos,)


@dataclass(frozen=True)
class Flat(Rule):
    """Flat rule (Lapuschkin et al., 2019, Nat. Commun. 10:1096): relevance spread uniformly over the receptive
    field (inputs and weights set to 1, no bias)."""

    @property
    def terms(self) -> tuple[Term, ...]:
        return (Term((Part(inputs=ones, weight=ones, bias=None),)),)


@dataclass(frozen=True)
class WSquare(Rule):
    """w^2 rule (Montavon et al., 2017): ``R_i = sum_j W_ij^2 R_j / sum_i W_ij^2`` (input-independent)."""

    @property
    def terms(self) -> tuple[Term, ...]:
        return (Term((Part(inputs=ones, weight=square, bias=None),)),)


@dataclass(frozen=True, eq=False)
class ZBox(Rule):
    """z^B rule for a first layer with inputs bounded in ``[low, high]`` (Montavon et al., 2017):
    ``z_ij = x_i W_ij - l_i W+_ij - h_i W-_ij``. ``low``/``high``: numbers or tensors broadcastable to one input
    row (e.g. per-channel ``(C, 1, 1)``) or to the input batch."""

    low: float | Tensor = field(default=0.0)
    high: float | Tensor = field(default=1.0)

    @property
    def terms(self) -> tuple[Term, ...]:
        def bound(value: float | Tensor) -> Modifier:
            def fn(x: Tensor) -> Tensor:
                return torch.as_tensor(value, dtype=x.dtype, device=x.device).expand_as(x)

            return fn

        return (Term((
            Part(bias=None),
            Part(inputs=bound(self.low), weight=positive, bias=None, sign=-1.0),
            Part(inputs=bound(self.high), weight=negative, bias=None, sign=-1.0),
        )),)


# -- layers the rules apply to ---------------------------------------------------------------------------
CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
LINEARS = (nn.Linear,)
AVERAGE_POOLS = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
                 nn.AdaptiveAvgPool3d)
RULE_LAYERS = LINEARS + CONVOLUTIONS + AVERAGE_POOLS
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _batch_norm(module: nn.Module) -> LayerFunction:
    def fn(x: Tensor, w: Tensor | None, b: Tensor | None) -> Tensor:
        if module.training or module.running_mean is None:
            raise ValueError(
                f"an LRP rule on {module} needs it in eval mode with running statistics (a BatchNorm in training "
                "mode mixes the rows of the batch): call model.eval()"
            )
        return F.batch_norm(x, module.running_mean, module.running_var, w, b, False, 0.0, module.eps)

    return fn


def layer_function(module: nn.Module) -> LayerFunction | None:
    """``f(x, weight, bias)`` computing ``module`` with given parameters (without its hooks); None if unsupported.
    BatchNorm (eval mode, an affine map per channel) is supported for rules set on it explicitly; by default
    :class:`~pellucid.attr.lrp.canonizers.MergeBatchNorm` folds it into the layer before it."""
    if isinstance(module, LINEARS):
        return lambda x, w, b: F.linear(x, w, b)
    if isinstance(module, CONVOLUTIONS):
        return lambda x, w, b: module._conv_forward(x, w, b)
    if isinstance(module, AVERAGE_POOLS):
        return lambda x, w, b: module.forward(x)
    if isinstance(module, BATCH_NORMS):
        return _batch_norm(module)
    return None


_PLAIN = (Term((Part(),)),)


def stabilize(z: Tensor, epsilon: float) -> Tensor:
    """``z + epsilon * sign(z)`` with ``sign(0) = 1``."""
    return z + torch.where(z >= 0, epsilon, -epsilon)


def relevance(
    rule: Rule,
    fn: LayerFunction,
    x: Tensor,
    relevance_out: Tensor,
    weight: Tensor | None,
    bias: Tensor | None,
    params: Callable[[int, int, str, Modifier, Tensor], Tensor] | None = None,
    output: Tensor | None = None,
) -> Tensor:
    """Apply ``rule`` to a layer ``fn`` with input ``x``: the relevance of ``x`` given ``relevance_out``.

    ``params(term, part, name, modifier, tensor)``, if given, returns the modified parameter (a cache: the
    modified weights are computed once per attribution call, not once per chunk). ``output``, if given, is the
    layer's own output, still attached to ``x``'s graph: a term of one unmodified part (LRP-epsilon) then
    differentiates it instead of recomputing the layer.
    """
    if output is not None and output.requires_grad and rule.terms == _PLAIN:
        s = relevance_out / stabilize(output.detach(), rule.epsilon)
        with torch.enable_grad():
            (g,) = torch.autograd.grad(output, x, grad_outputs=s)
        return x.detach() * g

    def modified(t_idx: int, p_idx: int, name: str, mod: Modifier | None, t: Tensor | None) -> Tensor | None:
        if t is None or mod is None:
            return None
        return params(t_idx, p_idx, name, mod, t) if params is not None else mod(t)

    out = torch.zeros_like(x)
    x = x.detach()
    with torch.enable_grad():
        for ti, term in enumerate(rule.terms):
            xs, z = [], None
            for pi, part in enumerate(term.parts):
                xk = part.inputs(x).detach().requires_grad_(True)
                zk = fn(xk, modified(ti, pi, "weight", part.weight, weight), modified(ti, pi, "bias", part.bias, bias))
                zk = zk if part.sign == 1.0 else part.sign * zk
                z = zk if z is None else z + zk
                xs.append(xk)
            s = relevance_out / stabilize(z.detach(), rule.epsilon)
            grads = torch.autograd.grad(z, xs, grad_outputs=s, allow_unused=True)
            contrib = sum(xk.detach() * g for xk, g in zip(xs, grads) if g is not None)
            out = out + (contrib if term.scale == 1.0 else term.scale * contrib)
    return out
