"""FGSM / PGD against closed forms on linear models (where the optimal attack is known), bounds, masks, state."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from pellucid.robust import FGSM, PGD


def _binary_linear(seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(6, 2)


def _margin_direction(model: nn.Linear, y: torch.Tensor) -> torch.Tensor:
    """d_i = w_other - w_y: the direction that lowers the true class's margin fastest (any norm)."""
    w = model.weight.detach()
    return w[1 - y] - w[y]


def test_fgsm_untargeted_is_the_optimal_linf_step_on_a_linear_model():
    model = _binary_linear()
    x, y = torch.randn(5, 6), torch.tensor([0, 1, 0, 1, 1])
    adv = FGSM(model).perturb(x, epsilon=0.1, target=y)
    torch.testing.assert_close(adv, x + 0.1 * torch.sign(_margin_direction(model, y)))


def test_fgsm_targeted_moves_toward_the_target_class():
    model = _binary_linear(1)
    x = torch.randn(4, 6)
    t = torch.tensor([1, 1, 0, 0])
    adv = FGSM(model).perturb(x, epsilon=0.2, target=t, targeted=True)
    w = model.weight.detach()
    torch.testing.assert_close(adv, x + 0.2 * torch.sign(w[t] - w[1 - t]))


def test_probability_outputs_and_logits_give_the_same_attack():
    """-log softmax(z)_y is the cross-entropy of the logits: the default loss must agree for both heads."""
    model = _binary_linear(2)
    probs = nn.Sequential(model, nn.Softmax(dim=1))
    x, y = torch.randn(6, 6), torch.randint(0, 2, (6,))
    torch.testing.assert_close(FGSM(probs).perturb(x, 0.05, y), FGSM(model).perturb(x, 0.05, y))


def test_fgsm_bounds_mask_and_tuple_inputs():
    torch.manual_seed(3)

    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 2), nn.Linear(4, 2)

        def forward(self, x1, x2):
            return self.a(x1) + self.b(x2)

    model = Two()
    x1, x2 = torch.rand(3, 3), torch.rand(3, 4)
    mask2 = torch.zeros(3, 4)
    mask2[:, 0] = 1
    a1, a2 = FGSM(model, lower_bound=0.0, upper_bound=1.0).perturb((x1, x2), 0.5, 0, mask=(torch.ones(3, 3), mask2))
    assert a1.min() >= 0 and a1.max() <= 1 and a2.min() >= 0 and a2.max() <= 1
    torch.testing.assert_close(a2[:, 1:], x2[:, 1:])  # masked out: unchanged
    assert not torch.equal(a2[:, 0], x2[:, 0])


def test_pgd_linf_reaches_the_corner_of_the_ball():
    model = _binary_linear(4)
    x, y = torch.randn(5, 6), torch.tensor([1, 0, 1, 0, 0])
    adv = PGD(model).perturb(x, radius=0.3, step_size=0.1, step_num=5, target=y)
    torch.testing.assert_close(adv, x + 0.3 * torch.sign(_margin_direction(model, y)))


def test_pgd_l2_reaches_the_optimal_l2_point():
    """The L2-optimal attack on a linear margin is x + r d/||d||; normalised gradient steps then projection
    reach it exactly."""
    model = _binary_linear(5)
    x, y = torch.randn(4, 6), torch.tensor([0, 0, 1, 1])
    adv = PGD(model).perturb(x, radius=0.5, step_size=0.2, step_num=6, target=y, norm="L2")
    d = _margin_direction(model, y)
    torch.testing.assert_close(adv, x + 0.5 * d / d.norm(dim=1, keepdim=True))


@pytest.mark.parametrize("norm", ["Linf", "L2"])
def test_pgd_stays_in_the_ball_with_a_reproducible_random_start(norm):
    torch.manual_seed(6)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    x, y = torch.randn(6, 8), torch.randint(0, 4, (6,))
    run = lambda: PGD(model).perturb(x, 0.25, 0.05, 4, y, random_start=True, norm=norm,
                                     generator=torch.Generator().manual_seed(0))
    a, b = run(), run()
    torch.testing.assert_close(a, b)
    diff = (a - x).flatten(1)
    size = diff.abs().amax(dim=1) if norm == "Linf" else diff.norm(dim=1)
    assert bool((size <= 0.25 + 1e-5).all())


def test_attacks_raise_the_loss_and_leave_the_model_unchanged():
    torch.manual_seed(7)
    model = nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.1), nn.ReLU(), nn.Linear(16, 3))
    model.train()
    model[0].weight.requires_grad_(False)
    x, y = torch.randn(10, 8), torch.randint(0, 3, (10,))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()
    loss = lambda inp: nn.functional.cross_entropy(model(inp), y)
    adv = PGD(model).perturb(x, 0.3, 0.05, 10, y)
    assert loss(adv) > loss(x)
    model.train()
    FGSM(model).perturb(x, 0.1, y)
    assert model.training and all(m.training for m in model.modules())
    assert not model[0].weight.requires_grad and model[0].bias.requires_grad
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_bad_arguments_name_themselves():
    model = _binary_linear()
    x = torch.randn(2, 6)
    with pytest.raises(TypeError, match="epsilon"):
        FGSM(model).perturb(x, "big", 0)
    with pytest.raises(ValueError, match="norm"):
        PGD(model).perturb(x, 0.1, 0.1, 2, 0, norm="L1")
    with pytest.raises(ValueError, match="step_num"):
        PGD(model).perturb(x, 0.1, 0.1, -1, 0)
    with pytest.raises(TypeError, match="inputs"):
        FGSM(model).perturb(torch.ones(2, 6, dtype=torch.long), 0.1, 0)
    with pytest.raises(ValueError, match="mask"):
        FGSM(model).perturb(x, 0.1, 0, mask=torch.ones(3, 5))
