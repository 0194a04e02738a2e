"""A tiny model zoo for demos, tests and tutorials: a CNN, an MLP and a one-layer transformer text classifier.

All are plain ``nn.Module`` s built from standard layers, small enough to train on a CPU in seconds
(:func:`pellucid.data.train_quick`).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


class SimpleCNN(nn.Module):
    """Image classifier ``(N, C, H, W) -> (N, n_classes)`` logits.

    Three 3x3 conv-ReLU blocks (max-pooling after the first two), global max pooling (the object may be anywhere
    and is small: the maximum finds it, an average would dilute it) and a linear head. ``features`` is the last
    convolutional layer, the natural layer for Grad-CAM (Selvaraju et al., 2017, arXiv:1610.02391).
    """

    def __init__(self, in_channels: int = 3, n_classes: int = 4, width: int = 8):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.features = nn.Conv2d(2 * width, 2 * width, 3, padding=1)
        self.relu3 = nn.ReLU()
        self.global_pool = nn.AdaptiveMaxPool2d(1)
        self.head = nn.Linear(2 * width, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        x = self.relu3(self.features(x))
        return self.head(self.global_pool(x).flatten(1))


class MLP(nn.Module):
    """Fully connected network ``(N, n_in) -> (N, n_out)``: ``len(hidden)`` Linear-ReLU layers and a linear head."""

    def __init__(self, n_in: int, n_out: int, hidden: tuple[int, ...] = (64, 32)):
        super().__init__()
        layers: list[nn.Module] = []
        width = n_in
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, n_out))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class TinyTransformer(nn.Module):
    """Token classifier ``ids (N, L) -> (N, n_classes)``: embedding + learned positions, one encoder layer
    (Vaswani et al., 2017, arXiv:1706.03762), masked mean pooling, linear head.

    ``embedding`` is the layer to attribute to (layer integrated gradients); ``forward_embeds`` takes the
    embeddings directly. ``attention_mask`` ``(N, L)`` (1 = token, 0 = padding) is optional in both.
    """

    def __init__(self, vocab: int = 64, dim: int = 32, n_classes: int = 2, max_length: int = 64, heads: int = 2):
        super().__init__()
        self.embedding = nn.Embedding(vocab, dim)
        self.position = nn.Parameter(torch.randn(1, max_length, dim) * 0.02)
        self.encoder = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.0, batch_first=True)
        self.head = nn.Linear(dim, n_classes)

    def forward_embeds(self, emb: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        h = emb + self.position[:, : emb.shape[1]]
        pad = None if attention_mask is None else attention_mask == 0
        h = self.encoder(h, src_key_padding_mask=pad)
        if attention_mask is None:
            return self.head(h.mean(1))
        m = attention_mask.to(h.dtype).unsqueeze(-1)
        return self.head((h * m).sum(1) / m.sum(1).clamp_min(1))

    def forward(self, ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        return self.forward_embeds(self.embedding(ids), attention_mask)
