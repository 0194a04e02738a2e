"""scikit-learn datasets as tensors, and an MLP trained on digits."""
import pytest
import torch

pytest.importorskip("sklearn")

from pellucid.data import digits_mlp, load_diabetes, load_digits


def test_digits_and_diabetes_tensors():
    d = load_digits(standardize=False)
    assert d.x.shape == (1797, 64) and d.x.dtype == torch.float32 and d.y.dtype == torch.long
    assert d.x.min() == 0 and d.x.max() == 1 and set(d.y.unique().tolist()) == set(range(10))
    s = load_digits()
    keep = d.x.std(0) > 0
    torch.testing.assert_close(s.x.mean(0)[keep], torch.zeros(int(keep.sum())), atol=1e-5, rtol=0)
    b = load_diabetes()
    assert b.x.shape == (442, 10) and b.task == "regression" and len(b.feature_names) == 10
    torch.testing.assert_close(b.y.std(), torch.tensor(1.0))


def test_digits_mlp_accuracy():
    r = digits_mlp(epochs=8)
    assert r.test_score > 0.9
