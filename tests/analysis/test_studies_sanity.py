"""Sanity-check tools (arXiv:2106.07475): the input imprint on closed forms, randomisation and smoothing checks
against the metrics they compose; `study sanity --fast`."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from conftest import LinearModel, assert_same_state, model_state
from pellucid.analysis.sanity import input_imprint, randomisation_check, smoothing_check
from pellucid.attr import InputXGradient, Saliency
from pellucid.cli import main
from pellucid.metrics import model_parameter_randomisation, sensitivity_max, spearman_abs


def test_input_imprint_closed_forms():
    x = torch.randn(3, 2, 5)
    torch.testing.assert_close(input_imprint(-3 * x, x), torch.ones(3, dtype=torch.float64))
    base = torch.randn(1, 2, 5)
    torch.testing.assert_close(input_imprint(2 * (x - base), x, base), torch.ones(3, dtype=torch.float64))
    # an attribution ranking the magnitudes backwards
    v = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    torch.testing.assert_close(input_imprint(1 / v, v), torch.tensor([-1.0], dtype=torch.float64))
    # tuples are concatenated per example
    t = input_imprint((-x, -x[:, :1]), (x, x[:, :1]))
    torch.testing.assert_close(t, torch.ones(3, dtype=torch.float64))


def test_randomisation_check_matches_the_metric():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    x = torch.randn(5, 6)
    before = model_state(model)
    res = randomisation_check(model, {"Saliency": Saliency, "InputXGradient": InputXGradient}, x, 1, seed=3)
    assert_same_state(before, model_state(model))
    ref = model_parameter_randomisation(model, InputXGradient, x, 1, similarity=("spearman_abs", "spearman"), seed=3,
                                        return_attributions=True)
    r = res["InputXGradient"]
    assert r["layers"] == ["2", "0"] == ref.layers
    assert r["spearman_abs"] == ref.similarity["spearman_abs"].mean(1).tolist()
    assert r["imprint_randomised"] == float(spearman_abs(ref.attributions[-1], x).mean())
    assert r["imprint_original"] == float(spearman_abs(ref.original, x).mean())
    # x * gradient of a linear head on its input carries |x| into the map; Saliency does not see x at all
    assert r["imprint_randomised"] > res["Saliency"]["imprint_randomised"]


def test_smoothing_check_large_beta_is_the_original():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    x = torch.randn(4, 6)
    res = smoothing_check(model, {"Saliency": Saliency}, x, 0, betas=(1e4, 1.0), n_perturb_samples=3, seed=0,
                          accuracy=lambda m: 0.5)
    assert res["variants"] == ["original", "beta=r=10000", "beta=r=1"]
    assert res["accuracy"] == {"original": 0.5, "beta=r=10000": 0.5, "beta=r=1": 0.5}
    o, big = res["Saliency"]["original"], res["Saliency"]["beta=r=10000"]
    assert abs(big["sensitivity_max"] - o["sensitivity_max"]) <= 1e-3 * max(1.0, o["sensitivity_max"])
    ref = sensitivity_max(Saliency(model).attribute, x, perturb_radius=0.05, n_perturb_samples=3, seed=0, target=0)
    assert o["sensitivity_max"] == float(ref.mean())
    # a linear model's gradient does not change under noise: zero sensitivity, and smoothing keeps it linear
    lin = LinearModel().eval()
    res = smoothing_check(lin, {"Saliency": Saliency}, torch.randn(3, 6), 0, betas=(2.0,), n_perturb_samples=2)
    assert res["Saliency"]["original"]["sensitivity_max"] == 0.0


def test_study_sanity_fast(tmp_path):
    out = tmp_path / "sanity"
    assert main(["study", "sanity", "--fast", "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["study"] == "sanity" and s["fast"] is True
    assert set(s["accuracy"]) == {"image", "text"}
    methods = {"Saliency", "InputXGradient", "IntegratedGradients", "DeepLift"}
    for task in ("image", "text"):
        assert set(s["randomisation"][task]) == methods
        r = s["randomisation"][task]["Saliency"]
        assert len(r["spearman_abs"]) == len(r["layers"]) and "imprint_randomised" in r
        assert set(s["smoothing"][task]["variants"]) == {"original", "beta=r=10"}
        assert {"infidelity", "sensitivity_max"} == set(s["smoothing"][task]["DeepLift"]["original"])
        assert "smoothing_lowers_sensitivity" in s["claims"][task]
    assert "ssim" in s["randomisation"]["image"]["Saliency"] and "ssim" not in s["randomisation"]["text"]["Saliency"]
    assert (out / "randomisation_image.png").exists() and (out / "smoothing_text.png").exists()


def test_methods_must_be_a_mapping_of_name_to_method():
    """methods=[Saliency] (a list, not name -> method) was an AttributeError ('list' has no 'items'); now a
    TypeError naming methods, raised before any attribution, as are bad attribute_kwargs."""
    model = nn.Sequential(nn.Linear(6, 3)).eval()
    x = torch.randn(2, 6)
    for check in (randomisation_check, smoothing_check):
        for bad in ([Saliency], {}, Saliency, {"Saliency": 3}):
            with pytest.raises(TypeError, match="methods"):
                check(model, bad, x, 0)
        with pytest.raises(ValueError, match="attribute_kwargs has an entry 'IG'"):
            check(model, {"Saliency": Saliency}, x, 0, attribute_kwargs={"IG": {}})
        with pytest.raises(TypeError, match=r"attribute_kwargs\['Saliency'\]"):
            check(model, {"Saliency": Saliency}, x, 0, attribute_kwargs={"Saliency": [1]})
    # one similarity measure given as a name is one measure (not a sequence of letters); an instance is accepted
    res = randomisation_check(model, {"s": Saliency(model)}, x, 0, similarity="spearman")
    assert set(res["s"]) == {"layers", "spearman", "imprint_original", "imprint_randomised"}
