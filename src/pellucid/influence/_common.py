"""Shared mechanics of the influence methods: checkpoints, batches, losses, model-state restoration, top-k."""
from __future__ import annotations

import glob
import os
import re
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Sequence

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from ..core.guard import ModelGuard


class KMostInfluentialResults(NamedTuple):
    """``indices`` ``(n_test, k)``: training indices of the k proponents (highest scores, descending) or
    opponents (lowest, ascending); ``influence_scores`` ``(n_test, k)``: their scores."""

    indices: Tensor
    influence_scores: Tensor


def load_flexible_state_dict(model: nn.Module, path: str) -> float:
    """Load the checkpoint at ``path`` into ``model`` and return its learning rate (1.0 when absent).

    The file holds a state dict, or a dict with the state dict under ``"model_state_dict"`` / ``"state_dict"``
    and optionally ``"learning_rate"``; a ``"module."`` prefix (DataParallel) is stripped."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(checkpoint, dict):
        raise ValueError(f"checkpoint {path!r} must hold a state dict; found {type(checkpoint).__name__}")
    lr = float(checkpoint.get("learning_rate", 1.0))
    state = checkpoint
    for key in ("model_state_dict", "state_dict"):
        if isinstance(checkpoint.get(key), dict):
            state = checkpoint[key]
            break
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()
             if k != "learning_rate"}
    model.load_state_dict(state)
    return lr


def _natural_key(path: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", os.path.basename(path))]


def list_checkpoints(checkpoints: str | Iterable[str]) -> list[str]:
    """A directory (every file in it, in natural order: ``ckpt2`` before ``ckpt10``), one path, or paths."""
    if isinstance(checkpoints, (str, os.PathLike)):
        path = os.fspath(checkpoints)
        paths = sorted((p for p in glob.glob(os.path.join(path, "*")) if os.path.isfile(p)), key=_natural_key) \
            if os.path.isdir(path) else [path]
    else:
        paths = [os.fspath(p) for p in checkpoints]
    if not paths:
        raise ValueError(f"checkpoints must name at least one checkpoint file; received {checkpoints!r}")
    return paths


def as_loader(data: Dataset | DataLoader, batch_size: int | None) -> DataLoader:
    if isinstance(data, DataLoader):
        return data
    if not isinstance(data, Dataset) and not hasattr(data, "__getitem__"):
        raise TypeError(f"train_dataset must be a torch Dataset or DataLoader; received {type(data).__name__}")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive int or None; received {batch_size!r}")
    return DataLoader(data, batch_size=batch_size or 1, shuffle=False)


def split_batch(batch: Any, unpack_inputs: bool = True) -> tuple[tuple, Any]:
    """A batch ``(*features, labels)`` as ``(features tuple, labels)``."""
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise ValueError("a batch must be a tuple (features..., labels); received "
                         f"{type(batch).__name__}{'' if not isinstance(batch, (tuple, list)) else f' of {len(batch)}'}")
    features, labels = tuple(batch[:-1]), batch[-1]
    if not unpack_inputs:
        features = (features if len(features) > 1 else features[0],)
    return features, labels


def per_example_loss(loss_fn: Callable | None, out: Any, labels: Any, n: int) -> Tensor:
    """The total loss of a batch of ``n`` examples as the *sum* of per-example losses (a ``"mean"`` reduction is
    scaled by ``n``; ``loss_fn=None`` differentiates the model's output itself, as Captum)."""
    if loss_fn is None:
        return out.sum()
    value = loss_fn(out, labels)
    reduction = getattr(loss_fn, "reduction", "sum")
    return value.sum() * (n if reduction == "mean" else 1)


@contextmanager
def checkpoint_session(model: nn.Module) -> Iterator[None]:
    """Inside: checkpoints may be loaded into ``model``; on exit its parameters, buffers, modes and
    ``requires_grad`` are exactly as before."""
    saved = {k: v.detach().clone() for k, v in model.state_dict(keep_vars=True).items()}
    with ModelGuard(model, freeze_parameters=False):
        try:
            yield
        finally:
            with torch.no_grad():
                model.load_state_dict(saved)


def top_k(scores: Tensor, k: int, proponents: bool) -> KMostInfluentialResults:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int; received {k!r}")
    if k > scores.shape[1]:
        raise ValueError(f"k ({k}) exceeds the number of training examples ({scores.shape[1]})")
    values, indices = torch.topk(scores, k, dim=1, largest=proponents, sorted=True)
    return KMostInfluentialResults(indices, values)


def resolve_module(model: nn.Module, layer: nn.Module | str, name: str) -> nn.Module:
    if isinstance(layer, str):
        modules = dict(model.named_modules())
        if layer not in modules:
            raise ValueError(f"{name} {layer!r} is not a submodule of the model")
        return modules[layer]
    if not isinstance(layer, nn.Module) or not any(m is layer for m in model.modules()):
        raise ValueError(f"{name} must be a submodule of the model (or its name)")
    return layer


def n_rows(features: Sequence[Any]) -> int:
    for f in features:
        if isinstance(f, Tensor) and f.dim() > 0:
            return f.shape[0]
    raise ValueError("a batch needs at least one tensor feature with the examples along dim 0")
