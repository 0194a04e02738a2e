"""ProductBaselines, TokenReferenceBase and the interpretable embedding layer (Captum's helpers)."""
from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from pellucid.attr import (
    IntegratedGradients, LayerIntegratedGradients, ProductBaselines, TokenReferenceBase,
    configure_interpretable_embedding_layer, interpretable_embedding_layer, remove_interpretable_embedding_layer,
)


def test_product_baselines_draw_from_the_product_reproducibly():
    pb = ProductBaselines([[0, 1], ["a", "b", "c"]], seed=0)
    draws = {tuple(pb()) for _ in range(200)}
    assert draws == set(itertools.product([0, 1], ["a", "b", "c"]))
    again = ProductBaselines([[0, 1], ["a", "b", "c"]], seed=0)
    first = ProductBaselines([[0, 1], ["a", "b", "c"]], seed=0)
    assert [again() for _ in range(10)] == [first() for _ in range(10)]


def test_product_baselines_dict_with_grouped_features():
    pb = ProductBaselines({"x": [1, 2], ("y", "z"): [(0, 0), (5, 6)]}, seed=1)
    for _ in range(20):
        d = pb.sample()
        assert set(d) == {"x", "y", "z"} and d["x"] in (1, 2) and (d["y"], d["z"]) in ((0, 0), (5, 6))
    with pytest.raises(ValueError, match="tuples"):
        ProductBaselines({("y", "z"): [1, 2]})
    with pytest.raises(ValueError, match="non-empty"):
        ProductBaselines([[]])


def test_token_reference():
    ref = TokenReferenceBase(reference_token_idx=3).generate_reference(5, device=torch.device("cpu"))
    assert ref.tolist() == [3] * 5 and ref.dtype == torch.long


class _TextModel(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.encoder = nn.Module()
        self.encoder.embedding = nn.Embedding(20, 4)
        self.head = nn.Linear(4, 2)

    def forward(self, ids):
        return self.head(torch.tanh(self.encoder.embedding(ids)).mean(dim=1))


def test_interpretable_embedding_matches_layer_integrated_gradients_and_restores_the_model():
    model = _TextModel()
    original = model.encoder.embedding
    ids = torch.tensor([[1, 5, 7], [2, 2, 9]])
    ref = torch.zeros_like(ids)
    expected = LayerIntegratedGradients(model, model.encoder.embedding).attribute(ids, ref, target=1)
    with pytest.warns(UserWarning):
        emb = configure_interpretable_embedding_layer(model, "encoder.embedding")
    try:
        x, x0 = emb.indices_to_embeddings(ids), emb.indices_to_embeddings(ref)
        got = IntegratedGradients(model).attribute(x, x0, target=1)
    finally:
        remove_interpretable_embedding_layer(model, emb)
    torch.testing.assert_close(got, expected)
    assert model.encoder.embedding is original


def test_context_manager_restores_on_error_and_bad_names_are_clear():
    model = _TextModel()
    original = model.encoder.embedding
    with pytest.raises(RuntimeError, match="boom"):
        with interpretable_embedding_layer(model, "encoder.embedding"):
            assert model.encoder.embedding is not original
            raise RuntimeError("boom")
    assert model.encoder.embedding is original
    with pytest.raises(ValueError, match="embedding_layer_name"):
        configure_interpretable_embedding_layer(model, "encoder.nothing")
