"""TracIn against closed forms (linear least squares), agreement between variants, invariances, model state."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from pellucid.influence import TracInCP, TracInCPFast, TracInCPFastRandProj


def _checkpoints(model: nn.Module, tmp_path, n: int = 3, lrs=(0.5, 0.25, 0.1)):
    """Save ``n`` perturbed copies of the model's weights with learning rates; return their paths."""
    paths = []
    g = torch.Generator().manual_seed(0)
    original = {k: v.clone() for k, v in model.state_dict().items()}
    for i in range(n):
        state = {k: v + 0.3 * torch.randn(v.shape, generator=g) for k, v in original.items()}
        path = tmp_path / f"ckpt{i}.pt"
        torch.save({"model_state_dict": state, "learning_rate": lrs[i]}, path)
        paths.append(str(path))
    return paths


@pytest.fixture()
def regression(tmp_path):
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    x, y = torch.randn(10, 3), torch.randn(10, 1)
    return model, TensorDataset(x, y), _checkpoints(model, tmp_path), x, y


def test_tracin_equals_the_closed_form_for_least_squares(regression):
    """L = (w.x + b - y)^2: grad = 2 r [x, 1] with r the residual, so TracIn = sum_c lr_c 4 r r' (x.x' + 1)."""
    model, data, ckpts, x, y = regression
    tracin = TracInCP(model, data, ckpts, loss_fn=nn.MSELoss(reduction="sum"), batch_size=4)
    xt, yt = torch.randn(4, 3), torch.randn(4, 1)
    scores = tracin.influence((xt, yt))
    expected = torch.zeros(4, 10)
    for path in ckpts:
        ck = torch.load(path)
        w, b = ck["model_state_dict"]["weight"], ck["model_state_dict"]["bias"]
        r_test, r_train = (xt @ w.T + b - yt)[:, 0], (x @ w.T + b - y)[:, 0]
        expected += ck["learning_rate"] * 4 * r_test[:, None] * r_train[None, :] * (xt @ x.T + 1)
    torch.testing.assert_close(scores, expected, rtol=1e-4, atol=1e-5)
    self_inf = tracin.self_influence()
    torch.testing.assert_close(self_inf, tracin.influence((x, y)).diagonal(), rtol=1e-4, atol=1e-5)


def test_the_model_is_restored_after_loading_checkpoints(regression):
    model, data, ckpts, x, y = regression
    model.weight.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    TracInCP(model, data, ckpts, loss_fn=nn.MSELoss(reduction="sum")).influence((x[:2], y[:2]))
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    assert not model.weight.requires_grad and model.bias.requires_grad


class _MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(5, 8), nn.Tanh())
        self.fc = nn.Linear(8, 3, bias=False)

    def forward(self, x):
        return self.fc(self.body(x))


@pytest.fixture()
def classifier(tmp_path):
    torch.manual_seed(1)
    model = _MLP()
    x, y = torch.randn(12, 5), torch.randint(0, 3, (12,))
    return model, TensorDataset(x, y), _checkpoints(model, tmp_path), x, y


def test_fast_variant_equals_tracin_on_the_final_layer(classifier):
    """With a bias-free last layer, the outer-product identity must give TracInCP restricted to that layer."""
    model, data, ckpts, x, y = classifier
    loss = nn.CrossEntropyLoss(reduction="sum")
    xt, yt = torch.randn(3, 5), torch.randint(0, 3, (3,))
    full = TracInCP(model, data, ckpts, layers=["fc"], loss_fn=loss, batch_size=5).influence((xt, yt))
    fast = TracInCPFast(model, model.fc, data, ckpts, loss_fn=loss, batch_size=5).influence((xt, yt))
    torch.testing.assert_close(fast, full, rtol=1e-4, atol=1e-5)
    proj = TracInCPFastRandProj(model, "fc", data, ckpts, loss_fn=loss, batch_size=5)
    torch.testing.assert_close(proj.influence((xt, yt)), full, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(proj.self_influence(), TracInCPFast(model, model.fc, data, ckpts, loss_fn=loss)
                               .self_influence(), rtol=1e-4, atol=1e-5)


def test_random_projection_preserves_scores_approximately_and_reproducibly(classifier):
    model, data, ckpts, x, y = classifier
    loss = nn.CrossEntropyLoss(reduction="sum")
    exact = TracInCPFast(model, "fc", data, ckpts, loss_fn=loss).influence((x, y))
    a = TracInCPFastRandProj(model, "fc", data, ckpts, loss_fn=loss, projection_dim=16, seed=3)
    b = TracInCPFastRandProj(model, "fc", data, ckpts, loss_fn=loss, projection_dim=16, seed=3)
    assert a.train_embeddings.shape[1] <= 16 * len(ckpts)
    sa = a.influence((x, y))
    torch.testing.assert_close(sa, b.influence((x, y)))
    corr = torch.corrcoef(torch.stack([sa.flatten(), exact.flatten()]))[0, 1]
    assert corr > 0.8


def test_top_k_batch_size_reduction_and_fallback_invariance(classifier):
    model, data, ckpts, x, y = classifier
    xt, yt = x[:4], y[:4]
    ref = TracInCP(model, data, ckpts, loss_fn=nn.CrossEntropyLoss(reduction="sum"), batch_size=1)
    scores = ref.influence((xt, yt))
    for other in (TracInCP(model, DataLoader(data, batch_size=7), ckpts, loss_fn=nn.CrossEntropyLoss(reduction="sum")),
                  TracInCP(model, data, ckpts, loss_fn=nn.CrossEntropyLoss(reduction="mean"), batch_size=5),
                  TracInCP(model, data, ckpts, loss_fn=nn.CrossEntropyLoss(reduction="none"), batch_size=3)):
        torch.testing.assert_close(other.influence((xt, yt)), scores, rtol=1e-4, atol=1e-5)
    loop = TracInCP(model, data, ckpts, loss_fn=nn.CrossEntropyLoss(reduction="sum"), batch_size=4)
    loop._vectorised = False
    torch.testing.assert_close(loop.influence((xt, yt)), scores, rtol=1e-4, atol=1e-5)
    props = ref.influence((xt, yt), k=3)
    torch.testing.assert_close(props.indices, scores.argsort(dim=1, descending=True)[:, :3])
    opps = ref.influence((xt, yt), k=2, proponents=False)
    torch.testing.assert_close(opps.influence_scores, scores.sort(dim=1).values[:, :2])


def test_bad_arguments_are_named(classifier, tmp_path):
    model, data, ckpts, x, y = classifier
    with pytest.raises(ValueError, match="checkpoints"):
        TracInCP(model, data, [])
    with pytest.raises(ValueError, match="final_fc_layer"):
        TracInCPFast(model, "nope", data, ckpts)
    with pytest.raises(ValueError, match="k"):
        TracInCP(model, data, ckpts, loss_fn=nn.CrossEntropyLoss()).influence((x, y), k=100)
    with pytest.raises(TypeError, match="inputs"):
        TracInCP(model, data, ckpts).influence(x)


def test_self_influence_ranks_flipped_labels_first(tmp_path):
    """Pruthi et al. sec. 4.1: mislabelled examples keep large loss gradients, so they top the self-influence."""
    g = torch.Generator().manual_seed(0)
    n = 200
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 2, generator=g) + 2.5 * (2 * y[:, None].float() - 1)
    flipped = torch.zeros(n, dtype=torch.bool)
    flipped[torch.randperm(n, generator=g)[:20]] = True
    y_noisy = torch.where(flipped, 1 - y, y)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    paths = []
    for epoch in range(6):
        for _ in range(10):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y_noisy).backward()
            opt.step()
        path = tmp_path / f"e{epoch}.pt"
        torch.save({"model_state_dict": model.state_dict(), "learning_rate": 0.1}, path)
        paths.append(str(path))
    data = TensorDataset(x, y_noisy)
    scores = TracInCPFast(model, model[2], data, paths, loss_fn=nn.CrossEntropyLoss(reduction="sum"),
                          batch_size=64).self_influence()
    top = scores.argsort(descending=True)[:20]
    assert flipped[top].float().mean() >= 0.8  # random ranking: 0.1
