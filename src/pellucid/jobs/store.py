"""The on-disk store of a dataset job: a zarr group of per-example arrays, a versioned header and a manifest.

Layout of a store directory::

    pellucid-store.json    header: schema version, job fingerprint, configuration, sizes (written first, atomically)
    data.zarr/             zarr group; arrays with one row per example, chunked by the job's batch size:
        ids (N,) int64, labels (N,) int64 (-1: none), targets (N,) int64 (the attributed class; -1: not a class),
        predictions (N,) int64 (argmax of the output; -1 for one output), outputs (N, ...) float32,
        attributions/<i> (N, ...) float32 (one array per model input), metrics/<name> (N,) float64
    done/chunk-<c>.json    manifest: one file per committed batch (written last, atomically)

Commit protocol: a batch's rows are written to every array (each zarr chunk file is written atomically, and a
batch is exactly one zarr chunk of each array), *then* its manifest file is renamed into place. A batch without
a manifest file is recomputed and rewritten on the next run, so a process killed at any point (SIGKILL included)
loses at most the batches in flight and never records a batch twice. One job writes a store at a time (an
advisory lock on ``done/.lock``, released by the OS when the process dies).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

SCHEMA_VERSION = 1
HEADER = "pellucid-store.json"
DATA = "data.zarr"
DONE = "done"
KIND = "pellucid.jobs attribution store"


class StoreError(ValueError):
    """A path is not a usable store (not a store, another schema version, in use, incomplete)."""


class StoreVersionError(StoreError):
    """The store was written with another schema version."""


class ConfigChangedError(StoreError):
    """The store holds a job with a different configuration; restart to discard it."""


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_header(path: str | Path) -> dict:
    """The header of the store at ``path``; :class:`StoreError` if there is none, :class:`StoreVersionError` if its
    schema version is not this pellucid's."""
    p = Path(path)
    head = p / HEADER
    if not head.is_file():
        raise StoreError(f"{str(p)!r} is not a pellucid attribution store (no {HEADER})")
    try:
        header = json.loads(head.read_text())
    except (OSError, ValueError) as e:
        raise StoreError(f"{str(head)!r} is unreadable ({e})") from e
    version = header.get("schema_version")
    if header.get("kind") != KIND or version != SCHEMA_VERSION:
        from .. import __version__

        raise StoreVersionError(
            f"the store at {str(p)!r} has schema version {version!r} (written by pellucid "
            f"{header.get('pellucid_version', 'unknown')}); this pellucid ({__version__}) reads and writes schema "
            f"version {SCHEMA_VERSION}. Read it with the pellucid version that wrote it, or recompute it "
            "(restart=True / --restart discards it)"
        )
    return header


def is_store(path: str | Path) -> bool:
    return (Path(path) / HEADER).is_file()


def remove_store(path: str | Path) -> None:
    """Delete a store directory; refuses a directory that is not a store (and not empty)."""
    p = Path(path)
    if not p.exists():
        return
    if not is_store(p) and any(p.iterdir()):
        raise StoreError(f"{str(p)!r} exists, is not empty and is not a pellucid store; refusing to delete it")
    shutil.rmtree(p)


class StoreWriter:
    """Creates or resumes a store and commits batches. Use as a context manager (holds the store's lock)."""

    def __init__(self, path: str | Path, header: Mapping[str, Any]):
        self.path = Path(path)
        self.header = dict(header)
        self.batch_size = int(header["batch_size"])
        self.n_examples = int(header["n_examples"])
        self._lock = None
        self._arrays: dict[str, Any] = {}

    # -- lifecycle ----------------------------------------------------------------------------------------------
    def __enter__(self) -> "StoreWriter":
        import zarr

        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / DONE).mkdir(exist_ok=True)
        self._lock = open(self.path / DONE / ".lock", "a")
        try:
            import fcntl

            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # not POSIX: no lock
            pass
        except OSError as e:
            self._lock.close()
            raise StoreError(f"the store at {str(self.path)!r} is being written by another running job") from e
        for stale in (self.path / DONE).glob(".chunk-*.tmp"):  # left by a process killed mid-commit
            stale.unlink(missing_ok=True)
        if (self.path / DATA).is_dir():  # zarr's temporary chunk files (``*.partial``) of a killed write
            for stale in (self.path / DATA).rglob("*.partial"):
                stale.unlink(missing_ok=True)
        if not (self.path / HEADER).is_file():
            write_json_atomic(self.path / HEADER, self.header)
        self.group = zarr.open_group(str(self.path / DATA), mode="a")
        return self

    def __exit__(self, *exc) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    # -- manifest -----------------------------------------------------------------------------------------------
    def done_chunks(self) -> set[int]:
        return done_chunks(self.path)

    # -- writing ------------------------------------------------------------------------------------------------
    def _array(self, name: str, value: np.ndarray) -> Any:
        arr = self._arrays.get(name)
        if arr is not None:
            return arr
        shape = (self.n_examples,) + tuple(value.shape[1:])
        chunks = (self.batch_size,) + tuple(value.shape[1:])
        parent, _, leaf = name.rpartition("/")
        group = self.group.require_group(parent) if parent else self.group
        if leaf in group:
            arr = group[leaf]
            if tuple(arr.shape) != shape or np.dtype(arr.dtype) != value.dtype:
                raise StoreError(f"array {name!r} in {str(self.path)!r} has shape {tuple(arr.shape)} and dtype "
                                 f"{arr.dtype}; this batch needs {shape} {value.dtype}")
        else:
            fill = np.nan if value.dtype.kind == "f" else -1
            arr = _create_array(group, leaf, shape, chunks, value.dtype, fill)
        self._arrays[name] = arr
        return arr

    def commit(self, chunk: int, arrays: Mapping[str, np.ndarray], seconds: float) -> None:
        """Write batch ``chunk``'s rows to every array, then record it in the manifest."""
        start = chunk * self.batch_size
        stop = min(self.n_examples, start + self.batch_size)
        ids = arrays["ids"]
        if ids.shape[0] != stop - start or int(ids[0]) != start or int(ids[-1]) != stop - 1:
            raise StoreError(f"batch {chunk} must hold examples {start}..{stop - 1}; received ids {ids[0]}..{ids[-1]}")
        writes = []
        for name, value in arrays.items():
            if value.shape[0] != stop - start:
                raise StoreError(f"batch {chunk}: {name} has {value.shape[0]} rows; expected {stop - start}")
            writes.append((self._array(name, value), value))
        _write_rows(writes, slice(start, stop))
        write_json_atomic(self.path / DONE / f"chunk-{chunk:08d}.json",
                          {"chunk": chunk, "start": start, "stop": stop, "seconds": seconds,
                           "committed": time.time(), "arrays": sorted(arrays)})

    def finish(self, stats: Mapping[str, Any]) -> None:
        """Record run statistics (throughput) in the header."""
        header = json.loads((self.path / HEADER).read_text())
        header.setdefault("runs", []).append(dict(stats))
        write_json_atomic(self.path / HEADER, header)


def _write_rows(writes: list, rows: slice) -> None:
    """``array[rows] = value`` for every pair; with zarr 3 all at once on its event loop (one batch's arrays are
    written concurrently: ~7x faster than one after another for small batches), else one by one."""
    try:
        import asyncio

        from zarr.core.sync import sync
    except ImportError:
        sync = None
    if sync is not None and all(hasattr(a, "_async_array") for a, _ in writes):
        async def write_all() -> None:
            await asyncio.gather(*[a._async_array.setitem(rows, v) for a, v in writes])

        sync(write_all())
        return
    for a, v in writes:
        a[rows] = v


def _create_array(group: Any, name: str, shape: tuple, chunks: tuple, dtype: np.dtype, fill: Any) -> Any:
    """A zarr array without compression (attributions barely compress, the other arrays are small, and writing
    must stay cheap: ~1 ms of CPU per array and batch with zarr 3); zarr 3's ``create_array`` or zarr 2's
    ``create_dataset``."""
    if hasattr(group, "create_array"):
        return group.create_array(name, shape=shape, chunks=chunks, dtype=dtype, fill_value=fill, compressors=None)
    return group.create_dataset(name, shape=shape, chunks=chunks, dtype=dtype, fill_value=fill, compressor=None)


def done_chunks(path: str | Path) -> set[int]:
    """Numbers of the batches recorded in the store's manifest."""
    d = Path(path) / DONE
    if not d.is_dir():
        return set()
    out = set()
    for name in os.listdir(d):
        if name.startswith("chunk-") and name.endswith(".json"):
            out.add(int(name[6:-5]))
    return out
