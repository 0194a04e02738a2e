"""``DataLoaderAttribution``: feature ablation of a metric aggregated over a whole DataLoader (Captum's contract).

The attributed quantity is not one example's output but a *dataset-level* metric: the model's outputs on every
batch of the loader are folded with ``reduce(accum, output, inputs) -> accum`` (default: concatenation) and turned
into a tensor with ``to_metric(accum)`` (default: the accumulated value). Feature ``f`` (a group of the
``feature_mask``, shared by all examples) gets ``metric(data) - metric(data with f ablated to the baseline in every
example)`` for every scalar of the metric: attributions ``(M, F)`` (``M`` = number of metric values, at least 1)
or, with ``return_input_shape=True``, one tensor per attributed input ``(M, *input_shape)``.

Each traversal of the loader evaluates ``perturbations_per_pass`` perturbations (the first pass also the
unperturbed data): all rows of a batch (examples x perturbations) go through the engine's memory-budgeted chunker
(:func:`pellucid.core.perturb.evaluate`), so a pass costs one model call per chunk rather than one per perturbation.
Method: feature ablation (Zeiler & Fergus 2014, arXiv:1311.2901) of corpus-level metrics (Captum's
``captum.attr.DataLoaderAttribution``).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from ..attr._base import Attribution
from ..core.gradients import Evaluator
from ..core.guard import ModelGuard
from ..core.inputs import BaselineType, ForwardArgs, format_baselines
from ..core.perturb import CoalitionPlan, MaskType, build_rows, evaluate, format_feature_mask


class InputRole:
    """Roles of the elements a DataLoader yields (Captum's values)."""

    need_attr = 0  #: passed to the model and attributed (a tensor)
    need_forward = 1  #: passed to the model, not attributed (e.g. an attention mask)
    no_forward = 2  #: not passed to the model (e.g. the label; ``reduce`` sees it)


def _concat(accum: Tensor | None, output: Tensor, inputs: tuple) -> Tensor:
    return output if accum is None else torch.cat([accum, output])


class _Ordered(nn.Module):
    """``forward(*attributed, *forwarded)`` -> ``model`` called with the elements in the loader's order."""

    def __init__(self, model: Callable, order: Sequence[tuple[int, int]]):
        super().__init__()
        self.model = model
        self.order = list(order)  # per forwarded element: (0, index among attributed) or (1, index among the rest)
        self.n_attr = sum(1 for kind, _ in order if kind == 0)
        self.out_shape: tuple[int, ...] | None = None

    def forward(self, *args: Any) -> Any:
        attr, rest = args[: self.n_attr], args[self.n_attr:]
        out = self.model(*[attr[i] if kind == 0 else rest[i] for kind, i in self.order])
        if isinstance(out, Tensor) and out.dim() > 0:
            self.out_shape = tuple(out.shape[1:])
        return out


class DataLoaderAttribution(Attribution):
    """Attribute a metric computed over a whole DataLoader to input features by ablation (Captum-compatible).

    ``DataLoaderAttribution(FeatureAblation(model)).attribute(dataloader, ...)``; see :meth:`attribute`. As in
    Captum, feature ablation is the supported method (other methods raise ``TypeError``).
    """

    def __init__(self, attr_method: Attribution):
        from ..attr.feature_ablation import FeatureAblation

        if type(attr_method) is not FeatureAblation:
            raise TypeError(f"attr_method must be a pellucid.attr.FeatureAblation instance (the method "
                            f"DataLoaderAttribution supports, as in Captum); received {type(attr_method).__name__}")
        super().__init__(attr_method.forward_func)
        self.attr_method = attr_method

    def attribute(
        self,
        dataloader: Any,
        input_roles: Sequence[int] | None = None,
        baselines: BaselineType = None,
        feature_mask: MaskType = None,
        reduce: Callable | None = None,
        to_metric: Callable | None = None,
        perturbations_per_pass: int = 1,
        show_progress: bool = False,
        return_input_shape: bool = True,
    ) -> Tensor | tuple[Tensor, ...]:
        """Attributions of the dataset-level metric to the features of the attributed inputs.

        Args:
            dataloader: an iterable of batches (a ``torch.utils.data.DataLoader``); each batch is a tensor or a
                tuple/list of elements of consistent structure. It is traversed once per pass.
            input_roles: one :class:`InputRole` per element of a batch (default: every element attributed):
                0 attributed (tensor), 1 passed to the model only, 2 not passed to the model (e.g. labels).
            baselines: per attributed element: None (zeros), a number, or a tensor with batch dim 1 (or without a
                batch dim); the same for every batch.
            feature_mask: per attributed element an integer tensor with batch dim 1 (or none), broadcastable to the
                element; the same id in several elements is one feature. Default: every scalar is a feature.
            reduce: ``reduce(accum, output, inputs) -> accum`` folds each batch's model output (``accum`` is None
                at the first batch; ``inputs`` are the batch's elements, attributed ones perturbed). Default:
                concatenate outputs along dim 0.
            to_metric: ``to_metric(accum) -> Tensor``, the metric attributed (default: ``accum`` itself).
            perturbations_per_pass: perturbations evaluated per traversal of the loader (default 1; more passes
                fewer times over the data, keeping one accumulator per perturbation).
            show_progress: tqdm bar over passes and batches.
            return_input_shape: True (default): one tensor per attributed element, ``(M, *element_shape)``, a
                tuple when the batches are tuples/lists; False: one tensor ``(M, max_feature_id + 1)``.
        Returns:
            The attributions (``M`` = number of scalars of the metric, 1 for a scalar metric).
        """
        if isinstance(perturbations_per_pass, bool) or not isinstance(perturbations_per_pass, int) or perturbations_per_pass < 1:
            raise ValueError(f"perturbations_per_pass must be a positive int; received {perturbations_per_pass!r}")
        if reduce is not None and not callable(reduce):
            raise TypeError(f"reduce must be a callable (accum, output, inputs) -> accum; received {type(reduce).__name__}")
        if to_metric is not None and not callable(to_metric):
            raise TypeError(f"to_metric must be a callable accum -> Tensor; received {type(to_metric).__name__}")
        reduce = reduce or _concat
        first, was_tuple = self._elements(next(iter(dataloader)))
        roles = self._roles(input_roles, len(first))
        attr_idx = [i for i, r in enumerate(roles) if r == InputRole.need_attr]
        rest_idx = [i for i, r in enumerate(roles) if r == InputRole.need_forward]
        for i in attr_idx:
            if not isinstance(first[i], Tensor):
                raise TypeError(f"the dataloader's element {i} has role need_attr (0) but is a "
                                f"{type(first[i]).__name__}, not a tensor")
        attr_first = tuple(first[i] for i in attr_idx)
        bases = format_baselines(baselines, attr_first)
        for i, b in enumerate(bases):
            if b.shape[0] != 1:
                raise ValueError(f"baselines[{i}] has batch dim {b.shape[0]}; it must be 1 (the same baseline for "
                                 "every batch of the dataloader)")
        mask = format_feature_mask(feature_mask, attr_first)
        for i, ids in enumerate(mask.ids):
            if ids.shape[0] != 1:
                raise ValueError(f"feature_mask[{i}] has batch dim {ids.shape[0]}; it must be 1 (the same mask for "
                                 "every batch of the dataloader)")
        n_groups = mask.n_groups
        order = [(0, attr_idx.index(i)) if roles[i] == InputRole.need_attr else (1, rest_idx.index(i))
                 for i in range(len(roles)) if roles[i] != InputRole.no_forward]
        wrapper = _Ordered(self.forward_func, order)
        perturbations = list(range(n_groups + 1))  # 0: unperturbed; g + 1: group g ablated
        passes = [perturbations[i:i + perturbations_per_pass] for i in range(0, len(perturbations), perturbations_per_pass)]
        metrics: list[Tensor | None] = [None] * len(perturbations)
        bar = None
        if show_progress:
            from tqdm.auto import tqdm

            try:
                per_pass = len(dataloader)
            except TypeError:
                per_pass = None
            bar = tqdm(total=None if per_pass is None else per_pass * len(passes), desc="DataLoaderAttribution",
                       unit="batch", leave=False)
        try:
            with ModelGuard(self.forward_func):
                for pert in passes:
                    accums: list[Any] = [None] * len(pert)
                    for raw in dataloader:
                        batch, _ = self._elements(raw)
                        if len(batch) != len(roles):
                            raise ValueError(f"the dataloader yielded {len(batch)} elements in a batch but "
                                             f"{len(roles)} in the first; batches must have a consistent structure")
                        self._fold(wrapper, batch, attr_idx, rest_idx, bases, mask, pert, accums, reduce)
                        if bar is not None:
                            bar.update(1)
                    for p, acc in zip(pert, accums):
                        metric = to_metric(acc) if to_metric is not None else acc
                        if not isinstance(metric, Tensor):
                            raise TypeError(f"the metric to attribute must be a Tensor; to_metric/reduce produced "
                                            f"{type(metric).__name__}")
                        metrics[p] = metric.detach()
        finally:
            if bar is not None:
                bar.close()
        flat = [m.reshape(-1) for m in metrics]
        size = flat[0].numel()
        if any(f.numel() != size for f in flat):
            raise ValueError("the metric's size changed between perturbations; to_metric must return a tensor of a "
                             "fixed shape")
        dtype = torch.promote_types(flat[0].dtype, torch.get_default_dtype())
        base = flat[0].to(dtype)
        groups = torch.stack([base - f.to(dtype) for f in flat[1:]], dim=1) if n_groups else base.new_zeros(size, 0)
        groups = groups.reshape(max(size, 1), n_groups)
        if not return_input_shape:
            n_features = int(mask.labels.max()) + 1 if n_groups else 0
            out = groups.new_zeros(groups.shape[0], n_features)
            out[:, mask.labels.to(out.device)] = groups
            return out
        spread = mask.spread(groups.unsqueeze(0))  # per input (1, M, *shape_i)
        result = tuple(s[0] for s in spread)
        return result if was_tuple else result[0]

    @staticmethod
    def _elements(raw: Any) -> tuple[tuple, bool]:
        if isinstance(raw, (tuple, list)):
            if not raw:
                raise ValueError("the dataloader yielded an empty batch")
            return tuple(raw), True
        if isinstance(raw, Tensor):
            return (raw,), False
        raise TypeError(f"the dataloader must yield a tensor or a tuple/list of elements; it yielded {type(raw).__name__}")

    @staticmethod
    def _roles(input_roles: Sequence[int] | None, n: int) -> list[int]:
        if input_roles is None:
            return [InputRole.need_attr] * n
        roles = list(input_roles)
        if len(roles) != n:
            raise ValueError(f"input_roles has {len(roles)} entries but the dataloader yields {n} elements per batch; "
                             "give one role per element")
        for r in roles:
            if r not in (InputRole.need_attr, InputRole.need_forward, InputRole.no_forward):
                raise ValueError(f"input_roles entries must be 0 (need_attr), 1 (need_forward) or 2 (no_forward); "
                                 f"received {r!r}")
        if InputRole.need_attr not in roles:
            raise ValueError(f"input_roles must mark at least one element as need_attr (0); received {tuple(roles)}")
        return roles

    @staticmethod
    def _fold(wrapper: _Ordered, batch: tuple, attr_idx: list[int], rest_idx: list[int], bases: tuple[Tensor, ...],
              mask: Any, pert: list[int], accums: list, reduce: Callable) -> None:
        """Evaluate perturbations ``pert`` of one batch (all rows through the engine's chunker) and fold them."""
        xs = tuple(batch[i] for i in attr_idx)
        for i, (x, b) in enumerate(zip(xs, bases)):
            if x.shape[1:] != b.shape[1:]:
                raise ValueError(f"attributed element {attr_idx[i]} has shape {tuple(x.shape)} in this batch; the "
                                 f"baselines and feature mask were made for {(x.shape[0],) + tuple(b.shape[1:])}")
        n = xs[0].shape[0]
        pert_t = torch.tensor(pert)
        groups = mask.n_groups

        def present(ex: Tensor, p: Tensor) -> Tensor:
            g = pert_t.to(p.device)[p] - 1  # -1: unperturbed
            return torch.arange(groups, device=p.device).unsqueeze(0) != g.unsqueeze(1)

        plan = CoalitionPlan(mask, len(pert), present)
        others = tuple(batch[i] for i in rest_idx)
        ev = Evaluator(wrapper, None, fwd=ForwardArgs(others, {}, n), n=n, desc="DataLoaderAttribution")
        scores = evaluate(ev, xs, tuple(b.to(xs[j].device) for j, b in enumerate(bases)), plan, tag=("dataloader", len(pert)))
        out_shape = wrapper.out_shape if wrapper.out_shape is not None else ()
        for j in range(len(pert)):
            output = scores.values[:, j].reshape((n,) + tuple(out_shape))
            ex = torch.arange(n, device=xs[0].device)
            perturbed = build_rows(xs, xs, tuple(b.to(xs[k].device) for k, b in enumerate(bases)), plan, ex,
                                   torch.full((n,), j, dtype=torch.long, device=xs[0].device))
            elements = list(batch)
            for k, i in enumerate(attr_idx):
                elements[i] = perturbed[k]
            accums[j] = reduce(accums[j], output, tuple(elements))
