"""Argument checks shared by methods: clear ``ValueError``/``TypeError`` messages naming the argument."""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence


INT64_MAX = 2**63 - 1  # counts and indices end up in int64 tensors


def check_positive_int(value: Any, name: str) -> int:
    """``value`` if it is an int in ``1 .. 2**63 - 1``, else a ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int; received {value!r}")
    if value > INT64_MAX:
        raise ValueError(f"{name} must be a positive int of at most 2**63 - 1; received {value!r}")
    return value


def check_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; received {value!r}")
    return value


def check_nonnegative(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{name} must be a non-negative number; received {value!r}")
    return float(value)


def check_generator(generator: Any, seed: Any = None):
    """A ``torch.Generator`` from ``generator=`` or ``seed=`` (None: the global RNG)."""
    import torch

    if generator is not None and seed is not None:
        raise ValueError("give either generator= or seed=, not both")
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator; received {type(generator).__name__}")
        return generator
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int; received {type(seed).__name__}")
        return torch.Generator().manual_seed(seed)
    return None


def check_forward_arguments(model: Any, inputs: Sequence[Any], args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    """A clear ``TypeError`` before any model call when ``model(*inputs, *additional_forward_args,
    **forward_kwargs)`` does not fit the signature of the model's ``forward`` (too many or too few positional
    arguments, an unknown keyword). Models whose signature cannot be read, or that take ``*args``/``**kwargs``, are
    not checked here (their own error surfaces when they are called)."""
    import torch

    fn = model.forward if isinstance(model, torch.nn.Module) else model
    sig = _signature(fn)
    if sig is None:
        return
    # whether a call binds depends only on the number of positionals and the keyword names: remember the fits
    key = (id(sig), len(inputs) + len(args), tuple(kwargs))
    if key in _FITS:
        return
    try:
        sig.bind(*inputs, *args, **kwargs)
        if len(_FITS) < 4096:
            _FITS[key] = sig  # the value keeps the signature (and so its id) alive
    except TypeError as e:
        keywords = f"forward_kwargs keys {sorted(kwargs)}" if kwargs else "no forward_kwargs"
        raise TypeError(
            f"the model is called as model(*inputs, *additional_forward_args, **forward_kwargs), which does not fit "
            f"its forward{sig}: {e}. Received {len(inputs)} input(s), {len(args)} additional_forward_args and "
            f"{keywords}"
        ) from None


_SIGNATURES: dict = {}
_FITS: dict = {}


def _signature(fn: Any) -> Any:
    """``inspect.signature(fn)`` (``None`` when it cannot be read), cached per underlying function: a bound
    method's signature does not depend on its instance, and reading it costs more than the rest of the checks."""
    import inspect

    key = (getattr(fn, "__func__", fn), hasattr(fn, "__self__"))
    try:
        return _SIGNATURES[key]
    except (KeyError, TypeError):  # TypeError: an unhashable callable
        pass
    try:
        sig = inspect.signature(fn)
    except Exception:  # noqa: BLE001 - builtins, scripted modules, ...: nothing to check against
        sig = None
    try:
        if len(_SIGNATURES) < 4096:
            _SIGNATURES[key] = sig
    except TypeError:
        pass
    return sig


def nonfinite_rows(x: Any) -> list[int]:
    """Row numbers (dim 0) of a floating-point tensor that hold NaN or Inf (``[]`` for anything else)."""
    import torch

    if not (isinstance(x, torch.Tensor) and torch.is_floating_point(x) and x.numel() and x.dim() > 0):
        return []
    # a sum is finite only if every term is (NaN and Inf propagate): ~10x cheaper than an elementwise test, which
    # runs only when the sum is not finite (a NaN/Inf, or an overflow of large values)
    if math.isfinite(x.sum(dtype=torch.float64 if x.dtype == torch.float64 else torch.float32).item()):
        return []
    return (~torch.isfinite(x).reshape(x.shape[0], -1).all(1)).nonzero().flatten().tolist()


def warn_nonfinite(values: Sequence[Any], name: str = "inputs", stacklevel: int = 3, unit: str = "example") -> None:
    """The library's rule for NaN/Inf inputs (and baselines): they propagate, in every method, and a
    ``RuntimeWarning`` names the argument (``inputs[i]`` for a tuple) and the rows (dim 0) concerned. Rows are
    independent in every method but the permutation methods, so only the attributions computed from these rows
    become non-finite."""
    import warnings

    for i, x in enumerate(values):
        bad = nonfinite_rows(x)
        if bad:
            where = f"{name}[{i}]" if len(values) > 1 else name
            shown = ", ".join(map(str, bad[:10])) + (", ..." if len(bad) > 10 else "")
            warnings.warn(
                f"{where} contains NaN or Inf values ({unit}(s) {shown}); attributions computed from them will be NaN "
                "or Inf unless the model maps such values to finite outputs",
                RuntimeWarning,
                stacklevel=stacklevel,
            )


def input_mismatch_note(model: Any, inputs: Sequence[Any], name: str = "inputs") -> str | None:
    """A hint for an error raised by the model when an input's device or dtype differs from the model's
    (floating-point) parameters, e.g. CPU inputs to a CUDA model, or float64 / integer inputs to a float32 model;
    ``None`` when they agree."""
    import torch

    if not isinstance(model, torch.nn.Module):
        return None
    params = [p for p in model.parameters() if torch.is_floating_point(p)]
    devices, dtypes = {p.device for p in params}, {p.dtype for p in params}
    for i, x in enumerate(inputs):
        if not isinstance(x, torch.Tensor):
            continue
        where = f"{name}[{i}]" if len(inputs) > 1 else name
        if len(devices) == 1 and x.device not in devices:
            (want,) = devices
            return (
                f"pellucid: {where} is on {x.device} but the model's parameters are on {want}; if the error above is "
                f"about devices, move the inputs (x.to('{want}')) or the model"
            )
        if len(dtypes) == 1 and x.dtype not in dtypes:
            (want,) = dtypes
            return (
                f"pellucid: {where} has dtype {x.dtype} but the model's parameters are {want}; if the error above is "
                f"about dtypes, convert the inputs (x.to({want})) or the model"
            )
    return None
