"""A metric under several attacks and augmentations, summarised over batches (Captum's ``AttackComparator``)."""
from __future__ import annotations

import warnings
from collections import namedtuple
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import Tensor

from ..attr.summarizer import Max, Mean, Min, Summarizer
from ..core.guard import ModelGuard
from ..core.inputs import ForwardArgs

ORIGINAL_KEY = "Original"


@dataclass
class AttackInfo:
    attack_fn: Callable
    name: str
    num_attempts: int
    apply_before_preproc: bool
    attack_kwargs: dict[str, Any]
    additional_args: list[str] = field(default_factory=list)


def _batch_mean(value: Any) -> Any:
    """A tensor metric averaged over dim 0 (its examples); tuples elementwise; numbers unchanged."""
    if isinstance(value, Tensor):
        return value.float().mean(dim=0) if value.dim() > 0 else value
    if isinstance(value, tuple):
        return tuple(_batch_mean(v) for v in value)
    return value


def _n_rows(x: Any) -> int:
    if isinstance(x, Tensor):
        return x.shape[0]
    if isinstance(x, tuple) and x and isinstance(x[0], Tensor):
        return x[0].shape[0]
    raise TypeError("perturbations_per_eval > 1 needs (preprocessed) inputs that are a tensor or a tuple of tensors")


def _concat(batch: list[Any]) -> Any:
    if isinstance(batch[0], Tensor):
        return torch.cat(batch)
    return tuple(torch.cat([b[i] for b in batch]) for i in range(len(batch[0])))


class AttackComparator:
    """Evaluate ``metric(model(inputs), **kwargs)`` on the original inputs and under each added attack.

    ``metric(model_out, **kwargs)`` returns a number, a tensor (dim 0 the examples of the batch) or a (named)
    tuple of these. :meth:`add_attack` registers an attack (a :class:`~pellucid.robust.Perturbation` or any
    callable, e.g. an augmentation) run ``num_attempts`` times; :meth:`evaluate` returns, for this batch,
    ``{"Original": metric, name: {"mean": ...}}`` (with ``"min"`` and ``"max"`` over attempts when
    ``num_attempts > 1``); :meth:`summary` averages over every batch since construction or :meth:`reset`.
    ``perturbations_per_eval`` evaluates that many attacked batches in one model call. ``preproc_fn`` is applied
    to inputs before the model (attacks run before it unless ``apply_before_preproc=False``).
    """

    def __init__(self, forward_func: Callable, metric: Callable[..., Any], preproc_fn: Callable | None = None) -> None:
        for name, fn in (("forward_func", forward_func), ("metric", metric)):
            if not callable(fn):
                raise TypeError(f"{name} must be callable; received {type(fn).__name__}")
        if preproc_fn is not None and not callable(preproc_fn):
            raise TypeError(f"preproc_fn must be callable or None; received {type(preproc_fn).__name__}")
        self.forward_func = forward_func
        self.metric = metric
        self.preproc_fn = preproc_fn
        self.attacks: dict[str, AttackInfo] = {}
        self.summary_results: dict[str, Summarizer] = {}
        self.out_format: Any = None

    def add_attack(self, attack: Callable, name: str | None = None, num_attempts: int = 1,
                   apply_before_preproc: bool = True, attack_kwargs: dict[str, Any] | None = None,
                   additional_attack_arg_names: list[str] | None = None) -> None:
        """Register ``attack``; ``additional_attack_arg_names`` are keyword arguments of :meth:`evaluate` (e.g.
        ``"target"``) passed on to the attack for each batch."""
        if not callable(attack):
            raise TypeError(f"attack must be a Perturbation or a callable; received {type(attack).__name__}")
        name = type(attack).__name__ if name is None else name
        if name in self.attacks or name == ORIGINAL_KEY:
            raise ValueError(f"name {name!r} is already used; every attack needs a distinct name")
        if isinstance(num_attempts, bool) or not isinstance(num_attempts, int) or num_attempts < 1:
            raise ValueError(f"num_attempts must be a positive int; received {num_attempts!r}")
        self.attacks[name] = AttackInfo(attack, name, num_attempts, apply_before_preproc, dict(attack_kwargs or {}),
                                        list(additional_attack_arg_names or []))

    def _format(self, summary: Any) -> dict[str, Any]:
        """Summarizer output (a dict, or a list of dicts for tuple metrics) as ``{stat: value or tuple}``."""
        if isinstance(summary, dict):
            return summary
        out = {}
        for key in summary[0]:
            values = tuple(s[key] for s in summary)
            out[key] = self.out_format(*values) if self.out_format else values
        return out

    def _record_format(self, value: Any) -> Any:
        if self.out_format is None and isinstance(value, tuple) and hasattr(value, "_fields"):
            self.out_format = namedtuple(type(value).__name__, value._fields)  # type: ignore[misc]
        return tuple(value) if isinstance(value, tuple) else value

    def evaluate(self, inputs: Any, additional_forward_args: Any = None, perturbations_per_eval: int = 1,
                 **kwargs: Any) -> dict[str, Any]:
        """Metric results for this batch (see the class docstring); ``kwargs`` go to the metric and, by name, to
        the attacks that asked for them."""
        if isinstance(perturbations_per_eval, bool) or not isinstance(perturbations_per_eval, int) \
                or perturbations_per_eval < 1:
            raise ValueError(f"perturbations_per_eval must be a positive int; received {perturbations_per_eval!r}")
        batch_stats: dict[str, Summarizer] = {ORIGINAL_KEY: Summarizer([Mean()])}
        pending: list[tuple[str, Any]] = []
        preproc_input = self.preproc_fn(inputs) if self.preproc_fn else inputs

        def flush() -> None:
            if pending:
                self._evaluate(pending, additional_forward_args, batch_stats, kwargs)
                pending.clear()

        pending.append((ORIGINAL_KEY, preproc_input))
        if len(pending) == perturbations_per_eval:
            flush()
        for attack in self.attacks.values():
            batch_stats[attack.name] = Summarizer([Mean(), Min(), Max()] if attack.num_attempts > 1 else [Mean()])
            extra = {}
            for key in attack.additional_args:
                if key in kwargs:
                    extra[key] = kwargs[key]
                else:
                    warnings.warn(f"additional attack argument {key!r} of {attack.name!r} was not given to evaluate",
                                  stacklevel=2)
            for _ in range(attack.num_attempts):
                if attack.apply_before_preproc:
                    attacked = attack.attack_fn(inputs, **extra, **attack.attack_kwargs)
                    attacked = self.preproc_fn(attacked) if self.preproc_fn else attacked
                else:
                    attacked = attack.attack_fn(preproc_input, **extra, **attack.attack_kwargs)
                pending.append((attack.name, attacked))
                if len(pending) == perturbations_per_eval:
                    flush()
        flush()
        return self._update_summaries(batch_stats)

    def _evaluate(self, pending: list[tuple[str, Any]], additional_forward_args: Any,
                  batch_stats: dict[str, Summarizer], metric_kwargs: dict[str, Any]) -> None:
        with ModelGuard(self.forward_func, freeze_parameters=False), torch.no_grad():
            if len(pending) == 1:
                args = ForwardArgs.make(additional_forward_args, None, 0).args
                out = self.forward_func(pending[0][1], *args)
                batch_stats[pending[0][0]].update(self._record_format(self.metric(out, **metric_kwargs)))
                return
            sizes = [_n_rows(x) for _, x in pending]
            n = sizes[0]
            args, _ = ForwardArgs.make(additional_forward_args, None, n).rows(torch.arange(n).repeat(len(pending)))
            batched = _concat([x for _, x in pending])
            out = self.forward_func(*(batched if isinstance(batched, tuple) else (batched,)), *args)
            start = 0
            for (key, _), size in zip(pending, sizes):
                value = self.metric(out[start:start + size], **metric_kwargs)
                batch_stats[key].update(self._record_format(value))
                start += size

    def _update_summaries(self, batch_stats: dict[str, Summarizer]) -> dict[str, Any]:
        results: dict[str, Any] = {ORIGINAL_KEY: self._format(batch_stats[ORIGINAL_KEY].summary)["mean"]}
        self._add(ORIGINAL_KEY, results[ORIGINAL_KEY])
        for attack in self.attacks.values():
            res = self._format(batch_stats[attack.name].summary)
            results[attack.name] = res
            if len(res) == 1:
                self._add(attack.name, res["mean"])
            else:
                for key, value in res.items():
                    self._add(f"{attack.name} {key.title()} Attempt", value)
        return results

    def _add(self, key: str, value: Any) -> None:
        if key not in self.summary_results:
            self.summary_results[key] = Summarizer([Mean()])
        mean = _batch_mean(value)
        self.summary_results[key].update(tuple(mean) if isinstance(mean, tuple) else mean)

    def summary(self) -> dict[str, dict[str, Any]]:
        """Running means over all batches evaluated: ``{key: {"mean": value}}``; attacks with several attempts
        get keys ``"<name> Mean Attempt"``, ``"<name> Min Attempt"``, ``"<name> Max Attempt"``. Tensor metrics are
        averaged over each batch's examples first."""
        return {key: self._format(s.summary) for key, s in self.summary_results.items()}

    def reset(self) -> None:
        """Forget the batches summarised so far."""
        self.summary_results = {}
