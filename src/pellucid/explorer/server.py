"""The explorer's HTTP API (FastAPI, with an OpenAPI schema at ``/openapi.json``); :mod:`.serve` runs it.

Safety: every request is validated against the schema and the explorer's method forms (bad input answers 4xx with
a message, never a traceback); static files come only from the package's ``static`` folder; no endpoint reads or
writes files or evaluates code. Bound to loopback by default, with the ``Host`` header checked (DNS rebinding); on
any other address a token is required on every request but ``/api/health`` (header ``X-Pellucid-Token``, query
``token=`` or the cookie set by opening the printed URL).
"""
# no "from __future__ import annotations": FastAPI reads the endpoint annotations, some of them local classes

import json
import math
import secrets
from pathlib import Path
from typing import Any, Literal, Sequence

from ..core.guard import model_device
from .compute import METRIC_INFO, METRICS, run, subject
from .explorer import Explorer
from .jobs import Job, Worker
from .methods import parse_args

STATIC = Path(__file__).parent / "static"
TOKEN_HEADER = "x-pellucid-token"
TOKEN_COOKIE = "pellucid_token"
JOB_ID = r"^j[0-9]{1,12}$"
NAME = r"^[A-Za-z0-9_.\-]{1,100}$"
MAX_BODY = 1_000_000


def create_app(explorers: Sequence[Explorer] | Explorer, token: str | None = None,
               allowed_hosts: Sequence[str] | None = None):
    """The FastAPI application serving ``explorers`` (an :class:`Explorer` or several with distinct names; none
    yet is allowed: ``app.state.add_explorer(e)`` adds one while the app runs, and until then data endpoints
    answer 503).

    ``token``: required on every request when given. ``allowed_hosts``: accepted ``Host`` headers (None: any).
    The app's job worker is ``app.state.worker`` (``app.state.worker.close()`` stops it).
    """
    from fastapi import FastAPI, HTTPException, Path as PathParam, Query, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse, Response
    from fastapi.staticfiles import StaticFiles
    from pydantic import BaseModel, ConfigDict, Field

    explorers = [explorers] if isinstance(explorers, Explorer) else list(explorers)
    by_name = {e.name: e for e in explorers}
    if len(by_name) != len(explorers):
        raise ValueError(f"explorers must have distinct names; received {[e.name for e in explorers]}")

    def explorer(name: str | None) -> Explorer:
        if not explorers:
            raise HTTPException(503, "the datasets are still loading; retry in a few seconds")
        if name is None:
            return explorers[0]
        if name not in by_name:
            raise HTTPException(404, f"unknown dataset {name!r}; datasets are {', '.join(by_name)}")
        return by_name[name]

    def model_name(e: Explorer, name: str | None) -> str:
        if name is None:
            return next(iter(e.models))
        if name not in e.models:
            raise HTTPException(404, f"unknown model {name!r}; models are {', '.join(e.models)}")
        return name

    def index(e: Explorer, i: int) -> int:
        if not 0 <= i < len(e.examples):
            raise HTTPException(404, f"example {i} is out of range; dataset {e.name!r} has {len(e.examples)} "
                                     f"examples (0 to {len(e.examples) - 1})")
        return i

    def execute(job: Job) -> dict:
        r = job.request
        e = by_name[r["dataset"]]
        spec = e.methods(r["model"])[r["method"]]
        model = e.models[r["model"]]
        with e.lock:
            ex = e.examples[r["example"]].to(model_device(model))
            sub = subject(model, e.feature, ex, job.progress, e.references)
            out = run(model, sub, spec, r["args"], r["target"], r["metrics"], job.progress)
        out["x"] = sub.x.detach().cpu()
        return out

    def add_explorer(e: Explorer) -> None:
        """Serve one more explorer (e.g. a dataset that finished loading after the server started)."""
        if not isinstance(e, Explorer):
            raise TypeError(f"expected an Explorer; received {type(e).__name__}")
        if e.name in by_name:
            raise ValueError(f"an explorer named {e.name!r} is already served")
        by_name[e.name] = e
        explorers.append(e)

    images: dict[tuple[str, int], bytes] = {}  # rendered example images (thumbnails are requested often)
    worker = Worker(execute)
    app = FastAPI(title="pellucid explorer", version="1", description=__doc__,
                  docs_url=None, redoc_url=None, openapi_url="/openapi.json")  # FastAPI's docs pages load a CDN
    app.state.worker = worker
    app.state.token = token
    app.state.add_explorer = add_explorer

    # ------------------------------------------------------------------ safety middleware and error handlers
    @app.middleware("http")
    async def guard(request: Request, call_next):
        length = request.headers.get("content-length") or "0"
        if not length.isdigit() or int(length) > MAX_BODY:
            return JSONResponse({"detail": f"request body larger than {MAX_BODY} bytes"}, status_code=413)
        if allowed_hosts is not None:
            host = (request.headers.get("host") or "").rsplit(":", 1)[0] if not (request.headers.get("host") or "").startswith("[") \
                else (request.headers.get("host") or "").split("]")[0] + "]"
            if host not in allowed_hosts:
                return JSONResponse({"detail": f"host {host!r} is not allowed"}, status_code=400)
        if token is not None and request.url.path != "/api/health":  # liveness reveals nothing: no token
            given = (request.headers.get(TOKEN_HEADER) or request.query_params.get("token")
                     or request.cookies.get(TOKEN_COOKIE) or "")
            if not secrets.compare_digest(given.encode(), token.encode()):
                return JSONResponse({"detail": "a valid token is required (open the URL the server printed)"},
                                    status_code=401)
        response = await call_next(request)
        if token is not None and request.query_params.get("token") == token:
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Content-Security-Policy"] = ("default-src 'self'; img-src 'self' data: blob:; "
                                                       "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'")
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        msgs = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            msgs.append(f"{loc}: {err.get('msg')}")
        return JSONResponse({"detail": "; ".join(msgs) or "invalid request"}, status_code=422)

    @app.exception_handler(ValueError)
    async def bad_value(request: Request, exc: ValueError):
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(TypeError)
    async def bad_type(request: Request, exc: TypeError):
        return JSONResponse({"detail": str(exc)}, status_code=422)

    # ------------------------------------------------------------------ schemas
    class Health(BaseModel):
        status: str
        version: str

    class JobRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        dataset: str | None = Field(None, pattern=NAME, description="dataset name (default: the first)")
        model: str | None = Field(None, pattern=NAME, description="model name (default: the first)")
        example: int = Field(ge=0, le=2**31 - 1, description="example index")
        method: str = Field(pattern=NAME, description="a method of pellucid.attr (GET /api/methods)")
        args: dict[str, bool | int | float | str | list[int] | None] = Field(
            default_factory=dict, max_length=64, description="the method's form fields (GET /api/methods)")
        target: int | None = Field(None, ge=0, le=2**31 - 1, description="class to explain (default: predicted)")
        metrics: list[Literal["infidelity", "sensitivity_max", "deletion_auc"]] = Field(
            default_factory=lambda: list(METRICS), max_length=3)

    class JobStatus(BaseModel):
        id: str
        status: Literal["queued", "running", "done", "error", "cancelled"]
        error: str | None = None
        stage: str
        progress: float
        rows_evaluated: int
        seconds: float | None = None
        request: dict[str, Any]
        cached: bool = False
        result: dict[str, Any] | None = None

    Style = Literal["blended_heat_map", "heat_map", "masked_image", "alpha_scaling"]
    Sign = Literal["absolute", "positive", "negative", "all"]
    Dataset = Query(None, pattern=NAME, description="dataset name (default: the first)")
    Model = Query(None, pattern=NAME, description="model name (default: the first)")
    Index = PathParam(ge=0, le=2**31 - 1)
    JobId = PathParam(pattern=JOB_ID)
    JobList = Query(pattern=r"^j[0-9]{1,12}(,j[0-9]{1,12}){0,3}$", description="1 to 4 job ids, comma-separated")

    # ------------------------------------------------------------------ pages
    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon():
        return Response(status_code=204)

    app.mount("/static", StaticFiles(directory=STATIC, follow_symlink=False), name="static")

    # ------------------------------------------------------------------ API
    @app.get("/api/health", response_model=Health)
    def health():
        """Liveness: answers as soon as the server runs."""
        return {"status": "ok", "version": _version()}

    @app.get("/api/info")
    def info():
        """Datasets (modality, size, classes, models) and the metrics computed for every attribution."""
        return {
            "datasets": [{"name": e.name, "modality": e.modality, "n_examples": len(e.examples),
                          "classes": e.classes, "models": list(e.models)} for e in explorers],
            "metrics": {m: METRIC_INFO[m] for m in METRICS},
            "token_required": token is not None,
        }

    @app.get("/api/examples")
    def examples(dataset: str | None = Dataset, model: str | None = Model,
                 true_class: int | None = Query(None, ge=0, le=2**31 - 1),
                 pred_class: int | None = Query(None, ge=0, le=2**31 - 1),
                 misclassified: bool = False, offset: int = Query(0, ge=0, le=2**31 - 1),
                 limit: int = Query(48, ge=1, le=500)):
        """Examples filtered by true class, predicted class (of ``model``) and misclassification."""
        e = explorer(dataset)
        m = model_name(e, model)
        pred, probs = e.predictions(m)
        labels = e.labels()
        keep = labels >= 0
        if true_class is not None:
            keep &= labels == true_class
        if pred_class is not None:
            keep &= pred == pred_class
        if misclassified:
            keep &= pred != labels
        idx = keep.nonzero().flatten().tolist()
        items = []
        for i in idx[offset: offset + limit]:
            item = {"index": i, "label": int(labels[i]), "pred": int(pred[i]),
                    "confidence": round(float(probs[i].max()), 4)}
            if e.modality == "text":
                item["text"] = " ".join(_tokens(e, i))[:120]
            items.append(item)
        return {"total": len(idx), "offset": offset, "items": items}

    @app.get("/api/examples/{index}")
    def example(index: int = Index, dataset: str | None = Dataset):
        """One example: its label, every model's class probabilities, its tokens (text)."""
        e = explorer(dataset)
        i = _index(e, index)
        ex = e.examples[i]
        out = {"index": i, "label": ex.label, "modality": e.modality,
               "scores": {m: [round(float(v), 6) for v in e.predictions(m)[1][i]] for m in e.models},
               "predictions": {m: int(e.predictions(m)[0][i]) for m in e.models}}
        if e.modality == "text":
            out["tokens"] = _tokens(e, i)
        else:
            out["image"] = f"/api/examples/{i}/image.png?dataset={e.name}"
        return out

    @app.get("/api/examples/{index}/image.png", responses={200: {"content": {"image/png": {}}}})
    def example_image(index: int = Index, dataset: str | None = Dataset):
        """The input image as a PNG."""
        from .render import image_png

        e = explorer(dataset)
        i = _index(e, index)
        if e.modality != "image":
            raise HTTPException(404, f"dataset {e.name!r} holds text, not images")
        key = (e.name, i)
        if key not in images:
            if len(images) > 2048:
                images.clear()
            images[key] = image_png(e.examples[i].x.float())
        return Response(images[key], media_type="image/png")

    @app.get("/api/methods")
    def methods(dataset: str | None = Dataset, model: str | None = Model):
        """Every method of pellucid.attr offered for this model, with its form (fields, defaults, choices)."""
        e = explorer(dataset)
        m = model_name(e, model)
        from .methods import unavailable_methods

        return {"dataset": e.name, "model": m, "methods": [s.as_json() for s in e.methods(m).values()],
                "unavailable": unavailable_methods(e.context(m))}

    @app.post("/api/jobs", response_model=JobStatus, status_code=202)
    def submit(req: JobRequest):
        """Start (or find in the cache) the attribution of one example with one method, and its metrics."""
        e = explorer(req.dataset)
        m = model_name(e, req.model)
        i = _index(e, req.example)
        specs = e.methods(m)
        if req.method not in specs:
            raise HTTPException(422, f"unknown method {req.method!r}; methods are {', '.join(specs)}")
        spec = specs[req.method]
        try:
            args = parse_args(spec, req.args)
        except (ValueError, TypeError) as err:
            raise HTTPException(422, str(err)) from None
        target = int(e.predictions(m)[0][i]) if req.target is None else req.target
        if target >= len(e.classes):
            raise HTTPException(422, f"target must be a class index below {len(e.classes)}; received {target}")
        request = {"dataset": e.name, "model": m, "example": i, "method": spec.name, "args": args,
                   "target": target, "metrics": sorted(set(req.metrics), key=METRICS.index)}
        key = json.dumps(request, sort_keys=True)
        try:
            job, cached = worker.submit(key, request)
        except RuntimeError as err:
            raise HTTPException(503, str(err)) from None
        return {**job.summary(), "cached": cached}

    @app.get("/api/jobs/{job_id}", response_model=JobStatus)
    def job_status(job_id: str = JobId):
        """A job's status and progress; with the result once done (scores, metrics, tokens or overlay URL)."""
        job = _job(job_id)
        out = job.summary()
        if job.status == "done":
            out["result"] = _result(job)
        return out

    @app.post("/api/jobs/{job_id}/cancel", response_model=JobStatus)
    def cancel(job_id: str = JobId):
        """Cancel a queued or running job (it stops at its next model call)."""
        _job(job_id)
        return worker.cancel(job_id).summary()

    @app.get("/api/jobs/{job_id}/overlay.png", responses={200: {"content": {"image/png": {}}}})
    def overlay(job_id: str = JobId, style: Style = "blended_heat_map", sign: Sign = "absolute"):
        """The attribution drawn over the image (pellucid.viz.visualize_image_attr)."""
        from .render import overlay_png

        job = _done(job_id)
        if by_name[job.request["dataset"]].modality != "image":
            raise HTTPException(404, "this job attributed text; its tokens are in the job's result")
        return Response(overlay_png(job.result["attribution"], job.result["x"], style, sign), media_type="image/png")

    @app.get("/api/export.json")
    def export_json(jobs: str = JobList):
        """The numbers of the shown views: requests, class scores, metrics and the attributions."""
        out = []
        for jid in jobs.split(","):
            job = _done(jid)
            r = _result(job)
            a = job.result["attribution"]
            if by_name[job.request["dataset"]].modality == "image":
                r["attribution_map"] = [[round(float(v), 7) for v in row] for row in a[0].sum(0)]
            out.append({"job": jid, "request": job.request, **r})
        return _finite({"views": out, "metric_info": {m: METRIC_INFO[m] for m in METRICS}})

    @app.get("/api/export.png", responses={200: {"content": {"image/png": {}}}})
    def export_png(jobs: str = JobList, style: Style = "blended_heat_map", sign: Sign = "absolute"):
        """The shown views side by side as one PNG (drawn with pellucid.viz)."""
        from .render import export_png as draw

        panels = []
        for jid in jobs.split(","):
            job = _done(jid)
            r = _result(job)
            e = by_name[job.request["dataset"]]
            lines = [f"target {r['target_name']}", f"p(target) {r['scores'][job.request['target']]:.3f}"]
            lines += [f"{k} {'n/a' if v is None else f'{v:.4g}'}" for k, v in r["metrics"].items()]
            panel = {"title": f"{job.request['model']} / {job.request['method']}", "lines": lines,
                     "x": job.result["x"], "attribution": job.result["attribution"]}
            if e.modality == "text":
                panel["tokens"] = [t["token"] for t in r["tokens"]]
                panel["scores"] = [t["score"] for t in r["tokens"]]
            panels.append(panel)
        return Response(draw(panels, sign, style), media_type="image/png")

    # ------------------------------------------------------------------ helpers
    def _index(e: Explorer, i: int) -> int:
        return index(e, i)

    def _job(job_id: str) -> Job:
        job = worker.get(job_id)
        if job is None:
            raise HTTPException(404, f"unknown job {job_id!r} (jobs are kept while the server runs)")
        return job

    def _finite(value: Any) -> Any:
        """JSON has no NaN or infinity (a method with eps=0 can produce them): such numbers become null."""
        if isinstance(value, float):
            return value if math.isfinite(value) else None
        if isinstance(value, dict):
            return {k: _finite(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [_finite(v) for v in value]
        return value

    def _done(job_id: str) -> Job:
        job = _job(job_id)
        if job.status != "done":
            raise HTTPException(409, f"job {job_id} is {job.status}, not done")
        return job

    def _result(job: Job) -> dict:
        from .render import token_scores, token_view

        e = by_name[job.request["dataset"]]
        res = job.result
        t = job.request["target"]
        out = {"target": t, "target_name": e.classes[t], "scores": [round(float(v), 6) for v in res["scores"]],
               "metrics": res["metrics"], "metric_errors": res["metric_errors"], "neuron": res["neuron"],
               "attribution_sum": float(res["attribution"].double().sum())}
        if e.modality == "text":
            toks = _tokens(e, job.request["example"])
            scores = token_scores(res["attribution"])[: len(toks)]
            out["tokens"] = token_view(toks, scores)
        else:
            out["overlay"] = f"/api/jobs/{job.id}/overlay.png"
        return out

    return app


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("pellucid")
    except Exception:  # noqa: BLE001 - not installed as a distribution
        return "0"


def _tokens(e: Explorer, i: int) -> list[str]:
    """Token strings of text example ``i`` without padding (per ``mask_key``)."""
    ex = e.examples[i]
    toks = e.feature.token_strings(ex.x[0])
    key = e.feature.mask_key
    if key and key in ex.kwargs:
        n = int(ex.kwargs[key][0].sum())
        toks = toks[:n]
    return toks
