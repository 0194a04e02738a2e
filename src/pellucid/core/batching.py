"""Memory-budgeted batching: how many rows go into one model call.

A method describes the rows it needs (examples x steps, x samples, x perturbations); :class:`Chunker` cuts them
into chunks. The chunk size is the smaller of

* the time-optimal size (``DEFAULT_MAX_ROWS``; on CPUs the best per-row cost comes at 16-128 rows), and
* the memory budget divided by the measured bytes a row needs. The first chunk of a new (model, row shape) pair
  is a small probe whose memory is measured (bytes autograd saves for backward, or the largest activations of a
  forward); the figure is cached per model, so later calls need no probe.

``batch_size=`` (max rows per call) overrides both. Results do not depend on the chunking: rows are independent
and every reduction is a sum in a fixed row order.
"""
from __future__ import annotations

import math
import os
import re
import time
import weakref
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import Tensor

DEFAULT_MAX_ROWS = 64
# forward-only rows (perturbations, scores): measured on the benchmark models (1 CPU thread), a transformer's
# forward costs ~1.5x more per row at 64 rows than at 16-32, a CNN's ~1.1x more at 32 than at 64-128
DEFAULT_FORWARD_ROWS = 32
PROBE_ROWS = 8
TAIL_SLACK = 0.25  # chunks may be this much larger than DEFAULT_MAX_ROWS to avoid a short last chunk
_GIB = 1024**3

_state = {"budget": None}
_row_bytes_cache: "weakref.WeakKeyDictionary[torch.nn.Module, dict]" = weakref.WeakKeyDictionary()


def parse_bytes(value: int | float | str, name: str = "budget") -> int:
    """``1_000_000``, ``"512MB"``, ``"2 GiB"``, ``"1.5g"`` -> bytes."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number of bytes or a string such as '512MB'; received bool")
    if isinstance(value, (int, float)):
        if value <= 0:
            raise ValueError(f"{name} must be positive; received {value}")
        return int(value)
    if isinstance(value, str):
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?b?)\s*", value.lower())
        if m:
            scale = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}[m.group(2)]
            out = int(float(m.group(1)) * scale)
            if out > 0:
                return out
    raise ValueError(f"{name} must be a positive number of bytes or a string such as '512MB' or '2GiB'; received {value!r}")


_AVAILABLE_TTL = 1.0  # seconds a reading of free host memory is reused (reading /proc/meminfo costs ~0.1 ms)
_available_cache: dict[str, float] = {"at": -1e9, "bytes": 0.0}


def _available_bytes(device: torch.device | None = None) -> int:
    if device is not None and device.type == "cuda" and torch.cuda.is_available():
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    now = time.monotonic()
    if now - _available_cache["at"] < _AVAILABLE_TTL:
        return int(_available_cache["bytes"])
    found = _host_available_bytes()
    _available_cache.update(at=now, bytes=found)
    return found


def _host_available_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 * _GIB


def get_memory_budget(device: torch.device | None = None) -> int:
    """The budget in bytes: the one set with :func:`set_memory_budget`, else a quarter of free memory, at most 2 GiB."""
    if _state["budget"] is not None:
        return _state["budget"]
    return max(64 * 1024**2, min(2 * _GIB, _available_bytes(device) // 4))


class set_memory_budget:
    """Set the memory budget for attribution batches; also a context manager that restores the previous one.

    >>> pellucid.set_memory_budget("512MB")            # from now on
    >>> with pellucid.set_memory_budget("128MB"): ...  # only inside the block

    ``budget`` is bytes (int) or a string with a unit (``"512MB"``, ``"2GiB"``); ``None`` restores the automatic
    default (a quarter of free memory, capped at 2 GiB).
    """

    def __init__(self, budget: int | float | str | None):
        self._previous = _state["budget"]
        _state["budget"] = None if budget is None else parse_bytes(budget)

    def __enter__(self) -> "set_memory_budget":
        return self

    def __exit__(self, *exc) -> None:
        _state["budget"] = self._previous


def resolve_batch_size(batch_size: int | None = None, **captum_names: int | None) -> int | None:
    """Merge ``batch_size`` with Captum's names for it (``internal_batch_size``, ``perturbations_per_eval``, ...)."""
    given = {k: v for k, v in {"batch_size": batch_size, **captum_names}.items() if v is not None}
    for name, value in given.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int (rows per model call); received {value!r}")
    if len(set(given.values())) > 1:
        raise ValueError(f"conflicting batch sizes given: {given}; give one")
    return next(iter(given.values()), None)


def rows_bytes(tensors) -> int:
    """Bytes of one row of each tensor (dim 0 is the row)."""
    return sum(math.prod(t.shape[1:]) * t.element_size() for t in tensors)


class Chunker:
    """Cuts ``n_rows`` rows into chunks; sized by ``batch_size`` or by the memory budget and measured row cost.

    ``key`` identifies the row shape for the per-model cache of measured bytes per row; ``input_row_bytes`` is the
    size of one row of the built inputs (counted several times: inputs, gradients, accumulators).
    """

    def __init__(
        self,
        model: torch.nn.Module | None,
        n_rows: int,
        key: tuple,
        input_row_bytes: int,
        batch_size: int | None = None,
        device: torch.device | None = None,
        show_progress: bool = False,
        desc: str = "pellucid",
    ):
        self.model, self.n_rows, self.key = model, n_rows, key
        self.input_row_bytes = max(1, input_row_bytes)
        self.batch_size = batch_size
        self.budget = get_memory_budget(device)
        self.show_progress = show_progress
        self.desc = desc
        cache = _row_bytes_cache.get(model, {}) if model is not None else {}
        self.row_bytes: int | None = cache.get(key)

    @property
    def probing(self) -> bool:
        """True while the next chunk should be measured (no batch_size given and no cached figure yet)."""
        return self.batch_size is None and self.row_bytes is None

    def record(self, rows: int, measured_bytes: int) -> None:
        """Record what a probe chunk of ``rows`` rows needed."""
        per_row = max(1, measured_bytes // max(1, rows)) + 4 * self.input_row_bytes
        self.row_bytes = per_row
        if self.model is not None:
            try:
                _row_bytes_cache.setdefault(self.model, {})[self.key] = per_row
            except TypeError:
                pass

    def size(self, remaining: int | None = None) -> int:
        """Rows for the next chunk. With ``remaining`` (rows left) and no ``batch_size``, the remaining rows are
        split into equal chunks of up to ``TAIL_SLACK`` more than the usual size where the budget allows: a short
        last chunk costs more per row than slightly larger equal ones (e.g. 80 rows: one chunk, not 64 + 16)."""
        if self.batch_size is not None:
            return self.batch_size
        if self.row_bytes is None:
            return PROBE_ROWS
        fit = max(1, self.budget // self.row_bytes)
        size = int(min(DEFAULT_FORWARD_ROWS if self.key[:1] == ("forward",) else DEFAULT_MAX_ROWS, fit))
        if remaining is None or remaining <= size:
            return size
        largest = int(min(fit, size + int(size * TAIL_SLACK)))
        chunks = -(-remaining // largest)
        return -(-remaining // chunks)

    def __iter__(self) -> Iterator[Tensor]:
        bar = None
        if self.show_progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.n_rows, desc=self.desc, unit="row", leave=False)
        start = 0
        try:
            while start < self.n_rows:
                stop = min(self.n_rows, start + self.size(self.n_rows - start))
                yield torch.arange(start, stop)
                if bar is not None:
                    bar.update(stop - start)
                start = stop
        finally:
            if bar is not None:
                bar.close()


@contextmanager
def measure_saved_bytes(exclude: set[int]):
    """Count bytes that autograd saves for backward inside the block (tensors in ``exclude`` storages skipped)."""
    seen: set[tuple[int, int]] = set()
    total = [0]

    def pack(t: Tensor):
        try:
            ptr = t.untyped_storage().data_ptr()
            size = t.untyped_storage().nbytes()
        except (RuntimeError, NotImplementedError):
            return t, None
        if ptr not in exclude and (ptr, size) not in seen:
            seen.add((ptr, size))
            total[0] += size
        return t, t._version

    def unpack(packed):
        # autograd skips its own check of saved tensors' versions when hooks pack them: do it here, so a model
        # that overwrites a tensor saved for backward (Tanh then ReLU(inplace=True)) fails as without the probe
        t, version = packed
        if version is not None and t._version != version:
            raise RuntimeError(
                "one of the variables needed for gradient computation has been modified by an inplace operation: "
                f"a {tuple(t.shape)} {t.dtype} tensor saved for backward is at version {t._version}; expected "
                f"version {version} instead (the model changes in place a tensor that autograd needs)"
            )
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
        yield total


@contextmanager
def measure_forward_peak():
    """Estimate the peak bytes of a no-grad forward: the three largest module outputs alive at once."""
    sizes: list[int] = []

    def hook(module, args, output):
        if isinstance(output, Tensor):
            sizes.append(output.numel() * output.element_size())
        elif isinstance(output, (tuple, list)):
            sizes.append(sum(o.numel() * o.element_size() for o in output if isinstance(o, Tensor)))

    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    total = [0]
    try:
        yield total
    finally:
        handle.remove()
        total[0] = sum(sorted(sizes)[-3:])
