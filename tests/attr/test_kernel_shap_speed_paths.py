"""The fast paths of Kernel SHAP and LIME compute the same estimators as the direct definitions:

* one regression row per complementary pair (paired sampling) gives the constrained least-squares solution of all
  rows (checked against the KKT system of Lundberg & Lee's constrained regression);
* the weighted least squares (LAPACK gelsd on the CPU) is the minimum-norm solution (normal equations when
  over-determined, ``A^T (A A^T)^-1 y`` when under-determined, ``pinv`` when rank-deficient);
* coalition rows built from a mask that broadcasts over input dims equal those of the expanded mask.
"""
import pytest
import torch
from torch import nn

from pellucid.attr import FeatureAblation, KernelShap, Lime, ShapleyValueSampling
from pellucid.attr.kernel_shap import merge_complement_pairs, shapley_kernel_samples
from pellucid.attr.surrogate import LinearRegression, efficient_least_squares, weighted_lstsq
from pellucid.core.perturb import format_feature_mask


def kkt_solution(X: torch.Tensor, y: torch.Tensor, w: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
    """argmin_b sum_s w_s (y_s - X_s b)^2 subject to sum(b) = total, by the KKT system (one example, one output):
    [[2 X^T W X, 1], [1^T, 0]] [b; lambda] = [2 X^T W y; total]."""
    g = X.shape[1]
    kkt = torch.zeros(g + 1, g + 1, dtype=torch.float64)
    kkt[:g, :g] = 2 * X.T @ (w[:, None] * X)
    kkt[:g, g] = 1
    kkt[g, :g] = 1
    rhs = torch.cat([2 * X.T @ (w * y), total.reshape(1)])
    return torch.linalg.solve(kkt, rhs)[:g]


@pytest.mark.parametrize("s", [24, 25])
def test_merged_complement_pairs_give_the_constrained_least_squares_of_all_rows(s):
    gen = torch.Generator().manual_seed(0)
    n, g, k = 3, 6, 2
    z = shapley_kernel_samples(n, s, g, gen, antithetic=True)
    y = torch.randn(n, s, k, generator=gen, dtype=torch.float64)
    w = torch.ones(n, s, dtype=torch.float64)
    total = torch.randn(n, k, generator=gen, dtype=torch.float64)
    zm, ym, wm = merge_complement_pairs(z, y, w, total)
    assert zm.shape == (n, (s + 1) // 2, g) and ym.shape == (n, (s + 1) // 2, k)
    merged = efficient_least_squares(zm.double(), ym, wm, total)
    every = efficient_least_squares(z.double(), y, w, total)
    torch.testing.assert_close(merged, every, rtol=1e-9, atol=1e-9)
    for e in range(n):  # over-determined and full rank here: the unique KKT solution
        for j in range(k):
            torch.testing.assert_close(merged[e, j], kkt_solution(z[e].double(), y[e, :, j], w[e], total[e, j]),
                                       rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(merged.sum(-1), total)


def test_merge_leaves_samples_that_are_not_complement_pairs():
    gen = torch.Generator().manual_seed(1)
    z = shapley_kernel_samples(2, 10, 5, gen, antithetic=False)
    y, w, total = torch.randn(2, 10, 1, dtype=torch.float64), torch.ones(2, 10, dtype=torch.float64), torch.zeros(2, 1)
    out = merge_complement_pairs(z, y, w, total)
    assert out[0] is z and out[1] is y and out[2] is w
    zp = shapley_kernel_samples(2, 10, 5, torch.Generator().manual_seed(1), antithetic=True)
    w_unequal = torch.arange(20, dtype=torch.float64).reshape(2, 10) + 1  # pairs of unequal weight: not merged
    assert merge_complement_pairs(zp, y, w_unequal, total)[0] is zp


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.net = nn.Sequential(nn.Linear(8, 12), nn.Tanh(), nn.Linear(12, 2))

    def forward(self, x):
        return self.net(x)


def test_kernel_shap_equals_the_constrained_regression_on_its_own_coalitions():
    """End to end from the definition: the same coalitions (same seed), the model evaluated on the rows they define,
    Lundberg & Lee's regression with sum(phi) = f(x) - f(b) solved by its KKT system."""
    model, x, b = Mlp(), torch.randn(3, 8), torch.randn(1, 8)
    mask = torch.tensor([[0, 0, 1, 2, 2, 3, 4, 5]])
    attr = KernelShap(model).attribute(x, baselines=b, target=1, feature_mask=mask, n_samples=21, seed=7,
                                       return_input_shape=False)
    z = shapley_kernel_samples(3, 21, 6, torch.Generator().manual_seed(7), antithetic=True)
    with torch.no_grad():
        for e in range(3):
            keep = z[e][:, mask[0]]  # (S, 8) positions kept
            rows = torch.where(keep, x[e], b[0])
            y = (model(rows)[:, 1] - model(b)[0, 1]).double()
            total = (model(x[e : e + 1])[0, 1] - model(b)[0, 1]).double()
            phi = kkt_solution(z[e].double(), y, torch.ones(21, dtype=torch.float64), total)
            torch.testing.assert_close(attr[e].double(), phi, rtol=1e-4, atol=1e-5)


def test_weighted_lstsq_is_the_minimum_norm_solution():
    gen = torch.Generator().manual_seed(2)
    w = torch.rand(2, 12, generator=gen, dtype=torch.float64) + 0.1
    tall = torch.randn(2, 12, 4, generator=gen, dtype=torch.float64)  # over-determined, full rank
    y = torch.randn(2, 12, 3, generator=gen, dtype=torch.float64)
    normal = torch.linalg.solve(tall.transpose(1, 2) @ (w[..., None] * tall), tall.transpose(1, 2) @ (w[..., None] * y))
    torch.testing.assert_close(weighted_lstsq(tall, y, w), normal)
    wide = torch.randn(2, 5, 9, generator=gen, dtype=torch.float64)  # under-determined: min-norm interpolant
    yw, ww = y[:, :5], w[:, :5]
    sw = ww.sqrt()[..., None]
    a = wide * sw
    min_norm = a.transpose(1, 2) @ torch.linalg.solve(a @ a.transpose(1, 2), yw * sw)
    torch.testing.assert_close(weighted_lstsq(wide, yw, ww), min_norm)
    deficient = torch.cat([wide, wide[:, :2]], 1)  # repeated rows: rank 5 of 7
    yd, wd = torch.cat([yw, yw[:, :2] + 1.0], 1), torch.cat([ww, ww[:, :2]], 1)
    swd = wd.sqrt()[..., None]
    torch.testing.assert_close(weighted_lstsq(deficient, yd, wd), torch.linalg.pinv(deficient * swd) @ (yd * swd))


def test_linear_regression_isolates_a_non_finite_example_and_recovers_a_linear_model():
    gen = torch.Generator().manual_seed(4)
    X = (torch.rand(3, 30, 5, generator=gen) < 0.5).float()
    coef = torch.randn(3, 5, generator=gen)
    y = (X * coef[:, None]).sum(-1) + 0.5
    y[1, 3] = float("nan")
    c, intercept = LinearRegression().fit(X, y, torch.rand(3, 30, generator=gen) + 0.5)
    assert bool(c[1].isnan().all()) and bool(intercept[1].isnan().all())
    torch.testing.assert_close(c[[0, 2], 0], coef[[0, 2]], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(intercept[[0, 2], 0], torch.full((2,), 0.5), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape,mask", [
    ((2, 3, 8, 8), torch.arange(16).reshape(1, 1, 4, 4).repeat_interleave(2, 2).repeat_interleave(2, 3)),
    ((2, 6, 4), torch.tensor([0, 5, 5, 9, 0, 9]).reshape(1, 6, 1)),  # ids that skip numbers
    ((2, 6, 4), torch.tensor([0.0, 1.0, 1.0, 2.0, 0.0, 2.0]).reshape(6, 1)),  # float ids, no batch dim
    ((2, 6, 4), torch.tensor([[0, 1, 1, 2, 0, 2], [2, 2, 1, 1, 0, 0]]).reshape(2, 6, 1)),  # per example: no compact
])
def test_mask_rows_in_the_mask_shape_equal_the_expanded_mask(shape, mask):
    x = torch.randn(shape)
    fm = format_feature_mask(mask, (x,))
    present = torch.rand(7, fm.n_groups) < 0.5
    ex = torch.tensor([0, 0, 1, 1, 0, 1, 1])
    full = fm.kept(0, present, ex)
    small = fm.kept_rows(0, present, ex)
    assert full.shape == (7,) + shape[1:]
    torch.testing.assert_close(small.expand_as(full), full)
    if mask.shape[0] == 1 and mask.dim() == len(shape):
        assert small.numel() < full.numel()


@pytest.mark.parametrize("method,kw", [(FeatureAblation, {}), (ShapleyValueSampling, {"n_samples": 3, "seed": 0}),
                                       (KernelShap, {"n_samples": 10, "seed": 0}), (Lime, {"n_samples": 12, "seed": 0})])
def test_broadcast_and_expanded_masks_give_the_same_attributions(cnn, method, kw):
    x = torch.randn(2, 3, 32, 32)
    mask = torch.arange(16).reshape(1, 1, 4, 4).repeat_interleave(8, 2).repeat_interleave(8, 3)
    small = method(cnn).attribute(x, target=3, feature_mask=mask, **kw)
    full = method(cnn).attribute(x, target=3, feature_mask=mask.expand(1, 3, 32, 32).clone(), **kw)
    torch.testing.assert_close(small, full)


# -- LIME's exponential kernel from per-group sums --------------------------------------------------------------
def rows_of(xs, bs, fm, z, aggregate=False):
    """The model inputs of coalitions ``z (M, S, G)``, built position by position (``(M * S, ...)`` per input)."""
    out = []
    for i, (x, b) in enumerate(zip(xs, bs)):
        ids = fm.ids[i]
        b = b.expand(x.shape)
        rows = []
        for e in range(z.shape[0]):
            for s in range(z.shape[1]):
                if aggregate:  # the whole batch, one coalition
                    keep = z[e, s][ids[0]].reshape(x.shape[1:])
                    rows.append(torch.where(keep, x, b))
                else:
                    keep = z[e, s][ids[e if ids.shape[0] > 1 else 0]].reshape(x.shape[1:])
                    rows.append(torch.where(keep, x[e], b[e]))
        out.append(torch.stack(rows))
    return tuple(out)


@pytest.mark.parametrize("mode", ["cosine", "euclidean"])
@pytest.mark.parametrize("case", ["image", "two_inputs", "per_example_mask", "integer", "aggregate"])
def test_exp_kernel_from_group_sums_equals_the_kernel_on_the_rows(mode, case):
    from pellucid.attr.lime import exp_kernel_similarity, exp_kernel_weights

    gen = torch.Generator().manual_seed(5)
    if case in ("image", "aggregate"):
        xs = (torch.randn(3, 2, 4, 4, generator=gen),)
        bs = (torch.randn(3, 2, 4, 4, generator=gen) * 0.3,)  # per-example baselines
        masks = torch.arange(4).reshape(1, 1, 2, 2).repeat_interleave(2, 2).repeat_interleave(2, 3)
    elif case == "two_inputs":  # group ids shared by the two inputs: groups span them
        xs = (torch.randn(3, 6, generator=gen), torch.randn(3, 2, 3, generator=gen))
        bs = (torch.zeros(1, 6), torch.full((1, 2, 3), 0.5))
        masks = (torch.tensor([[0, 0, 1, 1, 2, 3]]), torch.tensor([[[3, 4, 4], [0, 1, 4]]]))
    elif case == "per_example_mask":
        xs = (torch.randn(3, 6, generator=gen),)
        bs = (torch.zeros(1, 6),)
        masks = torch.tensor([[0, 0, 1, 1, 2, 2], [2, 1, 0, 2, 1, 0], [0, 1, 2, 0, 1, 2]])
    else:
        xs = (torch.randint(-5, 6, (3, 8), generator=gen),)
        bs = (torch.ones(1, 8, dtype=torch.long),)
        masks = torch.tensor([[0, 1, 1, 2, 2, 2, 3, 0]])
    fm = format_feature_mask(masks, xs)
    m = 1 if case == "aggregate" else 3
    z = torch.rand(m, 7, fm.n_groups, generator=gen) < 0.5
    z[:, 0] = True  # the input itself
    z[:, 1] = False  # the baseline
    fast = exp_kernel_weights(xs, bs, fm, z, mode, 0.75, aggregate=case == "aggregate")
    rows = rows_of(xs, bs, fm, z, aggregate=case == "aggregate")
    if case == "aggregate":
        original = tuple(x.unsqueeze(0).expand((z.shape[1],) + tuple(x.shape)) for x in xs)
    else:
        original = tuple(x.repeat_interleave(z.shape[1], 0) for x in xs)
    slow = exp_kernel_similarity(mode, 0.75)(original, rows, z.reshape(-1, fm.n_groups)).reshape(m, -1)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast[:, 0], torch.ones(m, dtype=torch.float64))  # the input is at distance 0


@pytest.mark.parametrize("mode", ["cosine", "euclidean"])
def test_lime_with_the_group_sum_kernel_equals_lime_with_the_kernel_on_rows(cnn, mode):
    from pellucid.attr.lime import exp_kernel_similarity

    # widths that keep the weights within a few orders of magnitude (the distance of half the 3072 values is ~40):
    # with weights spanning 1e-80 the fit's rank cut-off, not the kernel, decides the coefficients
    kernel = exp_kernel_similarity(mode, 1.0 if mode == "cosine" else 40.0)
    on_rows = lambda original, perturbed, interpretable: kernel(original, perturbed, interpretable)  # noqa: E731
    x, b = torch.randn(2, 3, 32, 32), torch.randn(1, 3, 32, 32) * 0.1
    mask = torch.arange(16).reshape(1, 1, 4, 4).repeat_interleave(8, 2).repeat_interleave(8, 3)
    fast = Lime(cnn, similarity_func=kernel).attribute(x, baselines=b, target=1, feature_mask=mask, n_samples=30, seed=3)
    slow = Lime(cnn, similarity_func=on_rows).attribute(x, baselines=b, target=1, feature_mask=mask, n_samples=30, seed=3)
    torch.testing.assert_close(fast, slow, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("aggregate", [False, True])
def test_exp_kernel_weights_do_not_depend_on_the_summation_blocks(monkeypatch, aggregate):
    import pellucid.attr.lime as lime

    gen = torch.Generator().manual_seed(6)
    x, b = torch.randn(7, 3, 5, 5, generator=gen), torch.randn(7, 3, 5, 5, generator=gen)
    ids = torch.randint(0, 6, (1 if aggregate else 7, 1, 5, 5), generator=gen)
    fm = format_feature_mask(ids, (x,))
    z = torch.rand(1 if aggregate else 7, 9, fm.n_groups, generator=gen) < 0.5
    whole = lime.exp_kernel_weights((x,), (b,), fm, z, "cosine", 1.0, aggregate)
    monkeypatch.setattr(lime, "_SUM_BLOCK", 80)  # one or two examples per step
    torch.testing.assert_close(lime.exp_kernel_weights((x,), (b,), fm, z, "cosine", 1.0, aggregate), whole)
