"""Argument checks shared by methods: clear ``ValueError``/``TypeError`` messages naming the argument."""
from __future__ import annotations

from typing import Any, Sequence


def check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int; received {value!r}")
    return value


def check_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; received {value!r}")
    return value


def check_nonnegative(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{name} must be a non-negative number; received {value!r}")
    return float(value)


def check_generator(generator: Any, seed: Any = None):
    """A ``torch.Generator`` from ``generator=`` or ``seed=`` (None: the global RNG)."""
    import torch

    if generator is not None and seed is not None:
        raise ValueError("give either generator= or seed=, not both")
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator; received {type(generator).__name__}")
        return generator
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int; received {type(seed).__name__}")
        return torch.Generator().manual_seed(seed)
    return None
