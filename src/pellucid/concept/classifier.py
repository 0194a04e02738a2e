"""The linear classifier that turns concept activations into CAVs (trained in torch)."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader


class Classifier:
    """Interface of CAV classifiers (as Captum's): :meth:`train_and_eval` fits on a DataLoader of
    ``(activations (B, F), labels (B,))`` and returns ``{"accs": ...}``; :meth:`weights` is ``(C, F)`` with one
    row per class of :meth:`classes` (a binary classifier gives ``[-w, w]``)."""

    def train_and_eval(self, dataloader: DataLoader, **kwargs: Any) -> dict[str, Any] | None:
        raise NotImplementedError

    def weights(self) -> Tensor:
        raise NotImplementedError

    def classes(self) -> list[int]:
        raise NotImplementedError


class DefaultClassifier(Classifier):
    """L2-regularised logistic regression (softmax for more than two concepts) fitted with L-BFGS on a random
    ``1 - test_split_ratio`` of the activations; ``accs`` is the accuracy on the rest.

    Args (as keyword arguments of :class:`~pellucid.concept.TCAV`, or here): ``test_split_ratio`` (0.33),
    ``weight_decay`` (1e-3, on the mean loss), ``max_iter`` (200), ``seed`` (0), ``standardize`` (False: the CAV
    lives in the raw activation space, as the directional derivative needs).
    """

    def __init__(self, test_split_ratio: float = 0.33, weight_decay: float = 1e-3, max_iter: int = 200,
                 seed: int = 0) -> None:
        if not 0.0 <= test_split_ratio < 1.0:
            raise ValueError(f"test_split_ratio must be in [0, 1); received {test_split_ratio!r}")
        self.test_split_ratio, self.weight_decay, self.max_iter, self.seed = test_split_ratio, weight_decay, max_iter, seed
        self._weights: Tensor | None = None
        self._classes: list[int] = []

    def train_and_eval(self, dataloader: DataLoader, test_split_ratio: float | None = None,
                       **kwargs: Any) -> dict[str, Any]:
        xs, ys = [], []
        for x, y in dataloader:
            xs.append(x.reshape(x.shape[0], -1).float())
            ys.append(torch.as_tensor(y).reshape(-1).long())
        x, y = torch.cat(xs), torch.cat(ys)
        self._classes = sorted(set(y.tolist()))
        if len(self._classes) < 2:
            raise ValueError(f"a CAV needs examples of at least two concepts; received only {self._classes}")
        target = torch.tensor([self._classes.index(v) for v in y.tolist()])
        ratio = self.test_split_ratio if test_split_ratio is None else test_split_ratio
        gen = torch.Generator().manual_seed(self.seed)
        order = torch.randperm(x.shape[0], generator=gen)
        n_test = int(round(ratio * x.shape[0]))
        if x.shape[0] - n_test < 2:
            n_test = 0
        test, train = order[:n_test], order[n_test:]
        k = len(self._classes)
        out = 1 if k == 2 else k
        w = torch.zeros(x.shape[1], out, requires_grad=True)
        b = torch.zeros(out, requires_grad=True)
        opt = torch.optim.LBFGS([w, b], max_iter=self.max_iter, line_search_fn="strong_wolfe")
        xt, yt = x[train], target[train]

        def closure() -> Tensor:
            opt.zero_grad()
            logits = xt @ w + b
            if k == 2:
                loss = torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 0], yt.float())
            else:
                loss = torch.nn.functional.cross_entropy(logits, yt)
            loss = loss + self.weight_decay * (w * w).sum()
            loss.backward()
            return loss

        with torch.enable_grad():
            opt.step(closure)
        w, b = w.detach(), b.detach()
        self._weights = torch.stack([-w[:, 0], w[:, 0]]) if k == 2 else w.T.contiguous()
        evaluate = test if n_test else train
        logits = x[evaluate] @ w + b
        pred = (logits[:, 0] > 0).long() if k == 2 else logits.argmax(dim=1)
        return {"accs": (pred == target[evaluate]).float().mean()}

    def weights(self) -> Tensor:
        if self._weights is None:
            raise RuntimeError("the classifier has not been trained yet: call train_and_eval first")
        return self._weights

    def classes(self) -> list[int]:
        return list(self._classes)
