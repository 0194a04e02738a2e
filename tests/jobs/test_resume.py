"""Resumability: a job killed with SIGKILL at random points completes on rerun with every example exactly once and
results equal to an uninterrupted run; changed configurations and other schema versions are refused."""
import json
import multiprocessing
import os
import random
import time

import numpy as np
import pytest
import torch

pytest.importorskip("zarr")

from pellucid.jobs import (ConfigChangedError, StoreError, StoreVersionError, attribute_dataset, open_store)
from pellucid.jobs.demo import tiny_dataset, tiny_model
from pellucid.jobs.store import DONE, HEADER

N, BATCH = 240, 6


class SlowDataset(torch.utils.data.Dataset):
    """tiny_dataset with a short delay per item, so that a batch takes a few milliseconds and kills land mid-job."""

    def __init__(self, n=N):
        self.base = tiny_dataset(n)

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        time.sleep(0.0004)
        return self.base[i]


def slow_dataset():
    return SlowDataset()


def job(store, **overrides):
    kwargs = dict(model_factory=tiny_model, dataset=slow_dataset, method="GradientShap",
                  method_kwargs={"n_samples": 3, "baselines": torch.zeros(4, 6)}, store=store,
                  metrics=["sparseness"], batch_size=BATCH, show_progress=False, seed=7,
                  device="cpu")
    kwargs.update(overrides)
    return attribute_dataset(**kwargs)


def _child(store):
    torch.set_num_threads(1)
    job(store)


def arrays(store):
    s = open_store(store)
    names = ["ids", "labels", "targets", "predictions", "outputs", "attributions/0", "metrics/sparseness"]
    return {n: s[n][:] for n in names}


def test_sigkill_at_random_points_loses_and_duplicates_nothing(tmp_path):
    reference = tmp_path / "reference"
    duration = job(reference).seconds  # an uninterrupted run
    expected = arrays(reference)
    store = tmp_path / "killed"
    # children forked from this process (fast); where CUDA is initialised (its state and autograd's device threads
    # cannot be forked), from a fresh server process that imports this module once
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([__name__])
    else:
        ctx = multiprocessing.get_context("fork")
    rng = random.Random(0)
    n_chunks = -(-N // BATCH)
    per_batch = duration / n_chunks

    def committed():
        return len([f for f in os.listdir(store / DONE) if f.startswith("chunk-")]) if (store / DONE).is_dir() else 0

    kills, partial, progress = 0, 0, []
    for _ in range(12):
        p = ctx.Process(target=_child, args=(str(store),))
        p.start()
        # kill at a random point: after 0-3 more batches are committed, plus a random part of a batch's time (a
        # kill with 0 more batches lands in start-up; the others mid-computation or mid-commit)
        target, deadline = committed() + rng.randint(0, 3), time.monotonic() + 60
        while committed() < target and p.is_alive() and time.monotonic() < deadline:
            time.sleep(0.001)
        time.sleep(rng.uniform(0.0, 1.0) * per_batch)
        if p.is_alive():
            p.kill()  # SIGKILL
            kills += 1
        p.join()
        progress.append(committed())
        partial += 0 < progress[-1] < n_chunks
    assert kills >= 10
    print("progress after each kill:", progress)
    assert partial >= 5, progress  # most kills landed while the job was part-way through
    result = job(store)  # the same call completes the job
    assert result.n_computed + result.n_resumed == N
    s = open_store(store)
    s.check_complete()  # every batch in the manifest, ids 0..N-1 exactly once
    manifest = sorted(f for f in os.listdir(store / DONE) if f.startswith("chunk-"))
    assert manifest == [f"chunk-{c:08d}.json" for c in range(n_chunks)]
    spans = sorted((json.loads((store / DONE / f).read_text())["start"], json.loads((store / DONE / f).read_text())["stop"])
                   for f in manifest)
    assert [a for a, _ in spans] == list(range(0, N, BATCH)) and all(b == min(N, a + BATCH) for a, b in spans)
    got = arrays(store)
    for name, value in expected.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)
    assert not any(f.endswith(".tmp") for f in os.listdir(store / DONE) if f.startswith(".chunk"))


def test_changed_configuration_is_refused_unless_restarted(tmp_path):
    store = tmp_path / "s"
    job(store, dataset=lambda: tiny_dataset(36))
    with pytest.raises(ConfigChangedError, match=r"method_kwargs.*--restart"):
        job(store, dataset=lambda: tiny_dataset(36), method_kwargs={"n_samples": 5, "baselines": torch.zeros(4, 6)})
    with pytest.raises(ConfigChangedError, match="weights"):  # same config, other weights
        job(store, dataset=lambda: tiny_dataset(36), model_factory=lambda: tiny_model(seed=1))
    with pytest.raises(ConfigChangedError, match="first_batch"):  # other data
        job(store, dataset=lambda: tiny_dataset(36, seed=3))
    r = job(store, dataset=lambda: tiny_dataset(36), method_kwargs={"n_samples": 5, "baselines": torch.zeros(4, 6)},
            restart=True)
    assert r.n_computed == 36 and r.n_resumed == 0
    assert open_store(store).header["config"]["method_kwargs"]["n_samples"] == 5
    # engine, progress and memory budget do not define the result: not a change
    r = job(store, dataset=lambda: tiny_dataset(36), method_kwargs={"n_samples": 5, "baselines": torch.zeros(4, 6)},
            memory_budget="64MB", show_progress=True)
    assert r.n_computed == 0 and r.n_resumed == 36


def test_store_of_another_schema_version_is_refused(tmp_path):
    store = tmp_path / "s"
    job(store, dataset=lambda: tiny_dataset(12))
    header = json.loads((store / HEADER).read_text())
    header["schema_version"] = 99
    header["pellucid_version"] = "9.9.9"
    (store / HEADER).write_text(json.dumps(header))
    with pytest.raises(StoreVersionError, match=r"schema version 99 \(written by pellucid 9.9.9\).*reads and writes schema version 1"):
        open_store(store)
    with pytest.raises(StoreVersionError, match="schema version 99"):
        job(store, dataset=lambda: tiny_dataset(12))
    assert job(store, dataset=lambda: tiny_dataset(12), restart=True).n_computed == 12


def test_restart_never_deletes_a_directory_that_is_not_a_store(tmp_path):
    d = tmp_path / "precious"
    d.mkdir()
    (d / "thesis.tex").write_text("...")
    with pytest.raises(StoreError, match="not a pellucid store"):
        job(d, dataset=lambda: tiny_dataset(12), restart=True)
    assert (d / "thesis.tex").exists()
    with pytest.raises(StoreError, match="not a pellucid attribution store"):
        open_store(d)
