"""DataLoaderAttribution (Captum's contract): ablation of a dataset-level metric, checked against per-example
feature ablation, closed forms of linear models, metrics recomputed by hand on ablated data, and invariances."""
import ast
import pathlib

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from conftest import assert_same_state, model_state
import pellucid.attr
import pellucid.jobs
from pellucid.attr import FeatureAblation, Saliency
from pellucid.jobs import DataLoaderAttribution, InputRole


def data(n=11, d=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.rand(n, generator=g) + 0.5, torch.randint(0, 3, (n,), generator=g)


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).eval()


def summed(acc, out, inputs):
    s = out.sum(0)
    return s if acc is None else acc + s


def test_default_reduce_equals_per_example_feature_ablation_of_every_output():
    """With the default reduce the metric is every output of every example (N*C values); ablating position j in all
    examples changes output (n, c) only through example n, so row n*C + c is FeatureAblation of example n, target c."""
    x, _, _ = data()
    model = mlp()
    got = DataLoaderAttribution(FeatureAblation(model)).attribute(DataLoader(TensorDataset(x), batch_size=4))
    assert isinstance(got, tuple) and got[0].shape == (11 * 3, 4)
    per_example = torch.stack([FeatureAblation(model).attribute(x, target=c) for c in range(3)], 1)  # (N, C, 4)
    torch.testing.assert_close(got[0], per_example.reshape(33, 4), rtol=1e-5, atol=1e-6)


def test_linear_model_sum_metric_closed_form_with_baselines_and_groups():
    """metric = sum over examples of the outputs of x @ W.T + b; ablating group G to baseline z changes output c by
    sum_n sum_{j in G} W[c, j] (x_nj - z_j)."""
    x, _, _ = data()
    torch.manual_seed(3)
    model = nn.Linear(4, 3)
    z = torch.tensor([[0.5, -1.0, 0.2, 0.1]])
    mask = torch.tensor([[0, 0, 7, 7]])
    dla = DataLoaderAttribution(FeatureAblation(model))
    got = dla.attribute(DataLoader(TensorDataset(x), batch_size=3), baselines=z, feature_mask=mask, reduce=summed)[0]
    w = model.weight.detach()
    contrib = (w.unsqueeze(0) * (x - z).unsqueeze(1)).sum(0)  # (C, 4)
    group = torch.stack([contrib[:, :2].sum(1), contrib[:, 2:].sum(1)], 1)  # (C, 2)
    expected = group[:, [0, 0, 1, 1]]
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    flat = dla.attribute(DataLoader(TensorDataset(x), batch_size=3), baselines=z, feature_mask=mask, reduce=summed,
                         return_input_shape=False)
    assert flat.shape == (3, 8)  # columns: feature ids 0..max id, absent ids 0
    torch.testing.assert_close(flat[:, [0, 7]], group, rtol=1e-5, atol=1e-5)
    assert (flat[:, 1:7] == 0).all()


class Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = mlp()

    def forward(self, x, scale):
        return self.net(x) * scale.unsqueeze(1)


def accuracy(acc, out, inputs):
    correct = (out.argmax(1) == inputs[2]).sum().reshape(1).float()
    return correct if acc is None else acc + correct


def test_roles_accuracy_metric_recomputed_by_hand():
    """Roles (attributed x, forwarded scale, label not forwarded): the number of correct predictions, with each
    feature set to the baseline 1.0 in every example, recomputed directly."""
    x, s, y = data(n=13)
    model = Scaled()
    before = model_state(model)
    loader = DataLoader(TensorDataset(x, s, y), batch_size=5)
    got = DataLoaderAttribution(FeatureAblation(model)).attribute(
        loader, input_roles=(InputRole.need_attr, InputRole.need_forward, InputRole.no_forward), baselines=1.0,
        reduce=accuracy, to_metric=lambda a: a / 13)
    assert_same_state(before, model_state(model))
    with torch.no_grad():
        full = (model(x, s).argmax(1) == y).float().mean()
        expected = []
        for j in range(4):
            xa = x.clone()
            xa[:, j] = 1.0
            expected.append(full - (model(xa, s).argmax(1) == y).float().mean())
    torch.testing.assert_close(got[0], torch.stack(expected).reshape(1, 4))


def test_invariant_to_perturbations_per_pass_and_loader_batch_size():
    x, _, _ = data(n=17)
    model = mlp()
    dla = DataLoaderAttribution(FeatureAblation(model))
    ref = dla.attribute(DataLoader(TensorDataset(x), batch_size=17), reduce=summed, to_metric=lambda a: a.max())[0]
    for bs, ppp in ((1, 1), (4, 2), (6, 3), (17, 100)):
        got = dla.attribute(DataLoader(TensorDataset(x), batch_size=bs), reduce=summed, to_metric=lambda a: a.max(),
                            perturbations_per_pass=ppp, show_progress=ppp == 2)[0]
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


def test_several_attributed_inputs_with_a_group_spanning_both():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(9, 4, generator=g), torch.randn(9, 2, generator=g)
    torch.manual_seed(1)
    la, lb = nn.Linear(4, 2), nn.Linear(2, 2)

    def f(x1, x2):
        return la(x1) + lb(x2)

    masks = (torch.tensor([[0, 1, 1, 2]]), torch.tensor([[2, 3]]))  # group 2 spans both inputs
    got = DataLoaderAttribution(FeatureAblation(f)).attribute(DataLoader(TensorDataset(a, b), batch_size=4),
                                                              feature_mask=masks, reduce=summed)
    assert got[0].shape == (2, 4) and got[1].shape == (2, 2)
    with torch.no_grad():
        full = f(a, b).sum(0)
        a2, b2 = a.clone(), b.clone()
        a2[:, 3], b2[:, 0] = 0, 0
        g2 = full - f(a2, b2).sum(0)
    torch.testing.assert_close(got[0][:, 3], g2, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got[1][:, 0], g2, rtol=1e-5, atol=1e-5)


def test_errors_name_the_argument():
    x, _, y = data()
    loader = DataLoader(TensorDataset(x, y), batch_size=4)
    dla = DataLoaderAttribution(FeatureAblation(mlp()))
    with pytest.raises(TypeError, match="FeatureAblation"):
        DataLoaderAttribution(Saliency(mlp()))
    with pytest.raises(ValueError, match="input_roles has 1 entries but the dataloader yields 2"):
        dla.attribute(loader, input_roles=(0,))
    with pytest.raises(ValueError, match="at least one element as need_attr"):
        dla.attribute(loader, input_roles=(1, 2))
    with pytest.raises(ValueError, match=r"baselines\[0\] has batch dim 3"):
        dla.attribute(DataLoader(TensorDataset(x), batch_size=3), baselines=torch.zeros(3, 4))
    with pytest.raises(ValueError, match=r"feature_mask\[0\] has batch dim 4"):
        dla.attribute(DataLoader(TensorDataset(x), batch_size=4), feature_mask=torch.zeros(4, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="must be a Tensor"):
        dla.attribute(DataLoader(TensorDataset(x), batch_size=4), reduce=summed, to_metric=lambda a: float(a.sum()))
    with pytest.raises(ValueError, match="perturbations_per_pass"):
        dla.attribute(DataLoader(TensorDataset(x), batch_size=4), perturbations_per_pass=0)


def test_exported_lazily_from_attr_without_an_import_of_jobs():
    assert pellucid.attr.DataLoaderAttribution is pellucid.jobs.DataLoaderAttribution
    assert pellucid.attr.InputRole is InputRole
    attr_dir = pathlib.Path(pellucid.attr.__file__).parent
    for path in attr_dir.rglob("*.py"):
        for node in ast.parse(path.read_text()).body:  # module level only
            if isinstance(node, ast.ImportFrom):
                assert "jobs" not in (node.module or ""), f"{path.name} imports pellucid.jobs at import time"
