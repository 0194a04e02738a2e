"""Word-level activations of Hugging Face models: sub-word tokens aggregated into one row per word.

Neuron analysis labels words (part of speech, word class, ...), but transformers see sub-word tokens. Following
NeuroX's extractor (Dalvi et al., 2019, AAAI; Durrani et al., 2020, EMNLP), a word's activation is the activation of
its first sub-word token (``"first"``), its last (``"last"``) or their mean (``"mean"``). Special tokens
(``[CLS]``, ``[SEP]``, padding) are dropped. Needs a *fast* tokenizer (for ``word_ids``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from ...core.guard import ModelGuard
from .activations import Activations, ActivationWriter, LayersArg, _progress, format_named_layers, layer_values

AGGREGATIONS = ("first", "last", "mean")


def word_rows(word_ids: Sequence[int | None], n_words: int, aggregation: str) -> tuple[Tensor, Tensor]:
    """``(token positions, word of each)`` selecting the tokens that make each word's row under ``aggregation``
    (for ``"mean"``: every token of the word). Raises ``ValueError`` if a word has no token (truncated)."""
    pos: list[int] = []
    word: list[int] = []
    seen: dict[int, list[int]] = {}
    for t, w in enumerate(word_ids):
        if w is not None:
            seen.setdefault(int(w), []).append(t)
    missing = [w for w in range(n_words) if w not in seen]
    if missing:
        raise ValueError(
            f"words {missing[:5]} of a sentence got no token (the sentence was truncated at max_length, or the "
            "tokenizer dropped them): shorten the sentence or raise max_length"
        )
    for w in range(n_words):
        toks = seen[w]
        chosen = toks[:1] if aggregation == "first" else toks[-1:] if aggregation == "last" else toks
        pos.extend(chosen)
        word.extend([w] * len(chosen))
    return torch.tensor(pos, dtype=torch.long), torch.tensor(word, dtype=torch.long)


def aggregate_words(value: Tensor, word_ids: Sequence[int | None], n_words: int, aggregation: str = "first") -> Tensor:
    """One sentence's token activations ``(L, D)`` -> word activations ``(n_words, D)``."""
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}; received {aggregation!r}")
    pos, word = word_rows(word_ids, n_words, aggregation)
    picked = value.index_select(0, pos.to(value.device))
    if aggregation != "mean":
        return picked
    out = torch.zeros(n_words, value.shape[-1], dtype=value.dtype, device=value.device)
    out.index_add_(0, word.to(value.device), picked)
    counts = torch.bincount(word, minlength=n_words).to(value.device, value.dtype)
    return out / counts[:, None]


def extract_word_activations(
    model: nn.Module,
    tokenizer: Any,
    sentences: Sequence[Sequence[str] | str],
    layers: LayersArg,
    *,
    aggregation: str = "first",
    batch_size: int = 32,
    max_length: int = 512,
    out: str | Path | None = None,
    dtype: torch.dtype = torch.float32,
    layer_names: Sequence[str] | None = None,
    show_progress: bool = True,
) -> Activations:
    """Word activations of ``layers`` of a Hugging Face ``model`` over ``sentences``.

    Args:
        model: a ``transformers`` model (called with the tokenizer's ``input_ids``, ``attention_mask``, ...).
        tokenizer: its fast tokenizer.
        sentences: pre-split sentences (lists of words, so rows align with word labels) or strings (split on
            whitespace).
        layers: modules of the model (e.g. ``model.embeddings``, ``model.encoder.layer[3]``), a list, or
            ``{name: module}``; each must give ``(N, L, D)`` (or a tuple starting with it).
        aggregation: ``"first"`` (default), ``"last"`` or ``"mean"`` sub-word token per word.
        batch_size: sentences per forward (default 32).
        max_length: the tokenizer's truncation length; a sentence whose words do not fit raises ``ValueError``.
        out, dtype, layer_names, show_progress: as :func:`~pellucid.analysis.neurons.extract_activations`.

    Returns:
        :class:`Activations` ``(total words, sum of layer sizes)`` with ``items`` (the words, in order) and
        ``sentence_index``.
    """
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}; received {aggregation!r}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int; received {batch_size!r}")
    if isinstance(sentences, str) or not isinstance(sentences, Sequence):
        raise TypeError("sentences must be a list of sentences (strings or lists of words); "
                        f"received {type(sentences).__name__}")
    split: list[list[str]] = []
    for i, s in enumerate(sentences):
        words = s.split() if isinstance(s, str) else list(s)
        if not words or not all(isinstance(w, str) and w for w in words):
            raise ValueError(f"sentences[{i}] must be a non-empty string or list of non-empty words; received {s!r}")
        split.append(words)
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError("tokenizer must be a fast (Rust) tokenizer: word alignment needs encoding.word_ids()")
    names, modules = format_named_layers(model, layers, layer_names)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    writer = ActivationWriter(out, dtype)
    sizes: list[int] | None = None
    starts = range(0, len(split), batch_size)
    try:
        with ModelGuard(model):
            model.eval()
            for b0 in _progress(starts, show_progress, "word activations", len(starts)):
                chunk = split[b0: b0 + batch_size]
                enc = tokenizer(chunk, is_split_into_words=True, padding=True, truncation=True,
                                max_length=max_length, return_tensors="pt")
                batch = {k: v.to(device) for k, v in enc.items() if isinstance(v, Tensor)}
                values = layer_values(model, modules, batch)
                rows = []
                for i, words in enumerate(chunk):
                    try:
                        ids = enc.word_ids(i)
                        per_layer = [aggregate_words(v[i], ids, len(words), aggregation) for v in values]
                    except ValueError as e:
                        raise ValueError(f"sentences[{b0 + i}]: {e}") from None
                    rows.append(torch.cat(per_layer, 1))
                if sizes is None:
                    sizes = [int(first.shape[-1]) for first in values]
                writer.write(torch.cat(rows))
    except BaseException:
        writer.abort()
        raise
    items = [w for s in split for w in s]
    index = torch.cat([torch.full((len(s),), i, dtype=torch.long) for i, s in enumerate(split)])
    return writer.close(names, sizes or [], items, index, {"per": "word", "aggregation": aggregation})
