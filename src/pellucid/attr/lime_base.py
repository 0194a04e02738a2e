"""LimeBase: LIME's generic framework with a user-defined interpretable space (Ribeiro, Singh & Guestrin, 2016,
"Why Should I Trust You?", arXiv:1602.04938; Captum's ``LimeBase`` contract).

``n_samples`` samples are drawn by ``perturb_func(inputs, **kwargs)`` (or a generator function yielding them),
either in the interpretable space (``perturb_interpretable_space=True``: ``from_interp_rep_transform(sample,
inputs, **kwargs)`` gives the model input) or in the input space (``to_interp_rep_transform(sample, inputs,
**kwargs)`` gives the interpretable vector). Each sample is weighted by ``similarity_func(inputs, model_input,
interpretable, **kwargs)``, the model is evaluated on all samples, and the interpretable model is fitted to
``(interpretable (S, G), outputs (S,), weights (S,))``; ``attribute`` returns its representation (the
coefficients ``(1, G)`` of a linear model). The callables are Captum's, called once per sample as Captum does;
the model evaluations are batched by the engine (memory-budgeted chunks). For the usual feature-group case use
:class:`~pellucid.attr.Lime`, which is batched throughout.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping

import torch
from torch import Tensor

from ..core.errors import check_positive_int
from ..core.inputs import format_inputs
from ..core.perturb import aggregate_scores, perturbation_batch_size
from ..core.targets import TargetType
from ._lime_forms import is_captum_model
from ._perturbation import PerturbationAttribution


class LimeBase(PerturbationAttribution):
    """LIME with a custom interpretable representation (Captum's constructor and ``attribute`` arguments).

    Args:
        forward_func: the model.
        interpretable_model: Captum's ``Model`` form (``fit(DataLoader)``, ``representation()``), e.g.
            :class:`~pellucid.attr.SkLearnLasso`, or pellucid's batched surrogates (:class:`~pellucid.attr.Lasso`,
            ...), whose coefficients ``(1, G)`` are returned.
        similarity_func: ``(original, perturbed, interpretable, **kwargs) -> float`` per sample.
        perturb_func: ``(original, **kwargs) -> sample``, or a generator function yielding samples.
        perturb_interpretable_space: whether samples are interpretable vectors (else model inputs).
        from_interp_rep_transform: ``(sample, original, **kwargs) -> model input`` (interpretable samples).
        to_interp_rep_transform: ``(sample, original, **kwargs) -> (1, G)`` (input-space samples).

    ``multiplies_by_inputs`` is False (as Captum).
    """

    _multiply_by_inputs = False
    # the model is called on the samples (from_interp_rep_transform's outputs, or perturb_func's), not on inputs,
    # so the check of inputs/additional_forward_args against forward's signature does not apply
    _model_takes_inputs = False

    def __init__(
        self,
        forward_func: Callable,
        interpretable_model: Any,
        similarity_func: Callable,
        perturb_func: Callable,
        perturb_interpretable_space: bool,
        from_interp_rep_transform: Callable | None,
        to_interp_rep_transform: Callable | None,
    ):
        super().__init__(forward_func)
        if not callable(getattr(interpretable_model, "fit", None)):
            raise TypeError("interpretable_model must have fit(DataLoader) and representation() (Captum's Model) or "
                            f"pellucid's fit(X, y, weights); received {type(interpretable_model).__name__}")
        for name, f in (("similarity_func", similarity_func), ("perturb_func", perturb_func)):
            if not callable(f):
                raise TypeError(f"{name} must be callable; received {type(f).__name__}")
        needed = "from_interp_rep_transform" if perturb_interpretable_space else "to_interp_rep_transform"
        if not callable(from_interp_rep_transform if perturb_interpretable_space else to_interp_rep_transform):
            raise ValueError(f"{needed} must be a callable when perturb_interpretable_space="
                             f"{bool(perturb_interpretable_space)} (it maps samples between the two spaces)")
        self.interpretable_model = interpretable_model
        self.similarity_func = similarity_func
        self.perturb_func = perturb_func
        self.perturb_interpretable_space = bool(perturb_interpretable_space)
        self.from_interp_rep_transform = from_interp_rep_transform
        self.to_interp_rep_transform = to_interp_rep_transform

    def attribute(
        self,
        inputs: Any,
        target: TargetType = None,
        additional_forward_args: Any = None,
        n_samples: int = 50,
        perturbations_per_eval: int | None = None,
        show_progress: bool = False,
        *,
        forward_kwargs: Mapping[str, Any] | None = None,
        batch_size: int | None = None,
        **kwargs: Any,
    ) -> Tensor:
        """Returns ``interpretable_model.representation()`` after the fit (or the coefficients ``(1, G)``).

        ``inputs``: one example (batch 1), or a batch whose model output is one value per sample (Captum's
        aggregate case). ``kwargs`` go to every callable (as in Captum). ``perturbations_per_eval`` /
        ``batch_size``: samples per model call (default: from the memory budget)."""
        check_positive_int(n_samples, "n_samples")
        call = self.prepare(inputs, target, additional_forward_args, forward_kwargs, None, show_progress, needs_grad=False)
        b = call.n
        call.ev.batch_size = perturbation_batch_size(batch_size, perturbations_per_eval, b)
        stream = self.perturb_func(inputs, **kwargs) if inspect.isgeneratorfunction(self.perturb_func) else None
        interps, model_inputs, sims = [], [], []
        for s in range(n_samples):
            try:
                sample = next(stream) if stream is not None else self.perturb_func(inputs, **kwargs)
            except StopIteration:
                if s == 0:
                    raise ValueError("perturb_func (a generator) yielded no samples") from None
                break  # Captum warns and fits on the samples it has
            if self.perturb_interpretable_space:
                interp, model_in = sample, self.from_interp_rep_transform(sample, inputs, **kwargs)
            else:
                interp, model_in = self.to_interp_rep_transform(sample, inputs, **kwargs), sample
            sim = self.similarity_func(inputs, model_in, interp, **kwargs)
            interps.append(torch.as_tensor(interp).reshape(1, -1).float().cpu())
            model_inputs.append(format_inputs(model_in, "perturbed inputs")[0])
            sims.append(float(sim.item() if isinstance(sim, Tensor) else sim))
        X = torch.cat(interps)
        y = self._scores(call, model_inputs)
        w = torch.tensor(sims, dtype=torch.float32)
        return self._fit(X, y, w)

    def _scores(self, call: Any, model_inputs: list[tuple[Tensor, ...]]) -> Tensor:
        """One model score per sample: samples of one example are batched as rows; a batch per sample is
        evaluated whole and must give one value (aggregate output)."""
        b = call.n
        with call.guard:
            if all(m[0].shape[0] == 1 for m in model_inputs) and b == 1:
                rows = tuple(torch.cat(parts) for parts in zip(*model_inputs))
                ex = torch.zeros(rows[0].shape[0], dtype=torch.long)
                return call.ev.all_scores(rows, ex, tag="lime-base").detach().float().cpu().reshape(-1)
            out = []
            for m in model_inputs:
                with torch.no_grad():
                    s = aggregate_scores(call.ev.run(m, torch.arange(m[0].shape[0])), call.ev.target)
                if s.numel() != 1:
                    raise ValueError(f"LimeBase needs one model output per sample; the model gave {s.numel()} values "
                                     f"for a sample of batch {m[0].shape[0]}: attribute one example at a time")
                out.append(s.reshape(1).float().cpu())
            return torch.cat(out)

    def _fit(self, X: Tensor, y: Tensor, w: Tensor) -> Tensor:
        model = self.interpretable_model
        if is_captum_model(model):
            from torch.utils.data import DataLoader, TensorDataset

            model.fit(DataLoader(TensorDataset(X, y, w), batch_size=X.shape[0]))
            return model.representation()
        coef, _ = model.fit(X.unsqueeze(0), y.unsqueeze(0), w.unsqueeze(0))
        return coef[0]  # (1, G)

    def attribute_future(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("attribute_future is not implemented for LimeBase")
