"""Several targets per example in one call: a 2-D ``target`` of shape ``(N, K)``.

Beyond Captum (DESIGN section 5): ``method.attribute(x, target=torch.tensor([[0, 1], [2, 3]]))`` attributes
``K`` outputs of each example and returns attributions with an extra dimension after the batch, ``(N, K, ...)``
(and a convergence delta ``(N, K)``). It works for every method: the examples are repeated ``K`` times
(example-major), together with per-example baselines, masks and extra forward arguments, the target is flattened,
the method runs once over all ``N * K`` examples (so the batcher fills its chunks across targets), and the results
are folded back. Every :class:`~pellucid.attr.Attribution` subclass gets this automatically.

The same wrapper is every method's entry point, so it also runs the checks of a *user's* call once, at the
outermost ``attribute`` (a method that runs another inside, e.g. a layer method running IG on activations, is
not checked again): see :func:`pellucid.attr._base.check_user_call`.
"""
from __future__ import annotations

import functools
import inspect
import threading
from typing import Any, Callable

from torch import Tensor

from ..core.host_memory import _state as _host_malloc_state, tune_host_malloc
from ..core.inputs import ForwardArgs

# arguments that may hold one row per example and must then be repeated with the examples
PER_EXAMPLE_ARGS = ("baselines", "feature_mask", "layer_baselines", "layer_mask", "sliding_window_shapes_mask")

_calls = threading.local()  # depth of nested attribute() calls in this thread


def _is_multi_target(target: Any) -> bool:
    return (
        isinstance(target, Tensor) and target.dim() == 2 and target.numel() > 1 and not target.dtype.is_floating_point
    )


def _repeat_rows(value: Any, n: int, k: int, is_batch: bool = False) -> Any:
    """Each example's rows repeated ``k`` times. A tensor whose dim 0 is ``n`` is taken as per-example; with
    ``n == 1`` that is ambiguous for arguments that broadcast (a batch-1 baseline), so only ``is_batch`` values
    (the inputs) are repeated then."""
    if isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == n and (n > 1 or is_batch):
        return value.repeat_interleave(k, dim=0)
    if isinstance(value, tuple):
        return tuple(_repeat_rows(v, n, k, is_batch) for v in value)
    if isinstance(value, list):
        return [_repeat_rows(v, n, k, is_batch) for v in value]
    return value


def _fold(value: Any, n: int, k: int) -> Any:
    if isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == n * k:
        return value.reshape((n, k) + tuple(value.shape[1:]))
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(_fold(v, n, k) for v in value)
    return value


def support_multi_target(attribute: Callable, distribution_baselines: bool = False) -> Callable:
    """Wrap an ``attribute`` method: the user-call checks at the outermost call, and a 2-D integer ``target``
    ``(N, K)`` handled as described above."""
    sig = inspect.signature(attribute)
    if "inputs" not in sig.parameters:
        return attribute
    has_target = "target" in sig.parameters
    var_kw = [p.name for p in sig.parameters.values() if p.kind is inspect.Parameter.VAR_KEYWORD]
    arguments_of = _argument_mapper(sig)

    @functools.wraps(attribute)
    def wrapper(self, *args: Any, **kwargs: Any):
        depth = getattr(_calls, "depth", 0)
        _calls.depth = depth + 1
        try:
            arguments = arguments_of(self, args, kwargs)
            if arguments is None:  # an unusual call (or a wrong one: bind raises Python's own TypeError)
                arguments = sig.bind(self, *args, **kwargs).arguments
            if depth == 0:
                from ._base import check_user_call

                if not _host_malloc_state["done"]:
                    tune_host_malloc()
                check_user_call(self, arguments, var_kw[0] if var_kw else None)
            if not (has_target and _is_multi_target(arguments.get("target"))):
                return attribute(self, *args, **kwargs)
            return _multi_target_call(attribute, self, sig.bind(self, *args, **kwargs), distribution_baselines)
        finally:
            _calls.depth = depth

    wrapper.__pellucid_multi_target__ = True  # type: ignore[attr-defined]
    return wrapper


def _argument_mapper(sig: inspect.Signature) -> Callable[[Any, tuple, dict], "dict | None"]:
    """A fast ``sig.bind(self, *args, **kwargs).arguments`` (the same dict: given arguments only, extra keywords
    under the ``**`` parameter's name) for the calls every method sees; ``None`` for anything it does not
    handle (``*args`` parameters, too many positionals, a repeated or unknown keyword, a missing required
    argument), where the caller falls back to ``sig.bind``. Binding costs ~20 us per call; this ~2 us."""
    kinds = inspect.Parameter
    params = list(sig.parameters.values())
    positional = [p.name for p in params if p.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD)]
    keyword = {p.name for p in params if p.kind in (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY)}
    required = [p.name for p in params if p.default is p.empty and p.kind not in (kinds.VAR_POSITIONAL, kinds.VAR_KEYWORD)]
    var_kw = next((p.name for p in params if p.kind is kinds.VAR_KEYWORD), None)
    if any(p.kind is kinds.VAR_POSITIONAL for p in params) or not positional:
        return lambda self, args, kwargs: None

    def arguments_of(self: Any, args: tuple, kwargs: dict) -> dict | None:
        if len(args) >= len(positional):
            return None
        out = dict(zip(positional, (self,) + args))
        extra = {}
        for name, value in kwargs.items():
            if name in out:
                return None
            if name in keyword:
                out[name] = value
            elif var_kw is not None:
                extra[name] = value
            else:
                return None
        for name in required:
            if name not in out:
                return None
        if extra:
            out[var_kw] = extra
        return out

    return arguments_of


def _multi_target_call(attribute: Callable, self: Any, bound: inspect.BoundArguments,
                       distribution_baselines: bool) -> Any:
    """Run ``attribute`` once over the ``N * K`` (example, target) pairs of a 2-D target and fold the result."""
    target = bound.arguments["target"]
    inputs = bound.arguments["inputs"]
    first = inputs[0] if isinstance(inputs, (tuple, list)) and inputs else inputs
    if not isinstance(first, Tensor):
        return attribute(*bound.args, **bound.kwargs)
    n, k = first.shape[0], target.shape[1]
    if target.shape[0] != n:
        raise ValueError(f"a 2-D target must have shape (N, K) with N = {n} examples; received {tuple(target.shape)}")
    arguments = dict(bound.arguments)
    arguments.pop("self")
    arguments["inputs"] = _repeat_rows(tuple(inputs) if isinstance(inputs, (tuple, list)) else inputs, n, k,
                                       is_batch=True)
    arguments["target"] = target.reshape(-1)
    for name in PER_EXAMPLE_ARGS:
        if name in arguments and not (name == "baselines" and distribution_baselines):
            arguments[name] = _repeat_rows(arguments[name], n, k)
    extra, kw = arguments.get("additional_forward_args"), arguments.get("forward_kwargs")
    if extra is not None or kw:
        fwd = ForwardArgs.make(extra, kw, n).repeat(k)
        if extra is not None:
            arguments["additional_forward_args"] = fwd.args
        if kw:
            arguments["forward_kwargs"] = fwd.kwargs
    var_kw = [p.name for p in bound.signature.parameters.values() if p.kind is inspect.Parameter.VAR_KEYWORD]
    extra_kwargs = arguments.pop(var_kw[0], {}) if var_kw else {}
    result = attribute(self, **arguments, **extra_kwargs)
    return _fold(result, n, k)


def install(cls: type) -> None:
    """Called for every Attribution subclass: wrap its own ``attribute`` once."""
    attribute = cls.__dict__.get("attribute")
    if attribute is None or getattr(attribute, "__pellucid_multi_target__", False):
        return
    setattr(cls, "attribute", support_multi_target(attribute, getattr(cls, "_distribution_baselines", False)))

