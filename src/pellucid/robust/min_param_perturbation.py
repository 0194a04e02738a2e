"""The smallest attack parameter that changes a prediction (Captum's ``MinParamPerturbation``)."""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from ..core.guard import ModelGuard
from ..core.inputs import ForwardArgs
from .attack_comparator import _concat, _n_rows


def default_correct_fn(model_out: Tensor, target: Any) -> bool:
    """True when every example's argmax over a 2-D output equals its target (so an attack "succeeds" as soon as
    one example of the batch is misclassified)."""
    if not isinstance(model_out, Tensor) or model_out.dim() != 2:
        raise ValueError("the default correct_fn needs a 2-D model output (N, classes); pass correct_fn= otherwise")
    if target is None:
        raise ValueError("target is required with the default correct_fn (the true class of each example)")
    t = target if isinstance(target, Tensor) else torch.tensor(target)
    return bool((model_out.argmax(dim=1) == t.to(model_out.device)).all())


class MinParamPerturbation:
    """Search ``arg_name`` of ``attack`` over ``arg_min, arg_min + arg_step, ...`` (``arg_max`` excluded) for the
    smallest value whose attacked input the model gets wrong (``correct_fn(model_out, **kwargs) -> bool`` is
    False).

    ``mode="linear"`` tries values in increasing order (batched ``perturbations_per_eval`` at a time);
    ``mode="binary"`` bisects the grid, which assumes success is monotone in the parameter. Each value is tried
    ``num_attempts`` times (for random attacks). :meth:`evaluate` returns ``(attacked_input, value)``, or
    ``(None, None)`` when no value of the grid succeeds.
    """

    def __init__(self, forward_func: Callable, attack: Callable, arg_name: str, arg_min: float, arg_max: float,
                 arg_step: float, mode: str = "linear", num_attempts: int = 1, preproc_fn: Callable | None = None,
                 apply_before_preproc: bool = False, correct_fn: Callable | None = None) -> None:
        if not callable(forward_func) or not callable(attack):
            raise TypeError("forward_func and attack must be callable")
        if not isinstance(arg_name, str):
            raise TypeError(f"arg_name must be the name of the attack's keyword argument; received {arg_name!r}")
        if not arg_step > 0:
            raise ValueError(f"arg_step must be positive; received {arg_step!r}")
        if not arg_max > arg_min + arg_step:
            raise ValueError(f"arg_max ({arg_max}) must exceed arg_min + arg_step ({arg_min} + {arg_step})")
        if not isinstance(mode, str) or mode.lower() not in ("linear", "binary"):
            raise ValueError(f"mode must be 'linear' or 'binary'; received {mode!r}")
        if isinstance(num_attempts, bool) or not isinstance(num_attempts, int) or num_attempts < 1:
            raise ValueError(f"num_attempts must be a positive int; received {num_attempts!r}")
        self.forward_func, self.attack, self.arg_name = forward_func, attack, arg_name
        self.arg_min, self.arg_max, self.arg_step = arg_min, arg_max, arg_step
        self.mode = mode.lower()
        self.num_attempts = num_attempts
        self.preproc_fn = preproc_fn
        self.apply_before_preproc = apply_before_preproc
        self.correct_fn = correct_fn if correct_fn is not None else default_correct_fn

    def _grid(self) -> list[float]:
        values, k = [], 0
        while True:
            v = self.arg_min + k * self.arg_step
            if v >= self.arg_max:
                return values
            values.append(v)
            k += 1

    def _attack(self, inputs: Any, preproc_input: Any, attack_kwargs: dict, value: float) -> tuple[Any, Any]:
        kw = {**attack_kwargs, self.arg_name: value}
        if self.apply_before_preproc:
            attacked = self.attack(inputs, **kw)
            return (self.preproc_fn(attacked) if self.preproc_fn else attacked), attacked
        attacked = self.attack(preproc_input, **kw)
        return attacked, attacked

    def _first_wrong(self, batch: list[Any], additional_forward_args: Any, correct_kwargs: dict) -> int | None:
        """Index of the first attacked input of ``batch`` the model gets wrong, or None."""
        with ModelGuard(self.forward_func, freeze_parameters=False), torch.no_grad():
            if len(batch) == 1:
                out = self.forward_func(batch[0], *ForwardArgs.make(additional_forward_args, None, 0).args)
                return None if self.correct_fn(out, **correct_kwargs) else 0
            sizes = [_n_rows(x) for x in batch]
            args, _ = ForwardArgs.make(additional_forward_args, None, sizes[0]).rows(
                torch.arange(sizes[0]).repeat(len(batch)))
            stacked = _concat(batch)
            out = self.forward_func(*(stacked if isinstance(stacked, tuple) else (stacked,)), *args)
            start = 0
            for i, size in enumerate(sizes):
                if not self.correct_fn(out[start:start + size], **correct_kwargs):
                    return i
                start += size
        return None

    def evaluate(self, inputs: Any, additional_forward_args: Any = None, target: Any = None,
                 perturbations_per_eval: int = 1, attack_kwargs: dict[str, Any] | None = None,
                 correct_fn_kwargs: dict[str, Any] | None = None) -> tuple[Any, float | None]:
        """``(attacked_input, smallest successful value)`` or ``(None, None)``; ``target`` is passed to
        ``correct_fn`` (required by the default one)."""
        if isinstance(perturbations_per_eval, bool) or not isinstance(perturbations_per_eval, int) \
                or perturbations_per_eval < 1:
            raise ValueError(f"perturbations_per_eval must be a positive int; received {perturbations_per_eval!r}")
        correct_kwargs = dict(correct_fn_kwargs or {})
        if target is not None:
            correct_kwargs["target"] = target
        elif self.correct_fn is default_correct_fn:
            raise ValueError("target is required with the default correct_fn (the true class of each example)")
        attack_kwargs = dict(attack_kwargs or {})
        preproc_input = self.preproc_fn(inputs) if self.preproc_fn else inputs
        grid = self._grid()

        def succeeds(values: list[float]) -> tuple[Any, float] | None:
            """Try the values in order, ``perturbations_per_eval`` attacked inputs per model call."""
            batch: list[tuple[Any, Any, float]] = []
            trials = [v for v in values for _ in range(self.num_attempts)]
            for i, v in enumerate(trials):
                batch.append((*self._attack(inputs, preproc_input, attack_kwargs, v), v))
                if len(batch) == perturbations_per_eval or i == len(trials) - 1:
                    hit = self._first_wrong([b[0] for b in batch], additional_forward_args, correct_kwargs)
                    if hit is not None:
                        return batch[hit][1], batch[hit][2]
                    batch = []
            return None

        if self.mode == "linear":
            found = succeeds(grid)
            return found if found is not None else (None, None)
        lo, hi, best = 0, len(grid) - 1, None
        while lo <= hi:
            mid = (lo + hi) // 2
            found = succeeds([grid[mid]])
            if found is not None:
                best, hi = found, mid - 1
            else:
                lo = mid + 1
        return best if best is not None else (None, None)
