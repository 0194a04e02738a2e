"""DeepLIFT's rescale and max-pool multipliers, computed per group (gathered at the winners), against the
definition written out position by position, including the fallback where ``|x - x0| < eps``."""
import torch
import torch.nn.functional as F

from pellucid.attr import DeepLift
from pellucid.attr.deeplift import _winner_backward


def reference_pool_backward(x, x0, g, kernel, stride):
    """Definition, input-sized: every window's dy * (max(y, y0) - y0) goes to x's winner and dy * (y - max(y, y0))
    to x0's winner; each position divides what it received by its x - x0, or, where |x - x0| < eps, takes the
    plain max-pool gradient instead."""
    y, ix = F.max_pool2d(x, kernel, stride, return_indices=True)
    y0, i0 = F.max_pool2d(x0, kernel, stride, return_indices=True)
    cross = torch.maximum(y, y0)
    flat = lambda t: t.reshape(t.shape[0], t.shape[1], -1)  # noqa: E731
    num = torch.zeros_like(flat(x))
    num.scatter_add_(2, flat(ix), flat(g * (cross - y0))).scatter_add_(2, flat(i0), flat(g * (y - cross)))
    plain = torch.zeros_like(flat(x)).scatter_add_(2, flat(ix), flat(g))
    dx = flat(x - x0)
    small = dx.abs() < 1e-10
    return torch.where(small, plain, num / torch.where(small, torch.ones_like(dx), dx)).reshape(x.shape)


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
