"""The Ray engine: the same job on Ray Data actors (a local Ray instance started here) gives the local engine's
results, and a store is resumable across engines."""
import os

import numpy as np
import pytest

zarr = pytest.importorskip("zarr")
ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

from pellucid.jobs import attribute_dataset, open_store
from pellucid.jobs.store import DONE

NAMES = ["ids", "labels", "targets", "predictions", "outputs", "attributions/0", "metrics/sparseness",
         "metrics/sensitivity_max"]


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def job(store, engine, **kw):
    return attribute_dataset(
        "pellucid.jobs.demo:tiny_model", "pellucid.jobs.demo:tiny_dataset", "NoiseTunnel",
        {"nt_samples": 3, "stdevs": 0.1}, store=store, engine=engine, method_init={"attribution_method": "Saliency"},
        metrics=["sparseness", {"name": "sensitivity_max", "n_perturb_samples": 2}],
        dataset_kwargs={"n": 90}, batch_size=16, seed=3, show_progress=False, num_workers=2, **kw)


def read(store):
    s = open_store(store)
    s.check_complete()
    return {n: s[n][:] for n in NAMES}


@pytest.mark.filterwarnings("ignore:`use_:DeprecationWarning")  # Ray Data's own deprecated context fields
def test_ray_engine_gives_the_local_results(tmp_path, local_ray):
    """One Ray run (Ray's start-up dominates the cost): a local store with half its batches forgotten and their rows
    overwritten is completed on Ray; every row must equal the uninterrupted local run's."""
    store = tmp_path / "store"
    job(store, "local")
    expected = read(store)
    forgotten = [0, 2, 3, 5]
    g = zarr.open_group(str(store / "data.zarr"), mode="a")
    for c in forgotten:
        os.remove(store / DONE / f"chunk-{c:08d}.json")
        for name in NAMES:
            a = g[name]
            a[c * 16:(c + 1) * 16] = np.full(a[c * 16:(c + 1) * 16].shape, -7, dtype=a.dtype)
    assert not open_store(store).complete
    r = job(store, "ray")
    assert (r.n_computed, r.n_resumed) == (16 * 3 + 10, 90 - 58)
    got = read(store)
    for name in NAMES:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
