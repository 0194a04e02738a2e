"""Input-agnostic saliency: closed form on a linear model, determinism, concentration and IoU by hand."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from pellucid.analysis.agnostic import backdoor_scan, class_saliency, concentration, saliency_iou


def _linear(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(2 * 4 * 4, 2))


def test_plain_steps_follow_the_class_weight_difference_on_a_linear_model():
    """CE gradient toward t on a 2-class linear model is -(1 - p_t)(w_t - w_o) for every sample: normalised
    steps accumulate exactly along w_t - w_o until the ball's surface."""
    model = _linear()
    res = class_saliency(model, 1, (2, 4, 4), iterations=40, batch_size=8, refine_steps=0, optimizer="sgd",
                         radius=0.01, lr=0.001)  # a small ball: the input clamp to [0, 1] rarely acts
    w = model[1].weight.detach()
    d = (w[1] - w[0]).reshape(2, 4, 4)
    cos = torch.nn.functional.cosine_similarity(res.perturbation.flatten(), d.flatten(), dim=0)
    assert cos > 0.999
    assert res.stats["perturbation_norm"] <= res.stats["radius"] + 1e-4


def test_adam_accumulation_keeps_the_sign_of_the_weight_difference():
    model = _linear(1)
    res = class_saliency(model, 0, (2, 4, 4), iterations=60, batch_size=8, refine_steps=0, optimizer="adam")
    w = model[1].weight.detach()
    d = (w[0] - w[1]).reshape(2, 4, 4)
    assert (torch.sign(res.perturbation) == torch.sign(d)).float().mean() > 0.95


def test_determinism_and_model_state():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveMaxPool2d(1), nn.Flatten(),
                          nn.Linear(4, 3))
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    a = class_saliency(model, 2, (3, 8, 8), iterations=5, batch_size=4, refine_steps=3, seed=3)
    b = class_saliency(model, 2, (3, 8, 8), iterations=5, batch_size=4, refine_steps=3, seed=3)
    torch.testing.assert_close(a.perturbation, b.perturbation)
    torch.testing.assert_close(a.map, b.map)
    assert a.map.min() >= 0 and a.map.max() <= 1 and a.saliency.shape == (8, 8)
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="target"):
        class_saliency(model, 7, (3, 8, 8), iterations=1)
    with pytest.raises(ValueError, match="norm"):
        class_saliency(model, 0, (3, 8, 8), norm="l1")


def test_concentration_and_iou_by_hand():
    s = torch.zeros(8, 8)
    s[5:7, 5:7] = 1.0
    score, (top, left) = concentration(s, 2)
    assert (top, left) == (5, 5) and score == pytest.approx(16.0)  # all mass in 4 of 64 pixels
    assert concentration(torch.ones(8, 8), 2)[0] == pytest.approx(1.0)
    mask = torch.zeros(8, 8, dtype=torch.bool)
    mask[5:7, 5:8] = True  # 6 pixels: the 4 salient ones and 2 more
    assert saliency_iou(s + 0.01 * torch.arange(64.).reshape(8, 8) / 64, mask) == pytest.approx(4 / 8)


def test_translated_iou_finds_the_shape_anywhere():
    s = torch.zeros(8, 8)
    s[1:3, 1:3] = 1.0
    mask = torch.zeros(8, 8, dtype=torch.bool)
    mask[5:7, 5:7] = True
    assert saliency_iou(s, mask) == 0.0
    assert saliency_iou(s, mask, translate=True) == pytest.approx(1.0)


def _conv():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveMaxPool2d(1), nn.Flatten(),
                         nn.Linear(4, 3))


def test_an_input_shape_the_model_does_not_take_names_input_shape():
    """The first forward on (1, *input_shape) fails inside the model: a ValueError naming input_shape, with the
    model's exception kept as the cause; the model is left as it came."""
    model = _conv().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"input_shape \(8,\)") as info:
        class_saliency(model, 0, (8,), iterations=1)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    for bad in [8, "3x8x8", (3, 0, 8), (3, 8.5, 8), ()]:
        with pytest.raises((TypeError, ValueError), match="input_shape"):
            class_saliency(model, 0, bad, iterations=1)


def test_backdoor_scan_checks_classes_and_window_before_any_work():
    model = _conv()
    for bad in [[], (), "01", [0, -1], [0, 1.0], None]:
        with pytest.raises(ValueError, match="classes"):
            backdoor_scan(model, bad, (3, 8, 8), iterations=1)
    for bad in [0, 9, 2.5]:
        with pytest.raises(ValueError, match="window"):
            backdoor_scan(model, [0], (3, 8, 8), window=bad, iterations=1)
    scan = backdoor_scan(model, [2, 0], (3, 8, 8), window=3, iterations=2, batch_size=4, refine_steps=1)
    assert sorted(scan.ranking) == [0, 2]
