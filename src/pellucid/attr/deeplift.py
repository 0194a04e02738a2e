"""DeepLIFT with the rescale rule (Shrikumar, Greenside & Kundaje, 2017, "Learning Important Features Through
Propagating Activation Differences", arXiv:1704.02685) and DeepLIFT-SHAP (Lundberg & Lee, 2017, arXiv:1705.07874).

Multipliers replace gradients through nonlinearities: for an elementwise ``y = f(x)`` with reference ``x0``,
``m = (f(x) - f(x0)) / (x - x0)`` (the gradient where ``|x - x0| < eps``); for max pooling (and ``torch.max`` /
``torch.min`` over a dim) the output difference goes to the winning input of whichever of ``x`` and ``x0`` has the
larger maximum, divided by that input's difference. Linear operations keep their gradient. So
``sum(m * (x - x0)) = F(x) - F(x0)`` (summation-to-delta) for networks of linear maps, elementwise
nonlinearities and max pooling.

Mechanism: per chunk, a reference pass on the baselines records the input of every nonlinearity call (in call
order) and the input pass replaces each call's backward by its multiplier. Calls are intercepted at the torch
function level, so functional activations (``F.relu``, ``torch.relu``, ``x.relu()``), in-place ones and a module
used twice are all handled. The calls must come in the same order for inputs and baselines (no data-dependent
control flow), else a clear error is raised. Each rule computes its multiplier (or, for max pooling, its
per-window weights) once in the forward, so its backward is one multiply (a scatter for pooling); on the CPU, 2-D
max pooling runs on a channels-last copy (same winners, 2-3x faster). Operations whose rule is not defined
(``torch.amax``, ``torch.maximum``, ``torch.topk``, ...) raise ``ValueError``. Multiplicative interactions between activations
(attention's ``softmax(QK^T) V``, gating, LayerNorm) keep their gradient, as in Captum: summation-to-delta then
holds only approximately, and ``return_convergence_delta`` reports the gap.
Softmax is treated as an elementwise map (``m_i = dy_i / dx_i``), which conserves the summed difference.
"""
from __future__ import annotations

import inspect
from contextlib import contextmanager
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.errors import check_nonnegative
from ..core.hooks import FunctionRules, is_inplace_call, out_of_place, write_back
from ..core.inputs import BaselineType, TensorOrTuple, format_baselines, format_distribution, restore_form
from ..core.targets import TargetType
from ._base import Attribution, Call, attribution_sum, rows_of

T = torch.Tensor
# elementwise nonlinearities -> position of their positional `inplace` argument (None: no such argument)
ELEMENTWISE: dict[Callable, int | None] = {
    F.relu: 1, torch.relu: None, T.relu: None, torch.relu_: None, T.relu_: None, F.relu_: None,
    F.relu6: 1, F.elu: 2, F.elu_: None, F.selu: 1, F.celu: 2, F.leaky_relu: 2, F.leaky_relu_: None,
    F.hardtanh: 3, F.hardtanh_: None, F.silu: 1, F.hardswish: 1, F.hardsigmoid: 1, F.mish: 1,
    F.softplus: None, F.gelu: None, F.logsigmoid: None, F.softsign: None, F.tanhshrink: None,
    torch.sigmoid: None, T.sigmoid: None, torch.sigmoid_: None, T.sigmoid_: None,
    torch.tanh: None, T.tanh: None, torch.tanh_: None, T.tanh_: None,
    torch.exp: None, T.exp: None, torch.abs: None, T.abs: None,
    F.softmax: None, torch.softmax: None, T.softmax: None, F.log_softmax: None, torch.log_softmax: None,
    T.log_softmax: None,
}
# max pooling: names of positional parameters, and the number of pooled dims
POOLS: dict[Callable, tuple[tuple[str, ...], int]] = {}
_POOL_PARAMS = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
_ADAPTIVE_PARAMS = ("input", "output_size", "return_indices")
for _d, (_p, _a) in enumerate(
    [(F.max_pool1d, F.adaptive_max_pool1d), (F.max_pool2d, F.adaptive_max_pool2d), (F.max_pool3d, F.adaptive_max_pool3d)],
    start=1,
):
    POOLS[_p] = (_POOL_PARAMS, _d)
    POOLS[_a] = (_ADAPTIVE_PARAMS, _d)
POOLS[torch.max_pool1d] = (_POOL_PARAMS[:-1], 1)
POOLS[torch.max_pool2d] = (_POOL_PARAMS[:-1], 2)
POOLS[torch.max_pool3d] = (_POOL_PARAMS[:-1], 3)
_WITH_INDICES = {1: (F.max_pool1d, F.adaptive_max_pool1d), 2: (F.max_pool2d, F.adaptive_max_pool2d),
                 3: (F.max_pool3d, F.adaptive_max_pool3d)}
REDUCTIONS = {torch.max: "max", T.max: "max", torch.min: "min", T.min: "min"}
UNSUPPORTED = {
    f: f"DeepLift has no rule for {name}: use torch.max(x, dim)/max pooling, which it supports"
    for f, name in [
        (torch.amax, "torch.amax"), (T.amax, "Tensor.amax"), (torch.amin, "torch.amin"), (T.amin, "Tensor.amin"),
        (torch.maximum, "torch.maximum"), (T.maximum, "Tensor.maximum"), (torch.minimum, "torch.minimum"),
        (T.minimum, "Tensor.minimum"), (torch.topk, "torch.topk"), (T.topk, "Tensor.topk"),
        (torch.sort, "torch.sort"), (T.sort, "Tensor.sort"), (torch.median, "torch.median"),
        (T.median, "Tensor.median"), (torch.kthvalue, "torch.kthvalue"), (T.kthvalue, "Tensor.kthvalue"),
        (F.fractional_max_pool2d, "F.fractional_max_pool2d"), (F.lp_pool2d, "F.lp_pool2d"),
    ]
}


class _LayoutMismatch(Exception):
    """A reference recorded on one baseline row does not broadcast to the inputs' rows (the model merges the batch
    with another dim): the chunk is redone with a reference pass on every row."""


def _broadcast_to(t: Tensor, shape: torch.Size) -> Tensor:
    """``t`` expanded to ``shape`` (a view), for references recorded on one shared baseline row."""
    if t.shape == shape:
        return t
    if t.dim() == len(shape) and all(a == b or a == 1 for a, b in zip(t.shape, shape)):
        return t.expand(shape)
    raise _LayoutMismatch


class _References:
    """Inputs of nonlinearity calls recorded on the baselines, consumed in the same order on the inputs.

    ``shared``: the reference pass ran on one baseline row that every example shares (a batch-1 baseline, no
    per-example forward arguments); rows are independent, so each recorded tensor, whose batch dim then has size 1,
    broadcasts to the inputs' rows exactly as the same row repeated would (see :func:`deeplift_multipliers`)."""

    def __init__(self, shared: bool = False) -> None:
        self.shared = shared
        self.calls: list[tuple[Callable, Tensor, int, Any]] = []
        self.pos = 0
        self.output: tuple[Tensor, Tensor | None] | None = None  # recorded (output, pool indices) of the last next()

    def record(self, func: Callable, args: tuple, kwargs: Mapping) -> Any:
        x = args[0]
        inplace = is_inplace_call(func, args, kwargs, ELEMENTWISE.get(func))
        saved, version = (x.detach().clone(), -1) if inplace else (x.detach(), x._version)
        # the outputs are kept too (pools with their winners), so the input pass need not recompute them
        if func in POOLS:
            y, idx, _, wants = _pool_with_indices(func, args, kwargs)
            self.calls.append((func, saved, version, (y, idx, y._version)))
            return (y, idx) if wants else y
        out = func(*args, **kwargs)
        kept = (out, None, out._version) if isinstance(out, Tensor) and not inplace else None
        self.calls.append((func, saved, version, kept))
        return out

    def next(self, func: Callable, x: Tensor) -> Tensor:
        name = getattr(func, "__name__", str(func))
        if self.pos >= len(self.calls):
            raise RuntimeError(
                f"DeepLift: the forward on the inputs called {name} more often than the forward on the baselines; "
                "the model's sequence of nonlinearities depends on the data, so inputs and baselines cannot be paired"
            )
        f0, x0, version, kept = self.calls[self.pos]
        # consumed: the list lets go of the recorded tensors, so their memory is free for the rest of the pass
        self.calls[self.pos] = (f0, None, version, None)
        self.pos += 1
        # usable unless the model changed the recorded output in place after the call
        self.output = kept[:2] if kept is not None and kept[0]._version == kept[2] else None
        if f0 is func and x0.shape != x.shape and self.shared:
            x0 = _broadcast_to(x0, x.shape)
        if f0 is not func or x0.shape != x.shape:
            raise RuntimeError(
                f"DeepLift: nonlinearity call {self.pos} is {name}{tuple(x.shape)} on the inputs but "
                f"{getattr(f0, '__name__', f0)}{tuple(x0.shape)} on the baselines; the model's control flow depends "
                "on the data, so inputs and baselines cannot be paired"
            )
        if version >= 0 and x0._version != version:
            raise RuntimeError(f"DeepLift: the baseline input of {name} was modified in place after the call")
        return x0

    def check_done(self) -> None:
        if self.pos != len(self.calls):
            raise RuntimeError(
                f"DeepLift: the forward on the baselines made {len(self.calls)} nonlinearity calls but the forward "
                f"on the inputs only {self.pos}; the model's control flow depends on the data"
            )


SOFTMAX = {F.softmax, torch.softmax, T.softmax}
LOG_SOFTMAX = {F.log_softmax, torch.log_softmax, T.log_softmax}


RELU = {F.relu, torch.relu, T.relu, torch.relu_, T.relu_, F.relu_}


def _elementwise_derivative(compute: Callable[[Tensor], Tensor], x: Tensor, func: Callable | None = None,
                            y: Tensor | None = None) -> Tensor:
    """``dy_i/dx_i`` of the map treated elementwise: autograd for elementwise functions (ReLU's ``x > 0`` directly);
    the Jacobian's diagonal for softmax (``y(1 - y)``) and log-softmax (``1 - softmax``), whose column sums
    autograd would give instead. ``y``: the map's output at ``x`` if already computed."""
    if func in RELU:
        return (x.detach() > 0).to(x.dtype)
    if func in SOFTMAX or func in LOG_SOFTMAX:
        with torch.no_grad():
            if y is None:
                y = compute(x.detach())
            p = y if func in SOFTMAX else y.exp()
            return p * (1 - p) if func in SOFTMAX else 1 - p
    with torch.enable_grad():
        t = x.detach().requires_grad_(True)
        (d,) = torch.autograd.grad(compute(t).sum(), t)
    return d


class _Multiplied(torch.autograd.Function):
    """The output ``value`` of a ruled call, whose gradient flows to its input ``x`` as ``grad * backward`` (a
    multiplier computed in the forward, so the backward is one multiply) or ``backward(grad)`` (a callable)."""

    @staticmethod
    def forward(ctx, x: Tensor, value: list, backward: Tensor | Callable[[Tensor], Tensor]) -> Tensor:
        ctx.rule_backward = backward
        # handed over in a list, the value is not an input of the Function: the output is not a view and later
        # code may modify it in place (an nn.ReLU(inplace=True) after the call)
        return value.pop()

    @staticmethod
    def backward(ctx, grad: Tensor):
        b = ctx.rule_backward
        return (grad * b if isinstance(b, Tensor) else b(grad)), None, None


def _ruled(x: Tensor, value: Tensor, backward: Tensor | Callable[[Tensor], Tensor]) -> Tensor:
    """``value``, a tensor the rule has just computed and gives away (no copy is made), with the gradient to ``x``
    given by ``backward`` (see :class:`_Multiplied`); ``value`` itself when no gradient flows to ``x``."""
    if not (torch.is_grad_enabled() and x.requires_grad):
        return value
    return _Multiplied.apply(x, [value], backward)


def _rescale_multiplier(func: Callable, compute: Callable[[Tensor], Tensor], x: Tensor, x0: Tensor, y: Tensor,
                        y0: Tensor, eps: float) -> Tensor:
    """``m = (y - y0) / (x - x0)`` elementwise, with ``dy/dx`` at ``x`` where ``|x - x0| < eps``: the rescale
    multiplier (no autograd; ``x`` detached). The difference quotient takes three passes; ``|x - x0|`` is then
    made in place in the buffer of ``x - x0`` and one more pass gives its minimum per row of the last dim. Rows
    holding an entry below ``eps`` (0/0 and tiny ``|dx|``; usually few, e.g. attention logits that a padding mask
    makes equal) get the derivative there, computed on those rows only (the maps are elementwise; softmax's
    diagonal is ``y(1 - y)``) and written into ``m`` in place."""
    dx = torch.sub(x, x0)
    m = torch.sub(y, y0).div_(dx)
    if dx.numel() == 0:
        return m
    width = dx.shape[-1] if dx.dim() > 0 else 1
    adx = dx.abs_().reshape(-1, width)
    row_min = adx.amin(1)
    if not bool(row_min.amin() < eps):
        return m
    rows = (row_min < eps).nonzero().squeeze(1)
    m = m.contiguous()
    m_rows = m.view(-1, width)
    derivative = _elementwise_derivative(compute, x.reshape(-1, width).index_select(0, rows), func,
                                         y.reshape(-1, width).index_select(0, rows))
    fixed = torch.where(adx.index_select(0, rows) < eps, derivative.to(m.dtype), m_rows.index_select(0, rows))
    m_rows.index_copy_(0, rows, fixed)
    return m


def rescale_rule(refs: _References, eps: float) -> Callable:
    def rule(func: Callable, args: tuple, kwargs: dict) -> Tensor:
        x, pos = args[0], ELEMENTWISE[func]
        x0 = refs.next(func, x)
        if not (torch.is_grad_enabled() and x.requires_grad):
            return func(*args, **kwargs)  # no gradient flows through this call: no multiplier is needed

        def compute(t: Tensor) -> Tensor:
            return out_of_place(func, args, kwargs, t, pos)

        y0 = refs.output[0] if refs.output is not None else None
        with torch.no_grad():
            xd = x.detach()
            y = compute(xd)  # a new tensor (in-place calls run on a copy), handed out as the call's output
            if y0 is None:
                y0 = compute(x0)
            elif y0.shape != y.shape:
                y0 = _broadcast_to(y0, y.shape)
            m = _rescale_multiplier(func, compute, xd, x0, y, y0, eps)
        return write_back(func, args, kwargs, _ruled(x, y, m), pos)

    return rule


# max pooling over 2-D windows on the CPU runs 2-4x faster on a channels-last copy when there are a few channels or
# more (same kernel logic: first maximum of the window in scan order, NaN wins; identical values and indices)
_CHANNELS_LAST_MIN_CHANNELS = 8


def _pool_with_indices(func: Callable, args: tuple, kwargs: Mapping) -> tuple[Tensor, Tensor, int, bool]:
    names, dims = POOLS[func]
    bound = dict(zip(names, args))
    bound.update(kwargs)
    wants = bool(bound.pop("return_indices", False))
    x = bound.pop("input")
    plain, adaptive = _WITH_INDICES[dims]
    fn = adaptive if "output_size" in bound else plain
    if (fn is F.max_pool2d and x.dim() == 4 and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
            and x.shape[1] >= _CHANNELS_LAST_MIN_CHANNELS and x.is_contiguous()
            and not x.is_contiguous(memory_format=torch.channels_last)):
        y, idx = fn(x.contiguous(memory_format=torch.channels_last), **bound, return_indices=True)
        return y.contiguous(), idx.contiguous(), dims, wants
    y, idx = fn(x, **bound, return_indices=True)
    return y, idx, dims, wants


def _quotient_(num: Tensor, dx: Tensor, eps: float, fallback: float) -> Tensor:
    """``num / dx`` (in ``num``'s buffer), ``fallback`` where ``|dx| < eps`` (``dx``'s buffer becomes ``|dx|``)."""
    q = num.div_(dx)
    if dx.numel() > 0:
        dx = dx.abs_()
        if bool(dx.amin() < eps):
            q = q.masked_fill_(dx < eps, fallback)
    return q


def _winner_backward(x: Tensor, x0: Tensor, y: Tensor, y0: Tensor, ix: Tensor, i0: Tensor, eps: float, use_max: bool,
                     flat: Callable[[Tensor], Tensor], dim: int) -> Callable[[Tensor], Tensor]:
    """Backward for ``y = max/min`` over groups: per group, ``dy`` times the part of ``y - y0`` that is ``x``'s
    (``max(y, y0) - y0 = max(y - y0, 0)`` for max) goes to ``x``'s winner and the rest (``y - max(y, y0) =
    min(y - y0, 0)``) to the baseline's winner, each divided by ``x - x0`` at that winner. Where ``|x - x0| < eps``
    at a winner, ``x``'s winner gets the plain gradient ``dy`` and the baseline's winner nothing. Everything is
    computed per group (output-sized, gathered at the winners), so the only input-sized work is the final
    scatter, as in max pooling's own backward; the baseline's winners are skipped when no group has a rest."""
    with torch.no_grad():
        ixf, i0f = flat(ix), flat(i0)
        d = flat(y.detach()) - flat(y0)
        part_x = d.clamp_min(0) if use_max else d.clamp_max(0)
        part_b = d.sub_(part_x)
        # x - x0 at x's winner (x there is y) and at the baseline's winner (x0 there is y0)
        w_ix = _quotient_(part_x, flat(y.detach()) - flat(x0.detach()).gather(dim, ixf), eps, 1.0)
        w_i0 = None
        if bool(part_b.any()):
            w_i0 = _quotient_(part_b, flat(x.detach()).gather(dim, i0f) - flat(y0), eps, 0.0)
    xf_shape = flat(x).shape

    def backward(g: Tensor) -> Tensor:
        gf = flat(g)
        out = torch.zeros(xf_shape, dtype=g.dtype, device=g.device)
        out.scatter_add_(dim, ixf, gf * w_ix)
        if w_i0 is not None:
            out.scatter_add_(dim, i0f, gf * w_i0)
        return out.reshape(x.shape)

    return backward


def maxpool_rule(refs: _References, eps: float) -> Callable:
    def rule(func: Callable, args: tuple, kwargs: dict) -> Any:
        x = args[0]
        x0 = refs.next(func, x)
        recorded = refs.output
        if not (torch.is_grad_enabled() and x.requires_grad):
            return func(*args, **kwargs)  # no gradient flows through this call
        with torch.no_grad():
            y, ix, dims, wants = _pool_with_indices(func, (x.detach(),) + tuple(args[1:]), kwargs)
            if recorded is not None:
                y0, i0 = recorded
                if y0.shape != y.shape:
                    y0, i0 = _broadcast_to(y0, y.shape), _broadcast_to(i0, y.shape)
            else:
                y0, i0, _, _ = _pool_with_indices(func, (x0,) + tuple(args[1:]), kwargs)
        lead = x.dim() - dims

        def flat(t: Tensor) -> Tensor:
            return t.reshape(tuple(t.shape[:lead]) + (-1,))

        out = _ruled(x, y, _winner_backward(x, x0, y, y0, ix, i0, eps, True, flat, lead))
        return (out, ix) if wants else out

    return rule


def reduction_rule(refs: _References, eps: float) -> Callable:
    def rule(func: Callable, args: tuple, kwargs: dict) -> Any:
        x = args[0]
        kind = REDUCTIONS[func]
        rest = dict(zip(("dim", "keepdim"), args[1:]))
        rest.update(kwargs)
        if isinstance(rest.get("dim"), Tensor) or "other" in rest:
            raise ValueError(f"DeepLift has no rule for the elementwise torch.{kind}imum of two tensors")
        if "dim" not in rest:
            raise ValueError(
                f"DeepLift: torch.{kind}(x) without dim reduces over the whole batch; use torch.{kind}(x, dim)"
            )
        dim, keepdim = rest["dim"] % x.dim(), bool(rest.get("keepdim", False))
        x0 = refs.next(func, x)
        reducer = torch.max if kind == "max" else torch.min
        with torch.no_grad():
            y, ix = reducer(x.detach(), dim, keepdim=True)
            y0, i0 = reducer(x0, dim, keepdim=True)
        out = _ruled(x, y, _winner_backward(x, x0, y, y0, ix, i0, eps, kind == "max", lambda t: t, dim))
        idx = ix
        if not keepdim:
            out, idx = out.squeeze(dim), ix.squeeze(dim)
        return (torch.return_types.max if kind == "max" else torch.return_types.min)((out, idx))

    return rule


_RULED = (*ELEMENTWISE, *POOLS, *REDUCTIONS)


@contextmanager
def recording(refs: _References):
    """Record the inputs of every nonlinearity call (the reference pass)."""
    with FunctionRules(dict.fromkeys(_RULED, refs.record), UNSUPPORTED):
        yield refs


@contextmanager
def rescaling(refs: _References, eps: float):
    """Apply the DeepLIFT multipliers in the backward pass (the input pass)."""
    rules: dict[Callable, Callable] = dict.fromkeys(ELEMENTWISE, rescale_rule(refs, eps))
    rules.update(dict.fromkeys(POOLS, maxpool_rule(refs, eps)))
    rules.update(dict.fromkeys(REDUCTIONS, reduction_rule(refs, eps)))
    with FunctionRules(rules, UNSUPPORTED):
        yield
    refs.check_done()


def deeplift_multipliers(
    call: Call,
    n_rows: int,
    build: Callable[[Tensor], tuple[tuple[Tensor, ...], tuple[Tensor, ...], Tensor]],
    consume: Callable[[Tensor, Tensor, tuple[Tensor, ...], tuple[Tensor, ...], tuple[Tensor, ...], Tensor, Tensor], None],
    eps: float,
    tag: str,
) -> None:
    """The DeepLIFT loop: ``build(rows) -> (input_rows, baseline_rows, example_index)``; the multipliers of each
    chunk go to ``consume(rows, ex, multipliers, input_rows, baseline_rows, F(inputs), F(baselines))``."""
    fwd, model = call.ev.fwd, call.ev.model
    per_example_args = any(isinstance(v, Tensor) and v.dim() > 0 and v.shape[0] == fwd.n
                           for v in (*fwd.args, *fwd.kwargs.values()))
    # one reference row for all examples when they share it: baseline rows that are one row expanded (a batch-1
    # baseline, stride 0), no per-example forward arguments and a module in eval mode (in training mode, e.g.
    # BatchNorm, rows are not independent); the reference pass on that row gives every example's references
    # (broadcast), at 1/N of the cost
    rows_independent = isinstance(model, torch.nn.Module) and not any(m.training for m in model.modules())
    state: dict[str, Any] = {"share": rows_independent and not per_example_args, "consumed": False}

    def build_inputs(rows: Tensor):
        xs, bs, ex = build(rows)
        state.update(xs=xs, bs=bs)
        return xs, ex

    @contextmanager
    def context(xs: tuple[Tensor, ...], ex: Tensor):
        bs, n = state["bs"], ex.shape[0]
        refs = None
        if state["share"] and n > 1 and all(b.dim() > 0 and b.shape[0] == n and b.stride(0) == 0 for b in bs):
            refs = _References(shared=True)
            with torch.no_grad(), recording(refs):
                out = call.ev.run(tuple(b[:1].clone() for b in bs), ex[:1])
            if isinstance(out, Tensor) and out.dim() > 0 and out.shape[0] == 1:
                state["f_b"] = call.ev.target.select(out.expand((n,) + tuple(out.shape[1:])), ex)
            else:  # an output without a batch dim to broadcast: the usual reference pass
                refs, state["share"] = None, False
        if refs is None:
            refs = _References()
            with torch.no_grad(), recording(refs):
                # the model gets copies: it may write its input in place, and the baseline rows are needed afterwards
                state["f_b"] = call.ev.target.select(call.ev.run(tuple(b.clone() for b in bs), ex), ex)
        with rescaling(refs, eps):
            yield

    def on_grads(rows: Tensor, ex: Tensor, grads: tuple[Tensor, ...], score: Tensor) -> None:
        state["consumed"] = True
        consume(rows, ex, grads, state["xs"], state["bs"], score, state["f_b"])

    try:
        call.ev.grad_rows(n_rows, build_inputs, on_grads, call.inputs, tag=tag, context=context)
    except _LayoutMismatch:
        if state["consumed"]:  # cannot happen (the first chunk of more than one row fails), but never add twice
            raise RuntimeError("DeepLift: the model's layout of the batch changed between chunks") from None
        state["share"] = False  # the model merges the batch with another dim: a reference pass on every row
        call.ev.grad_rows(n_rows, build_inputs, on_grads, call.inputs, tag=tag, context=context)


def _custom_arity(custom: Callable) -> int:
    """How many of ``(multipliers, inputs, baselines)`` a ``custom_attribution_func`` takes (1, 2 or 3, by its
    signature, as Captum); 3 when the signature cannot be read or takes ``*args``."""
    if not callable(custom):
        raise TypeError(f"custom_attribution_func must be a callable; received {type(custom).__name__}")
    try:
        params = list(inspect.signature(custom).parameters.values())
    except (TypeError, ValueError):
        return 3
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return 3
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    if not positional or len(required) > 3:
        raise TypeError(
            "custom_attribution_func must take 1 to 3 positional arguments (multipliers[, inputs[, baselines]]); "
            f"received a callable with signature {inspect.signature(custom)}"
        )
    return min(len(positional), 3)


def _attributions(mults, xs, bs, multiply: bool, custom: Callable | None) -> tuple[Tensor, ...]:
    if custom is not None:
        out = custom(*(tuple(mults), tuple(xs), tuple(bs))[:_custom_arity(custom)])
        out = tuple(out) if isinstance(out, (tuple, list)) else (out,)
        if len(out) != len(mults) or any(o.shape != m.shape for o, m in zip(out, mults)):
            raise ValueError("custom_attribution_func must return one tensor per input, shaped like the inputs")
        return out
    return tuple(m * (x - b) for m, x, b in zip(mults, xs, bs)) if multiply else tuple(mults)


class DeepLift(Attribution):
    """DeepLIFT, rescale rule. See the module docstring for the rules and what they cover.

    Args:
        model: the model.
        multiply_by_inputs: multiply the multipliers by ``(x - x')`` (default; "local" attribution) or return
            the multipliers ("global").
        eps: below this ``|x - x0|`` a nonlinearity uses its gradient instead of the difference quotient.

    ``attribute`` returns the inputs' shapes; ``return_convergence_delta=True`` adds ``delta`` ``(N,)`` =
    sum(attr) - (F(x) - F(x')), computed from the passes already made (no extra model call).
    ``custom_attribution_func(multipliers[, inputs[, baselines]]) -> attributions`` (tuples; 1, 2 or 3 parameters
    as in Captum) replaces the product.
    """

    def __init__(self, model: Callable, multiply_by_inputs: bool = True, eps: float = 1e-10):
        super().__init__(model)  # Captum names this parameter `model` for DeepLift and DeepLiftShap
        self.model = model
        self._multiply_by_inputs = multiply_by_inputs
        self.eps = check_nonnegative(eps, "eps")

    def has_convergence_delta(self) -> bool:
        return True

    def attribute(
        self,
        inputs: TensorOrTuple,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        return_convergence_delta: bool = False,
        custom_attribution_func: Callable | None = None,
        *,
        forward_kwargs: Mapping[str, Any] | None = None,
        batch_size: int | None = None,
        show_progress: bool = False,
    ):
        call = self.prepare(inputs, target, additional_forward_args, forward_kwargs, batch_size, show_progress)
        bases = format_baselines(baselines, call.inputs)
        out = [torch.empty_like(x) for x in call.inputs]
        delta = torch.zeros(call.n, dtype=call.inputs[0].dtype)

        def build(rows: Tensor):
            return tuple(x.index_select(0, rows.to(x.device)) for x in call.inputs), tuple(rows_of(b, rows) for b in bases), rows

        def consume(rows, ex, mults, xs, bs, f_x, f_b):
            attrs = _attributions(mults, xs, bs, self._multiply_by_inputs, custom_attribution_func)
            for o, a in zip(out, attrs):
                o[rows.to(o.device)] = a
            delta[rows] = (attribution_sum(attrs) - (f_x - f_b).to(attrs[0].dtype)).detach().cpu()

        with call.guard:
            deeplift_multipliers(call, call.n, build, consume, self.eps, tag="deeplift")
        result = restore_form(out, call.was_tuple)
        return (result, delta) if return_convergence_delta else result


class DeepLiftShap(DeepLift):
    _distribution_baselines = True
    """DeepLIFT averaged over a distribution of baselines (DeepSHAP; Lundberg & Lee, 2017).

    ``baselines``: a tensor of samples ``(S, ...)`` per input (or a callable returning them). Rows are
    examples x samples. Returns the inputs' shapes; ``delta`` ``(N,)`` = sum(attr) - (F(x) - mean_s F(b_s)).
    """

    def attribute(
        self,
        inputs: TensorOrTuple,
        baselines: Any = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        return_convergence_delta: bool = False,
        custom_attribution_func: Callable | None = None,
        *,
        forward_kwargs: Mapping[str, Any] | None = None,
        batch_size: int | None = None,
        show_progress: bool = False,
    ):
        call = self.prepare(inputs, target, additional_forward_args, forward_kwargs, batch_size, show_progress)
        dist = format_distribution(baselines, call.inputs)
        s = dist[0].shape[0]
        out = [torch.zeros_like(x) for x in call.inputs]
        delta = torch.zeros(call.n, dtype=call.inputs[0].dtype)

        def build(rows: Tensor):
            ex, k = rows // s, rows % s
            return (
                tuple(x.index_select(0, ex.to(x.device)) for x in call.inputs),
                tuple(d.index_select(0, k.to(d.device)) for d in dist),
                ex,
            )

        def consume(rows, ex, mults, xs, bs, f_x, f_b):
            attrs = _attributions(mults, xs, bs, self._multiply_by_inputs, custom_attribution_func)
            for o, a in zip(out, attrs):
                o.index_add_(0, ex.to(o.device), a / s)
            gap = attribution_sum(attrs) - (f_x - f_b).to(attrs[0].dtype)
            delta.index_add_(0, ex, gap.detach().cpu() / s)

        with call.guard:
            deeplift_multipliers(call, call.n * s, build, consume, self.eps, tag="deepliftshap")
        result = restore_form(out, call.was_tuple)
        return (result, delta) if return_convergence_delta else result
