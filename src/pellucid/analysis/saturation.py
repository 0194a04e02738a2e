"""Keep/drop-top-k faithfulness curves and the saturation profile of integrated gradients' path, as used by
Miglani, Kokhlikyan, Alsallakh, Martin & Reblitz-Richardson, 2020, "Investigating Saturation Effects in Integrated
Gradients", arXiv:2010.12697 to compare split (left) IG, IG and right IG.

* :func:`keep_drop_curves`: the model's output when only the top ``k`` features (by attribution) are kept, the
  rest set to a baseline, and when the top ``k`` are dropped, for fractions ``k / G`` (default 0.1..0.9); each
  normalised as ``(F(x~) - F(x')) / (F(x) - F(x'))`` and clipped to ``[0, 1]``. A faithful attribution keeps the
  output high with few features kept and makes it fall fast when they are dropped: the score
  ``mean_k keep(k) - mean_k drop(k)`` (in ``[-1, 1]``, higher is better).
* :func:`saturation_profile`: the normalised output ``(F(x' + a (x - x')) - F(x')) / (F(x) - F(x'))`` along the path
  from :class:`~pellucid.attr.SplitIntegratedGradients`' details, and the share of IG's mass in the right part.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor

from ..core.inputs import format_inputs
from ..core.targets import TargetType
from ..metrics._base import evaluator, format_attributions
from ..metrics._features import Groups, replacements
from ..metrics.faithfulness import ordered_scores

DEFAULT_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass
class KeepDropCurves:
    """Curves of :func:`keep_drop_curves`.

    ``fractions`` ``(K,)``; ``keep`` / ``drop`` ``(N, K)``: raw target scores with only the top fraction kept /
    with it dropped; ``full`` ``(N,)``: ``F(x)``; ``base`` ``(N,)``: ``F(x')`` (every feature set to the
    baseline)."""

    fractions: Tensor
    keep: Tensor
    drop: Tensor
    full: Tensor
    base: Tensor

    def _norm(self, s: Tensor) -> Tensor:
        span = (self.full - self.base).unsqueeze(1)
        safe = torch.where(span.abs() > 1e-12, span, torch.ones_like(span))
        out = ((s - self.base.unsqueeze(1)) / safe).clamp(0, 1)
        return torch.where(span.abs() > 1e-12, out, torch.full_like(out, float("nan")))

    @property
    def keep_normalised(self) -> Tensor:
        """``(N, K)`` ``(keep - F(x')) / (F(x) - F(x'))`` clipped to ``[0, 1]`` (NaN where ``F(x) = F(x')``)."""
        return self._norm(self.keep)

    @property
    def drop_normalised(self) -> Tensor:
        """``(N, K)`` as :attr:`keep_normalised` for the drop curve."""
        return self._norm(self.drop)

    @property
    def faithfulness(self) -> Tensor:
        """``(N,)``: mean normalised keep curve minus mean normalised drop curve (higher is better)."""
        return self.keep_normalised.mean(1) - self.drop_normalised.mean(1)


def keep_drop_curves(
    forward_func: Callable,
    inputs: Any,
    attributions: Any,
    target: TargetType = None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    baselines: Any = None,
    feature_mask: Any = None,
    additional_forward_args: Any = None,
    *,
    forward_kwargs: Mapping[str, Any] | None = None,
    batch_size: int | None = None,
) -> KeepDropCurves:
    """Keep-top-k and drop-top-k curves of an attribution (Miglani et al., 2020, arXiv:2010.12697).

    Args:
        forward_func: the model.
        inputs: tensor or tuple of tensors ``(N, ...)``.
        attributions: matching ``inputs``; a feature's score is the sum over its elements. Each tensor may also
            broadcast to its input (torch's rules, batch kept), e.g. a channel-summed map ``(N, 1, H, W)`` for
            images ``(N, C, H, W)``: every channel of a pixel then gets the pixel's score (with a per-pixel
            ``feature_mask`` such as :func:`pellucid.metrics.pixel_mask`, pixels are ranked by the map).
        target: as in :mod:`pellucid.attr`.
        fractions: fractions of the features in ``(0, 1]``; ``k = round(fraction * G)`` (at least 1).
        baselines: what dropped (or not kept) features become (None = 0, a number, tensors as in IG).
        feature_mask: feature groups (e.g. :func:`pellucid.metrics.pixel_mask`, one id per token); default every
            element.
        additional_forward_args, forward_kwargs, batch_size: as in :mod:`pellucid.attr`.
    Returns:
        :class:`KeepDropCurves`. Model evaluations: ``N (2K + 2)``.
    """
    fr = [float(f) for f in fractions]
    if not fr or any(not 0 < f <= 1 for f in fr):
        raise ValueError(f"fractions must be numbers in (0, 1]; received {fractions!r}")
    xs, _ = format_inputs(inputs)
    attrs = format_attributions(attributions, xs)
    for i, (a, x) in enumerate(zip(attrs, xs)):
        try:
            fits = a.dim() == x.dim() and torch.broadcast_shapes(a.shape, x.shape) == x.shape
        except RuntimeError:
            fits = False
        if not fits:
            where = f"attributions[{i}]" if len(xs) > 1 else "attributions"
            raise ValueError(f"{where} has shape {tuple(a.shape)}; expected the input's shape {tuple(x.shape)} or one "
                             f"that broadcasts to it with the same number of dims (e.g. {(x.shape[0], 1, *x.shape[2:])})")
    n = xs[0].shape[0]
    ev, guard = evaluator(forward_func, target, additional_forward_args, forward_kwargs, n, batch_size, "keep/drop")
    groups = Groups(xs, attrs, feature_mask)
    reps = replacements(baselines, xs)
    g = groups.n_groups
    ks = [max(1, round(f * g)) for f in fr]
    ranks = groups.ranks(True)
    drop = ordered_scores(ev, guard, xs, groups, reps, torch.tensor([0] + ks + [g]), ranks=ranks, tag="drop")
    keep = ordered_scores(ev, guard, xs, groups, reps, torch.tensor(ks), insertion=True, ranks=ranks, tag="keep")
    return KeepDropCurves(torch.tensor(fr, dtype=torch.float64), keep, drop[:, 1:-1], drop[:, 0], drop[:, -1])


def saturation_profile(details: Any) -> Tensor:
    """``(N, n_steps)``: the output along the path of a :class:`~pellucid.attr.SplitIntegratedGradients` call
    (``return_split=True``) normalised to ``(F - F(x')) / (F(x) - F(x'))`` (0 at the baseline, 1 at the input; NaN
    where ``F(x) = F(x')``), at ``details.alphas``."""
    f0, f1 = details.start_output.unsqueeze(1), details.end_output.unsqueeze(1)
    span = f1 - f0
    out = (details.path_outputs - f0) / torch.where(span.abs() > 1e-12, span, torch.ones_like(span))
    return torch.where(span.abs() > 1e-12, out, torch.full_like(out, float("nan")))


def norm_ratio(right: Any, left: Any) -> Tensor:
    """``(N,)``: ``||right|| / ||left||`` (L2 over all elements of all inputs; inf where ``left`` is 0)."""
    r, _ = format_inputs(right, "right")
    l, _ = format_inputs(left, "left")
    rn = torch.cat([t.detach().reshape(t.shape[0], -1) for t in r], 1).double().norm(dim=1)
    ln = torch.cat([t.detach().reshape(t.shape[0], -1) for t in l], 1).double().norm(dim=1)
    return rn / ln


__all__ = ["DEFAULT_FRACTIONS", "KeepDropCurves", "keep_drop_curves", "norm_ratio", "saturation_profile"]
