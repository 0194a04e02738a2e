"""Backward rules hooked on a pass's autograd graph (pellucid.core.graph_rules), as guided backprop and
deconvolution use them: every ReLU form is reached, hooks never outlive the pass, and a model that plain autograd
rejects is rejected the same way (no silently different gradient)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pellucid.attr import Deconvolution, GuidedBackprop, Saliency
from pellucid.core.graph_rules import GraphRules, graph_nodes


def test_graph_nodes_finds_every_relu_form_once():
    x = torch.randn(3, 4, requires_grad=True)
    y = F.relu(x) + torch.relu(x * 2) + (x * 3).relu() + F.relu(x * 4, inplace=True) + nn.ReLU(inplace=True)(x * 5)
    shared = F.relu(x - 1)
    z = (y + shared + shared).sum()
    nodes = graph_nodes((z,), {"ReluBackward0"})
    assert len(nodes) == 6 and len({id(n) for n in nodes}) == 6


def test_rules_change_only_their_pass_and_are_removed():
    w = torch.randn(4, requires_grad=True)
    cached = F.relu(w)  # a graph that outlives the attribution pass
    rules = GraphRules(post={"ReluBackward0": lambda gi, go: (torch.full_like(go[0], 7.0),)})
    handles = rules.apply(((cached * 2).sum(),))
    (g,) = torch.autograd.grad((cached * 2).sum(), w, retain_graph=True)
    assert torch.equal(g, torch.full_like(w, 7.0))
    for h in handles:
        h.remove()
    (g,) = torch.autograd.grad((cached * 2).sum(), w)
    assert torch.equal(g, 2.0 * (w > 0).float())


class TanhThenInplaceRelu(nn.Module):
    """Plain autograd rejects this model: ReLU(inplace) overwrites the output that Tanh saved for its backward."""

    def __init__(self):
        super().__init__()
        self.fc, self.act, self.relu, self.out = nn.Linear(4, 5), nn.Tanh(), nn.ReLU(inplace=True), nn.Linear(5, 2)

    def forward(self, x):
        return self.out(self.relu(self.act(self.fc(x))))


@pytest.mark.parametrize("cls", [Saliency, GuidedBackprop, Deconvolution])
def test_model_rejected_by_autograd_is_rejected_not_answered(cls):
    torch.manual_seed(0)
    model = TanhThenInplaceRelu().eval()
    x = torch.randn(3, 4)
    xs = x.clone().requires_grad_()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        torch.autograd.grad(model(xs)[:, 0].sum(), xs)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for _ in range(2):  # the first call measures memory (saved-tensor hooks), the second does not
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            cls(model).attribute(x, target=0)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("guided", [True, False])
def test_rule_equals_its_formula_on_a_two_relu_network(guided):
    torch.manual_seed(1)
    l1, l2, l3 = nn.Linear(6, 8), nn.Linear(8, 8), nn.Linear(8, 3)
    model = nn.Sequential(l1, nn.ReLU(), l2, nn.ReLU(), l3).eval()
    x = torch.randn(5, 6)
    with torch.no_grad():
        a1 = l1(x)
        a2 = l2(F.relu(a1))
    g = l3.weight[1].expand(5, 8)
    if guided:
        g = g.clamp(min=0) * (a2 > 0)
        g = (g @ l2.weight).clamp(min=0) * (a1 > 0)
    else:
        g = (g.clamp(min=0) @ l2.weight).clamp(min=0)
    expected = g @ l1.weight
    got = (GuidedBackprop if guided else Deconvolution)(model).attribute(x, target=1)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
