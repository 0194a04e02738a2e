"""Captum's LRP rule classes (``captum.attr._utils.lrp_rules``) as pellucid rules, and rules set on modules.

A Captum user sets a rule on a layer with ``model.conv1.rule = EpsilonRule()``; pellucid's :class:`~pellucid.attr.LRP`
reads such a ``rule`` attribute (it never sets or deletes one) and lets it override the composite for that
module. The classes here keep Captum's names, arguments and definitions, so the numbers agree with Captum's:

* :class:`EpsilonRule` ``(epsilon=1e-9)``: LRP-epsilon (Bach et al., 2015, PLoS ONE 10(7): e0130140),
  ``R_i = x_i sum_j W_ij R_j / (z_j + epsilon sign(z_j))`` with the bias in ``z``.
* :class:`GammaRule` ``(gamma=0.25, set_bias_to_zero=False)``: LRP-gamma (Montavon et al., 2019, "Layer-Wise
  Relevance Propagation: An Overview"), weights ``W + gamma W+``; as in Captum the bias is kept unchanged (or
  dropped), unlike :class:`~pellucid.attr.lrp.Gamma`, which also raises the positive bias.
* :class:`Alpha1_Beta0_Rule` ``(set_bias_to_zero=False)``: weights ``W+`` on the unmodified inputs (Captum's
  definition; equal to alpha=1, beta=0 for non-negative inputs).
* :class:`IdentityRule`: the relevance of the output is passed to the input unchanged (same shapes).
* :class:`PropagationRule`: Captum's base class. A subclass that overrides ``_manipulate_weights(module, inputs,
  outputs)`` (Captum's customisation point: it modifies ``module.weight.data`` / ``module.bias.data``) gets
  LRP-epsilon (``STABILITY_FACTOR``) with the manipulated parameters; the manipulation runs on a copy of the
  layer, never on the model.

Every rule uses Captum's stabiliser ``STABILITY_FACTOR`` (``epsilon``), default ``1e-9``. Objects of Captum's
own rule classes are accepted too (:func:`rule_from_attribute` converts them).
"""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn

from .rules import Part, Rule, Term, identity, positive


class PropagationRule(Rule):
    """Base of Captum-style rules (see the module docstring): LRP-epsilon with stabiliser ``STABILITY_FACTOR``
    (default ``1e-9``) applied with the parameters that ``_manipulate_weights`` produces. Rules of this family are
    plain objects (subclasses may set attributes in ``__init__``, as in Captum)."""

    STABILITY_FACTOR: float = 1e-9

    __eq__ = object.__eq__
    __hash__ = object.__hash__

    @property
    def epsilon(self) -> float:  # type: ignore[override]
        return float(self.STABILITY_FACTOR)

    @property
    def terms(self) -> tuple[Term, ...]:
        return (Term((Part(),)),)

    def _manipulate_weights(self, module: nn.Module, inputs: Any, outputs: Any) -> None:
        """Captum's customisation point: modify ``module.weight.data`` / ``module.bias.data`` in place. pellucid
        calls it on a copy of the layer. The base does nothing (LRP-epsilon)."""

    def manipulates_weights(self) -> bool:
        """Whether a subclass overrides ``_manipulate_weights`` (its parameters then come from a copy of the layer)."""
        return type(self)._manipulate_weights not in _DATA_MANIPULATIONS

    def __repr__(self) -> str:
        fields = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in fields.items())})"


class EpsilonRule(PropagationRule):
    """LRP-epsilon as in Captum: ``R_i = x_i sum_j W_ij R_j / (z_j + epsilon sign(z_j))`` (bias in ``z``).

    Args:
        epsilon: the stabiliser, default ``1e-9`` (Captum's).
    """

    def __init__(self, epsilon: float = 1e-9) -> None:
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or epsilon < 0:
            raise ValueError(f"EpsilonRule epsilon must be a non-negative number; received {epsilon!r}")
        self.STABILITY_FACTOR = float(epsilon)


class GammaRule(PropagationRule):
    """LRP-gamma as in Captum: weights ``W + gamma W+``, bias unchanged (or zero with ``set_bias_to_zero``),
    stabiliser ``1e-9``.

    Args:
        gamma: how much positive weights are raised, default 0.25.
        set_bias_to_zero: drop the bias from ``z``, default False.
    """

    def __init__(self, gamma: float = 0.25, set_bias_to_zero: bool = False) -> None:
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or gamma < 0:
            raise ValueError(f"GammaRule gamma must be a non-negative number; received {gamma!r}")
        self.gamma = float(gamma)
        self.set_bias_to_zero = bool(set_bias_to_zero)

    @property
    def terms(self) -> tuple[Term, ...]:
        g = self.gamma

        def raise_positive(t: Tensor) -> Tensor:
            return t + g * t.clamp(min=0)

        return (Term((Part(weight=raise_positive, bias=None if self.set_bias_to_zero else identity),)),)


class Alpha1_Beta0_Rule(PropagationRule):  # noqa: N801 - Captum's name
    """Captum's alpha=1, beta=0 rule: weights ``W+`` on the unmodified inputs, bias unchanged (or zero with
    ``set_bias_to_zero``), stabiliser ``1e-9``. For non-negative inputs it is the z+ rule with bias."""

    def __init__(self, set_bias_to_zero: bool = False) -> None:
        self.set_bias_to_zero = bool(set_bias_to_zero)

    @property
    def terms(self) -> tuple[Term, ...]:
        return (Term((Part(weight=positive, bias=None if self.set_bias_to_zero else identity),)),)


class IdentityRule(EpsilonRule):
    """The relevance of the layer's output is given to its input unchanged (input and output of the same shape,
    e.g. a BatchNorm), as in Captum."""

    passes_relevance = True


_DATA_MANIPULATIONS = {PropagationRule._manipulate_weights}


def manipulated_parameters(rule: PropagationRule, module: nn.Module, weight: Tensor | None, bias: Tensor | None,
                           inputs: Any, outputs: Any) -> tuple[Tensor | None, Tensor | None]:
    """``(weight, bias)`` after ``rule._manipulate_weights`` on a copy of ``module`` whose parameters are
    ``weight`` / ``bias`` (the module's own, or a canonizer's merged ones). The model is not touched."""
    twin = copy.deepcopy(module)
    with torch.no_grad():
        for name, value in (("weight", weight), ("bias", bias)):
            p = getattr(twin, name, None)
            if isinstance(p, Tensor) and value is not None:
                p.data = value.detach().clone()
        rule._manipulate_weights(twin, inputs, outputs)
    w, b = getattr(twin, "weight", None), getattr(twin, "bias", None)
    return (None if w is None else w.detach()), (None if b is None else b.detach())


def _from_captum(rule: Any) -> Rule | None:
    """A Captum rule object -> the pellucid rule of the same definition (None if not Captum's)."""
    cls = type(rule)
    if not cls.__module__.startswith("captum"):
        return None
    names = {c.__name__ for c in cls.__mro__}
    eps = float(getattr(rule, "STABILITY_FACTOR", 1e-9))
    if cls.__name__ == "IdentityRule":
        return IdentityRule()
    if cls.__name__ == "EpsilonRule":
        return EpsilonRule(eps)
    if cls.__name__ == "GammaRule":
        out: PropagationRule = GammaRule(getattr(rule, "gamma", 0.25), getattr(rule, "set_bias_to_zero", False))
    elif cls.__name__ == "Alpha1_Beta0_Rule":
        out = Alpha1_Beta0_Rule(getattr(rule, "set_bias_to_zero", False))
    elif "PropagationRule" in names and hasattr(rule, "_manipulate_weights"):
        out = _CaptumCustom(rule)
    else:
        return None
    out.STABILITY_FACTOR = eps
    return out


class _CaptumCustom(PropagationRule):
    """A user's subclass of Captum's own ``PropagationRule``: its ``_manipulate_weights`` on a copy of the layer."""

    def __init__(self, rule: Any):
        self._wrapped = rule

    def _manipulate_weights(self, module: nn.Module, inputs: Any, outputs: Any) -> None:
        self._wrapped._manipulate_weights(module, inputs, outputs)

    def __repr__(self) -> str:
        return f"{type(self._wrapped).__name__} (Captum rule)"


def rule_from_attribute(module: nn.Module, name: str) -> Rule:
    """The rule a user set as ``module.rule`` (``None`` means no rule: the module keeps its gradient). Raises
    ``TypeError`` for anything that is not an LRP rule, so a rule is never silently ignored."""
    from .rules import Pass

    rule = getattr(module, "rule")
    if rule is None:
        return Pass()
    if isinstance(rule, Rule):
        return rule
    converted = _from_captum(rule)
    if converted is not None:
        return converted
    raise TypeError(
        f"{name or 'the model'} ({type(module).__name__}) has a `rule` attribute of type {type(rule).__name__}; "
        "expected an LRP rule (e.g. pellucid.attr.EpsilonRule(), GammaRule(), Alpha1_Beta0_Rule(), IdentityRule(), "
        "or a pellucid.attr.lrp rule such as Epsilon(), ZPlus()) or None"
    )
