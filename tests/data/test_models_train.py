"""Built-in models and train_quick: shapes, determinism, useful accuracy, attribution-friendliness."""
import time

import pytest
import torch

from pellucid.data import MLP, SimpleCNN, TinyTransformer, evaluate, make_sequences, make_shapes, train_quick
from pellucid.data.quick import sequence_transformer, shapes_cnn


def test_model_shapes():
    assert SimpleCNN()(torch.rand(2, 3, 32, 32)).shape == (2, 4)
    assert SimpleCNN(1, 10)(torch.rand(2, 1, 8, 8)).shape == (2, 10)
    assert MLP(5, 3, (7,))(torch.rand(4, 5)).shape == (4, 3)
    m = TinyTransformer(vocab=20, dim=8, n_classes=3, max_length=10)
    ids, mask = torch.randint(1, 20, (2, 10)), torch.ones(2, 10, dtype=torch.long)
    assert m(ids, attention_mask=mask).shape == (2, 3)
    mask[0, 6:] = 0
    out = m(ids, attention_mask=mask)
    ids2 = ids.clone()
    ids2[0, 6:] = 5  # padded tokens do not matter
    assert torch.allclose(m(ids2, attention_mask=mask), out, atol=1e-5)
    torch.testing.assert_close(m.forward_embeds(m.embedding(ids), mask), out)


def test_train_quick_is_seeded_and_restores_rng():
    d = make_shapes(120, seed=0)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        m = SimpleCNN()
        state, threads = torch.random.get_rng_state(), torch.get_num_threads()
        r = train_quick(m, d.images, d.labels, epochs=2, seed=7)
        assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is untouched
        assert torch.get_num_threads() == threads  # the thread setting is restored
        runs.append((r.losses, [p.detach().clone() for p in m.parameters()]))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))
    assert not m.training


def test_regression_and_errors():
    torch.manual_seed(0)
    x = torch.randn(256, 4)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 0.0])
    m = MLP(4, 1, (16,))
    before = evaluate(m, x, y, task="regression")
    r = train_quick(m, x, y, epochs=30, task="regression", lr=1e-2)
    assert r.train_score < 0.05 * before and r.losses[-1] < r.losses[0]
    with pytest.raises(ValueError, match="task"):
        train_quick(m, x, y, task="ranking")
    with pytest.raises(ValueError, match="same number of rows"):
        train_quick(m, x, y[:10])
    with pytest.raises(ValueError, match="epochs"):
        train_quick(m, x, y, epochs=0)


@pytest.fixture(scope="module")
def trained_cnn():
    t = time.process_time()  # CPU seconds of all threads: robust to other jobs sharing the machine
    r = shapes_cnn(n_train=1200, n_test=300, epochs=4)
    return r, time.process_time() - t


@pytest.mark.slow
def test_cnn_reaches_useful_accuracy_quickly(trained_cnn):
    r, seconds = trained_cnn
    assert r.test_score > 0.8  # chance is 0.25
    assert seconds < 120  # under a minute on 2 cores (CPU time counts both)


def test_transformer_finds_the_key_token():
    r = sequence_transformer(n_train=600, n_test=200, epochs=4)
    assert r.test_score > 0.9  # chance is 0.5
    d = make_sequences(50, seed=1)
    assert torch.all(d.ids[d.key_mask] == d.labels + 1)
    assert torch.all(d.ids[d.attention_mask == 0] == 0)
    assert torch.all(d.key_mask.sum(1) == 1) and not torch.any(d.key_mask & (d.attention_mask == 0))


@pytest.mark.slow
def test_trained_cnn_attributions_fall_on_the_object(trained_cnn):
    """Ground truth works end to end: saliency of a trained CNN concentrates on the object's mask."""
    from pellucid.attr import Saliency

    r, _ = trained_cnn
    x, y, m = r.test.images[:32], r.test.labels[:32], r.test.masks[:32]
    a = Saliency(r.model).attribute(x, target=y).sum(1)
    share_in_mask = (a * m).flatten(1).sum(1) / a.flatten(1).sum(1)
    area = m.flatten(1).float().mean(1)
    assert float((share_in_mask / area).median()) > 3  # far more relevance per pixel on the object than off it
