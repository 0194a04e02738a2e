"""Hooks: capturing layers (:class:`LayerTap`) and overriding the backward pass of functions (:class:`FunctionRules`).

Backward overrides (DeepLIFT's rescale rule, guided backprop, deconvolution, ...) are applied at the level of torch
*functions*, not modules: a ``TorchFunctionMode`` sees every call of ``torch.relu``, ``F.relu``, ``x.relu()``,
``nn.ReLU`` (which calls ``F.relu``), in-place variants, and a module used twice is simply two calls. Module
backward hooks (Captum's mechanism) miss functional calls and mis-handle reused and in-place modules.
A rule is a function ``rule(func, args, kwargs) -> output`` that computes the forward value and attaches a custom
backward with :func:`override_grad`. Everything is undone when the context manager exits.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

Rule = Callable[[Callable, tuple, dict], Any]


class _GradOverride(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, value: Tensor | list, backward_fn: Callable[[Tensor], Tensor]) -> Tensor:
        ctx.backward_fn = backward_fn
        # a value handed over in a list is not an input of the Function, so the output is not a view of it
        return value.pop() if isinstance(value, list) else value

    @staticmethod
    def backward(ctx, grad: Tensor):
        return ctx.backward_fn(grad), None, None


def override_grad(x: Tensor, value: Tensor, backward_fn: Callable[[Tensor], Tensor], fresh: bool = False) -> Tensor:
    """A tensor equal to ``value`` whose gradient flows to ``x`` as ``backward_fn(grad_of_value)``.

    ``fresh=True`` returns a copy that owns its memory, which later code may modify in place (e.g. an
    ``nn.ReLU(inplace=True)`` after the layer); otherwise the result is a view of ``value`` that autograd forbids
    modifying in place (cheaper; for rules whose output is not modified in place).
    """
    if not (torch.is_grad_enabled() and x.requires_grad):
        return value.clone() if fresh else value
    if fresh:
        return _GradOverride.apply(x, [value.detach().clone()], backward_fn)
    return _GradOverride.apply(x, value.detach(), backward_fn)


def is_inplace_call(func: Callable, args: tuple, kwargs: Mapping, inplace_position: int | None = None) -> bool:
    """``x.relu_()``, ``torch.relu_(x)``, ``F.relu(x, inplace=True)``, ``F.leaky_relu(x, 0.1, True)``."""
    name = getattr(func, "__name__", "")
    if name.endswith("_") and not name.endswith("__"):
        return True
    if kwargs.get("inplace", False):
        return True
    return inplace_position is not None and len(args) > inplace_position and bool(args[inplace_position])


def out_of_place(func: Callable, args: tuple, kwargs: Mapping, x: Tensor, inplace_position: int | None = None) -> Tensor:
    """Call ``func`` with ``x`` as its first argument, never modifying ``x`` in place."""
    args = (x,) + tuple(args[1:])
    if is_inplace_call(func, args, kwargs, inplace_position):
        return func(x.clone(), *args[1:], **kwargs)
    return func(*args, **kwargs)


def write_back(func: Callable, args: tuple, kwargs: Mapping, result: Tensor, inplace_position: int | None = None) -> Tensor:
    """Give in-place calls their in-place effect: copy ``result`` into the original input and return it."""
    if is_inplace_call(func, args, kwargs, inplace_position):
        x = args[0]
        x.copy_(result)
        return x
    return result


class FunctionRules(TorchFunctionMode):
    """Context manager applying ``rules`` (a mapping ``torch function -> rule``) to every call inside it.

    Functions not in ``rules`` run unchanged. ``forbidden`` maps functions to an error message: calling one
    raises ``ValueError`` (for operations a rule cannot handle, rather than returning a wrong attribution).
    """

    def __init__(self, rules: Mapping[Callable, Rule], forbidden: Mapping[Callable, str] | None = None):
        super().__init__()
        self.rules = dict(rules)
        self.forbidden = dict(forbidden or {})

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        rule = self.rules.get(func)
        if rule is not None:
            return rule(func, args, kwargs)
        if func in self.forbidden:
            msg = self.forbidden[func]
            if msg:
                raise ValueError(msg)
        return func(*args, **kwargs)


class LayerTap:
    """Context manager on a module: captures its output (or input), and can replace it.

    Args:
        module: the layer.
        attribute_to_input: capture the layer's input (first positional argument, or all of them as a tuple if
            there are several) instead of its output.
        leaf: make the captured tensor a fresh leaf that requires grad (the graph upstream of the layer is cut,
            so gradients with respect to the layer cost no backward pass through earlier layers).
        replace: a tensor (or tuple, or callable ``captured -> replacement``) substituted for the captured value.

    After a forward pass, ``tap.value`` holds the captured tensor (a tuple if the module has several
    inputs/outputs) and ``tap.values`` every call's value if the module ran more than once.
    """

    def __init__(
        self,
        module: nn.Module,
        attribute_to_input: bool = False,
        leaf: bool = False,
        replace: Any = None,
    ):
        if not isinstance(module, nn.Module):
            raise TypeError(f"layer must be a torch.nn.Module; received {type(module).__name__}")
        self.module = module
        self.attribute_to_input = attribute_to_input
        self.leaf = leaf
        self.replace = replace
        self.values: list[Any] = []
        self._handle = None

    @property
    def value(self) -> Any:
        if not self.values:
            raise RuntimeError(f"layer {type(self.module).__name__} was not called during the forward pass")
        if len(self.values) > 1:
            raise RuntimeError(
                f"layer {type(self.module).__name__} was called {len(self.values)} times in one forward pass; "
                "attribution to a reused layer is ambiguous: tap a layer that runs once"
            )
        return self.values[0]

    def _transform(self, value: Any) -> Any:
        if self.replace is not None:
            new = self.replace(value) if callable(self.replace) else self.replace
        elif self.leaf:
            new = _map(value, lambda t: t.detach().requires_grad_(True) if torch.is_floating_point(t) else t)
        else:
            new = value
        self.values.append(new)
        return new

    def _forward_hook(self, module, args, output):
        new = self._transform(output)
        return None if new is output else new

    def _pre_hook(self, module, args):
        value = args[0] if len(args) == 1 else tuple(args)
        new = self._transform(value)
        if new is value:
            return None
        return (new,) if len(args) == 1 else tuple(new)

    def __enter__(self) -> "LayerTap":
        self.values = []
        if self.attribute_to_input:
            self._handle = self.module.register_forward_pre_hook(self._pre_hook)
        else:
            self._handle = self.module.register_forward_hook(self._forward_hook)
        return self

    def __exit__(self, *exc) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None


def _map(value: Any, fn: Callable[[Tensor], Tensor]) -> Any:
    if isinstance(value, Tensor):
        return fn(value)
    if isinstance(value, tuple):
        return tuple(_map(v, fn) for v in value)
    if isinstance(value, list):
        return [_map(v, fn) for v in value]
    return value
