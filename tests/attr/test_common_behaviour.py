"""Behaviour every gradient method shares: target forms, extra arguments, chunking invariance, clear errors, the
model left exactly as it was (on success and after an exception)."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import pellucid
from conftest import SmallCNN, assert_same_state, model_state
from pellucid.attr import (Deconvolution, DeepLift, DeepLiftShap, GradientShap, GuidedBackprop, InputXGradient,
                           IntegratedGradients, NoiseTunnel, Saliency, SplitIntegratedGradients)


def _baselines(inputs, kind):
    if kind == "point":
        return tuple(torch.full((1,) + x.shape[1:], 0.1) for x in inputs)
    if kind == "dist":
        g = torch.Generator().manual_seed(0)
        return tuple(torch.randn((4,) + x.shape[1:], generator=g) * 0.1 for x in inputs)
    return None


# name -> (constructor, baseline kind, extra attribute() kwargs)
METHODS = {
    "Saliency": (Saliency, None, {}),
    "InputXGradient": (InputXGradient, None, {}),
    "IntegratedGradients": (IntegratedGradients, "point", {"n_steps": 5}),
    "SplitIntegratedGradients": (SplitIntegratedGradients, "point", {"n_steps": 5}),
    "GradientShap": (GradientShap, "dist", {"n_samples": 3, "stdevs": 0.1, "seed": 0}),
    "DeepLift": (DeepLift, "point", {}),
    "DeepLiftShap": (DeepLiftShap, "dist", {}),
    "GuidedBackprop": (GuidedBackprop, None, {}),
    "Deconvolution": (Deconvolution, None, {}),
    "NoiseTunnel(Saliency)": (lambda m: NoiseTunnel(Saliency(m)), None, {"nt_samples": 3, "stdevs": 0.1, "seed": 0,
                                                                         "nt_type": "smoothgrad_sq"}),
}
NAMES = list(METHODS)


def run(name, model, inputs, *, baselines="default", **kw):
    ctor, kind, extra = METHODS[name]
    xs = inputs if isinstance(inputs, tuple) else (inputs,)
    args = {**extra, **kw}
    if kind is not None:
        if isinstance(baselines, str):
            b = _baselines(xs, kind)
            args["baselines"] = b if isinstance(inputs, tuple) else b[0]
        elif baselines is not None:
            args["baselines"] = baselines
    return ctor(model).attribute(inputs, **args)


def as_tuple(a):
    return a if isinstance(a, tuple) else (a,)


def close(a, b, atol=1e-5):
    return all(torch.allclose(x, y, atol=atol, rtol=1e-4) for x, y in zip(as_tuple(a), as_tuple(b)))


@pytest.fixture
def cnn():
    """The shared CNN (reused nn.ReLU, functional relu and max pooling) at 8x8 to keep the suite fast."""
    torch.manual_seed(0)
    return SmallCNN(size=8).eval()


@pytest.fixture
def x_cnn():
    torch.manual_seed(1)
    return torch.randn(3, 3, 8, 8)


# ---- targets -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_equivalent_target_forms(name, cnn, x_cnn):
    ref = run(name, cnn, x_cnn, target=4)
    for form in [(4,), [4, 4, 4], torch.tensor([4, 4, 4]), torch.tensor(4), [(4,), (4,), (4,)], -6,
                 lambda out: out[:, 4]]:
        assert close(run(name, cnn, x_cnn, target=form), ref, atol=1e-6), form


@pytest.mark.parametrize("name", NAMES)
def test_per_example_targets_follow_their_example(name, cnn, x_cnn):
    targets = [1, 7, 3]
    got = run(name, cnn, x_cnn, target=targets)
    assert close(run(name, cnn, x_cnn, target=torch.tensor(targets)), got, atol=1e-6)
    for i, t in enumerate(targets):
        assert close(run(name, cnn, x_cnn, target=t)[i], got[i], atol=1e-6)
    assert not torch.allclose(got[0], run(name, cnn, x_cnn, target=7)[0])  # the target matters


@pytest.mark.parametrize("name", NAMES)
def test_callable_target_on_a_regression_model(name):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    x = torch.randn(3, 4)
    assert close(run(name, model, x, target=lambda o: o.sum(1)), run(name, model, x, target=None), atol=1e-6)
    assert close(run(name, model, x, target=lambda o: o[:, 0]), run(name, model, x, target=0), atol=1e-6)


# ---- multi-input models and extra arguments --------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_multi_input_with_shared_extra_args_equals_closure(name, multi_input):
    torch.manual_seed(0)
    x = (torch.randn(4, 4), torch.randn(4, 3))
    offset = torch.randn(1, 5)
    got = run(name, multi_input, x, target=1, additional_forward_args=(2.0,), forward_kwargs={"offset": offset})
    assert isinstance(got, tuple) and got[0].shape == (4, 4) and got[1].shape == (4, 3)
    closure = lambda a, b: multi_input(a, b, 2.0, offset=offset)
    assert close(got, run(name, closure, x, target=1), atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_multi_input_per_example_extra_args(name, multi_input):
    torch.manual_seed(0)
    n = 4
    x = (torch.randn(n, 4), torch.randn(n, 3))
    scale, offset = torch.tensor([0.5, 2.0, -1.0, 1.5]), torch.randn(n, 5)
    got = run(name, multi_input, x, target=[0, 1, 1, 0], additional_forward_args=scale,
              forward_kwargs={"offset": offset})
    for i in range(n):  # example i's arguments given to every example: row i must not change
        ref = run(name, multi_input, x, target=[0, 1, 1, 0], additional_forward_args=scale[i].expand(n),
                  forward_kwargs={"offset": offset[i].expand(n, 5)})
        assert close(tuple(g[i] for g in got), tuple(r[i] for r in ref), atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_return_form_follows_input_form(name, linear):
    x = torch.randn(2, 6)
    assert isinstance(run(name, linear, x, target=0), torch.Tensor)
    out = run(name, linear, (x,), target=0)
    assert isinstance(out, tuple) and len(out) == 1 and out[0].shape == x.shape


@pytest.mark.parametrize("name", NAMES)
def test_model_writing_its_input_in_place(name):
    """A model whose first op is in place (nn.ReLU(inplace=True)) works and the caller's input is not written."""
    torch.manual_seed(0)
    lin = nn.Linear(6, 3)
    x = torch.randn(3, 6)
    x0 = x.clone()
    got = run(name, nn.Sequential(nn.ReLU(inplace=True), lin), x, target=0)
    assert torch.equal(x, x0)
    assert close(got, run(name, nn.Sequential(nn.ReLU(), lin), x, target=0), atol=1e-6)


# ---- chunking -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_identical_for_every_chunk_size_and_budget(name, cnn, x_cnn):
    ref = run(name, cnn, x_cnn, target=[2, 0, 9], batch_size=1)
    for bs in (3, 7, None):
        assert close(run(name, cnn, x_cnn, target=[2, 0, 9], batch_size=bs), ref), bs
    with pellucid.set_memory_budget("4KB"):  # far below one row: one row per call
        assert close(run(name, cnn, x_cnn, target=[2, 0, 9]), ref)
    with pellucid.set_memory_budget("1GB"):
        assert close(run(name, cnn, x_cnn, target=[2, 0, 9]), ref)


@pytest.mark.parametrize("name", ["IntegratedGradients", "DeepLift", "NoiseTunnel(Saliency)"])
def test_show_progress_changes_nothing(name, cnn, x_cnn, capsys):
    assert close(run(name, cnn, x_cnn, target=1, show_progress=True), run(name, cnn, x_cnn, target=1))


def test_captum_batch_names_are_accepted(cnn, x_cnn):
    a = IntegratedGradients(cnn).attribute(x_cnn, target=1, n_steps=6, internal_batch_size=4)
    b = IntegratedGradients(cnn).attribute(x_cnn, target=1, n_steps=6, batch_size=5)
    assert close(a, b)
    c = SplitIntegratedGradients(cnn).attribute(x_cnn, target=1, n_steps=6, internal_batch_size=4)
    assert c.shape == x_cnn.shape


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 4), d=st.integers(1, 5), bs=st.one_of(st.none(), st.integers(1, 9)),
       steps=st.integers(1, 6), name=st.sampled_from(["IntegratedGradients", "DeepLift", "GradientShap", "Saliency"]))
def test_property_shapes_and_chunk_invariance(n, d, bs, steps, name):
    torch.manual_seed(n * 31 + d)
    model = nn.Sequential(nn.Linear(d, 5), nn.Tanh(), nn.Linear(5, 2))
    x = torch.randn(n, d)
    kw = {"n_steps": steps} if name == "IntegratedGradients" else {}
    ref = run(name, model, x, target=1, batch_size=1, **kw)
    got = run(name, model, x, target=1, batch_size=bs, **kw)
    assert got.shape == x.shape and close(got, ref, atol=1e-6)


# ---- errors ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_integer_inputs_rejected(name, linear):
    with pytest.raises(TypeError, match="inputs\\[0\\] has dtype torch.int64.*floating-point"):
        run(name, linear, torch.ones(2, 6, dtype=torch.long), target=0, baselines=None)


@pytest.mark.parametrize("name", NAMES)
def test_mismatched_input_batches_rejected(name, multi_input):
    with pytest.raises(ValueError, match="share the batch size.*inputs\\[1\\] has 3"):
        run(name, multi_input, (torch.randn(2, 4), torch.randn(3, 3)), target=0, additional_forward_args=(1.0,))


@pytest.mark.parametrize("name", [n for n in NAMES if METHODS[n][1] is not None])
def test_mismatched_baselines_rejected(name, linear):
    with pytest.raises(ValueError, match="baselines.*has shape \\(2, 5\\)"):
        run(name, linear, torch.randn(2, 6), target=0, baselines=torch.zeros(2, 5))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("target", [10, [0, 12, 1], (0, 1), None])
def test_bad_targets_rejected_and_model_unchanged(name, cnn, x_cnn, target):
    before = model_state(cnn)
    with pytest.raises(ValueError, match="out of range|target indexes|target is None"):
        run(name, cnn, x_cnn, target=target)
    assert_same_state(before, model_state(cnn))
    assert_no_global_state_left()


class DictModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(6, 3)

    def forward(self, x):
        return {"logits": self.lin(x)}


@pytest.mark.parametrize("name", NAMES)
def test_non_tensor_output(name):
    model = DictModel()
    x = torch.randn(2, 6)
    with pytest.raises(TypeError, match="model returned dict, not a tensor"):
        run(name, model, x, target=0)
    # a callable target picks the tensor it needs
    got = run(name, model, x, target=lambda o: o["logits"][:, 0])
    assert close(got, run(name, model.lin, x, target=0), atol=1e-6)


# ---- model state ------------------------------------------------------------------------------------------------
def _mixed_state(cnn):
    cnn.train()
    cnn.conv2.eval()
    cnn.fc2.bias.requires_grad_(False)
    return cnn


@pytest.mark.parametrize("name", NAMES)
def test_model_unchanged_after_success(name, cnn, x_cnn):
    model = _mixed_state(cnn)
    before = model_state(model)
    run(name, model, x_cnn, target=1)
    assert_same_state(before, model_state(model))


@pytest.mark.parametrize("name", NAMES)
def test_batchnorm_statistics_restored_for_a_model_left_in_training_mode(name):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 2)).train()
    before = model_state(model)
    run(name, model, torch.randn(5, 4), target=0)
    assert_same_state(before, model_state(model))


def assert_no_global_state_left():
    """No torch function mode, saved-tensor hook or global module hook left behind; grad mode restored."""
    assert torch._C._len_torch_function_stack() == 0
    assert torch._C._autograd._top_saved_tensors_default_hooks(False) is None
    assert len(torch.nn.modules.module._global_forward_hooks) == 0
    assert torch.is_grad_enabled()


class Flaky(nn.Module):
    """Raises on its ``fail_at``-th forward call (counting from 1)."""

    def __init__(self, inner, fail_at):
        super().__init__()
        self.inner, self.fail_at, self.calls = inner, fail_at, 0

    def forward(self, x):
        self.calls += 1
        if self.calls >= self.fail_at:
            raise RuntimeError("model failed")
        return self.inner(x)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("fail_at", [2, 3])
def test_model_unchanged_after_exception_mid_call(name, cnn, x_cnn, fail_at):
    model = Flaky(_mixed_state(cnn), fail_at)
    before = model_state(model)
    with pytest.raises(RuntimeError, match="model failed"):
        run(name, model, x_cnn, target=1, batch_size=1)
    assert_same_state(before, model_state(model))
    assert_no_global_state_left()
    model.fail_at = 10**9  # the model still works normally, with the same attributions as a fresh one
    assert close(run(name, model, x_cnn, target=1), run(name, cnn, x_cnn, target=1), atol=1e-6)
