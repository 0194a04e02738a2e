"""LIME and the torch-native surrogate models (weighted least squares, ridge, lasso) solved for a whole batch."""
import pytest
import torch

from conftest import assert_same_state, model_state
from pellucid.attr import Lasso, Lime, LinearRegression, Ridge
from pellucid.attr.lime import bernoulli_sampler, exp_cosine_similarity


def test_linear_model_recovers_group_contributions(linear):
    torch.manual_seed(0)
    x, b = torch.randn(3, 6), torch.randn(1, 6)
    mask = torch.tensor([[0, 0, 1, 1, 2, 3]])
    attr = Lime(linear).attribute(x, baselines=b, target=2, feature_mask=mask, n_samples=40, seed=0)
    contrib = ((x - b) * linear.fc.weight[2]).detach()
    per_group = torch.stack([contrib[:, :2].sum(1)] * 2 + [contrib[:, 2:4].sum(1)] * 2 + [contrib[:, 4], contrib[:, 5]], 1)
    torch.testing.assert_close(attr, per_group, rtol=1e-4, atol=1e-5)
    all_out = Lime(linear).attribute(x, baselines=b, feature_mask=mask, n_samples=40, seed=0)
    assert all_out.shape == (3, 3, 6)
    torch.testing.assert_close(all_out[:, 2], attr, rtol=1e-4, atol=1e-5)


def test_pluggable_parts_and_default_kernel():
    seen = {}

    def sampler(n, s, g, generator):
        seen["sampler"] = (n, s, g)
        return bernoulli_sampler(0.3)(n, s, g, generator)

    def similarity(original, perturbed, z):
        seen["similarity"] = z.shape[1]
        return torch.ones(z.shape[0])

    model = lambda x: x[:, 0] * x[:, 1] + x[:, 2]  # noqa: E731
    x = torch.randn(2, 3)
    out = Lime(model, Ridge(alpha=0.0), similarity, sampler).attribute(x, n_samples=30, seed=1)
    assert seen == {"sampler": (2, 30, 3), "similarity": 3} and out.shape == (2, 3)
    # default kernel: weight 1 at the input, exp(-1/2) at a perturbation orthogonal to it (cosine distance 1 is
    # one kernel width: a Gaussian exp(-d^2 / (2 width^2)))
    k = exp_cosine_similarity()
    a = (torch.tensor([[1.0, 0.0], [1.0, 0.0]]),)
    w = k(a, (torch.tensor([[2.0, 0.0], [0.0, 3.0]]),), torch.zeros(2, 1))
    torch.testing.assert_close(w, torch.tensor([1.0, torch.exp(torch.tensor(-0.5)).item()], dtype=torch.float64))


@pytest.mark.parametrize("width", [0.25, 1.0, 3.0])
def test_exp_kernel_is_a_gaussian_in_cosine_distance_with_std_equal_to_the_width(width):
    # perturbations at angle t from the input have cosine distance d = 1 - cos t; the weight must be the Gaussian
    # density ratio exp(-d^2 / (2 width^2)): its log is -d^2 / (2 width^2), and d = width gives exp(-1/2)
    t = torch.linspace(0, torch.pi, 9, dtype=torch.float64)
    original = (torch.tensor([[1.0, 0.0]], dtype=torch.float64).expand(9, 2),)
    perturbed = (torch.stack([torch.cos(t), torch.sin(t)], 1) * 2.5,)
    w = exp_cosine_similarity(width)(original, perturbed, torch.zeros(9, 1))
    d = 1 - torch.cos(t)
    torch.testing.assert_close(torch.log(w), -(d**2) / (2 * width**2))
    cos_at_width = torch.tensor([[1 - width, (1 - (1 - width) ** 2) ** 0.5]], dtype=torch.float64) if width < 2 else None
    if cos_at_width is not None:
        at = exp_cosine_similarity(width)((original[0][:1],), (cos_at_width,), torch.zeros(1, 1))
        torch.testing.assert_close(at, torch.tensor([0.5], dtype=torch.float64).neg().exp())


def test_default_lime_weights_rows_by_the_kernel_and_draws_25_samples():
    seen = {}

    class Recording(LinearRegression):
        def fit(self, X, y, weights):
            seen["X"], seen["weights"] = X, weights
            return super().fit(X, y, weights)

    torch.manual_seed(0)
    x = torch.randn(2, 4) + 2
    Lime(lambda t: t.sum(1), interpretable_model=Recording()).attribute(x, seed=3)  # baselines 0
    z = seen["X"]
    assert z.shape == (2, 25, 4)  # Captum's default n_samples for Lime.attribute
    perturbed = x.unsqueeze(1) * z  # kept groups keep their value, the others take the baseline 0
    cos = torch.nn.functional.cosine_similarity(x.unsqueeze(1).double(), perturbed.double(), dim=2)
    expect = torch.exp(-((1 - cos) ** 2) / 2)
    expect = torch.where(z.any(2), expect, torch.exp(torch.tensor(-0.5, dtype=torch.float64)))  # all-zero row: d = 1
    torch.testing.assert_close(seen["weights"], expect)


@pytest.mark.parametrize("kw", [{"batch_size": 1}, {"perturbations_per_eval": 7}])
def test_seed_and_chunking_invariance(cnn, kw):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    mask = torch.arange(16).reshape(1, 1, 4, 4).repeat_interleave(8, 2).repeat_interleave(8, 3)
    ref = Lime(cnn).attribute(x, target=5, feature_mask=mask, n_samples=30, seed=2)
    out = Lime(cnn).attribute(x, target=5, feature_mask=mask, n_samples=30, seed=2, **kw)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    coef = Lime(cnn).attribute(x, target=5, feature_mask=mask, n_samples=30, seed=2, return_input_shape=False)
    assert coef.shape == (2, 16)
    torch.testing.assert_close(coef[:, 5], ref[:, 0, 8, 8], rtol=1e-4, atol=1e-5)


def _problem(n=3, s=40, g=5, k=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, s, g, generator=gen, dtype=torch.float64)
    y = torch.randn(n, s, k, generator=gen, dtype=torch.float64)
    w = torch.rand(n, s, generator=gen, dtype=torch.float64) + 0.1
    return X, y, w


def test_weighted_least_squares_matches_normal_equations_and_recovers_exact_fits():
    X, y, w = _problem()
    coef, c = LinearRegression().fit(X, y, w)
    for e in range(3):
        A = torch.cat([X[e], torch.ones(40, 1, dtype=torch.float64)], 1)
        sol = torch.linalg.solve(A.T @ (w[e, :, None] * A), A.T @ (w[e, :, None] * y[e]))
        torch.testing.assert_close(coef[e], sol[:5].T)
        torch.testing.assert_close(c[e], sol[5])
    beta = torch.randn(3, 2, 5, dtype=torch.float64)
    exact, c0 = LinearRegression().fit(X, torch.einsum("nsg,nkg->nsk", X, beta) + 4.0, w)
    torch.testing.assert_close(exact, beta)
    torch.testing.assert_close(c0, torch.full((3, 2), 4.0, dtype=torch.float64))


def test_under_determined_least_squares_is_minimum_norm_interpolant():
    X, y, w = _problem(s=3, g=6)
    coef, _ = LinearRegression(fit_intercept=False).fit(X, y, w)
    torch.testing.assert_close(torch.einsum("nsg,nkg->nsk", X, coef), y)  # interpolates
    for e in range(3):  # and lies in the row space of X (minimum norm)
        proj = X[e].T @ torch.linalg.pinv(X[e].T)
        torch.testing.assert_close(proj @ coef[e].T, coef[e].T)


def test_ridge_closed_form():
    X, y, w = _problem()
    coef, c = Ridge(alpha=2.5).fit(X, y, w)
    for e in range(3):
        W = w[e, :, None]
        xm, ym = (W * X[e]).sum(0) / W.sum(), (W * y[e]).sum(0) / W.sum()
        Xc, yc = X[e] - xm, y[e] - ym
        sol = torch.linalg.solve(Xc.T @ (W * Xc) + 2.5 * torch.eye(5, dtype=torch.float64), Xc.T @ (W * yc))
        torch.testing.assert_close(coef[e], sol.T)
        torch.testing.assert_close(c[e], ym - xm @ sol)


def test_lasso_satisfies_kkt_conditions():
    X, y, w = _problem(s=60, g=8)
    alpha = 0.05
    coef, c = Lasso(alpha=alpha).fit(X, y, w)
    assert (coef == 0).any() and (coef != 0).any()
    for e in range(3):
        resid = y[e] - X[e] @ coef[e].T - c[e]
        W = w[e, :, None]
        torch.testing.assert_close((W * resid).sum(0), torch.zeros(2, dtype=torch.float64), atol=1e-8, rtol=0)  # intercept
        grad = X[e].T @ (W * resid) / w[e].sum()  # (G, K)
        nz = coef[e].T != 0
        torch.testing.assert_close(grad[nz], alpha * coef[e].T.sign()[nz], atol=1e-6, rtol=0)
        assert bool((grad[~nz].abs() <= alpha + 1e-6).all())


def test_batched_fit_equals_one_example_at_a_time():
    X, y, w = _problem()
    for model in (LinearRegression(), Ridge(0.7), Lasso(0.02)):
        coef, c = model.fit(X, y, w)
        for e in range(3):
            ce, ie = model.fit(X[e : e + 1], y[e : e + 1], w[e : e + 1])
            torch.testing.assert_close(ce[0], coef[e], atol=1e-7, rtol=1e-6)
            torch.testing.assert_close(ie[0], c[e], atol=1e-7, rtol=1e-6)


def test_errors_and_model_state(cnn):
    before = model_state(cnn)
    x = torch.randn(1, 3, 32, 32)
    mask = torch.zeros(1, 1, 32, 32, dtype=torch.long)
    bad = Lime(cnn, perturb_func=lambda n, s, g, gen: torch.ones(n, s))
    with pytest.raises(ValueError, match="perturb_func"):
        bad.attribute(x, target=0, feature_mask=mask)
    with pytest.raises(TypeError, match="interpretable_model"):
        Lime(cnn, interpretable_model=object())
    with pytest.raises(ValueError, match="alpha"):
        Ridge(alpha=-1)
    with pytest.raises(ValueError, match="weights"):
        LinearRegression().fit(torch.zeros(1, 3, 2), torch.zeros(1, 3), -torch.ones(1, 3))
    assert_same_state(before, model_state(cnn))
