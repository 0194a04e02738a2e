"""Interpretable inputs for LLM attribution (Captum's ``TextTokenInput`` and ``TextTemplateInput``).

An interpretable input maps between what the attribution method perturbs, a tensor ``x'`` of shape
``(1, n_itp_features)`` whose entries say whether each feature is present (1) or absent (0), and what the
model consumes, ``x = h(x')`` (token ids or text); the "interpretable representation" of LIME and SHAP (Ribeiro et
al., 2016, arXiv:1602.04938; Lundberg & Lee, 2017, arXiv:1705.07874).

Beyond Captum, every input also maps a whole batch of perturbed rows at once (:meth:`InterpretableInput.rows`),
which is what lets :class:`~pellucid.attr.LLMAttribution` evaluate all perturbations in padded batches.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable, Mapping, Sequence, Union

import torch
from torch import Tensor


class InterpretableInput(ABC):
    """Base class: ``values`` (one label per raw feature), ``n_itp_features``, :meth:`to_tensor`,
    :meth:`to_model_input`, :meth:`format_attr` (Captum's interface) and the batched :meth:`rows`."""

    n_itp_features: int
    values: list[str]

    @abstractmethod
    def to_tensor(self) -> Tensor:
        """The unperturbed interpretable representation, ``(1, n_itp_features)`` of ones."""

    @abstractmethod
    def to_model_input(self, perturbed_tensor: Tensor | None = None) -> Any:
        """The model input for a perturbed representation ``(1, n_itp_features)`` (None: the original input)."""

    def rows(self, perturbed: Tensor) -> list[Any]:
        """Model inputs of ``R`` perturbed rows ``(R, n_itp_features)``: a list of 1-D token-id tensors or strings.
        The default maps row by row with :meth:`to_model_input`."""
        out = []
        for r in perturbed:
            m = self.to_model_input(r.unsqueeze(0))
            out.append(m[0] if isinstance(m, Tensor) and m.dim() == 2 else m)
        return out

    def format_attr(self, itp_attr: Tensor) -> Tensor:
        """Attributions of the interpretable features ``(..., n_itp_features)`` in the user's form (default:
        unchanged)."""
        return itp_attr


def _check_tokenizer(tokenizer: Any) -> None:
    for name in ("encode", "convert_ids_to_tokens", "convert_tokens_to_ids", "decode"):
        if not callable(getattr(tokenizer, name, None)):
            raise TypeError(f"tokenizer must be a Hugging Face style tokenizer with {name}(); received "
                            f"{type(tokenizer).__name__}")


class TextTokenInput(InterpretableInput):
    """The tokens of a text as features (Captum's ``TextTokenInput``).

    Args:
        text: the prompt.
        tokenizer: a Hugging Face tokenizer; ``tokenizer.encode(text)`` (with its special tokens) is the model
            input ``(1, L)``.
        baselines: the token that replaces an absent token: an id (default 0, often ``[PAD]``/``<unk>``) or a
            token string.
        skip_tokens: tokens (ids or strings) that are never perturbed and get no attribution, e.g. a
            beginning-of-sequence token.

    ``values`` are the tokens that are features (``n_itp_features`` of them); ``inp_tensor`` ``(1, L)`` the ids,
    ``itp_mask`` ``(1, L)`` bool (None without ``skip_tokens``) marks the feature positions.
    """

    def __init__(self, text: str, tokenizer: Any, baselines: Union[int, str] = 0,
                 skip_tokens: Union[Sequence[int], Sequence[str], None] = None) -> None:
        if not isinstance(text, str):
            raise TypeError(f"text must be a str; received {type(text).__name__}")
        _check_tokenizer(tokenizer)
        ids = tokenizer.encode(text, return_tensors="pt")
        if not isinstance(ids, Tensor):
            ids = torch.tensor([list(ids)], dtype=torch.long)
        ids = ids.reshape(1, -1).long()
        if ids.shape[1] == 0:
            raise ValueError(f"text {text!r} tokenizes to no tokens; give a non-empty prompt")
        self.text = text
        self.tokenizer = tokenizer
        self.inp_tensor = ids
        self.itp_tensor = ids
        self.itp_mask: Tensor | None = None
        skip = list(skip_tokens) if skip_tokens else []
        if skip:
            if all(isinstance(t, str) for t in skip):
                skip = list(tokenizer.convert_tokens_to_ids(list(skip)))
            elif not all(isinstance(t, int) and not isinstance(t, bool) for t in skip):
                raise TypeError(f"skip_tokens must be a list of token ids (int) or of token strings; received {skip_tokens!r}")
            mask = ~torch.isin(ids, torch.tensor(skip, dtype=torch.long))
            if not bool(mask.any()):
                raise ValueError(f"skip_tokens {skip_tokens!r} remove every token of {text!r}; nothing left to attribute")
            self.itp_mask = mask
            self.itp_tensor = ids[mask].unsqueeze(0)
        self.skip_tokens = skip or None
        self.values = list(tokenizer.convert_ids_to_tokens(self.itp_tensor[0].tolist()))
        self.n_itp_features = len(self.values)
        if isinstance(baselines, bool) or not isinstance(baselines, (int, str)):
            raise TypeError(f"baselines must be a token id (int) or a token string; received {type(baselines).__name__}")
        self.baselines = baselines if isinstance(baselines, int) else int(tokenizer.convert_tokens_to_ids([baselines])[0])

    def to_tensor(self) -> Tensor:
        """``(1, n_itp_features)`` ones (long, as Captum)."""
        return torch.ones_like(self.itp_tensor)

    def to_model_input(self, perturbed_tensor: Tensor | None = None) -> Tensor:
        """Token ids ``(R, L)``: the prompt with the absent tokens (entries != 1) replaced by ``baselines``."""
        if perturbed_tensor is None:
            return self.inp_tensor
        p = perturbed_tensor.reshape(-1, self.n_itp_features) if perturbed_tensor.dim() != 2 else perturbed_tensor
        if p.shape[1] != self.n_itp_features:
            raise ValueError(f"perturbed_tensor must have {self.n_itp_features} features (dim 1); received shape "
                             f"{tuple(perturbed_tensor.shape)}")
        absent = (p != 1).to(self.inp_tensor.device)
        itp = self.itp_tensor.expand(p.shape[0], -1).masked_fill(absent, self.baselines)
        if self.itp_mask is None:
            return itp.to(p.device)
        full = self.inp_tensor.expand(p.shape[0], -1).clone()
        full[self.itp_mask.expand_as(full)] = itp.reshape(-1)
        return full.to(p.device)

    def rows(self, perturbed: Tensor) -> list[Tensor]:
        return list(self.to_model_input(perturbed).cpu())


TemplateValues = Union[Sequence[str], Mapping[str, str]]


class TextTemplateInput(InterpretableInput):
    """Segments of a text template as features (Captum's ``TextTemplateInput``).

    Args:
        template: a format string (``"{} feels {} right now"`` or with names ``"{name} ..."``) or a callable
            taking the segment values (positionally, or by keyword when ``values`` is a dict) and returning text.
        values: the segments, a list or a dict (names of the template's fields).
        baselines: what replaces an absent segment: a list/dict of the same form (default: the empty string), or
            a callable returning one (called once per perturbed row, e.g. to draw random replacements).
        mask: a feature id per segment (same form as ``values``); segments sharing an id are one feature.

    ``format_attr`` spreads the attributions of the ``n_itp_features`` features back over the
    ``n_features = len(values)`` segments.
    """

    def __init__(self, template: Union[str, Callable[..., str]], values: TemplateValues,
                 baselines: Union[TemplateValues, Callable[[], TemplateValues], None] = None,
                 mask: Union[Sequence[int], Mapping[str, int], None] = None) -> None:
        if isinstance(values, Mapping):
            self.dict_keys = list(values.keys())
            vals = [values[k] for k in self.dict_keys]
        elif isinstance(values, (list, tuple)):
            self.dict_keys = []
            vals = list(values)
        else:
            raise TypeError(f"values must be a list or a dict of strings; received {type(values).__name__}")
        if not vals:
            raise ValueError("values must hold at least one segment")
        for i, v in enumerate(vals):
            if not isinstance(v, str):
                raise TypeError(f"values[{self.dict_keys[i] if self.dict_keys else i}] must be a str; received {type(v).__name__}")
        self.values = vals
        self.n_features = len(vals)
        if baselines is None:
            self.baselines: Any = [""] * self.n_features
        elif callable(baselines):
            self.baselines = baselines
        else:
            self.baselines = self._as_list(baselines, "baselines")
        if mask is None:
            self.mask = None
            self.formatted_mask = list(range(self.n_features))
            self.n_itp_features = self.n_features
        else:
            m = self._as_list(mask, "mask")
            if not all(isinstance(i, int) and not isinstance(i, bool) for i in m):
                raise TypeError(f"mask must hold an int feature id per segment; received {mask!r}")
            ids = sorted(set(m))
            index = {mid: i for i, mid in enumerate(ids)}
            self.mask = mask
            self.formatted_mask = [index[i] for i in m]
            self.n_itp_features = len(ids)
        if isinstance(template, str):
            self.template: Any = template
            self.format_fn = template.format
        elif callable(template):
            self.template = template
            self.format_fn = template
        else:
            raise TypeError(f"template must be a format string or a callable; received {type(template).__name__}")
        self._filled(list(self.values))  # the template must accept the values

    def _as_list(self, value: Any, name: str) -> list:
        if self.dict_keys:
            if not isinstance(value, Mapping):
                raise TypeError(f"values is a dict, so {name} must be a dict with the same keys; received {type(value).__name__}")
            missing = [k for k in self.dict_keys if k not in value]
            if missing:
                raise ValueError(f"{name} lacks the keys {missing} of values")
            return [value[k] for k in self.dict_keys]
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"values is a list, so {name} must be a list; received {type(value).__name__}")
        if len(value) != self.n_features:
            raise ValueError(f"{name} has {len(value)} entries but values has {self.n_features}; give one per segment")
        return list(value)

    def _filled(self, vals: list[str]) -> str:
        try:
            out = self.format_fn(**dict(zip(self.dict_keys, vals))) if self.dict_keys else self.format_fn(*vals)
        except (IndexError, KeyError) as e:
            raise ValueError(f"template {self.template!r} does not accept the {self.n_features} values: {e!r}") from None
        if not isinstance(out, str):
            raise TypeError(f"the template must produce a str; produced {type(out).__name__}")
        return out

    def _baseline_values(self) -> list[str]:
        if callable(self.baselines):
            return self._as_list(self.baselines(), "baselines()")
        return self.baselines

    def to_tensor(self) -> Tensor:
        """``(1, n_itp_features)`` ones (float, as Captum)."""
        return torch.ones((1, self.n_itp_features))

    def to_model_input(self, perturbed_tensor: Tensor | None = None) -> str:
        """The text with each absent segment (its feature's entry is 0) replaced by its baseline."""
        if perturbed_tensor is None:
            return self._filled(list(self.values))
        row = perturbed_tensor.reshape(-1)
        if row.shape[0] != self.n_itp_features:
            raise ValueError(f"perturbed_tensor must have {self.n_itp_features} features; received shape "
                             f"{tuple(perturbed_tensor.shape)}")
        present = row.tolist()
        base = self._baseline_values()
        vals = [v if present[self.formatted_mask[i]] else base[i] for i, v in enumerate(self.values)]
        return self._filled(vals)

    def rows(self, perturbed: Tensor) -> list[str]:
        return [self.to_model_input(r) for r in perturbed.cpu()]

    def format_attr(self, itp_attr: Tensor) -> Tensor:
        """``(..., n_itp_features)`` -> ``(..., n_features)``: each segment gets its feature's attribution."""
        if self.mask is None:
            return itp_attr
        idx = torch.tensor(self.formatted_mask, device=itp_attr.device)
        return itp_attr.index_select(-1, idx)
