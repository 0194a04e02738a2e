"""One batch of a job: the model's outputs, the attributions and the metrics, as NumPy arrays.

:class:`BatchWorker` holds the model and the method (built once from the job's factories) and computes a batch;
the local engine runs one in the calling process, the Ray engine one per actor. The same code runs in both, with
the same per-batch seed, so the engines give identical results.
"""
from __future__ import annotations

import hashlib
import inspect
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from .config import JobConfig, JobConfigError, call_factory, resolve_reference
from .data import Batch

_LAYER_KEYS = ("layer", "layers")


def method_class(name: str) -> type:
    """The class ``name`` of :mod:`pellucid.attr` (e.g. ``"IntegratedGradients"``) or a ``module:Class`` reference."""
    if ":" in name:
        return resolve_reference(name, "method")
    from .. import attr

    cls = getattr(attr, name, None)
    if not isinstance(cls, type) or not hasattr(cls, "attribute"):
        known = sorted(n for n in attr.__all__ if isinstance(getattr(attr, n, None), type)
                       and hasattr(getattr(attr, n), "attribute") and n[0].isupper())
        raise JobConfigError(f"method {name!r} is not an attribution class of pellucid.attr; known: {', '.join(known)}")
    return cls


def build_method(method: Any, model: torch.nn.Module, init: Mapping[str, Any]) -> Any:
    """An attribution object on ``model``: ``method`` is a class name, a class, or a callable ``model -> method``.

    String values of ``layer``/``layers`` in ``init`` name submodules (``"features"``, ``"encoder.0"``).
    """
    kwargs = dict(init)
    for key in _LAYER_KEYS:
        value = kwargs.get(key)
        if isinstance(value, str):
            kwargs[key] = _submodule(model, value, f"method_init.{key}")
        elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            kwargs[key] = [_submodule(model, v, f"method_init.{key}") for v in value]
    if isinstance(method, str):
        method = method_class(method)
    if isinstance(method, type) and _first_parameter(method) == "attribution_method":  # wrappers: NoiseTunnel
        inner = kwargs.pop("attribution_method", None)
        if inner is None:
            raise JobConfigError(f"method_init.attribution_method: {method.__name__} wraps another method; name it "
                                 "(e.g. attribution_method = 'Saliency')")
        if isinstance(inner, (str, type)):
            inner = build_method(inner, model, {})
        return method(inner, **kwargs)
    if isinstance(method, type) or kwargs:
        return method(model, **kwargs)
    return method(model)


def _first_parameter(cls: type) -> str | None:
    try:
        params = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    except (TypeError, ValueError):
        return None
    return params[0] if params else None


def _submodule(model: torch.nn.Module, path: str, name: str) -> torch.nn.Module:
    try:
        return model.get_submodule(path)
    except AttributeError as e:
        raise JobConfigError(f"{name}: the model has no submodule {path!r}") from e


def metric_entries(metrics: Sequence[Any]) -> list[tuple[str, Callable, dict]]:
    """``(column, function, kwargs)`` of each metric: a name of :mod:`pellucid.metrics`, ``{name=..., kwargs}``, a
    metric function or ``(function, kwargs)``. Metrics that need ground-truth masks or re-running the method on a
    changed model (parameter randomisation) are refused."""
    from .. import metrics as M

    out, seen = [], set()
    for i, entry in enumerate(metrics):
        kwargs: dict = {}
        if isinstance(entry, str):
            fn = getattr(M, entry, None)
        elif isinstance(entry, Mapping):
            if "name" not in entry:
                raise JobConfigError(f"metrics[{i}] is a table without a 'name' (e.g. {{name = 'sparseness'}})")
            fn = getattr(M, str(entry["name"]), None)
            kwargs = {k: v for k, v in entry.items() if k != "name"}
        elif isinstance(entry, tuple) and len(entry) == 2 and callable(entry[0]) and isinstance(entry[1], Mapping):
            fn, kwargs = entry[0], dict(entry[1])
        else:
            fn = entry if callable(entry) else None
        info = getattr(fn, "info", None)
        if fn is None or info is None:
            names = sorted(f.__name__ for f in M.ALL_METRICS)
            raise JobConfigError(f"metrics[{i}] = {entry!r} is not a metric of pellucid.metrics; known: {', '.join(names)}")
        if "masks" in info.needs or "method" in info.needs:
            raise JobConfigError(f"metrics[{i}] ({info.name}) needs {'ground-truth masks' if 'masks' in info.needs else 'the method re-run on a randomised model'}, "
                                 "which a dataset job does not provide")
        column = info.name
        if column in seen:
            raise JobConfigError(f"metrics[{i}]: metric {column!r} is listed twice")
        seen.add(column)
        out.append((column, fn, kwargs))
    return out


def chunk_seed(seed: int, chunk: int) -> int:
    """The seed of batch ``chunk``: depends only on the job's seed and the batch number (not on the engine or the
    order in which batches run)."""
    digest = hashlib.sha256(f"{seed}:{chunk}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 of the model's parameters and buffers (names, shapes, dtypes, values)."""
    h = hashlib.sha256()
    for name, t in list(model.state_dict().items()):
        if not isinstance(t, Tensor):
            continue
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update((t.float() if t.dtype == torch.bfloat16 else t).numpy().tobytes())
    return h.hexdigest()


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _accepts(fn: Callable, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params  # named explicitly (a **kwargs that forwards elsewhere may not take it)


def _numpy(t: Tensor) -> np.ndarray:
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16 or t.dtype == torch.float16:
        t = t.float()
    return t.numpy()


class BatchWorker:
    """Holds the job's model (built by its factory, in ``eval()`` mode, on ``device``) and method; computes batches.

    ``expected_digest``: the driver's :func:`weights_digest`; a worker whose factory built different weights refuses
    to run (a non-deterministic factory would make results depend on the worker).
    """

    def __init__(self, config: JobConfig, device: str | None = None, expected_digest: str | None = None,
                 model: torch.nn.Module | None = None):
        self.config = config
        self.device = torch.device(device or config.device or default_device())
        if model is None:
            model = call_factory(config.model, config.model_kwargs, "model")
        if not isinstance(model, torch.nn.Module):
            raise JobConfigError(f"model: the factory must return a torch.nn.Module; it returned {type(model).__name__}")
        # a factory may hand out a model the caller keeps using: remember its modes and device, restored by close()
        self._modes = [(m, m.training) for m in model.modules()]
        self._home = next((t.device for t in list(model.parameters()) + list(model.buffers())), None)
        self.digest = weights_digest(model)
        if expected_digest is not None and self.digest != expected_digest:
            raise RuntimeError("the model factory built different weights in this worker than in the driver; a job's "
                               "model factory must be deterministic (seed it, or load saved weights)")
        model.eval()  # inference: dropout off, BatchNorm running statistics
        self.model = model.to(self.device)
        self.method = build_method(config.method, self.model, config.method_init)
        self.metrics = metric_entries(config.metrics)

    def close(self) -> None:
        """Give the model back as the factory returned it (training flags, device)."""
        for m, mode in self._modes:
            m.training = mode
        if self._home is not None and self._home != self.device:
            self.model.to(self._home)

    def outputs(self, inputs: tuple[Tensor, ...], extra: Any) -> Tensor:
        args = extra if isinstance(extra, tuple) else (() if extra is None else (extra,))
        with torch.no_grad():
            out = self.model(*inputs, *args, **dict(self.config.method_kwargs.get("forward_kwargs") or {}))
        if not isinstance(out, Tensor):
            raise TypeError(f"the model returned {type(out).__name__}; a dataset job needs a model returning a tensor "
                            "(N, ...) of outputs")
        return out

    def targets(self, out: Tensor, batch: Batch) -> tuple[Any, np.ndarray]:
        """The target passed to ``attribute`` and the stored ``(B,)`` int64 targets (-1 where not a class index)."""
        t, b = self.config.target, batch.stop - batch.start
        if t == "prediction":
            if out.dim() < 2 or out[0].numel() < 2:
                raise JobConfigError(f"target='prediction' needs a classifier output (N, C); the model returned shape "
                                     f"{tuple(out.shape)} (use target = none for one output per example)")
            pred = out.reshape(b, -1).argmax(1).cpu()
            return pred, pred.numpy().astype(np.int64, copy=False)
        if t == "label":
            if batch.labels is None:
                raise JobConfigError("target='label' but the dataset's items have no label (items must be (inputs, label))")
            return batch.labels, batch.labels.numpy().astype(np.int64, copy=False)
        if isinstance(t, int):
            return t, np.full(b, t, dtype=np.int64)
        return t, np.full(b, -1, dtype=np.int64)

    def compute(self, batch: Batch, chunk: int) -> dict[str, np.ndarray]:
        """Arrays of one batch: ``ids``, ``labels``, ``outputs``, ``predictions``, ``targets``,
        ``attributions/<i>`` (one per model input) and ``metrics/<name>``."""
        cfg = self.config
        seed = chunk_seed(cfg.seed, chunk)
        inputs = tuple(x.to(self.device) for x in batch.inputs)
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        kwargs = dict(cfg.method_kwargs)
        if "seed" not in kwargs and "generator" not in kwargs and _accepts(self.method.attribute, "seed"):
            kwargs["seed"] = seed
        with torch.random.fork_rng(devices=devices):
            # the generators of this batch's devices only (torch.manual_seed would also queue lazy seeding of
            # every accelerator backend, ~1 ms of stack capture per call)
            torch.default_generator.manual_seed(seed)
            if devices:
                with torch.cuda.device(self.device):
                    torch.cuda.manual_seed(seed)
            out = self.outputs(inputs, kwargs.get("additional_forward_args"))
            target, stored_targets = self.targets(out, batch)
            attrs = self.method.attribute(inputs if batch.multi_input else inputs[0], target=target, **kwargs)
            if isinstance(attrs, tuple) and len(attrs) == 2 and kwargs.get("return_convergence_delta"):
                attrs = attrs[0]
            attrs = attrs if isinstance(attrs, tuple) else (attrs,)
            metric_values = self._metrics(inputs if batch.multi_input else inputs[0], attrs if batch.multi_input else attrs[0],
                                          target, kwargs, seed)
        b = batch.stop - batch.start
        flat = out.reshape(b, -1)
        result = {
            "ids": batch.ids.numpy(),
            "labels": (batch.labels.numpy().astype(np.int64, copy=False) if batch.labels is not None else np.full(b, -1, np.int64)),
            "outputs": _numpy(out).astype(np.float32, copy=False),
            "predictions": (_numpy(flat.argmax(1)).astype(np.int64, copy=False) if flat.shape[1] > 1 else np.full(b, -1, np.int64)),
            "targets": stored_targets,
        }
        for i, a in enumerate(attrs):
            result[f"attributions/{i}"] = _numpy(a).astype(np.float32, copy=False)
        for name, v in metric_values.items():
            result[f"metrics/{name}"] = v
        return result

    def _metrics(self, inputs: Any, attrs: Any, target: Any, kwargs: dict, seed: int) -> dict[str, np.ndarray]:
        out = {}
        for column, fn, mkw in self.metrics:
            mkw = dict(mkw)
            if "seed" not in mkw and "generator" not in mkw and _accepts(fn, "seed"):
                mkw["seed"] = seed
            needs = fn.info.needs
            if "explain" in needs:
                akw = {k: v for k, v in kwargs.items() if k != "seed"}
                value = fn(self.method.attribute, inputs, target=target, **{**akw, **mkw})
            elif "model" in needs:
                extra = {k: kwargs[k] for k in ("additional_forward_args",) if k in kwargs}
                value = fn(forward_func=self.model, inputs=inputs, attributions=attrs, target=target, **extra, **mkw)
            else:
                value = fn(attrs, **mkw)
            out[column] = _numpy(value).astype(np.float64, copy=False).reshape(-1)
        return out
