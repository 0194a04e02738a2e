"""A procedural token-sequence dataset with ground truth, for the tiny transformer.

Each sequence holds random "filler" tokens and exactly one *key* token at a random position; the label is the
key's class (key tokens ``1 .. n_classes`` map to labels ``0 .. n_classes-1``). The key's position is the ground
truth of which token decides the label. Token 0 is padding; sequences have random lengths, so the attention mask
matters.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..core.errors import check_positive_int


@dataclass
class SequenceData(torch.utils.data.Dataset):
    """``ids`` ``(N, L)`` long, ``attention_mask`` ``(N, L)`` long, ``labels`` ``(N,)``, ``key_mask`` ``(N, L)`` bool."""

    ids: Tensor
    attention_mask: Tensor
    labels: Tensor
    key_mask: Tensor

    def __len__(self) -> int:
        return self.ids.shape[0]

    def __getitem__(self, i):
        return self.ids[i], self.labels[i]


def make_sequences(
    n: int = 2000, length: int = 16, vocab: int = 64, n_classes: int = 2, min_length: int = 6, seed: int = 0
) -> SequenceData:
    """Generate ``n`` padded sequences of at most ``length`` tokens from ``vocab`` (see the module docstring)."""
    for name, v in (("n", n), ("length", length), ("vocab", vocab), ("n_classes", n_classes), ("min_length", min_length)):
        check_positive_int(v, name)
    if vocab < n_classes + 2 or min_length > length:
        raise ValueError(f"need vocab >= n_classes + 2 and min_length <= length; received vocab={vocab}, "
                         f"n_classes={n_classes}, min_length={min_length}, length={length}")
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(min_length, length + 1, (n,), generator=g)
    pos = torch.arange(length)
    mask = pos[None, :] < lengths[:, None]
    ids = torch.randint(n_classes + 1, vocab, (n, length), generator=g)
    labels = torch.randint(0, n_classes, (n,), generator=g)
    key_pos = (torch.rand(n, generator=g) * lengths).long()
    key_mask = pos[None, :] == key_pos[:, None]
    ids = torch.where(key_mask, (labels + 1)[:, None], ids)
    ids = torch.where(mask, ids, torch.zeros_like(ids))
    return SequenceData(ids, mask.long(), labels, key_mask)
