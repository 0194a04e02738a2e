"""The target argument: every form, and errors naming it."""
import pytest
import torch

from pellucid.core.targets import Target

OUT = torch.arange(24.0).reshape(4, 6)  # 4 rows, 6 outputs
ALL = torch.arange(4)


def test_none_requires_one_output():
    assert torch.equal(Target(None, 4).select(OUT[:, :1], ALL), OUT[:, 0])
    assert torch.equal(Target(None, 4).select(OUT[:, 0], ALL), OUT[:, 0])
    with pytest.raises(ValueError, match="target is None but the model's output has shape \\(4, 6\\)"):
        Target(None, 4).select(OUT, ALL)


def test_int_and_negative_int():
    assert torch.equal(Target(2, 4).select(OUT, ALL), OUT[:, 2])
    assert torch.equal(Target(-1, 4).select(OUT, ALL), OUT[:, 5])
    assert torch.equal(Target(torch.tensor(3), 4).select(OUT, ALL), OUT[:, 3])


def test_tuple_indexes_several_dims():
    out3 = torch.arange(4 * 2 * 3.0).reshape(4, 2, 3)
    assert torch.equal(Target((1, 2), 4).select(out3, ALL), out3[:, 1, 2])
    with pytest.raises(ValueError, match="target indexes 1 output dim"):
        Target(1, 4).select(out3, ALL)
    with pytest.raises(TypeError, match="tuple target must hold ints"):
        Target((1, "a"), 4)


def test_per_example_list_and_tensor_follow_example_index():
    targets = [0, 5, 2, 3]
    ex = torch.tensor([3, 3, 1, 0])  # rows belonging to these examples
    expected = OUT[torch.arange(4), torch.tensor([3, 3, 5, 0])]
    assert torch.equal(Target(targets, 4).select(OUT, ex), expected)
    assert torch.equal(Target(torch.tensor(targets), 4).select(OUT, ex), expected)
    assert torch.equal(Target([torch.tensor(t) for t in targets], 4).select(OUT, ex), expected)
    out3 = torch.arange(4 * 2 * 3.0).reshape(4, 2, 3)
    assert torch.equal(Target([(0, 1), (1, 2), (0, 0), (1, 1)], 4).select(out3, ALL),
                       out3[torch.arange(4), torch.tensor([0, 1, 0, 1]), torch.tensor([1, 2, 0, 1])])


def test_repeat_is_example_major():
    t = Target([1, 4], 2).repeat(3)
    out = torch.arange(36.0).reshape(6, 6)
    assert torch.equal(t.select(out, torch.arange(6)), out[torch.arange(6), torch.tensor([1, 1, 1, 4, 4, 4])])


def test_callable_target():
    t = Target(lambda o: o[:, 1] * 2 + o[:, 2], 4)
    assert torch.equal(t.select(OUT, ALL), OUT[:, 1] * 2 + OUT[:, 2])
    t = Target(lambda o: o["logits"][:, :1], 4)  # non-tensor output, (rows, 1) result accepted
    assert torch.equal(t.select({"logits": OUT}, ALL), OUT[:, 0])
    with pytest.raises(ValueError, match="one score per row, shape \\(4,\\); returned \\(4, 6\\)"):
        Target(lambda o: o, 4).select(OUT, ALL)
    with pytest.raises(TypeError, match="target callable must return a tensor"):
        Target(lambda o: 1.0, 4).select(OUT, ALL)


@pytest.mark.parametrize("bad,err,msg", [
    (True, TypeError, "received bool"),
    (1.5, TypeError, "received float"),
    ([0, 1], ValueError, "target list has 2 entries but there are 4"),
    (torch.tensor([0, 1]), ValueError, "target has 2 entries but there are 4"),
    (torch.tensor([0.0, 1, 2, 3]), TypeError, "integer indices; received dtype torch.float32"),
    (torch.zeros(4, 1, dtype=torch.long), ValueError, "0-d or 1-d"),
    ([0, 1, "a", 2], TypeError, "target\\[2\\] must be an int or a tuple"),
    ([0, (1, 1), 1, 2], ValueError, "same length"),
    ([0, 1, torch.tensor(1.7), 2], TypeError, "target\\[2\\] must be an int or a tuple"),
])
def test_bad_target_forms(bad, err, msg):
    with pytest.raises(err, match=msg):
        Target(bad, 4)


@pytest.mark.parametrize("target", [6, -7, [0, 1, 6, 2], torch.tensor([0, 9, 0, 0])])
def test_out_of_range(target):
    with pytest.raises(ValueError, match="out of range for output of shape \\(N, 6\\)"):
        Target(target, 4).select(OUT, ALL)


def test_non_tensor_output_and_wrong_batch():
    with pytest.raises(TypeError, match="model returned dict, not a tensor.*target=callable"):
        Target(0, 4).select({"a": OUT}, ALL)
    with pytest.raises(ValueError, match="dim 0 must be the batch"):
        Target(0, 4).select(OUT[:3], ALL)
