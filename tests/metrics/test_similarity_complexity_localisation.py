"""Similarity measures, complexity and localisation metrics against hand-computed values."""
import math

import numpy as np
import pytest
import torch

import pellucid.metrics as M


def test_spearman_matches_rank_formula_without_ties():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 30, generator=g), torch.randn(5, 30, generator=g)
    ra = a.argsort(1).argsort(1).double()
    rb = b.argsort(1).argsort(1).double()
    n = 30
    expected = 1 - 6 * ((ra - rb) ** 2).sum(1) / (n * (n**2 - 1))
    assert torch.allclose(M.spearman(a, b), expected, atol=1e-12)


def test_spearman_ties_use_average_ranks_and_abs_variant():
    a = torch.tensor([[1.0, 1.0, 2.0, 5.0]])
    b = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    ra = np.array([0.5, 0.5, 2.0, 3.0])
    rb = np.array([0.0, 1.0, 2.0, 3.0])
    assert M.spearman(a, b).item() == pytest.approx(np.corrcoef(ra, rb)[0, 1])
    x = torch.randn(3, 10)
    assert torch.allclose(M.spearman(x, -x), -torch.ones(3, dtype=torch.float64))
    assert torch.allclose(M.spearman_abs(x, -x), torch.ones(3, dtype=torch.float64))


def test_pearson_cosine_and_top_k_overlap():
    x = torch.randn(4, 12)
    assert torch.allclose(M.pearson(x, 2 * x + 3), torch.ones(4, dtype=torch.float64))
    a, b = torch.tensor([[1.0, 0.0, 1.0]]), torch.tensor([[1.0, 1.0, 0.0]])
    assert M.cosine(a, b).item() == pytest.approx(0.5)
    assert M.pearson(torch.ones(1, 3), b).item() == 0.0  # constant map: defined as 0
    a = torch.tensor([[5.0, 4.0, 3.0, 0.0, 0.1]])
    b = torch.tensor([[5.0, 0.0, 3.0, 4.0, 0.1]])
    assert M.top_k_overlap(a, b, k=2).item() == pytest.approx(0.5)  # {0,1} vs {0,3}
    assert M.top_k_overlap(a, b, k=3).item() == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="k must be"):
        M.top_k_overlap(a, b, k=9)
    # tuples are concatenated per example
    assert torch.allclose(M.cosine((a, a), (a, a)), torch.ones(1, dtype=torch.float64))


def test_ssim_global_window_matches_formula():
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(2, 5, 5, generator=g), torch.rand(2, 5, 5, generator=g)
    out = M.ssim(a, b, window_size=5, window="uniform", data_range=1.0)
    for i in range(2):
        x, y = a[i].double().numpy().ravel(), b[i].double().numpy().ravel()
        c1, c2 = 0.01**2, 0.03**2
        mx, my = x.mean(), y.mean()
        vx, vy, cxy = x.var(), y.var(), ((x - mx) * (y - my)).mean()
        expected = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
        assert out[i].item() == pytest.approx(expected, rel=1e-10)
    assert torch.allclose(M.ssim(a, a), torch.ones(2, dtype=torch.float64))
    assert torch.allclose(M.ssim(a, b), M.ssim(b, a))


def test_sparseness_is_the_gini_index():
    g = torch.Generator().manual_seed(2)
    v = torch.rand(3, 17, generator=g)
    # Gini as mean absolute difference: sum_ij |x_i - x_j| / (2 F sum x)
    expected = (v.unsqueeze(2) - v.unsqueeze(1)).abs().sum((1, 2)) / (2 * 17 * v.sum(1))
    assert torch.allclose(M.sparseness(v), expected.double(), atol=1e-6)
    assert M.sparseness(torch.tensor([[1.0, 2.0, 3.0, 4.0]])).item() == pytest.approx(0.25)
    assert M.sparseness(torch.tensor([[0.0, 0.0, 0.0, -2.0]])).item() == pytest.approx(0.75)
    assert M.sparseness(torch.ones(1, 6)).item() == pytest.approx(0.0)
    assert M.sparseness(torch.zeros(1, 6)).item() == 0.0


def test_complexity_entropy_and_effective_complexity():
    assert M.complexity(torch.tensor([[0.0, 3.0, 0.0]])).item() == pytest.approx(0.0)
    assert M.complexity(torch.ones(2, 8)).tolist() == pytest.approx([math.log(8)] * 2)
    p = np.array([1, 1, 2]) / 4
    assert M.complexity(torch.tensor([[1.0, -1.0, 2.0]])).item() == pytest.approx(-(p * np.log(p)).sum())
    a = torch.tensor([[0.0, 1e-7, 0.5, -2.0], [1.0, 1.0, 1.0, 1.0]])
    assert M.effective_complexity(a).tolist() == [2.0, 4.0]
    assert M.effective_complexity(a, eps=0.3, normalise=True).tolist() == [1.0, 4.0]


def test_localisation_on_planted_maps():
    a = torch.zeros(2, 3, 4, 4)
    a[0, :, 1, 1] = 1.0  # example 0: maximum (summed over channels) inside the mask
    a[1, :, 3, 3] = 1.0  # example 1: maximum outside
    a[:, 0, 0, 0] = 0.5  # some relevance elsewhere
    a[:, 1, 0, 1] = -4.0  # negative relevance is ignored by mass accuracy
    mask = torch.zeros(2, 1, 4, 4, dtype=torch.bool)
    mask[:, :, 0:2, 1:3] = True  # 4 pixels: (0,1) (0,2) (1,1) (1,2)
    assert M.pointing_game(a, mask).tolist() == [1.0, 0.0]
    # pixel relevance: ex0 (1,1)=3, (0,0)=0.5, (0,1)=-4 -> mass in mask 3/3.5; ex1: 0/3.5
    assert M.relevance_mass_accuracy(a, mask).tolist() == pytest.approx([3 / 3.5, 0.0])
    # top-4 pixels of ex0: (1,1)=3, (0,0)=.5, then two zeros in order (0,2),(0,3) -> in mask: (1,1),(0,2) -> 2/4
    assert M.relevance_rank_accuracy(a, mask)[0].item() == pytest.approx(0.5)
    assert M.top_k_intersection(a, mask, k=1).tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="broadcast"):
        M.pointing_game(a, torch.zeros(2, 1, 3, 3, dtype=torch.bool))


def test_metric_metadata():
    for fn in M.ALL_METRICS:
        info = fn.info
        assert isinstance(info.higher_is_better, bool)
        assert info.category in {"faithfulness", "robustness", "complexity", "localisation", "randomisation"}
        assert info.paper
    assert not M.infidelity.info.higher_is_better and M.insertion_auc.info.higher_is_better
