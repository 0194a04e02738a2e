"""Property-based fuzzing of the explorer's API: every operation of the OpenAPI schema with schemathesis (no server
error, invalid data rejected), and jobs drawn from the method forms themselves (every method, random valid
arguments): each ends done or with the method's own error message, never an internal error or a 5xx."""
import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import negative_data_rejection  # noqa: E402

from explorer.explorer_helpers import image_explorer, text_explorer, wait  # noqa: E402
from pellucid.explorer.server import create_app  # noqa: E402

IMAGE, TEXT = image_explorer(n=6), text_explorer(n=4)
APP = create_app([IMAGE, TEXT])
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def _stop_worker():
    yield
    APP.state.worker.close()


@schema.parametrize()
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_without_server_error(case):
    case.call_and_validate(checks=[not_a_server_error, negative_data_rejection])


# errors a method may legitimately raise for some arguments (its own validation); anything else is a bug
ALLOWED = ("ValueError", "TypeError", "NotImplementedError", "RuntimeError")
SMALL = {"n_steps": 6, "n_samples": 6, "nt_samples": 4}


def _value(f):
    if f.kind == "bool":
        return st.booleans()
    if f.kind == "choice":
        return st.sampled_from(f.choices)
    if f.kind == "int":
        hi = SMALL.get(f.name, min(int(f.maximum), 8))
        return st.integers(max(int(f.minimum), -8), hi)
    if f.kind == "float":
        return st.floats(max(f.minimum, -2.0), min(f.maximum, 2.0), allow_nan=False)
    return st.one_of(st.none(), st.lists(st.integers(0, 3), min_size=1, max_size=3))


@st.composite
def jobs(draw):
    e = draw(st.sampled_from([IMAGE, TEXT]))
    model = draw(st.sampled_from(list(e.models)))
    spec = draw(st.sampled_from(list(e.methods(model).values())))
    if spec.name in ("ShapleyValues",):  # 2^groups coalitions: exact Shapley only with the coarsest groups
        fields = {"feature_mask": st.just("patch8")} if e.modality == "image" else {}
    else:
        fields = {f.name: _value(f) for f in spec.fields if draw(st.booleans())}
    args = draw(st.fixed_dictionaries(fields))
    return {"dataset": e.name, "model": model, "method": spec.name, "args": args,
            "example": draw(st.integers(0, len(e.examples) - 1)), "metrics": draw(st.sampled_from([[], ["deletion_auc"]]))}


@given(body=jobs())
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_jobs_from_the_forms_finish_or_fail_cleanly(body):
    from fastapi.testclient import TestClient

    with TestClient(APP, raise_server_exceptions=False) as c:
        r = c.post("/api/jobs", json=body)
        assert r.status_code in (202, 422), r.text
        if r.status_code == 422:  # only the neuron index can be out of the layer's range
            assert "neuron_selector" in r.text or "between" in r.text, r.text
            return
        job = wait(c, r.json()["id"], timeout=60)
        assert job["status"] in ("done", "error"), job
        if job["status"] == "error":
            assert job["error"].split(":")[0] in ALLOWED, job["error"]
        else:
            assert c.get(f"/api/export.json?jobs={job['id']}").status_code == 200
