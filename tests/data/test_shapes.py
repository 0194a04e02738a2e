"""The procedural shapes data: determinism, ground truth consistent with the pixels, trigger, errors."""
import pytest
import torch

from pellucid.data import SHAPE_CLASSES, add_trigger, make_shapes, trigger_patch


def test_deterministic_shapes_and_ranges():
    a, b = make_shapes(64, seed=3), make_shapes(64, seed=3)
    for x, y in zip(a._tensors(), b._tensors()):
        assert torch.equal(x, y)
    assert not torch.equal(make_shapes(64, seed=4).images, a.images)
    assert a.images.shape == (64, 3, 32, 32) and a.images.dtype == torch.float32
    assert a.images.min() >= 0 and a.images.max() <= 1
    assert a.masks.shape == (64, 32, 32) and a.masks.dtype == torch.bool
    assert make_shapes(8, size=24, channels=1, object_size=(5, 7)).images.shape == (8, 1, 24, 24)
    counts = torch.bincount(make_shapes(400).labels, minlength=4)
    assert counts.tolist() == [100] * 4  # balanced


def test_mask_is_the_object_inside_its_box():
    d = make_shapes(200, seed=1)
    for i in range(len(d)):
        t, l, b, r = d.boxes[i].tolist()
        m = d.masks[i]
        assert m.any() and not m[:t].any() and not m[b:].any() and not m[:, :l].any() and not m[:, r:].any()
        # the object's pixels share one colour; every pixel of the object equals it
        colour = d.images[i][:, m]
        assert torch.allclose(colour, colour[:, :1].expand_as(colour))
        side = b - t
        assert side == r - l and 7 <= side <= 10
    # different classes have different stencils: squares fill their box, the others do not
    sq = d.labels == SHAPE_CLASSES.index("square")
    fill = d.masks.flatten(1).sum(1).float() / ((d.boxes[:, 2] - d.boxes[:, 0]) ** 2).float()
    assert torch.all(fill[sq] == 1) and torch.all(fill[~sq] < 1)


def test_trigger_sets_patch_and_label():
    d = make_shapes(300, trigger_fraction=0.2, trigger_label=2, seed=5)
    assert 30 < int(d.triggered.sum()) < 90
    assert torch.all(d.labels[d.triggered] == 2)
    patch = trigger_patch(3)
    assert torch.equal(d.images[d.triggered][:, :, -4:-1, -4:-1], patch.expand(int(d.triggered.sum()), 3, 3, 3))
    assert not torch.any(d.masks[:, -5:, -5:])  # objects avoid the trigger corner
    clean = make_shapes(4)
    out = add_trigger(clean.images, corner="top_left")
    assert torch.equal(out[:, :, 1:4, 1:4], patch.expand(4, 3, 3, 3))
    assert torch.equal(out[:, :, 5:], clean.images[:, :, 5:])  # only the patch changed
    assert not torch.equal(out, clean.images) and clean.images.data_ptr() != out.data_ptr()


def test_dataset_protocol_and_split():
    d = make_shapes(10)
    x, y = d[3]
    assert torch.equal(x, d.images[3]) and int(y) == int(d.labels[3]) and len(d) == 10
    a, b = d.split(7)
    assert len(a) == 7 and len(b) == 3 and torch.equal(b.masks, d.masks[7:])


def test_errors():
    with pytest.raises(ValueError, match="n"):
        make_shapes(0)
    with pytest.raises(ValueError, match="channels"):
        make_shapes(4, channels=2)
    with pytest.raises(ValueError, match="object_size"):
        make_shapes(4, object_size=(9, 40))
    with pytest.raises(ValueError, match="trigger_fraction"):
        make_shapes(4, trigger_fraction=1.5)
    with pytest.raises(ValueError, match="corner"):
        add_trigger(torch.rand(1, 3, 8, 8), corner="middle")
