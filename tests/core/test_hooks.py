"""LayerTap and FunctionRules: capture, replace, leaf, hook removal, rules undone on exit."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pellucid.core.hooks import FunctionRules, LayerTap, is_inplace_call, override_grad


def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))


def n_hooks(m):
    return sum(len(x._forward_hooks) + len(x._forward_pre_hooks) for x in m.modules())


def test_capture_output_and_input():
    m = net()
    x = torch.randn(5, 3)
    with LayerTap(m[1]) as out_tap, LayerTap(m[1], attribute_to_input=True) as in_tap:
        y = m(x)
        assert n_hooks(m) == 2
    assert n_hooks(m) == 0
    assert torch.allclose(in_tap.value, m[0](x))
    assert torch.allclose(out_tap.value, torch.tanh(m[0](x)))
    assert torch.allclose(y, m(x))


def test_replace_output_and_input():
    m = net()
    x = torch.randn(5, 3)
    h = torch.randn(5, 4)
    with LayerTap(m[1], replace=h):
        y = m(x)
    assert torch.allclose(y, m[2](h))
    with LayerTap(m[1], replace=lambda v: v * 0):
        y = m(x)
    assert torch.allclose(y, m[2](torch.zeros(5, 4)))
    with LayerTap(m[1], attribute_to_input=True, replace=h):
        y = m(x)
    assert torch.allclose(y, m[2](torch.tanh(h)))


def test_leaf_cuts_graph_and_gives_layer_gradients():
    m = net()
    x = torch.randn(5, 3, requires_grad=True)
    with LayerTap(m[1], leaf=True) as tap:
        y = m(x)
    a = tap.value
    assert a.is_leaf and a.requires_grad
    (g,) = torch.autograd.grad(y[:, 0].sum(), a)
    assert torch.allclose(g, m[2].weight[0].expand(5, 4))
    assert torch.autograd.grad(y[:, 0].sum(), x, allow_unused=True)[0] is None  # upstream is cut


def test_reused_layer_and_uncalled_layer():
    relu = nn.ReLU()
    with LayerTap(relu) as tap:
        relu(relu(torch.randn(2, 2)))
    assert len(tap.values) == 2
    with pytest.raises(RuntimeError, match="called 2 times"):
        tap.value
    with LayerTap(nn.ReLU()) as tap2:
        pass
    with pytest.raises(RuntimeError, match="was not called"):
        tap2.value
    with pytest.raises(TypeError, match="layer must be a torch.nn.Module"):
        LayerTap(F.relu)


def test_hook_removed_after_exception():
    m = net()
    with pytest.raises(ValueError):
        with LayerTap(m[0]):
            raise ValueError
    assert n_hooks(m) == 0


def test_override_grad():
    x = torch.randn(4, requires_grad=True)
    y = override_grad(x, x.detach() ** 2, lambda g: g * 7)
    assert torch.allclose(y, x.detach() ** 2)
    (g,) = torch.autograd.grad(y.sum(), x)
    assert torch.allclose(g, torch.full((4,), 7.0))
    z = torch.randn(3)
    v = z * 2
    assert override_grad(z, v, lambda g: g) is v  # nothing to differentiate: value returned as is


def test_is_inplace_call():
    x = torch.randn(2)
    assert is_inplace_call(torch.relu_, (x,), {})
    assert is_inplace_call(F.relu, (x,), {"inplace": True})
    assert is_inplace_call(F.leaky_relu, (x, 0.1, True), {}, 2)
    assert not is_inplace_call(F.leaky_relu, (x, 0.1), {}, 2)
    assert not is_inplace_call(torch.Tensor.__add__, (x, x), {})


def _double_backward_relu(func, args, kwargs):
    x = args[0]
    return override_grad(x, torch.relu(x.detach()), lambda g: 2 * g)


@pytest.mark.parametrize("call", [F.relu, torch.relu, lambda t: t.relu(), nn.ReLU()])
def test_function_rules_see_every_form_and_remove_themselves(call):
    rules = {F.relu: _double_backward_relu, torch.relu: _double_backward_relu, torch.Tensor.relu: _double_backward_relu}
    x = torch.tensor([1.0, -1.0, 3.0], requires_grad=True)
    with FunctionRules(rules):
        (g,) = torch.autograd.grad(call(x).sum(), x)
    assert torch.equal(g, torch.tensor([2.0, 2.0, 2.0]))
    (g,) = torch.autograd.grad(call(x).sum(), x)  # rules gone
    assert torch.equal(g, torch.tensor([1.0, 0.0, 1.0]))


def test_function_rules_forbidden_and_exit_on_error():
    depth = torch._C._len_torch_function_stack()
    with pytest.raises(ValueError, match="no amax here"):
        with FunctionRules({}, {torch.amax: "no amax here"}):
            torch.amax(torch.randn(2, 2), 1)
    assert torch._C._len_torch_function_stack() == depth
    torch.amax(torch.randn(2, 2), 1)  # allowed again


class TwoArgs(nn.Module):
    def forward(self, a, b):
        return a * b


def test_multi_argument_input_capture_replace_and_leaf():
    mod = TwoArgs()
    a, b = torch.randn(2, 3), torch.randn(2, 3)
    with LayerTap(mod, attribute_to_input=True) as tap:
        mod(a, b)
    assert isinstance(tap.value, tuple) and torch.equal(tap.value[0], a) and torch.equal(tap.value[1], b)
    with LayerTap(mod, attribute_to_input=True, replace=(b, b)):
        assert torch.equal(mod(a, b), b * b)
    with LayerTap(mod, attribute_to_input=True, leaf=True) as tap:
        out = mod(a, b)
    la, lb = tap.value
    assert la.is_leaf and la.requires_grad and lb.requires_grad
    ga, gb = torch.autograd.grad(out.sum(), (la, lb))
    assert torch.equal(ga, b) and torch.equal(gb, a)
    assert n_hooks(mod) == 0
    ids = torch.tensor([[1, 2]])
    with LayerTap(mod, attribute_to_input=True, leaf=True) as tap:  # integer tensors cannot be leaves: kept
        mod(ids, ids)
    assert tap.value[0] is ids and not tap.value[0].requires_grad
