"""Streaming statistics over attribution tensors: Captum's ``Summarizer`` / ``ClassSummarizer`` and their stats.

Each :meth:`Summarizer.update` adds one *sample* (a tensor, or a tuple of tensors summarised separately); the
summary holds elementwise statistics over the samples seen so far. :meth:`ClassSummarizer.update` takes a *batch*
(dim 0) with one label per row and keeps one summary per label plus the overall one.

Unlike Captum, the built-in statistics share one set of running moments per tensor (count, mean, sum of squared
deviations, min, max, sum) merged with Chan et al.'s parallel update (Chan, Golub & LeVeque 1979, "Updating
formulae and a pairwise algorithm for computing sample variances"), so a batch of rows is merged in one tensor
operation instead of a Python loop over examples. Custom :class:`Stat` subclasses (``update(x)``/``get()``) still
work and are updated once per sample.
"""
from __future__ import annotations

import copy
from collections import defaultdict
from typing import Any, Callable, Iterable, Sequence, Union

import torch
from torch import Tensor

StatValue = Union[Tensor, int, float]

__all__ = [
    "ClassSummarizer", "CommonStats", "Count", "MSE", "Max", "Mean", "Min", "Stat", "StatValue", "StdDev", "Sum",
    "Summarizer", "SummarizerSingleTensor", "Var",
]


class _Moments:
    """Running elementwise moments of samples of one shape: n, mean, m2 (sum of squared deviations), min, max, sum."""

    def __init__(self) -> None:
        self.n = 0
        self.mean: Tensor | None = None
        self.m2: Tensor | None = None
        self.min: Tensor | None = None
        self.max: Tensor | None = None
        self.sum: Tensor | None = None

    def add_batch(self, x: Tensor) -> None:
        """Merge the samples ``x[0], x[1], ...`` (dim 0 indexes samples)."""
        nb = x.shape[0]
        if nb == 0:
            return
        xf = x if x.is_floating_point() else x.double()
        mean_b = xf.mean(dim=0)
        m2_b = ((xf - mean_b) ** 2).sum(dim=0)
        min_b, max_b, sum_b = x.amin(dim=0), x.amax(dim=0), x.sum(dim=0)
        if self.n == 0:
            self.n, self.mean, self.m2, self.min, self.max, self.sum = nb, mean_b, m2_b, min_b, max_b, sum_b
            return
        n = self.n + nb
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (nb / n)
        self.m2 = self.m2 + m2_b + delta**2 * (self.n * nb / n)
        self.min = torch.minimum(self.min, min_b)
        self.max = torch.maximum(self.max, max_b)
        self.sum = self.sum + sum_b
        self.n = n


class Stat:
    """A statistic with a ``name`` (its key in a summary). Subclass and implement ``update(x)`` (one sample) and
    ``get()`` for a custom statistic; the built-in ones read the shared running moments instead.

    Two stats are equal when they have the same class and parameters (as in Captum)."""

    def __init__(self, name: str | None = None, **params: Any) -> None:
        self.params = params
        self._name = name
        self._moments: _Moments | None = None

    def _bind(self, moments: _Moments) -> None:
        self._moments = moments

    def update(self, x: Tensor) -> None:
        """Add one sample (custom stats only; built-in stats are updated through the shared moments)."""

    def get(self) -> StatValue | None:
        raise NotImplementedError(f"{type(self).__name__} must implement get()")

    @property
    def name(self) -> str:
        """The key of this statistic in a summary: the class name in lower case (with its parameters) or ``name``."""
        if self._name is not None:
            return self._name
        base = type(self).__name__.lower()
        return f"{base}({self.params})" if self.params else base

    def __hash__(self) -> int:
        return hash((type(self), frozenset(self.params.items())))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Stat) and type(self) is type(other) and self.params == other.params

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class _MomentStat(Stat):
    """A built-in statistic computed from the shared moments."""

    _builtin = True

    def _value(self, m: _Moments) -> StatValue | None:  # pragma: no cover - overridden
        raise NotImplementedError

    def get(self) -> StatValue | None:
        m = self._moments
        if m is None or m.n == 0:
            return None
        return self._value(m)


class Count(_MomentStat):
    """The number of samples seen (``update`` calls of a :class:`Summarizer`)."""

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name=name)

    def _value(self, m: _Moments) -> int:
        return m.n


class Mean(_MomentStat):
    """Elementwise mean of the samples (float; integer samples give float64, as in Captum)."""

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name=name)

    def _value(self, m: _Moments) -> Tensor:
        return m.mean.clone()


class MSE(_MomentStat):
    """Elementwise sum of squared deviations from the mean, ``sum_i (x_i - mean)^2`` (Captum's ``MSE``)."""

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name=name)

    def _value(self, m: _Moments) -> Tensor:
        return m.m2.clone()


class Var(_MomentStat):
    """Elementwise variance ``MSE / (n - order)`` in float64: ``order=0`` population (name ``variance``),
    ``order=1`` sample variance (``sample_variance``); zeros while ``n <= order``."""

    def __init__(self, name: str | None = None, order: int = 0) -> None:
        if name is None:
            name = {0: "variance", 1: "sample_variance"}.get(order, f"variance({order})")
        super().__init__(name=name, order=order)
        self.order = order

    def _value(self, m: _Moments) -> Tensor:
        if m.n <= self.order:
            return torch.zeros_like(m.m2, dtype=torch.float64)
        return m.m2.to(torch.float64) / (m.n - self.order)


class StdDev(_MomentStat):
    """Elementwise standard deviation, the square root of :class:`Var` of the same ``order`` (names ``std_dev``,
    ``sample_std_dev``)."""

    def __init__(self, name: str | None = None, order: int = 0) -> None:
        if name is None:
            name = {0: "std_dev", 1: "sample_std_dev"}.get(order, f"std_dev({order})")
        super().__init__(name=name, order=order)
        self.order = order

    def _value(self, m: _Moments) -> Tensor:
        return Var(order=self.order)._value(m).sqrt()


class _Accumulate(Stat):
    """``result = fn(result, x)`` over samples; with the default ``fn`` it reads the shared moments."""

    _field = ""
    _default: Callable[[Tensor, Tensor], Tensor]

    def __init__(self, name: str | None, fn: Callable[[Tensor, Tensor], Tensor] | None) -> None:
        super().__init__(name=name)
        self.fn = fn
        self.result: Tensor | None = None

    @property
    def _builtin(self) -> bool:  # a custom fn is applied sample by sample
        return self.fn is None or self.fn is type(self)._default

    def update(self, x: Tensor) -> None:
        self.result = x.clone() if self.result is None else self.fn(self.result, x)

    def get(self) -> Tensor | None:
        if self._builtin:
            m = self._moments
            return None if m is None or m.n == 0 else getattr(m, self._field).clone()
        return self.result


class Min(_Accumulate):
    """Elementwise minimum (``min_fn`` replaces ``torch.min`` for custom orders)."""

    _field, _default = "min", torch.min

    def __init__(self, name: str | None = None, min_fn: Callable[[Tensor, Tensor], Tensor] = torch.min) -> None:
        super().__init__(name, min_fn)


class Max(_Accumulate):
    """Elementwise maximum (``max_fn`` replaces ``torch.max``)."""

    _field, _default = "max", torch.max

    def __init__(self, name: str | None = None, max_fn: Callable[[Tensor, Tensor], Tensor] = torch.max) -> None:
        super().__init__(name, max_fn)


class Sum(_Accumulate):
    """Elementwise sum (``add_fn`` replaces ``torch.add``)."""

    _field, _default = "sum", torch.add

    def __init__(self, name: str | None = None, add_fn: Callable[[Tensor, Tensor], Tensor] = torch.add) -> None:
        super().__init__(name, add_fn)


def CommonStats() -> list[Stat]:  # noqa: N802 - Captum's name
    """Mean, sample variance, sample standard deviation, min and max (Captum's ``CommonStats``)."""
    return [Mean(), Var(order=1), StdDev(order=1), Min(), Max()]


def _check_stats(stats: Any) -> list[Stat]:
    if isinstance(stats, Stat) or not isinstance(stats, Iterable):
        raise TypeError(f"stats must be a list of Stat objects (e.g. [Mean(), StdDev()]); received {stats!r}")
    stats = list(stats)
    for s in stats:
        if not isinstance(s, Stat):
            raise TypeError(f"stats must hold Stat objects (Mean(), Var(), ...); received {type(s).__name__}")
    names = [s.name for s in stats]
    if len(set(names)) != len(names):
        raise ValueError(f"stats must have distinct names; received {names}")
    return stats


class SummarizerSingleTensor:
    """Statistics of one stream of tensors of a fixed shape. Prefer :class:`Summarizer`. ``summary_stats_indices``
    (Captum's argument) limits :attr:`summary` to those positions of ``stats`` (default: all)."""

    def __init__(self, stats: Sequence[Stat], summary_stats_indices: Sequence[int] | None = None) -> None:
        self.moments = _Moments()
        self.stats = [copy.deepcopy(s) for s in stats]
        self._shown = list(range(len(self.stats))) if summary_stats_indices is None else list(summary_stats_indices)
        for s in self.stats:
            s._bind(self.moments)
        self._custom = [s for s in self.stats if not getattr(s, "_builtin", False)]
        self._shape: tuple[int, ...] | None = None

    def update(self, x: Tensor) -> None:
        """Add one sample."""
        self.update_batch(x.unsqueeze(0))

    def update_batch(self, xs: Tensor) -> None:
        """Add the samples ``xs[0], xs[1], ...`` at once."""
        shape = tuple(xs.shape[1:])
        if self._shape is None:
            self._shape = shape
        elif shape != self._shape:
            raise ValueError(f"every sample summarised must have shape {self._shape}; received {shape}")
        xs = xs.detach()
        self.moments.add_batch(xs)
        for s in self._custom:
            for x in xs:
                s.update(x)

    def get(self, stat: Stat) -> Stat | None:
        """The tracked statistic equal to ``stat`` (same class and parameters), or ``None``."""
        return next((s for s in self.stats if s == stat), None)

    @property
    def summary(self) -> dict[str, StatValue | None]:
        return {self.stats[i].name: self.stats[i].get() for i in self._shown}


def _as_tensor(x: Any) -> Tensor:
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return torch.tensor(x, dtype=torch.float)
    raise TypeError(f"x must be a tensor, a number or a tuple of these; received {type(x).__name__}")


class Summarizer:
    """Elementwise statistics over a stream of samples (Captum's ``Summarizer``).

    ``Summarizer([Mean(), StdDev()])``; ``update(x)`` adds one sample (a tensor or number, or a tuple of them, each
    summarised separately); ``summary`` is ``{stat.name: value}`` (a list of such dicts for tuple samples), ``None``
    before the first update. Statistics are elementwise over samples: ``summary["mean"]`` has a sample's shape.
    """

    def __init__(self, stats: Sequence[Stat]) -> None:
        self._stats = _check_stats(stats)
        self._summarizers: list[SummarizerSingleTensor] = []
        self._is_inputs_tuple: bool | None = None

    def _check_form(self, is_tuple: bool, n_parts: int) -> None:
        if self._is_inputs_tuple is None:
            self._is_inputs_tuple = is_tuple
        elif self._is_inputs_tuple != is_tuple:
            form = "tuples" if self._is_inputs_tuple else "single tensors"
            raise TypeError(f"x must have the same form at every update; earlier updates gave {form}")
        if self._summarizers and n_parts != len(self._summarizers):
            raise ValueError(f"x must hold {len(self._summarizers)} tensors at every update; received {n_parts}")
        while len(self._summarizers) < n_parts:
            self._summarizers.append(SummarizerSingleTensor(self._stats))

    def update(self, x: Tensor | float | tuple) -> None:
        """Add one sample ``x`` (tensor or number, or a tuple of them)."""
        parts = tuple(_as_tensor(v) for v in x) if isinstance(x, tuple) else (_as_tensor(x),)
        self._check_form(isinstance(x, tuple), len(parts))
        for summ, part in zip(self._summarizers, parts):
            summ.update(part)

    def update_batch(self, x: Tensor | tuple) -> None:
        """Add every row of ``x`` (dim 0) as a sample, in one tensor operation (beyond Captum)."""
        parts = tuple(_as_tensor(v) for v in x) if isinstance(x, tuple) else (_as_tensor(x),)
        if any(p.dim() == 0 for p in parts) or len({p.shape[0] for p in parts}) > 1:
            raise ValueError("x must have a batch dim 0 of the same size in every tensor for update_batch")
        self._check_form(isinstance(x, tuple), len(parts))
        for summ, part in zip(self._summarizers, parts):
            summ.update_batch(part)

    @property
    def summary(self) -> dict[str, StatValue | None] | list[dict[str, StatValue | None]] | None:
        if not self._summarizers:
            return None
        out = [s.summary for s in self._summarizers]
        return out if self._is_inputs_tuple else out[0]


def _label_keys(labels: Any, n: int) -> list[Any]:
    if isinstance(labels, Tensor):
        if labels.numel() == 1:
            return [labels.item()] * n
        if labels.dim() != 1 or labels.shape[0] != n:
            raise ValueError(f"labels must hold one label per example ({n}); received shape {tuple(labels.shape)}")
        return labels.tolist()
    if isinstance(labels, list):
        if len(labels) == 1:
            return labels * n
        if len(labels) != n:
            raise ValueError(f"labels must hold one label per example ({n}) or one for all; received {len(labels)}")
        return [v.item() if isinstance(v, Tensor) else v for v in labels]
    return [labels] * n


class ClassSummarizer(Summarizer):
    """Statistics per class and overall (Captum's ``ClassSummarizer``).

    ``update(x, labels)``: ``x`` is a batch (tensor or tuple of tensors, dim 0 the examples) and ``labels`` one
    label per example (list or 1-D tensor) or one label for all; each row is a sample of its label's summary and
    of the overall :attr:`summary`. With ``labels=None`` the whole ``x`` is one sample of the overall summary only.
    :attr:`class_summaries` maps each label to its summary. As in Captum, a labelled update summarises ``x`` in
    tuple form, so summaries after labelled updates are lists of dicts (one per tensor of ``x``). Tensor labels become Python numbers as keys (Captum
    keys them by 0-d tensors, which hash by identity). Rows of one class are merged in one tensor operation.
    """

    def __init__(self, stats: Sequence[Stat]) -> None:
        super().__init__(stats)
        self.summaries: dict[Any, Summarizer] = defaultdict(lambda: Summarizer(self._stats))

    def update(self, x: Tensor | tuple, labels: Any = None) -> None:  # type: ignore[override]
        if labels is None:
            super().update(x)
            return
        parts = tuple(x) if isinstance(x, tuple) else (x,)
        for p in parts:
            if not isinstance(p, Tensor) or p.dim() == 0:
                raise TypeError("x must be a tensor (or tuple of tensors) with the examples along dim 0")
        n = parts[0].shape[0]
        if any(p.shape[0] != n for p in parts):
            raise ValueError("every tensor of x must have the same number of examples (dim 0)")
        keys = _label_keys(labels, n)
        groups: dict[Any, list[int]] = defaultdict(list)
        for i, k in enumerate(keys):
            groups[k].append(i)
        for k, rows in groups.items():
            idx = torch.tensor(rows, device=parts[0].device)
            self.summaries[k].update_batch(tuple(p.index_select(0, idx) for p in parts))
        super().update_batch(parts)

    @property
    def class_summaries(self) -> dict[Any, Any]:
        """``{label: summary}`` with each summary as :attr:`Summarizer.summary`."""
        return {k: v.summary for k, v in self.summaries.items()}
