"""Attribution of a language model's continuation to its prompt (Captum's ``LLMAttribution`` and
``LLMGradientAttribution``).

The explained quantity is the log-probability of a target continuation ``y = y_1 .. y_T`` after the prompt (its
*sequence* score, ``log p(y | x) = sum_t log p(y_t | x, y_<t)``) and of each target token (*token* scores). The
target is given (text or ids) or generated with the model's ``generate`` (greedy, 25 new tokens by default).

* :class:`LLMAttribution` wraps a perturbation method (:class:`~pellucid.attr.FeatureAblation`,
  :class:`~pellucid.attr.ShapleyValueSampling`, :class:`~pellucid.attr.ShapleyValues`,
  :class:`~pellucid.attr.Lime`, :class:`~pellucid.attr.KernelShap`) over the features of a
  :class:`TextTokenInput` or :class:`TextTemplateInput`. The method's engine batches the perturbations, and
  every batch of perturbed prompts is scored by one padded, teacher-forced model call
  (:class:`~pellucid.attr.llm.scoring.TargetLogProbs`, with the shared-prefix KV cache). The sequence score and
  all ``T`` token scores are the model's ``1 + T`` outputs, so one run attributes all of them, for every method.
* :class:`LLMGradientAttribution` wraps a gradient method on the embedding layer: a layer method built on the
  embedding layer (:class:`~pellucid.attr.LayerIntegratedGradients`,
  :class:`~pellucid.attr.LayerGradientXActivation`, :class:`~pellucid.attr.LayerGradientShap`) or an input method
  (:class:`~pellucid.attr.IntegratedGradients`, :class:`~pellucid.attr.Saliency`,
  :class:`~pellucid.attr.InputXGradient`, ...) run on the prompt's input embeddings. All ``T`` target tokens are
  attributed in one call of the method (a 2-D target; the engine batches tokens x steps). Each token's attribution
  is summed over the embedding dimension; ``seq_attr`` is the sum over target tokens.
"""
from __future__ import annotations

from copy import copy
from typing import Any, Callable, Mapping

import torch
from torch import Tensor, nn

from ...core.guard import ModelGuard
from .._base import Attribution
from ..feature_ablation import FeatureAblation
from ..kernel_shap import KernelShap
from ..lime import Lime
from ..shapley import ShapleyValueSampling, ShapleyValues
from .inputs import InterpretableInput, TextTemplateInput, TextTokenInput
from .result import LLMAttributionResult, pretty_tokens
from .scoring import EmbeddingLogProbs, TargetLogProbs

DEFAULT_GEN_ARGS: dict[str, Any] = {"max_new_tokens": 25, "do_sample": False, "temperature": None, "top_p": None}
_OWNED = ("inputs", "target", "additional_forward_args")


def _device(model: nn.Module) -> torch.device:
    dev = getattr(model, "device", None)
    if isinstance(dev, torch.device):
        return dev
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


class BaseLLMAttribution(Attribution):
    """What both LLM attributions share: the model, the tokenizer, the target tokens."""

    SUPPORTED_METHODS: tuple[type, ...] = ()
    SUPPORTED_INPUTS: tuple[type, ...] = (TextTokenInput, TextTemplateInput)

    def __init__(self, attr_method: Attribution, tokenizer: Any) -> None:
        if not isinstance(attr_method, self.SUPPORTED_METHODS):
            names = ", ".join(c.__name__ for c in self.SUPPORTED_METHODS)
            raise TypeError(f"{type(self).__name__} supports attr_method of {names} (pellucid.attr classes); "
                            f"received {type(attr_method).__name__}")
        model = attr_method.forward_func
        if not isinstance(model, nn.Module):
            raise TypeError("attr_method must be built on the language model itself (an nn.Module with forward() "
                            f"returning logits); its forward_func is a {type(model).__name__}")
        for name in ("encode", "decode", "convert_ids_to_tokens"):
            if not callable(getattr(tokenizer, name, None)):
                raise TypeError(f"tokenizer must be a Hugging Face style tokenizer with {name}(); received "
                                f"{type(tokenizer).__name__}")
        super().__init__(model)
        self.model: nn.Module = model
        self.tokenizer = tokenizer
        self.device = _device(model)

    # -- inputs and targets ----------------------------------------------------------------------------------
    def _check_input(self, inp: Any) -> None:
        if not isinstance(inp, self.SUPPORTED_INPUTS):
            names = ", ".join(c.__name__ for c in self.SUPPORTED_INPUTS)
            raise TypeError(f"inp must be one of {names}; received {type(inp).__name__}")

    def _encode(self, texts: list[str]) -> list[Tensor]:
        """Token ids (with the tokenizer's special tokens, as ``tokenizer.encode``) of each text."""
        enc = self.tokenizer(texts, add_special_tokens=True)["input_ids"] if callable(self.tokenizer) else \
            [self.tokenizer.encode(t) for t in texts]
        return [torch.as_tensor(e, dtype=torch.long).reshape(-1) for e in enc]

    def _prompt_ids(self, model_input: Any) -> Tensor:
        """The model input of an interpretable input as 1-D ids."""
        if isinstance(model_input, str):
            return self._encode([model_input])[0]
        if isinstance(model_input, Tensor):
            return model_input.reshape(-1).long()
        raise TypeError(f"the input's model form must be text or token ids; received {type(model_input).__name__}")

    def _get_target_tokens(self, inp: InterpretableInput, target: str | Tensor | None = None,
                           gen_args: Mapping[str, Any] | None = None) -> Tensor:
        """Target ids ``(T,)``: ``target`` encoded without special tokens, given ids, or generated (greedy)."""
        self._check_input(inp)
        if target is None:
            generate = getattr(self.model, "generate", None)
            if not callable(generate):
                raise ValueError("target=None needs a model with generate() (a Hugging Face causal LM); pass target= "
                                 "(the text or token ids to explain)")
            if gen_args is not None and not isinstance(gen_args, Mapping):
                raise TypeError(f"gen_args must be a dict of generate() arguments; received {type(gen_args).__name__}")
            args = dict(gen_args) if gen_args else dict(DEFAULT_GEN_ARGS)
            ids = self._prompt_ids(inp.to_model_input()).to(self.device).unsqueeze(0)
            with ModelGuard(self.model), torch.no_grad():
                out = generate(input_ids=ids, attention_mask=torch.ones_like(ids), **args)
            seqs = out if isinstance(out, Tensor) else getattr(out, "sequences")
            tokens = seqs[0, ids.shape[1]:].detach()
            if tokens.numel() == 0:
                raise ValueError("generate() produced no new tokens; pass target= or gen_args with max_new_tokens > 0")
            return tokens.cpu()
        if gen_args is not None:
            raise ValueError("gen_args is only used to generate the target; give either target or gen_args, not both")
        if isinstance(target, str):
            ids = self.tokenizer.encode(target, add_special_tokens=False)
            tokens = torch.as_tensor(ids, dtype=torch.long).reshape(-1)
        elif isinstance(target, Tensor):
            if target.is_floating_point() or target.dtype == torch.bool or (target.dim() == 2 and target.shape[0] != 1) \
                    or target.dim() > 2:
                raise ValueError(f"a target tensor must hold token ids, shape (T,) or (1, T); received dtype "
                                 f"{target.dtype}, shape {tuple(target.shape)}")
            tokens = target.reshape(-1).long().cpu()
        else:
            raise TypeError(f"target must be a str, a tensor of token ids or None; received {type(target).__name__}")
        if tokens.numel() == 0:
            raise ValueError(f"target {target!r} has no tokens")
        return tokens

    def _result(self, inp: InterpretableInput, seq: Tensor, tok: Tensor | None, target: Tensor,
                probs: Tensor | None) -> LLMAttributionResult:
        result = LLMAttributionResult(seq_attr=seq, token_attr=tok, input_tokens=list(inp.values),
                                      output_tokens=pretty_tokens(target, self.tokenizer), output_probs=probs, inp=inp)
        result.output_ids = target.clone()
        return result


class _PerturbedPrompts(nn.Module):
    """``forward(present (R, F)) -> (R, 1 + T)``: the score of the whole target and of each target token after each
    perturbed prompt (log-probabilities, or probabilities with ``attr_target="prob"``)."""

    def __init__(self, owner: "LLMAttribution", inp: InterpretableInput, scorer: TargetLogProbs,
                 inspect_forward: Callable | None):
        super().__init__()
        self.model = owner.model
        self.owner, self.inp, self.scorer, self.inspect_forward = owner, inp, scorer, inspect_forward
        self._ids: dict[str, Tensor] = {}

    def prompts(self, present: Tensor) -> list[Tensor]:
        rows = self.inp.rows(present)
        texts = list(dict.fromkeys(r for r in rows if isinstance(r, str) and r not in self._ids))
        if texts:
            for t, ids in zip(texts, self.owner._encode(texts)):
                self._ids[t] = ids
        return [self._ids[r] if isinstance(r, str) else self.owner._prompt_ids(r) for r in rows]

    def forward(self, present: Tensor) -> Tensor:
        prompts = self.prompts(present)
        logp = self.scorer(prompts)
        out = torch.cat([logp.sum(1, keepdim=True), logp], dim=1)
        out = out.exp() if self.owner.attr_target == "prob" else out
        if self.inspect_forward is not None:
            response = self.owner.tokenizer.decode(self.scorer.target.tolist())
            for p, row in zip(prompts, out):
                self.inspect_forward(self.owner.tokenizer.decode(p.tolist()), response, row.tolist())
        return out


class LLMAttribution(BaseLLMAttribution):
    """Perturbation attribution of a language model's continuation to the prompt's tokens or template segments.

    Args:
        attr_method: a :class:`~pellucid.attr.FeatureAblation`, :class:`~pellucid.attr.ShapleyValueSampling`,
            :class:`~pellucid.attr.ShapleyValues`, :class:`~pellucid.attr.Lime` or
            :class:`~pellucid.attr.KernelShap` built on the model (``FeatureAblation(model)``). The model is a
            causal LM called as ``model(input_ids=..., attention_mask=...)`` and returning logits (Hugging Face
            style). It is not changed (the method is copied).
        tokenizer: the model's tokenizer (Hugging Face style).
        attr_target: ``"log_prob"`` (default) or ``"prob"``: attribute log-probabilities or probabilities.

    ``attribute(inp, target=None, num_trials=1, gen_args=None, use_cached_outputs=True, ...)`` returns an
    :class:`LLMAttributionResult` with ``seq_attr (n,)`` and ``token_attr (T, n)`` for every method (Captum gives
    ``token_attr`` only for ablation and Shapley methods; here Lime and Kernel SHAP fit all ``1 + T`` scores
    from the same samples at no extra model cost) and ``output_probs (T,)``.
    """

    SUPPORTED_METHODS = (FeatureAblation, ShapleyValueSampling, ShapleyValues, Lime, KernelShap)
    SUPPORTED_PER_TOKEN_ATTR_METHODS = SUPPORTED_METHODS

    def __init__(self, attr_method: Attribution, tokenizer: Any, attr_target: str = "log_prob") -> None:
        super().__init__(attr_method, tokenizer)
        if attr_target not in ("log_prob", "prob"):
            raise ValueError(f"attr_target must be 'log_prob' or 'prob'; received {attr_target!r}")
        self.attr_target = attr_target
        self.attr_method = copy(attr_method)
        self.include_per_token_attr = True

    def attribute(
        self,
        inp: InterpretableInput,
        target: str | Tensor | None = None,
        num_trials: int = 1,
        gen_args: Mapping[str, Any] | None = None,
        use_cached_outputs: bool = True,
        _inspect_forward: Callable[[str, str, list[float]], None] | None = None,
        forward_in_tokens: bool = True,
        **kwargs: Any,
    ) -> LLMAttributionResult:
        """Attribute ``target`` (text, ids ``(T,)``, or None to generate it with ``gen_args``) to the features of
        ``inp``.

        Args:
            num_trials: runs averaged (for the sampling methods; pass ``seed=``/``generator=`` for reproducibility).
            use_cached_outputs: reuse the KV cache of the unperturbed prompt's shared prefix (exact; Hugging Face
                models with a plain dynamic cache). False: every row runs in full.
            forward_in_tokens: accepted for Captum compatibility. The target is always scored by teacher forcing
                in one pass, which for a causal LM equals token-by-token decoding.
            _inspect_forward: callback ``(prompt, response, scores)`` for every evaluated row (Captum's hook).
            **kwargs: passed to the method's ``attribute`` (``n_samples``, ``perturbations_per_eval``,
                ``batch_size``, ``feature_mask``, ``seed``, ``show_progress``, ...).

        Returns:
            :class:`LLMAttributionResult`; ``seq_attr (n,)``, ``token_attr (T, n)`` with ``n`` the input's
            ``len(values)``.
        """
        self._check_input(inp)
        if isinstance(num_trials, bool) or not isinstance(num_trials, int) or num_trials < 1:
            raise ValueError(f"num_trials must be a positive int; received {num_trials!r}")
        owned = [k for k in _OWNED if k in kwargs]
        if owned:
            raise ValueError(f"LLMAttribution sets {owned} itself (the interpretable input and the model's outputs); "
                             "remove them from the call")
        tokens = self._get_target_tokens(inp, target, gen_args)
        reference = self._prompt_ids(inp.to_model_input())
        pad = getattr(self.tokenizer, "pad_token_id", None)
        scorer = TargetLogProbs(self.model, tokens, reference, pad_id=pad if isinstance(pad, int) else 0,
                                use_cache=bool(use_cached_outputs))
        forward = _PerturbedPrompts(self, inp, scorer, _inspect_forward)
        method = copy(self.attr_method)
        method.forward_func = forward
        x = inp.to_tensor().to(self.device).float()
        trials = [method.attribute(x, **kwargs) for _ in range(num_trials)]  # num_trials >= 1 (checked above)
        dtype = trials[0].dtype if trials[0].is_floating_point() else torch.float32
        total = sum(a.reshape(1 + tokens.shape[0], inp.n_itp_features).detach().double() for a in trials)
        attr = inp.format_attr((total / num_trials).to(dtype))
        with ModelGuard(self.model), torch.no_grad():
            probs = scorer([reference]).exp()[0].cpu()
        self.last_scorer = scorer  # statistics of the last call (positions cached / run)
        return self._result(inp, attr[0].cpu(), attr[1:].cpu(), tokens, probs)


class _TokenLayerForward(nn.Module):
    """``forward(present (R, F)) -> (R, T)``: teacher-forced log-probabilities of each target token after the
    prompts with absent tokens replaced by the baseline token; the layer method taps the embedding layer inside."""

    def __init__(self, model: nn.Module, inp: TextTokenInput, scorer: TargetLogProbs):
        super().__init__()
        self.model, self.inp, self.scorer = model, inp, scorer

    def forward(self, present: Tensor) -> Tensor:
        ids = self.inp.to_model_input(present.round().long() if present.is_floating_point() else present)
        return self.scorer(list(ids), grad=True)


class LLMGradientAttribution(BaseLLMAttribution):
    """Gradient attribution of a language model's continuation to the prompt's tokens, on the embedding layer.

    Args:
        attr_method: a layer method on the model's embedding layer
            (``LayerIntegratedGradients(model, model.get_input_embeddings())``, ``LayerGradientXActivation``,
            ``LayerGradientShap``), or an input method (``IntegratedGradients(model)``, ``Saliency(model)``,
            ``InputXGradient(model)``, ``GradientShap``, ``NoiseTunnel(...)``) run on the prompt's input
            embeddings (``inputs_embeds``; the default IG baseline is then the embedding of the input's baseline
            token at every feature position).
        tokenizer: the model's tokenizer.

    ``attribute(inp, target=None, gen_args=None, **kwargs)`` takes a :class:`TextTokenInput` and returns an
    :class:`LLMAttributionResult`: ``token_attr (T, n)`` (each target token's log-probability, attributions
    summed over the embedding dimension), ``seq_attr (n,)`` (their sum).
    """

    SUPPORTED_INPUTS = (TextTokenInput,)

    def __init__(self, attr_method: Attribution, tokenizer: Any) -> None:
        from ..gradient_shap import GradientShap
        from ..integrated_gradients import IntegratedGradients
        from ..layer import LayerGradientShap, LayerGradientXActivation, LayerIntegratedGradients
        from ..noise_tunnel import NoiseTunnel
        from ..saliency import InputXGradient, Saliency

        self.SUPPORTED_METHODS = (LayerIntegratedGradients, LayerGradientXActivation, LayerGradientShap,
                                  IntegratedGradients, Saliency, InputXGradient, GradientShap, NoiseTunnel)
        self._layer_methods = (LayerIntegratedGradients, LayerGradientXActivation, LayerGradientShap)
        super().__init__(attr_method, tokenizer)
        self.attr_method = copy(attr_method)
        self.is_layer = isinstance(attr_method, self._layer_methods)

    def attribute(self, inp: TextTokenInput, target: str | Tensor | None = None,
                  gen_args: Mapping[str, Any] | None = None, **kwargs: Any) -> LLMAttributionResult:
        """Attribute each token of ``target`` (text, ids, or None to generate) to the tokens of ``inp``.

        ``**kwargs`` go to the method's ``attribute`` (``n_steps``, ``method``, ``baselines``,
        ``internal_batch_size``/``batch_size``, ``nt_samples``, ...). All target tokens are attributed in one
        call (rows: target tokens x steps, batched by the engine within the memory budget).
        """
        self._check_input(inp)
        owned = [k for k in _OWNED if k in kwargs]
        if owned:
            raise ValueError(f"LLMGradientAttribution sets {owned} itself; remove them from the call")
        tokens = self._get_target_tokens(inp, target, gen_args)
        n_t = tokens.shape[0]
        length = inp.inp_tensor.shape[1]
        pad = getattr(self.tokenizer, "pad_token_id", None)
        scorer = TargetLogProbs(self.model, tokens, None, pad_id=pad if isinstance(pad, int) else 0,
                                use_cache=False, dedupe=False)
        method = copy(self.attr_method)
        if hasattr(method, "_spaces"):
            method._spaces = {}  # layer spaces are per model; this copy runs on its own forward
        # one example per target token (rows: tokens x steps, batched by the engine); target t explains token t
        target_index = torch.arange(n_t)
        if self.is_layer:
            method.forward_func = _TokenLayerForward(self.model, inp, scorer)
            x = inp.to_tensor().to(self.device).float().expand(n_t, -1)
            a = method.attribute(x, target=target_index, **kwargs)
        else:
            forward = EmbeddingLogProbs(self.model, tokens.to(self.device))
            self._set_forward(method, forward)
            emb = self.model.get_input_embeddings()
            with torch.no_grad():
                x = emb(inp.inp_tensor.to(self.device)).detach()
                if "baselines" not in kwargs and _takes(method, "baselines"):
                    zeros = torch.zeros((1, inp.n_itp_features), dtype=torch.long)
                    kwargs["baselines"] = emb(inp.to_model_input(zeros).to(self.device)).detach()
            a = method.attribute(x.expand(n_t, -1, -1), target=target_index, **kwargs)
        if isinstance(a, tuple):
            a = a[0]
        a = a.detach().reshape(n_t, a.shape[-2], -1)[:, :length].sum(-1)  # (T, L)
        if inp.itp_mask is not None:
            a = a[:, inp.itp_mask[0].to(a.device)]
        a = a.cpu()
        with ModelGuard(self.model), torch.no_grad():
            probs = scorer([inp.inp_tensor[0]]).exp()[0].cpu()
        return self._result(inp, a.sum(0), a, tokens, probs)

    @staticmethod
    def _set_forward(method: Attribution, forward: nn.Module) -> None:
        inner = getattr(method, "attribution_method", None)
        if inner is not None:  # NoiseTunnel: replace the inner method's model
            inner = copy(inner)
            inner.forward_func = forward
            method.attribution_method = inner
        method.forward_func = forward


def _takes(method: Attribution, name: str) -> bool:
    import inspect

    target = getattr(method, "attribution_method", method)
    try:
        return name in inspect.signature(target.attribute).parameters
    except (TypeError, ValueError):
        return False
