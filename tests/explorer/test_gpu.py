"""The explorer's computations on a CUDA model (skipped without a GPU): examples move to the model's device, every
offered method runs there or fails with its own message, results come back on the CPU, the model is unchanged.
Needs no web stack: it drives the same functions the server's worker calls."""
import pytest
import torch

pytest.importorskip("matplotlib")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)

from pellucid.data import SimpleCNN, TinyTransformer, make_sequences, make_shapes  # noqa: E402
from pellucid.explorer import Explorer, TextFeature  # noqa: E402
from pellucid.explorer.compute import Progress, run, subject  # noqa: E402
from pellucid.explorer.methods import parse_args  # noqa: E402
from pellucid.explorer.render import overlay_png  # noqa: E402

DEV = "cuda"
ALLOWED = (ValueError, TypeError, NotImplementedError)


def _explorers():
    torch.manual_seed(0)
    shapes = make_shapes(6, size=16, object_size=(4, 6), seed=1)
    img = Explorer({"cnn": SimpleCNN(width=4).to(DEV)}, shapes, classes=list(shapes.classes), name="shapes")
    s = make_sequences(4, seed=0)
    ds = [({"ids": s.ids[i], "attention_mask": s.attention_mask[i]}, s.labels[i]) for i in range(4)]
    tm = TinyTransformer(vocab=64, dim=16, n_classes=2, max_length=s.ids.shape[1]).to(DEV)
    txt = Explorer({"tiny": tm}, ds, features=TextFeature("embedding", [f"w{i}" for i in range(64)]), name="seq")
    return img, txt


@pytest.mark.parametrize("which", [0, 1])
def test_every_method_runs_on_a_cuda_model(which):
    e = _explorers()[which]
    name = next(iter(e.models))
    model = e.models[name]
    params = {k: v.clone() for k, v in model.state_dict().items()}
    assert e.predictions(name)[1].device.type == "cpu"
    failed = {}
    for spec in e.methods(name).values():
        args = parse_args(spec, {k: 4 for k in ("n_steps", "n_samples", "nt_samples") if k in
                                 {f.name for f in spec.fields}})
        ex = e.examples[1].to(next(model.parameters()).device)
        sub = subject(model, e.feature, ex, Progress(), e.references)
        try:
            out = run(model, sub, spec, args, 0, ["infidelity", "deletion_auc"], Progress())
        except ALLOWED as err:
            failed[spec.name] = str(err)
            continue
        assert out["attribution"].device.type == "cpu" and out["attribution"].shape == sub.x.shape
        assert torch.isfinite(out["attribution"]).all(), spec.name
        if which == 0:
            assert overlay_png(out["attribution"], sub.x.cpu())[:4] == b"\x89PNG"
    assert len(failed) <= 2, failed  # ShapleyValues' group limit, FeatureAblation-like limits only
    assert all(torch.equal(params[k], v) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
