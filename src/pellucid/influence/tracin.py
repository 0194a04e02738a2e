"""TracInCP: influence from per-example parameter gradients at saved checkpoints (Pruthi et al. 2020,
arXiv:2002.08484, eq. 3: ``TracInCP(z, z') = sum_c lr_c grad L(z; theta_c) . grad L(z'; theta_c)``)."""
from __future__ import annotations

from typing import Any, Callable, Iterable

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from ._common import (
    KMostInfluentialResults, as_loader, checkpoint_session, list_checkpoints, load_flexible_state_dict, n_rows,
    per_example_loss, resolve_module, split_batch, top_k,
)


class TracInCPBase:
    """The TracIn loop shared by every variant: for each checkpoint, load it, compute per-example *quantities*
    of the test and training examples (:meth:`_quantities`) and accumulate ``lr * pair_scores``.

    Subclasses define :meth:`_quantities` (``(n, ...)`` per batch) and, when the quantities are not plain
    gradient vectors, :meth:`_pair_scores` and :meth:`_self_scores`."""

    def __init__(self, model: nn.Module, train_dataset: Dataset | DataLoader, checkpoints: str | Iterable[str],
                 checkpoints_load_func: Callable[[nn.Module, str], float] = load_flexible_state_dict,
                 loss_fn: Callable | None = None, batch_size: int | None = 1,
                 test_loss_fn: Callable | None = None) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module; received {type(model).__name__}")
        for name, fn in (("loss_fn", loss_fn), ("test_loss_fn", test_loss_fn)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{name} must be callable(outputs, labels) -> loss; received {type(fn).__name__}")
        if not callable(checkpoints_load_func):
            raise TypeError("checkpoints_load_func must be callable(model, path) -> learning rate")
        self.model = model
        self.train_dataset = train_dataset
        self.train_dataloader = as_loader(train_dataset, batch_size)
        self.checkpoints = list_checkpoints(checkpoints)
        self.checkpoints_load_func = checkpoints_load_func
        self.loss_fn = loss_fn
        self.test_loss_fn = loss_fn if test_loss_fn is None else test_loss_fn
        self.batch_size = batch_size

    # --- per-variant mathematics -------------------------------------------------------------------------------
    def _quantities(self, features: tuple, labels: Any, loss_fn: Callable | None) -> Any:
        raise NotImplementedError

    def _pair_scores(self, test_q: Any, train_q: Any) -> Tensor:
        return test_q @ train_q.T

    def _self_scores(self, q: Any) -> Tensor:
        return (q * q).sum(dim=1)

    # --- the loop ----------------------------------------------------------------------------------------------
    def _load(self, path: str) -> float:
        lr = self.checkpoints_load_func(self.model, path)
        return 1.0 if lr is None else float(lr)

    def _batches(self, data: Any, show_progress: bool, desc: str, unpack_inputs: bool = True):
        batches = data if isinstance(data, DataLoader) else [data]
        if show_progress:
            from tqdm.auto import tqdm

            batches = tqdm(batches, desc=desc)
        for batch in batches:
            yield split_batch(batch, unpack_inputs)

    def influence(self, inputs: Any, k: int | None = None, proponents: bool = True, unpack_inputs: bool = True,
                  show_progress: bool = False) -> Tensor | KMostInfluentialResults:
        """Influence of every training example on every example of the test batch ``inputs`` (a tuple
        ``(*features, labels)``): a tensor ``(n_test, n_train)``; with ``k``, the k proponents (``proponents=True``,
        highest scores) or opponents (lowest) per test example as :class:`KMostInfluentialResults`."""
        if not isinstance(inputs, (tuple, list)):
            raise TypeError("inputs must be a test batch tuple (features..., labels); received "
                            f"{type(inputs).__name__}")
        features, labels = split_batch(inputs, unpack_inputs)
        scores = self._influence_scores(features, labels, show_progress)
        return scores if k is None else top_k(scores, k, proponents)

    def _influence_scores(self, features: tuple, labels: Any, show_progress: bool) -> Tensor:
        chunks: list[Tensor] | None = None
        with checkpoint_session(self.model):
            for path in self.checkpoints:
                lr = self._load(path)
                test_q = self._quantities(features, labels, self.test_loss_fn)
                parts = [lr * self._pair_scores(test_q, self._quantities(f, y, self.loss_fn))
                         for f, y in self._batches(self.train_dataloader, show_progress, "TracIn training batches")]
                chunks = parts if chunks is None else [c + p for c, p in zip(chunks, parts)]
        return torch.cat(chunks, dim=1)

    def self_influence(self, inputs: Any = None, show_progress: bool = False,
                       outer_loop_by_checkpoints: bool = False) -> Tensor:
        """``TracIn(z, z)`` for every training example (``inputs=None``), or for the examples of ``inputs`` (a
        batch tuple or a DataLoader of batches): ``(n,)``. ``outer_loop_by_checkpoints`` is accepted for Captum
        compatibility; checkpoints are always the outer loop here (each is loaded once)."""
        data = self.train_dataloader if inputs is None else inputs
        if not isinstance(data, (DataLoader, tuple, list)):
            raise TypeError(f"inputs must be None, a batch tuple or a DataLoader; received {type(data).__name__}")
        total: list[Tensor] | None = None
        with checkpoint_session(self.model):
            for path in self.checkpoints:
                lr = self._load(path)
                loss_fn = self.loss_fn if inputs is None else self.test_loss_fn
                parts = [lr * self._self_scores(self._quantities(f, y, loss_fn))
                         for f, y in self._batches(data, show_progress, "TracIn self-influence")]
                total = parts if total is None else [t + p for t, p in zip(total, parts)]
        return torch.cat(total)


class TracInCP(TracInCPBase):
    """TracInCP over the parameters of the whole model, or of the modules named in ``layers``.

    Per-example gradients come from ``torch.func`` (``vmap`` of ``grad`` through ``functional_call``): one call
    per batch instead of Captum's loop over examples; models ``vmap`` cannot trace fall back to a loop.
    ``loss_fn(outputs, labels)`` may reduce by ``"none"``, ``"sum"`` or ``"mean"``: each example's own loss is
    used either way. ``sample_wise_grads_per_batch`` is accepted for Captum compatibility (always on).

    >>> tracin = TracInCP(model, train_set, "checkpoints/", loss_fn=nn.CrossEntropyLoss(reduction="sum"))
    >>> scores = tracin.influence((x_test, y_test))               # (n_test, n_train)
    >>> proponents = tracin.influence((x_test, y_test), k=5).indices
    """

    def __init__(self, model: nn.Module, train_dataset: Dataset | DataLoader, checkpoints: str | Iterable[str],
                 checkpoints_load_func: Callable[[nn.Module, str], float] = load_flexible_state_dict,
                 layers: list[str] | None = None, loss_fn: Callable | None = None, batch_size: int | None = 1,
                 test_loss_fn: Callable | None = None, sample_wise_grads_per_batch: bool = False) -> None:
        super().__init__(model, train_dataset, checkpoints, checkpoints_load_func, loss_fn, batch_size, test_loss_fn)
        self.sample_wise_grads_per_batch = sample_wise_grads_per_batch
        if layers is None:
            named = [(n, p) for n, p in model.named_parameters() if p.requires_grad] or list(model.named_parameters())
            self.param_names = [n for n, _ in named]
        else:
            if isinstance(layers, str) or not all(isinstance(name, str) for name in layers):
                raise TypeError(f"layers must be a list of module names; received {layers!r}")
            self.param_names = []
            for name in layers:
                module = resolve_module(model, name, "layers entry")
                self.param_names += [f"{name}.{n}" if name else n for n, _ in module.named_parameters()]
        if not self.param_names:
            raise ValueError("the model (or the chosen layers) has no parameters to take gradients of")
        self._vectorised = True

    def _quantities(self, features: tuple, labels: Any, loss_fn: Callable | None) -> Tensor:
        """Per-example gradient vectors ``(n, P)`` of the loss with respect to the chosen parameters."""
        n = n_rows(features)
        if self._vectorised:
            try:
                return self._vmap_grads(features, labels, loss_fn, n)
            except Exception:  # models torch.func cannot trace (in-place buffers, data-dependent control flow)
                self._vectorised = False
        return self._loop_grads(features, labels, loss_fn, n)

    def _params(self) -> dict[str, Tensor]:
        params = dict(self.model.named_parameters())
        return {name: params[name].detach() for name in self.param_names}

    def _vmap_grads(self, features: tuple, labels: Any, loss_fn: Callable | None, n: int) -> Tensor:
        from torch.func import functional_call, grad, vmap

        batched = [isinstance(f, Tensor) and f.dim() > 0 and f.shape[0] == n for f in features]
        label_batched = isinstance(labels, Tensor) and labels.dim() > 0 and labels.shape[0] == n

        def one(params: dict, *args: Any) -> Tensor:
            *feats, y = args
            feats = [f.unsqueeze(0) if b else f for f, b in zip(feats, batched)]
            out = functional_call(self.model, params, tuple(feats))
            return per_example_loss(loss_fn, out, y.unsqueeze(0) if label_batched else y, 1)

        in_dims = (None, *[0 if b else None for b in batched], 0 if label_batched else None)
        with torch.enable_grad():
            grads = vmap(grad(one), in_dims=in_dims, randomness="same")(self._params(), *features, labels)
        return torch.cat([grads[name].reshape(n, -1) for name in self.param_names], dim=1)

    def _loop_grads(self, features: tuple, labels: Any, loss_fn: Callable | None, n: int) -> Tensor:
        params = dict(self.model.named_parameters())
        chosen = [params[name] for name in self.param_names]
        for p in chosen:
            p.requires_grad_(True)
        rows = []
        with torch.enable_grad():
            for i in range(n):
                feats = tuple(f[i:i + 1] if isinstance(f, Tensor) and f.dim() > 0 and f.shape[0] == n else f
                              for f in features)
                y = labels[i:i + 1] if isinstance(labels, Tensor) and labels.dim() > 0 and labels.shape[0] == n \
                    else labels
                loss = per_example_loss(loss_fn, self.model(*feats), y, 1)
                grads = torch.autograd.grad(loss, chosen, allow_unused=True)
                rows.append(torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                                       for g, p in zip(grads, chosen)]))
        return torch.stack(rows)
