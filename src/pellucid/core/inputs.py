"""Normalisation of ``inputs``, ``baselines`` and extra forward arguments.

Every method works on tuples internally: ``inputs`` is a tensor or a tuple of tensors whose dim 0 is the batch
(``N``) and must agree. Results go back in the form they came in (tensor in, tensor out; tuple in, tuple out).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence, Union

import torch
from torch import Tensor

TensorOrTuple = Union[Tensor, tuple[Tensor, ...]]
BaselineType = Union[None, int, float, Tensor, tuple[Union[int, float, Tensor], ...]]


def format_inputs(inputs: Any, name: str = "inputs") -> tuple[tuple[Tensor, ...], bool]:
    """Return ``(tuple_of_tensors, was_tuple)`` after checking every element is a tensor with a common batch."""
    was_tuple = isinstance(inputs, (tuple, list))
    items = tuple(inputs) if was_tuple else (inputs,)
    if len(items) == 0:
        raise ValueError(f"{name} must be a tensor or a non-empty tuple of tensors; received an empty {type(inputs).__name__}")
    for i, t in enumerate(items):
        if not isinstance(t, Tensor):
            where = f"{name}[{i}]" if was_tuple else name
            raise TypeError(f"{where} must be a torch.Tensor; received {type(t).__name__}")
        if t.dim() == 0:
            where = f"{name}[{i}]" if was_tuple else name
            raise ValueError(f"{where} must have a batch dimension (dim 0); received a 0-d tensor")
        if t.layout != torch.strided:  # sparse COO/CSR/CSC/BSR/BSC: rows are built by dense indexing
            where = f"{name}[{i}]" if was_tuple else name
            raise TypeError(
                f"{where} is a sparse tensor (layout {t.layout}); attribution needs dense (strided) tensors: pass "
                f"{where}.to_dense() (a model that needs sparse input can convert back inside its forward)"
            )
    n = items[0].shape[0]
    for i, t in enumerate(items[1:], start=1):
        if t.shape[0] != n:
            raise ValueError(
                f"all {name} must share the batch size (dim 0); {name}[0] has {n} rows but {name}[{i}] has {t.shape[0]}"
            )
    if n == 0:  # one rule for every method: an empty batch is an error, never an empty result
        where = f"{name}[0]" if was_tuple else name
        raise ValueError(
            f"{name} has an empty batch: {where} has shape {tuple(items[0].shape)} (0 examples in dim 0); "
            "give at least one example"
        )
    return items, was_tuple


def restore_form(values: Sequence[Tensor], was_tuple: bool) -> TensorOrTuple:
    """Undo :func:`format_inputs`: a tuple if the user gave a tuple, else the single tensor."""
    values = tuple(values)
    return values if was_tuple else values[0]


def require_float(inputs: tuple[Tensor, ...], method: str) -> None:
    """Gradient methods need floating-point inputs; integer ids belong to an embedding layer."""
    for i, t in enumerate(inputs):
        if not torch.is_floating_point(t):
            raise TypeError(
                f"inputs[{i}] has dtype {t.dtype}; {method} differentiates the output with respect to its inputs and "
                "needs a floating-point tensor. For token ids attribute to the embedding layer instead "
                "(LayerIntegratedGradients(model, model.embedding))."
            )


def format_baselines(
    baselines: BaselineType, inputs: tuple[Tensor, ...], name: str = "baselines"
) -> tuple[Tensor, ...]:
    """One baseline tensor per input, broadcastable to it: ``(N, ...)`` or ``(1, ...)``.

    ``None`` means zeros; a number means that constant; a tensor of any dtype (bool included) whose shape
    broadcasts to the input's (trailing dims aligned, as in torch): the input's shape, batch 1, the shape without
    the batch, ``(N, 1, ...)``, a 0-d tensor, ... (returned expanded to ``(N or 1, *input.shape[1:])``). A tuple
    gives one of these per input.
    """
    if baselines is None:
        return tuple(torch.zeros((1,) + t.shape[1:], dtype=t.dtype, device=t.device) for t in inputs)
    if isinstance(baselines, (tuple, list)):
        items = tuple(baselines)
        if len(items) != len(inputs):
            raise ValueError(f"{name} has {len(items)} elements but there are {len(inputs)} inputs; give one per input")
    else:
        if len(inputs) != 1 and isinstance(baselines, Tensor):
            raise ValueError(f"{name} is a single tensor but there are {len(inputs)} inputs; give a tuple, one per input")
        items = (baselines,) * len(inputs)
    out = []
    for i, (b, x) in enumerate(zip(items, inputs)):
        where = f"{name}[{i}]" if len(inputs) > 1 or isinstance(baselines, (tuple, list)) else name
        if b is None:
            b = torch.zeros((1,) + x.shape[1:], dtype=x.dtype, device=x.device)
        elif isinstance(b, (int, float)) and not isinstance(b, bool):
            b = torch.full((1,) + x.shape[1:], float(b), dtype=x.dtype, device=x.device)
        elif isinstance(b, Tensor):
            # any dtype (bool included) is cast to a floating input's dtype; shapes broadcast to the input's as in
            # torch (trailing dims aligned): (N, 1), (1, C, 1, 1), the shape without the batch, a 0-d tensor, ...
            b = b.to(device=x.device, dtype=x.dtype if torch.is_floating_point(x) else b.dtype)
            try:
                fits = b.dim() <= x.dim() and torch.broadcast_shapes(b.shape, x.shape) == x.shape
            except RuntimeError:
                fits = False
            if not fits:
                raise ValueError(
                    f"{where} has shape {tuple(b.shape)}; expected the input's shape {tuple(x.shape)}, batch 1 "
                    f"{(1,) + tuple(x.shape[1:])} or a shape broadcastable to the input's (e.g. ({x.shape[0]}, 1, ...))"
                )
            b = b.reshape((1,) * (x.dim() - b.dim()) + tuple(b.shape))
            if b.shape[1:] != x.shape[1:]:
                b = b.expand((b.shape[0],) + tuple(x.shape[1:])).contiguous()
        else:
            raise TypeError(f"{where} must be None, a number or a tensor; received {type(b).__name__}")
        out.append(b)
    return tuple(out)


def format_distribution(baselines: Any, inputs: tuple[Tensor, ...], name: str = "baselines") -> tuple[Tensor, ...]:
    """Baselines given as a distribution (a tensor of samples ``(S, ...)`` per input, or a callable returning one)."""
    if callable(baselines) and not isinstance(baselines, Tensor):
        import inspect

        try:
            takes_inputs = len(inspect.signature(baselines).parameters) > 0
        except (TypeError, ValueError):
            takes_inputs = True
        if not takes_inputs:
            baselines = baselines()  # Captum also accepts a zero-argument callable
        else:
            baselines = baselines(*inputs) if len(inputs) > 1 else baselines(inputs[0])
    if baselines is None:
        baselines = tuple(torch.zeros((1,) + t.shape[1:], dtype=t.dtype, device=t.device) for t in inputs)
    items = tuple(baselines) if isinstance(baselines, (tuple, list)) else (baselines,)
    if len(items) != len(inputs):
        raise ValueError(f"{name} has {len(items)} elements but there are {len(inputs)} inputs; give one per input")
    out = []
    for i, (b, x) in enumerate(zip(items, inputs)):
        if isinstance(b, (int, float)) and not isinstance(b, bool):
            b = torch.full((1,) + x.shape[1:], float(b), dtype=x.dtype, device=x.device)
        if not isinstance(b, Tensor):
            raise TypeError(f"{name}[{i}] must be a tensor of baseline samples; received {type(b).__name__}")
        b = b.to(device=x.device, dtype=x.dtype)
        if b.shape[1:] != x.shape[1:]:
            raise ValueError(
                f"{name}[{i}] has shape {tuple(b.shape)}; expected samples of shape (S, {', '.join(map(str, x.shape[1:]))})"
            )
        out.append(b)
    s = out[0].shape[0]
    if any(b.shape[0] != s for b in out):
        raise ValueError(f"all {name} must have the same number of samples (dim 0)")
    return tuple(out)


def _take(value: Any, rows: Tensor, n: int) -> Any:
    if isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == n:
        return value.index_select(0, rows.to(value.device))
    return value


@dataclass
class ForwardArgs:
    """Extra arguments of ``model(*inputs, *args, **kwargs)``.

    ``additional_forward_args`` (Captum's positional extras) and ``forward_kwargs`` (keyword extras, e.g. an
    ``attention_mask``). Tensors whose dim 0 equals the batch size ``N`` belong to the examples and are indexed
    along with the rows built from them; everything else is passed unchanged.
    """

    args: tuple = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    n: int = 0

    @classmethod
    def make(cls, additional_forward_args: Any, forward_kwargs: Mapping[str, Any] | None, n: int) -> "ForwardArgs":
        if additional_forward_args is None:
            args: tuple = ()
        elif isinstance(additional_forward_args, tuple):
            args = additional_forward_args
        elif isinstance(additional_forward_args, list):
            args = tuple(additional_forward_args)
        else:
            args = (additional_forward_args,)
        if forward_kwargs is not None and not isinstance(forward_kwargs, Mapping):
            raise TypeError(f"forward_kwargs must be a dict of keyword arguments; received {type(forward_kwargs).__name__}")
        return cls(args, dict(forward_kwargs or {}), n)

    def rows(self, example_index: Tensor) -> tuple[tuple, dict]:
        """The arguments for rows that belong to ``example_index`` (a 1-D long tensor of example numbers)."""
        if not self.args and not self.kwargs:
            return (), {}
        args = tuple(_take(a, example_index, self.n) for a in self.args)
        kwargs = {k: _take(v, example_index, self.n) for k, v in self.kwargs.items()}
        return args, kwargs

    def repeat(self, times: int) -> "ForwardArgs":
        """Arguments for ``N * times`` examples laid out example-major (each example repeated ``times``)."""
        index = torch.arange(self.n).repeat_interleave(times)
        args, kwargs = self.rows(index)
        return ForwardArgs(args, kwargs, self.n * times)


def call_model(model: Callable, inputs: Sequence[Tensor], args: tuple = (), kwargs: Mapping | None = None) -> Any:
    return model(*inputs, *args, **(kwargs or {}))


def promote_integer_inputs(inputs: Any, baselines: Any) -> Any:
    """``inputs`` with every integer input whose baseline is floating-point (a Python float or a float tensor)
    converted to the promoted dtype (``torch.result_type``), in the same form (tensor or tuple). A float baseline
    of an integer input is then used as given (0.2 stays 0.2, not 0), and every row the model sees, the
    unperturbed one included, has the same dtype. Other inputs and baselines are returned as they are; malformed
    arguments are left for the usual checks to report."""
    was_tuple = isinstance(inputs, tuple)
    xs = inputs if was_tuple else (inputs,)
    if baselines is None or not all(isinstance(x, Tensor) for x in xs):
        return inputs
    bs = tuple(baselines) if isinstance(baselines, (tuple, list)) else (baselines,) * len(xs)
    if len(bs) != len(xs):
        return inputs
    out = []
    for x, b in zip(xs, bs):
        if x.is_floating_point() or x.is_complex():
            out.append(x)
        elif isinstance(b, float) or (isinstance(b, Tensor) and (b.is_floating_point() or b.is_complex())):
            out.append(x.to(torch.result_type(x, b)))
        else:
            out.append(x)
    return tuple(out) if was_tuple else out[0]
