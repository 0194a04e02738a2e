"""Calls that Captum accepts must work the same way here (keyword names, target forms, baseline callables)."""
import torch

from pellucid.attr import Deconvolution, DeepLift, DeepLiftShap, GradientShap, GuidedBackprop, Saliency


def test_model_keyword_for_classes_captum_names_model(cnn):
    x = torch.randn(2, 3, 32, 32)
    for cls in (DeepLift, DeepLiftShap, GuidedBackprop, Deconvolution):
        method = cls(model=cnn)
        assert method.forward_func is cnn
    torch.testing.assert_close(DeepLift(model=cnn).attribute(x, target=1), DeepLift(cnn).attribute(x, target=1))


def test_one_element_target_tensor_is_one_target_for_all_examples(cnn):
    x = torch.randn(4, 3, 32, 32)
    expected = Saliency(cnn).attribute(x, target=2)
    for t in (torch.tensor(2), torch.tensor([2]), torch.tensor([[2]])):
        torch.testing.assert_close(Saliency(cnn).attribute(x, target=t), expected)
    single = Saliency(cnn).attribute(x[:1], target=torch.tensor([[2]]))
    assert single.shape == (1, 3, 32, 32)


def test_zero_argument_callable_baselines(cnn):
    x = torch.randn(2, 3, 32, 32)
    dist = torch.randn(3, 3, 32, 32)
    a = GradientShap(cnn).attribute(x, baselines=lambda: dist, target=0, seed=1)
    b = GradientShap(cnn).attribute(x, baselines=dist, target=0, seed=1)
    torch.testing.assert_close(a, b)
    c = GradientShap(cnn).attribute(x, baselines=lambda inp: dist, target=0, seed=1)
    torch.testing.assert_close(c, b)


def test_deeplift_softmax_fallback_uses_the_diagonal_derivative():
    """Where input and baseline coincide the rescale multiplier falls back to dy_i/dx_i = p_i (1 - p_i)."""
    m = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Softmax(-1)).eval()
    x = torch.randn(2, 4)
    mult = DeepLift(m, multiply_by_inputs=False).attribute(x, baselines=x.clone(), target=1)
    with torch.no_grad():
        p = m(x)[:, 1:2]
    torch.testing.assert_close(mult, m[0].weight[1].detach() * p * (1 - p))
