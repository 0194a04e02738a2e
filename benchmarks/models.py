"""The two benchmark models of DESIGN section 6 and their inputs (random weights, seeded; nothing is downloaded).

* ``cnn``: :class:`BenchCNN`, a small image classifier on 3x32x32, batch 16.
* ``transformer``: :class:`TextClassifier`, a small transformer text classifier attributed at its embeddings,
  batch 8 x length 64. Its ``forward(embeddings, attention_mask)`` takes the embeddings; the mask is passed with
  ``forward_kwargs={"attention_mask": mask}``.

:func:`workload` returns a :class:`Workload` (model, inputs, forward kwargs, target and a factory for ``b`` rows
of the same shape, used to measure per-row costs at any batch size).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class BenchCNN(nn.Module):
    """3x32x32 -> 10 classes: two conv-ReLU-maxpool stages (16 and 32 channels), a 128-unit ReLU layer, a linear head."""

    def __init__(self, n_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(32 * 8 * 8, 128)
        self.fc2 = nn.Linear(128, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(self.relu(self.conv1(x)))
        x = self.pool(self.relu(self.conv2(x)))
        return self.fc2(self.relu(self.fc1(x.flatten(1))))


class Block(nn.Module):
    """Pre-norm encoder block: multi-head self-attention (explicit softmax) and a ReLU MLP."""

    def __init__(self, dim: int, heads: int, hidden: int):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.ff1 = nn.Linear(dim, hidden)
        self.ff2 = nn.Linear(hidden, dim)

    def forward(self, h: Tensor, bias: Tensor) -> Tensor:
        b, length, dim = h.shape
        q, k, v = self.qkv(self.norm1(h)).reshape(b, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dim // self.heads) + bias, dim=-1)
        h = h + self.proj((att @ v).transpose(1, 2).reshape(b, length, dim))
        return h + self.ff2(F.relu(self.ff1(self.norm2(h))))


class TextClassifier(nn.Module):
    """Token ids -> embeddings (+ learned positions) -> 2 encoder blocks (dim 64, 4 heads, MLP 256) -> masked mean
    pool -> 2 classes. ``forward(embeddings (B, L, 64), attention_mask (B, L) of 0/1) -> logits (B, 2)``;
    ``embed(ids)`` gives the embeddings to attribute to."""

    def __init__(self, vocab: int = 1000, dim: int = 64, heads: int = 4, hidden: int = 256, layers: int = 2,
                 length: int = 64, n_classes: int = 2):
        super().__init__()
        self.embedding = nn.Embedding(vocab, dim)
        self.position = nn.Parameter(torch.randn(1, length, dim) * 0.02)
        self.blocks = nn.ModuleList(Block(dim, heads, hidden) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, n_classes)

    def embed(self, ids: Tensor) -> Tensor:
        return self.embedding(ids)

    def forward(self, embeddings: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        h = embeddings + self.position[:, : embeddings.shape[1]]
        if attention_mask is None:
            attention_mask = torch.ones(h.shape[:2], dtype=h.dtype, device=h.device)
        mask = attention_mask.to(h.dtype)
        bias = ((1.0 - mask) * -1e4)[:, None, None, :]  # finite: no inf - inf in difference quotients
        for block in self.blocks:
            h = block(h, bias)
        pooled = (self.norm(h) * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1.0)
        return self.head(pooled)


@dataclass
class Workload:
    """A benchmark case: ``model(inputs, **forward_kwargs)``, the attributed ``target`` and ``rows(b)``, a
    ``(inputs, forward_kwargs)`` pair of ``b`` rows like those the methods build (for per-row cost)."""

    name: str
    model: nn.Module
    inputs: Tensor
    target: Tensor
    forward_kwargs: dict[str, Any] = field(default_factory=dict)
    rows: Callable[[int], tuple[Tensor, dict[str, Any]]] = None  # type: ignore[assignment]

    @property
    def n(self) -> int:
        return self.inputs.shape[0]


def _cnn(seed: int) -> Workload:
    torch.manual_seed(seed)
    model = BenchCNN().eval()
    x = torch.randn(16, 3, 32, 32)
    with torch.no_grad():
        target = model(x).argmax(1)

    def rows(b: int):
        return torch.randn(b, 3, 32, 32), {}

    return Workload("cnn", model, x, target, {}, rows)


def _transformer(seed: int) -> Workload:
    torch.manual_seed(seed)
    model = TextClassifier().eval()
    n, length = 8, 64
    ids = torch.randint(1, 1000, (n, length))
    lengths = torch.tensor([64, 60, 56, 48, 64, 40, 32, 64])
    mask = (torch.arange(length)[None, :] < lengths[:, None]).float()
    with torch.no_grad():
        emb = model.embed(ids)
        target = model(emb, attention_mask=mask).argmax(1)

    def rows(b: int):
        idx = torch.arange(b) % n
        return emb[idx].clone(), {"attention_mask": mask[idx].clone()}

    return Workload("transformer", model, emb, target, {"attention_mask": mask}, rows)


WORKLOADS: dict[str, Callable[[int], Workload]] = {"cnn": _cnn, "transformer": _transformer}


def workload(name: str, seed: int = 0) -> Workload:
    """The named benchmark workload (``"cnn"`` or ``"transformer"``), built deterministically from ``seed``."""
    if name not in WORKLOADS:
        raise ValueError(f"workload must be one of {sorted(WORKLOADS)}; received {name!r}")
    return WORKLOADS[name](seed)


# -- shared case settings (torch only, so the Captum worker of :mod:`captum_worker` builds the same calls) --------
N_BASELINES = 5  # size of the baseline distribution given to GradientShap and DeepLiftShap


def baseline_distribution(x: Tensor) -> Tensor:
    """The baseline samples given to GradientShap and DeepLiftShap: ``N_BASELINES`` draws of N(0, 0.1^2)."""
    g = torch.Generator().manual_seed(1)
    return torch.randn((N_BASELINES,) + tuple(x.shape[1:]), generator=g) * 0.1


def perturbation_masks(model_name: str, x: Tensor) -> tuple[Tensor, Tensor]:
    """Feature masks of the perturbation benchmarks: (features, coarse 8 groups for exact Shapley). CNN: 64
    superpixels of 4x4 pixels (all channels together); transformer: one feature per token."""
    if model_name == "cnn":
        pix = torch.arange(32)
        sp = (pix.reshape(32, 1) // 4) * 8 + pix.reshape(1, 32) // 4
        return sp.reshape(1, 1, 32, 32), (sp // 8).reshape(1, 1, 32, 32)
    tok = torch.arange(x.shape[1]).reshape(1, -1, 1)
    return tok, tok // 8


def occlusion_windows(model_name: str, x: Tensor) -> tuple[tuple[int, ...], tuple[int, ...], int, str]:
    """``(sliding_window_shapes, strides, number of windows, note)`` of the Occlusion benchmark."""
    if model_name == "cnn":
        return (3, 8, 8), (3, 4, 4), ((32 - 8) // 4 + 1) ** 2, "8x8 window, stride 4"
    return (1, 64), (1, 64), x.shape[1], "1-token window"


class TokenModel(nn.Module):
    """The benchmark transformer fed token ids: ``forward(ids, attention_mask) = model(model.embed(ids), mask)``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        return self.model(self.model.embed(ids), attention_mask=attention_mask)


def token_workload() -> tuple[TokenModel, Tensor, Tensor, dict[str, Tensor]]:
    """The transformer workload fed token ids (for LayerIntegratedGradients at the embedding layer)."""
    w = workload("transformer")
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(1, 1000, (w.n, w.inputs.shape[1]), generator=g)
    model = TokenModel(w.model).eval()
    with torch.no_grad():
        target = model(ids, **w.forward_kwargs).argmax(1)
    return model, ids, target, dict(w.forward_kwargs)
