"""The scoring service: ``python -m mclcr_keras.serve --model PATH`` (``docs/serve.md``).

An HTTP API over `mclcr_keras.inference.predict` (``POST /v1/score`` answers the JSON report that
``predict --json`` writes, for the one uploaded file), ``GET /v1/health``, ``GET /v1/model``, and
one page at ``/`` (plain HTML and JavaScript in ``static/``). Parts:

- `settings`: `ServeSettings`, the options with their defaults and `validate`;
- `upload`: the upload streamed to a temporary file, size limit enforced while reading, sniffed;
- `scoring`: one upload -> predict's report; the model description of ``/v1/model``;
- `runner`: admission (N scorings + a queue, 503 beyond), worker processes or threads, time limit;
- `app`: `create_app(settings, scorer=None)`, the FastAPI application; `server`: binding, uvicorn.

Only `app` and `server` import FastAPI / uvicorn (the ``serve`` extra); the exports resolve lazily
(PEP 562), so ``from mclcr_keras.serve import ServeSettings`` imports neither, nor TensorFlow.
"""

from mclcr_keras.lazy import lazy_exports

_EXPORTS = {
    "ServeSettings": "settings",
    "create_app": "app",
    "run_server": "server",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
