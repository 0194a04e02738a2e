"""``attribute_dataset``: attributions (and metrics) for every example of a dataset, into a resumable store.

The job cuts the dataset into batches of ``batch_size`` examples (batch ``c`` = examples ``c*B .. (c+1)*B-1``),
computes the batches not yet in the store's manifest (locally, or on Ray actors) and commits each one atomically
(:mod:`pellucid.jobs.store`). Killed at any point, the same call completes the job: every example is computed and
stored exactly once. A store written by a different configuration (method, arguments, model weights, dataset, ...)
is refused unless ``restart=True``.
"""
from __future__ import annotations

import contextlib
import hashlib
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import torch

from .compute import BatchWorker, weights_digest
from .config import JobConfig, canonical, reference_name
from .data import Batch, batch_range, load_batch, make_dataset, n_batches
from .store import (KIND, SCHEMA_VERSION, ConfigChangedError, StoreWriter, is_store, read_header,
                    remove_store)


@dataclass
class JobResult:
    """What a run did: ``path`` of the store, ``n_examples`` in the dataset, ``n_computed`` this run,
    ``n_resumed`` (already in the store), ``seconds`` and ``throughput`` (computed examples per second)."""

    path: Path
    n_examples: int
    n_computed: int
    n_resumed: int
    seconds: float
    throughput: float

    def open(self):
        """The store, for reading (:func:`pellucid.jobs.open_store`)."""
        from .reader import open_store

        return open_store(self.path)


def attribute_dataset(
    model_factory: Any,
    dataset: Any,
    method: Any,
    method_kwargs: Mapping[str, Any] | None = None,
    store: str | Path | None = None,
    engine: str = "local",
    metrics: Sequence[Any] = (),
    *,
    target: Any = "prediction",
    batch_size: int = 64,
    method_init: Mapping[str, Any] | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    dataset_kwargs: Mapping[str, Any] | None = None,
    seed: int = 0,
    num_workers: int | None = None,
    device: str | None = None,
    memory_budget: Any = None,
    show_progress: bool = True,
    restart: bool = False,
    metadata: Mapping[str, Any] | None = None,
) -> JobResult:
    """Attribute every example of ``dataset`` with ``method`` and write the results to the zarr store ``store``.

    Args:
        model_factory: ``"module:function"`` or a callable returning the ``nn.Module`` (called with
            ``model_kwargs``; put in ``eval()`` mode). It must be deterministic (the weights are fingerprinted, and
            every Ray actor builds its own model and checks it has the driver's weights).
        dataset: ``"module:function"``, a callable returning a map-style dataset (called with ``dataset_kwargs``),
            or the dataset. Items: ``x``, ``(x, label)`` or ``{"inputs": x, "label": y}``; ``x`` a tensor or a
            tuple of tensors (see :mod:`pellucid.jobs.data`).
        method: the name of a :mod:`pellucid.attr` class (``"IntegratedGradients"``), a class, or a callable
            ``model -> method``; ``method_init`` are its constructor's keyword arguments (``layer = "features"``
            names a submodule).
        method_kwargs: keyword arguments of ``attribute`` (``n_steps``, ``baselines``, ``feature_mask``, ...) except
            ``inputs`` and ``target``. Random methods get a per-batch ``seed`` derived from ``seed`` unless given.
        store: the store's directory (created; resumed when it holds the same job).
        engine: ``"local"`` (this process) or ``"ray"`` (Ray Data, one model per actor, a GPU per actor when the
            cluster has GPUs; starts a local Ray instance if none is running). Results are identical.
        metrics: metrics of :mod:`pellucid.metrics` per example: names (``"sparseness"``), ``{"name": ..., **kwargs}``,
            functions or ``(function, kwargs)``. Metrics needing masks or model randomisation are refused.
        target: ``"prediction"`` (the model's argmax, default), ``"label"`` (the dataset's label), a class index,
            ``None`` (one output per example) or a callable ``output -> (N,)``.
        batch_size: examples per ``attribute`` call and per store chunk (default 64). The method's own rows
            (steps, samples, perturbations) are batched within the memory budget (``memory_budget``, e.g. "1GB").
        seed: the job's seed (per-batch seeds derive from it; results do not depend on the engine or on resuming).
        num_workers: Ray actors (default: one per GPU, else one per CPU of the cluster, at most the batches left).
        device: where the model runs (default ``cuda`` when available). show_progress: tqdm bar with throughput.
        restart: discard a store written by a different configuration (or an unreadable schema) and start over.
        metadata: free-form JSON-able information kept in the store's header.

    Returns:
        :class:`JobResult`; ``open_store(store)`` reads the results.
    """
    if store is None:
        raise ValueError("store must be a directory path for the results; received None")
    # passed as given: JobConfig checks each field (None tables -> {}) and its errors name the field
    config = JobConfig(
        model=model_factory, dataset=dataset, method=method, store=store, method_kwargs=method_kwargs,
        method_init=method_init, model_kwargs=model_kwargs, dataset_kwargs=dataset_kwargs, target=target,
        metrics=list(metrics) if isinstance(metrics, (list, tuple)) else metrics, batch_size=batch_size,
        seed=seed, engine=engine, num_workers=num_workers, device=device, memory_budget=memory_budget,
        show_progress=show_progress, metadata=metadata,
    )
    return run_job(config, restart=restart)


def _batch_digest(batch: Batch) -> str:
    h = hashlib.sha256()
    for t in batch.inputs:
        t = t.detach().cpu().contiguous()
        h.update(f"{tuple(t.shape)}:{t.dtype}".encode())
        h.update((t.float() if t.dtype == torch.bfloat16 else t).numpy().tobytes())
    if batch.labels is not None:
        h.update(batch.labels.numpy().tobytes())
    return h.hexdigest()[:32]


def _differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            out.append(f"{key}: {old.get(key)!r} -> {new.get(key)!r}")
    return out


def run_job(config: JobConfig, restart: bool = False) -> JobResult:
    """Run (or resume) the job described by ``config``; see :func:`attribute_dataset`."""
    t0 = time.perf_counter()
    path = Path(config.store)
    dataset = make_dataset(config.dataset, config.dataset_kwargs)
    n = len(dataset)
    first = load_batch(dataset, *batch_range(0, n, config.batch_size))
    local = BatchWorker(config) if config.engine == "local" else None
    try:
        digest = local.digest if local is not None else weights_digest(_driver_model(config))
        return _run(config, restart, path, dataset, first, local, digest, t0)
    finally:
        if local is not None:
            local.close()


def _run(config: JobConfig, restart: bool, path: Path, dataset: Any, first: Batch, local: BatchWorker | None,
         digest: str, t0: float) -> JobResult:
    from .. import __version__

    n = len(dataset)
    extra = {
        "n_examples": n,
        "inputs": [[list(t.shape[1:]), str(t.dtype)] for t in first.inputs],
        "first_batch": _batch_digest(first),
        "weights": digest[:32],
    }
    fingerprint = config.fingerprint(extra)
    header = {
        "kind": KIND, "schema_version": SCHEMA_VERSION, "pellucid_version": __version__, "fingerprint": fingerprint,
        "config": config.result_fields(), "extra": extra, "n_examples": n, "batch_size": config.batch_size,
        "n_chunks": n_batches(n, config.batch_size), "n_inputs": len(first.inputs), "has_labels": first.labels is not None,
        "model": reference_name(config.model), "method": canonical(config.method), "metrics": [],
        "metadata": canonical(config.metadata), "created": time.time(),
    }
    from .compute import metric_entries

    header["metrics"] = [name for name, _, _ in metric_entries(config.metrics)]
    if is_store(path):
        if restart:
            remove_store(path)
        else:
            old = read_header(path)
            if old.get("fingerprint") != fingerprint:
                diffs = _differences(old.get("config", {}), header["config"]) + _differences(old.get("extra", {}), extra)
                raise ConfigChangedError(
                    f"the store at {str(path)!r} holds a job with a different configuration ({'; '.join(diffs) or 'fingerprint differs'}); "
                    "rerun with --restart (restart=True) to discard it, or choose another store"
                )
    elif restart:
        remove_store(path)
    n_chunks = header["n_chunks"]
    with StoreWriter(path, header) as writer:
        done = writer.done_chunks()
        pending = [c for c in range(n_chunks) if c not in done]
        resumed = sum(batch_range(c, n, config.batch_size)[1] - batch_range(c, n, config.batch_size)[0] for c in done)
        bar = _progress(config.show_progress, n, resumed)
        computed, t_run = 0, time.perf_counter()
        # commits run on one background thread, overlapping the next batch's computation (torch releases the
        # GIL); one commit in flight at a time, in order, so at most two batches' results are held in memory
        committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pellucid-commit")
        in_flight: Future | None = None

        def settle(future: Future | None) -> None:
            nonlocal computed
            if future is None:
                return
            rows = future.result()  # re-raises a failed commit
            computed += rows
            if bar is not None:
                bar.update(rows)
                bar.set_postfix_str(f"{computed / max(1e-9, time.perf_counter() - t_run):.1f} ex/s", refresh=False)

        def commit(chunk: int, arrays: dict, seconds: float) -> int:
            writer.commit(chunk, arrays, seconds)
            return int(arrays["ids"].shape[0])

        try:
            if config.engine == "local":
                results = _local(local, dataset, config, pending, first)
            else:
                from .ray_engine import run_on_ray

                results = run_on_ray(config, pending, digest, n)
            for chunk, arrays, seconds in results:
                settle(in_flight)
                in_flight = None
                in_flight = committer.submit(commit, chunk, arrays, seconds)
            settle(in_flight)
            in_flight = None
        finally:
            if in_flight is not None:  # an error while computing: let the commit in flight finish cleanly
                try:
                    in_flight.result()
                except Exception:
                    pass
            committer.shutdown(wait=True)
            if bar is not None:
                bar.close()
        seconds = time.perf_counter() - t_run
        throughput = computed / seconds if computed and seconds > 0 else 0.0
        if computed:
            writer.finish({"engine": config.engine, "examples": computed, "seconds": round(seconds, 4),
                           "examples_per_second": round(throughput, 3), "finished": time.time(),
                           "total_seconds": round(time.perf_counter() - t0, 4)})
    return JobResult(path, n, computed, resumed, seconds, throughput)


def _driver_model(config: JobConfig) -> torch.nn.Module:
    from .config import call_factory

    return call_factory(config.model, config.model_kwargs, "model")


def _progress(show: bool, total: int, initial: int):
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="ex", desc="attribute", dynamic_ncols=True)


def _local(worker: BatchWorker, dataset: Any, config: JobConfig, pending: Sequence[int], first: Batch
           ) -> Iterator[tuple[int, dict, float]]:
    """The local engine: batches in order, in this process."""
    from ..core.batching import set_memory_budget

    budget = set_memory_budget(config.memory_budget) if config.memory_budget is not None else contextlib.nullcontext()
    with budget:
        for chunk in pending:
            t = time.perf_counter()
            start, stop = batch_range(chunk, len(dataset), config.batch_size)
            batch = first if chunk == 0 else load_batch(dataset, start, stop)
            arrays = worker.compute(batch, chunk)
            yield chunk, arrays, time.perf_counter() - t
