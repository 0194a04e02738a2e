"""The explorer's method catalogue: every attribution method of :mod:`pellucid.attr`, with a form generated from the
signatures of its constructor and ``attribute()`` and their defaults.

A parameter becomes a form field when the app can offer it safely: booleans, bounded integers and finite floats
(from their defaults), the choices the library defines (``method``, ``nt_type``, ``interpolate_mode``), and the
tensor arguments the app builds itself (``layer``, ``baselines``, ``feature_mask``, ``sliding_window_shapes``,
``strides``, ``neuron_selector``, NoiseTunnel's wrapped method). Callables, tensors given by a user script and
batching knobs keep their defaults. :func:`parse_args` validates a request's arguments against a method's fields
and returns them with the defaults filled in (``ValueError``/``TypeError`` naming the argument otherwise).
"""
from __future__ import annotations

import inspect
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

# parameters the app supplies itself or leaves at their defaults (never form fields)
_SKIP = {
    "self", "inputs", "target", "additional_forward_args", "forward_kwargs", "batch_size", "internal_batch_size",
    "perturbations_per_eval", "nt_samples_batch_size", "max_examples_per_batch", "generator", "show_progress",
    "return_convergence_delta", "return_split", "return_input_shape", "verbose", "custom_attribution_func",
    "grad_kwargs", "composite", "canonizers", "device_ids", "reshape_transform", "perm_func", "interpretable_model",
    "similarity_func", "perturb_func", "forward_func", "model", "attribution_method", "layer_baselines",
    "layer_mask", "kwargs",
}
# the library's own choices for string parameters
_CHOICES = {
    "method": ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid"),
    "nt_type": ("smoothgrad", "smoothgrad_sq", "vargrad"),
    "interpolate_mode": ("nearest", "bilinear", "bicubic", "area"),
}
# methods whose baselines are a distribution of reference inputs
DISTRIBUTION = {"GradientShap", "DeepLiftShap", "LayerGradientShap", "LayerDeepLiftShap", "NeuronGradientShap",
                "NeuronDeepLiftShap"}
MAX_COUNT = 1000  # bound on sample/step counts a request may ask for
MAX_SEED = 2**31 - 1


@dataclass(frozen=True)
class Field:
    """One form field. ``kind``: ``"bool"``, ``"int"``, ``"float"``, ``"choice"`` or ``"int_list"``; ``default`` is
    what the method uses when the field is left out; ``optional``: ``None`` is allowed."""

    name: str
    kind: str
    default: Any
    where: str  # "init" (constructor), "attribute" or "app" (built by the explorer)
    choices: tuple = ()
    minimum: float | None = None
    maximum: float | None = None
    optional: bool = False
    help: str = ""

    def as_json(self) -> dict:
        d = asdict(self)
        d["choices"] = list(self.choices)
        return d


@dataclass
class MethodSpec:
    """A method as the app offers it: ``kind`` is ``"input"``, ``"layer"``, ``"neuron"`` or ``"wrapper"``
    (NoiseTunnel); ``uses_target``: whether ``attribute()`` takes a target (neuron methods and LayerActivation do
    not, and get no metrics)."""

    name: str
    cls: type
    kind: str
    fields: list[Field] = field(default_factory=list)
    uses_target: bool = True
    summary: str = ""

    def as_json(self) -> dict:
        return {"name": self.name, "kind": self.kind, "uses_target": self.uses_target, "summary": self.summary,
                "fields": [f.as_json() for f in self.fields]}

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)


@dataclass
class Context:
    """What the fields depend on: the modality (``"image"`` or ``"text"``), the layers that can be drawn over the
    input (name -> output shape, in model order) and the default layer."""

    modality: str
    layers: Mapping[str, tuple[int, ...]]
    default_layer: str | None
    spatial: tuple[int, ...] = ()  # image (C, H, W) or text (L, D)


# permutation importance permutes features across a batch of examples: a dataset-level quantity, not an
# explanation of the one example the app shows
EXCLUDED = {"FeaturePermutation": "permutes features across a batch; the explorer explains one example",
            "LayerFeaturePermutation": "permutes features across a batch; the explorer explains one example"}


def _drawable(name: str, modality: str) -> bool:
    """CAMs weight a layer's channels (dim 1): for token activations ``(L, D)`` dim 1 is the sequence, so the
    map is not per token (use a ``reshape_transform`` in a script); the app offers CAMs for images only."""
    return modality == "image" or "cam" not in name.lower()


def _classes() -> dict[str, type]:
    from .. import attr
    from ..attr import Attribution, LayerAttribution, NeuronAttribution

    out = {}
    for name in attr.__all__:
        obj = getattr(attr, name)
        if isinstance(obj, type) and issubclass(obj, Attribution) and obj not in (Attribution, LayerAttribution,
                                                                                    NeuronAttribution):
            out[name] = obj
    return out


def _kind(name: str, cls: type) -> str:
    init = inspect.signature(cls.__init__).parameters
    if name == "NoiseTunnel":
        return "wrapper"
    if "neuron_selector" in inspect.signature(cls.attribute).parameters:
        return "neuron"
    if "layer" in init:
        return "layer"
    return "input"


def _field(p: inspect.Parameter, where: str, spec_name: str, ctx: Context) -> Field | None:
    name, default = p.name, p.default
    ann = str(p.annotation)
    if name in _SKIP or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
        return None
    if name == "layer":
        if not ctx.layers:
            return None
        return Field(name, "choice", ctx.default_layer, where, tuple(ctx.layers), help="layer (module name)")
    if name == "baselines":
        choices = ("zero", "mean", "blur") if ctx.modality == "image" else ("pad", "zero")
        dflt = choices[0]
        if spec_name in DISTRIBUTION and ctx.modality == "image":
            choices, dflt = choices + ("dataset",), "dataset"
        return Field(name, "choice", dflt, "app", choices,
                     help="reference input: zero, per-channel mean, blurred image, [PAD] tokens, or dataset examples")
    if name == "feature_mask":
        choices = ("patch4", "patch2", "patch8", "pixel") if ctx.modality == "image" else ("token",)
        dflt = "patch8" if spec_name == "ShapleyValues" and ctx.modality == "image" else choices[0]
        return Field(name, "choice", dflt, "app", choices, help="feature groups perturbed together")
    if name == "sliding_window_shapes":
        hi = min(ctx.spatial[1:]) if ctx.modality == "image" else ctx.spatial[0]
        return Field(name, "int", min(4, hi) if ctx.modality == "image" else 1, "app", minimum=1, maximum=hi,
                     help="window side (pixels, all channels) or tokens")
    if name == "strides":
        hi = min(ctx.spatial[1:]) if ctx.modality == "image" else ctx.spatial[0]
        return Field(name, "int", min(2, hi) if ctx.modality == "image" else 1, "app", minimum=1, maximum=hi,
                     help="window step (pixels or tokens)")
    if name == "neuron_selector":
        return Field(name, "int_list", None, "app", optional=True,
                     help="neuron index in the layer output (without the batch dim); empty: the most active neuron")
    if name == "seed":
        return Field(name, "int", 0, where, minimum=0, maximum=MAX_SEED, optional=True, help="random seed")
    if name in _CHOICES and isinstance(default, str):
        return Field(name, "choice", default, where, _CHOICES[name])
    if default is inspect.Parameter.empty:
        return None
    if isinstance(default, bool):
        return Field(name, "bool", default, where)
    if isinstance(default, int):
        counts = name.startswith(("n_", "nt_"))
        return Field(name, "int", default, where, minimum=1 if counts else -MAX_COUNT, maximum=MAX_COUNT)
    if isinstance(default, float):
        lo = 0.0 if name in ("stdevs", "eps", "psi") else -1e6
        hi = 1.0 if name == "psi" else 1e6
        return Field(name, "float", default, where, minimum=lo, maximum=hi)
    if default is None and "int" in ann and "tuple" not in ann:
        return Field(name, "int", None, where, minimum=1, maximum=MAX_COUNT, optional=True)
    return None


def method_spec(name: str, ctx: Context) -> MethodSpec | None:
    """The form of method ``name`` in context ``ctx``, or ``None`` if the app cannot offer it there (a layer
    method with no drawable layer, a required argument the app cannot build)."""
    classes = _classes()
    if name not in classes or name in EXCLUDED or not _drawable(name, ctx.modality):
        return None
    cls = classes[name]
    kind = _kind(name, cls)
    fields: list[Field] = []
    att = inspect.signature(cls.attribute).parameters
    for where, params in (("init", list(inspect.signature(cls.__init__).parameters.values())[1:]),
                          ("attribute", list(att.values())[1:])):
        for p in params:
            f = _field(p, where, name, ctx)
            if f is None:
                if p.default is inspect.Parameter.empty and p.name not in _SKIP and p.kind not in (p.VAR_KEYWORD,
                                                                                                   p.VAR_POSITIONAL):
                    return None  # a required argument the app cannot supply
                continue
            fields.append(f)
    if kind == "wrapper":
        bases = [n for n in base_methods()]
        fields.insert(0, Field("base", "choice", "Saliency", "app", tuple(bases),
                               help="the method whose attributions are averaged over noisy inputs"))
    doc = (inspect.getdoc(cls) or "").strip().split("\n")[0]
    uses_target = "target" in att or kind == "wrapper"
    return MethodSpec(name, cls, kind, fields, uses_target=uses_target, summary=doc)


def base_methods() -> list[str]:
    """Methods NoiseTunnel can wrap in the app: input-space gradient methods (a target, no feature groups)."""
    out = []
    for name, cls in _classes().items():
        params = inspect.signature(cls.attribute).parameters
        required = [p for p in list(params.values())[2:] if p.default is inspect.Parameter.empty
                    and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
        if _kind(name, cls) == "input" and "target" in params and "feature_mask" not in params and not required:
            out.append(name)
    return sorted(out)


def catalogue(ctx: Context) -> dict[str, MethodSpec]:
    """Every method the app offers in ``ctx``, by name (sorted)."""
    out = {}
    for name in sorted(_classes()):
        spec = method_spec(name, ctx)
        if spec is not None:
            out[name] = spec
    return out


def _check_number(f: Field, v: Any) -> Any:
    if f.kind == "int":
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"argument {f.name!r} must be an integer; received {v!r}")
    else:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise TypeError(f"argument {f.name!r} must be a finite number; received {v!r}")
        v = float(v)
    if (f.minimum is not None and v < f.minimum) or (f.maximum is not None and v > f.maximum):
        raise ValueError(f"argument {f.name!r} must be between {f.minimum:g} and {f.maximum:g}; received {v!r}")
    return v


def parse_args(spec: MethodSpec, raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate ``raw`` (field name -> value, JSON types) against ``spec``; returns every field's value with the
    defaults filled in. Unknown names, wrong types and out-of-range values raise ``ValueError``/``TypeError``."""
    raw = dict(raw or {})
    known = {f.name: f for f in spec.fields}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ValueError(f"unknown argument(s) {', '.join(map(repr, unknown))} for {spec.name}; expected some of "
                         f"{', '.join(known) or '(none)'}")
    out: dict[str, Any] = {}
    for name, f in known.items():
        if name not in raw:
            out[name] = f.default
            continue
        v = raw[name]
        if v is None:
            if not f.optional and f.default is not None:
                raise ValueError(f"argument {name!r} of {spec.name} cannot be null")
            out[name] = None
        elif f.kind == "bool":
            if not isinstance(v, bool):
                raise TypeError(f"argument {name!r} must be true or false; received {v!r}")
            out[name] = v
        elif f.kind in ("int", "float"):
            out[name] = _check_number(f, v)
        elif f.kind == "choice":
            if not isinstance(v, str) or v not in f.choices:
                raise ValueError(f"argument {name!r} must be one of {', '.join(map(repr, f.choices))}; received {v!r}")
            out[name] = v
        elif f.kind == "int_list":
            if not isinstance(v, (list, tuple)) or not v or len(v) > 8 or any(
                    isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < 2**31 for i in v):
                raise ValueError(f"argument {name!r} must be a list of 1 to 8 non-negative integers; received {v!r}")
            out[name] = [int(i) for i in v]
        else:  # pragma: no cover - every kind is handled above
            raise AssertionError(f.kind)
    return out


def split_args(spec: MethodSpec, args: Mapping[str, Any]) -> tuple[dict, dict, dict]:
    """``(init kwargs, attribute kwargs, app-built values)`` from parsed arguments."""
    init, att, app = {}, {}, {}
    for f in spec.fields:
        {"init": init, "attribute": att, "app": app}[f.where][f.name] = args[f.name]
    return init, att, app


def names(ctx: Context) -> Sequence[str]:
    return list(catalogue(ctx))
