"""LRP and LayerLRP: layer-wise relevance propagation with rules assigned by a composite.

Mechanism (once per call, whatever the number of chunks): canonizers are applied, every layer that the
composite gives a rule gets a forward hook whose output keeps its value but whose backward maps the relevance of
the layer's outputs to its inputs by the rule (:func:`~pellucid.attr.lrp.rules.relevance`), and a torch-function
mode makes elementwise activations (ReLU, GELU, tanh, ...) and dropout (in training mode too) pass relevance
through unchanged. A rule set on a module as a ``rule`` attribute (Captum's way, ``model.conv1.rule =
EpsilonRule()``) overrides the composite for that module; it is read, never set or deleted. The layers' outputs
are fresh tensors, so in-place operations after them (``nn.ReLU(inplace=True)``) work. The backward pass of
the target score started with 1 then carries relevance divided by the score; the result is multiplied by the
score, so the output relevance is ``R = f(x)`` (the target score). Everything is removed on exit, also on error;
no attribute is set on a module and no parameter is written.

Operations without a rule keep their gradient: flatten/reshape (exact), max pooling (the gradient
routes relevance to the winning input, i.e. winner-take-all, which conserves it), functional average pooling
(uniform split over the window, conserving), and non-elementwise operations such as LayerNorm, softmax-attention
or products of activations (relevance is then not conserved; ``return_convergence_delta`` reports the gap).
Conservation ``sum(R_input) = f(x)`` holds exactly for LRP-0/epsilon (up to epsilon) on bias-free networks of
Linear/Conv, average/max pooling, elementwise activations and (with :class:`SplitAdditions`) residual sums;
biases absorb the share ``b_j / z_j`` of each neuron's relevance.
"""
from __future__ import annotations

from contextlib import ExitStack, contextmanager
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...core.hooks import FunctionRules, out_of_place, override_grad, write_back
from ...core.inputs import TensorOrTuple, restore_form
from ...core.layers import LayerSpace, check_layers_in_model, format_layers
from ...core.targets import TargetType
from .._base import Attribution, Call, attribution_sum
from ..deeplift import ELEMENTWISE
from .canonizers import Canonizer, MergeBatchNorm, SplitAdditions, canonized
from .composites import Composite, epsilon_composite
from .propagation import PropagationRule, manipulated_parameters, rule_from_attribute
from .rules import _PLAIN, BATCH_NORMS, RULE_LAYERS, Rule, layer_function, relevance

_NOT_ACTIVATIONS = {"softmax", "log_softmax", "exp", "abs"}
ACTIVATIONS = {f: pos for f, pos in ELEMENTWISE.items() if getattr(f, "__name__", "") not in _NOT_ACTIVATIONS}
# dropout passes relevance unchanged (in training mode too: the gradient would scale it by 1 / (1 - p))
DROPOUTS = {F.dropout: 3, F.dropout1d: 3, F.dropout2d: 3, F.dropout3d: 3, F.alpha_dropout: 3, F.feature_alpha_dropout: 3}
PASS_THROUGH = {**ACTIVATIONS, **DROPOUTS}


def _pass_through(func: Callable, args: tuple, kwargs: dict) -> Tensor:
    x, pos = args[0], PASS_THROUGH[func]
    with torch.no_grad():
        y = out_of_place(func, args, kwargs, x.detach(), pos)
    return write_back(func, args, kwargs, override_grad(x, y, lambda g: g, fresh=True), pos)


def _rule_hook(rule: Rule, module: nn.Module, override: tuple[Tensor, Tensor | None] | None, name: str,
               explicit: bool) -> Callable:
    fn = layer_function(module)
    weight, bias = override if override is not None else (getattr(module, "weight", None), getattr(module, "bias", None))
    custom = isinstance(rule, PropagationRule) and rule.manipulates_weights()
    passes = bool(getattr(rule, "passes_relevance", False))
    cache: dict = {}

    def params(ti: int, pi: int, pname: str, modifier: Callable, t: Tensor) -> Tensor:
        key = (ti, pi, pname)
        if key not in cache:
            with torch.no_grad():
                cache[key] = modifier(t.detach())
        return cache[key]

    def hook(mod: nn.Module, args: tuple, output: Any) -> Any:
        x = args[0] if args else None
        if not (isinstance(x, Tensor) and isinstance(output, Tensor)) or (explicit and len(args) > 1):
            if not explicit:
                return None
            raise ValueError(
                f"the LRP rule set on {name} ({type(module).__name__}) needs a module with one tensor input and a "
                f"tensor output; it was called with {len(args)} positional argument(s) and returned "
                f"{type(output).__name__}"
            )
        if passes:
            if output.shape != x.shape:
                raise ValueError(
                    f"{rule!r} on {name} ({type(module).__name__}) passes relevance unchanged, so the module's input "
                    f"and output must have one shape; received {tuple(x.shape)} -> {tuple(output.shape)}"
                )
            return override_grad(x, output, lambda r: r, fresh=True)
        if custom:
            if "manipulated" not in cache:
                cache["manipulated"] = manipulated_parameters(rule, module, weight, bias, args, output)
            w, b = cache["manipulated"]
            return override_grad(x, output, lambda r: relevance(rule, fn, x, r, w, b), fresh=True)
        # a copy the rest of the model may modify in place (nn.ReLU(inplace=True) after the layer)
        return override_grad(x, output, lambda r: relevance(rule, fn, x, r, weight, bias, params, output), fresh=True)

    return hook


def module_rules(model: nn.Module) -> dict[nn.Module, tuple[str, Rule]]:
    """Rules set on modules as a ``rule`` attribute (Captum's way: ``model.conv1.rule = EpsilonRule()``), checked:
    ``{module: (name, rule)}``. Raises for a rule the module cannot take (never ignores one)."""
    out: dict[nn.Module, tuple[str, Rule]] = {}
    for name, module in model.named_modules():
        if not hasattr(module, "rule") or module in out:
            continue
        rule = rule_from_attribute(module, name)
        where = name or "the model"
        if not rule.terms:
            out[module] = (name, rule)
            continue
        if next(module.children(), None) is not None:
            raise ValueError(
                f"{where} ({type(module).__name__}) has a `rule` but contains other modules; LRP rules apply to "
                "layers (modules without submodules): set the rule on its layers"
            )
        plain = rule.terms == _PLAIN and not (isinstance(rule, PropagationRule) and rule.manipulates_weights())
        if layer_function(module) is None and not (plain or getattr(rule, "passes_relevance", False)):
            raise ValueError(
                f"{rule!r} on {where} ({type(module).__name__}) modifies the layer's inputs or parameters, which "
                f"pellucid can do for {', '.join(t.__name__ for t in RULE_LAYERS + BATCH_NORMS)}; use EpsilonRule() "
                "or IdentityRule() on this module"
            )
        out[module] = (name, rule)
    return out


def default_canonizers() -> list[Canonizer]:
    """``[MergeBatchNorm(), SplitAdditions()]``."""
    return [MergeBatchNorm(), SplitAdditions()]


@contextmanager
def lrp_rules(model: nn.Module, composite: Composite, canonizers: Sequence[Canonizer],
              probe: Callable[[], Any] | None = None) -> Iterator[dict[nn.Module, Rule]]:
    """Context manager: inside it, backward passes through ``model`` propagate relevance; yields the assignment.

    A rule set on a module as a ``rule`` attribute overrides the composite for that module (``None``: no rule,
    the module keeps its gradient). ``probe()`` runs the model on one example (canonizers trace the model's
    structure with it)."""
    explicit = module_rules(model)
    with ExitStack() as stack:
        overrides = stack.enter_context(canonized(model, canonizers, probe))
        assignment = composite.assign(model)
        assignment.update({m: r for m, (_, r) in explicit.items()})
        names = {m: n for n, m in model.named_modules()}
        for module, rule in assignment.items():
            if rule.terms:
                hook = _rule_hook(rule, module, overrides.get(module), names.get(module, "") or "the model",
                                  module in explicit)
                handle = module.register_forward_hook(hook)
                stack.callback(handle.remove)
        stack.enter_context(FunctionRules({f: _pass_through for f in PASS_THROUGH}))
        yield assignment


def _check_setup(model: Any, composite: Any, canonizers: Any) -> tuple[Composite, list[Canonizer]]:
    if not isinstance(model, nn.Module):
        raise TypeError(f"LRP needs a torch.nn.Module (rules attach to its layers); received {type(model).__name__}")
    composite = epsilon_composite() if composite is None else composite
    if not isinstance(composite, Composite):
        raise TypeError(f"composite must be a Composite (e.g. epsilon_plus()); received {type(composite).__name__}")
    if canonizers is None:
        canonizers = default_canonizers()
    elif isinstance(canonizers, Canonizer):
        raise TypeError(f"canonizers must be a list of Canonizer (e.g. [MergeBatchNorm()]) or None; received a single "
                        f"{type(canonizers).__name__}: wrap it in a list")
    else:
        try:
            canonizers = list(canonizers)
        except TypeError:
            raise TypeError("canonizers must be a list of Canonizer (e.g. [MergeBatchNorm()]), [] for none, or None "
                            f"for the default; received {type(canonizers).__name__}") from None
    for i, c in enumerate(canonizers):
        if not isinstance(c, Canonizer):
            raise TypeError(f"canonizers[{i}] must be a Canonizer (e.g. MergeBatchNorm()); received {type(c).__name__}")
    return composite, canonizers


def _report(assignment: Mapping[nn.Module, Rule], model: nn.Module) -> None:
    names = {m: n for n, m in model.named_modules()}
    for module, rule in assignment.items():
        print(f"{names.get(module, type(module).__name__) or '(model)'}: {type(module).__name__} -> {rule}")


def _probe(call: Call) -> Callable[[], Any]:
    """Run the model on the first example (with its extra arguments)."""
    return lambda: call.ev.run(tuple(x[:1] for x in call.inputs), torch.zeros(1, dtype=torch.long))


def _scale(t: Tensor, score: Tensor) -> Tensor:
    return t * score.to(t.dtype).reshape((-1,) + (1,) * (t.dim() - 1))


class LRP(Attribution):
    """Layer-wise relevance propagation (Bach et al., 2015, PLoS ONE 10(7): e0130140).

    Args:
        model: an ``nn.Module``.
        composite: the rules per layer (:mod:`pellucid.attr.lrp.composites`); default LRP-epsilon with
            ``epsilon=1e-9`` (Captum's default) on every Linear/Conv/average-pooling layer. A ``rule`` attribute
            set on a module (Captum's :class:`EpsilonRule`, :class:`GammaRule`, ... or any pellucid rule)
            overrides it for that module.
        canonizers: default ``[MergeBatchNorm(), SplitAdditions()]``; ``[]`` for none.

    ``attribute`` returns the relevance of each input feature, the inputs' shapes; with
    ``return_convergence_delta=True`` also ``f(x) - sum(relevance)`` ``(N,)`` (Captum's sign).
    """

    _multiply_by_inputs = True

    def __init__(self, model: nn.Module, composite: Composite | None = None, canonizers: Sequence[Canonizer] | None = None):
        super().__init__(model)
        self.composite, self.canonizers = _check_setup(model, composite, canonizers)

    def has_convergence_delta(self) -> bool:
        return True

    def attribute(
        self,
        inputs: TensorOrTuple,
        target: TargetType = None,
        additional_forward_args: Any = None,
        return_convergence_delta: bool = False,
        verbose: bool = False,
        *,
        composite: Composite | None = None,
        forward_kwargs: Mapping[str, Any] | None = None,
        batch_size: int | None = None,
        show_progress: bool = False,
    ):
        """Relevance of the inputs (their shapes). ``composite`` overrides the constructor's for this call;
        ``verbose`` prints the rule of every layer."""
        comp, _ = _check_setup(self.forward_func, composite if composite is not None else self.composite, [])
        call = self.prepare(inputs, target, additional_forward_args, forward_kwargs, batch_size, show_progress)
        out = [torch.empty_like(x) for x in call.inputs]
        scores = torch.empty(call.n, dtype=call.inputs[0].dtype, device=call.inputs[0].device)

        def build(rows: Tensor):
            return tuple(x.index_select(0, rows.to(x.device)) for x in call.inputs), rows

        def consume(rows: Tensor, ex: Tensor, grads: tuple[Tensor, ...], score: Tensor) -> None:
            for o, g in zip(out, grads):
                o[rows.to(o.device)] = _scale(g, score)
            scores[rows.to(scores.device)] = score.to(scores.dtype)

        with call.guard, lrp_rules(self.forward_func, comp, self.canonizers, _probe(call)) as assignment:
            if verbose:
                _report(assignment, self.forward_func)
            call.ev.grad_rows(call.n, build, consume, call.inputs, tag="lrp")
        attrs = restore_form(out, call.was_tuple)
        if return_convergence_delta:
            return attrs, scores - attribution_sum(tuple(out))
        return attrs


class LayerLRP(LRP):
    """LRP relevance at a layer's output (or input, ``attribute_to_layer_input=True``); the layer's shape.

    Args:
        model, composite, canonizers: as in :class:`LRP`.
        layer: a module of ``model`` (called once per forward), or a list of modules: a list of relevances comes
            back (one backward pass for all; nested layers, e.g. a block and a layer inside it, are fine), and
            the delta is a list too, one ``(N,)`` tensor per layer (as in Captum).
    """

    def __init__(self, model: nn.Module, layer: nn.Module | Sequence[nn.Module], composite: Composite | None = None,
                 canonizers: Sequence[Canonizer] | None = None):
        super().__init__(model, composite, canonizers)
        layers, _ = format_layers(layer)
        check_layers_in_model(model, layers)
        self.layer = layer

    def attribute(
        self,
        inputs: TensorOrTuple,
        target: TargetType = None,
        additional_forward_args: Any = None,
        return_convergence_delta: bool = False,
        attribute_to_layer_input: bool = False,
        verbose: bool = False,
        *,
        composite: Composite | None = None,
        forward_kwargs: Mapping[str, Any] | None = None,
        batch_size: int | None = None,
        show_progress: bool = False,
    ):
        """Relevance at the layer (its output's shape, or its input's); delta ``f(x) - sum(relevance)`` (Captum's sign)."""
        comp, _ = _check_setup(self.forward_func, composite if composite is not None else self.composite, [])
        call = self.prepare(inputs, target, additional_forward_args, forward_kwargs, batch_size, show_progress,
                            needs_grad=False)
        space = LayerSpace(self.forward_func, self.layer, attribute_to_layer_input)
        parts: list[tuple[Tensor, ...]] = []
        scores: list[Tensor] = []

        def build(rows: Tensor):
            return tuple(x.index_select(0, rows.to(x.device)) for x in call.inputs), rows

        def consume(rows, ex, acts, grads, score) -> None:
            parts.append(tuple(_scale(g, score) for g in grads))
            scores.append(score)

        with call.guard, lrp_rules(self.forward_func, comp, self.canonizers, _probe(call)) as assignment:
            if verbose:
                _report(assignment, self.forward_func)
            with space:
                # inputs tracked: residual additions split relevance with paths that bypass the layer, as in LRP
                # (only SplitAdditions looks at which operands carry a gradient)
                split = any(isinstance(c, SplitAdditions) for c in self.canonizers)
                space.grad_rows(call.ev, call.n, build, consume, call.inputs, tag=("layer-lrp", id(self.layer)),
                                track_inputs=split)
        flat = tuple(torch.cat(p) for p in zip(*parts))
        attrs = space.restore_form(flat)
        if not return_convergence_delta:
            return attrs
        score = torch.cat(scores).to(flat[0].dtype)
        deltas = [score - attribution_sum(v if isinstance(v, tuple) else (v,)) for v in space.unflatten(flat)]
        return attrs, (deltas if space.was_list else deltas[0])
