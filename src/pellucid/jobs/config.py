"""A dataset attribution job's configuration: validation, ``module:function`` references, TOML and fingerprints.

A :class:`JobConfig` says what to compute (model, dataset, method, its arguments, target, metrics, batch size,
seed); where (``store``) and how (``engine``, ``num_workers``, ``device``, ``memory_budget``, ``show_progress``)
are not part of what is computed. :meth:`JobConfig.fingerprint` hashes the *what* only, so a store can tell
whether a rerun is the same job (resume) or a different one (refused unless restarted).
"""
from __future__ import annotations

import hashlib
import importlib
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

ENGINES = ("local", "ray")
TARGETS = ("prediction", "label")


class JobConfigError(ValueError):
    """A job's configuration is invalid; the message names the field."""


def resolve_reference(ref: Any, name: str) -> Any:
    """``"package.module:attribute"`` -> the object (a callable passes through unchanged)."""
    if callable(ref) and not isinstance(ref, str):
        return ref
    if not isinstance(ref, str) or ref.count(":") != 1 or not all(ref.split(":")):
        raise JobConfigError(f"{name} must be 'module:function' (e.g. 'pellucid.jobs.demo:shapes_model') or a "
                             f"callable; received {ref!r}")
    module_name, attr = ref.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise JobConfigError(f"{name}: cannot import module {module_name!r} of {ref!r} ({e})") from e
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise JobConfigError(f"{name}: module {module_name!r} has no attribute {attr!r} (from {ref!r})")
        obj = getattr(obj, part)
    return obj


def reference_name(obj: Any) -> str:
    """A stable text for a callable or object (``module:qualname``), used in fingerprints and metadata."""
    if isinstance(obj, str):
        return obj
    module = getattr(obj, "__module__", None)
    qual = getattr(obj, "__qualname__", None)
    if module and qual:
        return f"{module}:{qual}"
    return f"{type(obj).__module__}:{type(obj).__qualname__}"


def canonical(value: Any) -> Any:
    """A JSON-able form of configuration values (tensors by content hash, callables by name)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        digest = hashlib.sha256(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
        return {"tensor": list(t.shape), "dtype": str(t.dtype), "sha256": digest.hexdigest()[:16]}
    if isinstance(value, Mapping):
        return {str(k): canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, torch.nn.Module):
        return {"module": reference_name(type(value))}
    if callable(value):
        return reference_name(value)
    return repr(value)


@dataclass
class JobConfig:
    """Everything a dataset attribution job needs. See :func:`pellucid.jobs.attribute_dataset` for each field.

    Fields that define the result (in the fingerprint): ``model``, ``model_kwargs``, ``dataset``,
    ``dataset_kwargs``, ``method``, ``method_init``, ``method_kwargs``, ``target``, ``metrics``, ``batch_size``,
    ``seed``. Fields that do not: ``store``, ``engine``, ``num_workers``, ``device``, ``memory_budget``,
    ``show_progress``, ``metadata`` (kept in the store for the reader).
    """

    model: Any
    dataset: Any
    method: Any
    store: str | Path
    method_kwargs: dict = field(default_factory=dict)
    method_init: dict = field(default_factory=dict)
    model_kwargs: dict = field(default_factory=dict)
    dataset_kwargs: dict = field(default_factory=dict)
    target: Any = "prediction"
    metrics: list = field(default_factory=list)
    batch_size: int = 64
    seed: int = 0
    engine: str = "local"
    num_workers: int | None = None
    device: str | None = None
    memory_budget: Any = None
    show_progress: bool = True
    metadata: dict = field(default_factory=dict)

    RESULT_FIELDS = ("model", "model_kwargs", "dataset", "dataset_kwargs", "method", "method_init", "method_kwargs",
                     "target", "metrics", "batch_size", "seed")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`JobConfigError` (a ``ValueError``) naming the first bad field."""
        if not (callable(self.model) or isinstance(self.model, str)):
            raise JobConfigError(f"model must be 'module:function' or a callable returning an nn.Module; "
                                 f"received {type(self.model).__name__}")
        if isinstance(self.model, str):
            resolve_reference(self.model, "model")
        if isinstance(self.dataset, str):
            resolve_reference(self.dataset, "dataset")
        elif not (callable(self.dataset) or hasattr(self.dataset, "__getitem__")):
            raise JobConfigError(f"dataset must be 'module:function', a callable returning a dataset, or a dataset "
                                 f"(with __len__ and __getitem__); received {type(self.dataset).__name__}")
        if isinstance(self.method, str):
            from .compute import method_class

            method_class(self.method)
        elif not callable(self.method):
            raise JobConfigError(f"method must be the name of a pellucid.attr class (e.g. 'IntegratedGradients'), a "
                                 f"class, or a callable model -> method; received {type(self.method).__name__}")
        for name in ("method_kwargs", "method_init", "model_kwargs", "dataset_kwargs", "metadata"):
            value = getattr(self, name)
            if value is None:
                setattr(self, name, {})
            elif not isinstance(value, Mapping):
                raise JobConfigError(f"{name} must be a table/dict of keyword arguments; received {type(value).__name__}")
            else:
                setattr(self, name, dict(value))
        for reserved in ("inputs", "target"):
            if reserved in self.method_kwargs:
                raise JobConfigError(f"method_kwargs must not contain {reserved!r}: the job passes each batch's "
                                     f"{reserved} itself (set the job's target= field instead)")
        t = self.target
        ok = t is None or t in TARGETS or (isinstance(t, int) and not isinstance(t, bool)) or (
            callable(t) and not isinstance(t, str))
        if not ok:
            raise JobConfigError(f"target must be 'prediction', 'label', a class index (int), none, or a callable "
                                 f"output -> (N,); received {t!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise JobConfigError(f"batch_size must be a positive int (examples per batch and per store chunk); "
                                 f"received {self.batch_size!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise JobConfigError(f"seed must be an int; received {self.seed!r}")
        if self.engine not in ENGINES:
            raise JobConfigError(f"engine must be one of {', '.join(map(repr, ENGINES))}; received {self.engine!r}")
        if self.num_workers is not None and (isinstance(self.num_workers, bool) or not isinstance(self.num_workers, int)
                                             or self.num_workers < 1):
            raise JobConfigError(f"num_workers must be a positive int or none; received {self.num_workers!r}")
        if self.device is not None:
            try:
                torch.device(self.device)
            except (RuntimeError, TypeError) as e:
                raise JobConfigError(f"device must be a torch device such as 'cpu' or 'cuda:0'; received "
                                     f"{self.device!r}") from e
        if self.memory_budget is not None:
            from ..core.batching import parse_bytes

            try:
                parse_bytes(self.memory_budget, "memory_budget")
            except (TypeError, ValueError) as e:
                raise JobConfigError(str(e)) from e
        if not isinstance(self.store, (str, Path)) or not str(self.store):
            raise JobConfigError(f"store must be a directory path; received {self.store!r}")
        if not isinstance(self.metrics, (list, tuple)):
            raise JobConfigError(f"metrics must be a list of metric names or tables with a 'name'; received "
                                 f"{type(self.metrics).__name__}")
        from .compute import metric_entries

        metric_entries(self.metrics)

    def result_fields(self) -> dict:
        """The fields that define the result, in JSON-able form."""
        return {name: canonical(getattr(self, name)) for name in self.RESULT_FIELDS}

    def fingerprint(self, extra: Mapping[str, Any] | None = None) -> str:
        """SHA-256 of the result fields (and ``extra``: the dataset's size and shapes, the model's weights)."""
        payload = {"config": self.result_fields(), "extra": canonical(dict(extra or {}))}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


_KNOWN = {f.name for f in fields(JobConfig)}


def load_toml(path: str | Path) -> dict:
    """Read a TOML file with :mod:`tomllib` (Python >= 3.11) or ``tomli`` (3.10)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError as e:
            raise ImportError("reading TOML on Python 3.10 needs tomli: pip install tomli") from e
    p = Path(path)
    if not p.is_file():
        raise JobConfigError(f"config: no such file {str(p)!r}")
    with open(p, "rb") as f:
        try:
            return tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise JobConfigError(f"config: {p} is not valid TOML ({e})") from e


def config_from_mapping(data: Mapping[str, Any], base_dir: str | Path | None = None) -> JobConfig:
    """A :class:`JobConfig` from a TOML document: top-level keys, or the same keys in a ``[job]`` table.

    Unknown keys are refused (naming them). A relative ``store`` is resolved against ``base_dir`` (the TOML file's
    folder). ``target = "none"`` means ``None`` (TOML has no null).
    """
    data = dict(data.get("job", data)) if isinstance(data.get("job"), Mapping) else dict(data)
    unknown = sorted(set(data) - _KNOWN)
    if unknown:
        raise JobConfigError(f"unknown field(s) {', '.join(map(repr, unknown))} in the job config; known fields: "
                             f"{', '.join(sorted(_KNOWN))}")
    for required in ("model", "dataset", "method", "store"):
        if required not in data:
            raise JobConfigError(f"the job config has no {required!r} field (required)")
    if data.get("target") == "none":
        data["target"] = None
    if base_dir is not None and not Path(str(data["store"])).is_absolute():
        data["store"] = str((Path(base_dir) / str(data["store"])).resolve())
    return JobConfig(**data)


def load_config(path: str | Path) -> JobConfig:
    """Read and validate a job's TOML file."""
    return config_from_mapping(load_toml(path), Path(path).resolve().parent)


def call_factory(factory: Any, kwargs: Mapping[str, Any], name: str) -> Any:
    """Resolve ``module:function`` and call it with ``kwargs``."""
    fn: Callable = resolve_reference(factory, name)
    return fn(**kwargs)
