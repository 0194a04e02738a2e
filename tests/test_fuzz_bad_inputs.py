"""Bad arguments, fuzzed over every attribution class (issue 15).

Every class exported from ``pellucid.attr`` (an :class:`~pellucid.attr.Attribution` subclass with an
``attribute`` method) is discovered from ``pellucid.attr.__all__`` and constructed from its constructor's
signature with one small CNN (``model``/``forward_func``, ``layer``, ``attribution_method``); a class added later
is fuzzed automatically, and one that cannot be constructed or called generically fails
:func:`test_every_exported_class_is_fuzzed` until it is given a factory or valid arguments below (with a reason).

For each argument a class takes, hypothesis generates bad forms of it and every call must

* raise ``ValueError`` or ``TypeError`` whose message names the argument (and, for a wrong-length target, speaks
  of the length the user passed), or, where the library's rule says so, succeed as documented:
  NaN/Inf inputs propagate with a ``RuntimeWarning`` naming ``inputs``; inputs of another dtype than the model
  reach the model, whose own error then carries a note naming ``inputs``;
* re-raise the model's own exception unchanged (the same object, no note) when the model fails mid-call;
* leave the model exactly as it was (parameters, buffers, modes, ``requires_grad``, hooks, attributes) and no
  global torch state behind.

Deterministic (``derandomize=True``) and sized to run in well under a minute.
"""
from __future__ import annotations

import inspect
import math
import os
import re
import warnings
from typing import Any, Callable

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from torch import nn

import pellucid.attr as attr
from conftest import assert_same_state, model_state
from pellucid.attr import Attribution, Saliency
from pellucid.core.paths import METHODS as PATH_METHODS

# PELLUCID_FUZZ_DEVICE=cuda runs the suite with the model and the valid inputs on a GPU (default: cpu)
DEVICE = torch.device(os.environ.get("PELLUCID_FUZZ_DEVICE", "cpu"))
N = 3  # examples per call
SHAPE = (3, 4, 4)  # one example
LAYER_SHAPE = (4, 4, 4)  # the activations of the fuzzed layer (conv2)
N_OUT = 3  # model outputs per example


class FuzzNet(nn.Module):
    """3x4x4 -> 3 classes: conv, batch norm (non-trivial running statistics), ReLU, conv, ReLU, average pooling,
    linear. ``fail_at = k`` makes its k-th forward (counted from 1) raise ``error``, the model's own exception."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(16, N_OUT)
        self.calls = 0
        self.fail_at: int | None = None
        self.error: Exception | None = None

    def forward(self, x):
        self.calls += 1
        if self.fail_at is not None and self.calls >= self.fail_at:
            raise self.error
        h = self.relu1(self.bn(self.conv1(x)))
        return self.fc(self.pool(self.relu2(self.conv2(h))).flatten(1))


def fuzz_model() -> FuzzNet:
    """The model in a mixed state that every call must restore exactly."""
    torch.manual_seed(0)
    model = FuzzNet().eval()
    with torch.no_grad():
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 2.0)
    model.relu1.train()  # one module in training mode (the ReLU behaves the same)
    model.fc.bias.requires_grad_(False)
    return model.to(DEVICE)


def valid_inputs() -> torch.Tensor:
    return torch.randn((N,) + SHAPE, generator=torch.Generator().manual_seed(1)).to(DEVICE)


# -- discovery and generic construction -------------------------------------------------------------------------
# classes that cannot be constructed from the signature alone: name -> (factory(model), reason)
FACTORIES: dict[str, tuple[Callable[[nn.Module], Any], str]] = {}
# classes not fuzzed here at all: name -> reason
_TEXT = ("wraps another method over text prompts (an InterpretableInput and a tokenizer, not tensors), so the "
         "tensor forms fuzzed here do not apply; tests/attr/test_llm.py tests it")
NOT_FUZZED: dict[str, str] = {
    "LLMAttribution": _TEXT, "LLMGradientAttribution": _TEXT,
    "LimeBase": "Captum's per-sample LIME: inputs of any type (one example, mapped by the user's perturb/transform "
                "callables), so the tensor forms fuzzed here do not apply; tests/attr/test_captum_drop_in_b.py "
                "tests it",
}
FEATURE_MASK = torch.arange(4).reshape(1, 1, 2, 2).repeat_interleave(2, 2).repeat_interleave(2, 3).expand(1, *SHAPE)
# a valid value for every attribute() argument that is required or needs a small value to keep the suite fast
VALID = {
    "target": 1, "neuron_selector": (0, 1, 1), "sliding_window_shapes": (3, 2, 2), "n_steps": 3, "n_samples": 3,
    "nt_samples": 2, "feature_mask": FEATURE_MASK,
}
RANDOM = {"seed": 0}  # given where a class takes it, so every call is reproducible


def attribution_classes() -> list[str]:
    names = []
    for name in attr.__all__:
        obj = getattr(attr, name)
        if inspect.isclass(obj) and issubclass(obj, Attribution) and callable(getattr(obj, "attribute", None)):
            names.append(name)
    return sorted(names)


CLASSES = attribution_classes()


class NotGeneric(Exception):
    """A class that this module cannot construct or call from its signature alone."""


def construct(name: str, model: nn.Module, **override: Any) -> Attribution:
    """``cls(...)`` with the model, its layer ``conv2`` and ``Saliency(model)`` for the arguments of those names."""
    if name in FACTORIES:
        return FACTORIES[name][0](model)
    cls = getattr(attr, name)
    kwargs: dict[str, Any] = {}
    for p in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.name in override:
            kwargs[p.name] = override[p.name]
        elif p.name in ("model", "forward_func"):
            kwargs[p.name] = model
        elif p.name == "layer":
            kwargs[p.name] = model.conv2
        elif p.name == "attribution_method":
            kwargs[p.name] = Saliency(model)
        elif p.default is p.empty:
            raise NotGeneric(f"{name}.__init__ needs {p.name!r}; add {name} to FACTORIES with a reason")
    return cls(**kwargs)


def attribute_params(name: str) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(getattr(attr, name).attribute).parameters)


def takes(name: str, arg: str) -> bool:
    params = attribute_params(name)
    return arg in params or (arg == "target" and _var_keyword(params))


def _var_keyword(params: dict[str, inspect.Parameter]) -> bool:
    """A method passing ``**kwargs`` on to a wrapped method (NoiseTunnel) takes the wrapped method's arguments."""
    return any(p.kind is p.VAR_KEYWORD for p in params.values())


def valid_kwargs(name: str) -> dict[str, Any]:
    params = attribute_params(name)
    kwargs: dict[str, Any] = {}
    for p in list(params.values())[1:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name == "inputs":
            continue
        if p.name in VALID:
            kwargs[p.name] = VALID[p.name]
        elif p.name in RANDOM:
            kwargs[p.name] = RANDOM[p.name]
        elif p.default is p.empty:
            raise NotGeneric(f"{name}.attribute needs {p.name!r}; add a valid value to VALID")
    if _var_keyword(params) and "target" not in params:
        kwargs["target"] = VALID["target"]
    return kwargs


def _generic(name: str) -> bool:
    try:
        construct(name, fuzz_model())
        valid_kwargs(name)
    except NotGeneric:
        return False  # test_every_exported_class_is_fuzzed fails and says what to add
    return True


FUZZED = [n for n in CLASSES if n not in NOT_FUZZED and _generic(n)]
_instances: dict[str, tuple[FuzzNet, Attribution]] = {}


def instance(name: str) -> tuple[FuzzNet, Attribution]:
    """One model and instance per class, reused by every example: each bad call must leave them as they were."""
    if name not in _instances:
        model = fuzz_model()
        _instances[name] = (model, construct(name, model))
    return _instances[name]


def taking(arg: str) -> list[str]:
    return [n for n in FUZZED if takes(n, arg)]


def classes_taking(*args: str) -> list[tuple[str, str]]:
    return [(n, a) for a in args for n in FUZZED if takes(n, a)]


# -- running one call and checking its outcome -----------------------------------------------------------------------
def assert_no_global_state_left() -> None:
    assert torch._C._len_torch_function_stack() == 0
    assert torch._C._autograd._top_saved_tensors_default_hooks(False) is None
    assert len(torch.nn.modules.module._global_forward_hooks) == 0
    assert torch.is_grad_enabled()


def call(name: str, _model: nn.Module | None = None, _method: Attribution | None = None, **override: Any):
    """``(result or None, exception or None, warnings)`` of ``attribute`` with the valid arguments and ``override``;
    checks the model is unchanged and no global state is left."""
    model, method = (_model, _method) if _method is not None else instance(name)
    kwargs = {**valid_kwargs(name), **override}
    inputs = kwargs.pop("inputs", valid_inputs())
    before = model_state(model)
    result, error = None, None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = method.attribute(inputs, **kwargs)
        except Exception as e:  # noqa: BLE001 - the outcome is checked by the caller
            error = e
    assert_same_state(before, model_state(model))
    assert_no_global_state_left()
    return result, error, [w for w in caught]


def describe(name: str, override: dict) -> str:
    shown = {k: f"tensor{tuple(v.shape)} {v.dtype}" if isinstance(v, torch.Tensor) else v for k, v in override.items()}
    return f"{name}.attribute(..., {shown})"


def expect_error(name: str, arg: str, mentions: tuple[str, ...] = (), **override: Any) -> None:
    """A ``ValueError``/``TypeError`` naming ``arg`` (and every string in ``mentions``)."""
    _, error, _ = call(name, **override)
    where = describe(name, override)
    assert error is not None, f"{where} was accepted silently"
    assert isinstance(error, (ValueError, TypeError)), f"{where} raised {type(error).__name__}: {error}"
    message = str(error)
    assert arg in message, f"{where}: the message does not name {arg!r}: {message}"
    for m in mentions:
        assert re.search(rf"\b{re.escape(m)}\b", message), f"{where}: the message does not mention {m!r}: {message}"


FUZZ = settings(  # no shrinking: the first failing example is reported as drawn (derandomized, so reproducible)
    max_examples=4, deadline=None, derandomize=True, database=None, print_blob=False,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
FEW = settings(FUZZ, max_examples=2)


# -- the suite covers every class ---------------------------------------------------------------------------------
def test_every_exported_class_is_fuzzed():
    """Discovery finds the classes, each is constructible and its valid call succeeds quietly; a new class that is
    not constructible from its signature must be given a factory or a reason here."""
    assert len(CLASSES) >= 47
    problems = []
    for name in CLASSES:
        if name in NOT_FUZZED:
            continue
        try:
            model = fuzz_model()
            method = construct(name, model)
            valid_kwargs(name)
        except NotGeneric as e:
            problems.append(str(e))
            continue
        result, error, caught = call(name, model, method)
        if error is not None:
            problems.append(f"{name}: the valid call raised {type(error).__name__}: {error}")
        elif caught:
            problems.append(f"{name}: the valid call warned: {[str(w.message) for w in caught]}")
    assert not problems, "\n".join(problems)


# -- inputs -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", FUZZED)
@FEW
@given(empty=st.sampled_from(["tensor", "tuple"]), trailing=st.sampled_from([SHAPE, (5,), ()]))
def test_empty_batch_is_a_value_error_naming_inputs(name, empty, trailing):
    x = torch.zeros((0,) + trailing)
    expect_error(name, "inputs", ("empty",), inputs=x if empty == "tensor" else (x,))


@pytest.mark.parametrize("name", FUZZED)
@FEW
@given(value=st.one_of(
    st.none(), st.text(max_size=3), st.floats(allow_nan=False), st.lists(st.floats(-1, 1), max_size=3),
    st.builds(lambda: np.zeros((N,) + SHAPE, dtype=np.float32)), st.just(torch.tensor(1.0)),
    st.builds(lambda: (valid_inputs(), valid_inputs()[:1])),
))
def test_inputs_of_the_wrong_kind(name, value):
    expect_error(name, "inputs", inputs=value)


@pytest.mark.parametrize("name", FUZZED)
@FEW
@given(extra=st.integers(1, 2))
def test_more_inputs_than_the_model_takes(name, extra):
    x = valid_inputs()
    expect_error(name, "inputs", inputs=(x,) * (1 + extra))


# methods whose attribution of one example uses the others (permutation across the batch): a NaN example changes
# them all, by definition
ROW_MIXING = {"FeaturePermutation", "LayerFeaturePermutation"}
_clean: dict[str, Any] = {}


def clean_result(name: str) -> Any:
    if name not in _clean:
        result, error, _ = call(name)
        assert error is None, error
        _clean[name] = result
    return _clean[name]


def as_tuple(value: Any) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


@pytest.mark.parametrize("name", FUZZED)
@FUZZ
@given(positions=st.lists(st.integers(0, N * math.prod(SHAPE) - 1), min_size=1, max_size=5, unique=True),
       value=st.sampled_from([math.nan, math.inf, -math.inf]))
def test_nonfinite_inputs_propagate_with_a_warning_naming_inputs(name, positions, value):
    """The rule for NaN/Inf inputs, the same in every method: no exception from inside the method (a surrogate
    fit, a decomposition), a result, and a RuntimeWarning naming ``inputs`` and the examples concerned."""
    x = valid_inputs()
    x.view(-1)[torch.tensor(positions)] = value
    result, error, caught = call(name, inputs=x)
    where = describe(name, {"inputs": f"NaN/Inf at {positions}"})
    assert error is None, f"{where} raised {type(error).__name__}: {error}"
    assert result is not None
    examples = sorted({p // math.prod(SHAPE) for p in positions})
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert any("inputs" in m and ", ".join(map(str, examples)) in m for m in messages), (where, messages)
    if name in ROW_MIXING:
        return
    clean = clean_result(name)  # the other examples' attributions are those of the clean batch
    for i in sorted(set(range(N)) - set(examples)):
        for got, ref in zip(as_tuple(result), as_tuple(clean)):
            torch.testing.assert_close(got[i], ref[i], atol=1e-5, rtol=1e-4, msg=f"{where}: example {i} changed")


@pytest.mark.parametrize("name", taking("baselines"))
@FEW
@given(position=st.integers(0, math.prod(SHAPE) - 1), value=st.sampled_from([math.nan, math.inf]))
def test_nonfinite_baselines_propagate_with_a_warning_naming_baselines(name, position, value):
    b = torch.zeros((1,) + SHAPE)
    b.view(-1)[position] = value
    result, error, caught = call(name, baselines=b)
    assert error is None, f"{name} with a NaN/Inf baseline raised {type(error).__name__}: {error}"
    assert any("baselines" in str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)), name


@pytest.mark.parametrize("name", FUZZED)
@FEW
@given(dtype=st.sampled_from([torch.float64, torch.float16, torch.int64]))
def test_inputs_of_another_dtype_than_the_model(name, dtype):
    """Reach the model (it may cast them); if the model fails, its own error comes back with a note naming
    ``inputs``; gradient methods reject integer inputs with a TypeError naming ``inputs``."""
    x = valid_inputs().to(dtype)
    result, error, _ = call(name, inputs=x)
    if error is None:
        return
    where = describe(name, {"inputs": x})
    if isinstance(error, TypeError) and "inputs" in str(error):
        return
    assert isinstance(error, RuntimeError), f"{where} raised {type(error).__name__}: {error}"
    assert any("inputs" in note and str(dtype) in note for note in getattr(error, "__notes__", ())), (where, error)


@pytest.mark.skipif(DEVICE.type == "cpu", reason="needs PELLUCID_FUZZ_DEVICE set to an accelerator")
@pytest.mark.parametrize("name", FUZZED)
def test_inputs_on_another_device_than_the_model(name):
    """CPU inputs to a GPU model reach the model; its own error then carries a note naming ``inputs``."""
    result, error, _ = call(name, inputs=valid_inputs().cpu())
    if error is None:
        return
    assert isinstance(error, RuntimeError), f"{name} raised {type(error).__name__}: {error}"
    assert any("inputs" in note and str(DEVICE) in note for note in getattr(error, "__notes__", ())), (name, error)


# -- the model fails -----------------------------------------------------------------------------------------------
class ModelFailure(Exception):
    """The model's own exception (not a pellucid error)."""


@pytest.mark.parametrize("name", FUZZED)
@FUZZ
@given(fail_at=st.integers(1, 4))
def test_the_models_own_exception_is_reraised_unchanged(name, fail_at):
    model, method = instance(name)
    error = ModelFailure(f"forward {fail_at} failed")
    model.calls, model.fail_at, model.error = 0, fail_at, error
    try:
        _, raised, _ = call(name)
    finally:
        model.fail_at, model.error = None, None
    if raised is None:
        assert model.calls < fail_at, f"{name}: the model failed but the call returned"
        return
    assert raised is error, f"{name} replaced the model's exception with {type(raised).__name__}: {raised}"
    assert not getattr(raised, "__notes__", None), f"{name} added notes to the model's exception: {raised.__notes__}"


# -- baselines ----------------------------------------------------------------------------------------------------
def _broadcasts(shape: tuple[int, ...], full: tuple[int, ...]) -> bool:
    try:
        return len(shape) <= len(full) and torch.broadcast_shapes(shape, full) == full
    except RuntimeError:
        return False


def _bad_shapes(trailing: tuple[int, ...]) -> st.SearchStrategy:
    """Shapes no baseline or mask form accepts: neither broadcastable to ``(N, *trailing)`` nor ``(S, *trailing)``."""
    return st.lists(st.integers(1, 5), min_size=1, max_size=len(trailing) + 1).map(tuple).filter(
        lambda s: not _broadcasts(s, (N,) + trailing) and s[1:] != trailing
    )


BAD_BASELINE = st.one_of(
    _bad_shapes(SHAPE).map(torch.zeros), st.text(max_size=2), st.builds(object),
    st.builds(lambda: (torch.zeros(SHAPE), torch.zeros(SHAPE))),
)


@pytest.mark.parametrize("name", taking("baselines"))
@FUZZ
@given(value=BAD_BASELINE)
def test_bad_baselines(name, value):
    expect_error(name, "baselines", baselines=value)


@pytest.mark.parametrize("name", taking("layer_baselines"))
@FUZZ
@given(value=st.one_of(_bad_shapes(LAYER_SHAPE).map(torch.zeros), st.text(max_size=2)))
def test_bad_layer_baselines(name, value):
    expect_error(name, "layer_baselines", layer_baselines=value)


# -- target ---------------------------------------------------------------------------------------------------------
BAD_TARGET = st.one_of(
    st.integers(N_OUT, 10**6), st.integers(-(10**6), -N_OUT - 1), st.integers(2**63, 2**80),
    st.tuples(st.integers(2**63, 2**80)), st.lists(st.integers(2**63, 2**80), min_size=N, max_size=N), st.floats(), st.booleans(), st.text(max_size=2),
    st.lists(st.integers(0, N_OUT - 1), max_size=6).filter(lambda t: len(t) != N),
    st.lists(st.integers(N_OUT, 50), min_size=N, max_size=N),
    st.builds(lambda: torch.tensor([0.5] * N)),
    st.integers(0, 6).filter(lambda k: k not in (1, N)).map(lambda k: torch.zeros(k, dtype=torch.long)),
    st.builds(lambda: torch.zeros(N + 1, 2, dtype=torch.long)),
    st.tuples(st.integers(0, 2), st.integers(0, 2)),
)


@pytest.mark.parametrize("name", taking("target"))
@settings(FUZZ, max_examples=6)
@given(value=BAD_TARGET)
def test_bad_target(name, value):
    wrong_length = isinstance(value, list) and len(value) != N
    expect_error(name, "target", (str(len(value)),) if wrong_length else (), target=value)


@pytest.mark.parametrize("name", ["Saliency", "FeatureAblation", "LayerGradCam", "NoiseTunnel"])
@FEW
@given(targets=st.lists(st.integers(-N_OUT, N_OUT - 1), min_size=N, max_size=N))
def test_numpy_targets_are_their_python_and_torch_forms(name, targets):
    """Not an error: numpy integers and integer arrays select the same outputs as ints and tensors."""
    same = [(np.int64(targets[0]), targets[0]), (np.array(targets), torch.tensor(targets)),
            ([np.int32(t) for t in targets], targets)]
    for numpy_form, plain_form in same:
        got, error, _ = call(name, target=numpy_form)
        assert error is None, f"{name}: target={numpy_form!r} raised {error}"
        torch.testing.assert_close(got, call(name, target=plain_form)[0], rtol=0, atol=0)


# -- extra forward arguments ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", FUZZED)
@FEW
@given(value=st.one_of(
    st.builds(lambda: torch.ones(N)), st.tuples(st.integers(), st.floats(allow_nan=False)),
    st.lists(st.builds(lambda: torch.ones(N, 2)), min_size=1, max_size=2),
))
def test_additional_forward_args_the_model_does_not_take(name, value):
    expect_error(name, "additional_forward_args", additional_forward_args=value)


@pytest.mark.parametrize("name", FUZZED)
@FEW
@given(value=st.one_of(
    st.dictionaries(st.from_regex(r"[a-z]\w{0,5}", fullmatch=True), st.integers(), min_size=1, max_size=2),
    st.text(max_size=2), st.lists(st.integers(), min_size=1, max_size=2),
))
def test_bad_forward_kwargs(name, value):
    expect_error(name, "forward_kwargs", forward_kwargs=value)


@pytest.mark.parametrize("name", FUZZED)
@FEW
@given(keyword=st.sampled_from(["baseline", "targets", "additional_args", "nsteps", "internal_batchsize"]))
def test_misspelled_keywords(name, keyword):
    if takes(name, keyword):
        return
    expect_error(name, keyword, **{keyword: 1})


# -- counts and sizes -----------------------------------------------------------------------------------------------
COUNTS = ("n_steps", "n_samples", "nt_samples", "perturbations_per_eval", "internal_batch_size", "batch_size",
          "nt_samples_batch_size")
BAD_COUNT = st.one_of(st.integers(-(10**6), 0), st.floats(allow_nan=True), st.text(max_size=2), st.booleans())
SAMPLE_COUNTS = ("n_steps", "n_samples", "nt_samples")  # rows to build: beyond int64 is an error (a batch size is not)


@pytest.mark.parametrize("name,arg", classes_taking(*COUNTS))
@FUZZ
@given(data=st.data())
def test_bad_counts(name, arg, data):
    value = data.draw(st.one_of(BAD_COUNT, st.integers(2**63, 2**80)) if arg in SAMPLE_COUNTS else BAD_COUNT)
    expect_error(name, arg, **{arg: value})


@pytest.mark.parametrize("name", taking("stdevs"))
@FUZZ
@given(value=st.one_of(
    st.floats(max_value=-1e-6), st.just(math.nan), st.just(math.inf), st.text(max_size=2),
    st.lists(st.floats(0, 1), min_size=2, max_size=3).map(tuple),
))
def test_bad_stdevs(name, value):
    expect_error(name, "stdevs", stdevs=value)


CHOICES = {"method": PATH_METHODS, "nt_type": ("smoothgrad", "smoothgrad_sq", "vargrad"),
           "interpolate_mode": ("nearest", "linear", "bilinear", "trilinear", "bicubic", "area", "nearest-exact")}


@pytest.mark.parametrize("name,arg", classes_taking(*CHOICES))
@FEW
@given(data=st.data())
def test_bad_choices(name, arg, data):
    value = data.draw(st.one_of(st.text(max_size=6).filter(lambda v: v not in CHOICES[arg]), st.integers()))
    expect_error(name, arg, **{arg: value})


# -- feature masks, windows ------------------------------------------------------------------------------------------
def _bad_masks(trailing: tuple[int, ...]) -> st.SearchStrategy:
    return st.one_of(
        st.builds(lambda: torch.full((1,) + trailing, 0.5)),  # ids that are not whole numbers
        st.builds(lambda: -torch.ones((1,) + trailing, dtype=torch.long)),
        _bad_shapes(trailing).map(lambda s: torch.zeros(s, dtype=torch.long)),
        st.builds(lambda: (torch.zeros(trailing, dtype=torch.long),) * 2),
        st.text(max_size=2),
    )


@pytest.mark.parametrize("name", taking("feature_mask"))
@FUZZ
@given(value=_bad_masks(SHAPE))
def test_bad_feature_mask(name, value):
    expect_error(name, "feature_mask", feature_mask=value)


@pytest.mark.parametrize("name", taking("layer_mask"))
@FUZZ
@given(value=_bad_masks(LAYER_SHAPE))
def test_bad_layer_mask(name, value):
    expect_error(name, "layer_mask", layer_mask=value)


@pytest.mark.parametrize("name", taking("sliding_window_shapes"))
@FUZZ
@given(value=st.one_of(
    st.tuples(st.integers(4, 9), st.integers(1, 4), st.integers(1, 4)),
    st.tuples(st.integers(1, 3), st.integers(-3, 0), st.integers(1, 4)),
    st.lists(st.integers(1, 2), min_size=1, max_size=5).filter(lambda v: len(v) != 3).map(tuple),
    st.text(max_size=2),
))
def test_bad_sliding_window_shapes(name, value):
    expect_error(name, "sliding_window_shapes", sliding_window_shapes=value)


@pytest.mark.parametrize("name", taking("strides"))
@FUZZ
@given(value=st.one_of(
    st.integers(-3, 0), st.lists(st.integers(1, 2), min_size=1, max_size=5).filter(lambda v: len(v) != 3).map(tuple),
    st.text(max_size=2), st.floats(0.1, 0.9),
))
def test_bad_strides(name, value):
    expect_error(name, "strides", strides=value)


@pytest.mark.parametrize("name", taking("strides"))
@pytest.mark.parametrize("value", [2**70, (1, 2**63, 1)])
def test_strides_beyond_int64(name, value):
    """Was an OverflowError from torch; a stride of 2**62 (past the input) is still valid: one window position."""
    expect_error(name, "strides", strides=value)
    _, error, _ = call(name, strides=2**62)
    assert error is None, error


# -- neuron selectors, random state -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", taking("neuron_selector"))
@FUZZ
@given(value=st.one_of(
    st.tuples(st.integers(4, 20), st.integers(0, 3), st.integers(0, 3)),
    st.tuples(st.integers(0, 3), st.integers(-20, -5), st.integers(0, 3)),
    st.lists(st.integers(0, 3), max_size=5).filter(lambda v: len(v) != 3).map(tuple),
    st.integers(), st.floats(), st.text(max_size=2), st.just(None),
))
def test_bad_neuron_selector(name, value):
    expect_error(name, "neuron_selector", neuron_selector=value)


@pytest.mark.parametrize("name", taking("neuron_selector"))
@pytest.mark.parametrize("value", [(0, slice(0, 4, 0), 1), (0, slice(None, None, -1), 1),
                                   (0, slice(2, 2), 1), (0, 1, slice(5, None)), (0, slice("a"), 1)])
def test_neuron_selector_slices_that_select_nothing(name, value):
    """A zero or negative step (was Python's "slice step cannot be zero"), an empty slice (was silently zero
    attributions) and a non-int bound are errors naming neuron_selector; a non-empty slice is valid."""
    expect_error(name, "neuron_selector", neuron_selector=value)
    _, error, _ = call(name, neuron_selector=(0, slice(1, 4, 2), 1))
    assert error is None, error


@pytest.mark.parametrize("name,arg", classes_taking("generator", "seed"))
@FEW
@given(value=st.one_of(st.text(max_size=2), st.floats(), st.builds(object)))
def test_bad_random_state(name, arg, value):
    override = {arg: value}
    if arg == "generator":
        override["seed"] = None
    expect_error(name, arg, **override)


# -- constructors -----------------------------------------------------------------------------------------------------
def _init_params(name: str) -> set[str]:
    return set(inspect.signature(getattr(attr, name).__init__).parameters)


CONSTRUCTOR_ARGS = [(n, a) for n in FUZZED if n not in FACTORIES
                    for a in ("model", "forward_func", "layer", "attribution_method") if a in _init_params(n)]


@pytest.mark.parametrize("name,arg", CONSTRUCTOR_ARGS)
@FEW
@given(value=st.one_of(st.integers(), st.text(max_size=2), st.builds(lambda: nn.Conv2d(4, 4, 3))))
def test_bad_constructor_arguments(name, arg, value):
    """A model that is not callable, a layer that is not a module of the model, a method that is not an
    attribution: a clear error when the object is built."""
    if arg in ("model", "forward_func") and isinstance(value, nn.Module):
        value = 3  # any module is a callable model
    with pytest.raises((TypeError, ValueError)) as info:
        construct(name, fuzz_model(), **{arg: value})
    assert arg in str(info.value) or (arg == "model" and "forward_func" in str(info.value)), str(info.value)


# every other constructor argument is either checked (a bad value is an error naming it, when the object is built
# or at its first call) or listed here with the reason it is not
INIT_UNCHECKED = {
    "multiply_by_inputs": "a flag used for its truth value, as in Captum",
    "memory_efficient": "a flag used for its truth value, as in Captum",
    "device_ids": "accepted for Captum compatibility and unused (hooks see every replica's rows)",
}
INIT_CHECKED = ("reshape_transform", "eps", "composite", "canonizers", "perm_func", "interpretable_model",
                "similarity_func", "perturb_func", "attr_target")
INIT_ARGS = [
    (n, p) for n in FUZZED if n not in FACTORIES for p in sorted(_init_params(n))
    if p not in ("self", "model", "forward_func", "layer", "attribution_method", "args", "kwargs")
]


def test_every_constructor_argument_is_classified():
    unknown = sorted({p for _, p in INIT_ARGS}
                     - set(INIT_UNCHECKED) - set(INIT_CHECKED))
    assert not unknown, f"constructor arguments neither checked nor listed in INIT_UNCHECKED: {unknown}"


@pytest.mark.parametrize("name,arg", [a for a in INIT_ARGS if a[1] in INIT_CHECKED])
@FEW
@given(value=st.one_of(st.builds(object), st.just(-1.0), st.just("x")))
def test_bad_other_constructor_arguments(name, arg, value):
    model = fuzz_model()
    try:
        method = construct(name, model, **{arg: value})
    except (TypeError, ValueError) as e:
        assert arg in str(e), f"{name}({arg}={value!r}): {e}"
        return
    _, error, _ = call(name, model, method)
    assert isinstance(error, (TypeError, ValueError)) and arg in str(error), f"{name}({arg}={value!r}): {error!r}"


# -- the forward-signature check never blocks a call the model accepts -----------------------------------------------
class _Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor, scale: torch.Tensor, offset: float = 0.0) -> torch.Tensor:
        return self.fc(x) * scale.reshape(-1, 1) + offset


class _VarArgs(_Scaled):
    def forward(self, *args, **kwargs):
        return super().forward(*args, **kwargs)


class _Unreadable:
    """A callable whose signature cannot be read (as some compiled or C-implemented models)."""

    __signature__ = "unreadable"

    def __init__(self, model):
        self.model = model

    def __call__(self, *args, **kwargs):
        return self.model(*args, **kwargs)


def _accepted_forms():
    torch.manual_seed(0)
    scaled, varargs = _Scaled(), _VarArgs()
    varargs.load_state_dict(scaled.state_dict())
    two = torch.full((N,), 2.0)
    return [
        (scaled, (two,), {"offset": 1.0}),
        (varargs, (two,), {"offset": 1.0}),
        (lambda x, s, offset=0.0: scaled(x, s, offset=offset), (two,), {"offset": 1.0}),
        (_Unreadable(scaled), (two,), {}),
        (__import__("functools").partial(scaled, offset=1.0), (two,), {}),
    ]


@pytest.mark.parametrize("form", range(5))
def test_the_signature_check_accepts_every_call_the_model_accepts(form):
    model, args, kwargs = _accepted_forms()[form]
    x = torch.randn(N, 4)
    got = Saliency(model).attribute(x, target=1, additional_forward_args=args, forward_kwargs=kwargs or None)
    scaled = _accepted_forms()[0][0]
    offset = kwargs.get("offset", 1.0 if form == 4 else 0.0)
    ref = Saliency(lambda v: scaled(v, args[0], offset=offset)).attribute(x, target=1)
    torch.testing.assert_close(got, ref)


class _Halves(nn.Module):
    """A model taking an example as two halves: LimeBase calls it on its transformed samples, not on ``inputs``."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 1)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.cat([a, b], 1))


def test_limebase_calls_its_model_on_the_transformed_samples():
    """LimeBase's model takes what from_interp_rep_transform returns (here two tensors for one input), so the
    signature check of inputs against forward must not reject it. The model is linear in the binary interpretable
    vector z (f = w . (x * z) + b), so an unregularised fit recovers w * x exactly."""
    model, x = _Halves(), torch.randn(1, 4)
    g = torch.Generator().manual_seed(0)
    method = attr.LimeBase(
        model, attr.Lasso(alpha=0.0), lambda original, perturbed, interp, **kw: 1.0,
        lambda original, **kw: (torch.rand(1, 4, generator=g) > 0.5).float(), True,
        lambda z, original, **kw: (original[:, :2] * z[:, :2], original[:, 2:] * z[:, 2:]), None,
    )
    before = model_state(model)
    got = method.attribute(x, n_samples=40)
    assert_same_state(before, model_state(model))
    torch.testing.assert_close(got, (model.fc.weight * x).detach(), atol=1e-4, rtol=1e-4)
