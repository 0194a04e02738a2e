"""Baseline helpers: :class:`ProductBaselines` (a random draw from the Cartesian product of per-feature baselines)
and :class:`TokenReferenceBase` (a reference sequence of one token, e.g. ``PAD``), with Captum's names."""
from __future__ import annotations

import random
from typing import Any, Sequence

import torch
from torch import Tensor

__all__ = ["ProductBaselines", "TokenReferenceBase"]


class ProductBaselines:
    """A callable that returns one draw from the Cartesian product of the features' baseline values.

    ``baseline_values``: a list of lists (the candidate values of each feature, in order), or a dict
    ``{feature_name: [values]}``; a tuple key ``("a", "b")`` groups features whose baselines go together, its
    values being tuples. Calling the object (or :meth:`sample`) draws one value per feature uniformly and returns
    a list, or a dict ``{feature_name: value}``. Used as the ``baselines`` of perturbation methods and LLM
    template inputs. ``seed`` (beyond Captum) makes the draws reproducible; without it Python's ``random`` is used,
    as in Captum.
    """

    def __init__(self, baseline_values: Sequence[Sequence[Any]] | dict, seed: int | None = None) -> None:
        if isinstance(baseline_values, dict):
            keys = list(baseline_values)
            values = [baseline_values[k] for k in keys]
        elif isinstance(baseline_values, (list, tuple)):
            keys, values = [], list(baseline_values)
        else:
            raise TypeError("baseline_values must be a list of lists or a dict {feature: [values]}; "
                            f"received {type(baseline_values).__name__}")
        for i, v in enumerate(values):
            name = keys[i] if keys else i
            if not isinstance(v, (list, tuple)) or len(v) == 0:
                raise ValueError(f"baseline_values[{name!r}] must be a non-empty list of candidate values; received {v!r}")
            if keys and isinstance(keys[i], tuple):
                for val in v:
                    if not isinstance(val, tuple) or len(val) != len(keys[i]):
                        raise ValueError(f"baseline_values[{keys[i]!r}] must hold tuples of {len(keys[i])} values "
                                         f"(one per grouped feature); received {val!r}")
        self.dict_keys = keys
        self.baseline_values = values
        self._rng: Any = random.Random(seed) if seed is not None else random

    def sample(self) -> list[Any] | dict[str, Any]:
        """One draw: a list (one value per feature) or, for dict input, ``{feature_name: value}``."""
        draw = [self._rng.choice(list(v)) for v in self.baseline_values]
        if not self.dict_keys:
            return draw
        out: dict[str, Any] = {}
        for key, val in zip(self.dict_keys, draw):
            if isinstance(key, tuple):
                out.update(zip(key, val))
            else:
                out[key] = val
        return out

    def __call__(self) -> list[Any] | dict[str, Any]:
        return self.sample()


class TokenReferenceBase:
    """Reference (baseline) token sequences made of one token, e.g. the ``PAD`` index (Captum's class)."""

    def __init__(self, reference_token_idx: int = 0) -> None:
        if isinstance(reference_token_idx, bool) or not isinstance(reference_token_idx, int):
            raise TypeError(f"reference_token_idx must be an int token index; received {reference_token_idx!r}")
        self.reference_token_idx = reference_token_idx

    def generate_reference(self, sequence_length: int, device: torch.device | str | None = None) -> Tensor:
        """A 1-D long tensor ``(sequence_length,)`` filled with the reference token."""
        if isinstance(sequence_length, bool) or not isinstance(sequence_length, int) or sequence_length < 0:
            raise ValueError(f"sequence_length must be a non-negative int; received {sequence_length!r}")
        return torch.full((sequence_length,), self.reference_token_idx, dtype=torch.long, device=device)
