"""Padding diagnostics after Alsallakh, Kokhlikyan, Miglani, Yuan & Reblitz-Richardson, 2020, "Mind the Pad - CNNs
can develop blind spots", arXiv:2010.02178.

A strided convolution or pooling window slides from the first (top/left) padded row; the windows stop where the
next one would leave the padded input. PyTorch pads ``p`` rows on both sides but the last ``(h + 2p - k_eff) mod s``
rows (``k_eff = d (k - 1) + 1``) are never read: when that remainder is nonzero the bottom/right padding is partly
or wholly ignored, while the top/left padding is always consumed: the layer pads *unevenly*. TensorFlow's ``SAME``
pads ``total = max((ceil(h/s) - 1) s + k_eff - h, 0)`` rows, ``total // 2`` before and the rest after, so it is
uneven whenever ``total`` is odd. Stacked uneven layers give the network a skewed view of its input and can leave
blind spots; an input size at which every layer pads evenly (225 rather than 224 for a ResNet-like stride pattern)
avoids it.

* :func:`consumed_padding`, :func:`tf_same_padding`: the arithmetic for one dimension of one layer.
* :func:`padding_report`: every convolution / pooling / padding layer of a model traced at an input size (on the
  ``meta`` device when possible, so no arithmetic is done), the padding each consumes per side, the uneven layers
  and the nearest input sizes at which every layer pads evenly and reads its whole input.
* :func:`pad`: n-d padding with ``zeros``, ``reflect``, ``replicate``, ``circular`` and ``symmetric`` (mirror
  including the edge, NumPy's ``symmetric``); :func:`swap_padding`: a copy of a model with every convolution's
  padding replaced (also ``symmetric`` and ``partial``, the partial convolution of Liu et al., 2018,
  arXiv:1811.11718).
* :func:`foveation_map`: how many convolution paths start at each input pixel (all-ones kernels, no
  nonlinearity), per padding mode: the paper's foveation analysis.
* re-exported from :mod:`pellucid.analysis.blind_spots`: :func:`mean_feature_maps`, :func:`mean_filters`,
  :func:`blind_spot_sweep` (what padding does to a trained model).
"""
from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.errors import check_choice, check_positive_int
from ..core.guard import ModelGuard, model_device

#: padding modes of :func:`pad`, :func:`swap_padding` and :func:`foveation_map`
PADDING_MODES = ("zeros", "reflect", "replicate", "circular", "symmetric", "partial")
_NATIVE = ("zeros", "reflect", "replicate", "circular")
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_POOL = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.LPPool1d,
         nn.LPPool2d)
_PAD = (nn.ConstantPad1d, nn.ConstantPad2d, nn.ConstantPad3d, nn.ReflectionPad1d, nn.ReflectionPad2d,
        nn.ReflectionPad3d, nn.ReplicationPad1d, nn.ReplicationPad2d, nn.ReplicationPad3d, nn.ZeroPad1d,
        nn.ZeroPad2d, nn.ZeroPad3d, nn.CircularPad1d, nn.CircularPad2d, nn.CircularPad3d)


# ------------------------------------------------------------------------------------------------ arithmetic


def _int(value: Any, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; received {value!r}")
    return value


def output_size(size: int, kernel: int, stride: int = 1, pad_before: int = 0, pad_after: int = 0,
                dilation: int = 1, ceil_mode: bool = False) -> int:
    """Output length of a window of ``kernel`` taps (spacing ``dilation``) sliding by ``stride`` over ``size``
    elements padded with ``pad_before`` / ``pad_after`` (PyTorch's formula; ``ceil_mode`` as in pooling, where
    a last window must start inside the input or the leading padding)."""
    k_eff = dilation * (kernel - 1) + 1
    span = size + pad_before + pad_after - k_eff
    if span < 0:
        raise ValueError(f"the window (effective size {k_eff}) is larger than the padded input "
                         f"({size} + {pad_before} + {pad_after})")
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad_before:
        out -= 1
    return out


def consumed_padding(size: int, kernel: int, stride: int = 1, pad_before: int = 0, pad_after: int = 0,
                     dilation: int = 1, output: int | None = None) -> tuple[int, int, int]:
    """How much of a layer's padding is read, along one dimension.

    The windows start at padded positions ``0, s, 2s, ...`` (``output`` of them; default from
    :func:`output_size`) and read ``kernel`` taps ``dilation`` apart. Returns ``(before, after, ignored)``: the
    number of leading / trailing padded positions that at least one window reads (``after`` may exceed
    ``pad_after`` in pooling's ``ceil_mode``, whose last window hangs over the end), and the number of trailing
    *input* positions no window reaches. The layer pads evenly when ``before == after``; for ``dilation = 1``
    and ``kernel >= stride``, ``after = max(0, pad_after - (size + pad_before + pad_after - kernel) mod stride)``.
    """
    size, kernel = _int(size, "size", 1), _int(kernel, "kernel", 1)
    stride, dilation = _int(stride, "stride", 1), _int(dilation, "dilation", 1)
    pad_before, pad_after = _int(pad_before, "pad_before"), _int(pad_after, "pad_after")
    out = output_size(size, kernel, stride, pad_before, pad_after, dilation) if output is None else _int(output, "output", 1)
    last = (out - 1) * stride + (kernel - 1) * dilation  # last padded position any window reads

    def read(j: int) -> bool:
        return any((j - t * dilation) % stride == 0 and 0 <= (j - t * dilation) // stride < out
                   for t in range(kernel) if j - t * dilation >= 0)

    before = sum(read(j) for j in range(pad_before))
    end = pad_before + size  # first trailing padded position
    after = sum(read(j) for j in range(end, last + 1))
    ignored = max(0, end - 1 - last)
    return before, after, ignored


def tf_same_padding(size: int, kernel: int, stride: int = 1, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's ``padding='SAME'`` along one dimension: ``(before, after)`` with output ``ceil(size/stride)``,
    ``total = max((out - 1) stride + k_eff - size, 0)``, ``before = total // 2``, ``after = total - before``."""
    size, kernel = _int(size, "size", 1), _int(kernel, "kernel", 1)
    stride, dilation = _int(stride, "stride", 1), _int(dilation, "dilation", 1)
    out = -(-size // stride)
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    return total // 2, total - total // 2


# ---------------------------------------------------------------------------------------------------- tracing


@dataclass(frozen=True)
class LayerPadding:
    """One traced layer. Sizes and per-side amounts are per spatial dimension (height first).

    ``padding``: the declared ``(before, after)`` per dimension; ``pad_before`` / ``pad_after``: what is read
    (under the report's semantics); ``ignored``: trailing input positions never read."""

    name: str
    kind: str
    input_size: tuple[int, ...]
    output_size: tuple[int, ...]
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    pad_before: tuple[int, ...]
    pad_after: tuple[int, ...]
    ignored: tuple[int, ...]
    ceil_mode: bool = False

    @property
    def uneven(self) -> bool:
        """True if some dimension reads a different amount of padding before and after."""
        return any(b != a for b, a in zip(self.pad_before, self.pad_after))

    @property
    def even(self) -> bool:
        """Pads evenly and reads its whole input."""
        return not self.uneven and not any(self.ignored)


@dataclass
class PaddingReport:
    """What :func:`padding_report` found: ``layers`` in call order, the ``input_shape`` traced (with channels),
    the ``semantics`` (``"pytorch"`` or ``"tf_same"``) and ``suggestions``: the nearest spatial input sizes at
    which every layer is :attr:`LayerPadding.even` (empty if none was asked for or found)."""

    input_shape: tuple[int, ...]
    semantics: str
    layers: list[LayerPadding]
    suggestions: list[tuple[int, ...]] = field(default_factory=list)

    @property
    def uneven_layers(self) -> list[LayerPadding]:
        return [layer for layer in self.layers if layer.uneven]

    @property
    def even(self) -> bool:
        """Every layer pads evenly and reads its whole input."""
        return all(layer.even for layer in self.layers)

    def text(self) -> str:
        """A plain-text table of the layers (what ``print(report)`` shows)."""
        def fmt(t):
            return "x".join(map(str, t))

        head = ["layer", "type", "in", "out", "k", "s", "pad", "read before/after", "ignored", ""]
        rows = [head]
        for l in self.layers:
            rows.append([l.name, l.kind, fmt(l.input_size), fmt(l.output_size), fmt(l.kernel_size), fmt(l.stride),
                         ",".join(f"{b}/{a}" for b, a in l.padding),
                         ",".join(f"{b}/{a}" for b, a in zip(l.pad_before, l.pad_after)), fmt(l.ignored),
                         "UNEVEN" if l.uneven else ("ignores input" if any(l.ignored) else "")])
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = [f"padding at input {fmt(self.input_shape)} ({self.semantics} semantics): "
                 f"{len(self.uneven_layers)} of {len(self.layers)} layers uneven"]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        if self.suggestions:
            lines.append("even at: " + ", ".join(fmt(s) for s in self.suggestions))
        return "\n".join(lines)

    __str__ = text

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"input_shape": list(self.input_shape), "semantics": self.semantics,
                "uneven_layers": [l.name for l in self.uneven_layers],
                "suggestions": [list(s) for s in self.suggestions],
                "layers": [{"name": l.name, "kind": l.kind, "input_size": l.input_size, "output_size": l.output_size,
                            "kernel_size": l.kernel_size, "stride": l.stride, "padding": l.padding,
                            "pad_before": l.pad_before, "pad_after": l.pad_after, "ignored": l.ignored,
                            "uneven": l.uneven} for l in self.layers]}


def _tuple(v: Any, d: int) -> tuple[int, ...]:
    return tuple(int(x) for x in v) if isinstance(v, (tuple, list)) else (int(v),) * d


def _declared_padding(m: nn.Module, d: int, kernel: tuple[int, ...], dilation: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    if isinstance(m, _PAD):
        p = _tuple(m.padding, 2 * d)  # F.pad order: last dimension first
        return tuple((p[2 * (d - 1 - i)], p[2 * (d - 1 - i) + 1]) for i in range(d))
    p = getattr(m, "padding", 0)
    if p == "valid":
        return ((0, 0),) * d
    if p == "same":
        tot = [di * (k - 1) for k, di in zip(kernel, dilation)]
        return tuple((t // 2, t - t // 2) for t in tot)
    return tuple((x, x) for x in _tuple(p, d))


def _spatial_dims(m: nn.Module) -> int:
    name = type(m).__name__
    for d in (1, 2, 3):
        if name.endswith(f"{d}d"):
            return d
    raise TypeError(f"cannot tell the spatial dimensions of {name}")


def _layer_geometry(m: nn.Module) -> tuple[int, tuple, tuple, tuple, tuple, bool]:
    d = _spatial_dims(m)
    if isinstance(m, _PAD):
        return d, (1,) * d, (1,) * d, (1,) * d, _declared_padding(m, d, (1,) * d, (1,) * d), False
    kernel = _tuple(m.kernel_size, d)
    stride = _tuple(m.stride if m.stride is not None else m.kernel_size, d)
    dilation = _tuple(getattr(m, "dilation", 1), d)
    return d, kernel, stride, dilation, _declared_padding(m, d, kernel, dilation), bool(getattr(m, "ceil_mode", False))


def _is_layer(m: nn.Module) -> bool:
    return (isinstance(m, _CONV) and not getattr(m, "transposed", False)) or isinstance(m, _POOL + _PAD)


def _first_layer(model: nn.Module) -> nn.Module:
    for m in model.modules():
        if _is_layer(m):
            return m
    raise ValueError(f"model has no convolution, pooling or padding layer ({type(model).__name__})")


def _input_shape(model: nn.Module, input_size: Any, in_channels: int | None) -> tuple[int, ...]:
    first = _first_layer(model)
    d = _spatial_dims(first)
    if isinstance(input_size, int) and not isinstance(input_size, bool):
        size: tuple[int, ...] = (input_size,) * d
    elif isinstance(input_size, (tuple, list, torch.Size)) and all(
            isinstance(s, int) and not isinstance(s, bool) for s in input_size) and len(input_size) in (d, d + 1):
        size = tuple(input_size)
    else:
        raise ValueError(f"input_size must be an int or a tuple of {d} spatial sizes (optionally led by the "
                         f"channels); received {input_size!r}")
    if any(s < 1 for s in size):
        raise ValueError(f"input_size must be positive; received {input_size!r}")
    if len(size) == d + 1:
        return size
    if in_channels is None:
        if not isinstance(first, _CONV):
            raise ValueError("the first layer is not a convolution: give input_size as (channels, *spatial) or in_channels")
        in_channels = first.in_channels
    return (in_channels,) + size


class _Trace:
    """Context manager: forward hooks recording (module, input shape, output shape) of every layer."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.names = {m: n for n, m in model.named_modules()}
        self.records: list[tuple[nn.Module, tuple, tuple]] = []

    def __enter__(self) -> "_Trace":
        self.handles = [m.register_forward_hook(self._hook) for m in self.model.modules() if _is_layer(m)]
        return self

    def _hook(self, m, args, out):
        if args and isinstance(args[0], Tensor) and isinstance(out, Tensor):
            self.records.append((m, tuple(args[0].shape), tuple(out.shape)))

    def __exit__(self, *exc) -> None:
        for h in self.handles:
            h.remove()


def trace_layers(model: nn.Module, input_shape: Sequence[int], meta: bool = False) -> list[tuple[str, nn.Module, tuple, tuple]]:
    """``(name, module, input shape, output shape)`` of every convolution, pooling and padding layer run by
    ``model`` on one input of ``input_shape`` (without the batch), in call order.

    By default one forward of zeros runs under ``torch.no_grad()`` in eval mode. ``meta=True`` runs on the ``meta``
    device instead (shapes only, no arithmetic, through ``torch.func.functional_call``; about 10 ms for a ResNet,
    after a one-off warm-up of a second or more per process) and falls back to the real forward for a model that
    cannot run there (data-dependent control flow). The model is left as it was."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; received {type(model).__name__}")
    shape = (1,) + tuple(input_shape)
    with ModelGuard(model), torch.no_grad():
        model.eval()
        tr = None
        if meta:
            try:
                with _Trace(model) as tr:
                    params = {n: torch.empty_like(p, device="meta") for n, p in model.named_parameters(remove_duplicate=False)}
                    params.update({n: torch.empty_like(b, device="meta") for n, b in model.named_buffers(remove_duplicate=False)})
                    torch.func.functional_call(model, params, (torch.zeros(shape, device="meta"),), strict=False)
            except Exception:  # noqa: BLE001 - anything a meta run cannot do: run it for real once
                tr = None
        if tr is None:
            device = model_device(model, torch.device("cpu"))
            dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
            with _Trace(model) as tr:
                model(torch.zeros(shape, device=device, dtype=dtype))
    return [(tr.names.get(m, type(m).__name__), m, i, o) for m, i, o in tr.records]


def _layer_padding(name: str, m: nn.Module, in_shape: tuple, out_shape: tuple, semantics: str) -> LayerPadding:
    d, kernel, stride, dilation, declared, ceil = _layer_geometry(m)
    size, out = tuple(in_shape[-d:]), tuple(out_shape[-d:])
    before, after, ignored = [], [], []
    for i in range(d):
        if isinstance(m, _PAD):
            b, a, ig = declared[i][0], declared[i][1], 0
        elif semantics == "tf_same":
            pb, pa = tf_same_padding(size[i], kernel[i], stride[i], dilation[i])
            b, a, ig = consumed_padding(size[i], kernel[i], stride[i], pb, pa, dilation[i])
        else:
            b, a, ig = consumed_padding(size[i], kernel[i], stride[i], declared[i][0], declared[i][1], dilation[i],
                                        output=out[i])
        before.append(b)
        after.append(a)
        ignored.append(ig)
    return LayerPadding(name, type(m).__name__, size, out, kernel, stride, dilation, declared, tuple(before),
                        tuple(after), tuple(ignored), ceil)


def _layers_at(model: nn.Module, shape: tuple[int, ...], semantics: str, meta: bool = False) -> list[LayerPadding]:
    return [_layer_padding(n, m, i, o, semantics) for n, m, i, o in trace_layers(model, shape, meta)]


def padding_report(model: nn.Module, input_size: Any, *, in_channels: int | None = None, semantics: str = "pytorch",
                   suggest: int = 3, search: int = 64) -> PaddingReport:
    """Trace every convolution, pooling and padding layer of ``model`` at ``input_size`` and report the padding
    each reads per side (Alsallakh et al., 2020, arXiv:2010.02178).

    Args:
        model: a CNN (``nn.Module``); not changed.
        input_size: an int (the same size in every spatial dimension), a tuple of spatial sizes (``(H, W)`` for
            2-d convolutions) or ``(C, *spatial)``.
        in_channels: the channels when ``input_size`` has none (default: the first convolution's ``in_channels``).
        semantics: ``"pytorch"`` (the model's own padding, of which the trailing part is read only when
            ``(h + 2p - k_eff) mod s == 0``) or ``"tf_same"`` (each layer padded as TensorFlow's ``SAME`` would at
            its traced input size: ``total // 2`` before, the rest after).
        suggest: how many nearest input sizes at which every layer pads evenly and reads its whole input to look
            for (0: none). A square input is searched over square sizes, otherwise each dimension on its own.
        search: how far from ``input_size`` to look (``+-search`` per dimension).
    Returns:
        :class:`PaddingReport` (``print`` it for a table).
    """
    check_choice(semantics, "semantics", ("pytorch", "tf_same"))
    _int(suggest, "suggest")
    check_positive_int(search, "search")
    shape = _input_shape(model, input_size, in_channels)
    layers = _layers_at(model, shape, semantics)
    report = PaddingReport(shape, semantics, layers)
    if suggest:
        report.suggestions = even_input_sizes(model, shape, semantics=semantics, n=suggest, search=search)
    return report


def _apply(m: nn.Module, size: tuple[int, ...]) -> tuple[int, ...]:
    d, kernel, stride, dilation, declared, ceil = _layer_geometry(m)
    if isinstance(m, _PAD):
        return tuple(n + b + a for n, (b, a) in zip(size, declared))
    return tuple(output_size(size[i], kernel[i], stride[i], declared[i][0], declared[i][1], dilation[i], ceil)
                 for i in range(d))


def _size_predictor(model: nn.Module, shape: tuple[int, ...]) -> Callable[[tuple[int, ...]], list] | None:
    """Layer input sizes as a function of the input size, from one trace: the layers that change the size along
    the main path (in call order, each reading the size the previous produced) define levels; every layer reads
    one level. Checked against real traces at two other sizes; None if the model does not fit this picture
    (upsampling, adaptive pooling between layers, sizes repeating)."""
    records = trace_layers(model, shape)
    levels, steps = [tuple(shape[1:])], []
    for _, m, i, o in records:
        i, o = tuple(i[2:]), tuple(o[2:])
        if i == levels[-1] and o != i:
            steps.append(m)
            levels.append(o)
    if len(set(levels)) != len(levels) or any(tuple(i[2:]) not in levels for _, _, i, _ in records):
        return None
    reads = [levels.index(tuple(i[2:])) for _, _, i, _ in records]

    def predict(size: tuple[int, ...]) -> list[tuple[str, nn.Module, tuple, tuple]]:
        sizes = [tuple(size)]
        for m in steps:
            sizes.append(_apply(m, sizes[-1]))
        out = []
        for (name, m, _, _), r in zip(records, reads):
            out.append((name, m, (1, shape[0]) + sizes[r], (1, shape[0]) + _apply(m, sizes[r])))
        return out

    try:
        for delta in (1, 3):
            other = tuple(n + delta for n in shape[1:])
            real = [tuple(i[2:]) for _, _, i, _ in trace_layers(model, (shape[0],) + other)]
            if real != [tuple(i[2:]) for _, _, i, _ in predict(other)]:
                return None
    except (RuntimeError, ValueError):
        return None
    return predict


def even_input_sizes(model: nn.Module, input_shape: Sequence[int], *, semantics: str = "pytorch", n: int = 3,
                     search: int = 64) -> list[tuple[int, ...]]:
    """The ``n`` spatial sizes nearest to ``input_shape`` (``(C, *spatial)``) at which every layer of ``model`` pads
    evenly and reads its whole input (nearest first; ties: the smaller size first). See :func:`padding_report`.

    Candidates are screened with the layers' size arithmetic (from a trace, checked at two other sizes) and every
    size returned is confirmed by a trace; a model whose sizes the arithmetic cannot follow is traced at every
    candidate."""
    c, spatial = input_shape[0], tuple(input_shape[1:])
    predict = _size_predictor(model, (c,) + spatial)

    def candidates(s: int) -> Iterable[int]:
        for delta in range(search + 1):
            for v in ((s,) if delta == 0 else (s - delta, s + delta)):
                if v >= 1:
                    yield v

    def even(records, dims) -> bool:
        layers = [_layer_padding(nm, m, i, o, semantics) for nm, m, i, o in records]
        return all(l.pad_before[i] == l.pad_after[i] and l.ignored[i] == 0 for l in layers for i in dims)

    def dims_even(shape: tuple[int, ...], dims: Sequence[int]) -> bool:
        try:
            if predict is not None and not even(predict(shape), dims):
                return False
            return even(trace_layers(model, (c,) + shape), dims)
        except (RuntimeError, ValueError):  # too small for the model
            return False

    if len(set(spatial)) == 1:
        found: list[tuple[int, ...]] = []
        for v in candidates(spatial[0]):
            if dims_even((v,) * len(spatial), range(len(spatial))):
                found.append((v,) * len(spatial))
                if len(found) == n:
                    break
        return found
    per_dim: list[list[int]] = []
    for i, s in enumerate(spatial):
        ok: list[int] = []
        for v in candidates(s):
            shape = spatial[:i] + (v,) + spatial[i + 1:]
            if dims_even(shape, [i]):
                ok.append(v)
                if len(ok) == n:
                    break
        if not ok:
            return []
        per_dim.append(ok)
    combos = sorted(itertools.product(*per_dim), key=lambda t: (sum(abs(a - b) for a, b in zip(t, spatial)), t))
    return [tuple(t) for t in combos[:n]]


# ---------------------------------------------------------------------------------------------------- padding


def _mirror_index(n: int, before: int, after: int, edge: bool, device) -> Tensor:
    j = torch.arange(-before, n + after, device=device)
    if edge:  # symmetric: ... x1 x0 | x0 x1 ... x_{n-1} | x_{n-1} x_{n-2} ...
        period = 2 * n
        m = j % period
        return torch.where(m < n, m, period - 1 - m)
    if n == 1:
        return torch.zeros_like(j)
    period = 2 * n - 2  # reflect: ... x2 x1 | x0 x1 ... x_{n-1} | x_{n-2} ...
    m = j % period
    return torch.where(m < n, m, period - m)


def pad(x: Tensor, padding: Sequence[tuple[int, int]], mode: str = "zeros", value: float = 0.0) -> Tensor:
    """Pad the trailing ``len(padding)`` dimensions of ``x``; ``padding[i] = (before, after)`` for the i-th of them
    (height before width, unlike ``F.pad``).

    ``mode``: ``"zeros"`` (the constant ``value``; also ``"partial"``, whose reweighting happens in the
    convolution), ``"reflect"`` (mirror without the edge), ``"replicate"``, ``"circular"`` or ``"symmetric"``
    (mirror including the edge, NumPy's ``symmetric``: ``[a b c]`` padded by 2 is ``[b a a b c c b]``). Any pad
    width is allowed for ``reflect`` and ``symmetric`` (the mirror repeats)."""
    check_choice(mode, "mode", PADDING_MODES)
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a tensor; received {type(x).__name__}")
    pads = [(int(b), int(a)) for b, a in padding]
    if len(pads) > x.dim() or any(b < 0 or a < 0 for b, a in pads):
        raise ValueError(f"padding must be non-negative (before, after) pairs for at most {x.dim()} dims; received {padding!r}")
    if mode in ("zeros", "partial"):
        flat = [v for b, a in reversed(pads) for v in (b, a)]
        return F.pad(x, flat, value=value)
    if mode == "circular":
        out = x
        for i, (b, a) in enumerate(pads):
            dim = x.dim() - len(pads) + i
            n = out.shape[dim]
            idx = torch.arange(-b, n + a, device=x.device) % n
            out = out.index_select(dim, idx)
        return out
    out = x
    for i, (b, a) in enumerate(pads):
        dim = x.dim() - len(pads) + i
        if mode == "replicate":
            idx = torch.arange(-b, out.shape[dim] + a, device=x.device).clamp(0, out.shape[dim] - 1)
        else:
            idx = _mirror_index(out.shape[dim], b, a, mode == "symmetric", x.device)
        out = out.index_select(dim, idx)
    return out


class _SwappedPadding:
    """Mixin of the convolution classes made by :func:`swap_padding` for modes PyTorch lacks."""

    pellucid_padding: str = "symmetric"
    _pellucid_base: type = nn.Conv2d

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        d = x.dim() - 2
        flat = self._reversed_padding_repeated_twice
        pads = [(flat[2 * (d - 1 - i)], flat[2 * (d - 1 - i) + 1]) for i in range(d)]
        conv = (F.conv1d, F.conv2d, F.conv3d)[d - 1]
        if self.pellucid_padding == "symmetric":
            return conv(pad(x, pads, "symmetric"), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
        # partial convolution (Liu et al., 2018): W^T (X . M) * |window| / sum(M) + b, 0 where the window is all padding
        raw = conv(pad(x, pads, "zeros"), self.weight, None, self.stride, 0, self.dilation, self.groups)
        ones = torch.ones((1, 1) + tuple(self.kernel_size), dtype=x.dtype, device=x.device)
        mask = pad(torch.ones((1, 1) + tuple(x.shape[2:]), dtype=x.dtype, device=x.device), pads, "zeros")
        count = conv(mask, ones, None, self.stride, 0, self.dilation)
        ratio = torch.where(count > 0, math.prod(self.kernel_size) / count.clamp_min(1), torch.zeros_like(count))
        out = raw * ratio
        if self.bias is not None:
            out = out + self.bias.reshape((1, -1) + (1,) * d) * (count > 0).to(out.dtype)
        return out


_CLASSES: dict[tuple[type, str], type] = {}


def _swapped_class(base: type, mode: str) -> type:
    key = (base, mode)
    if key not in _CLASSES:
        name = f"{mode.capitalize()}Padded{base.__name__}"
        cls = type(name, (_SwappedPadding, base), {"pellucid_padding": mode, "_pellucid_base": base,
                                                   "__module__": __name__, "__qualname__": name})
        _CLASSES[key] = cls
        if base.__module__ == nn.Conv2d.__module__:  # torch's own classes: importable by name, so picklable
            globals()[name] = cls
    return _CLASSES[key]


for _base in _CONV:
    for _mode in ("symmetric", "partial"):
        _swapped_class(_base, _mode)


def swap_padding(model: nn.Module, mode: str) -> nn.Module:
    """A deep copy of ``model`` in which every convolution (``nn.Conv1d/2d/3d`` and subclasses, not transposed)
    pads with ``mode`` instead of its own padding mode; ``model`` itself is not changed.

    ``mode``: one of :data:`PADDING_MODES`. ``zeros``, ``reflect``, ``replicate`` and ``circular`` set PyTorch's
    ``padding_mode``; ``symmetric`` (mirror with the edge) and ``partial`` (partial convolution, Liu et al., 2018,
    arXiv:1811.11718: zero padding with each output rescaled by ``|window| / #inputs in the window``) change the
    copy's convolutions to subclasses with the same parameters and ``state_dict`` keys. Pad widths stay as they
    were (only what fills the padding changes).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; received {type(model).__name__}")
    check_choice(mode, "mode", PADDING_MODES)
    work = copy.deepcopy(model)
    for m in work.modules():
        if not isinstance(m, _CONV) or getattr(m, "transposed", False):
            continue
        base = getattr(type(m), "_pellucid_base", type(m))
        if mode in _NATIVE:
            m.__class__ = base
            m.padding_mode = mode
        else:
            m.__class__ = _swapped_class(base, mode)
            m.padding_mode = "zeros"
    return work


# -------------------------------------------------------------------------------------------------- foveation


@dataclass(frozen=True)
class _Window:
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    pool: bool = False


def _window(spec: Any, d: int) -> _Window:
    if isinstance(spec, LayerPadding):
        return _Window(spec.kernel_size, spec.stride, spec.dilation, spec.padding, spec.kind.endswith(("Pool1d", "Pool2d", "Pool3d")))
    if isinstance(spec, nn.Module):
        if not _is_layer(spec) or isinstance(spec, _PAD):
            raise TypeError(f"a layer spec must be a convolution or pooling module; received {type(spec).__name__}")
        dd, kernel, stride, dilation, declared, _ = _layer_geometry(spec)
        if dd != d:
            raise ValueError(f"{type(spec).__name__} is {dd}-d but input_size has {d} spatial dimensions")
        return _Window(kernel, stride, dilation, declared, isinstance(spec, _POOL))
    if isinstance(spec, dict):
        spec = (spec.get("kernel_size", spec.get("kernel")), spec.get("stride", 1), spec.get("padding", 0),
                spec.get("dilation", 1))
    if isinstance(spec, (tuple, list)) and 1 <= len(spec) <= 4:
        k, s, p, dl = (list(spec) + [1, 0, 1][len(spec) - 1:])[:4]
        kernel, stride, dilation = _tuple(k, d), _tuple(s, d), _tuple(dl, d)
        padding = tuple((x, x) for x in _tuple(p, d)) if not (isinstance(p, (tuple, list)) and p and isinstance(p[0], (tuple, list))) \
            else tuple((int(b), int(a)) for b, a in p)
        return _Window(kernel, stride, dilation, padding)
    raise TypeError("layers must be a model, or a sequence of conv/pool modules, LayerPadding records, "
                    f"(kernel, stride, padding[, dilation]) tuples or dicts; received an element {spec!r}")


def _chain(model: nn.Module, shape: tuple[int, ...]) -> list[_Window]:
    """The layers of the main path: in call order, those whose input has the size the chain has reached."""
    size = shape[1:]
    out = []
    for name, m, i, o in trace_layers(model, shape):
        if isinstance(m, _PAD) or tuple(i[2:]) != tuple(size):
            continue
        out.append(_window(m, len(size)))
        size = tuple(o[2:])
    return out


def foveation_map(layers: Any, input_size: Any, padding_mode: str = "zeros", *,
                  in_channels: int | None = None) -> Tensor:
    """How many convolution paths start at each input position (Alsallakh et al., 2020, arXiv:2010.02178).

    The layers are replaced by single-channel all-ones kernels with their kernel size, stride, dilation and
    padding, with no nonlinearity between them; each output position sums its window, so the sum of the last
    output counts the paths from every input position to any output, which is its gradient with respect to the
    input. A padded value is a copy of some input (``reflect``, ``replicate``, ``circular``, ``symmetric``): its
    paths count for that input; zero padding (``zeros``) adds none, so positions near the border enter fewer
    paths; ``partial`` (partial convolution, Liu et al., 2018, arXiv:1811.11718) scales each window by
    ``|window| / #inputs`` in it, so the counts are weighted. Pooling layers always pad with nothing to count
    (max pooling never selects its padding); convolutions pad with ``padding_mode``.

    Args:
        layers: a model (its main path: the convolution and pooling layers in call order whose input has the size
            the previous one produced, so side branches such as ResNet's downsampling shortcuts are left out), or
            a sequence of convolution / pooling modules, :class:`LayerPadding` records, or
            ``(kernel, stride, padding[, dilation])`` tuples / dicts (``padding`` an int or ``(before, after)``
            pairs per dimension).
        input_size: an int (1-d for specs, every spatial dim for a model) or a tuple of spatial sizes.
        padding_mode: one of :data:`PADDING_MODES`.
    Returns:
        ``input_size``-shaped float64 tensor of path counts.
    """
    check_choice(padding_mode, "padding_mode", PADDING_MODES)
    if isinstance(layers, nn.Module):
        shape = _input_shape(layers, input_size, in_channels)
        windows = _chain(layers, shape)
        size = shape[1:]
    else:
        if isinstance(input_size, int) and not isinstance(input_size, bool):
            size = (input_size,)
        elif isinstance(input_size, (tuple, list)) and input_size and all(isinstance(s, int) for s in input_size):
            size = tuple(input_size)
        else:
            raise ValueError(f"input_size must be an int or a tuple of spatial sizes; received {input_size!r}")
        if not isinstance(layers, (list, tuple)) or not layers:
            raise TypeError(f"layers must be a model or a non-empty sequence of layer specs; received {type(layers).__name__}")
        windows = [_window(s, len(size)) for s in layers]
    d = len(size)
    if d > 3:
        raise ValueError(f"at most 3 spatial dimensions are supported; received {d}")
    conv = (F.conv1d, F.conv2d, F.conv3d)[d - 1]
    x = torch.ones((1, 1) + tuple(size), dtype=torch.float64, requires_grad=True)
    y = x
    for w in windows:
        ones = torch.ones((1, 1) + w.kernel, dtype=torch.float64)
        cur = tuple(y.shape[2:])
        for i in range(d):
            output_size(cur[i], w.kernel[i], w.stride[i], *w.padding[i], w.dilation[i])  # raises if too small
        mode = "zeros" if w.pool else padding_mode
        if mode == "partial":
            mask = pad(torch.ones_like(y), w.padding, "zeros")
            count = conv(mask, ones, None, w.stride, 0, w.dilation)
            ratio = torch.where(count > 0, math.prod(w.kernel) / count.clamp_min(1), torch.zeros_like(count))
            y = conv(pad(y, w.padding, "zeros"), ones, None, w.stride, 0, w.dilation) * ratio
        else:
            y = conv(pad(y, w.padding, mode), ones, None, w.stride, 0, w.dilation)
    (grad,) = torch.autograd.grad(y.sum(), x)
    return grad[0, 0].detach()


# the paper's tools on trained models live in blind_spots; importable from here too
from .blind_spots import blind_spot_sweep, map_asymmetry, mean_feature_maps, mean_filters, plot_maps  # noqa: E402

__all__ = ["PADDING_MODES", "LayerPadding", "PaddingReport", "blind_spot_sweep", "consumed_padding",
           "even_input_sizes", "foveation_map", "map_asymmetry", "mean_feature_maps", "mean_filters", "output_size",
           "pad", "padding_report", "plot_maps", "swap_padding", "tf_same_padding", "trace_layers"]
