"""Linear probes on neuron activations, trained in torch with an elastic-net penalty.

Dalvi et al., 2019, "What is one grain of sand in the desert? Analyzing individual neurons in deep NLP models"
(AAAI): a logistic-regression probe ``p(y | x) = softmax(W x + b)`` trained on activations ``x`` with loss
``CE + lambda_l1 ||W||_1 + lambda_l2 ||W||_2^2`` (the bias is not penalised); with ``task="regression"`` a linear
probe ``W x + b`` with mean squared error instead of cross-entropy. The l1 term makes the weights sparse, the l2
term keeps groups of correlated neurons (elastic net; Zou & Hastie, 2005). Training is mini-batch Adam over shuffled
rows (rows are read in batches, so memory-mapped activations are never loaded whole), seeded; the l1 term is applied by
its proximal operator (soft-thresholding in Adam's metric) rather than by its subgradient, so unsupported weights
are exactly zero instead of oscillating around it.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from .activations import Activations, as_index


TASKS = ("classification", "regression")


class LinearProbe(nn.Module):
    """``x (N, D) -> logits (N, C)`` (``C = 1`` for regression). ``classes``: the label of each output (in order);
    ``neurons``: the columns of the activations it reads (``None``: all)."""

    def __init__(self, n_neurons: int, classes: Sequence[Any], task: str = "classification",
                 neurons: Tensor | None = None):
        super().__init__()
        if isinstance(n_neurons, bool) or not isinstance(n_neurons, int) or n_neurons < 1:
            raise ValueError(f"n_neurons must be a positive int (the probe's input width); received {n_neurons!r}")
        if task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(map(repr, TASKS))}; received {task!r}")
        if isinstance(classes, (str, bytes)) or not isinstance(classes, (Sequence, np.ndarray, Tensor)):
            raise TypeError(f"classes must be a sequence of labels (one per output); received {type(classes).__name__}")
        classes = classes.tolist() if isinstance(classes, (np.ndarray, Tensor)) else list(classes)
        if task == "classification" and len(classes) < 2:
            raise ValueError(f"classes must hold at least two labels for a classification probe; received {classes!r}")
        if neurons is not None and (not isinstance(neurons, Tensor) or neurons.dim() != 1
                                    or neurons.numel() != n_neurons):
            got = f"shape {tuple(neurons.shape)}" if isinstance(neurons, Tensor) else type(neurons).__name__
            raise ValueError(f"neurons must be None or a 1-D tensor of n_neurons={n_neurons} column indices; "
                             f"received {got}")
        self.task = task
        self.classes = classes
        self.linear = nn.Linear(n_neurons, len(self.classes) if task == "classification" else 1)
        self.neurons = neurons

    @property
    def weight(self) -> Tensor:
        """The weights ``(C, D)``."""
        return self.linear.weight

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x)

    @torch.no_grad()
    def predict(self, X: Any, batch_rows: int = 65536) -> Tensor:
        """Predicted class indices ``(N,)`` (regression: values ``(N,)``); ``X`` is the full activation matrix (the
        probe picks its ``neurons``)."""
        X = values_of(X)
        if self.neurons is not None:
            X = X[:, self.neurons]
        w = self.linear.weight
        outs = []
        for i in range(0, X.shape[0], batch_rows):
            o = self.linear(X[i: i + batch_rows].to(w.device, w.dtype))
            outs.append(o.argmax(1) if self.task == "classification" else o[:, 0])
        return torch.cat(outs).cpu() if outs else torch.zeros(0)


def values_of(X: Any) -> Tensor:
    """The ``(N, D)`` tensor of an :class:`Activations`, a tensor or an array."""
    if isinstance(X, Activations):
        X = X.values
    if not isinstance(X, Tensor):
        try:
            X = torch.as_tensor(np.asarray(X))
        except (TypeError, ValueError) as e:
            raise TypeError(f"X must be a tensor, an array or Activations; received {type(X).__name__}") from e
    if X.dim() != 2:
        raise ValueError(f"X must be a 2-D (items, neurons) matrix; received shape {tuple(X.shape)}")
    if not (X.dtype.is_floating_point or X.dtype in (torch.int32, torch.int64)):
        raise TypeError(f"X must hold numbers; received dtype {X.dtype}")
    return X


def encode_labels(y: Any, classes: Sequence[Any] | None = None, name: str = "y") -> tuple[Tensor, list[Any]]:
    """Labels (ints, strings, any hashable values; a list, array or tensor) -> ``(indices (N,), classes)``.
    ``classes`` fixes the order (default: sorted distinct values)."""
    if isinstance(y, Tensor):
        vals = y.detach().cpu().reshape(-1).tolist()
    else:
        vals = list(np.asarray(y).reshape(-1).tolist()) if not isinstance(y, list) else list(y)
    if classes is None:
        try:
            classes = sorted(set(vals))
        except TypeError:
            classes = list(dict.fromkeys(vals))
    lookup = {c: i for i, c in enumerate(classes)}
    unknown = [v for v in set(vals) if v not in lookup]
    if unknown:
        raise ValueError(f"{name} holds labels {unknown[:5]} that are not among the classes {list(classes)[:10]}")
    return torch.tensor([lookup[v] for v in vals], dtype=torch.long), list(classes)


def _check_rows(X: Tensor, y: Tensor, name: str = "y") -> None:
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"{name} has {y.shape[0]} labels but X has {X.shape[0]} rows; give one label per row")


def elastic_net_penalty(weight: Tensor, lambda_l1: float, lambda_l2: float) -> Tensor:
    """``lambda_l1 ||W||_1 + lambda_l2 ||W||_2^2`` (Dalvi et al., 2019)."""
    return lambda_l1 * weight.abs().sum() + lambda_l2 * weight.pow(2).sum()


def _prox_l1(opt: torch.optim.Adam, weight: Tensor, step: float) -> None:
    """Soft-thresholding of ``weight`` in Adam's diagonal metric (proximal Adam; Yun et al., 2021, ProxGen): the
    l1 term is applied exactly, so weights that the data does not support become exactly zero."""
    state = opt.state[weight]
    beta2 = opt.param_groups[0]["betas"][1]
    eps = opt.param_groups[0]["eps"]
    t = float(state["step"])
    denom = (state["exp_avg_sq"] / (1 - beta2 ** t)).sqrt() + eps
    with torch.no_grad():
        weight.copy_(weight.sign() * (weight.abs() - step / denom).clamp_min(0))


def train_probe(
    X: Any,
    y: Any,
    *,
    lambda_l1: float = 0.0,
    lambda_l2: float = 0.0,
    task: str = "classification",
    neurons: Any = None,
    classes: Sequence[Any] | None = None,
    epochs: int = 20,
    batch_size: int = 64,
    lr: float = 1e-2,
    seed: int = 0,
    device: str | torch.device | None = None,
    show_progress: bool = False,
) -> LinearProbe:
    """Train a linear probe on activations ``X`` ``(N, D)`` (tensor, array or :class:`Activations`) for labels ``y``.

    Args:
        lambda_l1, lambda_l2: elastic-net weights (default 0: plain logistic/linear regression). Dalvi et al. use
            ``1e-5`` for both; larger ``lambda_l1`` gives sparser, more focused rankings.
        task: ``"classification"`` (cross-entropy, ``y`` any labels) or ``"regression"`` (MSE, ``y`` numbers).
        neurons: train on these columns only (the probe remembers them; e.g. retraining on the top neurons).
        classes: the class order (default: sorted distinct labels).
        epochs, batch_size, lr: Adam over shuffled mini-batches (defaults 20, 64, 1e-2).
        seed: shuffling and initialisation are reproducible with it.
        device: where to train (default: CPU).

    Returns:
        a :class:`LinearProbe` in eval mode.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(map(repr, TASKS))}; received {task!r}")
    for name, v in (("lambda_l1", lambda_l1), ("lambda_l2", lambda_l2), ("lr", lr)):
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0 or not np.isfinite(v):
            raise ValueError(f"{name} must be a non-negative number; received {v!r}")
    for name, v in (("epochs", epochs), ("batch_size", batch_size)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a positive int; received {v!r}")
    X = values_of(X)
    cols = None if neurons is None else as_index(neurons, X.shape[1], "neurons")
    if task == "classification":
        yi, classes = encode_labels(y, classes)
        if len(classes) < 2:
            raise ValueError(f"y must hold at least two classes for a classification probe; received {classes}")
    else:
        yi = torch.as_tensor(np.asarray(y.cpu() if isinstance(y, Tensor) else y), dtype=torch.float32).reshape(-1)
        classes = ["value"]
    _check_rows(X, yi)
    dev = torch.device(device) if device is not None else torch.device("cpu")
    gen = torch.Generator().manual_seed(int(seed))
    d = X.shape[1] if cols is None else cols.numel()
    probe = LinearProbe(d, classes, task, cols)
    with torch.no_grad():  # seeded initialisation (nn.Linear's default scale) independent of the global RNG
        bound = 1.0 / max(d, 1) ** 0.5
        probe.linear.weight.uniform_(-bound, bound, generator=gen)
        probe.linear.bias.uniform_(-bound, bound, generator=gen)
    probe.to(dev)
    opt = torch.optim.Adam(probe.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss() if task == "classification" else nn.MSELoss()
    n = X.shape[0]
    bar = range(epochs)
    if show_progress:
        from tqdm.auto import tqdm

        bar = tqdm(bar, desc="probe", unit="epoch", leave=False)
    probe.train()
    with torch.enable_grad():
        for _ in bar:
            perm = torch.randperm(n, generator=gen)
            for i in range(0, n, batch_size):
                rows = perm[i: i + batch_size]
                xb = X[rows] if cols is None else X[rows][:, cols]
                xb = xb.to(dev, torch.float32)
                out = probe(xb)
                target = yi[rows].to(dev)
                loss = loss_fn(out if task == "classification" else out[:, 0], target)
                if lambda_l2:
                    loss = loss + lambda_l2 * probe.linear.weight.pow(2).sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if lambda_l1:
                    _prox_l1(opt, probe.linear.weight, lr * lambda_l1)
    probe.eval()
    return probe


def probe_accuracy(probe: LinearProbe, X: Any, y: Any, per_class: bool = False) -> float | dict[Any, float]:
    """Accuracy of a classification probe on ``X`` (full activation matrix; the probe reads its own neurons) and
    labels ``y``. ``per_class=True``: ``{"overall": acc, class: accuracy on that class's rows, ...}``."""
    if not isinstance(probe, LinearProbe):
        raise TypeError(f"probe must be a LinearProbe (from train_probe); received {type(probe).__name__}")
    if probe.task != "classification":
        raise ValueError("probe_accuracy needs a classification probe; use probe_mse for regression")
    X = values_of(X)
    yi, _ = encode_labels(y, probe.classes)
    _check_rows(X, yi)
    pred = probe.predict(X)
    correct = (pred == yi).double()
    overall = float(correct.mean()) if len(correct) else float("nan")
    if not per_class:
        return overall
    out: dict[Any, float] = {"overall": overall}
    for i, c in enumerate(probe.classes):
        m = yi == i
        out[c] = float(correct[m].mean()) if m.any() else float("nan")
    return out


def probe_mse(probe: LinearProbe, X: Any, y: Any) -> float:
    """Mean squared error of a regression probe."""
    if not isinstance(probe, LinearProbe) or probe.task != "regression":
        raise TypeError("probe must be a regression LinearProbe (train_probe(..., task='regression'))")
    X = values_of(X)
    yt = torch.as_tensor(np.asarray(y.cpu() if isinstance(y, Tensor) else y), dtype=torch.float64).reshape(-1)
    _check_rows(X, yt)
    return float(((probe.predict(X).double() - yt) ** 2).mean())
