"""inputs / baselines / distributions / extra forward arguments."""
import pytest
import torch

from pellucid.core.inputs import (ForwardArgs, format_baselines, format_distribution, format_inputs, require_float,
                                  restore_form)


def test_format_inputs_tensor_and_tuple_round_trip():
    x = torch.randn(3, 4)
    items, was_tuple = format_inputs(x)
    assert items == (x,) and was_tuple is False
    assert restore_form(items, was_tuple) is x
    y = torch.randn(3, 2, 2)
    items, was_tuple = format_inputs((x, y))
    assert items[0] is x and items[1] is y and was_tuple
    assert restore_form(items, was_tuple) == (x, y)
    items, was_tuple = format_inputs([x, y])
    assert was_tuple and len(items) == 2


def test_format_inputs_errors_name_the_argument():
    with pytest.raises(ValueError, match="inputs.*batch size.*inputs\\[1\\] has 2"):
        format_inputs((torch.zeros(3, 1), torch.zeros(2, 1)))
    with pytest.raises(TypeError, match="inputs\\[1\\] must be a torch.Tensor; received list"):
        format_inputs((torch.zeros(3, 1), [1, 2]))
    with pytest.raises(TypeError, match="inputs must be a torch.Tensor; received ndarray"):
        import numpy as np

        format_inputs(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="batch dimension.*0-d"):
        format_inputs(torch.tensor(1.0))
    with pytest.raises(ValueError, match="non-empty"):
        format_inputs(())


def test_require_float():
    require_float((torch.zeros(2, 2),), "IG")
    with pytest.raises(TypeError, match="inputs\\[0\\] has dtype torch.int64.*IG.*floating-point"):
        require_float((torch.zeros(2, 2, dtype=torch.long),), "IG")


def test_baseline_forms():
    x = torch.randn(4, 3, 2)
    (b,) = format_baselines(None, (x,))
    assert b.shape == (1, 3, 2) and bool((b == 0).all())
    (b,) = format_baselines(0.5, (x,))
    assert b.shape == (1, 3, 2) and bool((b == 0.5).all())
    (b,) = format_baselines(2, (x,))
    assert b.dtype == x.dtype and bool((b == 2).all())
    one = torch.randn(1, 3, 2)
    assert torch.equal(format_baselines(one, (x,))[0], one)
    per = torch.randn(4, 3, 2)
    assert torch.equal(format_baselines(per, (x,))[0], per)
    nobatch = torch.randn(3, 2)
    assert torch.equal(format_baselines(nobatch, (x,))[0], nobatch[None])
    (b,) = format_baselines(torch.tensor(1.5), (x,))
    assert b.shape == (1, 3, 2) and bool((b == 1.5).all())
    # integer baseline for a float input is cast to the input's dtype
    assert format_baselines(torch.ones(1, 3, 2, dtype=torch.long), (x,))[0].dtype == x.dtype


def test_baseline_tuple_forms():
    x, y = torch.randn(4, 3), torch.randn(4, 2, 2)
    b = format_baselines((None, 1.0), (x, y))
    assert b[0].shape == (1, 3) and bool((b[0] == 0).all()) and bool((b[1] == 1).all())
    b = format_baselines((torch.ones(4, 3), torch.ones(1, 2, 2)), (x, y))
    assert b[0].shape == (4, 3) and b[1].shape == (1, 2, 2)
    # a scalar is shared by every input
    b = format_baselines(3.0, (x, y))
    assert bool((b[0] == 3).all()) and bool((b[1] == 3).all())


def test_baseline_errors_name_the_argument():
    x, y = torch.randn(4, 3), torch.randn(4, 2)
    with pytest.raises(ValueError, match="baselines has shape \\(2, 3\\); expected the input's shape \\(4, 3\\)"):
        format_baselines(torch.zeros(2, 3), (x,))
    with pytest.raises(ValueError, match="baselines has shape \\(4, 5\\)"):
        format_baselines(torch.zeros(4, 5), (x,))
    with pytest.raises(ValueError, match="baselines has 1 elements but there are 2 inputs"):
        format_baselines((torch.zeros(4, 3),), (x, y))
    with pytest.raises(ValueError, match="single tensor but there are 2 inputs"):
        format_baselines(torch.zeros(4, 3), (x, y))
    with pytest.raises(TypeError, match="baselines\\[1\\] must be None, a number or a tensor; received str"):
        format_baselines((None, "zero"), (x, y))
    with pytest.raises(ValueError, match="baselines\\[1\\] has shape \\(4, 3\\)"):
        format_baselines((None, torch.zeros(4, 3)), (x, y))


def test_distribution_forms():
    x = torch.randn(2, 3)
    (d,) = format_distribution(torch.randn(7, 3), (x,))
    assert d.shape == (7, 3)
    (d,) = format_distribution(None, (x,))
    assert d.shape == (1, 3) and bool((d == 0).all())
    (d,) = format_distribution(lambda inp: inp * 0 + 2, (x,))
    assert d.shape == (2, 3) and bool((d == 2).all())
    with pytest.raises(ValueError, match="baselines\\[0\\] has shape \\(5, 4\\); expected samples of shape \\(S, 3\\)"):
        format_distribution(torch.randn(5, 4), (x,))
    with pytest.raises(ValueError, match="same number of samples"):
        format_distribution((torch.randn(5, 3), torch.randn(4, 2)), (x, torch.randn(2, 2)))


def test_forward_args_rows_index_batch_tensors_only():
    n = 3
    per_example = torch.arange(3.0)
    shared = torch.tensor([10.0, 20.0])
    fa = ForwardArgs.make((per_example, shared, "text"), {"mask": torch.arange(6).reshape(3, 2), "k": 5}, n)
    ex = torch.tensor([2, 2, 0, 1])
    args, kwargs = fa.rows(ex)
    assert torch.equal(args[0], per_example[ex])
    assert args[1] is shared and args[2] == "text"
    assert torch.equal(kwargs["mask"], torch.arange(6).reshape(3, 2)[ex]) and kwargs["k"] == 5
    rep = fa.repeat(2)
    assert rep.n == 6 and torch.equal(rep.args[0], torch.tensor([0.0, 0, 1, 1, 2, 2]))
    single = ForwardArgs.make(per_example, None, n)
    assert single.args == (per_example,)
    assert ForwardArgs.make([1, 2], None, n).args == (1, 2)
    assert ForwardArgs.make(None, None, n).rows(ex) == ((), {})
    with pytest.raises(TypeError, match="forward_kwargs must be a dict"):
        ForwardArgs.make(None, [1], n)
