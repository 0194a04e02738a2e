"""Compare pellucid's LLM attribution with Captum 0.9's on the offline tiny LM (numbers and time).

Runs pellucid here and Captum in another interpreter (``--captum-python``, default ``/work/captum-venv/bin/python``;
Captum is never imported into pellucid's process). Both load the same trained tiny LM from pellucid's cache.
Captum's perturbation methods run with ``forward_in_tokens=False`` (one teacher-forced pass, the quantity
pellucid computes, and Captum's fastest setting); rows marked "(captum default)" use Captum's default
(token-by-token decoding with its KV cache), which disagrees with a direct computation of the log-probabilities on
transformers 5.x. Prints, per prompt and method, the largest absolute difference of ``seq_attr`` and ``token_attr`` (relative to
the largest attribution) and the wall time of each library (medians over interleaved repeats, and the median of
the per-repeat ratios).

    python benchmarks/llm_captum_compare.py [--repeats 3] [--captum-python PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch

PROMPTS = [
    ("the capital of france is", "paris ."),
    ("bob likes cheese , so bob eats", "cheese ."),
    ("alice likes apples , so alice eats apples . the color of the sky is", "blue ."),
]
TEMPLATE = ("the {} of {} is", ["capital", "japan"], "tokyo .")
METHODS = ["FeatureAblation", "ShapleyValues", "ShapleyValueSampling", "KernelShap", "LayerIntegratedGradients",
           "LayerGradientXActivation"]
SAMPLES = 200  # for the sampling methods: agreement is statistical there

CHILD = r'''
import json, sys, time, torch
torch.set_num_threads(1)
from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast
from captum.attr import (FeatureAblation, ShapleyValues, ShapleyValueSampling, KernelShap, LayerIntegratedGradients,
                         LayerGradientXActivation, LLMAttribution, LLMGradientAttribution, TextTokenInput,
                         TextTemplateInput)
spec = json.load(open(sys.argv[1]))
model = GPT2LMHeadModel.from_pretrained(spec["path"]).eval()
tok = PreTrainedTokenizerFast.from_pretrained(spec["path"])
out = {}
def run(key, fn):
    t0 = time.perf_counter(); r = fn(); dt = time.perf_counter() - t0
    out[key] = {"seq": r.seq_attr.tolist(), "tok": None if r.token_attr is None else r.token_attr.tolist(),
                "out": r.output_tokens, "time": dt}
for i, (prompt, target) in enumerate(spec["prompts"]):
    inp = TextTokenInput(prompt, tok, skip_tokens=["[CLS]"])
    for name in spec["methods"]:
        if name.startswith("Layer"):
            cls = {"LayerIntegratedGradients": LayerIntegratedGradients, "LayerGradientXActivation": LayerGradientXActivation}[name]
            la = LLMGradientAttribution(cls(model, model.get_input_embeddings()), tok)
            run(f"{i}/{name}", lambda: la.attribute(inp, target=target))
        else:
            cls = {"FeatureAblation": FeatureAblation, "ShapleyValues": ShapleyValues,
                   "ShapleyValueSampling": ShapleyValueSampling, "KernelShap": KernelShap}[name]
            la = LLMAttribution(cls(model), tok)
            kw = {"n_samples": spec["samples"]} if name in ("ShapleyValueSampling", "KernelShap") else {}
            if name == "ShapleyValues" and inp.n_itp_features > 6:
                continue
            torch.manual_seed(0)
            run(f"{i}/{name}", lambda: la.attribute(inp, target=target, forward_in_tokens=False, **kw))
            if name == "FeatureAblation":
                run(f"{i}/{name} (captum default)", lambda: la.attribute(inp, target=target))
t, v, target = spec["template"]
run("template/FeatureAblation", lambda: LLMAttribution(FeatureAblation(model), tok).attribute(TextTemplateInput(t, v), target=target, forward_in_tokens=False))
gen = LLMAttribution(FeatureAblation(model), tok).attribute(TextTokenInput(spec["prompts"][0][0], tok), gen_args={"max_new_tokens": 4, "do_sample": False})
out["generated"] = gen.output_tokens
json.dump(out, open(sys.argv[2], "w"))
'''


def pellucid_run(lm, samples: int) -> dict:
    from pellucid.attr import (FeatureAblation, KernelShap, LayerGradientXActivation, LayerIntegratedGradients,
                               LLMAttribution, LLMGradientAttribution, ShapleyValues, ShapleyValueSampling,
                               TextTemplateInput, TextTokenInput)

    model, tok = lm.model, lm.tokenizer
    out = {}

    def run(key, fn):
        t0 = time.perf_counter()
        r = fn()
        out[key] = {"seq": r.seq_attr.tolist(), "tok": None if r.token_attr is None else r.token_attr.tolist(),
                    "out": r.output_tokens, "time": time.perf_counter() - t0}

    for i, (prompt, target) in enumerate(PROMPTS):
        inp = TextTokenInput(prompt, tok, skip_tokens=["[CLS]"])
        for name in METHODS:
            if name.startswith("Layer"):
                cls = {"LayerIntegratedGradients": LayerIntegratedGradients,
                       "LayerGradientXActivation": LayerGradientXActivation}[name]
                la = LLMGradientAttribution(cls(model, model.get_input_embeddings()), tok)
                run(f"{i}/{name}", lambda: la.attribute(inp, target=target))
            else:
                cls = {"FeatureAblation": FeatureAblation, "ShapleyValues": ShapleyValues,
                       "ShapleyValueSampling": ShapleyValueSampling, "KernelShap": KernelShap}[name]
                if name == "ShapleyValues" and inp.n_itp_features > 6:
                    continue
                la = LLMAttribution(cls(model), tok)
                kw = {"n_samples": samples, "seed": 0} if name in ("ShapleyValueSampling", "KernelShap") else {}
                run(f"{i}/{name}", lambda: la.attribute(inp, target=target, **kw))
                if name == "FeatureAblation":
                    out[f"{i}/{name} (captum default)"] = out[f"{i}/{name}"]
    t, v, target = TEMPLATE
    run("template/FeatureAblation",
        lambda: LLMAttribution(FeatureAblation(model), tok).attribute(TextTemplateInput(t, v), target=target))
    gen = LLMAttribution(FeatureAblation(model), tok).attribute(TextTokenInput(PROMPTS[0][0], tok),
                                                                gen_args={"max_new_tokens": 4, "do_sample": False})
    out["generated"] = gen.output_tokens
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--captum-python", default="/work/captum-venv/bin/python")
    ap.add_argument("--samples", type=int, default=SAMPLES)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from pellucid.data.tiny_lm import load_tiny_lm

    lm = load_tiny_lm()
    spec = {"path": lm.path, "prompts": PROMPTS, "methods": METHODS, "template": list(TEMPLATE), "samples": args.samples}
    with tempfile.TemporaryDirectory() as d:
        spec_file, child = os.path.join(d, "spec.json"), os.path.join(d, "child.py")
        json.dump(spec, open(spec_file, "w"))
        open(child, "w").write(CHILD)
        ours, theirs = [], []
        for r in range(args.repeats):  # interleaved: pellucid, Captum, pellucid, Captum, ...
            ours.append(pellucid_run(lm, args.samples))
            res = os.path.join(d, f"captum{r}.json")
            env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
            subprocess.run([args.captum_python, child, spec_file, res], check=True, env=env,
                           stderr=subprocess.DEVNULL)
            theirs.append(json.load(open(res)))
    print(f"generated target: pellucid {ours[0]['generated']}  captum {theirs[0]['generated']}")
    print(f"{'case':42s} {'max|d seq|/max|seq|':>20s} {'max|d tok|/max|tok|':>20s} {'pellucid ms':>12s} "
          f"{'captum ms':>10s} {'captum/pellucid':>16s}")
    for key in ours[0]:
        if key == "generated":
            continue
        a, b = ours[0][key], theirs[0][key]
        sa, sb = torch.tensor(a["seq"]), torch.tensor(b["seq"])
        rel_seq = float((sa - sb).abs().max() / sb.abs().max().clamp_min(1e-12))
        rel_tok = float("nan")
        if a["tok"] is not None and b["tok"] is not None:
            ta, tb = torch.tensor(a["tok"]), torch.tensor(b["tok"])
            rel_tok = float((ta - tb).abs().max() / tb.abs().max().clamp_min(1e-12))
        t_ours = statistics.median(o[key]["time"] for o in ours) * 1e3
        t_theirs = statistics.median(t[key]["time"] for t in theirs) * 1e3
        ratio = statistics.median(t[key]["time"] / o[key]["time"] for o, t in zip(ours, theirs))
        print(f"{key:42s} {rel_seq:20.2e} {rel_tok:20.2e} {t_ours:12.1f} {t_theirs:10.1f} {ratio:16.2f}")


if __name__ == "__main__":
    main()
