"""Composites: which LRP rule each layer gets, by layer name, by first layer, by layer type, or a default.

A :class:`Composite` is data (maps from names / types to rules); :meth:`Composite.assign` resolves it on a model
to ``{module: rule}`` for the layers rules apply to (Linear, Conv1d/2d/3d, average pooling). Precedence: an
exact name in ``by_name``, then ``first_layer`` for the first Linear/Conv in ``model.named_modules()`` order
(the registration order, which is the forward order for ordinary models; name the layer otherwise), then the
first matching entry of ``by_type``, then ``default``. Named composites follow Kohlbrenner et al., 2020,
"Towards best practice in explaining neural network decisions with LRP" (IJCNN), arXiv:1910.09840.
"""
from __future__ import annotations

from typing import Mapping, Sequence

from torch import Tensor, nn

from .rules import (
    AVERAGE_POOLS, CONVOLUTIONS, LINEARS, RULE_LAYERS, AlphaBeta, Epsilon, Flat, Gamma, Rule, ZBox, ZPlus,
)

TypeRules = Sequence[tuple["type | tuple[type, ...]", Rule]]


def _check_rule(rule: object, where: str) -> Rule:
    if not isinstance(rule, Rule):
        raise TypeError(f"{where} must be an LRP rule (e.g. Epsilon(), ZPlus()); received {type(rule).__name__}")
    return rule


class Composite:
    """Rules per layer.

    Args:
        by_type: ``[(layer type or tuple of types, rule), ...]``; the first match wins.
        by_name: ``{qualified module name: rule}`` (names as in ``model.named_modules()``).
        first_layer: rule for the first Linear/Conv layer (e.g. :class:`ZBox` for pixels).
        default: rule for every other supported layer; ``None`` leaves it to its gradient (no rule).
    """

    def __init__(
        self,
        by_type: TypeRules = (),
        by_name: Mapping[str, Rule] | None = None,
        first_layer: Rule | None = None,
        default: Rule | None = None,
    ):
        self.by_type = []
        for i, item in enumerate(by_type):
            if not (isinstance(item, tuple) and len(item) == 2):
                raise TypeError(f"by_type[{i}] must be a (layer type, rule) pair; received {item!r}")
            types, rule = item
            types_t = types if isinstance(types, tuple) else (types,)
            if not all(isinstance(t, type) and issubclass(t, nn.Module) for t in types_t):
                raise TypeError(f"by_type[{i}] must start with an nn.Module subclass (or a tuple of them); received {types!r}")
            self.by_type.append((types_t, _check_rule(rule, f"by_type[{i}] rule")))
        if by_name is not None and not isinstance(by_name, Mapping):
            raise TypeError(f"by_name must be a dict {{module name: rule}}; received {type(by_name).__name__}")
        self.by_name = {k: _check_rule(v, f"by_name[{k!r}]") for k, v in (by_name or {}).items()}
        self.first_layer = None if first_layer is None else _check_rule(first_layer, "first_layer")
        self.default = None if default is None else _check_rule(default, "default")

    def assign(self, model: nn.Module) -> dict[nn.Module, Rule]:
        """``{module: rule}`` for the supported layers of ``model`` that get a rule."""
        if not isinstance(model, nn.Module):
            raise TypeError(f"LRP needs a torch.nn.Module model; received {type(model).__name__}")
        named = dict(model.named_modules())
        for name in self.by_name:
            if name not in named:
                raise ValueError(f"by_name names {name!r}, which is not a module of the model")
            if not isinstance(named[name], RULE_LAYERS):
                raise ValueError(
                    f"by_name[{name!r}] is a {type(named[name]).__name__}; rules apply to "
                    f"{', '.join(t.__name__ for t in RULE_LAYERS)}"
                )
        first = next((m for m in named.values() if isinstance(m, LINEARS + CONVOLUTIONS)), None)
        out: dict[nn.Module, Rule] = {}
        for name, module in named.items():
            if not isinstance(module, RULE_LAYERS) or module in out:
                continue
            rule = self.by_name.get(name)
            if rule is None and module is first and self.first_layer is not None:
                rule = self.first_layer
            if rule is None:
                rule = next((r for types, r in self.by_type if isinstance(module, types)), self.default)
            if rule is not None:
                out[module] = rule
        return out

    def __repr__(self) -> str:
        return (f"Composite(by_type={[(tuple(t.__name__ for t in ts), r) for ts, r in self.by_type]}, "
                f"by_name={self.by_name}, first_layer={self.first_layer}, default={self.default})")


def epsilon_composite(epsilon: float = 1e-9) -> Composite:
    """LRP-epsilon on every supported layer (the default of :class:`~pellucid.attr.LRP`); ``epsilon`` defaults
    to Captum's ``1e-9``."""
    return Composite(default=Epsilon(epsilon))


def epsilon_plus(epsilon: float = 1e-6) -> Composite:
    """Epsilon on dense layers and pooling, z+ on convolutions."""
    return Composite(by_type=[(CONVOLUTIONS, ZPlus()), (LINEARS + AVERAGE_POOLS, Epsilon(epsilon))])


def epsilon_plus_flat(epsilon: float = 1e-6) -> Composite:
    """:func:`epsilon_plus` with the flat rule on the first layer."""
    c = epsilon_plus(epsilon)
    c.first_layer = Flat()
    return c


def epsilon_gamma_box(low: float | Tensor, high: float | Tensor, epsilon: float = 1e-6, gamma: float = 0.25) -> Composite:
    """z^B (inputs in ``[low, high]``) on the first layer, gamma on convolutions, epsilon on dense layers/pooling."""
    return Composite(by_type=[(CONVOLUTIONS, Gamma(gamma)), (LINEARS + AVERAGE_POOLS, Epsilon(epsilon))],
                     first_layer=ZBox(low, high))


def epsilon_alpha2_beta1(epsilon: float = 1e-6) -> Composite:
    """Alpha=2, beta=1 on convolutions, epsilon on dense layers and pooling."""
    return Composite(by_type=[(CONVOLUTIONS, AlphaBeta(2.0, 1.0)), (LINEARS + AVERAGE_POOLS, Epsilon(epsilon))])
