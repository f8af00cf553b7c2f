"""The FastAPI application of the scoring service (``docs/serve.md``).

Routes:

- ``POST /v1/score`` (multipart field ``file``; ``?explain=1`` for explanation figures): the
  JSON report of ``predict --json`` for that file (`mclcr_keras.serve.scoring`); 200 scored,
  422 not scored (predict's reason in ``error``), 400/408/413/415 for the upload, 401 without the
  token, 503 + ``Retry-After`` when full, 504 past the time limit, 500 for a failed scoring;
- ``GET /v1/health``: 200 while a scorer is ready, with the counts of busy and waiting requests;
- ``GET /v1/model``: format, variant, input size, threshold, model card, limits;
- ``GET /``: the page (``static/index.html``, ``app.js``, ``style.css``; no build step).

Every error is JSON ``{"error": "..."}``. With a token, ``/v1/score`` and ``/v1/model`` require
``Authorization: Bearer <token>``; the page, its files and ``/v1/health`` do not.

Example:

```python
from fastapi.testclient import TestClient
app = create_app(ServeSettings(model="runs/ffpp/best.keras"))   # workers start with the app
with TestClient(app) as client:
    client.post("/v1/score", files={"file": open("face.jpg", "rb")}).json()["files"][0]["label"]
```
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from mclcr_keras.serve.runner import ProcessRunner, ThreadRunner
from mclcr_keras.serve.settings import ServeSettings
from mclcr_keras.serve.upload import RequestError, check_declared, receive_upload

logger = logging.getLogger(__name__)

# The page's files: the only names /static/ serves.
STATIC = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
          "style.css": "text/css; charset=utf-8"}
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

__all__ = ["STATIC", "create_app"]


def _static_files() -> dict[str, bytes]:
    folder = resources.files("mclcr_keras.serve").joinpath("static")
    return {name: folder.joinpath(name).read_bytes() for name in STATIC}


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def create_app(settings: ServeSettings, scorer=None,
               initializers: Sequence[Callable] = ()) -> FastAPI:
    """The service's application; the model is loaded once, when the app starts (or before).

    Args:
        settings: what to serve and the limits (`ServeSettings`; checked here).
        scorer: a model already loaded (`mclcr_keras.inference.scorer.load_scorer`): scorings
            then run in threads of this process (`ThreadRunner`). ``None``: worker processes
            load ``settings.model`` (`ProcessRunner`), started with the app, or earlier by
            ``app.state.runner.start()`` (the CLI does, to report a bad model in one line).
        initializers: run first in each worker process (see `ProcessRunner`).
    """
    settings.validate()
    runner = (ThreadRunner(settings, scorer) if scorer is not None
              else ProcessRunner(settings, initializers))
    static = _static_files()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        import asyncio

        await asyncio.to_thread(runner.start)
        runner.attach()
        logger.info("model %s ready: %s, %d px, threshold %.4f (%s)", runner.info["model"],
                    runner.info["format"], runner.info["image_size"], runner.info["threshold"],
                    runner.info["threshold_source"]["from"])
        try:
            yield
        finally:
            runner.close()

    app = FastAPI(title="mclcr_keras scoring service", lifespan=lifespan, docs_url=None,
                  redoc_url=None, openapi_url=None)
    app.state.runner = runner
    app.state.settings = settings

    def authorize(request: Request) -> None:
        if settings.token is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), settings.token.encode()):
            raise RequestError(401, "missing or wrong token: send Authorization: Bearer <token>",
                               {"WWW-Authenticate": "Bearer"})

    @app.exception_handler(RequestError)
    async def request_error(request: Request, error: RequestError):
        return _error(error.status, str(error), error.headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException):
        return _error(error.status_code, str(error.detail), getattr(error, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError):
        problems = error.errors()
        first = problems[0] if problems else {}
        where = ".".join(str(part) for part in first.get("loc", ()))
        return _error(422, f"{where}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception):
        logger.error("%s %s failed", request.method, request.url.path, exc_info=error)
        return _error(500, f"internal error: {type(error).__name__}")

    @app.middleware("http")
    async def log_and_harden(request: Request, call_next):
        started = time.monotonic()
        response = await call_next(request)
        response.headers["X-Content-Type-Options"] = "nosniff"
        level = logging.INFO if request.url.path.startswith("/v1/score") else logging.DEBUG
        logger.log(level, "%s %s %d %.2f s", request.method, request.url.path,
                   response.status_code, time.monotonic() - started)
        return response

    @app.get("/", include_in_schema=False)
    async def page():
        return Response(static["index.html"], media_type=STATIC["index.html"],
                        headers=PAGE_HEADERS)

    @app.get("/static/{name}", include_in_schema=False)
    async def static_file(name: str):
        if name not in static or name == "index.html":
            raise RequestError(404, f"no such file: {name}")
        return Response(static[name], media_type=STATIC[name], headers=PAGE_HEADERS)

    @app.get("/v1/health")
    async def health():
        state = runner.state()
        ready = state["workers_ready"] > 0
        return JSONResponse({"status": "ok" if ready else "starting", **state},
                            status_code=200 if ready else 503)

    @app.get("/v1/model")
    async def model(request: Request):
        authorize(request)
        limits = {"max_upload_bytes": settings.max_upload_bytes,
                  "max_concurrent": settings.max_concurrent, "queue": settings.queue,
                  "timeout_seconds": settings.timeout, "max_pixels": settings.max_pixels,
                  "max_duration_seconds": settings.max_duration}
        return {**runner.info, "limits": limits, "auth": settings.token is not None}

    @app.post("/v1/score")
    async def score(request: Request, explain: bool = False):
        authorize(request)
        check_declared(request.headers, settings.max_upload_bytes)
        if explain and not runner.info["explain"]:
            raise RequestError(400, "explanations need predict's --explain and a .keras model; "
                                    "this server has not both")
        runner.admission.admit()
        folder = tempfile.mkdtemp(prefix="mclcr-serve-", dir=settings.upload_dir)
        handed_over = False  # from then on the runner deletes the folder
        try:
            upload = await receive_upload(request, folder, settings.max_upload_bytes,
                                          settings.timeout)
            handed_over = True
            status, report = await runner.score({"path": upload.path, "filename": upload.filename,
                                                 "folder": folder, "explain": explain})
        finally:
            runner.admission.leave()
            if not handed_over:
                shutil.rmtree(folder, ignore_errors=True)
        return JSONResponse(report, status_code=status)

    return app
