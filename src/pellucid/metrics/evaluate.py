"""``evaluate``: a methods x metrics table."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from torch import Tensor

from .faithfulness import infidelity


@dataclass
class Table:
    """A plain methods x metrics table (used when pandas is not installed).

    Attributes: ``rows`` (method names), ``columns`` (metric names), ``values`` (``rows x columns`` floats),
    ``higher_is_better`` (per column), ``per_example`` (``{(method, metric): (N,) tensor}``).
    """

    rows: list[str]
    columns: list[str]
    values: list[list[float]]
    higher_is_better: dict[str, bool]
    per_example: dict[tuple[str, str], Tensor]

    def __getitem__(self, key: tuple[str, str]) -> float:
        method, name = key
        return self.values[self.rows.index(method)][self.columns.index(name)]

    def __str__(self) -> str:
        heads = [f"{c} ({'^' if self.higher_is_better[c] else 'v'})" for c in self.columns]
        width = max([len(r) for r in self.rows] + [6])
        cols = [max(len(h), 10) for h in heads]
        lines = [" " * width + "  " + "  ".join(h.rjust(w) for h, w in zip(heads, cols))]
        for r, vals in zip(self.rows, self.values):
            lines.append(r.ljust(width) + "  " + "  ".join(f"{v:.4g}".rjust(w) for v, w in zip(vals, cols)))
        return "\n".join(lines)


def _metric_entry(entry: Any) -> tuple[Callable, dict]:
    if isinstance(entry, tuple) and len(entry) == 2 and callable(entry[0]) and isinstance(entry[1], Mapping):
        fn, kw = entry[0], dict(entry[1])
    elif callable(entry):
        fn, kw = entry, {}
    else:
        raise TypeError(f"each metric must be a metric function or (function, kwargs); received {type(entry).__name__}")
    if not hasattr(fn, "info"):
        raise TypeError(f"{getattr(fn, '__name__', fn)!r} has no metric metadata (.info); use pellucid.metrics functions")
    return fn, kw


def evaluate(
    methods: Mapping[str, Any],
    metrics: Mapping[str, Any] | Sequence[Any],
    model: Callable,
    inputs: Any,
    target: Any = None,
    *,
    masks: Any = None,
    additional_forward_args: Any = None,
    attribute_kwargs: Mapping[str, Any] | None = None,
    reduce: str | None = "mean",
    as_dataframe: bool | None = None,
):
    """Evaluate every method with every metric.

    Args:
        methods: ``{name: explainer}``; an explainer is an attribution class (built on ``model``), an instance, a
            bound ``attribute`` method or a function ``(inputs, **kwargs) -> attributions`` (a plain function can
            not be re-bound for randomisation metrics).
        metrics: ``{column name: metric}`` or a list of metrics (named by their metadata); a metric is a function
            of :mod:`pellucid.metrics` or ``(function, kwargs)`` with extra arguments (e.g.
            ``(infidelity, {"perturb_func": gaussian_perturbation(0.01)})``).
        model, inputs, target, additional_forward_args: the model and the examples explained.
        masks: ground-truth masks for localisation metrics.
        attribute_kwargs: extra keyword arguments of every method's ``attribute`` (e.g. ``baselines``), or
            ``{method name: {...}}`` per method.
        reduce: ``"mean"`` or ``"median"`` over examples; ``None`` keeps ``(N,)`` tensors in the cells.
        as_dataframe: return a ``pandas.DataFrame`` (default: if pandas is installed) with ``df.attrs["higher_is_better"]``
            giving each column's direction; else a :class:`Table`.
    Attributions are computed once per method and shared by the metrics that need them.
    """
    if not isinstance(methods, Mapping) or not methods:
        raise TypeError("methods must be a non-empty dict {name: explainer}")
    if isinstance(metrics, Mapping):
        entries = {name: _metric_entry(m) for name, m in metrics.items()}
    else:
        entries = {}
        for m in metrics:
            fn, kw = _metric_entry(m)
            entries[fn.info.name] = (fn, kw)
    if reduce not in ("mean", "median", None):
        raise ValueError(f"reduce must be 'mean', 'median' or None; received {reduce!r}")
    common = dict(attribute_kwargs or {})
    per_method = all(isinstance(v, Mapping) for v in common.values()) and set(common) <= set(methods) and bool(common)
    rows, values, per_example = list(methods), [], {}
    for mname, method in methods.items():
        akw = dict(common.get(mname, {})) if per_method else dict(common)
        if additional_forward_args is not None:
            akw["additional_forward_args"] = additional_forward_args
        if target is not None:
            akw["target"] = target
        explain = _explainer(method, model)
        attributions = None
        row = []
        for cname, (fn, kw) in entries.items():
            needs = fn.info.needs
            if "attributions" in needs and attributions is None:
                attributions = explain(inputs, **akw)
            if "explain" in needs:
                out = fn(explain, inputs, **{**akw, **kw})
            elif "method" in needs:
                extra = {k: v for k, v in akw.items() if k != "target"}
                out = fn(model, method, inputs, target, **{"attribute_kwargs": extra, **kw})
            elif "masks" in needs:
                if masks is None:
                    raise ValueError(f"metric {cname!r} needs ground-truth masks: pass masks=")
                out = fn(attributions, masks, **kw)
            elif "model" not in needs:
                out = fn(attributions, **kw)
            else:
                if fn is infidelity and "perturb_func" not in kw:
                    raise ValueError("infidelity needs a perturb_func: pass "
                                     "(infidelity, {'perturb_func': gaussian_perturbation(0.01)})")
                args = {"target": target, **kw}
                if additional_forward_args is not None:
                    args["additional_forward_args"] = additional_forward_args
                out = fn(forward_func=model, inputs=inputs, attributions=attributions, **args)
            out = out.detach().double().cpu()
            per_example[(mname, cname)] = out
            row.append(out if reduce is None else float(out.mean() if reduce == "mean" else out.median()))
        values.append(row)
    directions = {c: fn.info.higher_is_better for c, (fn, _) in entries.items()}
    table = Table(rows, list(entries), values, directions, per_example)
    if as_dataframe is False:
        return table
    try:
        import pandas as pd
    except ImportError:
        if as_dataframe:
            raise ImportError("as_dataframe=True needs pandas: pip install pandas") from None
        return table
    df = pd.DataFrame(values, index=rows, columns=list(entries))
    df.attrs["higher_is_better"] = directions
    return df


def _explainer(method: Any, model: Callable) -> Callable:
    """``(inputs, **kwargs) -> attributions`` from a class (built on ``model``), an instance or a function."""
    if isinstance(method, type):
        return method(model).attribute
    if hasattr(method, "attribute"):
        return method.attribute
    if callable(method):
        return method
    raise TypeError(f"each method must be an attribution class, instance or function; received {type(method).__name__}")
