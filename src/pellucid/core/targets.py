"""Which output is explained: the ``target`` argument.

Forms (``N`` examples):

* ``None``: the model returns one scalar per example (``(N,)`` or ``(N, 1)``).
* ``int``: ``output[:, t]``; ``tuple`` of ints: ``output[:, t0, t1, ...]`` (indexes dims 1..k).
* per-example ``list`` (of ints or tuples) or 1-D integer tensor of length ``N``.
* numpy integers and integer arrays work as their Python / torch forms.
* ``callable(output) -> (rows,)``: any reduction (regression, segmentation masks, ...). It receives the model's
  raw output for a chunk of rows, so it must act row by row. It may also receive non-tensor outputs (a dict,
  a Hugging Face ``ModelOutput``) and pick the tensor it needs.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence, Union

import numpy as np
import torch
from torch import Tensor

TargetType = Union[None, int, tuple, Sequence, Tensor, Callable[[Any], Tensor]]


def _plain(value: Any) -> Any:
    """numpy integers and arrays as Python ints and tensors, so they work as targets like their torch forms."""
    if isinstance(value, np.ndarray):
        return torch.as_tensor(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _check_int64(target: Any) -> None:
    """Python ints beyond int64 cannot index anything: a clear error instead of torch's overflow."""
    items = target if isinstance(target, (tuple, list)) else (target,)
    flat = [v for t in items for v in (t if isinstance(t, tuple) else (t,))]
    for v in flat:
        if isinstance(v, int) and not -(2**63) <= v < 2**63:
            raise ValueError(f"target {v} is out of range for any output (indices must fit in int64)")


class Target:
    """A normalised target for ``n`` examples; :meth:`select` maps model outputs of rows to one score per row."""

    def __init__(self, target: TargetType, n: int):
        self.n = n
        self.fn: Callable | None = None
        self.index: Tensor | None = None  # (n, d) long: indices into dims 1..d of the output
        self._bounds: tuple[Tensor, list[int], list[int]] | None = None  # (index, per-dim min, max), for select
        self._all_rows: Tensor | None = None
        if target is None:
            return
        if callable(target) and not isinstance(target, Tensor):
            self.fn = target
            return
        target = _plain(target)
        if isinstance(target, tuple):
            target = tuple(_plain(t) for t in target)
        _check_int64(target)
        if isinstance(target, bool):
            raise TypeError("target must be None, an int, a tuple, a per-example list/tensor or a callable; received bool")
        if isinstance(target, int):
            self.index = torch.full((n, 1), target, dtype=torch.long)
        elif isinstance(target, tuple):
            if not all(isinstance(t, int) and not isinstance(t, bool) for t in target):
                raise TypeError(f"a tuple target must hold ints (indices into output dims 1..k); received {target!r}")
            self.index = torch.tensor([list(target)] * n, dtype=torch.long).reshape(n, len(target))
        elif isinstance(target, Tensor):
            if target.dtype.is_floating_point or target.dtype == torch.bool:
                raise TypeError(f"a target tensor must hold integer indices; received dtype {target.dtype}")
            t = target.detach().cpu().long()
            if t.numel() == 1:
                # any one-element tensor is one target for every example (as in Captum)
                self.index = t.reshape(1, 1).expand(n, 1).clone()
            elif t.dim() == 1:
                if t.shape[0] != n:
                    raise ValueError(f"target has {t.shape[0]} entries but there are {n} examples; give one per example")
                self.index = t.reshape(n, 1)
            else:
                raise ValueError(
                    f"target tensor must be 0-d or 1-d (one index per example); received shape {tuple(t.shape)}"
                )
        elif isinstance(target, list):
            if len(target) != n:
                raise ValueError(f"target list has {len(target)} entries but there are {n} examples; give one per example")
            rows = []
            for i, t in enumerate(target):
                t = tuple(_plain(v) for v in t) if isinstance(t, tuple) else _plain(t)
                if isinstance(t, Tensor) and t.numel() == 1 and not (t.is_floating_point() or t.dtype == torch.bool):
                    t = int(t.item())
                if isinstance(t, int) and not isinstance(t, bool):
                    rows.append([t])
                elif isinstance(t, tuple) and all(isinstance(v, int) and not isinstance(v, bool) for v in t):
                    rows.append(list(t))
                else:
                    raise TypeError(f"target[{i}] must be an int or a tuple of ints; received {t!r}")
            if len({len(r) for r in rows}) > 1:
                raise ValueError("per-example tuple targets must all have the same length")
            self.index = torch.tensor(rows, dtype=torch.long).reshape(n, len(rows[0]) if rows else 1)
        else:
            raise TypeError(
                "target must be None, an int, a tuple of ints, a per-example list or tensor, or a callable; "
                f"received {type(target).__name__}"
            )

    def repeat(self, times: int) -> "Target":
        """The same target for ``N * times`` examples laid out example-major."""
        out = Target(None, self.n * times)
        out.fn = self.fn
        if self.index is not None:
            out.index = self.index.repeat_interleave(times, dim=0)
        return out

    def all_rows(self) -> Tensor:
        """``torch.arange(n)``: one row per example in order. :meth:`select` knows this tensor and uses the
        index as it is for it (no gather of per-example targets)."""
        if self._all_rows is None:
            self._all_rows = torch.arange(self.n)
        return self._all_rows

    def select(self, output: Any, example_index: Tensor) -> Tensor:
        """Scores ``(rows,)`` of the model ``output`` for rows belonging to ``example_index``."""
        rows = example_index.shape[0]
        if self.fn is not None:
            score = self.fn(output)
            if not isinstance(score, Tensor):
                raise TypeError(f"the target callable must return a tensor of shape ({rows},); returned {type(score).__name__}")
            if score.dim() == 2 and score.shape[1] == 1:
                score = score[:, 0]
            if score.shape != (rows,):
                raise ValueError(
                    f"the target callable must return one score per row, shape ({rows},); returned {tuple(score.shape)}"
                )
            return score
        if not isinstance(output, Tensor):
            raise TypeError(
                f"the model returned {type(output).__name__}, not a tensor. Return a tensor of shape (N, ...) or pass "
                "target=callable that maps the model's output to one score per row"
            )
        if output.dim() == 0 or output.shape[0] != rows:
            raise ValueError(
                f"the model's output has shape {tuple(output.shape)} for a batch of {rows} rows; its dim 0 must be the batch"
            )
        if self.index is None:
            flat = output.reshape(rows, -1)
            if flat.shape[1] != 1:
                raise ValueError(
                    f"target is None but the model's output has shape {tuple(output.shape)}: with more than one output "
                    "per example give target= (an int class index, a tuple, a per-example list or a callable)"
                )
            return flat[:, 0]
        d = self.index.shape[1]
        if output.dim() != 1 + d:
            raise ValueError(
                f"target indexes {d} output dim(s) but the model's output has shape {tuple(output.shape)}; "
                f"the target must select one scalar per example (a tuple of {output.dim() - 1} indices or a callable)"
            )
        if self._bounds is None or self._bounds[0] is not self.index:  # per output dim, min and max index (once)
            cols = list(zip(*self.index.tolist())) or [(-1,)] * d  # Python, not torch ops: select may run in modes
            self._bounds = (self.index, [min(c) for c in cols], [max(c) for c in cols])
        _, lo, hi = self._bounds
        if all(0 <= a and b < size for a, b, size in zip(lo, hi, output.shape[1:])):
            # every example's target is in range and non-negative: index directly (no checks on the device)
            if example_index is self._all_rows:
                idx = self.index.to(output.device)
            else:
                idx = self.index.index_select(0, example_index.cpu()).to(output.device)
            if d == 1:
                return output.gather(1, idx).squeeze(1)
            return output[(torch.arange(rows, device=output.device),) + tuple(idx.t())]
        idx = self.index.to(output.device).index_select(0, example_index.to(output.device))
        sizes = torch.tensor(output.shape[1:], device=idx.device)
        bad = (idx >= sizes) | (idx < -sizes)
        if bool(bad.any()):
            row = int(bad.any(dim=1).nonzero()[0, 0])
            raise ValueError(
                f"target {tuple(idx[row].tolist()) if d > 1 else int(idx[row, 0])} (example "
                f"{int(example_index[row])}) is out of range for output of shape (N, {', '.join(map(str, output.shape[1:]))})"
            )
        idx = torch.where(idx < 0, idx + sizes, idx)
        return output[(torch.arange(rows, device=output.device),) + tuple(idx.t())]
