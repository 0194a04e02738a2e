"""The method catalogue: forms come from the methods' signatures and defaults, every method of pellucid.attr is
offered (or excluded for a stated reason), and arguments are validated before any computation."""
import inspect

import pytest

from pellucid import attr
from pellucid.attr import Attribution, LayerAttribution, NeuronAttribution
from pellucid.explorer.methods import (EXCLUDED, Context, catalogue, method_spec, parse_args, unavailable,
                                       unavailable_methods)

IMAGE = Context("image", {"conv1": (4, 16, 16), "features": (8, 4, 4)}, "features", (3, 16, 16))
TEXT = Context("text", {"encoder": (12, 16)}, "encoder", (12, 16))


def _all_methods():
    return sorted(n for n in attr.__all__ if isinstance(getattr(attr, n), type)
                  and issubclass(getattr(attr, n), Attribution)
                  and getattr(attr, n) not in (Attribution, LayerAttribution, NeuronAttribution))


COMMON = {"Saliency", "InputXGradient", "IntegratedGradients", "SplitIntegratedGradients", "GradientShap", "DeepLift",
          "DeepLiftShap", "GuidedBackprop", "Deconvolution", "NoiseTunnel", "FeatureAblation", "Occlusion",
          "ShapleyValueSampling", "ShapleyValues", "Lime", "KernelShap", "LRP", "LayerIntegratedGradients",
          "LayerConductance", "InternalInfluence", "LayerGradientXActivation", "LayerDeepLift", "LayerActivation",
          "LayerFeatureAblation", "LayerGradientShap", "LayerLRP", "NeuronGradient", "NeuronIntegratedGradients",
          "NeuronConductance", "NeuronDeepLift", "NeuronGuidedBackprop", "NeuronFeatureAblation"}
CAMS = {"LayerGradCam", "GuidedGradCam", "GradCAMPlusPlus", "XGradCAM", "HiResCAM", "LayerCAM", "ScoreCAM",
        "AblationCAM", "EigenCAM"}


def test_every_method_is_offered_or_unavailable_with_a_reason():
    for ctx in (IMAGE, TEXT):
        offered, missing = set(catalogue(ctx)), unavailable_methods(ctx)
        assert offered.isdisjoint(missing) and offered | set(missing) == set(_all_methods())
        assert all(isinstance(r, str) and len(r) > 20 for r in missing.values())
    assert COMMON | CAMS <= set(catalogue(IMAGE))
    assert COMMON <= set(catalogue(TEXT)) and CAMS <= set(unavailable_methods(TEXT))
    assert set(EXCLUDED) <= set(unavailable_methods(IMAGE))
    assert "cannot build" in unavailable("LimeBase", IMAGE) if "LimeBase" in _all_methods() else True


@pytest.mark.parametrize("name", ["IntegratedGradients", "GradientShap", "KernelShap", "NoiseTunnel", "DeepLift",
                                  "LayerConductance", "Saliency", "Lime", "SplitIntegratedGradients", "LRP"])
def test_fields_carry_the_signatures_defaults(name):
    spec = method_spec(name, IMAGE)
    cls = getattr(attr, name)
    for f in spec.fields:
        if f.where == "app":
            continue
        sig = inspect.signature(cls.__init__ if f.where == "init" else cls.attribute).parameters
        assert f.name in sig, f.name
        if f.name == "seed":  # the app seeds random methods: a view is reproducible and cacheable
            assert f.default == 0 and sig["seed"].default is None
        elif f.name != "layer":
            assert f.default == sig[f.name].default, f.name
    # every plain bool/int/float/known-choice keyword with a default is a field
    for p in list(inspect.signature(cls.attribute).parameters.values())[2:]:
        if isinstance(p.default, (bool, int, float)) and p.name not in (
                "return_convergence_delta", "show_progress", "return_input_shape", "verbose", "return_split"):
            assert p.name in {f.name for f in spec.fields}, p.name


def test_app_built_fields():
    occ = method_spec("Occlusion", IMAGE)
    assert occ.field("sliding_window_shapes").maximum == 16 and occ.field("strides").default == 2
    assert method_spec("GradientShap", IMAGE).field("baselines").default == "dataset"
    assert method_spec("IntegratedGradients", TEXT).field("baselines").choices == ("pad", "zero")
    cam = method_spec("LayerGradCam", IMAGE)
    assert cam.kind == "layer" and cam.field("layer").choices == ("conv1", "features")
    assert cam.field("layer").default == "features"
    nt = method_spec("NoiseTunnel", IMAGE)
    assert nt.kind == "wrapper" and "Saliency" in nt.field("base").choices and nt.uses_target
    assert "Occlusion" not in nt.field("base").choices  # needs a window: not a plain gradient method
    neuron = method_spec("NeuronGradient", IMAGE)
    assert neuron.kind == "neuron" and not neuron.uses_target and neuron.field("neuron_selector").optional
    assert method_spec("LayerGradCam", Context("image", {}, None, (3, 8, 8))) is None  # no drawable layer


def test_parse_args_fills_defaults_and_validates():
    spec = method_spec("IntegratedGradients", IMAGE)
    out = parse_args(spec, {"n_steps": 7})
    assert out == {"multiply_by_inputs": True, "baselines": "zero", "n_steps": 7, "method": "gausslegendre"}
    with pytest.raises(ValueError, match="unknown argument.*'steps'"):
        parse_args(spec, {"steps": 3})
    with pytest.raises(TypeError, match="'n_steps' must be an integer"):
        parse_args(spec, {"n_steps": "5"})
    with pytest.raises(ValueError, match="'n_steps' must be between 1 and 1000"):
        parse_args(spec, {"n_steps": 10**6})
    with pytest.raises(ValueError, match="'method' must be one of"):
        parse_args(spec, {"method": "exec"})
    with pytest.raises(ValueError, match="cannot be null"):
        parse_args(spec, {"n_steps": None})
    gs = method_spec("GradientShap", IMAGE)
    assert parse_args(gs, {"stdevs": 1})["stdevs"] == 1.0
    with pytest.raises(TypeError, match="finite"):
        parse_args(gs, {"stdevs": float("nan")})
    with pytest.raises(ValueError, match="between 0"):
        parse_args(gs, {"stdevs": -0.1})
    assert parse_args(gs, {"seed": None})["seed"] is None
    ns = method_spec("NeuronIntegratedGradients", IMAGE)
    assert parse_args(ns, {"neuron_selector": [1, 2, 3]})["neuron_selector"] == [1, 2, 3]
    with pytest.raises(ValueError, match="neuron_selector"):
        parse_args(ns, {"neuron_selector": [True]})
