"""The explorer's HTTP API with FastAPI's TestClient: it computes exactly what a user's script computes with
pellucid.attr / pellucid.metrics, filters examples correctly, validates every request (4xx with a message), caches,
cancels, and leaves the user's models as they were."""
import json
import time
import urllib.request

import pytest
import torch
from torch import nn

from pellucid import metrics as M
from pellucid.attr import IntegratedGradients, LayerIntegratedGradients
from pellucid.explorer.serve import Server
from pellucid.explorer.server import create_app

from explorer.explorer_helpers import image_explorer, run_job, text_explorer, wait

from fastapi.testclient import TestClient  # noqa: E402


@pytest.fixture(scope="module")
def explorers():
    return image_explorer(), text_explorer()


@pytest.fixture(scope="module")
def client(explorers):
    app = create_app(list(explorers))
    with TestClient(app) as c:
        yield c
    app.state.worker.close()


def _state(model: nn.Module):
    return ({k: v.clone() for k, v in model.state_dict().items()}, [m.training for m in model.modules()],
            [p.requires_grad for p in model.parameters()],
            sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules()))


def _same_state(a, b):
    assert a[0].keys() == b[0].keys() and all(torch.equal(a[0][k], b[0][k]) for k in a[0])
    assert a[1:] == b[1:]


def test_health_info_and_schema(client, explorers):
    assert client.get("/api/health").json()["status"] == "ok"
    info = client.get("/api/info").json()
    assert [d["name"] for d in info["datasets"]] == ["shapes", "seq"]
    assert info["datasets"][0]["models"] == ["cnn", "cnn2"] and info["datasets"][1]["modality"] == "text"
    assert set(info["metrics"]) == {"infidelity", "sensitivity_max", "deletion_auc"}
    paths = client.get("/openapi.json").json()["paths"]
    for p in ("/api/health", "/api/examples", "/api/methods", "/api/jobs", "/api/jobs/{job_id}",
              "/api/jobs/{job_id}/cancel", "/api/export.json", "/api/export.png"):
        assert p in paths


def test_example_filters_match_the_models_predictions(client, explorers):
    e = explorers[0]
    model = e.models["cnn2"]
    x = torch.stack([e.examples[i].x[0] for i in range(len(e.examples))])
    labels = torch.tensor([e.examples[i].label for i in range(len(e.examples))])
    with torch.no_grad():
        pred = model(x).argmax(1)
    body = client.get("/api/examples", params={"model": "cnn2", "misclassified": True, "limit": 500}).json()
    assert [it["index"] for it in body["items"]] == (pred != labels).nonzero().flatten().tolist()
    assert body["total"] == int((pred != labels).sum())
    c = int(labels[0])
    body = client.get("/api/examples", params={"true_class": c, "pred_class": int(pred[0]), "model": "cnn2"}).json()
    assert [it["index"] for it in body["items"]] == ((labels == c) & (pred == pred[0])).nonzero().flatten().tolist()
    page = client.get("/api/examples", params={"offset": 3, "limit": 4}).json()
    assert [it["index"] for it in page["items"]] == [3, 4, 5, 6] and page["total"] == len(e.examples)
    ex = client.get("/api/examples/2", params={"dataset": "shapes"}).json()
    assert ex["predictions"]["cnn2"] == int(pred[2])
    assert ex["scores"]["cnn2"] == pytest.approx(torch.softmax(model(x[2:3]), 1)[0].tolist(), abs=1e-5)
    png = client.get("/api/examples/2/image.png")
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    text = client.get("/api/examples/1", params={"dataset": "seq"}).json()
    mask = explorers[1].examples[1].kwargs["attention_mask"][0]
    assert len(text["tokens"]) == int(mask.sum())


@pytest.mark.parametrize("path, params, code, words", [
    ("/api/examples/99", {}, 404, ["out of range", "16"]),
    ("/api/examples/0", {"dataset": "nope"}, 404, ["unknown dataset", "shapes"]),
    ("/api/examples", {"model": "nope"}, 404, ["unknown model", "cnn"]),
    ("/api/examples", {"limit": 0}, 422, ["limit"]),
    ("/api/examples/-1", {}, 422, ["index"]),
    ("/api/examples/0/image.png", {"dataset": "seq"}, 404, ["text"]),
    ("/api/jobs/j999999", {}, 404, ["unknown job"]),
    ("/api/jobs/../../etc/passwd", {}, 404, []),
    ("/api/export.json", {"jobs": "x"}, 422, ["jobs"]),
    ("/static/../server.py", {}, 404, []),
])
def test_bad_requests_answer_4xx_with_a_message(client, path, params, code, words):
    r = client.get(path, params=params)
    assert r.status_code == code, r.text
    if words:
        detail = r.json()["detail"]
        assert all(w in detail for w in words), detail
    assert "Traceback" not in r.text


@pytest.mark.parametrize("body, words", [
    ({"example": 0, "method": "NoSuchMethod"}, ["unknown method", "IntegratedGradients"]),
    ({"example": 0, "method": "IntegratedGradients", "args": {"n_stepz": 5}}, ["n_stepz", "n_steps"]),
    ({"example": 0, "method": "IntegratedGradients", "args": {"n_steps": 0}}, ["n_steps", "between"]),
    ({"example": 0, "method": "IntegratedGradients", "args": {"n_steps": 2.5}}, ["n_steps", "integer"]),
    ({"example": 0, "method": "IntegratedGradients", "args": {"n_steps": True}}, ["n_steps", "integer"]),
    ({"example": 0, "method": "IntegratedGradients", "args": {"method": "simpson"}}, ["method", "gausslegendre"]),
    ({"example": 0, "method": "Saliency", "args": {"abs": "yes"}}, ["abs", "true or false"]),
    ({"example": 0, "method": "LayerGradCam", "args": {"layer": "__class__"}}, ["layer", "conv1"]),
    ({"example": 0, "method": "Saliency", "target": 7}, ["target", "4"]),
    ({"example": 16, "method": "Saliency"}, ["out of range"]),
    ({"example": 0, "method": "Saliency", "code": "import os"}, ["code"]),
    ({"example": 0, "method": "Saliency", "metrics": ["accuracy"]}, ["metrics"]),
    ({"example": 0, "method": "NeuronGradient", "args": {"neuron_selector": [-1]}}, ["neuron_selector"]),
])
def test_bad_jobs_answer_4xx_with_a_message(client, body, words):
    r = client.post("/api/jobs", json=body)
    assert 400 <= r.status_code < 500, r.text
    detail = r.json()["detail"]
    assert all(w in detail for w in words), detail


def test_job_computes_what_a_script_computes(client, explorers):
    """The API's IG map and metrics equal direct calls of pellucid.attr and pellucid.metrics on the same example."""
    e = explorers[0]
    model = e.models["cnn"]
    job = run_job(client, {"example": 5, "model": "cnn", "method": "IntegratedGradients",
                           "args": {"n_steps": 16, "baselines": "zero"}, "target": 2})
    assert job["status"] == "done", job
    res = job["result"]
    x = e.examples[5].x
    a = IntegratedGradients(model).attribute(x, baselines=torch.zeros_like(x), target=2, n_steps=16)
    out = client.get("/api/export.json", params={"jobs": job["id"]}).json()["views"][0]
    assert torch.tensor(out["attribution_map"]) == pytest.approx(a[0].sum(0), abs=1e-5)
    with torch.no_grad():  # completeness: sum of IG = F(x) - F(0) for the target logit
        gap = model(x)[0, 2] - model(torch.zeros_like(x))[0, 2]
    assert res["attribution_sum"] == pytest.approx(float(gap), abs=2e-3 * max(1.0, abs(float(gap))))
    assert res["scores"] == pytest.approx(torch.softmax(model(x), 1)[0].tolist(), abs=1e-5)
    # metrics exactly as the user's script computes them with the settings the app documents
    gen = torch.Generator().manual_seed(0)
    infid = M.infidelity(model, M.gaussian_perturbation(0.05, generator=gen), x, a, target=2, n_perturb_samples=10)
    assert res["metrics"]["infidelity"] == pytest.approx(float(infid), rel=1e-4, abs=1e-9)
    prob = nn.Sequential(model, nn.Softmax(-1))
    dele = M.deletion_auc(prob, x, a, target=2, baselines=torch.zeros_like(x), feature_mask=M.pixel_mask(x.shape[1:]))
    assert res["metrics"]["deletion_auc"] == pytest.approx(float(dele), abs=1e-6)
    assert res["overlay"].endswith("/overlay.png")


def test_text_attribution_equals_layer_ig_on_the_embedding(client, explorers):
    """IG in the embedding space with [PAD] baselines is layer IG on the embedding layer fed token ids (the two
    definitions agree); the app returns one score per real token (padding dropped)."""
    e = explorers[1]
    model = e.models["tiny"]
    ex = e.examples[3]
    before = _state(model)
    job = run_job(client, {"dataset": "seq", "example": 3, "method": "IntegratedGradients",
                           "args": {"n_steps": 20, "baselines": "pad"}, "target": 1, "metrics": []})
    assert job["status"] == "done", job
    tokens = job["result"]["tokens"]
    lig = LayerIntegratedGradients(model, model.embedding)
    ref = lig.attribute(ex.x, baselines=torch.zeros_like(ex.x), target=1, n_steps=20,
                        forward_kwargs={"attention_mask": ex.kwargs["attention_mask"]})[0].sum(-1)
    n = int(ex.kwargs["attention_mask"].sum())
    assert len(tokens) == n
    assert [t["score"] for t in tokens] == pytest.approx(ref[:n].tolist(), abs=1e-5)
    assert [t["token"] for t in tokens] == [f"w{int(i)}" for i in ex.x[0, :n]]
    _same_state(before, _state(model))  # the embedding replacement left no hook behind


def test_layer_and_neuron_methods_are_drawn_over_the_input(client, explorers):
    job = run_job(client, {"example": 1, "method": "LayerGradCam", "args": {"layer": "features"}, "metrics": []})
    assert job["status"] == "done", job
    view = client.get("/api/export.json", params={"jobs": job["id"]}).json()["views"][0]
    assert torch.tensor(view["attribution_map"]).shape == (16, 16)
    job = run_job(client, {"example": 1, "method": "NeuronGradient", "args": {"layer": "conv2"}})
    assert job["status"] == "done", job
    # default neuron: the most active one of the layer for this example; neuron methods get no class metrics
    e = explorers[0]
    acts = {}
    h = e.models["cnn"].conv2.register_forward_hook(lambda m, i, o: acts.setdefault("o", o))
    with torch.no_grad():
        e.models["cnn"](e.examples[1].x)
    h.remove()
    flat = int(acts["o"][0].flatten().argmax())
    assert job["result"]["neuron"] == list(torch.unravel_index(torch.tensor(flat), acts["o"].shape[1:]))
    assert set(job["result"]["metrics"].values()) == {None}


def test_results_are_cached_by_request(client):
    body = {"example": 2, "method": "Saliency", "metrics": ["deletion_auc"]}
    first = run_job(client, body)
    again = client.post("/api/jobs", json=body).json()
    assert again["id"] == first["id"] and again["cached"] and again["status"] == "done"
    other = client.post("/api/jobs", json={**body, "args": {"abs": False}}).json()
    assert other["id"] != first["id"] and not other["cached"]
    wait(client, other["id"])


def test_compare_export_png_and_json(client):
    a = run_job(client, {"example": 4, "model": "cnn", "method": "Saliency", "metrics": []})
    b = run_job(client, {"example": 4, "model": "cnn2", "method": "Occlusion",
                         "args": {"sliding_window_shapes": 4, "strides": 4}, "metrics": []})
    png = client.get("/api/export.png", params={"jobs": f"{a['id']},{b['id']}"})
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
    views = client.get("/api/export.json", params={"jobs": f"{a['id']},{b['id']}"}).json()["views"]
    assert [v["request"]["model"] for v in views] == ["cnn", "cnn2"]
    assert [v["request"]["method"] for v in views] == ["Saliency", "Occlusion"]
    o1 = client.get(f"/api/jobs/{a['id']}/overlay.png").content
    o2 = client.get(f"/api/jobs/{b['id']}/overlay.png").content
    o3 = client.get(f"/api/jobs/{a['id']}/overlay.png", params={"style": "heat_map", "sign": "all"}).content
    assert len({o1, o2, o3}) == 3
    assert client.get(f"/api/jobs/{a['id']}/overlay.png", params={"style": "bogus"}).status_code == 422


class Slow(nn.Module):
    """A CNN whose every forward sleeps: a long job to cancel."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        time.sleep(0.02)
        return self.inner(x)


def test_cancel_stops_a_running_job_and_the_model_is_unchanged():
    e = image_explorer(n=4)
    model = Slow(e.models["cnn"])
    model.train()  # a user's model in training mode stays in training mode
    from pellucid.explorer import Explorer

    slow = Explorer({"slow": model}, [(e.examples[i].x[0], e.examples[i].label) for i in range(4)], name="slow")
    before = _state(model)
    app = create_app(slow)
    with TestClient(app) as c:
        r = c.post("/api/jobs", json={"example": 0, "method": "FeatureAblation",
                                      "args": {"feature_mask": "pixel"}})
        jid = r.json()["id"]
        t0 = time.time()
        while c.get(f"/api/jobs/{jid}").json()["rows_evaluated"] == 0:
            assert time.time() - t0 < 20
            time.sleep(0.01)
        assert c.post(f"/api/jobs/{jid}/cancel").status_code == 200
        job = wait(c, jid, timeout=20)
        assert job["status"] == "cancelled"
        assert job["rows_evaluated"] < 256  # 256 pixel groups: stopped long before the end
        # a queued job is cancelled before it starts; a finished one is unaffected by cancel
        done = run_job(c, {"example": 1, "method": "Saliency", "metrics": []})
        assert c.post(f"/api/jobs/{done['id']}/cancel").json()["status"] == "done"
    app.state.worker.close()
    _same_state(before, _state(model))


def test_token_is_required_when_configured(explorers):
    app = create_app(explorers[0], token="s3cret")
    with TestClient(app) as c:
        assert c.get("/api/health").status_code == 200  # liveness needs no token
        assert c.get("/api/info").status_code == 401
        assert c.get("/").status_code == 401
        assert c.get("/api/info", headers={"X-Pellucid-Token": "wrong"}).status_code == 401
        assert c.get("/api/info", headers={"X-Pellucid-Token": "s3cret"}).status_code == 200
        r = c.get("/", params={"token": "s3cret"})
        assert r.status_code == 200 and "pellucid_token" in r.headers.get("set-cookie", "")
        assert c.get("/api/info").status_code == 200  # the cookie now carries the token
    app.state.worker.close()


def test_non_loopback_server_generates_a_token_and_loopback_checks_the_host(explorers):
    s = Server([explorers[0]], host="0.0.0.0", port=0)
    assert s.token and len(s.token) >= 24 and not s.loopback
    s.app.state.worker.close()
    local = Server([explorers[0]], host="127.0.0.1", port=0)
    assert local.token is None
    with TestClient(local.app, base_url="http://127.0.0.1") as c:
        assert c.get("/api/health").status_code == 200
        assert c.get("/api/health", headers={"host": "evil.example:80"}).status_code == 400
    local.app.state.worker.close()
    with pytest.raises(ValueError, match="port"):
        Server([explorers[0]], port=70000)


def test_serve_returns_a_url_and_stop_closes_it():
    e = image_explorer(n=4)
    url = e.serve(port=0)
    try:
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "api/health", timeout=10) as r:
            assert json.loads(r.read())["status"] == "ok"
        with urllib.request.urlopen(url, timeout=10) as r:
            page = r.read().decode()
        assert "/static/app.js" in page and "http" not in page.split("<body>")[1].split("</body>")[0]
        with pytest.raises(RuntimeError, match="already serving"):
            e.serve()
    finally:
        e.stop()
    with pytest.raises(OSError):
        urllib.request.urlopen(url + "api/health", timeout=2)


def test_explorer_rejects_bad_arguments():
    from pellucid.explorer import Explorer

    data = [(torch.rand(3, 8, 8), 0)]
    model = nn.Sequential(nn.Flatten(), nn.Linear(192, 3))
    with pytest.raises(TypeError, match="models"):
        Explorer("resnet", data)
    with pytest.raises(ValueError, match="empty"):
        Explorer(model, [])
    with pytest.raises(ValueError, match="classes has 2 names but the model has 3 outputs"):
        Explorer(model, data, classes=["a", "b"])
    with pytest.raises(TypeError, match="features"):
        Explorer(model, data, features="audio")
    assert Explorer(model, data).classes == ["0", "1", "2"]
    from pellucid.explorer import ImageFeature

    assert Explorer(model, data, features=[ImageFeature()]).modality == "image"


def test_an_app_without_datasets_yet_answers_503_then_serves_added_ones(explorers):
    app = create_app([])
    with TestClient(app) as c:
        assert c.get("/api/health").status_code == 200
        assert c.get("/api/info").json()["datasets"] == []
        r = c.get("/api/examples")
        assert r.status_code == 503 and "loading" in r.json()["detail"]
        app.state.add_explorer(explorers[1])
        assert c.get("/api/examples").json()["total"] == len(explorers[1].examples)
        with pytest.raises(ValueError, match="already served"):
            app.state.add_explorer(explorers[1])
    app.state.worker.close()


def test_oversized_bodies_are_refused(client):
    r = client.post("/api/jobs", content=b"{" + b" " * 1_100_000 + b"}", headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_static_files_reference_nothing_outside_the_package(client):
    from pellucid.explorer.server import STATIC

    files = sorted(p.name for p in STATIC.iterdir())
    assert files == ["app.js", "index.html", "style.css"]
    for name in files:
        text = (STATIC / name).read_text()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, name
        r = client.get(f"/static/{name}")
        assert r.status_code == 200 and r.text == text
    assert client.get("/static/app.js").headers["content-type"].split(";")[0] in ("text/javascript",
                                                                                 "application/javascript")
    csp = client.get("/").headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src" not in csp  # scripts: same origin only
    assert client.get("/api/docs").status_code == 404  # FastAPI's docs pages would load a CDN


def test_dataset_forms_give_the_same_examples():
    """(inputs, labels) tensors, (input, label) pairs and label-keyed mappings (Hugging Face rows) are the same."""
    from pellucid.explorer.features import Examples

    ids = torch.randint(0, 9, (3, 5))
    mask = torch.ones(3, 5, dtype=torch.long)
    y = torch.tensor([2, 0, 1])
    rows = [{"input_ids": ids[i], "attention_mask": mask[i], "label": y[i]} for i in range(3)]
    pairs = [({"input_ids": ids[i], "attention_mask": mask[i]}, int(y[i])) for i in range(3)]
    for a, b in zip((Examples(rows)[i] for i in range(3)), (Examples(pairs)[i] for i in range(3))):
        assert torch.equal(a.x, b.x) and a.label == b.label and torch.equal(a.kwargs["attention_mask"],
                                                                            b.kwargs["attention_mask"])
    t = Examples((ids.float(), y))
    assert torch.equal(t[1].x, ids[1:2].float()) and t[1].label == 0
    with pytest.raises(TypeError, match="label"):
        Examples([torch.zeros(3)])[0]
    with pytest.raises(ValueError, match="as many labels"):
        Examples((ids, y[:2]))



def test_non_finite_results_export_as_null(client):
    """DeepLift with eps=0 divides by zero where an activation equals its reference: the JSON export must still
    answer (JSON has no NaN), with null in place of the non-finite numbers."""
    job = run_job(client, {"example": 1, "model": "cnn", "method": "LayerDeepLift", "args": {"eps": 0.0},
                           "target": 0})
    if job["status"] != "done":
        pytest.skip(f"the job ended {job['status']}: nothing to export")
    r = client.get("/api/export.json", params={"jobs": job["id"]})
    assert r.status_code == 200, r.text
    assert "NaN" not in r.text and "Infinity" not in r.text
