"""Reading a job's examples: a map-style dataset cut into fixed batches (one batch = one store chunk).

An item of the dataset is

* a tensor ``x`` (one model input, no label),
* a pair ``(x, label)`` where ``label`` is an int or a 0-d integer tensor (``x`` may be a tuple of tensors for a
  model with several inputs), e.g. ``torch.utils.data.TensorDataset(images, labels)`` or
  :class:`pellucid.data.ShapesData`,
* a dict with ``"inputs"`` (tensor or tuple of tensors) and optionally ``"label"``.

Batch ``c`` holds examples ``c * batch_size`` up to ``(c + 1) * batch_size`` (the last may be shorter); its
example ids are their indices in the dataset. Batches are read with the dataset's ``__getitems__`` when it has one
(torch's batched fetch), else item by item, and collated with ``torch.utils.data.default_collate``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import Tensor

from .config import JobConfigError, call_factory


@dataclass
class Batch:
    """Examples ``start .. stop - 1``: ``inputs`` (tuple of ``(B, ...)`` tensors), ``labels`` ``(B,)`` or None."""

    start: int
    stop: int
    inputs: tuple[Tensor, ...]
    labels: Tensor | None
    multi_input: bool

    @property
    def ids(self) -> Tensor:
        return torch.arange(self.start, self.stop, dtype=torch.int64)


def make_dataset(spec: Any, kwargs: Mapping[str, Any] | None = None) -> Any:
    """The dataset from a ``module:function`` string, a factory callable, or the dataset itself."""
    if isinstance(spec, str):
        ds = call_factory(spec, kwargs or {}, "dataset")
    elif callable(spec) and (isinstance(spec, type) or not hasattr(spec, "__getitem__")):
        ds = spec(**(kwargs or {}))
    else:
        ds = spec
    if not hasattr(ds, "__getitem__") or not hasattr(ds, "__len__"):
        raise JobConfigError(f"dataset must be a map-style dataset (with __len__ and __getitem__); the factory "
                             f"returned {type(ds).__name__}")
    if len(ds) == 0:
        raise JobConfigError("dataset is empty (len 0)")
    return ds


def _is_label(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return True
    return isinstance(v, Tensor) and v.dim() == 0 and not v.is_floating_point() and not v.is_complex()


def split_item(item: Any) -> tuple[Any, Any]:
    """``(inputs, label or None)`` of one dataset item (see the module docstring for the forms)."""
    if isinstance(item, Mapping):
        if "inputs" not in item:
            raise JobConfigError(f"a dataset item that is a dict must have an 'inputs' key; its keys are {sorted(item)}")
        return item["inputs"], item.get("label")
    if isinstance(item, Tensor):
        return item, None
    if isinstance(item, (tuple, list)):
        if len(item) == 2 and _is_label(item[1]):
            return item[0], item[1]
        return tuple(item), None
    raise JobConfigError(f"dataset items must be a tensor, (inputs, label) or a dict with 'inputs'; received "
                         f"{type(item).__name__}")


def _fetch(dataset: Any, start: int, stop: int) -> list:
    index = list(range(start, stop))
    getitems = getattr(dataset, "__getitems__", None)
    if getitems is not None:
        items = getitems(index)
        if isinstance(items, list) and len(items) == len(index):
            return items
    return [dataset[i] for i in index]


def load_batch(dataset: Any, start: int, stop: int) -> Batch:
    """Examples ``start .. stop - 1`` of ``dataset`` as one collated :class:`Batch`."""
    from torch.utils.data import TensorDataset, default_collate

    if type(dataset) is TensorDataset:  # slices of its tensors: what collating its items would give, without a copy
        rows = tuple(t[start:stop] for t in dataset.tensors)
        if len(rows) == 2 and rows[1].dim() == 1 and not rows[1].is_floating_point() and not rows[1].is_complex():
            return Batch(start, stop, (rows[0],), rows[1].to(torch.int64), False)
        if len(rows) == 1:
            return Batch(start, stop, rows, None, False)
        return Batch(start, stop, rows, None, True)
    parts = [split_item(item) for item in _fetch(dataset, start, stop)]
    xs = [p[0] for p in parts]
    labels = [p[1] for p in parts]
    multi = isinstance(xs[0], (tuple, list))
    inputs = default_collate(xs)
    inputs = tuple(inputs) if multi else (inputs,)
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor):
            raise JobConfigError(f"dataset inputs must be tensors; input {i} collates to {type(t).__name__}")
    if any(lab is None for lab in labels):
        label_tensor = None
    else:
        label_tensor = torch.as_tensor([int(lab) for lab in labels], dtype=torch.int64)
    return Batch(start, stop, inputs, label_tensor, multi)


def n_batches(n_examples: int, batch_size: int) -> int:
    return -(-n_examples // batch_size)


def batch_range(chunk: int, n_examples: int, batch_size: int) -> tuple[int, int]:
    start = chunk * batch_size
    return start, min(n_examples, start + batch_size)
