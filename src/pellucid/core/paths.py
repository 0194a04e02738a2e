"""Path points and quadrature weights on [0, 1] for path-integral methods.

Shared by integrated gradients, split IG and (later) layer IG, conductance, internal influence and neuron IG.
``method`` follows Captum: ``riemann_left``, ``riemann_right``, ``riemann_middle``, ``riemann_trapezoid`` and
``gausslegendre`` (the default, exact for polynomials of degree ``2 n_steps - 1``).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

METHODS = ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gausslegendre")


def path_points(n_steps: int, method: str = "gausslegendre", dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    """``(alphas, weights)``, each of shape ``(n_steps,)``, with ``sum(weights) == 1`` and
    ``integral_0^1 f(a) da ~= sum_k weights[k] * f(alphas[k])``."""
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1:
        raise ValueError(f"n_steps must be a positive int; received {n_steps!r}")
    if n_steps >= 2**31:
        raise ValueError(f"n_steps must be a positive int below 2**31; received {n_steps!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; received {method!r}")
    n = n_steps
    if method == "gausslegendre":
        x, w = np.polynomial.legendre.leggauss(n)
        alphas, weights = 0.5 * (x + 1.0), 0.5 * w
    elif method == "riemann_trapezoid":
        if n < 2:
            raise ValueError("method='riemann_trapezoid' needs n_steps >= 2")
        alphas = np.linspace(0.0, 1.0, n)
        weights = np.full(n, 1.0 / (n - 1))
        weights[[0, -1]] = 0.5 / (n - 1)
    else:
        weights = np.full(n, 1.0 / n)
        start = {"riemann_left": 0.0, "riemann_right": 1.0 / n, "riemann_middle": 0.5 / n}[method]
        alphas = start + np.arange(n) / n
    return torch.tensor(alphas, dtype=dtype), torch.tensor(weights, dtype=dtype)
