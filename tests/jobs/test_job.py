"""Dataset jobs: stored results equal direct method calls and closed forms, every target form, several inputs,
metrics, chunking invariance, the model left as it came, clear errors naming the field, TOML and the CLI."""
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

pytest.importorskip("zarr")

from conftest import assert_same_state, model_state
from pellucid.attr import IntegratedGradients
from pellucid.cli import main
from pellucid.jobs import JobConfigError, attribute_dataset, load_config, open_store
from pellucid.jobs.demo import tiny_dataset, tiny_model
from pellucid.metrics import sparseness

N = 50


def linear(n_out=3):
    torch.manual_seed(1)
    return nn.Linear(6, n_out).eval()


def run(store, model=linear, data=lambda: tiny_dataset(N), method="IntegratedGradients", kwargs=None, **kw):
    kw.setdefault("batch_size", 16)
    return attribute_dataset(model, data, method, kwargs if kwargs is not None else {"n_steps": 8}, store=store,
                             show_progress=False, **kw)


def read(store, *names):
    s = open_store(store)
    s.check_complete()
    return [s[n][:] for n in names]


def test_linear_model_closed_form_for_every_target_form(tmp_path):
    """IG of a linear model with zero baselines is x * W[target] exactly (any number of steps)."""
    ds = tiny_dataset(N)
    x, y = ds.tensors
    model = linear()
    w = model.weight.detach()
    with torch.no_grad():
        out = model(x)
    pred = out.argmax(1)
    for target, expected_t in (("prediction", pred), ("label", y), (2, torch.full((N,), 2))):
        store = tmp_path / str(target)
        run(store, target=target)
        ids, labels, targets, preds, outputs, attr = read(store, "ids", "labels", "targets", "predictions", "outputs",
                                                           "attributions/0")
        np.testing.assert_array_equal(ids, np.arange(N))
        np.testing.assert_array_equal(labels, y.numpy())
        np.testing.assert_array_equal(preds, pred.numpy())
        np.testing.assert_array_equal(targets, expected_t.numpy())
        np.testing.assert_allclose(outputs, out.numpy(), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(attr, (x * w[expected_t]).numpy(), rtol=1e-5, atol=1e-6)
    # one output per example (regression): target none; predictions are -1 (no class)
    run(tmp_path / "reg", model=lambda: linear(1), target=None)
    targets, preds, attr = read(tmp_path / "reg", "targets", "predictions", "attributions/0")
    assert (targets == -1).all() and (preds == -1).all()
    np.testing.assert_allclose(attr, (x * linear(1).weight.detach()[0]).numpy(), rtol=1e-5, atol=1e-6)


def test_results_equal_direct_calls_and_do_not_depend_on_the_batch_size(tmp_path):
    ds = tiny_dataset(N)
    x = ds.tensors[0]
    model = tiny_model()
    with torch.no_grad():
        pred = model(x).argmax(1)
    direct = IntegratedGradients(model).attribute(x, target=pred, n_steps=8).numpy()
    for bs in (7, 16, 64):
        run(tmp_path / f"b{bs}", model=tiny_model, batch_size=bs, metrics=["sparseness"])
        attr, sp = read(tmp_path / f"b{bs}", "attributions/0", "metrics/sparseness")
        np.testing.assert_allclose(attr, direct, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(sp, sparseness(torch.from_numpy(direct)).numpy(), rtol=1e-5, atol=1e-6)


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(2)
        self.a, self.b = nn.Linear(4, 3), nn.Linear(2, 3)

    def forward(self, x1, x2):
        return self.a(x1) + self.b(x2)


class PairData(torch.utils.data.Dataset):
    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.x1, self.x2 = torch.randn(20, 4, generator=g), torch.randn(20, 2, generator=g)
        self.y = torch.randint(0, 3, (20,), generator=g)

    def __len__(self):
        return 20

    def __getitem__(self, i):
        return (self.x1[i], self.x2[i]), self.y[i]


def test_several_inputs_completeness(tmp_path):
    """IG on a model with two inputs: one array per input, and attributions sum to F(x) - F(0) (completeness)."""
    run(tmp_path / "s", model=TwoInputs, data=PairData, batch_size=8, target="label")
    a1, a2, out, labels = read(tmp_path / "s", "attributions/0", "attributions/1", "outputs", "labels")
    m = TwoInputs()
    with torch.no_grad():
        f0 = m(torch.zeros(1, 4), torch.zeros(1, 2))[0].numpy()
    total = a1.sum(1) + a2.sum(1)
    np.testing.assert_allclose(total, out[np.arange(20), labels] - f0[labels], rtol=1e-5, atol=1e-5)
    assert len(open_store(tmp_path / "s").attributions) == 2


def test_the_model_from_a_factory_is_left_as_it_came(tmp_path):
    model = tiny_model()
    model.train()
    before = model_state(model)
    run(tmp_path / "s", model=lambda: model, method="Saliency", kwargs={})
    assert_same_state(before, model_state(model))
    assert model.training


def test_summary_is_the_streaming_version_of_the_full_arrays(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    run(tmp_path / "s", model=tiny_model, batch_size=9, method="Saliency", kwargs={"abs": False})
    s = open_store(tmp_path / "s")
    attr, targets, outputs, ids = s.attribution[:], s.targets[:], s.outputs[:], s.ids[:]
    summ = s.summary(top_k=3)
    classes = np.unique(targets)
    np.testing.assert_array_equal(summ.classes, classes)
    for k, c in enumerate(classes):
        sel = targets == c
        assert summ.counts[k] == sel.sum()
        np.testing.assert_allclose(summ.class_means[0][k], np.abs(attr[sel]).mean(0), rtol=1e-6)
        order = np.argsort(-outputs[sel, c], kind="stable")[:3]
        assert [i for _, i in summ.top[int(c)]] == list(ids[sel][order])
    np.testing.assert_allclose(summ.feature_means[0], np.abs(attr).mean(0), rtol=1e-6)
    by_attr = s.summary(score="attribution", top_k=1)
    for c in classes:
        sel = targets == c
        assert by_attr.top[int(c)][0][1] == ids[sel][np.abs(attr[sel]).sum(1).argmax()]
    fig, ax = s.plot_class_means(summ)
    assert ax.images[0].get_array().shape == (len(classes), 6)
    with pytest.raises(ValueError, match="group_by"):
        s.summary(group_by="colour")
    with pytest.raises(ValueError, match="score"):
        s.summary(score="beauty")


def test_image_store_picture_has_one_panel_per_class(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from pellucid.data import SimpleCNN, make_shapes

    def cnn():
        torch.manual_seed(0)
        return SimpleCNN(3, 4, width=4).eval()

    run(tmp_path / "img", model=cnn, data=lambda: make_shapes(24, size=16), method="Saliency", kwargs={},
        target="label", batch_size=12)
    s = open_store(tmp_path / "img")
    fig, axes = s.plot_class_means()
    summ = s.summary()
    assert len(axes) == len(summ.classes) and summ.class_means[0].shape[1:] == (3, 16, 16)
    assert all(ax.images for ax in axes)


@pytest.mark.parametrize("change, field", [
    ({"method": "Telepathy"}, "method 'Telepathy'"),
    ({"batch_size": 0}, "batch_size"),
    ({"target": "banana"}, "target"),
    ({"engine": "spark"}, "engine"),
    ({"model_factory": "no_such_module_xyz:f"}, "model: cannot import module"),
    ({"model_factory": "pellucid.jobs.demo:nope"}, "model: module 'pellucid.jobs.demo' has no attribute 'nope'"),
    ({"model_factory": "pellucid.jobs.demo"}, "model must be 'module:function'"),
    ({"metrics": ["nope"]}, r"metrics\[0\]"),
    ({"metrics": ["pointing_game"]}, "ground-truth masks"),
    ({"method_kwargs": {"target": 1}}, "method_kwargs must not contain 'target'"),
    ({"method_kwargs": [1]}, "method_kwargs must be a table/dict of keyword arguments; received list"),
    ({"method_init": "layer"}, "method_init must be a table/dict"),
    ({"dataset_kwargs": [("n", 3)]}, "dataset_kwargs must be a table/dict"),
    ({"metadata": 7}, "metadata must be a table/dict"),
    ({"metrics": "faithfulness"}, "metrics must be a list"),
    ({"memory_budget": "lots"}, "memory_budget"),
    ({"seed": "x"}, "seed"),
    ({"num_workers": 0}, "num_workers"),
])
def test_bad_configuration_names_the_field(tmp_path, change, field):
    kw = dict(model_factory=tiny_model, dataset=lambda: tiny_dataset(8), method="Saliency", method_kwargs={},
              store=tmp_path / "s", show_progress=False)
    kw.update(change)
    with pytest.raises(JobConfigError, match=field):
        attribute_dataset(**kw)


def test_errors_found_while_running_name_the_cause(tmp_path):
    with pytest.raises(JobConfigError, match="target='label' but the dataset's items have no label"):
        run(tmp_path / "a", model=tiny_model, data=lambda: torch.randn(10, 6), target="label")
    with pytest.raises(JobConfigError, match="method_init.layer: the model has no submodule 'nope'"):
        run(tmp_path / "b", model=tiny_model, method="LayerGradientXActivation", method_init={"layer": "nope"}, kwargs={})
    with pytest.raises(JobConfigError, match="dataset is empty"):
        run(tmp_path / "c", model=tiny_model, data=lambda: tiny_dataset(0))


TOML = """
model = "pellucid.jobs.demo:tiny_model"
dataset = "pellucid.jobs.demo:tiny_dataset"
method = "{method}"
store = "out/store"
batch_size = 10
metrics = ["sparseness", {{name = "complexity"}}]

[dataset_kwargs]
n = 25

[method_kwargs]
{kwargs}
"""


def test_toml_and_command_line(tmp_path, capsys):
    cfg = tmp_path / "job.toml"
    cfg.write_text(TOML.format(method="IntegratedGradients", kwargs="n_steps = 4"))
    config = load_config(cfg)
    assert config.store == str(tmp_path / "out" / "store") and config.method_kwargs == {"n_steps": 4}
    assert main(["attribute", "--config", str(cfg), "--no-progress"]) == 0
    assert "25 examples (25 computed now, 0 already stored)" in capsys.readouterr().out
    assert main(["attribute", "--config", str(cfg), "--no-progress"]) == 0
    assert "(0 computed now, 25 already stored)" in capsys.readouterr().out
    cfg.write_text(TOML.format(method="IntegratedGradients", kwargs="n_steps = 5"))
    assert main(["attribute", "--config", str(cfg), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "method_kwargs" in err and "--restart" in err
    assert main(["attribute", "--config", str(cfg), "--no-progress", "--restart"]) == 0
    model = tiny_model()
    x = tiny_dataset(25).tensors[0]
    with torch.no_grad():
        pred = model(x).argmax(1)
    attr, = read(tmp_path / "out" / "store", "attributions/0")
    np.testing.assert_allclose(attr, IntegratedGradients(model).attribute(x, target=pred, n_steps=5).numpy(), rtol=1e-5,
                               atol=1e-6)
    cfg.write_text("colour = 'blue'\n" + TOML.format(method="Saliency", kwargs=""))
    assert main(["attribute", "--config", str(cfg), "--no-progress"]) == 2
    assert "unknown field(s) 'colour'" in capsys.readouterr().err
    assert main(["attribute", "--config", str(tmp_path / "missing.toml")]) == 2
    assert "no such file" in capsys.readouterr().err


class ItemByItem(torch.utils.data.Dataset):
    """The same items as a TensorDataset, without its fast path."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        return self.ds[i]


@pytest.mark.parametrize("tensors", [
    (torch.randn(9, 3), torch.arange(9) % 2),  # (x, label)
    (torch.randn(9, 3),),  # x only
    (torch.randn(9, 3), torch.randn(9, 2)),  # two inputs
    (torch.randn(9, 3), torch.arange(9) > 4),  # boolean labels
])
def test_tensor_dataset_batches_equal_item_by_item_collation(tensors):
    from pellucid.jobs.data import load_batch

    ds = TensorDataset(*tensors)
    fast, slow = load_batch(ds, 2, 7), load_batch(ItemByItem(ds), 2, 7)
    assert len(fast.inputs) == len(slow.inputs)
    for a, b in zip(fast.inputs, slow.inputs):
        assert torch.equal(a, b)
    assert (fast.labels is None) == (slow.labels is None)
    if fast.labels is not None:
        assert torch.equal(fast.labels, slow.labels) and fast.labels.dtype == torch.int64
