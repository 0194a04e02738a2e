"""DeepLIFT's rescale and max-pool multipliers, computed per group (gathered at the winners), against the
definition written out position by position, including the fallback where ``|x - x0| < eps``."""
import torch
import torch.nn.functional as F

from pellucid.attr import DeepLift
from pellucid.attr.deeplift import _winner_backward

from deeplift_reference import reference_pool_backward


def test_pool_multipliers_match_definition_with_overlaps_and_ties():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 2, 9, 9, generator=g, dtype=torch.float64)
    x0 = torch.randn(3, 2, 9, 9, generator=g, dtype=torch.float64)
    x0[:, :, ::2] = x[:, :, ::2]  # |x - x0| = 0 on every other row: the fallback at many winners
    for kernel, stride in [(2, 2), (3, 2), (3, 1)]:  # disjoint and overlapping windows
        y, ix = F.max_pool2d(x, kernel, stride, return_indices=True)
        y0, i0 = F.max_pool2d(x0, kernel, stride, return_indices=True)
        dy = torch.randn(y.shape, generator=g, dtype=torch.float64)
        flat = lambda t: t.reshape(t.shape[0], t.shape[1], -1)  # noqa: E731
        got = _winner_backward(x, x0, y, y0, ix, i0, 1e-10, True, flat, 2)(dy)
        want = reference_pool_backward(x, x0, dy, kernel, stride)
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


class ReluNet(torch.nn.Module):
    def forward(self, x):
        return torch.relu(x).sum(1, keepdim=True)


def test_rescale_multipliers_use_the_gradient_where_the_difference_is_tiny():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 50, generator=g, dtype=torch.float64)
    x0 = torch.randn(4, 50, generator=g, dtype=torch.float64)
    x0[:, :20] = x[:, :20]  # dx = 0: the multiplier is relu's gradient there
    x0[:, 20:25] = x[:, 20:25] + 1e-12  # |dx| < eps = 1e-10
    m = DeepLift(ReluNet(), multiply_by_inputs=False).attribute(x, baselines=x0)
    quotient = (torch.relu(x) - torch.relu(x0)) / (x - x0)
    want = torch.where((x - x0).abs() < 1e-10, (x > 0).double(), quotient)
    torch.testing.assert_close(m, want)
    attr = DeepLift(ReluNet()).attribute(x, baselines=x0)  # summation to delta
    torch.testing.assert_close(attr.sum(1), (torch.relu(x) - torch.relu(x0)).sum(1), atol=1e-9, rtol=0)


class PoolNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 3, 3, padding=1)
        self.fc = torch.nn.Linear(3 * 4 * 4, 4)

    def forward(self, x):
        h = F.max_pool2d(torch.relu(self.conv(x)), 2)
        return self.fc(torch.tanh(h).flatten(1))


class BatchInDim1(torch.nn.Module):  # nonlinearity inputs shaped (features, batch, ...)
    def forward(self, x):
        h = torch.sigmoid(x.t().unsqueeze(-1) * torch.arange(1.0, 4.0, dtype=x.dtype))  # (F, N, 3)
        return torch.max(h, dim=2).values.t().sum(1, keepdim=True)


class BatchMerged(torch.nn.Module):  # nonlinearity inputs shaped (N * 3, 2): the batch merged with another dim
    def forward(self, x):
        return F.softplus(x.reshape(-1, 2)).reshape(x.shape[0], -1).sum(1, keepdim=True)


def test_one_shared_baseline_row_equals_a_reference_pass_on_every_row():
    """A batch-1 baseline runs the reference pass on one row (broadcast to the examples); the same baseline given
    as N rows runs it on every row: the attributions and deltas agree, whatever the model's batch layout."""
    g = torch.Generator().manual_seed(2)
    torch.manual_seed(0)
    for model, shape in [(PoolNet(), (5, 2, 8, 8)), (BatchInDim1(), (5, 6)), (BatchMerged(), (5, 6))]:
        x = torch.randn(shape, generator=g, dtype=torch.float64)
        base = torch.randn((1,) + shape[1:], generator=g, dtype=torch.float64)
        model = model.double().eval()
        target = 1 if isinstance(model, PoolNet) else None
        one, d1 = DeepLift(model).attribute(x, base, target=target, return_convergence_delta=True)
        full, d2 = DeepLift(model).attribute(x, base.expand(shape).clone(), target=target, return_convergence_delta=True)
        torch.testing.assert_close(one, full)
        torch.testing.assert_close(d1, d2)
