"""The perturbation engine: feature masks, window plans, batched evaluation, chunking invariance."""
import pytest
import torch

from pellucid.core.gradients import Evaluator
from pellucid.core.perturb import (
    CoalitionPlan, WindowPlan, ablation_present, evaluate, format_feature_mask, perturbation_batch_size,
    random_permutations, window_count,
)


def test_default_mask_gives_every_scalar_its_own_feature_across_inputs():
    xs = (torch.zeros(2, 3), torch.zeros(2, 2, 2))
    m = format_feature_mask(None, xs)
    assert m.n_groups == 3 + 4
    ids = torch.cat([i.reshape(-1) for i in m.ids])
    assert sorted(ids.tolist()) == list(range(7))


def test_mask_broadcasts_relabels_and_spans_inputs():
    xs = (torch.zeros(2, 3, 4, 4), torch.zeros(2, 5))
    m0 = torch.tensor([[10, 10, 30, 30]] * 4).reshape(1, 1, 4, 4)  # shared over batch and channels
    m1 = torch.tensor([30, 30, 50, 50, 50])  # no batch dim; id 30 spans both inputs
    m = format_feature_mask((m0, m1), xs)
    assert m.n_groups == 3 and m.labels.tolist() == [10, 30, 50]
    vals = torch.arange(2 * 1 * 3, dtype=torch.float).reshape(2, 1, 3)  # (N, K, G)
    a0, a1 = m.spread(vals)
    assert a0.shape == (2, 1, 3, 4, 4) and a1.shape == (2, 1, 5)
    assert torch.equal(a0[:, 0, 2, 1, 2], vals[:, 0, 1]) and torch.equal(a1[:, 0, 0], vals[:, 0, 1])
    assert torch.equal(a1[:, 0, 4], vals[:, 0, 2]) and torch.equal(a0[:, 0, 0, 3, 0], vals[:, 0, 0])


def test_per_example_masks():
    x = torch.zeros(2, 4)
    mask = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 1]])
    m = format_feature_mask(mask, (x,))
    present = torch.tensor([[True, False], [True, False]])
    off = m.replaced(0, present, torch.tensor([0, 1]))
    assert off.tolist() == [[False, False, True, True], [False, True, True, True]]


@pytest.mark.parametrize(
    "mask, error, words",
    [
        (torch.full((2, 4), 0.5), ValueError, "non-integer"),  # float masks must hold whole numbers
        (torch.zeros(2, 4, dtype=torch.bool), TypeError, "integer"),
        (torch.zeros(2, 5, dtype=torch.long), ValueError, "broadcast"),
        (torch.zeros(3, 4, dtype=torch.long), ValueError, "broadcast"),
        (torch.zeros(1, 2, 4, dtype=torch.long), ValueError, "broadcast"),
        (-torch.ones(2, 4, dtype=torch.long), ValueError, "negative"),
        ((torch.zeros(2, 4, dtype=torch.long),) * 2, ValueError, "one mask per input"),
        ("ids", TypeError, "torch.Tensor"),
    ],
)
def test_mask_errors_name_the_argument(mask, error, words):
    with pytest.raises(error, match="feature_mask") as info:
        format_feature_mask(mask, (torch.zeros(2, 4),))
    assert words in str(info.value)


def test_window_masks_match_explicit_windows():
    plan = WindowPlan([torch.Size((2, 7, 6))], [(1, 3, 2)], [(1, 2, 3)])
    assert plan.counts == [(2, 3, 2)] and plan.n_perturb == 1 + 12
    masks = plan.window_masks(0, torch.arange(12))
    k = 0
    for c in range(2):
        for h in range(3):
            for w in range(2):
                ref = torch.zeros(2, 7, 6, dtype=torch.bool)
                ref[c, 2 * h : 2 * h + 3, 3 * w : 3 * w + 2] = True
                assert torch.equal(masks[k], ref)
                k += 1


@pytest.mark.parametrize("d,w,s", [(5, 2, 2), (7, 3, 2), (8, 3, 3), (5, 1, 3), (6, 4, 3), (4, 4, 1), (9, 2, 4)])
def test_window_count_covers_the_edge_with_a_cropped_last_window(d, w, s):
    # enumerate the starts from the definition: 0, s, 2s, ... until a window reaches the edge; drop empty windows
    starts = [0]
    while starts[-1] + w < d:
        starts.append(starts[-1] + s)
    starts = [a for a in starts if a < d]
    assert window_count(d, w, s) == len(starts)
    plan = WindowPlan([torch.Size((d,))], [(w,)], [(s,)])
    masks = plan.window_masks(0, torch.arange(plan.n_windows[0]))
    for a, m in zip(starts, masks):
        ref = torch.zeros(d, dtype=torch.bool)
        ref[a : a + w] = True  # slicing crops at the edge
        assert torch.equal(m, ref)
    covered = masks.any(0)
    if s <= w:  # no gaps between windows: every position, the last one included, is covered
        assert bool(covered.all())
    assert bool(covered[starts[-1]])


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).eval()


@pytest.mark.parametrize("batch_size", [None, 1, 5, 64])
def test_evaluate_rows_are_independent_of_chunking(batch_size):
    model = _model()
    x = torch.randn(4, 6)
    mask = format_feature_mask(torch.tensor([0, 0, 1, 2, 2, 3]), (x,))
    plan = CoalitionPlan(mask, 1 + mask.n_groups, ablation_present(mask.n_groups))
    base = (torch.zeros(1, 6),)
    ev = Evaluator(model, None, n=4, batch_size=batch_size)
    scores = evaluate(ev, (x,), base, plan)
    assert scores.values.shape == (4, 5, 3) and scores.out_shape == (3,)
    # independent check: build every perturbed example explicitly
    with torch.no_grad():
        for g, cols in enumerate([[0, 1], [2], [3, 4], [5]]):
            xp = x.clone()
            xp[:, cols] = 0
            torch.testing.assert_close(scores.values[:, g + 1], model(xp), rtol=0, atol=1e-6)
        torch.testing.assert_close(scores.values[:, 0], model(x), rtol=0, atol=1e-6)


def test_evaluate_with_target_selects_one_score():
    model = _model()
    x = torch.randn(3, 6)
    mask = format_feature_mask(None, (x,))
    plan = CoalitionPlan(mask, 7, ablation_present(6))
    scores = evaluate(Evaluator(model, [0, 2, 1], n=3), (x,), (torch.zeros(1, 6),), plan)
    assert scores.values.shape == (3, 7, 1) and not scores.multi
    with torch.no_grad():
        torch.testing.assert_close(scores.values[:, 0, 0], model(x)[torch.arange(3), torch.tensor([0, 2, 1])])


def test_perturbation_batch_size():
    assert perturbation_batch_size(None, None, 4) is None
    assert perturbation_batch_size(None, 3, 4) == 12
    assert perturbation_batch_size(12, 3, 4) == 12
    with pytest.raises(ValueError, match="perturbations_per_eval"):
        perturbation_batch_size(5, 3, 4)
    with pytest.raises(ValueError, match="perturbations_per_eval"):
        perturbation_batch_size(None, 0, 4)
    with pytest.raises(ValueError, match="batch_size"):
        perturbation_batch_size(-1, None, 4)


def test_random_permutations_antithetic_pairs():
    g = torch.Generator().manual_seed(0)
    p = random_permutations(3, 5, 6, g, antithetic=True)
    assert p.shape == (3, 5, 6)
    assert torch.equal(p.sort(-1).values, torch.arange(6).expand(3, 5, 6))
    assert torch.equal(p[:, 1], p[:, 0].flip(-1)) and torch.equal(p[:, 3], p[:, 2].flip(-1))
    q = random_permutations(3, 5, 6, torch.Generator().manual_seed(0), antithetic=True)
    assert torch.equal(p, q)


class Recorder(torch.nn.Module):
    """Records the rows of every model call."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(6, 2)
        self.calls: list[int] = []

    def forward(self, x):
        self.calls.append(x.shape[0])
        return self.fc(x)


def test_rows_per_call_follow_budget_and_overrides():
    import pellucid
    from pellucid.core.batching import DEFAULT_MAX_ROWS

    x = torch.randn(5, 6)
    mask = format_feature_mask(None, (x,))
    plan = CoalitionPlan(mask, 7, ablation_present(6))
    base = (torch.zeros(1, 6),)
    results = {}
    for name, budget, bs in (("default", None, None), ("tiny", 1, None), ("bs", None, 4)):
        torch.manual_seed(0)
        model = Recorder().eval()  # same weights every time
        with pellucid.set_memory_budget(budget):
            results[name] = evaluate(Evaluator(model, None, n=5, batch_size=bs), (x,), base, plan).values
        assert sum(model.calls) == 35
        if name == "default":
            assert max(model.calls) <= int(1.25 * DEFAULT_MAX_ROWS)
        elif name == "tiny":
            assert max(model.calls[1:]) == 1  # after the measured probe, the budget allows one row per call
        else:
            assert set(model.calls[:-1]) == {4}
    torch.testing.assert_close(results["tiny"], results["default"])
    torch.testing.assert_close(results["bs"], results["default"])
