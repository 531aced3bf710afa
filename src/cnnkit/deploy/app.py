"""The FastAPI application of ``cnnkit serve``: routes, error replies, authorisation.

No ``from __future__ import annotations`` here: FastAPI reads the route functions' annotations at
run time to know which parameter is an upload, a query value or the request.
"""

import contextlib
import hmac
import time
from dataclasses import asdict
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, File, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.exceptions import StarletteHTTPException as HTTPException  # 404/405 too, not only FastAPI's
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from .._version import __version__
from ..errors import CnnkitError
from ..run import LoadedRun
from .backends import GradCam, make_backend
from .batching import MicroBatcher
from .server import Guard, ServeConfig, _error
from .uploads import BadUpload, decode_upload


def create_app(run: LoadedRun, cfg: ServeConfig, backend: Any = None) -> Any:
    """The FastAPI application for ``run`` (``backend`` defaults to ``cfg.backend``)."""
    backend = backend or make_backend(run, cfg.backend, cfg.threads)
    batcher = MicroBatcher(lambda items: _predict_items(backend, items), cfg.max_batch, cfg.max_wait_ms)
    cam = GradCam(run)
    c, h, w = run.meta.input_size
    static = Path(str(resources.files("cnnkit.deploy") / "static"))

    @contextlib.asynccontextmanager
    async def lifespan(app: Any):
        await batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title=f"cnnkit: {run.path.name}", version=__version__, lifespan=lifespan,
                  description=f"{run.meta.model} trained on {run.meta.dataset or 'a dataset'}; "
                  f"{len(run.classes)} classes. POST images to /predict as multipart field 'file'.")  # fmt: skip

    app.add_middleware(Guard, max_bytes=cfg.max_upload_bytes, timeout_s=cfg.timeout_s)

    @app.exception_handler(Exception)
    async def bug(request: Request, e: Exception) -> Any:  # a bug in cnnkit: JSON, and the server goes on
        return _error(
            500,
            f"internal error: {type(e).__name__}",
            "this is a bug in cnnkit; the server log has the traceback",
        )

    @app.exception_handler(BadUpload)
    async def bad_upload(request: Request, e: BadUpload) -> Any:
        return _error(e.status, e.message, e.hint)

    @app.exception_handler(CnnkitError)
    async def cnnkit_error(request: Request, e: CnnkitError) -> Any:
        return _error(400, e.message, e.hint or "")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException) -> Any:
        return _error(e.status_code, str(e.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError) -> Any:
        errs = e.errors()
        where = [".".join(str(x) for x in err.get("loc", ())) for err in errs]
        if any(w_.startswith("body") for w_ in where):
            return _error(422, "no image in the request: send images as multipart/form-data field 'file'",
                          "e.g. curl -F file=@digit.png http://HOST:PORT/predict")  # fmt: skip
        first = errs[0] if errs else {}
        return _error(
            422, f"{'.'.join(str(x) for x in first.get('loc', ()))}: {first.get('msg', 'invalid value')}"
        )

    def authorised(request: Request) -> None:
        if not cfg.api_key:
            return
        given = request.headers.get("x-api-key") or ""
        auth = request.headers.get("authorization") or ""
        if auth.lower().startswith("bearer "):
            given = given or auth[7:].strip()
        if not hmac.compare_digest(given.encode(), cfg.api_key.encode()):
            raise BadUpload(401, "missing or wrong API key", "send it in the X-API-Key header")

    async def images_of(files: list[Any]) -> list[tuple[str, Any]]:
        if len(files) > cfg.max_images:
            raise BadUpload(413, f"{len(files)} images in one request; this server takes at most {cfg.max_images}",
                            "split them over several requests")  # fmt: skip
        out = []
        for f in files:
            if isinstance(f, str):  # a text field named 'file', not a file part
                raise BadUpload(
                    422,
                    "the field 'file' holds text, not a file",
                    "send it as a file part (curl -F file=@x.png)",
                )
            data = await f.read()
            out.append(
                (
                    f.filename or "",
                    await run_in_threadpool(decode_upload, data, f.filename or "", cfg.max_pixels),
                )
            )
        return out

    @app.get("/", include_in_schema=False)
    async def page() -> Any:
        return FileResponse(static / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=static), name="static")

    @app.get("/health", summary="liveness and batching counters")
    async def health() -> dict[str, Any]:
        s = batcher.stats
        return {"status": "ok", "run": run.path.name, "backend": backend.name, "batches": s.batches,
                "images": s.images, "mean_batch": round(s.mean_batch, 3), "auth": bool(cfg.api_key)}  # fmt: skip

    @app.get("/model", summary="what the model is and expects", dependencies=[Depends(authorised)])
    async def model() -> dict[str, Any]:
        m = run.meta
        limits = {k: v for k, v in asdict(cfg).items() if k.startswith("max_") or k == "timeout_s"}
        return {"run": run.path.name, "model": m.model, "dataset": m.dataset, "classes": m.classes,
                "input_size": m.input_size, "mean": m.mean, "std": m.std, "backend": backend.name,
                "drawable": c == 1 and max(h, w) <= 64, "cnnkit_version": __version__, "limits": limits}  # fmt: skip

    @app.post(
        "/predict", summary="top-k classes of one or several images", dependencies=[Depends(authorised)]
    )
    async def predict(file: list[UploadFile] = File(..., description="image file(s); repeat the field for several"),  # noqa: B008
                      topk: int = Query(5, ge=1, le=1000, description="classes per image")) -> dict[str, Any]:  # fmt: skip
        items = await images_of(file)
        t0 = time.perf_counter()
        tops = await batcher.submit([(im, topk) for _, im in items])
        preds = [{"name": name, "top": [{"class": k, "prob": round(p, 6)} for k, p in top]}
                 for (name, _), top in zip(items, tops, strict=True)]  # fmt: skip
        return {"run": run.path.name, "predictions": preds, "ms": round((time.perf_counter() - t0) * 1000, 2)}

    @app.post(
        "/explain", summary="Grad-CAM overlay of one image (PNG data URL)", dependencies=[Depends(authorised)]
    )
    async def explain(file: UploadFile = File(..., description="one image file")) -> dict[str, Any]:  # noqa: B008
        ((name, im),) = await images_of([file])
        target, url = await run_in_threadpool(cam.overlay, im)
        return {"name": name, "class": target, "method": "gradcam", "overlay": url}

    app.state.batcher = batcher
    return app


def _predict_items(backend: Any, items: list[tuple[Any, int]]) -> list[Any]:
    """One network call for a micro-batch; each request's own top-k is cut from the largest asked."""
    k = max(t for _, t in items)
    tops = backend.predict([im for im, _ in items], k)
    return [top[:t] for top, (_, t) in zip(tops, items, strict=True)]
