"""Small models shared by the test suite, and a helper that checks a model is left exactly as it was."""
from __future__ import annotations


import pytest
import torch
import torch.nn.functional as F
from torch import nn

# the suite's models are tiny: one thread avoids two threads contending for CI's 2 cores
torch.set_num_threads(1)


class LinearModel(nn.Module):
    """F(x) = x @ W.T + b; closed forms: IG = DeepLift = (x - x') * w_t, Saliency = |w_t|."""

    def __init__(self, n_in: int = 6, n_out: int = 3):
        super().__init__()
        self.fc = nn.Linear(n_in, n_out)

    def forward(self, x):
        return self.fc(x)


class SmallCNN(nn.Module):
    """3x32x32 -> 10 classes: conv-ReLU-maxpool twice (one ReLU module reused, one functional), linear head."""

    def __init__(self, channels: int = 3, n_classes: int = 10, size: int = 32):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 8, 3, padding=1)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc1 = nn.Linear(16 * (size // 4) ** 2, 32)
        self.fc2 = nn.Linear(32, n_classes)

    def forward(self, x):
        x = self.pool(self.relu(self.conv1(x)))
        x = F.max_pool2d(torch.relu(self.conv2(x)), 2)
        x = self.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)


class MultiInputModel(nn.Module):
    """forward(x1, x2, scale, *, offset=None): two inputs, an extra positional and a keyword argument."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 5)
        self.b = nn.Linear(3, 5)
        self.head = nn.Linear(5, 2)

    def forward(self, x1, x2, scale, offset=None):
        h = torch.tanh(self.a(x1)) + F.relu(self.b(x2))
        h = h * scale.reshape(-1, 1) if torch.is_tensor(scale) else h * scale
        if offset is not None:
            h = h + offset
        return self.head(h)


class TinyTransformer(nn.Module):
    """Token ids -> embeddings -> one encoder layer -> mean pool -> classes. ``forward_embeds`` takes embeddings."""

    def __init__(self, vocab: int = 100, dim: int = 16, n_classes: int = 2, length: int = 64):
        super().__init__()
        self.embedding = nn.Embedding(vocab, dim)
        self.position = nn.Parameter(torch.randn(1, length, dim) * 0.02)
        self.encoder = nn.TransformerEncoderLayer(dim, 2, 32, dropout=0.0, batch_first=True)
        self.head = nn.Linear(dim, n_classes)

    def forward_embeds(self, emb, attention_mask=None):
        h = emb + self.position[:, : emb.shape[1]]
        pad = None if attention_mask is None else attention_mask == 0
        h = self.encoder(h, src_key_padding_mask=pad)
        return self.head(h.mean(1))

    def forward(self, ids, attention_mask=None):
        return self.forward_embeds(self.embedding(ids), attention_mask)


def model_state(model: nn.Module) -> dict:
    """Everything a method must restore: parameters, buffers, modes, requires_grad, hooks."""
    return {
        "params": {k: v.detach().clone() for k, v in model.named_parameters()},
        "buffers": {k: v.detach().clone() for k, v in model.named_buffers()},
        "training": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "hooks": [
            (len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks),
             len(getattr(m, "_backward_pre_hooks", {})))
            for m in model.modules()
        ],
        "attrs": [sorted(vars(m).keys()) for m in model.modules()],
    }


def assert_same_state(before: dict, after: dict) -> None:
    assert before["training"] == after["training"]
    assert before["requires_grad"] == after["requires_grad"]
    assert before["hooks"] == after["hooks"]
    assert before["attrs"] == after["attrs"]
    for k in before["params"]:
        assert torch.equal(before["params"][k], after["params"][k]), k
    for k in before["buffers"]:
        assert torch.equal(before["buffers"][k], after["buffers"][k]), k


@pytest.fixture
def cnn():
    torch.manual_seed(0)
    return SmallCNN().eval()


@pytest.fixture
def linear():
    torch.manual_seed(0)
    return LinearModel().eval()


@pytest.fixture
def multi_input():
    torch.manual_seed(0)
    return MultiInputModel().eval()


@pytest.fixture
def transformer():
    torch.manual_seed(0)
    return TinyTransformer().eval()
