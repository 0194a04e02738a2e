"""What every metric shares: metadata, seeding, attribution/feature bookkeeping and batched scoring of rows."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

import torch
from torch import Tensor

from ..core.errors import check_generator
from ..core.gradients import Evaluator
from ..core.guard import ModelGuard
from ..core.inputs import format_inputs


@dataclass(frozen=True)
class MetricInfo:
    """Metadata of a metric.

    Attributes:
        name: short name (column title in :func:`pellucid.metrics.evaluate`).
        higher_is_better: direction of the score.
        category: ``"faithfulness"``, ``"robustness"``, ``"complexity"``, ``"localisation"`` or ``"randomisation"``.
        inputs: which inputs it supports (``"any"``, ``"image"``: ``(N, C, H, W)``, ``"tokens"``: ``(N, L[, D])``).
        needs: what :func:`evaluate` must pass (``"model"``, ``"attributions"``, ``"explain"``, ``"masks"``,
            ``"method"``).
        paper: the reference.
    """

    name: str
    higher_is_better: bool
    category: str
    inputs: str = "any"
    needs: tuple[str, ...] = ("model", "attributions")
    paper: str = ""

    @property
    def direction(self) -> str:
        return "higher is better" if self.higher_is_better else "lower is better"


def metric(name: str, higher_is_better: bool, category: str, inputs: str = "any",
           needs: tuple[str, ...] = ("model", "attributions"), paper: str = "") -> Callable[[Callable], Callable]:
    """Decorator attaching :class:`MetricInfo` as ``fn.info``."""

    def wrap(fn: Callable) -> Callable:
        fn.info = MetricInfo(name, higher_is_better, category, inputs, needs, paper)
        return fn

    return wrap


@contextlib.contextmanager
def seeded(generator: torch.Generator | None = None, seed: int | None = None) -> Iterator[torch.Generator | None]:
    """Yield a generator from ``generator=``/``seed=``; with ``seed``, the global RNG is also seeded inside the block
    (for user ``perturb_func``s that draw from it) and restored afterwards."""
    gen = check_generator(generator, seed)
    if seed is None:
        yield gen
        return
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield gen


def randn_like(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """Standard normal noise shaped like ``x`` drawn on the CPU generator (reproducible on every device)."""
    return torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)


def rand_like(x: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device)


def format_attributions(attributions: Any, inputs: tuple[Tensor, ...], name: str = "attributions") -> tuple[Tensor, ...]:
    """Attributions as a tuple matching ``inputs`` (same count and batch; shapes must broadcast to the inputs')."""
    attrs, _ = format_inputs(attributions, name)
    if len(attrs) != len(inputs):
        raise ValueError(f"{name} has {len(attrs)} tensors but there are {len(inputs)} inputs; give one per input")
    for i, (a, x) in enumerate(zip(attrs, inputs)):
        if a.shape[0] != x.shape[0]:
            raise ValueError(f"{name}[{i}] has batch {a.shape[0]} but inputs[{i}] has {x.shape[0]}")
    return tuple(a.detach() for a in attrs)


def flat(attrs: tuple[Tensor, ...] | Tensor) -> Tensor:
    """Concatenate per-example attributions of all inputs into ``(N, F)``."""
    if isinstance(attrs, Tensor):
        attrs = (attrs,)
    return torch.cat([a.reshape(a.shape[0], -1) for a in attrs], dim=1)


def evaluator(model: Callable, target: Any, additional_forward_args: Any, forward_kwargs: Mapping | None, n: int,
              batch_size: int | None, desc: str) -> tuple[Evaluator, ModelGuard]:
    if not callable(model):
        raise TypeError(f"forward_func must be a model (callable); received {type(model).__name__}")
    ev = Evaluator(model, target, additional_forward_args, forward_kwargs, n=n, batch_size=batch_size, desc=desc)
    return ev, ModelGuard(model)


def score_rows(ev: Evaluator, n_rows: int, build: Callable[[Tensor], tuple[tuple[Tensor, ...], Tensor]],
               row_like: tuple[Tensor, ...], tag: Any) -> Tensor:
    """Target scores ``(n_rows,)`` of rows made by ``build(rows) -> (inputs, example_index)``, in budgeted chunks.

    Rows are built chunk by chunk (never all at once), so a metric's perturbed inputs need no more memory than
    one chunk.
    """
    out = torch.empty(n_rows, dtype=torch.float64)
    chunker = ev.chunks(n_rows, row_like, kind="forward", tag=tag)
    for rows in chunker:
        xs, ex = build(rows)
        out[rows] = ev.scores(xs, ex, chunker).detach().to(torch.float64).cpu()
    return out


def check_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; received {value!r}")
    return value


def check_fraction(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ValueError(f"{name} must be a number in (0, 1]; received {value!r}")
    return float(value)
