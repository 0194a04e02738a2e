"""``train_quick``: a seeded, minimal training loop for the built-in models (seconds on a CPU)."""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.errors import check_choice, check_positive_int


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` intra-op CPU threads (``torch.set_num_threads``), restoring the setting after;
    ``None`` leaves it alone. Small models are fastest on one thread: splitting tiny operations costs more in
    synchronisation than it saves, and far more when other processes share the cores."""
    if n is None:
        yield
        return
    check_positive_int(n, "num_threads")
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class TrainResult:
    """What :func:`train_quick` did: the loss of every epoch, the final training accuracy (classification) or
    mean squared error (regression), the epochs run and the seconds taken."""

    losses: list[float] = field(default_factory=list)
    train_score: float = float("nan")
    epochs: int = 0
    seconds: float = 0.0


def train_quick(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    *,
    epochs: int = 10,
    lr: float = 3e-3,
    batch_size: int = 64,
    task: str = "classification",
    forward_kwargs: Mapping[str, Tensor] | None = None,
    weight_decay: float = 0.0,
    max_seconds: float | None = None,
    seed: int = 0,
    progress: bool = False,
    num_threads: int | None = 1,
) -> TrainResult:
    """Train ``model`` in place with Adam (Kingma & Ba, 2015, arXiv:1412.6980) on ``(inputs, targets)``.

    Args:
        model: any module mapping a batch of ``inputs`` (plus ``forward_kwargs``) to ``(B, K)`` logits
            (classification, ``targets`` ``(N,)`` long) or ``(B,)``/``(B, 1)`` predictions (regression,
            ``targets`` ``(N,)`` float).
        inputs: ``(N, ...)`` training inputs.
        forward_kwargs: per-example tensors passed by keyword and sliced with the batch (e.g. ``attention_mask``).
        epochs, lr, batch_size, weight_decay: the usual; cosine learning-rate decay over the run.
        max_seconds: stop after the epoch during which this much time has passed (None: no limit).
        seed: seeds the shuffling and dropout (the global RNG state is restored afterwards).
        progress: show a tqdm bar over epochs.
        num_threads: CPU threads while training (default 1, see :func:`torch_threads`; on a 2-core machine shared
            with other jobs one thread trained the built-in CNN about 10x faster than two); None keeps torch's.

    Returns:
        :class:`TrainResult`. The model is left in ``eval()`` mode with its original ``requires_grad`` flags.
    """
    check_choice(task, "task", ("classification", "regression"))
    check_positive_int(epochs, "epochs")
    check_positive_int(batch_size, "batch_size")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; received {type(model).__name__}")
    if not isinstance(inputs, Tensor) or not isinstance(targets, Tensor) or inputs.shape[0] != targets.shape[0]:
        raise ValueError("inputs and targets must be tensors with the same number of rows (dim 0); received "
                         f"{getattr(inputs, 'shape', type(inputs).__name__)} and {getattr(targets, 'shape', type(targets).__name__)}")
    kw = dict(forward_kwargs or {})
    n = inputs.shape[0]
    result = TrainResult()
    start = time.perf_counter()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=weight_decay)
    steps_per_epoch = (n + batch_size - 1) // batch_size
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
    bar = range(epochs)
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(bar, desc=f"training {type(model).__name__}", unit="epoch")
    with torch.random.fork_rng(devices=[]), torch_threads(num_threads):
        torch.manual_seed(seed)
        g = torch.Generator().manual_seed(seed)
        model.train()
        for _ in bar:
            order = torch.randperm(n, generator=g)
            total = 0.0
            for i in range(0, n, batch_size):
                idx = order[i : i + batch_size]
                out = model(inputs[idx], **{k: v[idx] for k, v in kw.items()})
                loss = _loss(out, targets[idx], task)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += loss.item() * idx.shape[0]
            result.losses.append(total / n)
            result.epochs += 1
            if progress:
                bar.set_postfix(loss=f"{result.losses[-1]:.3f}")
            if max_seconds is not None and time.perf_counter() - start > max_seconds:
                break
        model.eval()
        result.train_score = evaluate(model, inputs, targets, task=task, forward_kwargs=kw)
    result.seconds = time.perf_counter() - start
    return result


def _loss(out: Tensor, y: Tensor, task: str) -> Tensor:
    if task == "classification":
        return F.cross_entropy(out, y)
    return F.mse_loss(out.reshape(y.shape), y.to(out.dtype))


@torch.no_grad()
def evaluate(
    model: nn.Module, inputs: Tensor, targets: Tensor, *, task: str = "classification",
    forward_kwargs: Mapping[str, Tensor] | None = None, batch_size: int = 512,
) -> float:
    """Accuracy (classification) or mean squared error (regression) of ``model`` on ``(inputs, targets)``."""
    check_choice(task, "task", ("classification", "regression"))
    kw = dict(forward_kwargs or {})
    outs = [model(inputs[i : i + batch_size], **{k: v[i : i + batch_size] for k, v in kw.items()})
            for i in range(0, inputs.shape[0], batch_size)]
    out = torch.cat(outs)
    if task == "classification":
        return float((out.argmax(1) == targets).float().mean())
    return float(F.mse_loss(out.reshape(targets.shape), targets.to(out.dtype)))
