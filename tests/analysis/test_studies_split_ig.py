"""Keep/drop-top-k curves and the saturation profile (arXiv:2010.12697) on closed forms; `study split-ig --fast`."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from conftest import assert_same_state, model_state
from pellucid.analysis.saturation import keep_drop_curves, norm_ratio, saturation_profile
from pellucid.attr import SplitIntegratedGradients
from pellucid.cli import main
from pellucid.metrics import pixel_mask


def _additive(n_in: int = 10, bias: float = 0.5):
    torch.manual_seed(0)
    model = nn.Linear(n_in, 1)
    with torch.no_grad():
        model.bias.fill_(bias)
    return model


def test_keep_drop_curves_additive_closed_form():
    model = _additive()
    x = torch.rand(3, 10) + 0.1
    a = x * model.weight[0].detach()  # exact IG of an additive model from a zero baseline
    before = model_state(model)
    c = keep_drop_curves(model, x, a, target=0, fractions=(0.1, 0.3, 0.5, 0.9))
    assert_same_state(before, model_state(model))
    order = a.argsort(1, descending=True)
    top = torch.gather(a, 1, order).cumsum(1).double()
    total = a.sum(1).double()
    ks = [1, 3, 5, 9]
    torch.testing.assert_close(c.keep, 0.5 + top[:, [k - 1 for k in ks]], atol=1e-5, rtol=0)
    torch.testing.assert_close(c.drop, 0.5 + total[:, None] - top[:, [k - 1 for k in ks]], atol=1e-5, rtol=0)
    torch.testing.assert_close(c.full, 0.5 + total, atol=1e-5, rtol=0)
    torch.testing.assert_close(c.base, torch.full((3,), 0.5, dtype=torch.float64), atol=1e-6, rtol=0)
    keep_n = (top[:, [k - 1 for k in ks]] / total[:, None]).clamp(0, 1)
    drop_n = (1 - top[:, [k - 1 for k in ks]] / total[:, None]).clamp(0, 1)
    torch.testing.assert_close(c.keep_normalised, keep_n, atol=1e-5, rtol=0)
    torch.testing.assert_close(c.faithfulness, keep_n.mean(1) - drop_n.mean(1), atol=1e-5, rtol=0)


def test_keep_drop_curves_groups_and_baselines():
    model = _additive(bias=0.0)
    x = torch.rand(2, 10)
    base = torch.full((1, 10), 0.25)
    mask = (torch.arange(10) // 2).reshape(1, 10)  # five pairs of features
    a = (x - base) * model.weight[0].detach()
    c = keep_drop_curves(model, x, a, 0, fractions=(0.2, 0.6), baselines=base, feature_mask=mask)
    pairs = a.reshape(2, 5, 2).sum(-1)
    top = pairs.sort(1, descending=True).values.cumsum(1).double()
    f_base = float(model(base)[0, 0].detach())
    torch.testing.assert_close(c.keep, f_base + top[:, [0, 2]], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="fractions"):
        keep_drop_curves(model, x, a, 0, fractions=(0.0, 0.5))


def test_keep_drop_curves_channel_summed_map_broadcasts_over_channels():
    """A map (N, 1, H, W) for images (N, 3, H, W) with per-pixel groups ranks pixels by the map: on a linear model
    with the exact channel-summed IG map m, keeping the top-k pixels gives bias + (sum of the k largest m).
    A map that does not broadcast to the input is a ValueError naming attributions."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 1))
    with torch.no_grad():
        model[1].bias.fill_(0.5)
    x = torch.rand(2, 3, 4, 4)
    m = (x * model[1].weight.detach().reshape(1, 3, 4, 4)).sum(1, keepdim=True)  # (2, 1, 4, 4)
    c = keep_drop_curves(model, x, m, 0, fractions=(0.25, 0.5), feature_mask=pixel_mask(x.shape[1:]))
    top = m.reshape(2, 16).sort(1, descending=True).values.cumsum(1).double()
    torch.testing.assert_close(c.keep, 0.5 + top[:, [3, 7]], atol=1e-5, rtol=0)
    torch.testing.assert_close(c.drop, 0.5 + top[:, [15]] - top[:, [3, 7]], atol=1e-5, rtol=0)
    for bad in (torch.rand(2, 2, 4, 4), torch.rand(2, 4, 4), torch.rand(2, 1, 1, 4, 4)):
        with pytest.raises(ValueError, match="attributions"):
            keep_drop_curves(model, x, bad, 0)


def test_saturation_profile_and_split_agree():
    class Saturating(nn.Module):
        def forward(self, x):
            return torch.tanh(3 * x.sum(1, keepdim=True))

    x = torch.rand(4, 5) + 0.2
    left, d = SplitIntegratedGradients(Saturating()).attribute(x, target=0, n_steps=40, return_split=True)
    prof = saturation_profile(d)
    # the split is the first step whose normalised output exceeds psi = 0.9
    first = (prof > 0.9).double().argmax(1)
    torch.testing.assert_close(d.split_alpha, d.alphas[first])
    torch.testing.assert_close(prof[:, -1], torch.ones(4, dtype=torch.float64))
    # a linear model does not saturate: the profile is the path fraction itself
    lin = _additive(5)
    _, dl = SplitIntegratedGradients(lin).attribute(x, target=0, n_steps=10, return_split=True)
    torch.testing.assert_close(saturation_profile(dl), dl.alphas.expand(4, -1).double(), atol=1e-5, rtol=0)


def test_norm_ratio():
    r = norm_ratio(torch.tensor([[3.0, 4.0], [0.0, 1.0]]), torch.tensor([[0.0, 5.0], [2.0, 0.0]]))
    torch.testing.assert_close(r, torch.tensor([1.0, 0.5], dtype=torch.float64))


def test_study_split_ig_fast(tmp_path):
    out = tmp_path / "sig"
    assert main(["study", "split-ig", "--fast", "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["study"] == "split-ig" and s["fast"] is True
    assert s["paper"]["faithfulness"] == {"left": 0.295, "IG": 0.237, "right": 0.077}
    cnn = s["models"]["CNN"]
    assert set(cnn["methods"]) == {"left", "IG", "right"}
    for m in cnn["methods"].values():
        assert {"faithfulness", "keep_mean", "drop_mean", "sensitivity_max", "keep_curve", "drop_curve"} <= set(m)
        assert len(m["keep_curve"]) == 9
    assert 0 < cnn["split_alpha"]["median"] <= 1 and len(cnn["split_alpha"]["values"]) == cnn["n_examples"]
    assert "norm_ratio_right_over_left" in cnn and "paper_order_reproduces" in cnn
    assert (out / "index.html").exists() and (out / "split_ig_cnn.png").exists()
