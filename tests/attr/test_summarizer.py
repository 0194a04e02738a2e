"""Streaming statistics equal the batch statistics of the stacked samples, however the samples arrive."""
from __future__ import annotations

import pytest
import torch

from pellucid.attr import (
    MSE, ClassSummarizer, CommonStats, Count, Max, Mean, Min, Stat, StdDev, Sum, Summarizer, Var,
)


def _samples(n=7, shape=(3, 2), seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g) * (i + 1) + i for i in range(n)]


def test_summary_equals_statistics_of_the_stacked_samples():
    xs = _samples()
    s = Summarizer([Mean(), Var(), Var(order=1), StdDev(), StdDev(order=1), Min(), Max(), Sum(), Count(), MSE()])
    for x in xs:
        s.update(x)
    stacked = torch.stack(xs).double()
    summ = s.summary
    torch.testing.assert_close(summ["mean"].double(), stacked.mean(0))
    torch.testing.assert_close(summ["variance"], stacked.var(0, unbiased=False))
    torch.testing.assert_close(summ["sample_variance"], stacked.var(0, unbiased=True))
    torch.testing.assert_close(summ["std_dev"], stacked.std(0, unbiased=False))
    torch.testing.assert_close(summ["sample_std_dev"], stacked.std(0, unbiased=True))
    torch.testing.assert_close(summ["min"].double(), stacked.amin(0))
    torch.testing.assert_close(summ["max"].double(), stacked.amax(0))
    torch.testing.assert_close(summ["sum"].double(), stacked.sum(0))
    torch.testing.assert_close(summ["mse"].double(), ((stacked - stacked.mean(0)) ** 2).sum(0))
    assert summ["count"] == len(xs)


def test_batched_updates_equal_one_at_a_time():
    xs = _samples(9)
    one, batched = Summarizer(CommonStats()), Summarizer(CommonStats())
    for x in xs:
        one.update(x)
    batched.update_batch(torch.stack(xs[:4]))
    batched.update_batch(torch.stack(xs[4:]))
    for k, v in one.summary.items():
        torch.testing.assert_close(batched.summary[k], v, rtol=1e-5, atol=1e-5)


def test_tuple_samples_are_summarised_separately_and_forms_cannot_mix():
    s = Summarizer([Mean()])
    assert s.summary is None
    s.update((torch.ones(2), torch.zeros(3)))
    s.update((3 * torch.ones(2), torch.ones(3)))
    summ = s.summary
    assert isinstance(summ, list) and len(summ) == 2
    torch.testing.assert_close(summ[0]["mean"], 2 * torch.ones(2))
    torch.testing.assert_close(summ[1]["mean"], 0.5 * torch.ones(3))
    with pytest.raises(TypeError, match="same form"):
        s.update(torch.ones(2))


def test_integer_samples_give_float_means_and_variance_is_zero_until_enough_samples():
    s = Summarizer([Mean(), Var(order=1)])
    s.update(torch.tensor([1, 2]))
    assert s.summary["mean"].dtype == torch.float64
    torch.testing.assert_close(s.summary["sample_variance"], torch.zeros(2, dtype=torch.float64))


def test_custom_stat_and_custom_accumulator():
    class Last(Stat):
        def __init__(self):
            super().__init__(name="last")
            self.value = None

        def update(self, x):
            self.value = x

        def get(self):
            return self.value

    xs = _samples(4, (2,))
    s = Summarizer([Last(), Max(name="absmax", max_fn=lambda a, b: torch.maximum(a.abs(), b.abs()))])
    for x in xs:
        s.update(x)
    torch.testing.assert_close(s.summary["last"], xs[-1])
    torch.testing.assert_close(s.summary["absmax"], torch.stack(xs).abs().amax(0))


def test_class_summaries_equal_per_class_statistics():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(12, 4, generator=g)
    labels = torch.tensor([0, 1, 2, 1, 0, 0, 2, 2, 1, 0, 1, 2])
    cs = ClassSummarizer([Mean(), StdDev(order=1), Count()])
    cs.update(x[:5], labels[:5])
    cs.update(x[5:], labels[5:])
    assert set(cs.class_summaries) == {0, 1, 2}  # Python numbers as keys, not 0-d tensors
    for c in (0, 1, 2):
        rows = x[labels == c]
        summ = cs.class_summaries[c][0]  # labelled updates are in tuple form, as in Captum
        torch.testing.assert_close(summ["mean"], rows.mean(0))
        torch.testing.assert_close(summ["sample_std_dev"], rows.double().std(0))
        assert summ["count"] == rows.shape[0]
    torch.testing.assert_close(cs.summary[0]["mean"], x.mean(0))


def test_class_summarizer_single_label_and_no_label():
    x = torch.randn(10, 3)
    cs = ClassSummarizer(CommonStats())
    cs.update(x, "apple")
    torch.testing.assert_close(cs.class_summaries["apple"][0]["mean"], cs.summary[0]["mean"])
    plain = ClassSummarizer([Mean()])
    plain.update(x)
    assert isinstance(plain.summary, dict) and plain.class_summaries == {}
    with pytest.raises(ValueError, match="labels"):
        plain.update(x, [0, 1])


def test_bad_stats_are_refused():
    with pytest.raises(TypeError, match="stats"):
        Summarizer(Mean())
    with pytest.raises(ValueError, match="distinct"):
        Summarizer([Mean(), Mean()])
