"""LLM attribution, Captum-compatible: attribute a language model's continuation to its prompt.

``LLMAttribution`` (perturbation methods), ``LLMGradientAttribution`` (gradient methods on the embedding layer),
the interpretable inputs ``TextTokenInput`` and ``TextTemplateInput``, and ``LLMAttributionResult``. Importing
this package does not import ``transformers``; any Hugging Face style causal LM and tokenizer work.
"""
from .attribution import DEFAULT_GEN_ARGS, BaseLLMAttribution, LLMAttribution, LLMGradientAttribution
from .inputs import InterpretableInput, TextTemplateInput, TextTokenInput
from .result import LLMAttributionResult, pretty_tokens
from .scoring import EmbeddingLogProbs, TargetLogProbs

__all__ = [
    "DEFAULT_GEN_ARGS", "BaseLLMAttribution", "EmbeddingLogProbs", "InterpretableInput", "LLMAttribution",
    "LLMAttributionResult", "LLMGradientAttribution", "TargetLogProbs", "TextTemplateInput", "TextTokenInput",
    "pretty_tokens",
]
