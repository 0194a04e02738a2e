"""Model smoothing (arXiv:2106.07475, "Sanity Simulations for Saliency Methods"/"sanity checks for saliency maps
with image and text classification"): a copy of a model with every ReLU replaced by ``Softplus(beta)`` and every
max pooling by LogSumExp pooling with temperature ``r``,

    LSE_r(X) = (1/r) log( mean_{x in window} exp(r x) ),

both approaching the originals as ``beta, r -> infinity`` (``softplus_beta(x) - relu(x)`` is at most
``log(2)/beta``; ``max - log(k)/r <= LSE_r <= max`` over a window of ``k`` elements). Smooth models have smooth
gradients, which makes gradient explanations less noisy and more robust.

Modules (``nn.ReLU``, ``nn.MaxPool1d/2d/3d``, ``nn.AdaptiveMaxPool1d/2d/3d``) are replaced in the copy; functional
calls (``F.relu``, ``torch.relu``, ``x.relu()``, in-place forms, ``F.max_pool2d``, ``F.adaptive_max_pool1d``, ...)
are intercepted while the smoothed model runs (:class:`~pellucid.core.hooks.FunctionRules`), so models written
functionally are smoothed too. Adaptive max pooling is supported when the output size divides the input size.
Other maxima (``torch.max``, ``amax``) are left unchanged.
"""
from __future__ import annotations

import copy
import math
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.hooks import FunctionRules

T = torch.Tensor


def _tuple(v: Any, d: int) -> tuple[int, ...]:
    return tuple(v) if isinstance(v, (tuple, list)) else (int(v),) * d


def lse_pool(x: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
             ceil_mode: bool = False, r: float = 10.0, dims: int = 2) -> Tensor:
    """LogSumExp pooling over the last ``dims`` dims with max pooling's window arguments.

    ``(1/r) log(mean(exp(r x)))`` per window, over the window's in-input elements (padding is excluded, as max
    pooling's ``-inf`` padding is). Output shape equals ``F.max_pool{dims}d``'s.
    """
    k = _tuple(kernel_size, dims)
    s = _tuple(stride if stride is not None and stride != [] and stride != () else k, dims)
    p = _tuple(padding, dims)
    dl = _tuple(dilation, dims)
    lead = x.dim() - dims
    y = x
    valid = torch.ones(x.shape[lead:], dtype=x.dtype, device=x.device)
    for i in range(dims):
        size = x.shape[lead + i]
        span = dl[i] * (k[i] - 1) + 1
        length = size + 2 * p[i]
        if ceil_mode:
            out = -(-(length - span) // s[i]) + 1
            if (out - 1) * s[i] >= size + p[i]:
                out -= 1
        else:
            out = (length - span) // s[i] + 1
        extra = max(0, (out - 1) * s[i] + span - length)
        pads = [0, 0] * (dims - 1 - i) + [p[i], p[i] + extra]
        pad_all = [0, 0] * (dims - 1 - i) + [p[i], p[i] + extra]
        y = F.pad(y, pads, value=float("-inf"))
        valid = F.pad(valid, pad_all, value=0.0)
    # windows: unfold every pooled dim, keep every dilation-th element of each window
    for i in range(dims):
        span = dl[i] * (k[i] - 1) + 1
        y = y.unfold(lead + i, span, s[i])[..., :: dl[i]]
        valid = valid.unfold(i, span, s[i])[..., :: dl[i]]
    y = y.flatten(-dims)
    count = valid.flatten(-dims).sum(-1)
    return (torch.logsumexp(r * y, dim=-1) - torch.log(count)) / r


class LogSumExpPool(nn.Module):
    """LogSumExp pooling with temperature ``r`` over ``dims`` spatial dims (max pooling's arguments)."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
                 ceil_mode: bool = False, r: float = 10.0, dims: int = 2):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation, self.ceil_mode, self.r, self.dims = dilation, ceil_mode, r, dims

    def forward(self, x: Tensor) -> Tensor:
        return lse_pool(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode, self.r, self.dims)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, r={self.r}, dims={self.dims}"


class AdaptiveLogSumExpPool(nn.Module):
    """Adaptive LogSumExp pooling (output sizes must divide the input sizes)."""

    def __init__(self, output_size: Any, r: float = 10.0, dims: int = 2):
        super().__init__()
        self.output_size, self.r, self.dims = output_size, r, dims

    def forward(self, x: Tensor) -> Tensor:
        return adaptive_lse_pool(x, self.output_size, self.r, self.dims)


def adaptive_lse_pool(x: Tensor, output_size: Any, r: float, dims: int) -> Tensor:
    sizes = x.shape[x.dim() - dims:]
    out = [sz if o is None else o for o, sz in zip(_tuple(output_size, dims), sizes)]
    if any(sz % o for sz, o in zip(sizes, out)):
        raise ValueError(f"smoothing adaptive max pooling needs output sizes dividing the input sizes; input "
                         f"{tuple(sizes)}, output_size {tuple(out)}")
    k = tuple(sz // o for sz, o in zip(sizes, out))
    return lse_pool(x, k, k, 0, 1, False, r, dims)


_MAXPOOL = {nn.MaxPool1d: 1, nn.MaxPool2d: 2, nn.MaxPool3d: 3}
_ADAPTIVE = {nn.AdaptiveMaxPool1d: 1, nn.AdaptiveMaxPool2d: 2, nn.AdaptiveMaxPool3d: 3}


def _replace_modules(model: nn.Module, beta: float, r: float) -> None:
    for name, child in list(model.named_children()):
        if type(child) is nn.ReLU:
            setattr(model, name, nn.Softplus(beta=beta))
        elif type(child) in _MAXPOOL:
            if child.return_indices:
                raise ValueError(f"cannot smooth {name}: max pooling with return_indices=True has no smooth counterpart")
            setattr(model, name, LogSumExpPool(child.kernel_size, child.stride, child.padding, child.dilation,
                                               child.ceil_mode, r, _MAXPOOL[type(child)]))
        elif type(child) in _ADAPTIVE:
            if child.return_indices:
                raise ValueError(f"cannot smooth {name}: adaptive max pooling with return_indices=True")
            setattr(model, name, AdaptiveLogSumExpPool(child.output_size, r, _ADAPTIVE[type(child)]))
        else:
            _replace_modules(child, beta, r)


_RELUS = {F.relu: 1, torch.relu: None, T.relu: None, torch.relu_: None, T.relu_: None, F.relu_: None}
_POOL_ARGS = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")


def smoothing_rules(beta: float, r: float) -> dict[Callable, Callable]:
    """``FunctionRules`` rules turning relu calls into softplus and max pooling calls into LogSumExp pooling."""

    def relu_rule(func, args, kwargs):
        x = args[0]
        name = getattr(func, "__name__", "")
        inplace = name.endswith("_") or kwargs.get("inplace", False) or (func is F.relu and len(args) > 1 and args[1])
        if inplace:  # softplus saves its input for backward: compute on a copy, then write back
            return x.copy_(F.softplus(x.clone(), beta=beta))
        return F.softplus(x, beta=beta)

    def pool_rule(dims: int):
        def rule(func, args, kwargs):
            bound = dict(zip(_POOL_ARGS, args))
            bound.update(kwargs)
            if bound.get("return_indices"):
                raise ValueError("cannot smooth max pooling called with return_indices=True")
            return lse_pool(bound["input"], bound["kernel_size"], bound.get("stride"), bound.get("padding", 0),
                            bound.get("dilation", 1), bound.get("ceil_mode", False), r, dims)
        return rule

    def adaptive_rule(dims: int):
        def rule(func, args, kwargs):
            bound = dict(zip(("input", "output_size", "return_indices"), args))
            bound.update(kwargs)
            if bound.get("return_indices"):
                raise ValueError("cannot smooth adaptive max pooling called with return_indices=True")
            return adaptive_lse_pool(bound["input"], bound["output_size"], r, dims)
        return rule

    rules: dict[Callable, Callable] = {f: relu_rule for f in _RELUS}
    for d, (f, g, a) in enumerate([(F.max_pool1d, torch.max_pool1d, F.adaptive_max_pool1d),
                                   (F.max_pool2d, torch.max_pool2d, F.adaptive_max_pool2d),
                                   (F.max_pool3d, torch.max_pool3d, F.adaptive_max_pool3d)], start=1):
        rules[f] = pool_rule(d)
        rules[g] = pool_rule(d)
        rules[a] = adaptive_rule(d)
    return rules


class SmoothedModel(nn.Module):
    """A smoothed copy of a model: ``module`` (with ReLU/MaxPool modules replaced) run under the smoothing rules.

    Attribute look-ups fall through to ``module`` (``smoothed.conv1`` is the copy's ``conv1``), so layer methods
    can name the copy's layers.
    """

    def __init__(self, module: nn.Module, beta: float, r: float, functional: bool = True):
        super().__init__()
        self.module = module
        self.beta, self.r, self.functional = beta, r, functional

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if not self.functional:
            return self.module(*args, **kwargs)
        with FunctionRules(smoothing_rules(self.beta, self.r)):
            return self.module(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("module"), name)


def smooth(model: nn.Module, beta: float = 10.0, r: float = 10.0, functional: bool = True) -> SmoothedModel:
    """A smoothed deep copy of ``model``; ``model`` itself is not modified.

    Args:
        model: the model.
        beta: Softplus sharpness (``softplus(x) = log(1 + exp(beta x)) / beta``); larger is closer to ReLU.
        r: LogSumExp pooling temperature; larger is closer to max pooling.
        functional: also smooth functional ``relu`` / ``max_pool`` calls (via a torch function mode while the
            smoothed model runs); ``False`` replaces modules only.
    Returns a :class:`SmoothedModel` (an ``nn.Module``) in the same train/eval mode as ``model``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; received {type(model).__name__}")
    for name, v in (("beta", beta), ("r", r)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 or math.isinf(v):
            raise ValueError(f"{name} must be a positive finite number; received {v!r}")
    work = copy.deepcopy(model)
    _replace_modules(work, float(beta), float(r))
    out = SmoothedModel(work, float(beta), float(r), functional)
    out.train(model.training)
    return out


__all__: Sequence[str] = ["AdaptiveLogSumExpPool", "LogSumExpPool", "SmoothedModel", "lse_pool", "smooth", "smoothing_rules"]
