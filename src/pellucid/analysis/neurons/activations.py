"""Activation extraction: the neurons of any layers of any model over a dataset, as an ``(items, neurons)`` matrix.

An *item* is what a neuron is analysed on: an example (``per="example"``: the layer's value of each example,
flattened), a token (``per="token"``: layers with ``(N, L, D)`` values, one row per unmasked token, the neurons are
the ``D`` features) or, for Hugging Face models, a word
(:func:`pellucid.analysis.neurons.words.extract_word_activations`, sub-word tokens aggregated). Several layers
are concatenated along the neuron axis; :class:`Activations` remembers which columns belong to which layer.

Rows are streamed: each batch's rows are written to ``out`` (a raw float file plus ``meta.json``) as they come, so
memory holds one batch of activations, and the result is a memory-mapped tensor. The forward pass of each batch
stops right after the last tapped layer (:class:`pellucid.core.layers.LayerSpace`), under ``torch.no_grad`` and
with the model in eval mode; the model's state is restored afterwards (:class:`pellucid.core.guard.ModelGuard`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ...core.guard import ModelGuard
from ...core.layers import LayerSpace, check_layers_in_model

LayersArg = nn.Module | Sequence[nn.Module] | Mapping[str, nn.Module]
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "float64": torch.float64, "bfloat16": torch.bfloat16}


@dataclass
class Activations:
    """Activations ``values`` ``(items, neurons)`` of one or more layers.

    ``layers``: layer names; ``sizes``: neurons per layer (columns are the layers' neurons in order);
    ``items``: an optional label per row (e.g. the word); ``sentence_index``: optional ``(items,)`` index of the
    sentence/example each row comes from; ``path``: the directory the values are memory-mapped from (``None`` when
    held in memory).
    """

    values: Tensor
    layers: list[str]
    sizes: list[int]
    items: list[str] | None = None
    sentence_index: Tensor | None = None
    path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_neurons(self) -> int:
        return int(sum(self.sizes))

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def layer_columns(self, layer: str | int) -> slice:
        """The columns of one layer (by name or position)."""
        i = self.layers.index(layer) if isinstance(layer, str) else int(layer)
        if not 0 <= i < len(self.layers):
            raise ValueError(f"layer must name one of {self.layers} or index them; received {layer!r}")
        start = int(sum(self.sizes[:i]))
        return slice(start, start + self.sizes[i])

    def locate(self, neurons: Any) -> dict[str, Tensor]:
        """Global column indices -> ``{layer name: local neuron indices}`` (layers without a selected neuron are
        left out; order within a layer follows ``neurons``)."""
        idx = as_index(neurons, self.n_neurons, "neurons")
        offsets = torch.tensor([0] + list(np.cumsum(self.sizes)))
        which = torch.bucketize(idx, offsets[1:], right=True)
        return {self.layers[k]: idx[which == k] - offsets[k] for k in range(len(self.layers)) if (which == k).any()}

    def neuron_names(self, neurons: Any = None) -> list[str]:
        """``"layer:index"`` for each of ``neurons`` (default: all)."""
        idx = torch.arange(self.n_neurons) if neurons is None else as_index(neurons, self.n_neurons, "neurons")
        offsets = np.cumsum([0] + list(self.sizes))
        out = []
        for j in idx.tolist():
            k = int(np.searchsorted(offsets, j, side="right") - 1)
            out.append(f"{self.layers[k]}:{j - offsets[k]}")
        return out

    def mean(self, chunk_rows: int = 65536) -> Tensor:
        """Per-neuron mean ``(neurons,)`` in float64, streamed over rows (used by mean ablation)."""
        return column_stats(self.values, chunk_rows)[0]

    @classmethod
    def load(cls, path: str | Path) -> "Activations":
        """Open activations written by an extraction with ``out=path`` (memory-mapped, read-only)."""
        path = Path(path)
        meta_file = path / "meta.json"
        if not meta_file.exists():
            raise ValueError("path must be a directory written by an extraction (with meta.json); "
                             f"received {str(path)!r}")
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        values = _open_values(path, meta)
        sidx = path / "sentence_index.npy"
        return cls(values, meta["layers"], meta["sizes"], meta.get("items"),
                   torch.from_numpy(np.load(sidx)) if sidx.exists() else None, path, meta.get("extra", {}))


def as_index(neurons: Any, n: int, name: str = "neurons") -> Tensor:
    """A 1-D long tensor of neuron indices in ``[0, n)`` from an int, a sequence, an array or a tensor."""
    if isinstance(neurons, bool):
        raise TypeError(f"{name} must be an int or a sequence of ints; received bool")
    if isinstance(neurons, int):
        neurons = [neurons]
    try:
        idx = torch.as_tensor(np.asarray(neurons) if not isinstance(neurons, Tensor) else neurons)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name} must be a sequence of ints; received {type(neurons).__name__}") from e
    if idx.numel() == 0:
        return torch.zeros(0, dtype=torch.long)
    if idx.dtype.is_floating_point or idx.dtype == torch.bool or idx.dtype.is_complex:
        raise TypeError(f"{name} must hold integer neuron indices; received dtype {idx.dtype}")
    idx = idx.reshape(-1).long()
    if int(idx.min()) < 0 or int(idx.max()) >= n:
        raise ValueError(f"{name} must be indices in [0, {n}); received values from {int(idx.min())} to "
                         f"{int(idx.max())}")
    return idx


def column_stats(values: Tensor, chunk_rows: int = 65536) -> tuple[Tensor, Tensor]:
    """Per-column mean and (population) standard deviation in float64, streamed over row chunks."""
    n = values.shape[0]
    if n == 0:
        raise ValueError("values has no rows")
    s = torch.zeros(values.shape[1], dtype=torch.float64)
    for i in range(0, n, chunk_rows):
        s += values[i: i + chunk_rows].double().sum(0)
    mean = s / n
    ss = torch.zeros_like(s)
    for i in range(0, n, chunk_rows):
        ss += ((values[i: i + chunk_rows].double() - mean) ** 2).sum(0)
    return mean, (ss / n).sqrt()


def _open_values(path: Path, meta: dict) -> Tensor:
    dtype = meta["dtype"]
    n, d = meta["shape"]
    if n == 0:
        return torch.zeros(0, d, dtype=_DTYPES[dtype])
    np_dtype = {"float32": np.float32, "float16": np.float16, "float64": np.float64}[dtype]
    mm = np.memmap(path / "values.bin", dtype=np_dtype, mode="r", shape=(n, d))
    import warnings

    with warnings.catch_warnings():  # read-only memmap: torch warns that writing would be undefined
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(mm)


class ActivationWriter:
    """Collects row blocks ``(rows, neurons)``: in memory (``out=None``) or appended to ``out/values.bin``."""

    def __init__(self, out: str | Path | None, dtype: torch.dtype = torch.float32):
        if dtype not in (torch.float32, torch.float16, torch.float64):
            raise ValueError(f"dtype must be torch.float32, torch.float16 or torch.float64; received {dtype}")
        self.out = None if out is None else Path(out)
        self.dtype = dtype
        self.blocks: list[Tensor] = []
        self.n = 0
        self.d: int | None = None
        self._file = None
        if self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)
            self._file = open(self.out / "values.bin", "wb")

    def write(self, block: Tensor) -> None:
        block = block.detach().to("cpu", self.dtype).contiguous()
        if self.d is None:
            self.d = int(block.shape[1])
        if self._file is not None:
            self._file.write(block.numpy().tobytes())
        else:
            self.blocks.append(block)
        self.n += int(block.shape[0])

    def close(self, layers: list[str], sizes: list[int], items: list[str] | None = None,
              sentence_index: Tensor | None = None, extra: dict | None = None) -> Activations:
        d = int(sum(sizes))
        if self._file is None:
            values = torch.cat(self.blocks) if self.blocks else torch.zeros(0, d, dtype=self.dtype)
            self.blocks = []
            return Activations(values, layers, sizes, items, sentence_index, None, extra or {})
        self._file.close()
        meta = {"shape": [self.n, d], "dtype": str(self.dtype).replace("torch.", ""), "layers": layers,
                "sizes": sizes, "items": items, "extra": extra or {}}
        (self.out / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        if sentence_index is not None:
            np.save(self.out / "sentence_index.npy", sentence_index.numpy())
        return Activations.load(self.out)

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()


def format_named_layers(model: Any, layers: LayersArg,
                        names: Sequence[str] | None = None) -> tuple[list[str], list[nn.Module]]:
    """``(names, modules)`` from a module, a list of modules or a ``{name: module}`` mapping; default names are the
    modules' qualified names in ``model`` (``"encoder.layer.3"``)."""
    if isinstance(layers, Mapping):
        names_, mods = [str(k) for k in layers], list(layers.values())
    else:
        mods = [layers] if isinstance(layers, nn.Module) else list(layers)
        names_ = None
    if not mods:
        raise ValueError("layers must be a module, a non-empty list of modules or a {name: module} mapping; "
                         "received none")
    for i, m in enumerate(mods):
        if not isinstance(m, nn.Module):
            raise TypeError(f"layers[{i}] must be a torch.nn.Module of the model; received {type(m).__name__}")
    if len({id(m) for m in mods}) != len(mods):
        raise ValueError("layers lists the same module more than once")
    check_layers_in_model(model, mods, "layers")
    if names is not None:
        names_ = [str(n) for n in names]
        if len(names_) != len(mods):
            raise ValueError(f"layer_names must give one name per layer ({len(mods)}); received {len(names_)}")
    if names_ is None:
        qual = {id(m): n for n, m in model.named_modules()} if isinstance(model, nn.Module) else {}
        names_ = [qual.get(id(m)) or f"layer{i}" for i, m in enumerate(mods)]
    return names_, mods


def first_tensor(value: Any) -> Tensor:
    """The layer's activation tensor: the value itself, or the first element of a tuple (Hugging Face blocks)."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], Tensor):
        return value[0]
    raise TypeError(f"a layer produced {type(value).__name__}; expected a tensor or a tuple starting with one")


def call_batch(model: Callable, batch: Any) -> Any:
    """``model(batch)`` for a tensor, ``model(*batch)`` for a tuple/list, ``model(**batch)`` for a mapping."""
    if isinstance(batch, Tensor):
        return model(batch)
    if isinstance(batch, Mapping):
        return model(**batch)
    if isinstance(batch, (tuple, list)):
        return model(*batch)
    raise TypeError(f"each batch must be a tensor, a tuple/list of model arguments or a dict of keyword arguments; "
                    f"received {type(batch).__name__}")


def layer_values(model: Callable, modules: list[nn.Module], batch: Any) -> list[Tensor]:
    """The layers' values for one batch; the forward stops after the last of them (no grad)."""
    space = LayerSpace(model, modules)
    with space, torch.no_grad():
        if isinstance(batch, Mapping):
            values = space.value(**batch)
        elif isinstance(batch, (tuple, list)):
            values = space.value(*batch)
        elif isinstance(batch, Tensor):
            values = space.value(batch)
        else:
            call_batch(model, batch)  # raises the TypeError
    return [first_tensor(v).detach() for v in values]


def _to_device(batch: Any, device: torch.device | None) -> Any:
    if device is None:
        return batch
    if isinstance(batch, Tensor):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def _progress(it: Iterable, show: bool, desc: str, total: int | None = None) -> Iterable:
    if not show:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, desc=desc, unit="batch", total=total, leave=False)


def extract_activations(
    model: Callable,
    layers: LayersArg,
    data: Iterable[Any],
    *,
    per: str = "example",
    mask_key: str = "attention_mask",
    out: str | Path | None = None,
    dtype: torch.dtype = torch.float32,
    layer_names: Sequence[str] | None = None,
    device: str | torch.device | None = None,
    input_fn: Callable[[Any], Any] | None = None,
    batch_size: int = 64,
    show_progress: bool = True,
) -> Activations:
    """Activations of ``layers`` over every batch of ``data``.

    Args:
        model: the model (``nn.Module`` or callable).
        layers: a module, a list of modules, or ``{name: module}``; a layer's value is its output (the first element
            of a tuple output, as for Hugging Face blocks).
        data: an iterable of batches (e.g. a ``DataLoader``): a tensor (``model(x)``), a tuple/list
            (``model(*batch)``) or a dict (``model(**batch)``); or a single tensor of all examples, split into
            batches of ``batch_size`` (default 64).
        per: ``"example"``: one row per example, the layer's value flattened after the batch dim (``(N, ...)`` ->
            ``(N, prod(...))``); ``"token"``: layers with ``(N, L, D)`` values give one row per token, neurons are
            the ``D`` features, padding dropped where the batch is a dict with ``mask_key``.
        mask_key: the key of the ``(N, L)`` token mask in dict batches (default ``"attention_mask"``).
        out: a directory: rows are streamed to ``out/values.bin`` (+ ``meta.json``) and the result is memory-mapped
            (memory holds one batch); ``None`` (default): kept in memory.
        dtype: storage dtype (``torch.float32`` default; ``torch.float16`` halves the disk).
        layer_names: names for the layers (default: their qualified names in ``model``).
        device: move each batch there first (default: leave it).
        input_fn: maps each batch to the model's input (e.g. ``lambda b: b[0]`` for a loader yielding
            ``(inputs, labels)``); default: the batch itself.
        show_progress: a tqdm bar over batches (default ``True``).

    Returns:
        :class:`Activations` with ``values`` ``(items, sum of layer sizes)``; ``sentence_index`` gives each row's
        example number.
    """
    if per not in ("example", "token"):
        raise ValueError(f"per must be 'example' or 'token'; received {per!r}")
    names, modules = format_named_layers(model, layers, layer_names)
    if isinstance(data, Tensor):
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int; received {batch_size!r}")
        if data.dim() == 0:
            raise ValueError("data must have a batch dimension; received a 0-d tensor")
        data = [data[i: i + batch_size] for i in range(0, data.shape[0], batch_size)]
    if input_fn is not None and not callable(input_fn):
        raise TypeError(f"input_fn must be a callable batch -> model input; received {type(input_fn).__name__}")
    writer = ActivationWriter(out, dtype)
    sizes: list[int] | None = None
    sent: list[Tensor] = []
    n_examples = 0
    total = len(data) if hasattr(data, "__len__") else None  # type: ignore[arg-type]
    try:
        with ModelGuard(model):
            if isinstance(model, nn.Module):
                model.eval()
            for batch in _progress(data, show_progress, "activations", total):
                if input_fn is not None:
                    batch = input_fn(batch)
                batch = _to_device(batch, None if device is None else torch.device(device))
                values = layer_values(model, modules, batch)
                n = values[0].shape[0]
                if per == "example":
                    blocks = [v.reshape(v.shape[0], -1) for v in values]
                    index = torch.arange(n_examples, n_examples + n)
                else:
                    for name, v in zip(names, values):
                        if v.dim() != 3:
                            raise ValueError(f"per='token' needs layers with (N, L, D) values; layer {name!r} gives "
                                             f"shape {tuple(v.shape)}")
                    mask = batch.get(mask_key) if isinstance(batch, Mapping) else None
                    keep = (torch.ones(values[0].shape[:2], dtype=torch.bool) if mask is None else mask.bool().cpu())
                    blocks = [v[keep.to(v.device)] for v in values]
                    index = (torch.arange(n_examples, n_examples + n)[:, None].expand_as(keep))[keep]
                block_sizes = [int(b.shape[1]) for b in blocks]
                if sizes is None:
                    sizes = block_sizes
                elif sizes != block_sizes:
                    raise ValueError(f"layer sizes changed between batches ({sizes} then {block_sizes}); with "
                                     "per='example' every example must give the same shape (use per='token' for sequences)")
                writer.write(torch.cat(blocks, 1))
                sent.append(index)
                n_examples += n
    except BaseException:
        writer.abort()
        raise
    if sizes is None:
        raise ValueError("data yielded no batches")
    return writer.close(names, sizes, None, torch.cat(sent), {"per": per})
