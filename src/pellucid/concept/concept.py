"""Concepts, concept activation vectors and the interpreter base class."""
from __future__ import annotations

import os
from typing import Any, Iterable, Sequence

import torch
from torch import Tensor


class Concept:
    """A named set of examples: ``id`` (int, unique among the concepts of an experiment), ``name`` and
    ``data_iter``, an iterable (e.g. a ``DataLoader``) of input batches (a tensor, or a tuple of tensors for
    multi-input models) representing the concept."""

    def __init__(self, id: int, name: str, data_iter: Iterable | None) -> None:  # noqa: A002 - Captum's name
        if isinstance(id, bool) or not isinstance(id, int):
            raise TypeError(f"id must be an int; received {id!r}")
        if not isinstance(name, str):
            raise TypeError(f"name must be a str; received {name!r}")
        self.id, self.name, self.data_iter = id, name, data_iter

    @property
    def identifier(self) -> str:
        return f"{self.name}-{self.id}"

    def __repr__(self) -> str:
        return f"Concept({self.id}, {self.name!r})"

    def __hash__(self) -> int:
        return hash((self.id, self.name))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Concept) and (self.id, self.name) == (other.id, other.name)


def concepts_to_str(concepts: Sequence[Concept]) -> str:
    """The key of an experimental set in results: concept ids joined by ``-`` (e.g. ``"0-1"``)."""
    return "-".join(str(c.id) for c in concepts)


class CAV:
    """The concept activation vectors of one experimental set at one layer.

    ``stats``: ``{"weights": (n_concepts, n_features) tensor, "classes": [concept ids in row order],
    "accs": held-out accuracy of the classifier}``. :meth:`save` / :meth:`load` store it under ``save_path``."""

    def __init__(self, concepts: Sequence[Concept], layer: str, stats: dict[str, Any] | None = None,
                 save_path: str | None = None, model_id: str | None = None) -> None:
        self.concepts, self.layer, self.stats = list(concepts), layer, stats
        self.save_path, self.model_id = save_path, model_id

    @staticmethod
    def assemble_save_path(path: str, model_id: str, concepts: Sequence[Concept], layer: str) -> str:
        return os.path.join(path, model_id, f"{concepts_to_str(concepts)}-{layer}.pkl")

    def save(self) -> None:
        if self.save_path is None:
            raise ValueError("save_path is None: nowhere to save the CAV")
        path = self.assemble_save_path(self.save_path, self.model_id or "default_model_id", self.concepts, self.layer)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        torch.save({"concept_ids": [c.id for c in self.concepts], "concept_names": [c.name for c in self.concepts],
                    "layer": self.layer, "stats": self.stats}, path)

    @classmethod
    def load(cls, cavs_path: str, model_id: str, concepts: Sequence[Concept], layer: str) -> "CAV | None":
        path = cls.assemble_save_path(cavs_path, model_id, concepts, layer)
        if not os.path.exists(path):
            return None
        saved = torch.load(path, weights_only=False)
        return cls(concepts, layer, saved["stats"], cavs_path, model_id)


class ConceptInterpreter:
    """Base of concept-based interpreters: ``interpret(inputs, **kwargs)``."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def interpret(self, inputs: Tensor | tuple[Tensor, ...], **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement interpret()")
