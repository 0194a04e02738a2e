"""Perturbation plans and their batched evaluation, shared by every perturbation method.

A perturbation method evaluates the model on *rows*: example ``e`` with perturbation ``p`` (``P`` per example),
laid out example-major (row ``r = e * P + p``). A :class:`Plan` says, for a chunk of rows, which positions of each
input are *replaced* (a boolean mask, True = replaced) and where the replacement values come from (the baselines,
or, for permutation, another example of the batch). :func:`evaluate` builds the rows chunk by chunk (never all at
once) and runs them through the engine's memory-budgeted :class:`~pellucid.core.batching.Chunker`, across
examples *and* perturbations in the same model call; it returns the scores ``(N, P, K)``.

Features are described by a :class:`FeatureMask` (Captum's ``feature_mask``: one integer tensor per input,
broadcastable to it; the same id in several inputs is one group spanning them) or by sliding windows
(:class:`WindowPlan`, for occlusion). Groups are switched on/off by a *coalition* ``present (rows, G)``
(:class:`CoalitionPlan`), which covers ablation, permutation, Shapley values, LIME and Kernel SHAP.

``K`` is the number of scores per row: 1 for a target that picks one output, or every output of the model when
``target=None`` and the model returns more than one value per example (``(N, C)`` -> ``K = C``); the methods then
return attributions ``(N, C, ...)`` for all outputs at once.

**Aggregate mode** (Captum's behaviour for a model whose output summarises the whole batch: a number, a 0-d
tensor, or a tensor whose dim 0 is not the number of rows, e.g. a loss or an accuracy). :func:`evaluate` notices
it on its first chunk and raises :class:`AggregateOutput`; the method then evaluates with
:func:`evaluate_aggregate`: every perturbation is applied to *all* examples of the batch at once (one coalition
for the whole batch, one model call of ``N`` rows per perturbation) and the batch output is attributed. The
scores then have one "example", ``values (1, P, K)``, and :func:`finish` returns ``(K, ...)`` (or the output's
shape, ``(*out_shape, ...)``), as Captum does.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Sequence, Union

import torch
from torch import Tensor

from .batching import Chunker, measure_forward_peak
from .errors import check_positive_int
from .gradients import Evaluator
from .targets import Target

MaskType = Union[None, Tensor, Sequence[Tensor]]


# -- feature masks ----------------------------------------------------------------------------------------------
@dataclass
class FeatureMask:
    """Feature groups of every input.

    ``ids[i]``: long tensor ``(M_i, numel_i)`` (``M_i`` is 1 for a mask shared by all examples, else ``N``) with the
    group of each position of input ``i`` (its shape without the batch flattened), values ``0 .. n_groups - 1``.
    ``labels[g]`` is the user's id of group ``g`` (groups are the user's ids in increasing order).
    """

    ids: tuple[Tensor, ...]
    shapes: tuple[torch.Size, ...]
    n_groups: int
    labels: Tensor
    # per input, for a mask shared by the batch that broadcasts over some dims (e.g. (1, 1, H, W) for a (C, H, W)
    # input): its group ids in its own shape, ``(ids (numel_b,), shape_b)``, else None (see :meth:`kept_rows`)
    compact: tuple[tuple[Tensor, tuple[int, ...]] | None, ...] | None = None

    def spread(self, values: Tensor) -> tuple[Tensor, ...]:
        """Group values ``(N, K, G)`` -> per input ``(N, K, *shape_i)`` (each position gets its group's value)."""
        n, k, _ = values.shape
        out = []
        for ids, shape in zip(self.ids, self.shapes):
            ids = ids.to(values.device)
            if ids.shape[0] == 1:
                v = values.index_select(2, ids[0])
            else:
                v = values.gather(2, ids.unsqueeze(1).expand(n, k, ids.shape[1]))
            out.append(v.reshape((n, k) + tuple(shape)))
        return tuple(out)

    def kept(self, i: int, present: Tensor, ex: Tensor) -> Tensor:
        """Boolean ``(R, *shape_i)``: positions of input ``i`` whose group is in ``present (R, G)`` (rows of
        examples ``ex``)."""
        ids = self.ids[i].to(present.device)
        if ids.shape[0] == 1:  # gather rows of the transpose: far faster than gathering columns
            keep = present.t().contiguous().index_select(0, ids[0]).t().contiguous()
        else:
            keep = present.gather(1, ids.index_select(0, ex.to(ids.device)))
        return keep.reshape((present.shape[0],) + tuple(self.shapes[i]))

    def replaced(self, i: int, present: Tensor, ex: Tensor) -> Tensor:
        """Boolean ``(R, *shape_i)``: positions of input ``i`` whose group is absent from ``present (R, G)``."""
        return ~self.kept(i, present, ex)

    def kept_rows(self, i: int, present: Tensor, ex: Tensor) -> Tensor:
        """:meth:`kept` in the shape of the user's mask where it broadcasts over dims of the input (``(R, 1, H, W)``
        for a ``(1, 1, H, W)`` mask of ``(C, H, W)`` inputs): broadcastable to ``(R, *shape_i)``, and ``C`` times
        cheaper to build and to read."""
        compact = self.compact[i] if self.compact is not None else None
        if compact is None:
            return self.kept(i, present, ex)
        ids, shape = compact
        keep = present.t().contiguous().index_select(0, ids.to(present.device)).t().contiguous()
        return keep.reshape((present.shape[0],) + shape)


def format_feature_mask(feature_mask: MaskType, inputs: tuple[Tensor, ...], name: str = "feature_mask") -> FeatureMask:
    """Normalise Captum's ``feature_mask``.

    ``None``: every scalar of every input is its own feature. Otherwise a tensor (one input) or a tuple with one
    tensor of ids per input, broadcastable to the input's shape ``(N, ...)`` (batch dim 1 or ``N``, or omitted).
    Ids are integers (any integer dtype, or a float dtype holding whole numbers, as Captum accepts); non-negative; they
    need not be contiguous; the same id in two inputs is one feature spanning both.
    """
    shapes = tuple(x.shape[1:] for x in inputs)
    if feature_mask is None:
        ids, start = [], 0
        for x in inputs:
            numel = math.prod(x.shape[1:])
            ids.append(torch.arange(start, start + numel, device=x.device).reshape(1, numel))
            start += numel
        return FeatureMask(tuple(ids), shapes, start, torch.arange(start))
    masks = tuple(feature_mask) if isinstance(feature_mask, (tuple, list)) else (feature_mask,)
    if len(masks) != len(inputs):
        raise ValueError(f"{name} has {len(masks)} elements but there are {len(inputs)} inputs; give one mask per input")
    flat, compact = [], []
    for i, (m, x) in enumerate(zip(masks, inputs)):
        where = f"{name}[{i}]" if len(inputs) > 1 else name
        if not isinstance(m, Tensor):
            raise TypeError(f"{where} must be an integer torch.Tensor of feature ids; received {type(m).__name__}")
        if m.is_complex() or m.dtype == torch.bool:
            raise TypeError(f"{where} must hold integer feature ids (e.g. torch.long); received dtype {m.dtype}")
        if m.is_floating_point():  # float masks holding whole numbers are accepted, as in Captum
            whole = torch.isfinite(m) & (m == m.round())
            if not bool(whole.all()):
                bad = m[~whole].reshape(-1)[0].item()
                raise ValueError(f"{where} has dtype {m.dtype} with a non-integer id ({bad}); feature ids must be "
                                 "whole numbers (give an integer tensor, e.g. torch.long)")
        try:
            ok = m.dim() <= x.dim() and torch.broadcast_shapes(m.shape, x.shape) == x.shape
        except RuntimeError:
            ok = False
        if not ok:
            raise ValueError(
                f"{where} has shape {tuple(m.shape)}, which does not broadcast to the input's shape {tuple(x.shape)}; "
                "give a mask of the input's shape, with batch dim 1 or N, or broadcastable dims of size 1"
            )
        m = m.reshape((1,) * (x.dim() - m.dim()) + tuple(m.shape)).to(x.device)
        rows = m.shape[0]
        small = rows == 1 and 0 < m.numel() < math.prod(x.shape[1:])
        compact.append((m.reshape(-1).long(), tuple(m.shape[1:])) if small else None)
        m = m.expand((rows,) + tuple(x.shape[1:])).reshape(rows, -1).long()
        if m.numel() and int(m.min()) < 0:
            raise ValueError(f"{where} holds negative ids (min {int(m.min())}); feature ids must be >= 0")
        flat.append(m)
    labels, inverse = torch.unique(torch.cat([m.reshape(-1) for m in flat]), return_inverse=True)
    ids, start = [], 0
    for m in flat:
        ids.append(inverse[start : start + m.numel()].reshape(m.shape))
        start += m.numel()
    compact = [None if c is None else (torch.searchsorted(labels, c[0]), c[1]) for c in compact]
    return FeatureMask(tuple(ids), shapes, int(labels.numel()), labels, tuple(compact))


# -- plans ------------------------------------------------------------------------------------------------------
class Plan(ABC):
    """``n_perturb`` perturbations per example. Subclasses say which positions a row replaces and with what."""

    n_perturb: int = 1

    @abstractmethod
    def replaced(self, i: int, ex: Tensor, p: Tensor) -> Tensor | None:
        """Boolean ``(R, *shape_i)`` of replaced positions of input ``i`` for rows ``(ex, p)``; None: unchanged."""
        ...

    def mask(self, i: int, ex: Tensor, p: Tensor) -> tuple[Tensor, bool] | None:
        """The cheaper of (replaced positions, True) or (kept positions, False); None: input ``i`` unchanged."""
        off = self.replaced(i, ex, p)
        return None if off is None else (off, True)

    def source(self, ex: Tensor, p: Tensor) -> Tensor | None:
        """Example whose values replace (``(R,)`` long), or None to use the baselines."""
        return None


class CoalitionPlan(Plan):
    """Rows defined by a coalition of present groups: ``present(ex, p) -> (R, G)`` bool (True = keep the input).

    ``source(ex, p)``, if given, names the example whose values fill absent groups (feature permutation); by
    default the baselines do.
    """

    def __init__(
        self,
        mask: FeatureMask,
        n_perturb: int,
        present: Callable[[Tensor, Tensor], Tensor],
        source: Callable[[Tensor, Tensor], Tensor] | None = None,
        shared: bool = False,
    ):
        self.features, self.n_perturb, self._present, self._source = mask, n_perturb, present, source
        self.shared = shared  # one coalition for all examples: present() is asked for example 0 (aggregate mode)
        self._cache: tuple | None = None

    def present(self, ex: Tensor, p: Tensor) -> Tensor:
        if self._cache is None or self._cache[0] is not ex or self._cache[1] is not p:
            self._cache = (ex, p, self._present(torch.zeros_like(ex) if self.shared else ex, p))
        return self._cache[2]

    def replaced(self, i: int, ex: Tensor, p: Tensor) -> Tensor | None:
        return self.features.replaced(i, self.present(ex, p), ex)

    def mask(self, i: int, ex: Tensor, p: Tensor) -> tuple[Tensor, bool] | None:
        return self.features.kept_rows(i, self.present(ex, p), ex), False

    def source(self, ex: Tensor, p: Tensor) -> Tensor | None:
        return None if self._source is None else self._source(ex, p)


def ablation_present(n_groups: int, device: torch.device | None = None) -> Callable[[Tensor, Tensor], Tensor]:
    """Perturbation 0 keeps everything; perturbation ``g + 1`` removes group ``g`` alone."""

    def present(ex: Tensor, p: Tensor) -> Tensor:
        groups = torch.arange(n_groups, device=p.device)
        return groups.unsqueeze(0) != (p - 1).unsqueeze(1)

    return present


def window_count(size: int, window: int, stride: int) -> int:
    """Window positions along a dim of ``size``: starts ``0, stride, ...`` up to ``ceil((size - window) / stride)
    * stride`` (Captum's count; the last window may be cropped at the edge), leaving out starts ``>= size``, which
    would cover nothing."""
    return min(-(-(size - window) // stride) + 1, -(-size // stride))


class WindowPlan(Plan):
    """Sliding windows (occlusion): perturbation 0 is the input; then every window of input 0, of input 1, ...

    ``windows[i]`` and ``strides[i]`` have one entry per dim of input ``i`` without the batch. Along a dim of size
    ``d`` a window of size ``w`` with stride ``s`` starts at ``0, s, 2s, ...``: ``ceil((d - w) / s) + 1`` positions
    (as Captum), so when the strides do not tile the input the last window is cropped at the edge and the edge
    positions are still covered. Starts at or beyond ``d`` (possible only when ``s > w``) would cover nothing and
    are not evaluated: the count is ``min(ceil((d - w) / s) + 1, ceil(d / s))``.
    """

    def __init__(self, shapes: Sequence[torch.Size], windows: Sequence[tuple[int, ...]], strides: Sequence[tuple[int, ...]]):
        self.shapes = [tuple(s) for s in shapes]
        self.windows = [tuple(w) for w in windows]
        self.strides = [tuple(s) for s in strides]
        self.counts = [tuple(window_count(d, w, s) for d, w, s in zip(sh, wi, st)) for sh, wi, st in zip(self.shapes, self.windows, self.strides)]
        self.n_windows = [math.prod(c) for c in self.counts]
        self.offsets = [1 + sum(self.n_windows[:i]) for i in range(len(self.shapes))]
        self.n_perturb = 1 + sum(self.n_windows)

    def window_masks(self, i: int, local: Tensor) -> Tensor:
        """Boolean ``(R, *shape_i)``: the positions covered by windows ``local`` (numbers within input ``i``)."""
        shape, counts = self.shapes[i], self.counts[i]
        r = local.shape[0]
        out = torch.ones((r,) + (1,) * len(shape), dtype=torch.bool, device=local.device)
        rest = local.clone()
        for d in reversed(range(len(shape))):
            start = (rest % counts[d]) * self.strides[i][d]
            rest = rest // counts[d]
            pos = torch.arange(shape[d], device=local.device).unsqueeze(0)
            # pos < shape[d] always holds, so the last window is cropped at the edge
            cover = (pos >= start.unsqueeze(1)) & (pos < (start + self.windows[i][d]).unsqueeze(1))
            view = [r] + [1] * len(shape)
            view[1 + d] = shape[d]
            out = out & cover.reshape(view)
        return out

    def replaced(self, i: int, ex: Tensor, p: Tensor) -> Tensor | None:
        local = p - self.offsets[i]
        valid = (local >= 0) & (local < self.n_windows[i])
        if not bool(valid.any()):
            return None
        masks = self.window_masks(i, local.clamp(0, self.n_windows[i] - 1))
        return masks & valid.reshape((-1,) + (1,) * len(self.shapes[i]))


# -- evaluation -------------------------------------------------------------------------------------------------
class AggregateOutput(Exception):
    """The model's output aggregates the batch (no dim 0 of one value per row): use :func:`evaluate_aggregate`."""


def aggregates(out: Any, rows: int) -> bool:
    """True when a model output for ``rows`` rows summarises the batch: a Python number, a 0-d tensor or a tensor
    whose dim 0 is not ``rows`` (Captum's "aggregate" output mode). Other objects (dicts, ...) are left to the
    target."""
    if isinstance(out, (int, float)) and not isinstance(out, bool):
        return True
    return isinstance(out, Tensor) and (out.dim() == 0 or out.shape[0] != rows)


def aggregate_scores(out: Any, target: Target) -> Tensor:
    """The selected part of a batch-aggregating output (any shape): the output itself for ``target=None``, the
    target callable's result, or ``output[:, t...]`` for an int/tuple target (indexing dims 1..k as Captum; the
    target must be the same for every example)."""
    if isinstance(out, (int, float)) and not isinstance(out, bool):
        out = torch.tensor(float(out), dtype=torch.get_default_dtype())
    if target.fn is not None:
        s = target.fn(out)
        if not isinstance(s, Tensor):
            raise TypeError(f"the target callable must return a tensor; returned {type(s).__name__}")
        return s
    if not isinstance(out, Tensor):
        raise TypeError(f"the model returned {type(out).__name__}; return a tensor or pass target=callable")
    if target.index is None:
        return out
    idx = target.index
    if bool((idx != idx[:1]).any()):
        raise ValueError(
            "target holds different indices per example, but the model's output aggregates the whole batch (shape "
            f"{tuple(out.shape)}, not one row per example): give one target for the batch (an int, a tuple or None)"
        )
    idx = idx[0].tolist()
    if out.dim() < 1 + len(idx):
        raise ValueError(
            f"target {idx[0] if len(idx) == 1 else tuple(idx)} indexes output dim(s) 1..{len(idx)}, but the model's "
            f"output aggregates the whole batch and has shape {tuple(out.shape)}; use target=None (attribute every "
            "value of the output) or a callable"
        )
    for d, (i, size) in enumerate(zip(idx, out.shape[1:]), start=1):
        if not -size <= i < size:
            raise ValueError(f"target index {i} is out of range for dim {d} of the model's output {tuple(out.shape)}")
    return out[(slice(None),) + tuple(idx)]


@dataclass
class Scores:
    """Model scores of all rows: ``values (N, P, K)``; ``out_shape`` is the per-example output shape that ``K``
    flattens (``()`` when one score per row was selected). In aggregate mode (``aggregate=True``) ``values`` is
    ``(1, P, K)`` and ``out_shape`` is the shape of the selected batch output."""

    values: Tensor
    out_shape: tuple[int, ...]
    aggregate: bool = False

    @property
    def multi(self) -> bool:
        return math.prod(self.out_shape) > 1


class RowScores:
    """Scores ``(R, K)`` of model outputs for rows of examples ``ex``.

    With ``target=None`` and a model output of more than one value per row, every output is kept (``K`` = their
    number); otherwise the target selects one score per row. Index targets are checked for all examples on the
    first chunk and then gathered directly (no per-chunk validation).
    """

    def __init__(self, ev: Evaluator, detect_aggregate: bool = True):
        self.ev, self.t = ev, ev.target
        self.index: Tensor | None = None
        self.detect_aggregate = detect_aggregate  # first call only: raise AggregateOutput for a batch output

    def __call__(self, xs: tuple[Tensor, ...], ex: Tensor, chunker: Chunker | None = None) -> tuple[Tensor, tuple]:
        r = ex.shape[0]
        with torch.no_grad():
            if chunker is not None and chunker.probing:
                with measure_forward_peak() as peak:
                    out = self.ev.run(xs, ex)
                chunker.record(r, peak[0])
            else:
                out = self.ev.run(xs, ex)
            if self.detect_aggregate:
                self.detect_aggregate = False
                if aggregates(out, r):
                    raise AggregateOutput(tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__)
            t = self.t
            if t.fn is None and t.index is None:
                if not isinstance(out, Tensor):
                    raise TypeError(
                        f"the model returned {type(out).__name__}, not a tensor; pass target=callable that maps the "
                        "model's output to one score per row"
                    )
                if out.dim() == 0 or out.shape[0] != r:
                    raise ValueError(
                        f"the model's output has shape {tuple(out.shape)} for a batch of {r} rows; its dim 0 must be the batch"
                    )
                # the per-example output shape, (1,) included: Shapley methods keep it (as Captum)
                return out.reshape(r, -1), tuple(out.shape[1:])
            if t.index is None or not isinstance(out, Tensor):
                return t.select(out, ex).reshape(r, 1), ()
            if self.index is None:
                first = t.select(out, ex)  # checks the output's shape and these rows' targets, with clear messages
                every = torch.arange(t.n)
                sizes = torch.tensor(out.shape[1:])
                bad = ((t.index >= sizes) | (t.index < -sizes)).any(1)
                if bool(bad.any()):
                    t.select(out[:1].expand((t.n,) + tuple(out.shape[1:])), every)  # raises naming the example
                self.index = torch.where(t.index < 0, t.index + sizes, t.index).to(out.device)
                return first.reshape(r, 1), ()
            idx = self.index.index_select(0, ex.to(out.device))
            return out[(torch.arange(r, device=out.device),) + tuple(idx.t())].reshape(r, 1), ()


def build_rows(
    originals: tuple[Tensor, ...], inputs: tuple[Tensor, ...], baselines: tuple[Tensor, ...], plan: Plan,
    ex: Tensor, p: Tensor,
) -> tuple[Tensor, ...]:
    """The model inputs of rows ``(ex, p)``: the examples' rows ``originals`` with the plan's replaced positions
    taken from the baselines (or from the plan's source examples among ``inputs``)."""
    out = []
    src = plan.source(ex, p)
    for i, (x, xr, b) in enumerate(zip(inputs, originals, baselines)):
        m = plan.mask(i, ex, p)
        if m is None:
            out.append(xr)
            continue
        if src is not None:
            br = x.index_select(0, src.to(x.device))
        elif b.shape[0] == 1:
            br = b
        else:
            br = b.index_select(0, ex.to(x.device))
        sel, is_replaced = m
        br = br.to(x.dtype)
        out.append(torch.where(sel.to(x.device), br, xr) if is_replaced else torch.where(sel.to(x.device), xr, br))
    return tuple(out)


def evaluate(
    ev: Evaluator,
    inputs: tuple[Tensor, ...],
    baselines: tuple[Tensor, ...],
    plan: Plan,
    tag: Any = None,
    observe: Callable[[Tensor, Tensor, Tensor, tuple[Tensor, ...], tuple[Tensor, ...]], None] | None = None,
) -> Scores:
    """Scores of all ``N x plan.n_perturb`` rows, built and evaluated chunk by chunk (forward only).

    Chunks mix examples and perturbations; their size comes from the memory budget (at most the engine's
    time-optimal ``DEFAULT_MAX_ROWS``, a little more to avoid a short last chunk) or ``ev.batch_size``. ``observe(rows, ex, p, built_inputs, original_inputs)`` sees
    every chunk (e.g. LIME's similarity weights). Returns :class:`Scores` with ``values (N, P, K)``.
    """
    n, per = inputs[0].shape[0], plan.n_perturb
    total = n * per
    device = inputs[0].device
    chunker = ev.chunks(total, inputs, kind="forward", tag=("perturb", tag))
    scorer = RowScores(ev)
    values: Tensor | None = None
    shape: tuple = ()
    for rows in chunker:
        rows = rows.to(device)
        ex, p = rows // per, rows % per
        originals = tuple(x.index_select(0, ex.to(x.device)) for x in inputs)
        xs = build_rows(originals, inputs, baselines, plan, ex, p)
        s, shape = scorer(xs, ex, chunker)
        if values is None:
            dtype = s.dtype if s.is_floating_point() else torch.get_default_dtype()
            values = torch.empty((total, s.shape[1]), dtype=dtype, device=s.device)
        elif s.shape[1] != values.shape[1]:
            raise ValueError(f"the model's output size changed between chunks ({values.shape[1]} vs {s.shape[1]} values per row)")
        values[rows.to(values.device)] = s.to(values.dtype)
        if observe is not None:
            observe(rows, ex, p, xs, originals)
    if values is None:
        raise ValueError("no rows to evaluate: inputs have an empty batch")
    return Scores(values.reshape(n, per, -1), shape)


def evaluate_aggregate(
    ev: Evaluator,
    inputs: tuple[Tensor, ...],
    baselines: tuple[Tensor, ...],
    plan: Plan,
    observe: Callable[[Tensor, Tensor, Tensor, tuple[Tensor, ...], tuple[Tensor, ...]], None] | None = None,
) -> Scores:
    """Aggregate mode: perturbation ``p`` is applied to all ``N`` examples at once and the model's batch output
    (selected by :func:`aggregate_scores`) is recorded; one model call of ``N`` rows per perturbation (the output
    cannot be split by rows, so perturbations are not batched together). A :class:`CoalitionPlan` should be
    ``shared`` (one coalition for the batch). ``observe`` sees each perturbation as a single row whose tensors are
    the whole batch (``(1, N, ...)``). Returns :class:`Scores` with ``values (1, P, K)`` and ``aggregate=True``.
    """
    n, per = inputs[0].shape[0], plan.n_perturb
    device = inputs[0].device
    ex = torch.arange(n, device=device)
    values: Tensor | None = None
    shape: tuple = ()
    steps: Any = range(per)
    if ev.show_progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc=ev.desc, unit="perturbation", leave=False)
    for q in steps:
        p = torch.full_like(ex, q)
        xs = build_rows(inputs, inputs, baselines, plan, ex, p)
        with torch.no_grad():
            s = aggregate_scores(ev.run(xs, ex), ev.target).detach()
        if values is None:
            shape = tuple(s.shape)
            dtype = s.dtype if s.is_floating_point() else torch.get_default_dtype()
            values = torch.empty((per, max(1, s.numel())), dtype=dtype, device=s.device)
        elif tuple(s.shape) != shape:
            raise ValueError(f"the model's output changed shape between perturbations ({shape} vs {tuple(s.shape)})")
        values[q] = s.reshape(-1).to(values.dtype)
        if observe is not None:
            one = torch.tensor([q], device=device)
            observe(one, torch.zeros_like(one), one, tuple(x.unsqueeze(0) for x in xs), tuple(x.unsqueeze(0) for x in inputs))
    if values is None:
        raise ValueError("no perturbations to evaluate")
    return Scores(values.reshape(1, per, -1), shape, aggregate=True)


# -- results ----------------------------------------------------------------------------------------------------
def finish(per_input: Sequence[Tensor], scores: Scores, flat_aggregate: bool = True) -> tuple[Tensor, ...]:
    """Per-input attributions ``(N, K, *shape_i)`` -> ``(N, *out_shape, *shape_i)`` for all outputs at once, or
    ``(N, *shape_i)`` for a single score.

    Aggregate mode (``(1, K, *shape_i)``): ``(K, *shape_i)`` with ``flat_aggregate`` (Captum's FeatureAblation,
    Occlusion, FeaturePermutation, Lime, KernelShap: ``(1, ...)`` for a scalar output), else the batch output's
    shape ``(*out_shape, *shape_i)`` with a scalar counted as ``(1,)`` (Captum's Shapley value methods).

    Per-example mode with ``target=None``: ``flat_aggregate=False`` (the Shapley methods) keeps every dim of the
    per-example output, so an ``(N, 1)`` output gives ``(N, 1, *shape_i)`` as in Captum's Shapley methods; the
    other methods drop an output of one value (``(N, *shape_i)``), as Captum's FeatureAblation, Lime, ..."""
    out = []
    for a in per_input:
        n, rest = a.shape[0], tuple(a.shape[2:])
        if scores.aggregate:
            lead = (a.shape[1],) if flat_aggregate or not scores.out_shape else scores.out_shape
            out.append(a[0].reshape(lead + rest))
        else:
            keep = scores.multi or not flat_aggregate
            out.append(a.reshape((n,) + scores.out_shape + rest) if keep else a[:, 0])
    return tuple(out)


def perturbation_batch_size(batch_size: int | None, perturbations_per_eval: int | None, n: int) -> int | None:
    """Rows per model call: ``batch_size`` rows, or Captum's ``perturbations_per_eval`` perturbations of every
    example (``perturbations_per_eval * N`` rows); None (default) sizes chunks from the memory budget."""
    if batch_size is not None:
        check_positive_int(batch_size, "batch_size")
    if perturbations_per_eval is not None:
        check_positive_int(perturbations_per_eval, "perturbations_per_eval")
        if batch_size is not None and batch_size != perturbations_per_eval * n:
            raise ValueError(
                f"give either batch_size (rows per model call) or perturbations_per_eval (perturbations of all N={n} "
                f"examples per call), not both; received batch_size={batch_size}, perturbations_per_eval={perturbations_per_eval}"
            )
        return perturbations_per_eval * n
    return batch_size


def random_permutations(n: int, s: int, g: int, generator: torch.Generator | None, antithetic: bool) -> Tensor:
    """``(n, s, g)`` random orders of ``g`` groups (drawn on the CPU for reproducibility). With ``antithetic`` the
    orders come in pairs: a random order followed by its reverse."""
    draws = (s + 1) // 2 if antithetic else s
    perm = torch.rand((n, draws, g), generator=generator).argsort(-1)
    if antithetic:
        perm = torch.stack([perm, perm.flip(-1)], dim=2).reshape(n, 2 * draws, g)[:, :s]
    return perm
