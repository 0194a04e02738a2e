"""Probes, rankings, clustering, control tasks and top words of pellucid.analysis.neurons, from their definitions."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pellucid.analysis import neurons as nx
from pellucid.analysis.neurons.concept import average_precision


def _blobs(n=600, d=10, informative=(2, 7), classes=3, seed=0, sep=4.0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    X = torch.randn(n, d, generator=g)
    for c in range(classes):
        for i, j in enumerate(informative):
            X[y == c, j] += sep * np.cos(2 * np.pi * (c + i / 2) / classes)
    return X, y


# -- probes -------------------------------------------------------------------------------------------------------
def test_probe_separates_separable_classes_and_ignores_noise_with_l1():
    X, y = _blobs()
    probe = nx.train_probe(X[:450], y[:450], lambda_l1=1e-2, lambda_l2=1e-4, epochs=30)
    assert nx.probe_accuracy(probe, X[450:], y[450:]) > 0.97
    w = probe.weight.detach().abs()
    assert w[:, [2, 7]].sum(0).min() > 100 * w[:, [0, 1, 3, 4, 5, 6, 8, 9]].sum(0).max()
    assert (w[:, [0, 1, 3, 4, 5, 6, 8, 9]] == 0).float().mean() > 0.5  # the proximal l1 step gives exact zeros
    per = nx.probe_accuracy(probe, X[450:], y[450:], per_class=True)
    assert set(per) == {"overall", 0, 1, 2}


def test_probe_labels_any_hashable_and_seeded():
    X, y = _blobs(classes=2)
    names = np.array(["verb", "noun"])[y.numpy()].tolist()
    a = nx.train_probe(X, names, seed=3, epochs=3)
    b = nx.train_probe(X, names, seed=3, epochs=3)
    assert a.classes == ["noun", "verb"]
    assert torch.equal(a.weight, b.weight)
    assert nx.probe_accuracy(a, X, names) > 0.95


def test_regression_probe_recovers_linear_map():
    g = torch.Generator().manual_seed(1)
    X = torch.randn(800, 5, generator=g)
    coef = torch.tensor([2.0, 0.0, -1.0, 0.0, 0.5])
    y = X @ coef + 0.3
    probe = nx.train_probe(X, y, task="regression", epochs=60, lr=1e-2)
    assert torch.allclose(probe.weight.detach()[0], coef, atol=0.05)
    assert nx.probe_mse(probe, X, y) < 1e-2


def test_probe_on_neuron_subset_reads_only_those_columns():
    X, y = _blobs()
    p = nx.train_probe(X, y, neurons=[7, 2], epochs=20)
    assert p.weight.shape == (3, 2)
    scrambled = X.clone()
    scrambled[:, [0, 1, 3]] = torch.randn(len(X), 3)
    assert torch.equal(p.predict(X), p.predict(scrambled))


def test_elastic_net_penalty_is_l1_plus_squared_l2():
    w = torch.tensor([[1.0, -2.0], [0.5, 0.0]])
    assert float(nx.probe.elastic_net_penalty(w, 0.1, 0.01)) == pytest.approx(0.1 * 3.5 + 0.01 * 5.25)


# -- weight-mass ranking ------------------------------------------------------------------------------------------
W = torch.tensor([[4.0, 3.0, 2.0, 1.0], [0.0, 0.0, 1.0, 9.0]])


def test_top_neurons_closed_form():
    union, per = nx.top_neurons(W, 0.5)
    assert per[0].tolist() == [0, 1] and per[1].tolist() == [3]
    assert sorted(union.tolist()) == [0, 1, 3]
    assert sorted(nx.top_neurons(W, 0.0)[0].tolist()) == [0, 3]  # each class's heaviest neuron
    assert sorted(nx.top_neurons(W, 1.0)[0].tolist()) == [0, 1, 2, 3]
    assert sorted(nx.top_neurons(-W, 0.5)[0].tolist()) == [0, 1, 3]  # absolute weights
    _, bottom = nx.bottom_neurons(W, 0.2)
    assert bottom[0].tolist() == [3, 2] and bottom[1].tolist() == [0, 1, 2, 3]  # cumulative 0, 0, 1 < 2 <= 10


def test_neuron_ordering_closed_form_and_stepped_sweep():
    order, _ = nx.neuron_ordering(W)
    assert order.tolist() == [3, 0, 1, 2]  # entry points 0 (n3 heavier), 0, 0.4, 0.7
    assert nx.entry_points(W).tolist() == pytest.approx([0.0, 0.4, 0.7, 0.0])
    order10, cut = nx.neuron_ordering(W, search_stride=10)
    assert order10.tolist() == [3, 0, 1, 2]
    assert cut == [2, 2, 2, 2, 2, 3, 3, 3, 4, 4, 4]


def _brute_union(w: np.ndarray, p: float) -> set:
    out = set()
    for row in np.abs(w):
        idx = sorted(range(len(row)), key=lambda j: -row[j])
        total, acc = row.sum(), 0.0
        for j in idx:
            out.add(j)
            acc += row[j]
            if acc >= total * p:
                break
    return out


def test_ordering_prefixes_are_the_sweep_unions_on_random_weights():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(4, 25, generator=g) * torch.rand(1, 25, generator=g) ** 3
    order, _ = nx.neuron_ordering(w)
    for p in np.linspace(0, 1, 41):
        u = _brute_union(w.numpy(), float(p))
        assert set(nx.top_neurons(w, float(p))[0].tolist()) == u
        assert set(order[: len(u)].tolist()) == u
    o2, cut = nx.neuron_ordering(w, search_stride=20)
    for s, c in enumerate(cut):
        assert set(o2[:c].tolist()) == _brute_union(w.numpy(), s / 20)


def test_all_zero_class_selects_nothing():
    w = torch.tensor([[0.0, 0.0, 0.0], [1.0, 3.0, 0.0]])
    union, per = nx.top_neurons(w, 0.0)
    assert per[0].tolist() == [] and union.tolist() == [1]
    assert nx.neuron_ordering(w)[0].tolist() == [1, 0, 2]


def test_random_neurons_distinct_seeded_and_excluding():
    a = nx.random_neurons(50, 10, seed=1, exclude=[0, 1, 2])
    assert len(set(a.tolist())) == 10 and not set(a.tolist()) & {0, 1, 2}
    assert torch.equal(a, nx.random_neurons(50, 10, seed=1, exclude=[0, 1, 2]))


# -- probeless, AP / IoU, Gaussian -------------------------------------------------------------------------------
def test_probeless_closed_form():
    X = torch.tensor([[0.0, 1.0, 5.0], [2.0, 1.0, 5.0], [4.0, 3.0, 5.0], [10.0, 0.0, 6.0]])
    y = ["a", "a", "b", "c"]
    overall, per = nx.probeless_scores(X, y)
    # class means a=(1,1,5) b=(4,3,5) c=(10,0,6): pairwise |diffs| summed
    assert overall.tolist() == pytest.approx([3 + 9 + 6, 2 + 1 + 3, 0 + 1 + 1])
    assert per["a"].tolist() == pytest.approx([3 + 9, 2 + 1, 0 + 1])
    order, per_order = nx.probeless_ranking(X, y)
    assert order.tolist() == [0, 1, 2] and per_order["b"].tolist() == [0, 1, 2]


def test_average_precision_matches_scikit_learn_with_ties():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(0)
    y = rng.random(200) < 0.3
    S = np.round(rng.normal(size=(200, 6)) + y[:, None] * np.arange(6) * 0.3, 1)  # rounding makes ties
    ours = average_precision(torch.tensor(S), torch.tensor(y))
    ref = [average_precision_score(y, S[:, j]) for j in range(6)]
    assert ours.tolist() == pytest.approx(ref, abs=1e-12)
    assert nx.concept_ranking(torch.tensor(S), y)[0] == int(np.argmax(ref))


def test_iou_closed_form_and_direction():
    X = torch.tensor([[5.0, -5.0], [4.0, -4.0], [0.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([1, 1, 0, 0])
    s = nx.iou_scores(X, y, threshold=1.0)
    assert s.tolist() == pytest.approx([1.0, 0.0])
    both = nx.iou_scores(X, y, threshold=1.0, direction="both")
    assert both.tolist() == pytest.approx([1.0, 1.0])
    with pytest.raises(ValueError, match="binary"):
        nx.iou_scores(X, torch.tensor([0, 1, 2, 0]))


def test_gaussian_greedy_finds_the_informative_neuron_and_scores_consistently():
    X, y = _blobs(n=500, d=8, informative=(5,), classes=2, sep=3.0)
    sel, mi = nx.gaussian_ranking(X, y, k=3)
    assert int(sel[0]) == 5
    assert mi[0] <= 1.0 + 1e-9 and mi == sorted(mi)
    probe = nx.GaussianProbe.fit(X, y)
    for i in range(3):  # the incremental (conditional-Gaussian) update equals the direct sub-block density
        assert probe.mutual_information(X, y, sel[: i + 1]) == pytest.approx(mi[i], abs=1e-9)
    assert probe.accuracy(X, y, [5]) > 0.9


# -- clustering -----------------------------------------------------------------------------------------------------
def test_correlation_clusters_on_hand_built_activations():
    g = torch.Generator().manual_seed(0)
    a, b, c = torch.randn(3, 400, generator=g)
    noise = lambda: 0.05 * torch.randn(400, generator=g)  # noqa: E731
    X = torch.stack([a, 2 * a + noise(), -a + noise(), b, b + noise(), c], 1)
    corr = nx.correlation_matrix(X)
    assert torch.allclose(corr, torch.from_numpy(np.corrcoef(X.numpy().T)), atol=1e-10)
    labels = nx.correlation_clusters(X)
    assert labels.tolist() == [0, 0, 0, 1, 1, 2]
    signed = nx.correlation_clusters(X, use_abs=False)
    assert signed[2] != signed[0] and signed[1] == signed[0]  # -a is far from a without |rho|
    reps, _ = nx.independent_neurons(X, ranking=[4, 1, 5, 0, 2, 3])
    assert reps.tolist() == [4, 1, 5]
    reps, _ = nx.independent_neurons(X)
    assert len(reps) == 3 and {int(labels[r]) for r in reps} == {0, 1, 2}


def test_constant_neuron_is_its_own_cluster():
    X = torch.randn(50, 3)
    X[:, 1] = 7.0
    assert nx.correlation_matrix(X)[1].tolist() == [0.0, 1.0, 0.0]


# -- ablation on activations, control tasks, top words ----------------------------------------------------------
def test_ablate_columns_and_probe_ablation():
    X, y = _blobs()
    Z = nx.ablate_columns(X, [2, 7])
    assert (Z[:, [2, 7]] == 0).all() and torch.equal(Z[:, 0], X[:, 0])
    M = nx.ablate_columns(X, [2], value=X.mean(0))
    assert torch.allclose(M[:, 2], X[:, 2].mean().expand(len(X)))
    K = nx.ablate_columns(X, [2, 7], keep=True)
    assert (K[:, 0] == 0).all() and torch.equal(K[:, 7], X[:, 7])
    probe = nx.train_probe(X, y, lambda_l1=1e-3, epochs=20)
    order, _ = nx.neuron_ordering(probe)
    assert set(order[:2].tolist()) == {2, 7}
    res = nx.probe_ablation(probe, X, y, order, [2])
    assert res["top"][0] < 0.6 < 0.9 < res["bottom"][0]
    keep = nx.probe_ablation(probe, X, y, order, [2], keep=True)
    assert keep["top"][0] > 0.9 > 0.6 > keep["bottom"][0]


def test_control_labels_one_label_per_type():
    words = ["the", "cat", "The", "cat", "dog", "the", "ran"] * 20
    labels = ["D", "N", "D", "N", "N", "D", "V"] * 20
    ct = nx.control_labels(words, labels, seed=0)
    table = {}
    for w, c in zip(words, ct):
        assert table.setdefault(w, c) == c
    assert set(ct) <= {"D", "N", "V"}
    ci = nx.control_labels(words, labels, seed=0, case_sensitive=False)
    assert ci[0] == ci[2]
    train, test = nx.control_labels(words, labels, seed=5, extra_words=[["cat", "bird"]])
    assert test[0] == train[1]
    assert nx.control_labels(words, labels, seed=5) == train


def test_selectivity_high_for_property_neurons_low_for_memorising_neurons():
    # neuron 0 encodes the class (shared by many word types); neurons 1.. encode word identity only
    rng = np.random.default_rng(0)
    types = rng.integers(0, 40, 1200)
    y = types % 2
    ident = np.eye(40)[types] * 3.0
    X = np.concatenate([(2 * y - 1)[:, None] * 2.0, ident], 1) + 0.3 * rng.normal(size=(1200, 41))
    words = [f"w{t}" for t in types]
    kw = dict(epochs=15, lr=5e-2)
    prop = nx.selectivity(X[:900], y[:900], words[:900], X[900:], y[900:], words[900:], neurons=[0], **kw)
    mem = nx.selectivity(X[:900], y[:900], words[:900], X[900:], y[900:], words[900:], neurons=list(range(1, 41)), **kw)
    assert prop["task_accuracy"] > 0.95 and mem["control_accuracy"] > 0.9
    assert prop["selectivity"] > mem["selectivity"] + 0.2


def test_top_words_is_normalised_mean_abs_zscore():
    X = torch.tensor([[0.0], [0.0], [10.0], [0.0], [4.0]])
    words = ["a", "a", "b", "c", "b"]
    z = (X[:, 0] - X[:, 0].mean()).abs() / X[:, 0].std(unbiased=False)
    expect = {"a": float(z[:2].mean()), "b": float(z[[2, 4]].mean()), "c": float(z[3])}
    top = max(expect.values())
    got = nx.top_words(X, 0, words, k=None)
    assert [w for w, _ in got] == sorted(expect, key=lambda w: -expect[w])
    assert dict(got) == pytest.approx({w: v / top for w, v in expect.items()})
    assert [w for w, _ in nx.top_words(X, 0, words, signed=True)] == ["b", "a", "c"]


@pytest.mark.parametrize("call, err", [
    (lambda: nx.train_probe(torch.randn(5, 2), [0, 1, 0]), ValueError),
    (lambda: nx.train_probe(torch.randn(4, 2), [0, 0, 0, 0]), ValueError),
    (lambda: nx.train_probe(torch.randn(4, 2), [0, 1, 0, 1], lambda_l1=-1), ValueError),
    (lambda: nx.train_probe(torch.randn(4, 2), [0, 1, 0, 1], task="ranking"), ValueError),
    (lambda: nx.train_probe("abc", [0, 1]), TypeError),
    (lambda: nx.top_neurons(W, 1.5), ValueError),
    (lambda: nx.neuron_ordering(W, search_stride=0), ValueError),
    (lambda: nx.ablate_columns(torch.randn(3, 4), [4]), ValueError),
    (lambda: nx.ablate_columns(torch.randn(3, 4), [0.5]), TypeError),
    (lambda: nx.concept_ranking(torch.randn(4, 2), [0, 1, 0, 1], method="f1"), ValueError),
    (lambda: nx.control_labels(["a"], ["x", "y"]), ValueError),
    (lambda: nx.top_words(torch.randn(3, 2), 5, ["a", "b", "c"]), ValueError),
])
def test_bad_arguments_raise_clear_errors(call, err):
    with pytest.raises(err):
        call()


@pytest.mark.parametrize("call, name", [
    (lambda: nx.LinearProbe(0, [0, 1]), "n_neurons"),
    (lambda: nx.LinearProbe(2.0, [0, 1]), "n_neurons"),
    (lambda: nx.LinearProbe(3, [0, 1], task="regress"), "task"),
    (lambda: nx.LinearProbe(3, "ab"), "classes"),
    (lambda: nx.LinearProbe(3, [0]), "classes"),
    (lambda: nx.LinearProbe(3, [0, 1], neurons=torch.arange(2)), "neurons"),
    (lambda: nx.correlation_clusters(torch.randn(20, 3), threshold=2), "threshold"),
    (lambda: nx.correlation_clusters(torch.randn(20, 3), threshold=2.5, use_abs=False), "threshold"),
    (lambda: nx.correlation_clusters(torch.randn(20, 3), threshold=float("nan")), "threshold"),
    (lambda: nx.correlation_clusters(torch.randn(20, 3), method="mean"), "method"),
])
def test_probe_and_clustering_arguments_are_checked(call, name):
    """Values accepted silently before (a 0-wide probe, an unknown task, a cut above every distance)."""
    with pytest.raises((TypeError, ValueError), match=name):
        call()


def test_correlation_clusters_threshold_range_ends():
    """The cut's range is the distance's: at the largest distance (1 with |rho|, 2 signed) everything is one
    cluster, at 0 only perfectly correlated neurons merge."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 100, generator=g)
    X = torch.stack([a, -a, b], 1)
    assert nx.correlation_clusters(X, threshold=1).tolist() == [0, 0, 0]
    assert nx.correlation_clusters(X, threshold=2, use_abs=False).tolist() == [0, 0, 0]
    assert nx.correlation_clusters(X, threshold=0).tolist() == [0, 0, 1]
    probe = nx.LinearProbe(3, np.array(["x", "y"]), neurons=torch.tensor([0, 2, 4]))
    assert probe.classes == ["x", "y"] and probe.weight.shape == (2, 3)
    assert nx.LinearProbe(3, [], task="regression").weight.shape == (1, 3)
