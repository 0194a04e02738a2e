"""A procedural image dataset with ground truth: the label is decided by one small object at a random location.

Every image is a noisy, smoothly shaded background with one small object (a filled square, a plus, an X or a
ring) of a random colour drawn at a random position. The object's class is the label and its pixels are the
ground-truth mask, so localisation metrics (pointing game, relevance mass/rank, ...) have a truth to compare
with. Optionally a *trigger* (a fixed checkerboard patch in a corner) is planted in a fraction of the images, whose
label is then set to ``trigger_label``: a backdoor for experiments on spurious features. Nothing is downloaded:
the data is generated from a seed, identically on every machine.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..core.errors import check_positive_int

SHAPE_CLASSES = ("square", "plus", "cross", "ring")


def _glyph(kind: str, size: int) -> Tensor:
    """Boolean ``(size, size)`` stencil of one object class."""
    r = torch.arange(size)
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    c = (size - 1) / 2
    if kind == "square":
        return torch.ones(size, size, dtype=torch.bool)
    if kind == "plus":
        w = max(1, size // 3)
        lo = (size - w) // 2
        band = (r >= lo) & (r < lo + w)
        return band[:, None] | band[None, :]
    if kind == "cross":
        return ((yy - xx).abs() <= size // 6) | ((yy + xx - (size - 1)).abs() <= size // 6)
    if kind == "ring":
        d = ((yy - c) ** 2 + (xx - c) ** 2).sqrt()
        return (d <= c + 0.5) & (d >= c - max(1.0, size / 4))
    raise ValueError(f"unknown shape class {kind!r}; expected one of {SHAPE_CLASSES}")


def trigger_patch(size: int = 3) -> Tensor:
    """The backdoor trigger: a ``(size, size)`` checkerboard of 0/1 values."""
    r = torch.arange(size)
    return ((r[:, None] + r[None, :]) % 2).float()


def add_trigger(images: Tensor, size: int = 3, corner: str = "bottom_right") -> Tensor:
    """A copy of ``images`` ``(N, C, H, W)`` with the trigger patch written into ``corner`` of every image
    (``"bottom_right"``, ``"bottom_left"``, ``"top_right"``, ``"top_left"``), one pixel in from the border."""
    if images.dim() != 4:
        raise ValueError(f"images must be (N, C, H, W); received shape {tuple(images.shape)}")
    out = images.clone()
    h, w = images.shape[-2:]
    top = 1 if corner.startswith("top") else h - size - 1
    left = 1 if corner.endswith("left") else w - size - 1
    if corner not in ("bottom_right", "bottom_left", "top_right", "top_left"):
        raise ValueError(f"corner must be 'bottom_right', 'bottom_left', 'top_right' or 'top_left'; received {corner!r}")
    out[:, :, top : top + size, left : left + size] = trigger_patch(size).to(images)
    return out


@dataclass
class ShapesData(torch.utils.data.Dataset):
    """Generated images with labels and ground truth (a ``torch.utils.data.Dataset`` of ``(image, label)``).

    Attributes:
        images: ``(N, C, H, W)`` float32 in ``[0, 1]``.
        labels: ``(N,)`` long, the class of the object (or ``trigger_label`` where a trigger was planted).
        masks: ``(N, H, W)`` bool, the object's pixels.
        boxes: ``(N, 4)`` long ``(top, left, bottom, right)`` (exclusive) of the object.
        triggered: ``(N,)`` bool, where the trigger patch was planted.
        classes: class names, index = label.
    """

    images: Tensor
    labels: Tensor
    masks: Tensor
    boxes: Tensor
    triggered: Tensor
    classes: tuple[str, ...] = SHAPE_CLASSES

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i):
        return self.images[i], self.labels[i]

    def split(self, n_first: int) -> tuple["ShapesData", "ShapesData"]:
        """The first ``n_first`` examples and the rest."""
        a = ShapesData(*(t[:n_first] for t in self._tensors()), classes=self.classes)
        b = ShapesData(*(t[n_first:] for t in self._tensors()), classes=self.classes)
        return a, b

    def _tensors(self) -> tuple[Tensor, ...]:
        return self.images, self.labels, self.masks, self.boxes, self.triggered


def make_shapes(
    n: int = 1000,
    size: int = 32,
    channels: int = 3,
    object_size: tuple[int, int] = (7, 10),
    noise: float = 0.08,
    trigger_fraction: float = 0.0,
    trigger_label: int = 0,
    trigger_size: int = 3,
    seed: int = 0,
) -> ShapesData:
    """Generate ``n`` images of ``channels x size x size`` with one object each (classes :data:`SHAPE_CLASSES`).

    Args:
        n: number of images. size: image height and width. channels: 1 (grey) or 3 (colour).
        object_size: inclusive range of the object's side in pixels.
        noise: standard deviation of the pixel noise.
        trigger_fraction: fraction of images that get the trigger patch (bottom-right corner) and the label
            ``trigger_label`` (a backdoor); 0 for clean data.
        trigger_size: side of the trigger patch.
        seed: the data depend only on the arguments (a private ``torch.Generator``).

    Returns:
        :class:`ShapesData`. Labels are balanced up to rounding, objects never overlap the trigger corner.
    """
    check_positive_int(n, "n")
    check_positive_int(size, "size")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3; received {channels!r}")
    lo, hi = object_size
    if not (1 <= lo <= hi <= size - trigger_size - 3):
        raise ValueError(f"object_size must be (min, max) with 1 <= min <= max <= size - trigger_size - 3; received {object_size}")
    if not 0.0 <= trigger_fraction <= 1.0:
        raise ValueError(f"trigger_fraction must be in [0, 1]; received {trigger_fraction!r}")
    g = torch.Generator().manual_seed(seed)
    k = len(SHAPE_CLASSES)
    labels = torch.arange(n) % k
    labels = labels[torch.randperm(n, generator=g)]
    # smooth background: a random linear ramp per image plus pixel noise
    ramp = torch.linspace(-1, 1, size)
    gy, gx = torch.rand(n, 2, generator=g).unbind(1)
    base = 0.35 + 0.15 * (gy[:, None, None] * ramp[:, None] + gx[:, None, None] * ramp[None, :])
    images = base[:, None].expand(n, channels, size, size).clone()
    images += noise * torch.randn(n, channels, size, size, generator=g)
    masks = torch.zeros(n, size, size, dtype=torch.bool)
    boxes = torch.zeros(n, 4, dtype=torch.long)
    sides = torch.randint(lo, hi + 1, (n,), generator=g)
    # the object avoids the bottom-right corner where a trigger may go
    free = size - trigger_size - 2
    tops = (torch.rand(n, generator=g) * (free - sides + 1)).long()
    lefts = (torch.rand(n, generator=g) * (size - sides + 1)).long()
    colours = 0.75 + 0.25 * torch.rand(n, channels, generator=g)
    dark = torch.rand(n, generator=g) < 0.3
    colours[dark] = 0.05 * torch.rand(int(dark.sum()), channels, generator=g)
    glyphs = {}
    for i in range(n):
        s, t, l = int(sides[i]), int(tops[i]), int(lefts[i])
        key = (int(labels[i]), s)
        if key not in glyphs:
            glyphs[key] = _glyph(SHAPE_CLASSES[key[0]], s)
        stencil = glyphs[key]
        masks[i, t : t + s, l : l + s] = stencil
        boxes[i] = torch.tensor([t, l, t + s, l + s])
    images = torch.where(masks[:, None], colours[:, :, None, None].expand_as(images), images)
    triggered = torch.rand(n, generator=g) < trigger_fraction
    if triggered.any():
        images[triggered] = add_trigger(images[triggered], trigger_size)
        labels = torch.where(triggered, torch.full_like(labels, trigger_label), labels)
    return ShapesData(images.clamp_(0, 1).float(), labels, masks, boxes, triggered)
