"""TracIn restricted to the final fully-connected layer's weight (Pruthi et al. 2020, arXiv:2002.08484, sec. 3.2).

For a linear layer ``out = W a + b`` the per-example weight gradient is the outer product ``g a^T`` with
``g = dL/dout``, so ``grad_W L(z) . grad_W L(z') = (g . g') (a . a')``: no parameter gradient is ever formed.
The bias is not included (as in Captum and the paper)."""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from ._common import (
    KMostInfluentialResults, checkpoint_session, load_flexible_state_dict, n_rows, per_example_loss,
    resolve_module, split_batch, top_k,
)
from .tracin import TracInCPBase


class TracInCPFast(TracInCPBase):
    """TracInCP on the weight of ``final_fc_layer`` (a module or its name) through the outer-product identity.

    ``loss_fn`` reduces per-example losses by sum (or mean, scaled back by the batch size). ``vectorize`` is
    accepted for Captum compatibility (the jacobian is always one backward pass per batch)."""

    def __init__(self, model: nn.Module, final_fc_layer: nn.Module | str, train_dataset: Dataset | DataLoader,
                 checkpoints: str | Iterable[str],
                 checkpoints_load_func: Callable[[nn.Module, str], float] = load_flexible_state_dict,
                 loss_fn: Callable | None = None, batch_size: int | None = 1, test_loss_fn: Callable | None = None,
                 vectorize: bool = False) -> None:
        super().__init__(model, train_dataset, checkpoints, checkpoints_load_func, loss_fn, batch_size, test_loss_fn)
        self.final_fc_layer = resolve_module(model, final_fc_layer, "final_fc_layer")
        self.vectorize = vectorize

    def _quantities(self, features: tuple, labels: Any, loss_fn: Callable | None) -> tuple[Tensor, Tensor]:
        """``(g, a)``: ``dL/d(layer output)`` ``(n, C)`` and the layer's input ``(n, D)`` per example."""
        captured: dict[str, Tensor] = {}

        def hook(module: nn.Module, inputs: tuple, output: Tensor) -> Tensor:
            captured["a"] = inputs[0].detach()
            out = output.detach().requires_grad_(True)
            captured["out"] = out
            return out

        handle = self.final_fc_layer.register_forward_hook(hook)
        try:
            with torch.enable_grad():
                out = self.model(*features)
                if "out" not in captured:
                    raise ValueError("final_fc_layer was not called by the model's forward")
                loss = per_example_loss(loss_fn, out, labels, n_rows(features))
                (g,) = torch.autograd.grad(loss, captured["out"])
        finally:
            handle.remove()
        a = captured["a"]
        if a.dim() != 2 or g.dim() != 2:
            raise ValueError("final_fc_layer must take (N, D) inputs and give (N, C) outputs; received input "
                             f"{tuple(a.shape)} and output {tuple(g.shape)}")
        return g, a

    def _pair_scores(self, test_q: tuple[Tensor, Tensor], train_q: tuple[Tensor, Tensor]) -> Tensor:
        return (test_q[0] @ train_q[0].T) * (test_q[1] @ train_q[1].T)

    def _self_scores(self, q: tuple[Tensor, Tensor]) -> Tensor:
        return (q[0] * q[0]).sum(dim=1) * (q[1] * q[1]).sum(dim=1)


class TracInCPFastRandProj(TracInCPFast):
    """:class:`TracInCPFast` for interactive use: every training example is embedded once, at construction, as
    the concatenation over checkpoints of ``sqrt(lr_c) * vec(g a^T)`` (optionally randomly projected to at most
    ``projection_dim`` per checkpoint: Gaussian projections of ``g`` and ``a`` whose Kronecker product preserves
    inner products in expectation); a query is then one matrix product, and top-k is exact (``nearest_neighbors``
    is accepted for Captum compatibility and ignored). ``seed`` fixes the projection."""

    def __init__(self, model: nn.Module, final_fc_layer: nn.Module | str, train_dataset: Dataset | DataLoader,
                 checkpoints: str | Iterable[str],
                 checkpoints_load_func: Callable[[nn.Module, str], float] = load_flexible_state_dict,
                 loss_fn: Callable | None = None, batch_size: int | None = 1, test_loss_fn: Callable | None = None,
                 vectorize: bool = False, nearest_neighbors: Any = None, projection_dim: int | None = None,
                 seed: int = 0) -> None:
        super().__init__(model, final_fc_layer, train_dataset, checkpoints, checkpoints_load_func, loss_fn,
                         batch_size, test_loss_fn, vectorize)
        if projection_dim is not None and (isinstance(projection_dim, bool) or not isinstance(projection_dim, int)
                                           or projection_dim < 1):
            raise ValueError(f"projection_dim must be a positive int or None; received {projection_dim!r}")
        self.projection_dim = projection_dim
        self.seed = seed
        self.nearest_neighbors = nearest_neighbors
        self._projections: list[tuple[Tensor | None, Tensor | None]] = []
        self.train_embeddings = self._embed_all(self.train_dataloader, self.loss_fn, build=True)

    def _projection(self, c: int, d: int, gen: torch.Generator) -> tuple[Tensor | None, Tensor | None]:
        if self.projection_dim is None or c * d <= self.projection_dim:
            return None, None
        pc = min(c, max(1, int(math.sqrt(self.projection_dim))))
        pd = min(d, max(1, self.projection_dim // pc))
        proj_c = torch.randn(c, pc, generator=gen) / math.sqrt(pc) if pc < c else None
        proj_d = torch.randn(d, pd, generator=gen) / math.sqrt(pd) if pd < d else None
        return proj_c, proj_d

    def _embed_all(self, data: Any, loss_fn: Callable | None, build: bool = False) -> Tensor:
        per_ckpt = []
        gen = torch.Generator().manual_seed(self.seed)
        with checkpoint_session(self.model):
            for i, path in enumerate(self.checkpoints):
                lr = self._load(path)
                rows = []
                for f, y in self._batches(data, False, ""):
                    g, a = self._quantities(f, y, loss_fn)
                    if build and len(self._projections) == i:
                        self._projections.append(self._projection(g.shape[1], a.shape[1], gen))
                    pg, pa = self._projections[i]
                    g = g if pg is None else g @ pg.to(g)
                    a = a if pa is None else a @ pa.to(a)
                    rows.append(math.sqrt(lr) * (g.unsqueeze(2) * a.unsqueeze(1)).flatten(1))
                per_ckpt.append(torch.cat(rows))
        return torch.cat(per_ckpt, dim=1)

    def influence(self, inputs: Any, k: int | None = None, proponents: bool = True, unpack_inputs: bool = True,
                  show_progress: bool = False) -> Tensor | KMostInfluentialResults:
        if not isinstance(inputs, (tuple, list)):
            raise TypeError("inputs must be a test batch tuple (features..., labels); received "
                            f"{type(inputs).__name__}")
        split_batch(inputs)  # validates the form
        scores = self._embed_all(tuple(inputs), self.test_loss_fn) @ self.train_embeddings.T
        return scores if k is None else top_k(scores, k, proponents)

    def self_influence(self, inputs: Any = None, show_progress: bool = False,
                       outer_loop_by_checkpoints: bool = False) -> Tensor:
        """Squared norms of the (projected) embeddings: exact TracIn self-influence without projection."""
        emb = self.train_embeddings if inputs is None else self._embed_all(
            inputs if isinstance(inputs, DataLoader) else tuple(inputs), self.test_loss_fn)
        return (emb * emb).sum(dim=1)
