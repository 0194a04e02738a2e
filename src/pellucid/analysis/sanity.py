"""Sanity checks for saliency maps, after Kokhlikyan, Miglani, Alsallakh, Martin & Reblitz-Richardson, 2021,
"Investigating sanity checks for saliency maps with image and text classification", arXiv:2106.07475.

* :func:`randomisation_check`: cascading (or independent) model-parameter randomisation (Adebayo et al., 2018,
  arXiv:1810.03292) of several methods at once, with the attributions of the fully randomised model kept.
* :func:`input_imprint`: the Spearman rank correlation of ``|attribution|`` with ``|x - x'|``. Methods that
  multiply by the input (input x gradient, IG, DeepLIFT) carry the input's structure whatever the model is, so
  their randomised-model maps still resemble the original ones: the paper's point that a high randomisation
  similarity of such methods is an imprint of the input, not of the model.
* :func:`smoothing_check`: infidelity and max-sensitivity (Yeh et al., 2019, arXiv:1901.09392) of methods on a
  model and on smoothed copies (ReLU -> Softplus(beta), max pooling -> LogSumExp pooling with ``r = beta``;
  :func:`pellucid.models.smooth`).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from torch import Tensor, nn

from ..core.inputs import format_baselines, format_inputs
from ..metrics import gaussian_perturbation, infidelity, model_parameter_randomisation, sensitivity_max, spearman_abs
from ..models import smooth


def input_imprint(attributions: Any, inputs: Any, baselines: Any = None) -> Tensor:
    """``(N,)``: Spearman rank correlation between ``|attributions|`` and ``|inputs - baselines|`` per example
    (baselines default to zeros; tuples concatenated per example). Near 1: the map mostly shows the input."""
    xs, _ = format_inputs(inputs)
    bs = format_baselines(baselines, xs)
    delta = tuple((x - b).expand_as(x) for x, b in zip(xs, bs))
    attrs, _ = format_inputs(attributions, "attributions")
    return spearman_abs(attrs, delta)


def _check_methods(methods: Any, attribute_kwargs: Any, what: str) -> None:
    """``methods`` a non-empty mapping name -> method; ``attribute_kwargs`` a mapping name -> dict for those names."""
    if not isinstance(methods, Mapping) or not methods:
        got = f"an empty {type(methods).__name__}" if isinstance(methods, Mapping) else type(methods).__name__
        raise TypeError(f"methods must be a non-empty mapping of name -> {what}, e.g. {{'Saliency': Saliency}}; "
                        f"received {got}")
    for name, method in methods.items():
        if not (callable(method) or hasattr(method, "attribute")):
            raise TypeError(f"methods[{name!r}] must be {what}; received {type(method).__name__}")
    if attribute_kwargs is None:
        return
    if not isinstance(attribute_kwargs, Mapping):
        raise TypeError(f"attribute_kwargs must be a mapping of method name -> dict of attribute() keywords; "
                        f"received {type(attribute_kwargs).__name__}")
    for name, kw in attribute_kwargs.items():
        if name not in methods:
            raise ValueError(f"attribute_kwargs has an entry {name!r} that is not a key of methods {list(methods)}")
        if not isinstance(kw, Mapping):
            raise TypeError(f"attribute_kwargs[{name!r}] must be a dict of attribute() keywords; received "
                            f"{type(kw).__name__}")


def randomisation_check(model: nn.Module, methods: Mapping[str, Any], inputs: Any, target: Any = None, *,
                        similarity: Sequence[str] = ("spearman_abs", "spearman"), mode: str = "cascading",
                        layers: Sequence[str] | None = None, seed: int = 0,
                        attribute_kwargs: Mapping[str, dict] | None = None, baselines: Any = None) -> dict[str, dict]:
    """Model-parameter randomisation of every method in ``methods`` (name -> attribution class, instance or
    factory, as :func:`pellucid.metrics.model_parameter_randomisation` accepts), on ``inputs`` / ``target``.

    Returns ``{method: {"layers": [...], <measure>: [mean over examples per step], "imprint_original": float,
    "imprint_randomised": float}}`` where the imprints are the mean :func:`input_imprint` of the trained model's
    attributions and of the last step's (in cascading mode: every listed layer randomised). ``baselines`` is used
    for the imprint only (default zeros)."""
    _check_methods(methods, attribute_kwargs, "an attribution class, instance or factory")
    if isinstance(similarity, str) or callable(similarity):
        similarity = (similarity,)  # one measure, as model_parameter_randomisation accepts
    out: dict[str, dict] = {}
    for name, method in methods.items():
        kw = dict((attribute_kwargs or {}).get(name, {}))
        res = model_parameter_randomisation(model, method, inputs, target, similarity=tuple(similarity), mode=mode,
                                            layers=layers, seed=seed, attribute_kwargs=kw, return_attributions=True)
        entry: dict[str, Any] = {"layers": list(res.layers)}
        for k, v in res.similarity.items():
            entry[k] = v.double().mean(1).tolist()
        entry["imprint_original"] = float(input_imprint(res.original, inputs, baselines).mean())
        entry["imprint_randomised"] = float(input_imprint(res.attributions[-1], inputs, baselines).mean())
        out[name] = entry
    return out


def smoothing_check(model: nn.Module, methods: Mapping[str, type], inputs: Any, target: Any = None, *,
                    betas: Sequence[float] = (5.0, 20.0, 100.0), n_perturb_samples: int = 10,
                    infidelity_std: float = 0.05, sensitivity_radius: float = 0.05, seed: int = 0,
                    attribute_kwargs: Mapping[str, dict] | None = None,
                    accuracy: Callable[[nn.Module], float] | None = None) -> dict[str, Any]:
    """Infidelity (Gaussian perturbations of std ``infidelity_std``, normalised) and max-sensitivity (uniform
    noise of radius ``sensitivity_radius``) of each method (name -> attribution class) on ``model`` and on
    ``smooth(model, beta, beta)`` for each beta. Returns ``{"variants": [...], "accuracy": {variant: float}
    (if ``accuracy`` is given), method: {variant: {"infidelity": mean, "sensitivity_max": mean}}}``."""
    _check_methods(methods, attribute_kwargs, "an attribution class (called as cls(model))")
    variants: dict[str, nn.Module] = {"original": model, **{f"beta=r={b:g}": smooth(model, b, b) for b in betas}}
    out: dict[str, Any] = {"variants": list(variants)}
    if accuracy is not None:
        out["accuracy"] = {v: float(accuracy(m)) for v, m in variants.items()}
    for vname, m in variants.items():
        for name, cls in methods.items():
            kw = dict((attribute_kwargs or {}).get(name, {}))
            explain = cls(m).attribute
            a = explain(inputs, target=target, **kw)
            inf = infidelity(m, gaussian_perturbation(infidelity_std), inputs, a, target=target,
                             n_perturb_samples=n_perturb_samples, normalize=True, seed=seed)
            sens = sensitivity_max(explain, inputs, perturb_radius=sensitivity_radius,
                                   n_perturb_samples=n_perturb_samples, seed=seed, target=target, **kw)
            out.setdefault(name, {})[vname] = {"infidelity": float(inf.mean()), "sensitivity_max": float(sens.mean())}
    return out


__all__ = ["input_imprint", "randomisation_check", "smoothing_check"]
