"""ModelGuard restores modes, requires_grad and hooks, on success and on error."""
import pytest
import torch
from torch import nn

from conftest import SmallCNN, assert_same_state, model_state
from pellucid.core.guard import ModelGuard, model_device


def mixed_model():
    torch.manual_seed(0)
    m = SmallCNN()
    m.train()
    m.conv1.eval()
    m.fc1.weight.requires_grad_(False)
    return m


def test_freezes_inside_and_restores_after():
    m = mixed_model()
    before = model_state(m)
    with ModelGuard(m) as g:
        assert not any(p.requires_grad for p in m.parameters())
        m.eval()
        g.add_handle(m.conv1.register_forward_hook(lambda *a: None))
        g.add_handle(m.fc2.register_forward_pre_hook(lambda *a: None))
    assert_same_state(before, model_state(m))


def test_restores_after_exception():
    m = mixed_model()
    before = model_state(m)
    with pytest.raises(KeyError):
        with ModelGuard(m) as g:
            g.add_handle(m.relu.register_forward_hook(lambda *a: None))
            m.train(False)
            m.conv2.weight.requires_grad_(True)
            raise KeyError("boom")
    assert_same_state(before, model_state(m))


def test_no_freeze_option_and_plain_callables():
    m = mixed_model()
    with ModelGuard(m, freeze_parameters=False):
        assert m.fc2.weight.requires_grad and not m.fc1.weight.requires_grad
    with ModelGuard(lambda x: x):  # any callable: nothing to record
        pass


def test_model_device():
    assert model_device(nn.Linear(2, 2)) == torch.device("cpu")
    assert model_device(nn.ReLU(), default=None) is None
    assert model_device(lambda x: x, torch.device("cpu")) == torch.device("cpu")


def test_buffers_restored():
    m = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).train()
    before = model_state(m)
    with ModelGuard(m):
        m(torch.randn(8, 3))  # updates running statistics in place
        assert not torch.equal(m[1].running_mean, before["buffers"]["1.running_mean"])
    assert_same_state(before, model_state(m))
