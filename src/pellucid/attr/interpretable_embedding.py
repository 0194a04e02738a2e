"""Captum's interpretable embedding layer: replace a model's embedding module by a pass-through so that
attribution methods can be fed embeddings instead of token ids.

pellucid's layer methods (e.g. :class:`~pellucid.attr.LayerIntegratedGradients` on the embedding layer) do the
same without touching the model; these functions exist for Captum code that uses them. They change the model
(that is their contract) until :func:`remove_interpretable_embedding_layer`; the context manager
:func:`interpretable_embedding_layer` undoes the change however its block ends.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Any, Iterator

from torch import Tensor, nn

__all__ = [
    "InterpretableEmbeddingBase", "configure_interpretable_embedding_layer", "interpretable_embedding_layer",
    "remove_interpretable_embedding_layer",
]


class InterpretableEmbeddingBase(nn.Module):
    """Pass-through standing in for ``embedding`` (the original module, kept as ``.embedding``) at the dotted
    path ``full_name``: its forward returns its first argument, assumed to be the precomputed embeddings;
    :meth:`indices_to_embeddings` runs the original embedding."""

    def __init__(self, embedding: nn.Module, full_name: str) -> None:
        super().__init__()
        self.num_embeddings = getattr(embedding, "num_embeddings", None)
        self.embedding_dim = getattr(embedding, "embedding_dim", None)
        self.embedding = embedding
        self.full_name = full_name

    def forward(self, *inputs: Any, **kwargs: Any) -> Any:
        if inputs:
            return inputs[0]
        if kwargs:
            return next(iter(kwargs.values()))
        raise ValueError("InterpretableEmbeddingBase needs the embedding tensor as its first argument")

    def indices_to_embeddings(self, *inputs: Any, **kwargs: Any) -> Tensor:
        """The original embedding of ``inputs`` (e.g. token ids ``(N, L)`` -> ``(N, L, D)``)."""
        return self.embedding(*inputs, **kwargs)


def _parent_and_name(model: nn.Module, path: str) -> tuple[nn.Module, str]:
    if not isinstance(path, str) or not path:
        raise TypeError(f"embedding_layer_name must be a dotted module path such as 'embedding'; received {path!r}")
    *parents, leaf = path.split(".")
    obj: Any = model
    for i, part in enumerate(parents):
        if not hasattr(obj, part):
            raise ValueError(f"embedding_layer_name {path!r}: the model has no submodule {'.'.join(parents[:i + 1])!r}")
        obj = getattr(obj, part)
    if not hasattr(obj, leaf):
        raise ValueError(f"embedding_layer_name {path!r}: the model has no submodule {path!r}")
    return obj, leaf


def configure_interpretable_embedding_layer(
    model: nn.Module, embedding_layer_name: str = "embedding"
) -> InterpretableEmbeddingBase:
    """Replace the module at ``embedding_layer_name`` by an :class:`InterpretableEmbeddingBase` wrapping it and
    return the wrapper (warns, as Captum: call :func:`remove_interpretable_embedding_layer` afterwards)."""
    parent, leaf = _parent_and_name(model, embedding_layer_name)
    layer = getattr(parent, leaf)
    if isinstance(layer, InterpretableEmbeddingBase):
        raise ValueError(f"an interpretable embedding layer is already configured at {embedding_layer_name!r}")
    warnings.warn(
        f"the model's {embedding_layer_name!r} is replaced by an interpretable embedding layer that takes embedding "
        "vectors; call remove_interpretable_embedding_layer(model, layer) when done (or use the context manager "
        "pellucid.attr.interpretable_embedding_layer)", stacklevel=2)
    wrapper = InterpretableEmbeddingBase(layer, embedding_layer_name)
    setattr(parent, leaf, wrapper)
    return wrapper


def remove_interpretable_embedding_layer(model: nn.Module, interpretable_emb: InterpretableEmbeddingBase) -> None:
    """Put the original embedding module back where :func:`configure_interpretable_embedding_layer` took it."""
    if not isinstance(interpretable_emb, InterpretableEmbeddingBase):
        raise TypeError("interpretable_emb must be the layer returned by configure_interpretable_embedding_layer; "
                        f"received {type(interpretable_emb).__name__}")
    parent, leaf = _parent_and_name(model, interpretable_emb.full_name)
    if getattr(parent, leaf) is not interpretable_emb:
        raise ValueError(f"the model's {interpretable_emb.full_name!r} is not this interpretable embedding layer")
    setattr(parent, leaf, interpretable_emb.embedding)


@contextmanager
def interpretable_embedding_layer(
    model: nn.Module, embedding_layer_name: str = "embedding"
) -> Iterator[InterpretableEmbeddingBase]:
    """``with interpretable_embedding_layer(model, "emb") as emb:`` configure, and restore on exit (beyond Captum)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        layer = configure_interpretable_embedding_layer(model, embedding_layer_name)
    try:
        yield layer
    finally:
        remove_interpretable_embedding_layer(model, layer)
