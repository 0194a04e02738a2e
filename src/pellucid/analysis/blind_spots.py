"""What padding does to a trained CNN (Alsallakh et al., 2020, "Mind the Pad - CNNs can develop blind spots",
arXiv:2010.02178): mean feature maps, mean filters and a blind-spot sweep.

* :func:`mean_feature_maps`: the mean activation of chosen layers over a data set and all channels, one
  ``(H, W)`` map per layer; uneven padding shows as lines or skew at one border. :func:`plot_maps` draws a grid.
* :func:`mean_filters`: per convolution the mean ``k x k`` filter over all output and input channels, with the
  mass of its left/right columns and top/bottom rows; a layer that pads unevenly learns lopsided filters.
* :func:`blind_spot_sweep`: paste a stimulus at every location of a background image and record the model's
  score: the map of where the model can (not) see it.
* :func:`map_asymmetry`: how far a map is from its mirror image (left/right and top/bottom).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from ..core.errors import check_choice, check_positive_int
from ..core.guard import ModelGuard, model_device
from ..core.hooks import LayerTap
from ..core.targets import Target


def _resolve_layers(model: nn.Module, layers: Any) -> dict[str, nn.Module]:
    names = {m: n for n, m in model.named_modules()}
    modules = dict(model.named_modules())
    items = [layers] if isinstance(layers, (str, nn.Module)) else list(layers) if layers is not None else None
    if not items:
        raise ValueError("layers must name at least one layer of the model (a name, a module or a sequence of them)")
    out: dict[str, nn.Module] = {}
    for item in items:
        if isinstance(item, str):
            if item not in modules:
                raise ValueError(f"layers: the model has no layer named {item!r}")
            out[item] = modules[item]
        elif isinstance(item, nn.Module):
            if item not in names:
                raise ValueError(f"layers: {type(item).__name__} is not a submodule of the model")
            out[names[item]] = item
        else:
            raise TypeError(f"layers must be layer names or modules; received {type(item).__name__}")
    return out


def _batches(data: Any, batch_size: int) -> Any:
    if isinstance(data, Tensor):
        for i in range(0, data.shape[0], batch_size):
            yield data[i : i + batch_size]
        return
    for item in data:  # a DataLoader or any iterable of batches, (inputs, labels) pairs allowed
        yield item[0] if isinstance(item, (tuple, list)) else item


@torch.no_grad()
def mean_feature_maps(model: nn.Module, layers: Any, data: Any, batch_size: int = 128) -> dict[str, Tensor]:
    """Mean output of each layer over the examples of ``data`` and over channels.

    Args:
        model: the model (run in eval mode, left as it was).
        layers: a layer name or module, or a sequence of them.
        data: an ``(N, C, H, W)`` tensor, or an iterable of batches (tensors or ``(inputs, labels)`` pairs).
        batch_size: rows per forward when ``data`` is a tensor.
    Returns:
        ``{layer name: (H', W') float64 map}`` (for an output ``(N, C, *spatial)``: the mean over N and C).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; received {type(model).__name__}")
    check_positive_int(batch_size, "batch_size")
    chosen = _resolve_layers(model, layers)
    sums: dict[str, Tensor] = {}
    count = 0
    device = model_device(model, torch.device("cpu"))
    with ModelGuard(model):
        model.eval()
        taps = {n: LayerTap(m) for n, m in chosen.items()}
        for tap in taps.values():
            tap.__enter__()
        try:
            for batch in _batches(data, batch_size):
                for tap in taps.values():
                    tap.values = []
                model(batch.to(device))
                for n, tap in taps.items():
                    v = tap.values[0]
                    if not isinstance(v, Tensor) or v.dim() < 3:
                        raise ValueError(f"layer {n!r} must output (N, C, *spatial); its output has shape "
                                         f"{getattr(v, 'shape', type(v).__name__)}")
                    s = v.detach().double().sum(dim=(0, 1)).cpu() / v.shape[1]
                    sums[n] = sums[n] + s if n in sums else s
                count += batch.shape[0]
        finally:
            for tap in taps.values():
                tap.__exit__(None, None, None)
    if count == 0:
        raise ValueError("data holds no examples")
    return {n: s / count for n, s in sums.items()}


@dataclass(frozen=True)
class MeanFilter:
    """The mean filter of one convolution and the mass of its border rows/columns.

    ``filter``: ``(k_h, k_w)`` mean over output and input channels (of ``|w|`` when ``absolute``); ``left`` /
    ``right`` / ``top`` / ``bottom``: sums of the first/last column/row; ``lr_asymmetry = (right - left) /
    (|right| + |left|)`` and ``tb_asymmetry = (bottom - top) / (|bottom| + |top|)`` (0 for a symmetric filter,
    NaN if both are 0)."""

    name: str
    filter: Tensor
    left: float
    right: float
    top: float
    bottom: float

    @property
    def lr_asymmetry(self) -> float:
        d = abs(self.right) + abs(self.left)
        return (self.right - self.left) / d if d > 0 else float("nan")

    @property
    def tb_asymmetry(self) -> float:
        d = abs(self.bottom) + abs(self.top)
        return (self.bottom - self.top) / d if d > 0 else float("nan")


def mean_filters(model: nn.Module, absolute: bool = True, min_kernel: int = 3) -> list[MeanFilter]:
    """The mean filter of every 2-d convolution of ``model`` whose kernel is at least ``min_kernel`` in both
    dimensions (:class:`MeanFilter`, in module order). ``absolute`` averages ``|w|`` (masses that cannot cancel)
    instead of ``w``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; received {type(model).__name__}")
    check_positive_int(min_kernel, "min_kernel")
    out = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d) and min(m.kernel_size) >= min_kernel:
            w = m.weight.detach().double().cpu()
            f = (w.abs() if absolute else w).mean(dim=(0, 1))
            out.append(MeanFilter(name, f, float(f[:, 0].sum()), float(f[:, -1].sum()), float(f[0].sum()),
                                  float(f[-1].sum())))
    return out


def map_asymmetry(values: Tensor) -> tuple[float, float]:
    """``(left/right, top/bottom)`` asymmetry of a 2-d map: ``mean|M - mirror(M)| / (2 mean|M - mean(M)|)``, 0 for
    a mirror-symmetric map, about 1 for an unrelated one (NaN for a constant map)."""
    if not isinstance(values, Tensor) or values.dim() != 2:
        raise ValueError(f"values must be a 2-d tensor; received {getattr(values, 'shape', type(values).__name__)}")
    m = values.double()
    spread = 2 * (m - m.mean()).abs().mean()
    if spread == 0:
        return float("nan"), float("nan")
    return float((m - m.flip(1)).abs().mean() / spread), float((m - m.flip(0)).abs().mean() / spread)


@torch.no_grad()
def blind_spot_sweep(model: nn.Module, background: Tensor, stimulus: Tensor, target: Any,
                     stride: int = 1, mask: Tensor | None = None, score: str = "logit",
                     batch_size: int = 256) -> Tensor:
    """Paste ``stimulus`` at every location of ``background`` and record the model's ``target`` score.

    Args:
        model: image model ``(N, C, H, W) -> (N, K)`` (run in eval mode, left as it was).
        background: ``(C, H, W)`` or ``(1, C, H, W)``.
        stimulus: ``(C, h, w)`` (or ``(h, w)``, broadcast over channels), pasted with its top-left corner at
            ``(i * stride, j * stride)``.
        target: the output to score: int class, tuple, or a callable ``output -> (N,)`` (as in
            :mod:`pellucid.attr`).
        mask: optional ``(h, w)`` bool: only these stimulus pixels are pasted (a non-rectangular object).
        score: ``"logit"`` (the raw output) or ``"probability"`` (softmax over dim 1 first).
        batch_size: images per forward.
    Returns:
        ``(n_i, n_j)`` float64 scores, ``n_i = (H - h) // stride + 1`` (likewise ``n_j``).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; received {type(model).__name__}")
    check_choice(score, "score", ("logit", "probability"))
    check_positive_int(stride, "stride")
    check_positive_int(batch_size, "batch_size")
    if not isinstance(background, Tensor) or background.dim() not in (3, 4) or (background.dim() == 4 and background.shape[0] != 1):
        raise ValueError(f"background must be (C, H, W) or (1, C, H, W); received {getattr(background, 'shape', type(background).__name__)}")
    bg = background.reshape(background.shape[-3:])
    if not isinstance(stimulus, Tensor) or stimulus.dim() not in (2, 3):
        raise ValueError(f"stimulus must be (C, h, w) or (h, w); received {getattr(stimulus, 'shape', type(stimulus).__name__)}")
    st = stimulus.expand(bg.shape[0], *stimulus.shape[-2:]) if stimulus.dim() == 2 else stimulus
    if st.shape[0] != bg.shape[0] or st.shape[1] > bg.shape[1] or st.shape[2] > bg.shape[2]:
        raise ValueError(f"stimulus {tuple(st.shape)} must have the background's channels and fit in it {tuple(bg.shape)}")
    h, w = st.shape[1:]
    keep = torch.ones(h, w, dtype=torch.bool) if mask is None else mask.to(torch.bool)
    if keep.shape != (h, w):
        raise ValueError(f"mask must be ({h}, {w}); received {tuple(keep.shape)}")
    ni, nj = (bg.shape[1] - h) // stride + 1, (bg.shape[2] - w) // stride + 1
    device = model_device(model, bg.device)
    bg, st, keep = bg.to(device), st.to(device, bg.dtype), keep.to(device)
    out = torch.empty(ni * nj, dtype=torch.float64)
    with ModelGuard(model):
        model.eval()
        for start in range(0, ni * nj, batch_size):
            pos = torch.arange(start, min(start + batch_size, ni * nj))
            imgs = bg.unsqueeze(0).repeat(pos.shape[0], 1, 1, 1)
            for r, p in enumerate(pos.tolist()):
                i, j = (p // nj) * stride, (p % nj) * stride
                region = imgs[r, :, i : i + h, j : j + w]
                imgs[r, :, i : i + h, j : j + w] = torch.where(keep, st, region)
            y = model(imgs)
            if score == "probability":
                y = y.softmax(1)
            out[pos] = Target(target, pos.shape[0]).select(y, torch.arange(pos.shape[0])).double().cpu()
    return out.reshape(ni, nj)


def plot_maps(maps: Mapping[str, Tensor], ncols: int = 4, cmap: str = "viridis", size: float = 2.2,
              title: str | None = None):
    """A grid of 2-d maps (e.g. :func:`mean_feature_maps`, foveation maps), each with its own colour scale.
    Returns ``(fig, axes)``."""
    from ..viz._common import pyplot

    plt = pyplot()
    check_positive_int(ncols, "ncols")
    n = len(maps)
    if n == 0:
        raise ValueError("maps is empty")
    cols = min(ncols, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows + (0.4 if title else 0)), squeeze=False,
                             layout="constrained")
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, (name, m) in zip(axes.flat, maps.items()):
        ax.imshow(m.detach().double().cpu().numpy(), cmap=cmap)
        ax.set_title(name, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    return fig, axes


__all__: Sequence[str] = ["MeanFilter", "blind_spot_sweep", "map_asymmetry", "mean_feature_maps", "mean_filters",
                          "plot_maps"]
