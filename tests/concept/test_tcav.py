"""TCAV from first principles: with a linear head the directional derivative is the head row . CAV."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from pellucid.concept import TCAV, Concept, DefaultClassifier, tcav_significance


class _Net(nn.Module):
    """x -> hidden (identity linear map) -> ReLU-free head: the gradient at ``hidden`` is the head row."""

    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(4, 4)
        self.head = nn.Linear(4, 2)
        with torch.no_grad():
            self.hidden.weight.copy_(torch.eye(4))
            self.hidden.bias.zero_()
            self.head.weight.copy_(torch.tensor([[2.0, 0.5, 0.0, 0.0], [-1.0, 0.0, 1.0, 0.0]]))

    def forward(self, x):
        return self.head(self.hidden(x))


def _concept(id_, name, shift, n=80, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g) + shift
    return Concept(id_, name, DataLoader(TensorDataset(x), batch_size=16))


@pytest.fixture()
def setup():
    model = _Net()
    along = _concept(0, "along-e0", torch.tensor([3.0, 0, 0, 0]))
    rand = _concept(1, "random", torch.zeros(4), seed=1)
    inputs = torch.randn(10, 4, generator=torch.Generator().manual_seed(2))
    return model, along, rand, inputs


def test_scores_follow_the_head_row_along_the_cav(setup):
    model, along, rand, inputs = setup
    tcav = TCAV(model, ["hidden"])
    scores = tcav.interpret(inputs, [[along, rand]], target=0)
    cav = tcav.cavs["0-1"]["hidden"].stats
    assert cav["accs"] > 0.9
    w = cav["weights"][cav["classes"].index(0)]
    assert w[0] > 0 and w[0].abs() > w[1:].abs().max()  # the CAV points along e0
    s = scores["0-1"]["hidden"]
    torch.testing.assert_close(s["sign_count"], torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(s["magnitude"][0], model.head.weight[0].detach() @ w)
    s1 = tcav.interpret(inputs, [[along, rand]], target=1)["0-1"]["hidden"]
    torch.testing.assert_close(s1["sign_count"], torch.tensor([0.0, 1.0]))  # head row 1 has -1 on e0


def test_concept_order_layers_and_sets(setup):
    model, along, rand, inputs = setup
    third = _concept(2, "along-e2", torch.tensor([0, 0, 3.0, 0]), seed=3)
    tcav = TCAV(model, ["hidden", "head"])
    scores = tcav.interpret(inputs, [[along, rand], [rand, along], [along, rand, third]], target=1)
    a, b = scores["0-1"]["hidden"], scores["1-0"]["hidden"]
    torch.testing.assert_close(a["sign_count"], b["sign_count"].flip(0))
    three = scores["0-1-2"]["hidden"]["sign_count"]
    assert three.shape == (3,) and three[2] == 1.0  # head row 1 has +1 on e2
    single = TCAV(model, "hidden").interpret(inputs, [[along, rand]], target=1)["0-1"]["hidden"]
    torch.testing.assert_close(single["magnitude"], a["magnitude"])


def test_cavs_are_saved_and_reloaded(setup, tmp_path):
    model, along, rand, inputs = setup
    first = TCAV(model, ["hidden"], save_path=str(tmp_path), model_id="net").interpret(inputs, [[along, rand]], target=0)
    no_data = [Concept(0, "along-e0", None), Concept(1, "random", None)]
    again = TCAV(model, ["hidden"], save_path=str(tmp_path), model_id="net").interpret(inputs, [no_data], target=0)
    torch.testing.assert_close(again["0-1"]["hidden"]["magnitude"], first["0-1"]["hidden"]["magnitude"])


def test_model_is_unchanged_and_bad_arguments_are_named(setup):
    model, along, rand, inputs = setup
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    TCAV(model, ["hidden"]).interpret(inputs, [[along, rand]], target=0)
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="layers"):
        TCAV(model, ["nope"])
    with pytest.raises(TypeError, match="experimental set"):
        TCAV(model, ["hidden"]).interpret(inputs, [[along]], target=0)


def test_default_classifier_separates_and_significance_test():
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(50, 3, generator=g) + 2, torch.randn(50, 3, generator=g) - 2])
    y = torch.cat([torch.zeros(50), torch.ones(50)]).long()
    clf = DefaultClassifier()
    stats = clf.train_and_eval(DataLoader(TensorDataset(x, y), batch_size=32))
    assert stats["accs"] > 0.95 and clf.weights().shape == (2, 3) and clf.classes() == [0, 1]
    torch.testing.assert_close(clf.weights()[0], -clf.weights()[1])
    high = tcav_significance([0.9, 0.95, 0.92, 0.97, 0.91], [0.5, 0.45, 0.55, 0.52, 0.48])
    assert high["significant"] and high["p_value"] < 1e-4
    same = tcav_significance([0.5, 0.52, 0.47, 0.55], [0.51, 0.49, 0.53, 0.48])
    assert not same["significant"]
