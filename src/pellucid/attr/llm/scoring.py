"""Teacher-forced log-probabilities of a target continuation after many prompts, in one padded model call.

For prompts ``p_1 .. p_R`` (token ids, lengths ``L_i``) and target tokens ``y_1 .. y_T``, the rows
``[p_i, y_1 .. y_{T-1}]`` are right-padded into one batch and the model is called once: position
``L_i - 1 + t`` of row ``i`` predicts ``y_{t+1}`` (teacher forcing). For a causal LM this equals decoding the target
token by token (Captum's ``forward_in_tokens=True``), because no position sees a later one; right padding is exact
for the same reason (real tokens never attend to the pads after them), so neither position ids nor a padding mask
are needed (an all-ones mask keeps attention on its fast causal path).

Speed-ups that leave the numbers unchanged (up to float rounding):

* **shared-prefix KV cache**: the keys/values of the unperturbed prompt are computed once; each batch reuses
  those of the longest prefix that all its rows share with the unperturbed prompt (causal attention: the cache
  of a prefix depends on the prefix only) and runs only the rest. Used for Hugging Face models whose cache is a
  plain ``DynamicCache`` (or the legacy tuple form); other caches (sliding windows, recurrent states) skip it.
* **only the logits needed**: ``logits_to_keep`` (when the model's ``forward`` takes it) keeps the positions from
  the earliest target prediction on, not the whole sequence (the logits dominate the memory of large-vocabulary
  models).
* **duplicate rows** of a batch (coalitions that coincide, common with few features) are evaluated once.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

import torch
from torch import Tensor, nn


def logits_of(output: Any) -> Tensor:
    """The logits ``(R, S, V)`` of a causal LM's output (an object with ``.logits``, a tuple, or a tensor);
    4-D logits with a singleton second dim (some multimodal models) are squeezed."""
    logits = getattr(output, "logits", None)
    if logits is None:
        logits = output[0] if isinstance(output, (tuple, list)) else output
    if not isinstance(logits, Tensor):
        raise TypeError(f"the model must return logits (an output with .logits or a tensor); returned {type(output).__name__}")
    if logits.dim() == 4:
        logits = logits[:, 0]
    if logits.dim() != 3:
        raise ValueError(f"the model's logits must have shape (batch, sequence, vocabulary); received {tuple(logits.shape)}")
    return logits


MAX_CPU_TOKENS = 1024  # tokens per model call on a CPU (forward scoring)


def _at_least_float32(t: Tensor) -> Tensor:
    """Half-precision logits are normalised in float32; float32/float64 stay as they are."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def target_log_softmax(logits: Tensor, target: Tensor) -> Tensor:
    """``log_softmax(logits)[..., target]`` for logits ``(R, T, V)`` and target ids ``(T,)``: ``(R, T)``, without
    materialising the normalised ``(R, T, V)`` tensor (logit of the target minus the log-sum-exp)."""
    z = _at_least_float32(logits)
    picked = z.gather(2, target.expand(z.shape[0], -1).unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(z, dim=-1)


def forward_parameters(model: nn.Module) -> set[str]:
    """Names of the keyword parameters of ``model.forward`` (``{"*"}`` added when it takes ``**kwargs``)."""
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return {"*"}
    names = {n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        names.add("*")
    return names


def cache_keyword(params: set[str]) -> str | None:
    """The keyword under which the model takes a KV cache (``cache`` in transformers >= 5.x, else
    ``past_key_values``), or None."""
    for name in ("cache", "past_key_values"):
        if name in params:
            return name
    return None


def prefix_kv(cache: Any) -> list[tuple[Tensor, Tensor]] | None:
    """Per-layer ``(keys, values)`` ``(1, heads, L, d)`` of a plain dynamic cache, or None for any other kind
    (sliding-window or recurrent caches cannot be cut to a prefix)."""
    if cache is None:
        return None
    if isinstance(cache, (tuple, list)):
        try:
            return [(k, v) for k, v in cache]
        except (TypeError, ValueError):
            return None
    layers = getattr(cache, "layers", None)
    if type(cache).__name__ != "DynamicCache" or not layers:
        return None
    if any(type(layer).__name__ != "DynamicLayer" for layer in layers):
        return None
    out = []
    for layer in layers:
        k, v = getattr(layer, "keys", None), getattr(layer, "values", None)
        if not isinstance(k, Tensor) or not isinstance(v, Tensor) or k.dim() != 4:
            return None
        out.append((k, v))
    return out


def make_cache(kv: list[tuple[Tensor, Tensor]], prefix: int, rows: int, like: Any) -> Any:
    """A fresh cache holding the first ``prefix`` positions of ``kv`` for ``rows`` rows (expanded views; the
    model's first update concatenates, so nothing is copied beforehand), of the same kind as ``like``."""
    data = [(k[:, :, :prefix].expand(rows, -1, -1, -1), v[:, :, :prefix].expand(rows, -1, -1, -1)) for k, v in kv]
    if isinstance(like, (tuple, list)):
        return tuple(data)
    cls = type(like)
    try:
        return cls(ddp_cache_data=data)
    except TypeError:
        return cls.from_legacy_cache(tuple(data))


def common_prefix(rows: list[Tensor], reference: Tensor) -> int:
    """Length of the longest prefix that every row shares with ``reference`` (1-D id tensors)."""
    best = reference.shape[0]
    for r in rows:
        n = min(best, r.shape[0])
        if n == 0:
            return 0
        diff = (r[:n] != reference[:n]).nonzero()
        best = int(diff[0, 0]) if diff.numel() else n
    return best


class TargetLogProbs:
    """``score(prompts) -> (R, T)``: teacher-forced log-probabilities of ``target`` after each prompt.

    Args:
        model: a causal LM called as ``model(input_ids=..., attention_mask=..., ...)`` returning logits.
        target: target token ids ``(T,)``.
        reference: the unperturbed prompt ids ``(L,)`` (for the shared-prefix cache); None disables the cache.
        pad_id: the id used for padding (any id: padded positions are never read).
        use_cache: reuse the reference's KV cache for shared prefixes where the model's cache allows it.
        dedupe: evaluate identical rows once (forward-only scoring; never for gradient rows).
    """

    def __init__(self, model: nn.Module, target: Tensor, reference: Tensor | None, pad_id: int = 0,
                 use_cache: bool = True, dedupe: bool = True):
        self.model = model
        self.target = target.reshape(-1).long()
        if self.target.numel() == 0:
            raise ValueError("target has no tokens; give a non-empty target (text or ids)")
        self.reference = reference
        self.pad_id = int(pad_id)
        self.dedupe = dedupe
        self.params = forward_parameters(model)
        self.cache_kw = cache_keyword(self.params) if use_cache and reference is not None else None
        self._kv: list[tuple[Tensor, Tensor]] | None = None
        self._cache_like: Any = None
        self._cache_tried = False
        self.max_cpu_tokens = MAX_CPU_TOKENS
        self.cached_positions = 0  # statistics: prompt positions served from the cache, and run
        self.run_positions = 0

    # -- the shared-prefix cache ------------------------------------------------------------------------------
    def _reference_cache(self, device: torch.device) -> list[tuple[Tensor, Tensor]] | None:
        if self._cache_tried:
            return self._kv
        self._cache_tried = True
        if self.cache_kw is None or self.reference is None or self.reference.shape[0] < 2:
            return None
        ids = self.reference.to(device).unsqueeze(0)
        kwargs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        if "use_cache" in self.params or "*" in self.params:
            kwargs["use_cache"] = True
        if "logits_to_keep" in self.params:
            kwargs["logits_to_keep"] = 1  # only the cache is wanted
        with torch.no_grad():
            out = self.model(**kwargs)
        cache = getattr(out, "cache", None)  # transformers >= 5.x names it "cache"
        if cache is None:
            cache = getattr(out, "past_key_values", None)
        kv = prefix_kv(cache)
        if kv is not None and all(k.shape[0] == 1 and k.shape[2] == ids.shape[1] for k, _ in kv):
            self._kv, self._cache_like = kv, cache
        return self._kv

    # -- scoring ------------------------------------------------------------------------------------------
    def model_kwargs(self, ids: Tensor, mask: Tensor, keep: int, cache: Any = None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
        if cache is not None:
            kwargs[self.cache_kw] = cache  # type: ignore[index]
            kwargs["use_cache"] = True
        elif "use_cache" in self.params:
            kwargs["use_cache"] = False
        if "logits_to_keep" in self.params:
            kwargs["logits_to_keep"] = keep
        return kwargs

    def __call__(self, prompts: list[Tensor], grad: bool = False) -> Tensor:
        """Log-probabilities ``(R, T)`` of the target after each prompt (1-D id tensors, any lengths)."""
        if not prompts:
            raise ValueError("no prompts to score")
        if self.dedupe and not grad:
            keys = [tuple(p.tolist()) for p in prompts]
            first: dict[tuple, int] = {}
            inverse = [first.setdefault(k, len(first)) for k in keys]
            if len(first) < len(prompts):
                unique = [prompts[keys.index(k)] for k in first]
                return self._score(unique, grad)[torch.tensor(inverse)]
        return self._score(prompts, grad)

    def _score(self, prompts: list[Tensor], grad: bool) -> Tensor:
        device = next(self.model.parameters()).device if any(True for _ in self.model.parameters()) else torch.device("cpu")
        t = self.target.to(device)
        n_t = t.shape[0]
        lengths = torch.tensor([p.shape[0] for p in prompts])
        if int(lengths.min()) < 1:
            raise ValueError("a perturbed prompt has no tokens left; the model needs at least one token before the target")
        prefix = 0
        kv = None if grad else self._reference_cache(device)
        if kv is not None:
            prefix = min(common_prefix(prompts, self.reference), int(lengths.min()) - 1)
            if prefix < 1:
                kv = None
                prefix = 0
        run = int(lengths.max()) - prefix + n_t - 1  # positions each row runs
        if device.type == "cpu" and not grad and len(prompts) > 1 and len(prompts) * run > self.max_cpu_tokens:
            # on a CPU long rows run best a few at a time (measured: 2-4 rows of 271 tokens cost 35% less per row
            # than 32); accelerators keep the engine's whole chunk
            k = max(1, self.max_cpu_tokens // run)
            return torch.cat([self._score(prompts[i:i + k], grad) for i in range(0, len(prompts), k)])
        rows = len(prompts)
        seqs = [torch.cat([p.to(device)[prefix:], t[:-1]]) for p in prompts]
        width = max(s.shape[0] for s in seqs)
        ids = torch.full((rows, width), self.pad_id, dtype=torch.long, device=device)
        for i, s in enumerate(seqs):
            ids[i, : s.shape[0]] = s
        # no padding mask: the pads come after every real token of their row, so causal attention already keeps
        # them out of every score that is read, and an all-ones mask lets attention take its fast causal path
        mask = torch.ones((rows, prefix + width), dtype=torch.long, device=device)
        first = int(lengths.min()) - 1 - prefix  # earliest position (in the run part) that predicts y_1
        keep = width - first
        cache = make_cache(kv, prefix, rows, self._cache_like) if kv is not None else None
        self.cached_positions += prefix * rows
        self.run_positions += width * rows
        out = self.model(**self.model_kwargs(ids, mask, keep, cache))
        logits = logits_of(out)
        logits = logits[:, -keep:] if logits.shape[1] >= keep else logits
        offset = width - logits.shape[1]  # position of logits[:, 0] in the run part
        starts = lengths - 1 - prefix - offset  # where each row's predictions of the target begin
        if bool((starts == starts[0]).all()):
            s0 = int(starts[0])
            picked = logits[:, s0 : s0 + n_t]  # equal lengths (token inputs): a view, no copy
        else:
            pos = starts.to(device).unsqueeze(1) + torch.arange(n_t, device=device)
            picked = logits[torch.arange(rows, device=device).unsqueeze(1), pos]
        return target_log_softmax(picked, t)


class EmbeddingLogProbs(nn.Module):
    """``forward(embeddings (R, L, D)) -> (R, T)``: log-probabilities of ``target`` after prompts given as input
    embeddings (the target's own embeddings are appended; teacher forcing). For gradient methods on the
    embedding layer's output (``inputs_embeds``)."""

    def __init__(self, model: nn.Module, target: Tensor):
        super().__init__()
        self.model = model
        self.register_buffer("target", target.reshape(-1).long(), persistent=False)
        self.params = forward_parameters(model)

    def forward(self, embeddings: Tensor) -> Tensor:
        t = self.target.to(embeddings.device)
        rows, length = embeddings.shape[:2]
        tail = self.model.get_input_embeddings()(t[:-1]).to(embeddings.dtype)
        full = torch.cat([embeddings, tail.unsqueeze(0).expand(rows, -1, -1)], dim=1)
        kwargs: dict[str, Any] = {"inputs_embeds": full,
                                  "attention_mask": torch.ones(full.shape[:2], dtype=torch.long, device=full.device)}
        if "use_cache" in self.params:
            kwargs["use_cache"] = False
        if "logits_to_keep" in self.params:
            kwargs["logits_to_keep"] = t.shape[0]
        logits = logits_of(self.model(**kwargs))[:, -t.shape[0]:]
        return target_log_softmax(logits, t)


Tokenize = Callable[[list[str]], list[Tensor]]
