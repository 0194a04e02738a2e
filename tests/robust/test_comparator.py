"""AttackComparator and MinParamPerturbation: summaries from first principles, closed-form minimal parameters."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from pellucid.robust import FGSM, AttackComparator, MinParamPerturbation


def _accuracy(out, targets):
    return (out.argmax(dim=1) == targets).float()


@pytest.fixture()
def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 12), nn.Tanh(), nn.Linear(12, 3))


def test_identity_attack_equals_original_and_batching_does_not_change_results(model):
    x, y = torch.randn(8, 5), torch.randint(0, 3, (8,))
    results = []
    for ppe in (1, 2, 5):
        comp = AttackComparator(model, lambda out, targets, target=None: _accuracy(out, targets))
        comp.add_attack(lambda inp: inp, "identity")
        comp.add_attack(FGSM(model), "fgsm", attack_kwargs={"epsilon": 0.3}, additional_attack_arg_names=["target"])
        r = comp.evaluate(x, perturbations_per_eval=ppe, targets=y, target=y)
        torch.testing.assert_close(r["identity"]["mean"], r["Original"])
        torch.testing.assert_close(r["Original"], _accuracy(model(x), y))
        results.append(r)
    for r in results[1:]:
        torch.testing.assert_close(r["fgsm"]["mean"], results[0]["fgsm"]["mean"])
    assert results[0]["fgsm"]["mean"].sum() <= results[0]["Original"].sum()


def test_attempts_give_min_mean_max_and_summary_averages_batches(model):
    gen = torch.Generator().manual_seed(0)
    noise = lambda inp: inp + torch.randn(inp.shape, generator=gen)
    comp = AttackComparator(model, lambda out: out.softmax(dim=1)[:, 0])
    comp.add_attack(noise, "noise", num_attempts=4)
    batches = [torch.randn(6, 5), torch.randn(6, 5)]
    per_batch = [comp.evaluate(b) for b in batches]
    for r in per_batch:
        assert set(r["noise"]) == {"mean", "min", "max"}
        assert bool((r["noise"]["min"] <= r["noise"]["mean"] + 1e-6).all())
        assert bool((r["noise"]["mean"] <= r["noise"]["max"] + 1e-6).all())
    summary = comp.summary()
    assert set(summary) == {"Original", "noise Mean Attempt", "noise Min Attempt", "noise Max Attempt"}
    expected = torch.stack([r["Original"].mean() for r in per_batch]).mean()
    torch.testing.assert_close(summary["Original"]["mean"], expected)
    comp.reset()
    assert comp.summary() == {}


def test_duplicate_attack_names_are_refused(model):
    comp = AttackComparator(model, _accuracy)
    comp.add_attack(lambda x: x, "a")
    with pytest.raises(ValueError, match="name"):
        comp.add_attack(lambda x: x, "a")


@pytest.mark.parametrize("mode", ["linear", "binary"])
def test_min_param_is_the_closed_form_flip_point(mode):
    """Shifting x by eps along -(w_y - w_o)/||w_y - w_o|| lowers the margin m by eps ||w_y - w_o||: the
    prediction flips at the first grid value eps with eps ||dw|| > m."""
    torch.manual_seed(1)
    model = nn.Linear(4, 2)
    x = torch.randn(1, 4)
    y = int(model(x).argmax())
    w, b = model.weight.detach(), model.bias.detach()
    dw = w[y] - w[1 - y]
    margin = float(x[0] @ dw + b[y] - b[1 - y])
    unit = dw / dw.norm()
    shift = lambda inp, eps: inp - eps * unit
    step = 0.01
    search = MinParamPerturbation(model, shift, "eps", 0.0, 10.0, step, mode=mode)
    adv, eps = search.evaluate(x, target=[y])
    k = 0
    while (k * step) * float(dw.norm()) <= margin:
        k += 1
    assert eps == pytest.approx(k * step)
    assert int(model(adv).argmax()) != y
    none = MinParamPerturbation(model, shift, "eps", 0.0, 0.5 * margin / float(dw.norm()), step / 10, mode=mode)
    assert none.evaluate(x, target=[y]) == (None, None)


def test_min_param_batches_perturbations():
    torch.manual_seed(2)
    model = nn.Linear(4, 3)
    x = torch.randn(2, 4)
    y = model(x).argmax(dim=1)
    gauss = lambda inp, std: inp + std * torch.ones_like(inp)
    a = MinParamPerturbation(model, gauss, "std", 0.0, 5.0, 0.05).evaluate(x, target=y)
    b = MinParamPerturbation(model, gauss, "std", 0.0, 5.0, 0.05).evaluate(x, target=y, perturbations_per_eval=7)
    assert a[1] == pytest.approx(b[1])
