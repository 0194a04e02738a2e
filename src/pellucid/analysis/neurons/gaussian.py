"""Gaussian probe with greedy dimension selection (Torroba Hennigen, Williams & Cotterell, 2020, "Intrinsic probing
through dimension selection", EMNLP), for small layers.

Each class ``c`` gets a Gaussian over all neurons with the maximum-a-posteriori parameters under a
normal-inverse-Wishart prior centred on the data: ``mu_c`` = the class mean and
``Sigma_c = (Lambda_0 + S_c) / (nu_0 + N_c + D + 2)`` with ``Lambda_0 = diag`` of the class's empirical variances,
``nu_0 = D + 2`` and ``S_c`` the class's scatter matrix (as in NeuroX's ``gaussian_probe``). A subset of neurons is a
sub-vector of a Gaussian, so any subset's model is the sub-block: no retraining per subset. With class priors
``pi_c``, ``p(c | x_S) ∝ pi_c N(x_S; mu_c[S], Sigma_c[S, S])``.

Greedy selection adds, at each step, the neuron that most increases the estimated mutual information
``I(Y; X_S) = H(Y) - mean_n(-log2 p(y_n | x_n,S))`` (bits) on the given rows. The log-density of ``S + {j}`` for all
candidates ``j`` at once is ``log N(x_S) + log N(x_j | x_S)`` with the Gaussian conditional
``x_j | x_S ~ N(mu_j + Sigma_jS Sigma_SS^-1 (x_S - mu_S), Sigma_jj - Sigma_jS Sigma_SS^-1 Sigma_Sj)``, so one step
costs ``O(N |S| D)`` per class.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import Tensor

from .activations import as_index
from .probe import _check_rows, encode_labels, values_of


class GaussianProbe:
    """Class-conditional Gaussians over all neurons (see the module docstring). ``means`` ``(C, D)``, ``covs``
    ``(C, D, D)``, ``log_prior`` ``(C,)``, ``classes``; float64."""

    def __init__(self, means: Tensor, covs: Tensor, log_prior: Tensor, classes: Sequence[Any]):
        self.means, self.covs, self.log_prior, self.classes = means, covs, log_prior, list(classes)

    @classmethod
    def fit(cls, X: Any, y: Any) -> "GaussianProbe":
        """Fit on activations ``X`` ``(N, D)`` and labels ``y``."""
        X = values_of(X).double()
        yi, classes = encode_labels(y)
        _check_rows(X, yi)
        if len(classes) < 2:
            raise ValueError(f"y must hold at least two classes; received {classes}")
        d = X.shape[1]
        if d > 2048:
            raise ValueError(f"the Gaussian probe keeps a ({d}, {d}) covariance per class; use it on small layers "
                             f"(at most 2048 neurons) or a subset of columns; received {d} neurons")
        means, covs, counts = [], [], []
        nu0 = d + 2
        for c in range(len(classes)):
            Xc = X[yi == c]
            n = Xc.shape[0]
            mu = Xc.mean(0)
            centred = Xc - mu
            scatter = centred.T @ centred
            var = scatter.diagonal() / max(n - 1, 1)
            lam0 = torch.diag(torch.where(var > 0, var, torch.ones_like(var)))
            cov = (lam0 + scatter) / (nu0 + n + d + 2)
            means.append(mu)
            covs.append(cov)
            counts.append(n)
        counts_t = torch.tensor(counts, dtype=torch.float64)
        return cls(torch.stack(means), torch.stack(covs), (counts_t / counts_t.sum()).log(), classes)

    def log_joint(self, X: Any, neurons: Any) -> Tensor:
        """``log pi_c + log N(x_S; mu_c[S], Sigma_c[S, S])`` ``(N, C)`` for the subset ``neurons``."""
        X = values_of(X).double()
        S = as_index(neurons, X.shape[1], "neurons")
        out = []
        for c in range(len(self.classes)):
            if S.numel() == 0:
                out.append(torch.zeros(X.shape[0], dtype=torch.float64))
                continue
            dist = torch.distributions.MultivariateNormal(self.means[c, S], self.covs[c][S][:, S])
            out.append(dist.log_prob(X[:, S]))
        return torch.stack(out, 1) + self.log_prior

    def predict(self, X: Any, neurons: Any) -> Tensor:
        """Most probable class index per row ``(N,)`` using ``neurons`` only."""
        return self.log_joint(X, neurons).argmax(1)

    def accuracy(self, X: Any, y: Any, neurons: Any) -> float:
        """Accuracy of :meth:`predict` on rows ``X`` with labels ``y``, using ``neurons`` only."""
        yi, _ = encode_labels(y, self.classes)
        return float((self.predict(X, neurons) == yi).double().mean())

    def mutual_information(self, X: Any, y: Any, neurons: Any) -> float:
        """Estimated ``I(Y; X_S)`` in bits on rows ``X``, ``y`` (entropy of the label frequencies there minus the
        mean cross-entropy of the probe's posterior)."""
        yi, _ = encode_labels(y, self.classes)
        lj = self.log_joint(X, neurons)
        return float(_entropy_bits(yi, len(self.classes)) - _cross_entropy_bits(lj, yi).mean())


def _entropy_bits(yi: Tensor, n_classes: int) -> float:
    p = torch.bincount(yi, minlength=n_classes).double() / yi.numel()
    p = p[p > 0]
    return float(-(p * p.log2()).sum())


def _cross_entropy_bits(log_joint: Tensor, yi: Tensor) -> Tensor:
    post = log_joint - log_joint.logsumexp(1, keepdim=True)
    return -post.gather(1, yi[:, None])[:, 0] / math.log(2)


def gaussian_ranking(X: Any, y: Any, k: int | None = None, probe: GaussianProbe | None = None,
                     X_eval: Any = None, y_eval: Any = None) -> tuple[Tensor, list[float]]:
    """Greedy intrinsic-probing selection (Torroba Hennigen et al., 2020).

    Args:
        X, y: rows to fit the Gaussian probe on (unless ``probe`` is given) and, without ``X_eval``, to score on.
        k: number of neurons to select (default: all ``D``; each step costs ``O(N k D)``).
        probe: a fitted :class:`GaussianProbe` (default: fitted on ``X, y``).
        X_eval, y_eval: held-out rows to score the mutual information on (default: ``X, y``).

    Returns:
        ``(neurons (k,), mutual information in bits after each step)``.
    """
    X = values_of(X).double()
    probe = GaussianProbe.fit(X, y) if probe is None else probe
    Xe = X if X_eval is None else values_of(X_eval).double()
    yi, _ = encode_labels(y if y_eval is None else y_eval, probe.classes)
    _check_rows(Xe, yi)
    d = Xe.shape[1]
    k = d if k is None else k
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= d:
        raise ValueError(f"k must be an int in [1, {d}]; received {k!r}")
    h = _entropy_bits(yi, len(probe.classes))
    C = len(probe.classes)
    base = torch.zeros(Xe.shape[0], C, dtype=torch.float64)  # log N(x_S) per class, S empty
    selected: list[int] = []
    mis: list[float] = []
    log2pi = math.log(2 * math.pi)
    for _ in range(k):
        cand_lp = torch.empty(Xe.shape[0], C, d, dtype=torch.float64)
        for c in range(C):
            mu, cov = probe.means[c], probe.covs[c]
            r = Xe - mu  # (N, D)
            if selected:
                S = torch.tensor(selected)
                L = torch.linalg.cholesky(cov[S][:, S])
                A = torch.cholesky_solve(cov[S], L)  # Sigma_SS^-1 Sigma_S,:  (|S|, D)
                var = cov.diagonal() - (cov[S] * A).sum(0)
                resid = r - r[:, S] @ A
            else:
                var = cov.diagonal().clone()
                resid = r
            var = var.clamp_min(1e-12)
            cand_lp[:, c, :] = base[:, c:c + 1] - 0.5 * (log2pi + var.log() + resid ** 2 / var)
        lj = cand_lp + probe.log_prior[None, :, None]
        post = lj - lj.logsumexp(1, keepdim=True)
        ce = -post.gather(1, yi[:, None, None].expand(-1, 1, d))[:, 0, :].mean(0) / math.log(2)
        mi = h - ce
        if selected:
            mi[torch.tensor(selected)] = -float("inf")
        j = int(torch.argmax(mi))
        selected.append(j)
        mis.append(float(mi[j]))
        base = cand_lp[:, :, j]
    return torch.tensor(selected, dtype=torch.long), mis
