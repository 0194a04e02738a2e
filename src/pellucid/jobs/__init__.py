"""Dataset-scale attribution jobs: every example of a dataset into a resumable zarr store, locally or on Ray.

* :func:`attribute_dataset` (``python -m pellucid attribute --config job.toml``): attributions, outputs,
  predictions, targets and optional metrics per example, batch by batch, atomically committed; killed at any point,
  rerunning completes it with every example exactly once. ``engine="ray"`` runs the same job on Ray Data actors.
* :func:`open_store`: read a store; streaming summaries per class and feature; a picture of the class means.
* :class:`DataLoaderAttribution`: Captum's perturbation attribution of a metric aggregated over a whole
  DataLoader.

Needs the ``jobs`` extra (zarr); the Ray engine the ``ray`` extra. zarr and Ray are imported only when used.
"""
from .config import JobConfig, JobConfigError, load_config
from .dataloader_attribution import DataLoaderAttribution, InputRole
from .reader import AttributionStore, Summary, open_store
from .run import JobResult, attribute_dataset, run_job
from .store import SCHEMA_VERSION, ConfigChangedError, StoreError, StoreVersionError

__all__ = [
    "AttributionStore", "ConfigChangedError", "DataLoaderAttribution", "InputRole", "JobConfig", "JobConfigError",
    "JobResult", "SCHEMA_VERSION", "StoreError", "StoreVersionError", "Summary", "attribute_dataset", "load_config",
    "open_store", "run_job",
]
