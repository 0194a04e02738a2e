"""DeepLIFT's fused rules (multiplier computed once in the forward, derivative only where ``|x - x0| < eps``, max
pooling on a channels-last copy, baseline winners skipped when no window has a rest) against the unfused
definitions written out elementwise, for every function in ``ELEMENTWISE``, in-place variants included."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pellucid.attr import DeepLift
from pellucid.attr.deeplift import ELEMENTWISE, LOG_SOFTMAX, SOFTMAX, _pool_with_indices, _winner_backward

from deeplift_reference import reference_pool_backward

EPS = 1e-10


def call(func, t):
    """``func`` applied to ``t`` as a model would call it (softmax over the last dim; in-place variants on ``t``)."""
    if func in SOFTMAX or func in LOG_SOFTMAX:
        return func(t, dim=-1) if func in (F.softmax, F.log_softmax) else func(t, -1)
    return func(t)


def is_inplace(func):
    name = getattr(func, "__name__", "")
    return name.endswith("_") and not name.endswith("__")


def out_of_place(func, inplace_kw):
    """The map ``func`` computes, never writing its argument (for the reference formula)."""
    if is_inplace(func):
        return lambda t: call(func, t.clone())
    if inplace_kw:
        return lambda t: func(t.clone(), inplace=True)
    return lambda t: call(func, t)


def derivative(func, f, x):
    """dy_i/dx_i: autograd of the elementwise map; the Jacobian's diagonal for softmax and log-softmax."""
    if func in SOFTMAX:
        p = torch.softmax(x, -1)
        return p * (1 - p)
    if func in LOG_SOFTMAX:
        return 1 - torch.softmax(x, -1)
    t = x.clone().requires_grad_(True)
    (d,) = torch.autograd.grad(f(t).sum(), t)
    return d


class Act(nn.Module):
    """``sum_k w_k f(h)_k`` over the last dim: multipliers to the input are ``w * m`` for the rescale multiplier m."""

    def __init__(self, func, inplace_kw, w):
        super().__init__()
        self.func, self.inplace_kw, self.w = func, inplace_kw, w

    def forward(self, t):
        h = t * 1.0  # a non-leaf the in-place variants may write
        r = self.func(h, inplace=True) if self.inplace_kw else call(self.func, h)
        return (r * self.w).sum((-1, -2))


def pairs():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 10, generator=g, dtype=torch.float64)
    x0 = torch.randn(4, 3, 10, generator=g, dtype=torch.float64)
    x0[:, 0, :3] = x[:, 0, :3]  # dx = 0: 0/0 or c/0, the derivative is used
    x0[:, 1, 3:5] = x[:, 1, 3:5] + 1e-12  # 0 < |dx| < eps
    x0[0, 2] = x[0, 2]  # a whole row at the fallback; rows [1:, 2] have none
    w = torch.randn(3, 10, generator=g, dtype=torch.float64)
    return x, x0, w


CASES = [(f, False) for f in ELEMENTWISE] + [(f, True) for f, pos in ELEMENTWISE.items() if pos is not None]


@pytest.mark.parametrize("func,inplace_kw", CASES, ids=[f"{getattr(f, '__qualname__', f)}{'-inplace' if i else ''}"
                                                        for f, i in CASES])
def test_rescale_multipliers_equal_the_unfused_formula(func, inplace_kw):
    x, x0, w = pairs()
    f = out_of_place(func, inplace_kw)
    dx = x - x0
    want = torch.where(dx.abs() < EPS, derivative(func, f, x), (f(x) - f(x0)) / dx) * w
    model = Act(func, inplace_kw, w).eval()
    got = DeepLift(model, multiply_by_inputs=False).attribute(x, baselines=x0)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
    # one baseline row shared by all examples: references recorded on one row and broadcast
    got1 = DeepLift(model, multiply_by_inputs=False).attribute(x, baselines=x0[:1])
    dx1 = x - x0[:1]
    want1 = torch.where(dx1.abs() < EPS, derivative(func, f, x), (f(x) - f(x0[:1])) / dx1) * w
    torch.testing.assert_close(got1, want1, rtol=1e-9, atol=1e-12)


def test_multiplier_on_an_input_without_gradient_is_not_needed():
    """A nonlinearity on a tensor that does not depend on the inputs (a gate computed from a constant) runs
    plainly and the attributions still sum to the output difference."""

    class Gated(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(5, 5)
            self.gate = nn.Parameter(torch.randn(5), requires_grad=False)

        def forward(self, t):
            return (torch.sigmoid(self.gate) * torch.tanh(self.lin(t))).sum(1)

    torch.manual_seed(0)
    model = Gated().eval()
    x, b = torch.randn(6, 5, dtype=torch.float64), torch.randn(6, 5, dtype=torch.float64)
    model = model.double()
    attr, delta = DeepLift(model).attribute(x, b, return_convergence_delta=True)
    assert delta.abs().max() < 1e-10


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("channels", [3, 8, 16])
def test_pool_with_indices_equals_max_pool(dtype, channels):
    """The channels-last path (8 channels or more, CPU) gives max pooling's values and winners exactly, ties
    (zeros after ReLU, rounded values) and NaN included, for every window form."""
    g = torch.Generator().manual_seed(1)
    x = torch.relu(torch.randn(3, channels, 11, 12, generator=g, dtype=dtype))
    x[1] = x[1].round()  # many ties
    x[2, 0, 4, 5] = float("nan")
    for kw in [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=3, stride=1),
               dict(kernel_size=2, stride=2, dilation=2, ceil_mode=True), dict(kernel_size=(2, 3), stride=(1, 2))]:
        y, idx = F.max_pool2d(x, return_indices=True, **kw)
        k = kw["kernel_size"]
        positional = (x, k, kw.get("stride", k), kw.get("padding", 0), kw.get("dilation", 1),
                      kw.get("ceil_mode", False))
        for func, args, kwargs in [(F.max_pool2d, (x,), kw), (torch.max_pool2d, positional, {})]:
            y2, idx2, _, wants = _pool_with_indices(func, args, kwargs)
            assert torch.equal(y2.nan_to_num(-1.0), y.nan_to_num(-1.0)) and torch.equal(idx2, idx)
            assert y2.is_contiguous() and idx2.is_contiguous() and not wants


@pytest.mark.parametrize("shift", ["below", "mixed"])
def test_pool_rule_with_and_without_baseline_winners(shift):
    """Baselines below the inputs everywhere (no window has a rest for the baseline's winner: skipped) and
    mixed, with ties of x and x0 at winners, equal the definition."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64)
    if shift == "below":
        x0 = x - 0.5 - torch.rand(x.shape, generator=g, dtype=torch.float64)
    else:
        x0 = torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64)
        x0[:, :, ::2] = x[:, :, ::2]
    for kernel, stride in [(2, 2), (3, 1)]:
        y, ix = F.max_pool2d(x, kernel, stride, return_indices=True)
        y0, i0 = F.max_pool2d(x0, kernel, stride, return_indices=True)
        dy = torch.randn(y.shape, generator=g, dtype=torch.float64)
        flat = lambda t: t.reshape(t.shape[0], t.shape[1], -1)  # noqa: E731
        got = _winner_backward(x, x0, y, y0, ix, i0, EPS, True, flat, 2)(dy)
        torch.testing.assert_close(got, reference_pool_backward(x, x0, dy, kernel, stride), rtol=1e-9, atol=1e-12)


def test_cnn_channels_last_pool_sums_to_delta_and_matches_the_plain_pool():
    """A CNN whose pools take the channels-last path (16 channels): attributions sum to the output difference
    and equal those with the fast path switched off (a pool below its channel threshold)."""
    import pellucid.attr.deeplift as dl

    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 16, 3),
                          nn.ReLU(inplace=True), nn.MaxPool2d(2, padding=1), nn.Flatten(), nn.LazyLinear(4)).eval()
    x = torch.randn(5, 3, 12, 12)
    model(x)
    attr, delta = DeepLift(model).attribute(x, target=1, return_convergence_delta=True)
    scale = (model(x)[:, 1] - model(torch.zeros(1, 3, 12, 12))[:, 1]).abs().max()
    assert delta.abs().max() < 1e-4 * scale
    old = dl._CHANNELS_LAST_MIN_CHANNELS
    try:
        dl._CHANNELS_LAST_MIN_CHANNELS = 10**9
        plain = DeepLift(model).attribute(x, target=1)
    finally:
        dl._CHANNELS_LAST_MIN_CHANNELS = old
    assert torch.equal(attr, plain)
