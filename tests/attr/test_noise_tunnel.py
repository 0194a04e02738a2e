"""NoiseTunnel: zero noise equals the wrapped method; smoothgrad / smoothgrad_sq / vargrad against manual loops;
seeds; per-example targets, baselines and extra arguments expanded with the noisy copies."""
import pytest
import torch

from conftest import SmallCNN
from pellucid.attr import DeepLift, GradientShap, IntegratedGradients, NoiseTunnel, Saliency


@pytest.fixture
def cnn():
    """The shared SmallCNN (reused nn.ReLU, functional relu, max pooling) at 16x16 to keep the suite fast."""
    torch.manual_seed(0)
    return SmallCNN(size=16).eval()


def test_zero_noise_equals_saliency(cnn):
    x = torch.randn(3, 3, 16, 16)
    sal = Saliency(cnn).attribute(x, target=[1, 5, 2])
    for nt_type, expected in [("smoothgrad", sal), ("smoothgrad_sq", sal**2), ("vargrad", torch.zeros_like(sal))]:
        got = NoiseTunnel(Saliency(cnn)).attribute(x, nt_type=nt_type, nt_samples=4, stdevs=0.0, target=[1, 5, 2])
        assert torch.allclose(got, expected, atol=1e-6), nt_type


def test_zero_noise_equals_ig_with_delta(cnn):
    x, b = torch.randn(2, 3, 16, 16), torch.randn(2, 3, 16, 16) * 0.1
    ig, d = IntegratedGradients(cnn).attribute(x, b, target=[3, 4], n_steps=8, return_convergence_delta=True)
    nt = NoiseTunnel(IntegratedGradients(cnn))
    got, gd = nt.attribute(x, nt_samples=3, stdevs=0.0, baselines=b, target=[3, 4], n_steps=8,
                           return_convergence_delta=True)
    assert torch.allclose(got, ig, atol=1e-6)
    assert gd.shape == (2, 3) and torch.allclose(gd, d[:, None].expand(2, 3), atol=1e-6)
    assert nt.has_convergence_delta() and nt.multiplies_by_inputs


def manual(model, x, target, s, std, seed, reduce):
    """One noisy copy at a time, noise drawn exactly as documented: randn(N * s, ...) * std, example-major."""
    noise = torch.randn((len(x) * s,) + x.shape[1:], generator=torch.Generator().manual_seed(seed)) * std
    out = []
    for i in range(len(x)):
        attrs = torch.stack([Saliency(model).attribute(x[i:i + 1] + noise[i * s + k:i * s + k + 1],
                                                       target=target[i])[0] for k in range(s)])
        out.append(reduce(attrs))
    return torch.stack(out)


@pytest.mark.parametrize("nt_type,reduce", [
    ("smoothgrad", lambda a: a.mean(0)),
    ("smoothgrad_sq", lambda a: (a**2).mean(0)),
    ("vargrad", lambda a: ((a - a.mean(0)) ** 2).mean(0)),
])
def test_against_manual_loop(cnn, nt_type, reduce):
    x, target = torch.randn(2, 3, 16, 16), [7, 1]
    got = NoiseTunnel(Saliency(cnn)).attribute(x, nt_type=nt_type, nt_samples=5, stdevs=0.3, target=target, seed=4)
    assert torch.allclose(got, manual(cnn, x, target, 5, 0.3, 4, reduce), atol=1e-6)


def test_reductions_are_consistent_and_seeded(cnn):
    x = torch.randn(2, 3, 16, 16)
    nt = NoiseTunnel(Saliency(cnn))
    kw = dict(nt_samples=6, stdevs=0.5, target=0, seed=9)
    sg, sq, var = (nt.attribute(x, nt_type=t, **kw) for t in ("smoothgrad", "smoothgrad_sq", "vargrad"))
    assert torch.allclose(var, sq - sg**2, atol=1e-6)
    assert (var > 0).any()
    assert torch.equal(sg, nt.attribute(x, nt_type="smoothgrad", **kw))
    assert not torch.allclose(sg, nt.attribute(x, nt_type="smoothgrad", **{**kw, "seed": 10}))
    gen = torch.Generator().manual_seed(9)
    assert torch.equal(sg, nt.attribute(x, nt_type="smoothgrad", nt_samples=6, stdevs=0.5, target=0, generator=gen))
    # Captum's nt_samples_batch_size maps to rows per model call; the result does not change
    assert torch.allclose(sg, nt.attribute(x, nt_type="smoothgrad", nt_samples_batch_size=4, **kw), atol=1e-6)


def test_per_example_arguments_follow_their_example(multi_input):
    """Targets, baselines, extra positional and keyword args are per example: each noisy copy uses its own."""
    torch.manual_seed(0)
    n, s = 3, 4
    x1, x2 = torch.randn(n, 4), torch.randn(n, 3)
    b1, b2 = torch.randn(n, 4), torch.randn(n, 3)
    scale, offset = torch.tensor([0.5, 2.0, -1.0]), torch.randn(n, 5)
    target = torch.tensor([1, 0, 1])
    nt = NoiseTunnel(IntegratedGradients(multi_input))
    got = nt.attribute((x1, x2), nt_samples=s, stdevs=(0.2, 0.1), seed=2, baselines=(b1, b2), target=target,
                       additional_forward_args=(scale,), forward_kwargs={"offset": offset}, n_steps=6)
    g = torch.Generator().manual_seed(2)
    e1 = torch.randn(n * s, 4, generator=g) * 0.2
    e2 = torch.randn(n * s, 3, generator=g) * 0.1
    for i in range(n):
        rows = slice(i * s, (i + 1) * s)
        ref = IntegratedGradients(multi_input).attribute(
            (x1[i:i + 1] + e1[rows], x2[i:i + 1] + e2[rows]), baselines=(b1[i:i + 1], b2[i:i + 1]),
            target=int(target[i]), additional_forward_args=(scale[i:i + 1].expand(s),),
            forward_kwargs={"offset": offset[i:i + 1].expand(s, 5)}, n_steps=6)
        assert torch.allclose(got[0][i], ref[0].mean(0), atol=1e-6)
        assert torch.allclose(got[1][i], ref[1].mean(0), atol=1e-6)


def test_baseline_without_batch_dim_when_features_equal_batch(linear):
    """A baseline shaped like one example (no batch dim) must not be mistaken for a per-example baseline."""
    x, b = torch.randn(6, 6), torch.randn(6)
    ref = IntegratedGradients(linear).attribute(x, b, target=0)
    got = NoiseTunnel(IntegratedGradients(linear)).attribute(x, nt_samples=2, stdevs=0.0, baselines=b, target=0)
    assert torch.allclose(got, ref, atol=1e-6)


def test_draw_baseline_from_distribution(linear):
    x, dist = torch.randn(2, 6), torch.randn(5, 6)
    got = NoiseTunnel(IntegratedGradients(linear)).attribute(x, nt_samples=3000, stdevs=0.0, baselines=dist,
                                                            draw_baseline_from_distrib=True, target=2, seed=0,
                                                            n_steps=2, batch_size=4000)
    assert torch.allclose(got, (x - dist.mean(0)) * linear.fc.weight[2].detach(), atol=0.1)


def test_wraps_deeplift_and_gradient_shap(cnn):
    x = torch.randn(2, 3, 16, 16)
    dl = DeepLift(cnn).attribute(x, target=1)
    assert torch.allclose(NoiseTunnel(DeepLift(cnn)).attribute(x, nt_samples=2, stdevs=0.0, target=1), dl, atol=1e-6)
    out = NoiseTunnel(GradientShap(cnn)).attribute(x, nt_samples=2, stdevs=0.1, baselines=torch.zeros(3, 3, 16, 16),
                                                   target=1, seed=0)
    assert out.shape == x.shape


def test_seed_reproduces_random_wrapped_method(cnn):
    """NoiseTunnel(GradientShap): the seed also drives the wrapped method's draws."""
    x, base = torch.randn(2, 3, 16, 16), torch.randn(4, 3, 16, 16)
    nt = NoiseTunnel(GradientShap(cnn))
    kw = dict(nt_samples=2, stdevs=0.1, baselines=base, target=1, n_samples=2)
    a = nt.attribute(x, seed=0, **kw)
    assert torch.equal(a, nt.attribute(x, seed=0, **kw))
    assert torch.equal(a, nt.attribute(x, generator=torch.Generator().manual_seed(0), **kw))
    assert not torch.allclose(a, nt.attribute(x, seed=1, **kw))


@pytest.mark.parametrize("kwargs,err,msg", [
    ({"nt_type": "smooth"}, ValueError, "nt_type must be one of"),
    ({"nt_samples": 0}, ValueError, "nt_samples must be a positive int"),
    ({"stdevs": -1.0}, ValueError, "stdevs must be non-negative"),
    ({"nt_samples_batch_size": 0}, ValueError, "nt_samples_batch_size must be a positive int"),
])
def test_bad_arguments(linear, kwargs, err, msg):
    with pytest.raises(err, match=msg):
        NoiseTunnel(Saliency(linear)).attribute(torch.randn(2, 6), target=0, **kwargs)
    with pytest.raises(TypeError, match="attribution_method must be a pellucid attribution"):
        NoiseTunnel(linear)
