"""Faithfulness metrics against closed forms on additive and linear models; batching, seeds, model state."""
import numpy as np
import pytest
import torch
from torch import nn

import pellucid.metrics as M
from pellucid.metrics._imputation import noisy_linear_imputation
from conftest import SmallCNN, assert_same_state, model_state


class SumModel(nn.Module):
    """F(x) = sum of all input elements (per example), shape (N,)."""

    def forward(self, x):
        return x.reshape(x.shape[0], -1).sum(1)


class TokenSum(nn.Module):
    """F(ids) = sum_t w[ids_t]: an additive token model (w[0] = 0 is the pad token)."""

    def __init__(self, vocab=20):
        super().__init__()
        self.emb = nn.Embedding(vocab, 1)
        with torch.no_grad():
            self.emb.weight.copy_(torch.arange(vocab, dtype=torch.float32).reshape(-1, 1) * 0.5)

    def forward(self, ids):
        return self.emb(ids).sum((1, 2))


@pytest.fixture
def cnn():
    """A 3x16x16 CNN (the shared one at a quarter of the pixels, to keep the suite fast)."""
    torch.manual_seed(0)
    return SmallCNN(size=16).eval()


def _trapz(y, x):
    return float(((y[1:] + y[:-1]) / 2 * np.diff(x)).sum())


def test_deletion_and_insertion_on_sum_model_match_hand_values():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 7, generator=g) + 0.1
    model = SumModel()
    frac, scores = M.deletion_curve(model, x, x, step_size=1)
    _, ins = M.insertion_curve(model, x, x, baselines=0.0, step_size=1)
    auc = M.deletion_auc(model, x, x, step_size=1)
    for i in range(3):
        v = np.sort(x[i].numpy().astype(np.float64))[::-1]
        expected = v.sum() - np.concatenate([[0], np.cumsum(v)])  # remove the largest first
        assert scores[i].numpy() == pytest.approx(expected, rel=1e-5)
        assert ins[i].numpy() == pytest.approx(np.concatenate([[0], np.cumsum(v)]), rel=1e-5)
        assert auc[i].item() == pytest.approx(_trapz(expected, np.arange(8) / 7), rel=1e-5)
    assert frac.tolist() == pytest.approx([k / 7 for k in range(8)])
    # step size 3 over 7 features: points 0, 3, 6, 7
    frac3, s3 = M.deletion_curve(model, x, x, step_size=3)
    assert frac3.tolist() == pytest.approx([0, 3 / 7, 6 / 7, 1])
    assert torch.allclose(s3, scores[:, [0, 3, 6, 7]])


def test_feature_mask_groups_and_blur_baseline():
    x = torch.rand(2, 3, 4, 4)
    attr = torch.rand(2, 3, 4, 4)
    model = SumModel()
    frac, s = M.deletion_curve(model, x, attr, feature_mask=M.pixel_mask(x.shape), step_size=1)
    assert frac.shape == (17,)
    pix_attr, pix_val = attr.sum(1).reshape(2, -1), x.sum(1).reshape(2, -1)
    for i in range(2):
        order = pix_attr[i].argsort(descending=True)
        expected = pix_val[i].sum() - torch.cat([torch.zeros(1), pix_val[i][order].cumsum(0)])
        assert torch.allclose(s[i].float(), expected, atol=1e-5)
    blurred = M.gaussian_blur(x, 1.0)
    _, sb = M.deletion_curve(model, x, attr, baselines="blur", blur_sigma=1.0, step_size=48)
    assert sb[:, -1].float() == pytest.approx(blurred.reshape(2, -1).sum(1), rel=1e-5)
    # blur preserves a constant image
    assert torch.allclose(M.gaussian_blur(torch.full((1, 2, 5, 5), 3.0), 2.0), torch.full((1, 2, 5, 5), 3.0))


def test_region_perturbation_aopc_on_sum_model():
    x = torch.rand(2, 1, 4, 4) + 0.5
    model = SumModel()
    out = M.region_perturbation(model, x, x, patch_size=2, baselines=0.0)
    for i in range(2):
        patches = x[i, 0].reshape(2, 2, 2, 2).permute(0, 2, 1, 3).reshape(4, 4).sum(1)
        v = patches.sort(descending=True).values.double()
        drops = torch.cat([torch.zeros(1, dtype=torch.float64), v.cumsum(0)])  # F(x) - F(x_k)
        assert out[i].item() == pytest.approx(drops.mean().item(), rel=1e-5)
    a = M.region_perturbation(model, x, x, patch_size=2, seed=3)
    assert torch.equal(a, M.region_perturbation(model, x, x, patch_size=2, seed=3))
    assert not torch.equal(a, M.region_perturbation(model, x, x, patch_size=2, seed=4))


def test_monotonicity_fraction_of_nonnegative_features():
    x = torch.tensor([[0.5, -1.0, 2.0, -0.2, 1.0], [1.0, 2.0, 3.0, 4.0, 5.0]])
    # inserting features in increasing attribution order (attribution = x): each step adds x_i
    assert M.monotonicity(SumModel(), x, x).tolist() == pytest.approx([3 / 5, 1.0])


def test_infidelity_zero_for_the_exact_attribution_of_a_linear_model(linear):
    x = torch.randn(5, 6)
    w = linear.fc.weight[1].detach()
    exact = w.expand_as(x).clone()  # F(x) - F(x - I) = I . w for every perturbation I
    out = M.infidelity(linear, M.gaussian_perturbation(0.5), x, exact, target=1, n_perturb_samples=7, seed=0)
    assert out.abs().max().item() < 1e-9
    scaled = M.infidelity(linear, M.gaussian_perturbation(0.5), x, 3 * exact, target=1, normalize=True, seed=0)
    assert scaled.abs().max().item() < 1e-9
    wrong = M.infidelity(linear, M.gaussian_perturbation(0.5), x, 3 * exact, target=1, seed=0)
    assert wrong.min().item() > 1e-3


def test_infidelity_hand_value_with_fixed_perturbations():
    model = SumModel()  # F(x) - F(x - I) = sum(I)
    x = torch.zeros(2, 2)
    attr = torch.tensor([[1.0, 0.0], [2.0, 2.0]])
    perts = torch.tensor([[1.0, 1.0], [1.0, -1.0]])

    def perturb(inputs):  # inputs: 2 examples x 2 samples, example-major
        i = perts.repeat(inputs.shape[0] // 2, 1)
        return i, inputs - i

    out = M.infidelity(model, perturb, x, attr, n_perturb_samples=2)
    # ex0: I.a = [1, 1], diff = [2, 0] -> ((1-2)^2 + (1-0)^2)/2 = 1; ex1: I.a = [4, 0], diff = [2, 0] -> 2
    assert out.tolist() == pytest.approx([1.0, 2.0])


def test_infidelity_batching_and_seed(cnn):
    x = torch.randn(3, 3, 16, 16)
    a = torch.randn(3, 3, 16, 16)
    pf = M.gaussian_perturbation(0.05)
    ref = M.infidelity(cnn, pf, x, a, target=2, n_perturb_samples=5, seed=1)
    assert torch.allclose(ref, M.infidelity(cnn, pf, x, a, target=2, n_perturb_samples=5, seed=1,
                                            max_examples_per_batch=1), rtol=1e-5)
    assert torch.allclose(ref, M.infidelity(cnn, pf, x, a, target=2, n_perturb_samples=5, seed=1, batch_size=3),
                          rtol=1e-5)
    assert not torch.allclose(ref, M.infidelity(cnn, pf, x, a, target=2, n_perturb_samples=5, seed=2))
    with pytest.raises(ValueError, match="n_perturb_samples"):
        M.infidelity(cnn, pf, x, a, target=2, n_perturb_samples=0)
    with pytest.raises(ValueError, match="attributions"):
        M.infidelity(cnn, pf, x, a[:2], target=2)


def test_faithfulness_correlation_is_one_for_exact_linear_attribution(linear):
    x = torch.randn(4, 6)
    exact = (linear.fc.weight[0].detach() * x)  # IG = DeepLift with a zero baseline on a linear model
    out = M.faithfulness_correlation(linear, x, exact, target=0, subset_size=2, n_samples=20, seed=0)
    assert torch.allclose(out, torch.ones(4, dtype=torch.float64), atol=1e-6)
    noisy = M.faithfulness_correlation(linear, x, torch.randn(4, 6), target=0, subset_size=2, n_samples=20, seed=0)
    assert noisy.max().item() < 0.999


def test_faithfulness_correlation_seed_and_batching(cnn):
    x = torch.randn(2, 3, 16, 16)
    a = torch.randn(2, 3, 16, 16)
    kw = dict(target=0, feature_mask=M.patch_mask(x.shape, 8), subset_size=3, n_samples=6)
    ref = M.faithfulness_correlation(cnn, x, a, seed=5, **kw)
    assert torch.allclose(ref, M.faithfulness_correlation(cnn, x, a, seed=5, batch_size=4, **kw), atol=1e-6)
    assert torch.allclose(ref, M.faithfulness_correlation(cnn, x, a, generator=torch.Generator().manual_seed(5), **kw))
    assert not torch.allclose(ref, M.faithfulness_correlation(cnn, x, a, seed=6, **kw))


def test_curves_do_not_depend_on_chunking_and_leave_model_untouched(cnn):
    x = torch.randn(3, 3, 16, 16)
    a = torch.randn(3, 3, 16, 16)
    before = model_state(cnn)
    mask = M.patch_mask(x.shape, 4)
    ref = M.deletion_curve(cnn, x, a, target=[1, 2, 3], feature_mask=mask, step_size=4)[1]
    for bs in (2, 5):
        out = M.deletion_curve(cnn, x, a, target=[1, 2, 3], feature_mask=mask, step_size=4, batch_size=bs)[1]
        assert torch.allclose(ref, out, atol=1e-5)
    cnn.train()
    before_train = model_state(cnn)
    M.insertion_auc(cnn, x, a, target=1, feature_mask=mask)
    assert_same_state(before_train, model_state(cnn))
    cnn.eval()
    assert_same_state(before, model_state(cnn))


def test_noisy_linear_imputation_reproduces_linear_images():
    h = w = 8
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    img = (0.3 * yy - 0.2 * xx + 1.0).expand(2, 3, h, w).float()
    removed = torch.zeros(2, 1, h, w, dtype=torch.bool)
    removed[0, :, 2:6, 2:6] = True
    removed[1, :, 1:7, 3] = True
    out = noisy_linear_imputation(img, removed)
    assert torch.allclose(out, img, atol=1e-4)
    # on any image, each imputed pixel is the weighted mean of its neighbours
    rnd = torch.rand(1, 1, h, w, dtype=torch.float64)
    rem = torch.rand(1, 1, h, w) < 0.4
    out = noisy_linear_imputation(rnd, rem)
    k = torch.tensor([[1 / 12, 1 / 6, 1 / 12], [1 / 6, 0, 1 / 6], [1 / 12, 1 / 6, 1 / 12]], dtype=torch.float64)
    num = torch.nn.functional.conv2d(out, k.reshape(1, 1, 3, 3), padding=1)
    den = torch.nn.functional.conv2d(torch.ones_like(out), k.reshape(1, 1, 3, 3), padding=1)
    assert torch.allclose(out[rem.expand_as(out)], (num / den)[rem.expand_as(out)], atol=1e-6)
    assert torch.equal(out[~rem.expand_as(out)], rnd[~rem.expand_as(rnd)])


def test_road_on_linear_image_and_chunking(cnn):
    h = w = 8
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    img = (0.1 * yy + 0.05 * xx).expand(2, 1, h, w).clone()
    attr = torch.zeros(2, 1, h, w)
    attr[:, :, 2:6, 2:6] = torch.rand(2, 1, 4, 4) + 1  # the top 25% of pixels lie inside: imputed exactly
    out, curve = M.road(SumModel(), img, attr, percentages=(0.1, 0.25), noise_std=0.0, return_curve=True)
    assert torch.allclose(curve, img.sum((1, 2, 3)).double().unsqueeze(1).expand(2, 2), rtol=1e-4)
    x, a = torch.randn(2, 3, 16, 16), torch.randn(2, 3, 16, 16)
    ref = M.road(cnn, x, a, target=1, percentages=(0.2, 0.5), seed=0)
    assert torch.allclose(ref, M.road(cnn, x, a, target=1, percentages=(0.2, 0.5), seed=0, batch_size=1), atol=1e-5)
    with pytest.raises(ValueError, match="order"):
        M.road(cnn, x, a, order="up")


def test_sufficiency_and_comprehensiveness_on_additive_token_model():
    model = TokenSum()
    ids = torch.tensor([[3, 7, 1, 9, 4, 2, 8, 5, 6, 11]])
    values = model.emb.weight[ids, 0].detach()
    bins = (0.1, 0.3, 0.5)
    comp = M.comprehensiveness(model, ids, values, bins=bins)
    suff = M.sufficiency(model, ids, values, bins=bins)
    v = np.sort(values[0].numpy().astype(np.float64))[::-1]
    top = [v[:k].sum() for k in (1, 3, 5)]
    assert comp.item() == pytest.approx(np.mean(top), rel=1e-6)  # removing top-k loses exactly their values
    assert suff.item() == pytest.approx(np.mean([v.sum() - t for t in top]), rel=1e-6)
    # per-element attributions of embeddings (N, L, D) are summed per token
    emb_model = lambda e: e.sum((1, 2))  # noqa: E731
    e = model.emb(ids).detach()
    assert M.comprehensiveness(emb_model, e, e, bins=bins).item() == pytest.approx(np.mean(top), rel=1e-6)
