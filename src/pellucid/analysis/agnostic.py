"""Input-agnostic (class-level) saliency and a backdoor scan built on it.

Akhtar & Jalwana 2023, "Rethinking interpretation: input-agnostic saliency mapping of deep visual classifiers"
(AAAI, arXiv:2303.17836): independent points are drawn from an unrestricted distribution (noise, no data), and a
single perturbation ``rho`` shared by all of them is moved over the model's loss surface so that ``x + rho`` is
classified as the target class; the gradient information of many such nudges accumulates in ``rho``, which is
kept on a norm-bounded surface. What the model needs to see to call *anything* "class t" appears as a map: a
class's shape, or, for a backdoored class, its trigger, which is the shortest way to it from everywhere.

The paper fixes the outline (unrestricted samples, integrated normalised gradients, projection, scaling,
refinement); where it leaves values open, :class:`AgnosticConfig` documents what is used here and why. Every
choice is a field of the config.
"""
from __future__ import annotations

import math
import operator
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..core.guard import ModelGuard


@dataclass
class AgnosticConfig:
    """Settings of :func:`class_saliency`.

    * ``distribution``: ``"uniform"`` on ``[low, high]`` or ``"gaussian"`` (mean mid-range, std a sixth of the
      range, clamped): an unrestricted distribution with no image content (paper: unrestricted data points).
    * ``iterations`` x ``batch_size``: fresh samples every iteration (default 300 x 32): the map integrates
      gradients over ~10k independent points; more iterations give smoother maps.
    * ``optimizer``: ``"sgd"`` (default: plain normalised gradient steps accumulated in ``rho``; on a linear model
      ``rho`` is then exactly proportional to the class weight difference) or ``"adam"`` (first and second
      moments, as the paper's accumulation; it equalises the per-pixel step, which spreads the map: on the
      backdoored shapes CNN the trigger IoU was 0.38 with Adam against 0.80 with plain steps, same budget, so
      plain steps are the default and the study reports both).
      ``lr`` (0.01 of the input range per step), ``betas`` (0.9, 0.999), ``eps`` 1e-8.
    * The loss is cross-entropy toward ``target``; each iteration's gradient is normalised by its L2 norm (the
      scale of the loss surface must not set the step size).
    * ``norm`` / ``radius``: projection onto the ``"l2"`` (default) or ``"linf"`` ball. The default radius is 10% of
      the input range times the square root of the number of elements for l2 (a perturbation of average size
      10% per element), 10% of the range for linf: small enough that ``rho`` cannot paint a whole object,
      large enough to reach the target class.
    * ``refine_steps`` (default 50): after accumulation, the map alone (scaled into the input range) is refined
      by gradient ascent on the target's log-probability with the same normalised steps, restricted to pixels
      already salient (the top ``refine_mask`` fraction, default 0.2, by magnitude) so refinement sharpens
      without inventing new features (model fidelity, paper section "refinement").
    * ``low`` / ``high``: the input range (default 0..1, the built-in images).
    """

    iterations: int = 300
    batch_size: int = 32
    distribution: str = "uniform"
    optimizer: str = "sgd"
    lr: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    norm: str = "l2"
    radius: float | None = None
    refine_steps: int = 50
    refine_mask: float = 0.2
    low: float = 0.0
    high: float = 1.0

    def check(self) -> None:
        for name in ("iterations", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int; received {v!r}")
        if isinstance(self.refine_steps, bool) or not isinstance(self.refine_steps, int) or self.refine_steps < 0:
            raise ValueError(f"refine_steps must be a non-negative int; received {self.refine_steps!r}")
        if self.distribution not in ("uniform", "gaussian"):
            raise ValueError(f"distribution must be 'uniform' or 'gaussian'; received {self.distribution!r}")
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd'; received {self.optimizer!r}")
        if self.norm not in ("l2", "linf"):
            raise ValueError(f"norm must be 'l2' or 'linf'; received {self.norm!r}")
        if not self.high > self.low:
            raise ValueError(f"high ({self.high}) must exceed low ({self.low})")
        if not 0.0 < self.refine_mask <= 1.0:
            raise ValueError(f"refine_mask must be in (0, 1]; received {self.refine_mask!r}")
        if not self.lr > 0 or (self.radius is not None and not self.radius > 0):
            raise ValueError("lr and radius must be positive")


@dataclass
class ClassSaliency:
    """Result of :func:`class_saliency` for one class.

    ``perturbation``: the accumulated ``rho`` ``input_shape``; ``map``: ``rho`` scaled into ``[low, high]`` and
    refined (what is shown); ``saliency``: ``|rho|`` summed over channels ``(H, W)`` (for images) or ``|rho|``;
    ``stats``: per-iteration mean loss and fooling rate (fraction of noise samples classified as the target with
    ``rho`` added), the final fooling rate, ``rho``'s norm, and the map's own target probability."""

    target: int
    perturbation: Tensor
    map: Tensor
    saliency: Tensor
    stats: dict[str, Any] = field(default_factory=dict)


def _sample(cfg: AgnosticConfig, shape: tuple[int, ...], gen: torch.Generator, device: torch.device) -> Tensor:
    if cfg.distribution == "uniform":
        return cfg.low + (cfg.high - cfg.low) * torch.rand(shape, generator=gen).to(device)
    mid, sd = (cfg.low + cfg.high) / 2, (cfg.high - cfg.low) / 6
    return (mid + sd * torch.randn(shape, generator=gen)).clamp(cfg.low, cfg.high).to(device)


def _project(rho: Tensor, norm: str, radius: float) -> Tensor:
    if norm == "linf":
        return rho.clamp(-radius, radius)
    n = rho.norm()
    return rho * (radius / n) if n > radius else rho


def class_saliency(model: nn.Module, target: int, input_shape: Sequence[int], config: AgnosticConfig | None = None,
                   seed: int = 0, **overrides: Any) -> ClassSaliency:
    """The input-agnostic saliency map of class ``target`` for inputs of ``input_shape`` (without the batch dim,
    e.g. ``(3, 32, 32)``). ``config`` (or keyword overrides of its fields) sets every choice; ``seed`` makes the run
    deterministic. The model is left as it came (evaluated in its current mode, parameters frozen inside)."""
    cfg = AgnosticConfig(**{**(asdict(config) if config else {}), **overrides})
    cfg.check()
    shape = _input_shape(input_shape)
    if isinstance(target, bool) or not isinstance(target, int) or target < 0:
        raise ValueError(f"target must be a non-negative class index; received {target!r}")
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    span = cfg.high - cfg.low
    radius = cfg.radius if cfg.radius is not None else (
        0.1 * span * math.sqrt(math.prod(shape)) if cfg.norm == "l2" else 0.1 * span)
    gen = torch.Generator().manual_seed(seed)
    rho = torch.zeros(shape, device=device)
    m, v = torch.zeros_like(rho), torch.zeros_like(rho)
    losses, fooling = [], []
    with ModelGuard(model):
        with torch.no_grad():
            try:
                n_classes = model(_sample(cfg, (1, *shape), gen, device)).shape[-1]
            except (RuntimeError, ValueError, TypeError, IndexError) as e:
                raise ValueError(f"input_shape {shape}: the model failed on an input of shape (1, *input_shape) = "
                                 f"{(1, *shape)} ({type(e).__name__}: {e}); input_shape must be the shape of one "
                                 "input the model takes, without the batch dim") from e
        if target >= n_classes:
            raise ValueError(f"target {target} is out of range for a model with {n_classes} outputs")
        labels = torch.full((cfg.batch_size,), target, device=device)
        for step in range(1, cfg.iterations + 1):
            x = _sample(cfg, (cfg.batch_size, *shape), gen, device)
            r = rho.clone().requires_grad_(True)
            with torch.enable_grad():
                logits = model((x + r).clamp(cfg.low, cfg.high))
                loss = F.cross_entropy(logits, labels)
                (g,) = torch.autograd.grad(loss, r)
            g = g / g.norm().clamp_min(1e-12)
            if cfg.optimizer == "adam":
                b1, b2 = cfg.betas
                m = b1 * m + (1 - b1) * g
                v = b2 * v + (1 - b2) * g * g
                step_dir = (m / (1 - b1**step)) / ((v / (1 - b2**step)).sqrt() + cfg.eps)
            else:
                step_dir = g * math.sqrt(g.numel())  # unit-RMS step, comparable to Adam's per-element step
            rho = _project(rho - cfg.lr * span * step_dir, cfg.norm, radius)
            losses.append(float(loss.detach()))
            fooling.append(float((logits.detach().argmax(dim=1) == target).float().mean()))
        refined, map_prob = _refine(model, rho, target, cfg)
        with torch.no_grad():
            x = _sample(cfg, (4 * cfg.batch_size, *shape), gen, device)
            final_fooling = float((model((x + rho).clamp(cfg.low, cfg.high)).argmax(dim=1) == target).float().mean())
    saliency = rho.abs().sum(dim=0) if len(shape) == 3 else rho.abs()
    stats = {"loss": losses, "fooling_rate": fooling, "final_fooling_rate": final_fooling,
             "perturbation_norm": float(rho.norm() if cfg.norm == "l2" else rho.abs().max()), "radius": radius,
             "map_target_probability": map_prob, "config": asdict(cfg), "seed": seed}
    return ClassSaliency(target, rho.detach(), refined, saliency.detach(), stats)


def _input_shape(input_shape: Any) -> tuple[int, ...]:
    """``input_shape`` as a tuple of positive ints, else a ``ValueError``/``TypeError`` naming it."""
    if isinstance(input_shape, (str, bytes)) or not isinstance(input_shape, (Sequence, torch.Size)):
        raise TypeError(f"input_shape must be a sequence of ints (one input's shape, e.g. (3, 32, 32)); received "
                        f"{type(input_shape).__name__}")
    try:
        shape = tuple(operator.index(s) for s in input_shape if not isinstance(s, bool))  # ints, numpy ints
    except TypeError:
        shape = ()
    if not shape or len(shape) != len(input_shape) or any(s < 1 for s in shape):
        raise ValueError(f"input_shape must be the shape of one input, positive ints such as (3, 32, 32); received "
                         f"{input_shape!r}")
    return shape


def _refine(model: nn.Module, rho: Tensor, target: int, cfg: AgnosticConfig) -> tuple[Tensor, float]:
    """Scale ``rho`` into the input range, then refine it on its most salient pixels (see the config)."""
    lo, hi = rho.min(), rho.max()
    img = cfg.low + (cfg.high - cfg.low) * (rho - lo) / (hi - lo).clamp_min(1e-12)
    mag = rho.abs().sum(dim=0, keepdim=True) if rho.dim() == 3 else rho.abs()
    k = max(1, int(cfg.refine_mask * mag.numel()))
    mask = (mag >= mag.flatten().topk(k).values[-1]).to(rho.dtype).expand_as(rho)
    span = cfg.high - cfg.low
    for _ in range(cfg.refine_steps):
        x = img.clone().unsqueeze(0).requires_grad_(True)
        with torch.enable_grad():
            logp = F.log_softmax(model(x), dim=-1)[0, target]
            (g,) = torch.autograd.grad(logp, x)
        g = g[0] * mask
        img = (img + cfg.lr * span * g / g.abs().max().clamp_min(1e-12)).clamp(cfg.low, cfg.high)
    with torch.no_grad():
        prob = float(F.softmax(model(img.unsqueeze(0)), dim=-1)[0, target])
    return img.detach(), prob


@dataclass
class BackdoorScan:
    """Result of :func:`backdoor_scan`: ``ranking`` (classes, most trigger-like first), per-class ``scores``
    (trigger-likeness), ``windows`` (``(top, left, size)`` of each class's candidate trigger), ``triggers``
    (the candidate patch cut from the map), ``fooling_rates`` and the per-class :class:`ClassSaliency`."""

    ranking: list[int]
    scores: dict[int, float]
    windows: dict[int, tuple[int, int, int]]
    triggers: dict[int, Tensor]
    fooling_rates: dict[int, float]
    maps: dict[int, ClassSaliency]


def concentration(saliency: Tensor, window: int) -> tuple[float, tuple[int, int]]:
    """Trigger-likeness of a saliency map ``(H, W)``: the largest share of its mass inside one ``window`` x
    ``window`` square, divided by that square's share of the area (1 = uniform, ``HW / window^2`` = all mass in one
    square), and the square's top-left corner."""
    h, w = saliency.shape
    if window > min(h, w):
        raise ValueError(f"window ({window}) must not exceed the map's height and width {tuple(saliency.shape)}")
    total = saliency.sum().clamp_min(1e-12)
    sums = F.avg_pool2d(saliency[None, None], window, stride=1)[0, 0] * window * window
    best = int(sums.flatten().argmax())
    top, left = divmod(best, sums.shape[1])
    share = float(sums.flatten()[best] / total)
    return share / (window * window / (h * w)), (top, left)


def backdoor_scan(model: nn.Module, classes: Sequence[int], input_shape: Sequence[int], window: int | None = None,
                  config: AgnosticConfig | None = None, seed: int = 0, **overrides: Any) -> BackdoorScan:
    """Rank ``classes`` by how trigger-like their input-agnostic maps are.

    For each class, :func:`class_saliency` gives ``|rho|``; its :func:`concentration` in the best ``window`` x
    ``window`` square (default: an eighth of the smaller side, at least 3) is the score, the square is the
    candidate trigger. A backdoored class is reached from any input by pasting the trigger, so its map
    concentrates in the trigger's square; a clean class's map spreads over a shape-like pattern."""
    shape = _input_shape(input_shape)
    if len(shape) != 3:
        raise ValueError(f"backdoor_scan needs image inputs (C, H, W); received input_shape {input_shape!r}")
    if isinstance(classes, (str, bytes)) or not isinstance(classes, Sequence) or not classes:
        raise ValueError(f"classes must be a non-empty sequence of class indices to scan; received {classes!r}")
    bad = [c for c in classes if isinstance(c, bool) or not isinstance(c, int) or c < 0]
    if bad:
        raise ValueError(f"classes must hold non-negative int class indices; received {bad[0]!r} in {classes!r}")
    if window is not None and (isinstance(window, bool) or not isinstance(window, int)
                               or not 1 <= window <= min(shape[1:])):
        raise ValueError(f"window must be an int from 1 to the smaller image side {min(shape[1:])} (or None for an "
                         f"eighth of it); received {window!r}")
    window = window or max(3, min(shape[1:]) // 8)
    scores, windows, triggers, fooling, maps = {}, {}, {}, {}, {}
    for c in classes:
        res = class_saliency(model, int(c), shape, config, seed=seed, **overrides)
        score, (top, left) = concentration(res.saliency, window)
        scores[c], windows[c] = score, (top, left, window)
        triggers[c] = res.map[:, top:top + window, left:left + window].clone()
        fooling[c] = res.stats["final_fooling_rate"]
        maps[c] = res
    ranking = sorted(scores, key=lambda k: -scores[k])
    return BackdoorScan(ranking, scores, windows, triggers, fooling, maps)


def saliency_iou(saliency: Tensor, mask: Tensor, translate: bool = False) -> float:
    """IoU between the ``mask.sum()`` most salient pixels of ``saliency`` ``(H, W)`` and the boolean ``mask``.

    ``translate=True`` takes the best IoU over every shift of the mask that keeps it inside the map: the
    measure for translation-invariant models (e.g. global pooling), whose trigger works wherever it appears."""
    if saliency.shape != mask.shape:
        raise ValueError(f"saliency {tuple(saliency.shape)} and mask {tuple(mask.shape)} must have the same shape")
    m = mask.bool()
    k = int(m.sum())
    if k == 0:
        raise ValueError("mask must mark at least one pixel")
    top = torch.zeros(saliency.numel(), dtype=torch.bool)
    top[saliency.flatten().topk(k).indices] = True
    top = top.reshape(saliency.shape)
    if not translate:
        return float((top & m).sum() / (top | m).sum())
    rows, cols = m.any(dim=1).nonzero()[:, 0], m.any(dim=0).nonzero()[:, 0]
    r0, r1, c0, c1 = int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())
    h, w = m.shape
    best = 0.0
    for dy in range(-r0, h - r1):
        for dx in range(-c0, w - c1):
            shifted = torch.roll(m, shifts=(dy, dx), dims=(0, 1))
            best = max(best, float((top & shifted).sum() / (top | shifted).sum()))
    return best
