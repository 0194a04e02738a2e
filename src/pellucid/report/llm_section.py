"""The demo report's LLM section: attribution of the tiny offline language model's continuations.

The tiny GPT-2 (:mod:`pellucid.data.tiny_lm`, trained in seconds on first use and cached) completes two prompts;
the continuation is attributed to the prompt's tokens (Shapley values, exact, and layer integrated gradients on the
token embeddings) and to the segments of a template (feature ablation). Needs the ``text`` extra; without it the
section says so and the demo goes on.
"""
from __future__ import annotations

import html
from typing import Any, Callable

TOKEN_PROMPT = "the capital of france is"
TEMPLATE = ("{} likes {} , so {} eats", ["bob", "cheese", "bob"])


def llm_section(report: Any, cfg: Any, log: Callable[[str], None] = print) -> tuple[bool, str]:
    """Add the LLM section to ``report`` (a :class:`pellucid.report.html.Report`); returns ``(ran, message)``."""
    from ..data.tiny_lm import load_tiny_lm, tiny_lm_available

    report.add_heading("Text generation: LLM attribution with a tiny offline GPT-2")
    if not tiny_lm_available():
        msg = "the text extra is not installed (pip install 'pellucid[text]')"
        log(f"      LLM section skipped: {msg}")
        report.add_text(f"Not run: {msg}", css_class="note")
        return False, msg
    import matplotlib.pyplot as plt

    from ..attr import (FeatureAblation, LayerIntegratedGradients, LLMAttribution, LLMGradientAttribution,
                        ShapleyValues, TextTemplateInput, TextTokenInput)
    from ..viz import text_ansi, text_html

    lm = load_tiny_lm(log=lambda m: log("      " + m))
    model, tok = lm.model, lm.tokenizer
    report.add_text("A 2-layer, 64-dim GPT-2 trained here for seconds on built-in sentences (MiniLM's word pieces). "
                    "The model's own greedy continuation of each prompt is explained: the attribution of the "
                    "log-probability of the whole continuation to each prompt token (green raises it, red lowers it; "
                    "hover for the value), and per generated token in the heat map. Absent tokens are replaced by "
                    "[PAD]; all perturbed prompts are scored in padded batches with the unperturbed prompt's KV cache.")
    inp = TextTokenInput(TOKEN_PROMPT, tok, baselines="[PAD]", skip_tokens=["[CLS]"])
    shap = LLMAttribution(ShapleyValues(model), tok).attribute(inp, gen_args={"max_new_tokens": 3, "do_sample": False})
    answer = " ".join(shap.output_tokens)
    report.add_html(f'<p>prompt <b>{html.escape(TOKEN_PROMPT)}</b> &rarr; <b>{html.escape(answer)}</b> '
                    f'(probabilities {", ".join(f"{p:.2f}" for p in shap.output_probs.tolist())})</p>')
    report.add_html(text_html(shap.input_tokens, shap.seq_attr, title="exact Shapley values (all 32 coalitions)"))
    log("      " + text_ansi(shap.input_tokens, shap.seq_attr) + "  ->  " + answer)
    lig = LLMGradientAttribution(LayerIntegratedGradients(model, model.get_input_embeddings()), tok)
    grad = lig.attribute(inp, target=shap.output_ids, n_steps=24)
    report.add_html(text_html(grad.input_tokens, grad.seq_attr, title="layer integrated gradients on the token embeddings"))
    fig, _ = shap.plot_token_attr()
    report.add_figure(fig, "Shapley values per generated token (rows) and prompt token (columns)", alt="token attribution")
    plt.close(fig)

    template, values = TEMPLATE
    tinp = TextTemplateInput(template, values)
    res = LLMAttribution(FeatureAblation(model), tok).attribute(tinp, gen_args={"max_new_tokens": 2, "do_sample": False})
    prompt = tinp.to_model_input()
    report.add_html(f'<p>template <b>{html.escape(template)}</b> with segments {html.escape(", ".join(values))}: '
                    f'<b>{html.escape(prompt)}</b> &rarr; <b>{html.escape(" ".join(res.output_tokens))}</b></p>')
    report.add_html(text_html(res.input_tokens, res.seq_attr, title="feature ablation of each segment (removed)"))
    log("      " + text_ansi(res.input_tokens, res.seq_attr) + "  ->  " + " ".join(res.output_tokens))
    return True, "ran"

