"""Robustness metrics, randomisation sanity checks and evaluate()."""
import copy

import pytest
import torch

import pellucid.metrics as M
from pellucid.attr import InputXGradient, NoiseTunnel, Saliency
from conftest import LinearModel, SmallCNN, assert_same_state, model_state


@pytest.fixture
def cnn():
    """A 3x16x16 CNN (the shared one at a quarter of the pixels, to keep the suite fast)."""
    torch.manual_seed(0)
    return SmallCNN(size=16).eval()


def identity_explanation(inputs, **kwargs):
    return inputs


def test_sensitivity_of_constant_gradient_is_zero(linear):
    x = torch.randn(4, 6)
    out = M.sensitivity_max(Saliency(linear).attribute, x, target=1, perturb_radius=0.3, seed=0)
    assert out.abs().max().item() < 1e-6


def test_sensitivity_hand_value_with_fixed_perturbation():
    x = torch.tensor([[3.0, 4.0], [1.0, 0.0]])

    def shift(inputs, radius):
        return inputs + radius * (torch.arange(inputs.shape[0], dtype=inputs.dtype).reshape(-1, 1) % 2 + 1)

    # e(x) = x; rows per example: shifts 1, 2 (of radius r = 0.5) -> ||delta|| = r*k*sqrt(2)
    out = M.sensitivity_max(identity_explanation, x, shift, perturb_radius=0.5, n_perturb_samples=2)
    assert out.tolist() == pytest.approx([2 * 0.5 * 2**0.5 / 5, 2 * 0.5 * 2**0.5 / 1])
    avg = M.avg_sensitivity(identity_explanation, x, shift, perturb_radius=0.5, n_perturb_samples=2)
    assert avg.tolist() == pytest.approx([1.5 * 0.5 * 2**0.5 / 5, 1.5 * 0.5 * 2**0.5])
    lip = M.local_lipschitz_estimate(lambda inp, **k: 3 * inp, x, perturb_radius=0.1, seed=0)
    assert lip.tolist() == pytest.approx([3.0, 3.0], rel=1e-4)


def test_sensitivity_seed_batching_and_per_example_kwargs(cnn):
    x = torch.randn(3, 3, 16, 16)
    explain = Saliency(cnn).attribute
    ref = M.sensitivity_max(explain, x, target=[1, 2, 3], n_perturb_samples=4, seed=0)
    assert torch.allclose(ref, M.sensitivity_max(explain, x, target=[1, 2, 3], n_perturb_samples=4, seed=0,
                                                 max_examples_per_batch=1), rtol=1e-5)
    assert not torch.allclose(ref, M.sensitivity_max(explain, x, target=[1, 2, 3], n_perturb_samples=4, seed=1))
    # per-example targets are expanded with the rows: example 1 alone gives its own value
    one = M.sensitivity_max(explain, x[1:2], target=[2], n_perturb_samples=4,
                            perturb_func=lambda inp, r: inp + 0.5, seed=0)
    all3 = M.sensitivity_max(explain, x, target=[1, 2, 3], n_perturb_samples=4,
                             perturb_func=lambda inp, r: inp + 0.5, seed=0)
    assert one.item() == pytest.approx(all3[1].item(), rel=1e-5)


def test_parameter_randomisation_leaves_model_untouched_and_is_reproducible(cnn):
    x = torch.randn(2, 3, 16, 16)
    before = model_state(cnn)
    ref = M.model_parameter_randomisation(cnn, Saliency, x, target=3, seed=0)
    assert_same_state(before, model_state(cnn))
    assert ref.layers == ["fc2", "fc1", "conv2", "conv1"]
    assert set(ref.similarity) == {"spearman", "spearman_abs", "ssim"}
    assert ref.similarity["spearman"].shape == (4, 2)
    again = M.model_parameter_randomisation(cnn, Saliency, x, target=3, seed=0, similarity="spearman")
    assert torch.equal(ref.similarity["spearman"], again.similarity["spearman"])
    other = M.model_parameter_randomisation(cnn, Saliency, x, target=3, seed=1, similarity="spearman")
    assert not torch.equal(ref.similarity["spearman"], other.similarity["spearman"])
    assert ref.similarity["spearman"].max().item() < 0.9  # saliency depends on the weights
    # a model-independent "explanation" keeps similarity 1: the test flags it
    flat = M.model_parameter_randomisation(cnn, lambda model: identity_explanation, x, similarity="spearman", seed=0)
    assert torch.allclose(flat.similarity["spearman"], torch.ones(4, 2, dtype=torch.float64))


def test_cascading_and_independent_modes(cnn):
    x = torch.randn(2, 3, 16, 16)
    kw = dict(target=1, seed=0, similarity="pearson", return_attributions=True)
    cas = M.model_parameter_randomisation(cnn, Saliency(cnn), x, **kw)
    ind = M.model_parameter_randomisation(cnn, Saliency(cnn), x, mode="independent", **kw)
    # the first step randomises only the top layer in both modes (same seed per layer)
    assert torch.equal(cas.attributions[0], ind.attributions[0])
    # independent: randomising the last layer alone, with the others restored exactly
    work = copy.deepcopy(cnn)
    seeds = torch.randint(0, 2**62, (4,), generator=torch.Generator().manual_seed(0)).tolist()
    M.randomisation.randomise_module(work.conv1, int(seeds[3]))
    assert torch.allclose(Saliency(work).attribute(x, target=1), ind.attributions[3])
    # cascading: everything randomised at the last step
    for name, s in zip(cas.layers, seeds):
        M.randomisation.randomise_module(dict(work.named_modules())[name], int(s))
    assert torch.allclose(Saliency(work).attribute(x, target=1), cas.attributions[3])


def test_rebinding_wrapped_instances(cnn):
    x = torch.randn(2, 3, 16, 16)
    nt = NoiseTunnel(Saliency(cnn))
    before = model_state(cnn)
    res = M.model_parameter_randomisation(cnn, nt, x, target=0, similarity="spearman", seed=0,
                                          attribute_kwargs={"nt_samples": 2})
    assert res.similarity["spearman"].max().item() < 0.9
    assert_same_state(before, model_state(cnn))
    with pytest.raises(ValueError, match="not a module"):
        M.model_parameter_randomisation(cnn, Saliency, x, target=0, layers=["nope"])


def test_random_logit_on_two_class_linear_model():
    torch.manual_seed(0)
    model = LinearModel(6, 2).eval()
    x = torch.randn(3, 6)
    out = M.random_logit(lambda inp, target: Saliency(model).attribute(inp, target=target, abs=False), x, 0, 2,
                         similarity="pearson", seed=0)
    w = model.fc.weight.detach().double()
    expected = M.pearson(w[0:1], w[1:2]).item()  # the other class is forced to be 1
    assert out.tolist() == pytest.approx([expected] * 3)


def test_evaluate_table_matches_direct_calls(cnn):
    x = torch.randn(2, 3, 16, 16)
    mask = torch.zeros(2, 1, 16, 16, dtype=torch.bool)
    mask[:, :, :8] = True
    metrics = {
        "gini": M.sparseness,
        "infid": (M.infidelity, {"perturb_func": M.gaussian_perturbation(0.01), "seed": 0, "n_perturb_samples": 3}),
        "del": (M.deletion_auc, {"feature_mask": M.patch_mask(x.shape, 8)}),
        "sens": (M.sensitivity_max, {"seed": 0, "n_perturb_samples": 2}),
        "pg": M.pointing_game,
        "mprt": (M.parameter_randomisation, {"seed": 0, "layers": ["fc2"]}),
    }
    before = model_state(cnn)
    table = M.evaluate({"sal": Saliency, "ixg": InputXGradient(cnn)}, metrics, cnn, x, target=4, masks=mask,
                       as_dataframe=False)
    assert_same_state(before, model_state(cnn))
    assert table.rows == ["sal", "ixg"] and table.columns == list(metrics)
    assert table.higher_is_better == {"gini": True, "infid": False, "del": False, "sens": False, "pg": True,
                                      "mprt": False}
    a = InputXGradient(cnn).attribute(x, target=4)
    assert table["ixg", "gini"] == pytest.approx(M.sparseness(a).mean().item())
    assert table["ixg", "infid"] == pytest.approx(
        M.infidelity(cnn, M.gaussian_perturbation(0.01), x, a, target=4, seed=0, n_perturb_samples=3).mean().item())
    assert table["sal", "sens"] == pytest.approx(
        M.sensitivity_max(Saliency(cnn).attribute, x, target=4, seed=0, n_perturb_samples=2).mean().item())
    assert "gini (^)" in str(table)
    with pytest.raises(ValueError, match="masks"):
        M.evaluate({"sal": Saliency}, [M.pointing_game], cnn, x, target=4)
    with pytest.raises(ValueError, match="perturb_func"):
        M.evaluate({"sal": Saliency}, [M.infidelity], cnn, x, target=4)
