"""The Ray engine: the job's batches on Ray Data, one model per actor (a GPU per actor when the cluster has GPUs).

The batch numbers left to do form a Ray dataset (one block per batch); ``map_batches`` sends them to a fixed pool
of :class:`_Actor` s, each of which builds the model with the job's factory (checking it got the driver's weights),
reads its batch from the dataset and computes it with the same :class:`~pellucid.jobs.compute.BatchWorker` as the
local engine. The driver receives results as they stream out and commits them to the store, so a Ray job is
resumable exactly like a local one.
"""
from __future__ import annotations

import pickle
import time
from typing import Iterator, Sequence

import numpy as np

from .config import JobConfig


class _Actor:
    """A Ray Data actor: the model, the method and the dataset, built once; ``__call__`` computes one batch."""

    def __init__(self, config: JobConfig, digest: str, device: str | None, num_threads: int | None):
        import torch

        from .compute import BatchWorker
        from .data import make_dataset

        if num_threads is not None:
            torch.set_num_threads(num_threads)
        self.config = config
        self.worker = BatchWorker(config, device=device, expected_digest=digest)
        self.dataset = make_dataset(config.dataset, config.dataset_kwargs)

    def __call__(self, batch: dict) -> dict:
        import contextlib

        from ..core.batching import set_memory_budget
        from .data import batch_range, load_batch

        chunks, payloads, seconds = [], [], []
        budget = (set_memory_budget(self.config.memory_budget) if self.config.memory_budget is not None
                  else contextlib.nullcontext())
        with budget:
            for chunk in batch["chunk"]:
                t = time.perf_counter()
                chunk = int(chunk)
                start, stop = batch_range(chunk, len(self.dataset), self.config.batch_size)
                arrays = self.worker.compute(load_batch(self.dataset, start, stop), chunk)
                chunks.append(chunk)
                payloads.append(pickle.dumps(arrays, protocol=pickle.HIGHEST_PROTOCOL))
                seconds.append(time.perf_counter() - t)
        out_payload = np.empty(len(payloads), dtype=object)
        out_payload[:] = payloads
        return {"chunk": np.asarray(chunks, dtype=np.int64), "payload": out_payload,
                "seconds": np.asarray(seconds, dtype=np.float64)}


def run_on_ray(config: JobConfig, pending: Sequence[int], digest: str, n_examples: int
               ) -> Iterator[tuple[int, dict, float]]:
    """Yield ``(chunk, arrays, seconds)`` for every pending batch, computed on Ray actors (any order).

    Uses the running Ray instance (``ray.init`` by the caller), or starts a local one and shuts it down at the end.
    """
    if not pending:
        return
    try:
        import ray
        import ray.data
    except ImportError as e:
        raise ImportError("engine='ray' needs Ray Data: pip install 'pellucid[ray]'") from e
    started = False
    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
        started = True
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        if hasattr(ctx, "print_on_execution_start"):
            ctx.print_on_execution_start = False
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        cpus = max(1, int(resources.get("CPU", 1)))
        if config.num_workers is not None:
            size = config.num_workers
        else:
            size = gpus if gpus else cpus
        size = max(1, min(size, len(pending)))
        device = config.device or ("cuda" if gpus else "cpu")
        threads = None if gpus else max(1, cpus // size)
        ds = ray.data.from_items([{"chunk": int(c)} for c in pending], override_num_blocks=len(pending))
        ds = ds.map_batches(
            _Actor,
            batch_size=1,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=size),
            fn_constructor_kwargs={"config": config, "digest": digest, "device": device, "num_threads": threads},
            num_gpus=1 if gpus else 0,
            num_cpus=0 if gpus else 1,
        )
        for row in ds.iter_rows():
            yield int(row["chunk"]), pickle.loads(row["payload"]), float(row["seconds"])
    finally:
        if started:
            ray.shutdown()
