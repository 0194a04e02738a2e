"""One explorer computation: attribute one example with one method of :mod:`pellucid.attr` and score the
attribution with :mod:`pellucid.metrics` (infidelity, sensitivity-max, deletion AUC), as a user's script would.

Images are attributed in input space. Text is attributed in the output space of the embedding layer: the model is
wrapped so that it takes the embeddings of the example's tokens (:class:`EmbeddingForward`), every method runs on
them unchanged, and scores are summed over the embedding dimension to one per token. Layer attributions are drawn
over the input: a spatial layer map is summed over channels and upsampled to the image; a ``(L, ...)`` layer output
of a text model is summed to one score per token.

Every model call goes through :class:`Watched`, which counts the rows evaluated (progress) and raises
:class:`Cancelled` when the job's cancel flag is set: a job stops between two chunks of the engine's batcher.
The user's model gets no hook and no attribute; the engine's guard restores it.
"""
from __future__ import annotations

import inspect
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.guard import ModelGuard
from ..core.hooks import LayerTap
from .features import Example, TextFeature
from .methods import MethodSpec, split_args

METRICS = ("infidelity", "sensitivity_max", "deletion_auc")
METRIC_INFO = {
    "infidelity": {"higher_is_better": False, "paper": "Yeh et al., 2019, arXiv:1901.09392",
                   "setting": "Gaussian perturbations, std 0.05, 10 samples, seed 0"},
    "sensitivity_max": {"higher_is_better": False, "paper": "Yeh et al., 2019, arXiv:1901.09392",
                        "setting": "uniform noise of radius 0.02, 5 samples, seed 0"},
    "deletion_auc": {"higher_is_better": False, "paper": "Samek et al., 2017, arXiv:1509.06321",
                     "setting": "class probability as pixels (tokens) are set to the baseline, most relevant first"},
}


class Cancelled(Exception):
    """Raised inside a model call when the job was cancelled."""


@dataclass
class Progress:
    """Shared between a job and the worker: the cancel flag, the rows evaluated and the current stage."""

    cancel: threading.Event = field(default_factory=threading.Event)
    rows: int = 0
    stage: str = "queued"
    done_stages: int = 0
    total_stages: int = 1


class Watched(nn.Module):
    """``forward`` of ``inner`` that counts rows and stops with :class:`Cancelled` once ``progress.cancel`` is set."""

    def __init__(self, inner: Callable, progress: Progress):
        super().__init__()
        self.inner = inner
        self.progress = progress

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        if self.progress.cancel.is_set():
            raise Cancelled("cancelled")
        if args and isinstance(args[0], Tensor):
            self.progress.rows += int(args[0].shape[0])
        return self.inner(*args, **kwargs)


class EmbeddingForward(nn.Module):
    """``forward(emb (R, L, D), **kwargs)``: ``model(ids, **kwargs)`` with the embedding layer's output replaced by
    ``emb`` (the token ids ``(1, L)`` are repeated to the ``R`` rows). The model's layers are its own modules."""

    def __init__(self, model: nn.Module, embedding: nn.Module, ids: Tensor):
        super().__init__()
        self.model = model
        self.embedding = embedding
        self.register_buffer("ids", ids, persistent=False)

    def forward(self, emb: Tensor, **kwargs: Any) -> Tensor:
        ids = self.ids.expand(emb.shape[0], -1)
        with LayerTap(self.embedding, replace=emb):
            return self.model(ids, **kwargs)


class Probabilities(nn.Module):
    """Softmax of a classifier's logits (the score deletion curves follow)."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        return F.softmax(self.inner(*args, **kwargs), dim=-1)


@dataclass
class Subject:
    """A model prepared for one example: ``forward`` takes ``x`` (image, or token embeddings) and ``kwargs``."""

    forward: nn.Module
    x: Tensor
    kwargs: dict[str, Tensor]
    modality: str
    modules: dict[str, nn.Module]
    feature: Any
    dataset: Any = None  # callable n -> reference inputs (distribution baselines)


def subject(model: nn.Module, feature: Any, ex: Example, progress: Progress, references: Callable | None = None) -> Subject:
    """Wrap ``model`` for example ``ex`` (see the module docstring)."""
    modules = {n: m for n, m in model.named_modules() if n}
    if isinstance(feature, TextFeature):
        emb_layer = feature.module(model)
        with torch.no_grad():
            x = emb_layer(ex.x).detach().float()
        inner: nn.Module = EmbeddingForward(model, emb_layer, ex.x)
        modality = "text"
    else:
        x = ex.x.float()
        inner, modality = model, "image"
    return Subject(Watched(inner, progress), x, ex.kwargs, modality, modules, feature, references)


def baseline(sub: Subject, choice: str) -> Tensor | None:
    """The reference input ``choice`` names: ``zero``, ``mean`` (per-channel mean), ``blur``, ``pad`` ([PAD]
    embeddings, ``keep_ids`` kept) or ``dataset`` (up to 16 dataset inputs)."""
    x = sub.x
    if choice == "zero":
        return torch.zeros_like(x)
    if choice == "mean":
        return x.mean(dim=tuple(range(2, x.dim())), keepdim=True).expand_as(x).contiguous()
    if choice == "blur":
        from ..metrics import gaussian_blur

        return gaussian_blur(x, sigma=max(1.0, x.shape[-1] / 16))
    if choice == "pad":
        feat: TextFeature = sub.feature
        ids = sub.forward.inner.ids
        keep = torch.zeros_like(ids, dtype=torch.bool)
        for k in feat.keep_ids:
            keep |= ids == k
        base_ids = torch.where(keep, ids, torch.full_like(ids, feat.pad_id))
        with torch.no_grad():
            return feat.module(sub.forward.inner.model)(base_ids).detach().float()
    if choice == "dataset":
        return sub.dataset(16).float().to(x.device)
    raise ValueError(f"baselines must be one of zero, mean, blur, pad, dataset; received {choice!r}")


def feature_mask(sub: Subject, choice: str) -> Tensor:
    """Feature groups: image patches ``patchK`` / ``pixel`` ``(1, 1, H, W)``; tokens ``(1, L, 1)``."""
    from ..metrics import patch_mask

    if sub.modality == "text":
        return torch.arange(sub.x.shape[1], device=sub.x.device).reshape(1, -1, 1)
    size = 1 if choice == "pixel" else int(choice.removeprefix("patch"))
    return patch_mask(sub.x.shape[1:], size).to(sub.x.device)


def to_input_space(a: Tensor, sub: Subject) -> Tensor:
    """An attribution drawn over the input, shaped like ``sub.x``: input-shaped attributions as they are; a layer
    map ``(1, C', h, w)`` summed over channels, upsampled (bilinear) and split evenly over the image channels; a
    text layer output ``(1, L, ...)`` summed to one score per token, given to the first embedding component."""
    a = a.detach().float()
    x = sub.x
    if a.shape == x.shape:
        return a
    if sub.modality == "image" and a.dim() == 4 and a.shape[0] == x.shape[0]:
        m = a.sum(1, keepdim=True)
        if m.shape[-2:] != x.shape[-2:]:
            m = F.interpolate(m, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)
        return (m / x.shape[1]).expand_as(x).contiguous()
    if sub.modality == "text" and a.dim() >= 2 and a.shape[:2] == x.shape[:2]:
        per_token = a.reshape(a.shape[0], a.shape[1], -1).sum(-1)
        out = torch.zeros_like(x)
        out[..., 0] = per_token
        return out
    raise ValueError(f"the attribution has shape {tuple(a.shape)}, which cannot be drawn over the input "
                     f"{tuple(x.shape)}; choose a layer with a spatial (C, H, W) or per-token output")


def _neuron(sub: Subject, layer: nn.Module, selector: list[int] | None, to_input: bool) -> tuple[int, ...]:
    with torch.no_grad(), LayerTap(layer, attribute_to_input=to_input) as tap:
        sub.forward(sub.x, **sub.kwargs)
    out = tap.value
    if isinstance(out, tuple):
        out = out[0]
    shape = tuple(out.shape[1:])
    if selector is None:
        flat = int(out[0].reshape(-1).argmax())
        return tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), shape))
    if len(selector) != len(shape) or any(not 0 <= s < d for s, d in zip(selector, shape)):
        raise ValueError(f"neuron_selector must have {len(shape)} indices within the layer output shape {shape}; "
                         f"received {selector}")
    return tuple(selector)


def explainer(spec: MethodSpec, args: dict, sub: Subject, target: int) -> tuple[Callable[..., Tensor], dict]:
    """``(explain, info)``: ``explain(inputs, **kw)`` runs the method on ``inputs`` (rows of ``sub.x``) and returns
    the attribution over the input (:func:`to_input_space`); ``kw`` are the ``attribute()`` keywords (``target``,
    ``forward_kwargs``, baselines, ...), given in ``info["kwargs"]`` for the example itself."""
    init, att, app = split_args(spec, args)
    if "layer" in init:
        init["layer"] = sub.modules[init["layer"]]
    kw: dict[str, Any] = dict(att)
    if "baselines" in app:
        kw["baselines"] = baseline(sub, app["baselines"])
    if "feature_mask" in app:
        kw["feature_mask"] = feature_mask(sub, app["feature_mask"])
    if "sliding_window_shapes" in app:
        k, s = app["sliding_window_shapes"], app["strides"]
        if sub.modality == "image":
            c = sub.x.shape[1]
            kw["sliding_window_shapes"], kw["strides"] = (c, k, k), (c, s, s)
        else:
            d = sub.x.shape[2]
            kw["sliding_window_shapes"], kw["strides"] = (k, d), (s, d)
    info: dict[str, Any] = {}
    if spec.kind == "neuron":
        to_input = bool(att.get("attribute_to_neuron_input", False))
        kw["neuron_selector"] = _neuron(sub, init["layer"], app.get("neuron_selector"), to_input)
        info["neuron"] = list(kw["neuron_selector"])
    if spec.kind == "wrapper":
        from .methods import method_class

        base_cls = method_class(app["base"])
        method = spec.cls(base_cls(sub.forward))
        if "baselines" in inspect.signature(base_cls.attribute).parameters:
            kw["baselines"] = baseline(sub, "zero" if sub.modality == "image" else "pad")
    else:
        method = spec.cls(sub.forward, **init)
    if spec.uses_target:
        kw["target"] = target
    if sub.kwargs:
        kw["forward_kwargs"] = sub.kwargs
    if "seed" in kw and kw["seed"] is None:
        kw.pop("seed")

    def explain(inputs: Tensor, **call_kw: Any) -> Tensor:
        merged = {**kw, **call_kw}
        out = method.attribute(inputs, **merged)
        if isinstance(out, tuple):
            out = out[0]
        return to_input_space(out, _with_x(sub, inputs))

    info["kwargs"] = kw
    return explain, info


def _with_x(sub: Subject, x: Tensor) -> Subject:
    return Subject(sub.forward, x, sub.kwargs, sub.modality, sub.modules, sub.feature, sub.dataset)


def class_scores(sub: Subject) -> Tensor:
    """Softmax probabilities ``(K,)`` of the example."""
    with torch.no_grad():
        return F.softmax(sub.forward(sub.x, **sub.kwargs).float(), dim=-1)[0]


def metric(name: str, sub: Subject, attribution: Tensor, explain: Callable, kw: dict, target: int,
           baseline_choice: str | None) -> float:
    """One metric of :data:`METRICS` for the attribution of ``sub.x`` (``(1, ...)``)."""
    from .. import metrics as M

    fkw = {"forward_kwargs": sub.kwargs} if sub.kwargs else {}
    if name == "infidelity":
        gen = torch.Generator().manual_seed(0)
        v = M.infidelity(sub.forward, M.gaussian_perturbation(0.05, generator=gen), sub.x, attribution,
                         target=target, n_perturb_samples=10, **fkw)
    elif name == "sensitivity_max":
        call_kw = {k: v for k, v in kw.items() if k in ("target", "forward_kwargs")}
        v = M.sensitivity_max(explain, sub.x, perturb_radius=0.02, n_perturb_samples=5, seed=0, **call_kw)
    elif name == "deletion_auc":
        if sub.modality == "text":
            mask = torch.arange(sub.x.shape[1], device=sub.x.device).reshape(1, -1, 1).expand(1, sub.x.shape[1],
                                                                                                sub.x.shape[2])
        else:
            mask = M.pixel_mask(sub.x.shape[1:]).to(sub.x.device)
        base = baseline(sub, baseline_choice) if baseline_choice not in (None, "dataset") else None
        if base is None:
            base = baseline(sub, "pad" if sub.modality == "text" else "zero")
        v = M.deletion_auc(Probabilities(sub.forward), sub.x, attribution, target=target, baselines=base,
                           feature_mask=mask, **fkw)
    else:
        raise ValueError(f"unknown metric {name!r}; expected one of {', '.join(METRICS)}")
    return float(v.reshape(-1)[0])


def run(model: nn.Module, sub: Subject, spec: MethodSpec, args: dict, target: int, metrics: list[str],
        progress: Progress) -> dict:
    """Attribute, score and summarise one example; the model is guarded (eval mode inside, restored after)."""
    progress.total_stages = 1 + len(metrics)
    with ModelGuard(model):
        model.eval()
        progress.stage = f"attributing with {spec.name}"
        explain, info = explainer(spec, args, sub, target)
        attribution = explain(sub.x)
        progress.done_stages = 1
        values: dict[str, float | None] = {}
        for m in metrics:
            progress.stage = f"metric {m}"
            if not spec.uses_target:
                values[m] = None
            else:
                try:
                    values[m] = metric(m, sub, attribution, explain, info["kwargs"], target,
                                       args.get("baselines"))
                except Cancelled:
                    raise
                except (ValueError, TypeError, RuntimeError, NotImplementedError) as e:
                    values[m] = None
                    info.setdefault("metric_errors", {})[m] = str(e)
            progress.done_stages += 1
        scores = class_scores(sub)
    return {"attribution": attribution.detach().float().cpu(), "metrics": values, "scores": scores.tolist(),
            "neuron": info.get("neuron"), "metric_errors": info.get("metric_errors", {})}
