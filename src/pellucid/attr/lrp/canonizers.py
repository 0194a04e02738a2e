"""Canonizers: rewrite a model into an equivalent form that LRP rules handle (Motzkus et al., 2022,
"Measurably Stronger Explanation Reliability via Model Canonization", arXiv:2202.06621).

A canonizer's :meth:`~Canonizer.apply` is a context manager on a model; nothing of the model is written: the
rewriting is done by forward hooks (and a torch-function mode) that are removed on exit, also on error, so the
model comes back exactly as it was (parameters, buffers, hooks, attributes). ``apply`` yields the parameter
overrides it introduces, ``{module: (weight, bias)}``, which LRP's rules use in place of the module's own.

* :class:`MergeBatchNorm`: a BatchNorm in eval mode following a Linear/Conv is an affine map
  ``a * y + c`` (``a = gamma / sqrt(var + eps)``, ``c = beta - mean * a``); folded into the layer
  (``W' = a W``, ``b' = a b + c``) the pair is one linear layer, to which a rule applies; the BatchNorm becomes
  the identity. Pairs are found by tracing one forward (a BatchNorm whose input is the output of a Linear/Conv
  that nothing else consumes), or given by name.
* :class:`SplitAdditions`: ``a + b`` of two tensors that both carry relevance (residual connections) splits the
  relevance in proportion to the summands (the epsilon rule of a sum, ``R_a = a R / stab(a + b)``) instead of
  copying it to both branches as the gradient would (which doubles it).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from contextlib import ExitStack, contextmanager
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from ...core.hooks import FunctionRules
from .rules import BATCH_NORMS, CONVOLUTIONS, LINEARS, layer_function, stabilize

Overrides = dict[nn.Module, tuple[Tensor, "Tensor | None"]]


Probe = Callable[[], Any]


class Canonizer(ABC):
    """Base: ``with canonizer.apply(model, probe) as overrides: ...``; ``probe()``, if given, runs the model on an
    example input (used to find the model's structure)."""

    @abstractmethod
    def apply(self, model: nn.Module, probe: Probe | None = None):  # pragma: no cover - interface
        ...


def trace_batchnorm_pairs(model: nn.Module, probe: Probe) -> list[tuple[nn.Module, nn.Module]]:
    """(layer, batchnorm) pairs seen in one no-grad forward ``probe()``: the BatchNorm's input is the output of a
    Linear/Conv, that output feeds no other operation, and both modules ran once."""
    producers: dict[int, tuple[nn.Module, Tensor]] = {}
    uses: Counter = Counter()
    calls: Counter = Counter()
    candidates: list[tuple[nn.Module, nn.Module, Tensor]] = []

    def produced(module, args, output):
        calls[module] += 1
        if isinstance(output, Tensor):
            producers[id(output)] = (module, output)

    def consumed(module, args):
        calls[module] += 1
        t = args[0] if args else None
        hit = producers.get(id(t)) if isinstance(t, Tensor) else None
        if hit is not None and hit[1] is t:
            candidates.append((hit[0], module, t))

    class CountUses(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if isinstance(out, Tensor) or (isinstance(out, tuple) and any(isinstance(o, Tensor) for o in out)):
                for a in list(args) + list((kwargs or {}).values()):
                    if isinstance(a, Tensor) and id(a) in producers and producers[id(a)][1] is a:
                        uses[id(a)] += 1
            return out

    handles = []
    try:
        for m in model.modules():
            if isinstance(m, LINEARS + CONVOLUTIONS):
                handles.append(m.register_forward_hook(produced))
            elif isinstance(m, BATCH_NORMS):
                handles.append(m.register_forward_pre_hook(consumed))
        with torch.no_grad(), CountUses():
            probe()
    finally:
        for h in handles:
            h.remove()
    return [(layer, bn) for layer, bn, t in candidates
            if uses[id(t)] == 1 and calls[layer] == 1 and calls[bn] == 1]


def merged_parameters(layer: nn.Module, bn: nn.Module) -> tuple[Tensor, Tensor]:
    """``(W', b')`` of ``bn(layer(x))`` as one layer (BatchNorm in eval mode)."""
    with torch.no_grad():
        scale = torch.rsqrt(bn.running_var + bn.eps)
        if bn.weight is not None:
            scale = scale * bn.weight
        shift = -bn.running_mean * scale
        if bn.bias is not None:
            shift = shift + bn.bias
        w = layer.weight * scale.reshape((-1,) + (1,) * (layer.weight.dim() - 1))
        b = shift if layer.bias is None else layer.bias * scale + shift
    return w.detach(), b.detach()


class MergeBatchNorm(Canonizer):
    """Fold BatchNorm layers into the Linear/Conv layer before them.

    Args:
        pairs: ``[(layer name, batchnorm name), ...]`` (names as in ``model.named_modules()``) for pairs whose
            BatchNorm consumes only the layer's output. ``None`` (default): found by tracing one forward when
            the caller gives a probe (LRP does), else every Linear/Conv immediately followed by a BatchNorm
            inside an ``nn.Sequential``.
    The BatchNorms must be in eval mode with running statistics (``ValueError`` otherwise).
    """

    def __init__(self, pairs: Sequence[tuple[str, str]] | None = None):
        if pairs is not None:
            pairs = list(pairs)
            for i, p in enumerate(pairs):
                if not (isinstance(p, (tuple, list)) and len(p) == 2 and all(isinstance(s, str) for s in p)):
                    raise TypeError(f"pairs[{i}] must be a (layer name, batchnorm name) pair of strings; received {p!r}")
        self.pairs = pairs

    def find(self, model: nn.Module, probe: Probe | None = None) -> list[tuple[nn.Module, nn.Module]]:
        """The (layer, batchnorm) module pairs to merge."""
        if self.pairs is None and probe is not None:
            training = [m for m in model.modules() if isinstance(m, BATCH_NORMS) and m.training]
            if training:
                raise ValueError(
                    f"MergeBatchNorm needs BatchNorm layers in eval mode (batch statistics mix the rows); {training[0]} "
                    "is in training mode: call model.eval()"
                )
            found = trace_batchnorm_pairs(model, probe)
        elif self.pairs is None:
            found = []
            for seq in model.modules():
                if isinstance(seq, nn.Sequential):
                    kids = list(seq.children())
                    found += [(a, b) for a, b in zip(kids, kids[1:])
                              if isinstance(a, LINEARS + CONVOLUTIONS) and isinstance(b, BATCH_NORMS)]
        else:
            named = dict(model.named_modules())
            found = []
            for a, b in self.pairs:
                for name in (a, b):
                    if name not in named:
                        raise ValueError(f"MergeBatchNorm pairs names {name!r}, which is not a module of the model")
                if not isinstance(named[a], LINEARS + CONVOLUTIONS) or not isinstance(named[b], BATCH_NORMS):
                    raise ValueError(
                        f"MergeBatchNorm pair ({a!r}, {b!r}) must be (Linear/Conv, BatchNorm); received "
                        f"({type(named[a]).__name__}, {type(named[b]).__name__})"
                    )
                found.append((named[a], named[b]))
        # a BatchNorm that carries its own LRP rule (``bn.rule = ...``, Captum's way) keeps it: not merged
        found = [(layer, bn) for layer, bn in found if not hasattr(bn, "rule")]
        for layer, bn in found:
            if bn.training or bn.running_mean is None:
                raise ValueError(
                    f"MergeBatchNorm needs BatchNorm layers in eval mode with running statistics; {bn} is "
                    f"{'in training mode (call model.eval())' if bn.training else 'without running statistics'}"
                )
            out = layer.weight.shape[0]
            if bn.num_features != out:
                raise ValueError(f"cannot merge {bn} into {layer}: {bn.num_features} features vs {out} outputs")
        return found

    @contextmanager
    def apply(self, model: nn.Module, probe: Probe | None = None) -> Iterator[Overrides]:
        pairs = self.find(model, probe)
        overrides: Overrides = {}
        handles = []
        try:
            for layer, bn in pairs:
                w, b = merged_parameters(layer, bn)
                overrides[layer] = (w, b)
                fn = layer_function(layer)

                def layer_hook(module, args, output, fn=fn, w=w, b=b):
                    return fn(args[0], w, b)

                handles.append(layer.register_forward_hook(layer_hook))
                handles.append(bn.register_forward_hook(lambda module, args, output: args[0]))
            yield overrides
        finally:
            for h in handles:
                h.remove()


T = torch.Tensor
ADDITIONS = (torch.add, T.add, T.add_, T.__add__, T.__radd__, T.__iadd__)


def _carries(t: Any) -> bool:
    return isinstance(t, Tensor) and t.requires_grad and torch.is_floating_point(t)


def addition_rule(epsilon: float):
    """Torch-function rule: proportional relevance split for ``a + alpha * b`` when both carry relevance."""

    def rule(func, args, kwargs):
        a = args[0]
        b = args[1] if len(args) > 1 else kwargs.get("other")
        if func is T.__radd__ or not (_carries(a) and _carries(b)) or "out" in kwargs:
            return func(*args, **kwargs)
        alpha = kwargs.get("alpha", args[2] if len(args) > 2 else 1)
        bb = b * alpha if alpha != 1 else b
        with torch.no_grad():
            y = a.detach() + bb.detach()
            s = stabilize(y, epsilon)
            ca, cb = a.detach() / s, bb.detach() / s
        mixed = a * ca + bb * cb
        out = y + (mixed - mixed.detach())
        if func in (T.add_, T.__iadd__):
            return a.copy_(out)
        return out

    return rule


class SplitAdditions(Canonizer):
    """Residual additions split relevance in proportion to the summands (``epsilon`` stabilises ``a + b``)."""

    def __init__(self, epsilon: float = 1e-9):
        self.epsilon = epsilon

    @contextmanager
    def apply(self, model: nn.Module, probe: Probe | None = None) -> Iterator[Overrides]:
        rule = addition_rule(self.epsilon)
        with FunctionRules({f: rule for f in ADDITIONS}):
            yield {}


@contextmanager
def canonized(model: nn.Module, canonizers: Sequence[Canonizer], probe: Probe | None = None) -> Iterator[Overrides]:
    """Apply several canonizers (in order); yields their merged parameter overrides."""
    with ExitStack() as stack:
        overrides: Overrides = {}
        for c in canonizers:
            overrides.update(stack.enter_context(c.apply(model, probe)))
        yield overrides
