"""Activation extraction, in-model ablation and causation of pellucid.analysis.neurons, on models with planted and
closed-form neurons."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from pellucid.analysis import neurons as nx
from pellucid.analysis.studies.neurons import PlantedMLP, planted_data
from conftest import TinyTransformer, assert_same_state, model_state


@pytest.fixture(scope="module")
def planted():
    model = PlantedMLP(seed=0).eval()
    x, y = planted_data(model, 900, seed=1)
    return model, x, y


def _hidden(model, x):
    return torch.relu(model.fc1(x)).detach()


# -- extraction ----------------------------------------------------------------------------------------------------
def test_extraction_streams_to_disk_and_equals_the_layer(planted, tmp_path):
    model, x, _ = planted
    before = model_state(model)
    batches = [x[i: i + 128] for i in range(0, len(x), 128)]
    acts = nx.extract_activations(model, {"hidden": model.act, "logits": model.fc2}, batches, out=tmp_path / "a",
                                  show_progress=False)
    assert_same_state(before, model_state(model))
    assert acts.path is not None and (tmp_path / "a" / "values.bin").exists()
    assert acts.values.shape == (900, 32 + 3) and acts.layers == ["hidden", "logits"] and acts.sizes == [32, 3]
    assert torch.allclose(acts.values[:, :32], _hidden(model, x), atol=1e-6)
    assert torch.allclose(acts.values[:, 32:], model(x).detach(), atol=1e-5)
    again = nx.Activations.load(tmp_path / "a")
    assert torch.equal(again.values, acts.values) and torch.equal(again.sentence_index, torch.arange(900))
    loc = acts.locate([33, 2, 31])
    assert loc["hidden"].tolist() == [2, 31] and loc["logits"].tolist() == [1]
    assert acts.neuron_names([0, 34]) == ["hidden:0", "logits:2"]
    mem = nx.extract_activations(model, [model.act], batches, show_progress=False, dtype=torch.float16)
    assert mem.path is None and mem.layers == ["act"] and mem.values.dtype == torch.float16
    # a whole tensor is batched; a loader of (inputs, labels) is unpacked by input_fn; same rows either way
    whole = nx.extract_activations(model, model.act, x, batch_size=100, show_progress=False)
    loader = [(x[i: i + 64], None) for i in range(0, len(x), 64)]
    unpacked = nx.extract_activations(model, model.act, loader, input_fn=lambda b: b[0], show_progress=False)
    assert torch.equal(whole.values, acts.values[:, :32]) and torch.equal(unpacked.values, whole.values)


def test_token_extraction_drops_padding_and_restores_training_mode():
    torch.manual_seed(0)
    model = TinyTransformer(vocab=30, dim=8, length=12).train()
    ids = torch.randint(1, 30, (6, 12))
    mask = torch.ones(6, 12, dtype=torch.long)
    mask[0, 9:] = 0
    mask[3, 5:] = 0
    before = model_state(model)
    acts = nx.extract_activations(model, model.embedding, [{"ids": ids[:3], "attention_mask": mask[:3]},
                                                            {"ids": ids[3:], "attention_mask": mask[3:]}],
                                  per="token", show_progress=False)
    assert_same_state(before, model_state(model))
    assert acts.values.shape == (int(mask.sum()), 8)
    assert torch.equal(acts.values, model.embedding(ids)[mask.bool()].detach())
    assert acts.sentence_index.tolist() == torch.arange(6)[:, None].expand(6, 12)[mask.bool()].tolist()


def test_aggregate_words_first_last_mean():
    value = torch.arange(12.0).reshape(6, 2)  # tokens: [CLS] w0 w1a w1b w1c [SEP]
    ids = [None, 0, 1, 1, 1, None]
    assert nx.aggregate_words(value, ids, 2, "first").tolist() == [[2, 3], [4, 5]]
    assert nx.aggregate_words(value, ids, 2, "last").tolist() == [[2, 3], [8, 9]]
    assert nx.aggregate_words(value, ids, 2, "mean").tolist() == [[2, 3], [6, 7]]
    with pytest.raises(ValueError, match="got no token"):
        nx.aggregate_words(value, ids, 3)


def test_word_activations_of_minilm_align_with_sub_word_tokens():
    from pellucid.data.minilm import load_minilm, minilm_available

    if not minilm_available():
        pytest.skip("MiniLM (text extra) not installed")
    mini = load_minilm()
    sentences = [["the", "xylophone", "sang"], ["a", "red", "fox"]]
    layer = mini.model.encoder.layer[0]
    acts = {agg: nx.extract_word_activations(mini.model, mini.tokenizer, sentences, {"l0": layer}, aggregation=agg,
                                             show_progress=False) for agg in ("first", "last", "mean")}
    enc = mini.tokenizer(sentences, is_split_into_words=True, padding=True, return_tensors="pt")
    seen = []
    h = layer.register_forward_hook(lambda m, a, o: seen.append(o[0] if isinstance(o, tuple) else o))
    with torch.no_grad():
        mini.model(**enc)
    h.remove()
    tokens = seen[0]
    wid = enc.word_ids(0)
    pos = [t for t, w in enumerate(wid) if w == 1]  # "xylophone": several sub-words
    assert len(pos) > 1
    first, last, mean = (acts[a].values for a in ("first", "last", "mean"))
    assert acts["first"].items == ["the", "xylophone", "sang", "a", "red", "fox"]
    assert torch.allclose(first[1], tokens[0, pos[0]], atol=1e-5)
    assert torch.allclose(last[1], tokens[0, pos[-1]], atol=1e-5)
    assert torch.allclose(mean[1], tokens[0, pos].mean(0), atol=1e-5)
    assert torch.allclose(first[0], last[0]) and acts["mean"].sentence_index.tolist() == [0, 0, 0, 1, 1, 1]


# -- planted neurons -----------------------------------------------------------------------------------------------
def test_planted_neurons_are_recovered_exactly(planted):
    model, x, y = planted
    X = nx.extract_activations(model, model.act, [x], show_progress=False).values
    want = model.planted_neurons
    k = len(want)
    probe = nx.train_probe(X, y, lambda_l1=1e-3, lambda_l2=1e-3)
    assert nx.probe_accuracy(probe, X, y) == 1.0
    assert sorted(nx.neuron_ordering(probe)[0][:k].tolist()) == want
    assert sorted(nx.top_neurons(probe, 0.5)[0].tolist()) == want
    assert sorted(nx.probeless_ranking(X, y)[0][:k].tolist()) == want
    for c, js in model.planted.items():
        assert sorted(nx.concept_ranking(X, y == c)[: len(js)].tolist()) == js
        assert sorted(nx.probeless_ranking(X, y)[1][c][:1].tolist())[0] in want
    sel, _ = nx.gaussian_ranking(X, y, k=2)
    assert set(sel.tolist()) <= set(want)
    labels = nx.correlation_clusters(X)
    assert labels[3] == labels[26] and labels[17] == labels[29]  # duplicated planted neurons are redundant


# -- ablation in the model ----------------------------------------------------------------------------------------
def test_ablation_is_exact_and_restores_the_model(planted):
    model, x, y = planted
    before = model_state(model)
    h = _hidden(model, x)
    clean = model(x).detach()
    with nx.ablate_neurons(model.act, [3, 26]):
        zeroed = model(x).detach()
    hz = h.clone()
    hz[:, [3, 26]] = 0
    assert torch.allclose(zeroed, model.fc2(hz).detach(), atol=1e-6)
    assert_same_state(before, model_state(model))
    assert torch.equal(model(x).detach(), clean)
    means = h.mean(0)
    with nx.ablate_neurons(model.act, [11], value=means):
        meaned = model(x).detach()
    hm = h.clone()
    hm[:, 11] = means[11]
    assert torch.allclose(meaned, model.fc2(hm).detach(), atol=1e-6)
    with pytest.raises(RuntimeError, match="boom"):
        with nx.ablate_neurons({model.act: [3], model.fc1: [0]}):
            raise RuntimeError("boom")
    assert_same_state(before, model_state(model))
    with pytest.raises(ValueError, match="neurons"):
        with nx.ablate_neurons(model.act, [32]):
            model(x)
    assert_same_state(before, model_state(model))
    # planted vs random vs bottom on the model's own task
    acc = lambda: float((model(x).argmax(1) == y).float().mean())  # noqa: E731
    with nx.ablate_neurons(model.act, model.planted_neurons):
        assert acc() < 0.5
    with nx.ablate_neurons(model.act, [0, 1, 2, 4, 5]):
        assert acc() == 1.0


def test_ablation_per_token_and_tuple_outputs():
    class Block(nn.Module):
        def forward(self, h):
            return (h * 2, "aux")

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = Block()

        def forward(self, h):
            return self.block(h)[0].sum((1, 2))

    net = Net()
    h = torch.randn(2, 3, 4)
    with nx.ablate_neurons(net.block, [1, 3], per="token"):
        out = net(h)
    keep = h * 2
    keep[..., [1, 3]] = 0
    assert torch.allclose(out, keep.sum((1, 2)))
    with nx.ablate_neurons(net.block, [0], per="example", value=5.0):  # flattened index 0 = position 0, feature 0
        out = net(h)
    ref = h * 2
    ref[:, 0, 0] = 5.0
    assert torch.allclose(out, ref.sum((1, 2)))


# -- causation -------------------------------------------------------------------------------------------------------
def test_conductance_of_a_planted_neuron_flows_only_from_its_signal_input(planted):
    model, x, y = planted
    before = model_state(model)
    xs = x[:8]
    a = nx.neuron_attributions(model, model.act, [3, 11], xs, target=0, n_steps=20)
    assert a.shape == (2, 8, 19)
    assert (a[0, :, :16] == 0).all() and (a[0, :, 17:] == 0).all()  # neuron 3 reads input 16 only
    assert (a[1] == 0).all()  # neuron 11 does not feed class 0's output: no conductance for target 0
    # neuron IG sums to the neuron's value at x minus at the zero baseline (ReLU(W x) is piecewise linear in t)
    ig = nx.neuron_attributions(model, model.act, [3], xs, method="integrated_gradients", n_steps=64)
    assert torch.allclose(ig[0].sum(1), _hidden(model, xs)[:, 3] - _hidden(model, torch.zeros_like(xs))[:, 3],
                          atol=1e-3)
    eff = nx.ablation_effect(model, model.act, [3, 26], xs, target=0)
    h = _hidden(model, xs)
    assert torch.allclose(eff["change"], -3.0 * (h[:, 3] + h[:, 26]), atol=1e-5)
    assert_same_state(before, model_state(model))
