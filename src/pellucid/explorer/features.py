"""What an example is, for the explorer: an image, or a token sequence attributed at the model's embedding layer.

A dataset is any sequence of ``(input, label)`` pairs (a ``torch.utils.data.Dataset`` such as
:class:`pellucid.data.ShapesData`, a list, or a pair of tensors ``(inputs, labels)``), or of mappings with a
``label`` (or ``labels``) entry, as rows of a Hugging Face dataset. ``input`` is a tensor without the batch
dimension, or a mapping of tensors whose first entry (or ``input_key``) is the model's positional input and whose
other entries are passed by keyword (e.g. ``attention_mask``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor, nn


@dataclass
class ImageFeature:
    """Examples are images ``(C, H, W)`` (values in [0, 1] display as they are; others are min-max scaled)."""

    name: str = "image"
    modality = "image"


@dataclass
class TextFeature:
    """Examples are token ids ``(L,)``; attributions are taken in the output space of ``embedding`` (a module of the
    model or its name) and summed over the embedding dimension to one score per token.

    Args:
        embedding: the token-embedding layer.
        tokens: ``ids (L,) -> list of L strings`` (e.g. a tokenizer's ``convert_ids_to_tokens``) or a vocabulary
            (sequence of strings indexed by id).
        pad_id: the id whose embedding is the ``"pad"`` baseline.
        keep_ids: ids kept in the baseline (e.g. ``[CLS]``/``[SEP]``); ``mask_key``: the keyword entry that marks
            real tokens (1) and padding (0); padding is not shown.
    """

    embedding: Any
    tokens: Callable[[Sequence[int]], list[str]] | Sequence[str]
    pad_id: int = 0
    keep_ids: Sequence[int] = ()
    mask_key: str | None = "attention_mask"
    name: str = "text"
    modality = "text"

    def token_strings(self, ids: Tensor) -> list[str]:
        seq = [int(i) for i in ids.reshape(-1)]
        if callable(self.tokens):
            out = list(self.tokens(seq))
        else:
            vocab = self.tokens
            out = [str(vocab[i]) if 0 <= i < len(vocab) else f"<{i}>" for i in seq]
        if len(out) != len(seq):
            raise ValueError(f"tokens returned {len(out)} strings for {len(seq)} ids; it must return one per id")
        return [str(t) for t in out]

    def module(self, model: nn.Module) -> nn.Module:
        if isinstance(self.embedding, nn.Module):
            return self.embedding
        mods = dict(model.named_modules())
        if self.embedding not in mods:
            raise ValueError(f"embedding {self.embedding!r} is not a module of the model; modules are "
                             f"{', '.join(n for n in mods if n)[:300]}")
        return mods[self.embedding]


@dataclass
class Example:
    """One example: ``x`` the positional input with batch 1, ``kwargs`` the keyword inputs (batch 1), ``label``."""

    x: Tensor
    kwargs: dict[str, Tensor]
    label: int

    def to(self, device: torch.device | str | None) -> "Example":
        """The example with its tensors on ``device`` (unchanged for ``None``)."""
        if device is None:
            return self
        return Example(self.x.to(device), {k: v.to(device) for k, v in self.kwargs.items()}, self.label)


class Examples:
    """Uniform access to a dataset's examples (see the module docstring)."""

    def __init__(self, dataset: Any, input_key: str | None = None):
        if isinstance(dataset, tuple) and len(dataset) == 2 and all(isinstance(t, Tensor) for t in dataset):
            xs, ys = dataset
            if xs.shape[0] != ys.shape[0]:
                raise ValueError(f"dataset (inputs, labels) must have as many labels as inputs; received "
                                 f"{xs.shape[0]} inputs and {ys.shape[0]} labels")
            dataset = list(zip(xs, ys))
        try:
            n = len(dataset)
        except TypeError:
            raise TypeError(f"dataset must be a sequence of (input, label) pairs with len(); received "
                            f"{type(dataset).__name__}") from None
        if n == 0:
            raise ValueError("dataset is empty; give at least one (input, label) pair")
        self.dataset = dataset
        self.input_key = input_key
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Example:
        item = self.dataset[i]
        if isinstance(item, Mapping) and ("label" in item or "labels" in item):  # Hugging Face style rows
            key = "label" if "label" in item else "labels"
            inp, label = {k: v for k, v in item.items() if k != key}, item[key]
        elif isinstance(item, (tuple, list)) and len(item) >= 2:
            inp, label = item[0], item[1]
        else:
            raise TypeError(f"dataset[{i}] must be an (input, label) pair or a mapping with a 'label' entry; "
                            f"received {type(item).__name__}")
        if isinstance(inp, Mapping):
            key = self.input_key or next(iter(inp))
            x = torch.as_tensor(inp[key])
            kwargs = {k: torch.as_tensor(v)[None] for k, v in inp.items() if k != key}
        else:
            x, kwargs = torch.as_tensor(inp), {}
        return Example(x[None], kwargs, int(torch.as_tensor(label).reshape(-1)[0]))

    def batch(self, indices: Sequence[int]) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        """Inputs, keyword inputs and labels of several examples stacked (for predictions)."""
        exs = [self[i] for i in indices]
        x = torch.cat([e.x for e in exs])
        kw = {k: torch.cat([e.kwargs[k] for e in exs]) for k in exs[0].kwargs}
        return x, kw, torch.tensor([e.label for e in exs])
