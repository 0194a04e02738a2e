"""Evaluating the model on rows: target scores and their gradients, chunked by the batcher.

A *row* is one model input built by a method (an example at one path step, with one noise sample, ...).
``example_index`` (1-D long tensor) tells which example each row belongs to: extra forward arguments and targets
follow it. Rows are independent (the model must not mix rows, e.g. BatchNorm in training mode would).
"""
from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Callable, Mapping

import torch
from torch import Tensor

from .batching import Chunker, measure_forward_peak, measure_saved_bytes, rows_bytes
from .graph_rules import GraphRules, remove_all
from .inputs import ForwardArgs, call_model
from .targets import Target, TargetType


class Evaluator:
    """Runs ``model`` on rows for ``n`` examples with a target and extra forward arguments.

    Args:
        model: the model (any callable; ``nn.Module`` gets per-model caching of row costs).
        target: any target form (see :mod:`pellucid.core.targets`).
        additional_forward_args, forward_kwargs: extra arguments (see :class:`ForwardArgs`).
        n: number of examples.
        batch_size: rows per model call (``None``: chosen from the memory budget).
        show_progress: tqdm bar over rows.
    """

    def __init__(
        self,
        model: Callable,
        target: TargetType | Target,
        additional_forward_args: Any = None,
        forward_kwargs: Mapping[str, Any] | None = None,
        n: int = 1,
        batch_size: int | None = None,
        show_progress: bool = False,
        desc: str = "pellucid",
        fwd: ForwardArgs | None = None,
    ):
        self.model = model
        self.n = n
        self.target = target if isinstance(target, Target) else Target(target, n)
        self.fwd = fwd if fwd is not None else ForwardArgs.make(additional_forward_args, forward_kwargs, n)
        self.batch_size = batch_size
        self.show_progress = show_progress
        self.desc = desc

    @property
    def _param_ptrs(self) -> set[int]:
        """Storages of the model's parameters (excluded from a probe's count of saved bytes); only probes need
        them, so they are collected then, not on every call."""
        params = self.model.parameters() if isinstance(self.model, torch.nn.Module) else ()
        return {p.untyped_storage().data_ptr() for p in params}

    # -- chunking -------------------------------------------------------------------------------------------
    def chunks(self, n_rows: int, row_example: tuple[Tensor, ...], kind: str = "grad", tag: Any = None) -> Chunker:
        """A :class:`Chunker` over ``n_rows`` rows shaped like ``row_example`` (tensors with a row dim)."""
        key = (kind, tag) + tuple((tuple(t.shape[1:]), t.dtype) for t in row_example)
        device = row_example[0].device if row_example else None
        return Chunker(
            self.model if isinstance(self.model, torch.nn.Module) else None,
            n_rows,
            key,
            rows_bytes(row_example),
            batch_size=self.batch_size,
            device=device,
            show_progress=self.show_progress,
            desc=self.desc,
        )

    # -- evaluation -----------------------------------------------------------------------------------------
    def run(self, inputs: tuple[Tensor, ...], example_index: Tensor) -> Any:
        """The model's raw output for rows ``inputs`` belonging to ``example_index``."""
        args, kwargs = self.fwd.rows(example_index)
        return call_model(self.model, inputs, args, kwargs)

    def scores(self, inputs: tuple[Tensor, ...], example_index: Tensor, chunker: Chunker | None = None) -> Tensor:
        """Target scores ``(rows,)`` without gradients."""
        with torch.no_grad():
            if chunker is not None and chunker.probing:
                with measure_forward_peak() as peak:
                    out = self.run(inputs, example_index)
                chunker.record(example_index.shape[0], peak[0])
            else:
                out = self.run(inputs, example_index)
            return self.target.select(out, example_index)

    def grad(
        self, inputs: tuple[Tensor, ...], example_index: Tensor, chunker: Chunker | None = None,
        graph_rules: GraphRules | None = None,
    ) -> tuple[tuple[Tensor, ...], Tensor]:
        """Gradients of the target scores with respect to each row of ``inputs``, and the scores ``(rows,)``.
        ``graph_rules``: backward rules hooked on the score's graph for this pass (see :mod:`graph_rules`)."""
        xs = tuple(x.detach().requires_grad_(True) for x in inputs)
        with torch.enable_grad():
            # the model gets non-leaf copies, so a model that modifies its input in place (an in-place ReLU first)
            # works, and the caller's tensors are never written
            model_in = tuple(x.clone() for x in xs)
            if chunker is not None and chunker.probing:
                with measure_saved_bytes(self._param_ptrs) as saved:
                    score = self.target.select(self.run(model_in, example_index), example_index)
                chunker.record(example_index.shape[0], saved[0])
            else:
                score = self.target.select(self.run(model_in, example_index), example_index)
            if score.requires_grad:
                handles = graph_rules.apply((score,)) if graph_rules is not None else ()
                try:
                    grads = torch.autograd.grad(score.sum(), xs, allow_unused=True)
                finally:
                    remove_all(handles)
            else:
                grads = (None,) * len(xs)
        grads = tuple(torch.zeros_like(x) if g is None else g for g, x in zip(grads, xs))
        return grads, score.detach()

    def all_scores(self, inputs: tuple[Tensor, ...], example_index: Tensor, tag: Any = "scores") -> Tensor:
        """Scores for many rows, chunked."""
        out = []
        chunker = self.chunks(example_index.shape[0], inputs, kind="forward", tag=tag)
        for rows in chunker:
            rows_in = tuple(x.index_select(0, rows.to(x.device)) for x in inputs)
            out.append(self.scores(rows_in, example_index[rows], chunker))
        return torch.cat(out) if out else torch.zeros(0)

    def input_grads(
        self,
        inputs: tuple[Tensor, ...],
        transform: Callable[[Tensor, Tensor], Tensor],
        context: Callable[[tuple[Tensor, ...], Tensor], Any] | None = None,
        tag: Any = "inputs",
        graph_rules: GraphRules | None = None,
    ) -> list[Tensor]:
        """``transform(input_rows, grad)`` for every example (one row per example), as :meth:`grad_rows` would
        compute it; shapes of ``inputs``. The shared body of Saliency, InputXGradient, GuidedBackprop and
        Deconvolution. When all ``N`` rows fit in one chunk (and no probe or progress bar is due), the inputs go
        to the model as they are and the transformed gradients are the result: no row copies, no result buffer."""
        n = inputs[0].shape[0]
        chunker = self.chunks(n, inputs, kind="grad", tag=tag)
        if not (chunker.probing or self.show_progress) and chunker.size(n) >= n:
            ex = self.target.all_rows()
            with context(inputs, ex) if context is not None else nullcontext():
                grads, _ = self.grad(inputs, ex, chunker, graph_rules)
            return [transform(x.detach(), g) for x, g in zip(inputs, grads)]
        out = [torch.empty(x.shape, dtype=x.dtype, device=x.device) for x in inputs]

        def build(rows: Tensor):
            return tuple(x.index_select(0, rows.to(x.device)) for x in inputs), rows

        def consume(rows: Tensor, ex: Tensor, grads: tuple[Tensor, ...], score: Tensor) -> None:
            for o, x, g in zip(out, inputs, grads):
                r = rows.to(x.device)
                o[r] = transform(x.index_select(0, r), g)

        self.grad_rows(n, build, consume, inputs, tag=tag, context=context, chunker=chunker, graph_rules=graph_rules)
        return out

    def grad_rows(
        self,
        n_rows: int,
        build: Callable[[Tensor], tuple[tuple[Tensor, ...], Tensor]],
        consume: Callable[[Tensor, Tensor, tuple[Tensor, ...], Tensor], None],
        row_like: tuple[Tensor, ...],
        tag: Any = None,
        context: Callable[[Tensor, Tensor], Any] | None = None,
        chunker: Chunker | None = None,
        graph_rules: GraphRules | None = None,
    ) -> None:
        """The gradient loop every gradient method shares.

        For each chunk of row numbers ``rows`` (ascending, contiguous), ``build(rows) -> (inputs, example_index)``
        makes the model inputs; their gradients and scores go to ``consume(rows, example_index, grads, scores)``.
        ``context(inputs, example_index)``, if given, returns a context manager entered around the gradient pass
        (used for backward-rule modes such as DeepLIFT's). ``chunker``: one already made for these rows.
        ``graph_rules``: backward rules hooked on each pass's graph (see :mod:`graph_rules`).
        """
        if chunker is None:
            chunker = self.chunks(n_rows, row_like, kind="grad", tag=tag)
        for rows in chunker:
            xs, ex = build(rows)
            if context is None:
                grads, score = self.grad(xs, ex, chunker, graph_rules)
            else:
                with context(xs, ex):
                    grads, score = self.grad(xs, ex, chunker, graph_rules)
            consume(rows, ex, grads, score)
