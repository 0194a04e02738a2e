"""Small explorers for the explorer's tests: an untrained CNN pair on generated shapes and an untrained token
transformer on key-token sequences (milliseconds per attribution)."""
from __future__ import annotations

import time

import pytest
import torch

pytest.importorskip("fastapi")
pytest.importorskip("matplotlib")

from pellucid.data import SimpleCNN, TinyTransformer, make_sequences, make_shapes  # noqa: E402
from pellucid.explorer import Explorer, TextFeature  # noqa: E402

VOCAB = [f"w{i}" for i in range(64)]


def image_explorer(n: int = 16, seed: int = 0) -> Explorer:
    torch.manual_seed(seed)
    data = make_shapes(n, size=16, object_size=(4, 6), seed=seed + 1)
    return Explorer({"cnn": SimpleCNN(width=4), "cnn2": SimpleCNN(width=4)}, data, classes=list(data.classes),
                    name="shapes")


def text_explorer(n: int = 10, seed: int = 0) -> Explorer:
    torch.manual_seed(seed)
    s = make_sequences(n, seed=seed)
    ds = [({"ids": s.ids[i], "attention_mask": s.attention_mask[i]}, s.labels[i]) for i in range(n)]
    model = TinyTransformer(vocab=64, dim=16, n_classes=2, max_length=s.ids.shape[1])
    return Explorer({"tiny": model}, ds, classes=["neg", "pos"], features=TextFeature("embedding", VOCAB),
                    name="seq")


def wait(client, job_id: str, timeout: float = 60.0) -> dict:
    """Poll a job until it finishes; returns its final status."""
    t0 = time.time()
    while True:
        r = client.get(f"/api/jobs/{job_id}")
        assert r.status_code == 200, r.text
        job = r.json()
        if job["status"] in ("done", "error", "cancelled"):
            return job
        assert time.time() - t0 < timeout, f"job {job_id} still {job['status']} after {timeout} s"
        time.sleep(0.01)


def run_job(client, body: dict) -> dict:
    r = client.post("/api/jobs", json=body)
    assert r.status_code == 202, r.text
    return wait(client, r.json()["id"])
