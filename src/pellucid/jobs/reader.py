"""Reading a job's store: ``open_store(path)``, batch-by-batch iteration and streaming summaries.

Summaries read one stored batch at a time (memory: one batch plus the accumulators), so they work on stores far
larger than memory: mean |attribution| per class (the attributed target) and per feature, and the top examples of
each class by a score. :meth:`AttributionStore.plot_class_means` draws the class means with :mod:`pellucid.viz`.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from .data import batch_range
from .store import DATA, StoreError, done_chunks, read_header


@dataclass
class Summary:
    """Streaming summary of a store.

    Attributes:
        classes: the class ids present (sorted), by ``group_by`` (default the attributed target).
        counts: examples per class ``(K,)``.
        class_means: per input, mean |attribution| per class ``(K, *attribution_shape)``.
        feature_means: per input, mean |attribution| over all examples ``attribution_shape``.
        top: ``{class: [(score, example id), ...]}``, best first.
        n_examples: examples summarised.
    """

    classes: np.ndarray
    counts: np.ndarray
    class_means: tuple[np.ndarray, ...]
    feature_means: tuple[np.ndarray, ...]
    top: dict[int, list[tuple[float, int]]]
    n_examples: int


class AttributionStore:
    """A job's results on disk (read-only). Arrays are zarr arrays (sliced lazily): ``ids``, ``labels``,
    ``targets``, ``predictions``, ``outputs``, ``attributions`` (a tuple, one per model input; ``attribution`` is the
    first), ``metrics`` (``{name: array}``). ``header`` holds the configuration and run statistics."""

    def __init__(self, path: str | Path):
        import zarr

        self.path = Path(path)
        self.header = read_header(self.path)
        self.n_examples = int(self.header["n_examples"])
        self.batch_size = int(self.header["batch_size"])
        self.n_chunks = int(self.header["n_chunks"])
        data = self.path / DATA
        if not data.exists():
            raise StoreError(f"the store at {str(self.path)!r} has no results yet (no batch was committed)")
        self.group = zarr.open_group(str(data), mode="r")

    def __repr__(self) -> str:
        return (f"AttributionStore({str(self.path)!r}, {len(self.done_chunks())}/{self.n_chunks} batches, "
                f"{self.n_examples} examples, method={self.header.get('method')!r})")

    # -- arrays -------------------------------------------------------------------------------------------------
    def __getitem__(self, name: str) -> Any:
        return self.group[name]

    @property
    def ids(self) -> Any:
        return self.group["ids"]

    @property
    def labels(self) -> Any:
        return self.group["labels"]

    @property
    def targets(self) -> Any:
        return self.group["targets"]

    @property
    def predictions(self) -> Any:
        return self.group["predictions"]

    @property
    def outputs(self) -> Any:
        return self.group["outputs"]

    @property
    def attributions(self) -> tuple[Any, ...]:
        return tuple(self.group[f"attributions/{i}"] for i in range(int(self.header["n_inputs"])))

    @property
    def attribution(self) -> Any:
        return self.group["attributions/0"]

    @property
    def metrics(self) -> dict[str, Any]:
        return {name: self.group[f"metrics/{name}"] for name in self.header.get("metrics", [])}

    # -- completeness -------------------------------------------------------------------------------------------
    def done_chunks(self) -> set[int]:
        return done_chunks(self.path)

    @property
    def complete(self) -> bool:
        return len(self.done_chunks()) == self.n_chunks

    def check_complete(self) -> None:
        """Raise :class:`StoreError` unless every batch is committed and ids are ``0 .. N-1`` exactly once."""
        missing = sorted(set(range(self.n_chunks)) - self.done_chunks())
        if missing:
            raise StoreError(f"the store at {str(self.path)!r} is incomplete: {len(missing)} of {self.n_chunks} batches "
                             f"missing (first: {missing[:5]}); rerun the job to complete it")
        ids = self.ids[:]
        if not np.array_equal(ids, np.arange(self.n_examples)):
            raise StoreError(f"the store at {str(self.path)!r} has inconsistent example ids")

    # -- streaming ----------------------------------------------------------------------------------------------
    def iter_batches(self, names: Sequence[str] | None = None, only_done: bool = True) -> Iterator[dict[str, np.ndarray]]:
        """Yield the committed batches in order as ``{name: array}`` (default names: ids, labels, targets,
        predictions, attributions/<i>); one batch in memory at a time."""
        if names is None:
            names = ["ids", "labels", "targets", "predictions"] + [f"attributions/{i}" for i in range(int(self.header["n_inputs"]))]
        done = self.done_chunks()
        arrays = {name: self.group[name] for name in names}
        for c in range(self.n_chunks):
            if only_done and c not in done:
                continue
            start, stop = batch_range(c, self.n_examples, self.batch_size)
            yield {name: a[start:stop] for name, a in arrays.items()}

    def summary(self, group_by: str = "targets", top_k: int = 5, score: str = "output") -> Summary:
        """Streaming summary (one batch in memory at a time) over the committed batches.

        Args:
            group_by: ``"targets"`` (the attributed class, default), ``"labels"`` or ``"predictions"``.
            top_k: examples kept per class.
            score: ranks the top examples: ``"output"`` (the model's output for the example's class), ``"attribution"``
                (total |attribution|) or a metric name.
        """
        if group_by not in ("targets", "labels", "predictions"):
            raise ValueError(f"group_by must be 'targets', 'labels' or 'predictions'; received {group_by!r}")
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
            raise ValueError(f"top_k must be a non-negative int; received {top_k!r}")
        metric_names = self.header.get("metrics", [])
        if score not in ("output", "attribution") and score not in metric_names:
            raise ValueError(f"score must be 'output', 'attribution' or one of the store's metrics {metric_names}; "
                             f"received {score!r}")
        n_inputs = int(self.header["n_inputs"])
        names = ["ids", group_by] + [f"attributions/{i}" for i in range(n_inputs)]
        if score == "output":
            names.append("outputs")
        elif score != "attribution":
            names.append(f"metrics/{score}")
        sums: dict[int, list[np.ndarray]] = {}
        counts: dict[int, int] = {}
        totals: list[np.ndarray] | None = None
        heaps: dict[int, list] = {}
        n = 0
        for b in self.iter_batches(names):
            absd = [np.abs(b[f"attributions/{i}"].astype(np.float64)) for i in range(n_inputs)]
            cls = b[group_by]
            if totals is None:
                totals = [np.zeros(a.shape[1:]) for a in absd]
            for t, a in zip(totals, absd):
                t += a.sum(0)
            if score == "output":
                flat = b["outputs"].reshape(len(cls), -1)
                col = np.where(cls >= 0, cls, 0).clip(0, flat.shape[1] - 1)
                scores = flat[np.arange(len(cls)), col] if flat.shape[1] > 1 else flat[:, 0]
            elif score == "attribution":
                scores = sum(a.reshape(len(cls), -1).sum(1) for a in absd)
            else:
                scores = b[f"metrics/{score}"]
            for k in np.unique(cls):
                sel = cls == k
                k = int(k)
                if k not in sums:
                    sums[k] = [np.zeros(a.shape[1:]) for a in absd]
                    counts[k] = 0
                    heaps[k] = []
                for s, a in zip(sums[k], absd):
                    s += a[sel].sum(0)
                counts[k] += int(sel.sum())
                for sc, i in zip(scores[sel], b["ids"][sel]):
                    item = (float(sc), -int(i))  # ties: the smaller id first
                    if len(heaps[k]) < top_k:
                        heapq.heappush(heaps[k], item)
                    elif top_k and item > heaps[k][0]:
                        heapq.heapreplace(heaps[k], item)
            n += len(cls)
        if totals is None:
            raise StoreError(f"the store at {str(self.path)!r} has no committed batches to summarise")
        classes = np.array(sorted(sums), dtype=np.int64)
        cnt = np.array([counts[k] for k in classes], dtype=np.int64)
        class_means = tuple(np.stack([sums[k][i] / counts[k] for k in classes]) for i in range(n_inputs))
        top = {int(k): [(s, -i) for s, i in sorted(heaps[k], reverse=True)] for k in classes}
        return Summary(classes, cnt, class_means, tuple(t / n for t in totals), top, n)

    def plot_class_means(self, summary: Summary | None = None, input_index: int = 0, class_names: Sequence[str] | None = None,
                         axes: Any = None, sign: str = "absolute", **viz_kwargs: Any):
        """Draw the mean |attribution| of each class (one panel per class) with :mod:`pellucid.viz`.

        Image-like attributions ``(C, H, W)``/``(H, W)`` are heat maps (:func:`pellucid.viz.visualize_image_attr`);
        other shapes are drawn as one row per class (features flattened). Returns ``(fig, axes)``.
        """
        from ..viz import visualize_image_attr
        from ..viz._common import pyplot

        s = summary if summary is not None else self.summary()
        means = s.class_means[input_index]
        k = len(s.classes)
        names = [class_names[c] if class_names is not None and 0 <= c < len(class_names) else f"class {c}"
                 for c in s.classes]
        plt = pyplot()
        shape = means.shape[1:]
        if len(shape) == 3 or (len(shape) == 2 and min(shape) > 1):  # images (C, H, W) / (H, W)
            if axes is None:
                fig, axes = plt.subplots(1, k, figsize=(2.4 * k, 2.6), squeeze=False)
                axes = axes[0]
            else:
                fig = np.ravel(axes)[0].figure
            for ax, m, name, c in zip(np.ravel(axes), means, names, s.counts):
                visualize_image_attr(m, method="heat_map", sign=sign, ax=ax, title=f"{name} (n={c})", **viz_kwargs)
            return fig, axes
        if axes is None:
            fig, ax = plt.subplots(figsize=(6, 0.5 + 0.4 * k))
        else:
            ax = axes
            fig = ax.figure
        rows = means.reshape(k, -1)
        im = ax.imshow(rows, aspect="auto", cmap=viz_kwargs.get("cmap", "Reds"), interpolation="nearest")
        ax.set_yticks(range(k), [f"{nm} (n={c})" for nm, c in zip(names, s.counts)])
        ax.set_xlabel("feature")
        ax.set_title("mean |attribution| per class")
        fig.colorbar(im, ax=ax)
        return fig, ax


def open_store(path: str | Path) -> AttributionStore:
    """Open a job's store for reading; refuses a path that is not a store or has another schema version."""
    return AttributionStore(path)
