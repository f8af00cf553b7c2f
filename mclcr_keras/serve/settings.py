"""The options of the scoring service (``python -m mclcr_keras.serve``), with their defaults.

No FastAPI, uvicorn or TensorFlow here: ``--help`` and a bad value are answered instantly.

Example:

>>> settings = ServeSettings(model="runs/ffpp/best.keras")
>>> settings.host, settings.port, settings.max_upload_bytes, settings.max_concurrent
('127.0.0.1', 8080, 209715200, 1)
>>> ServeSettings(model="m.keras", queue=-1).check_values()
Traceback (most recent call last):
...
mclcr_keras.errors.UsageError: --queue must be >= 0, got -1
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os

from mclcr_keras.errors import UsageError
from mclcr_keras.inference.predict import PredictOptions

# The environment variable that holds the bearer token when --token is not given.
TOKEN_ENV = "MCLCR_SERVE_TOKEN"
# predict's options and defaults. Every field of ServeSettings that `PredictOptions` also has
# is passed through, the same for every request (a client cannot ask for 10 000 frames); the
# options not listed here keep predict's defaults (its input limits, for one).
PREDICT = PredictOptions(inputs=(), model="")
NOT_PASSED = ("inputs", "model", "json", "explain")

__all__ = ["TOKEN_ENV", "ServeSettings", "is_loopback"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine.

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclasses.dataclass
class ServeSettings:
    """What the service serves and its limits (``docs/serve.md``).

    Attributes:
        model: a ``.keras`` file or an exported SavedModel (base or version directory).
        host: the address to bind; loopback unless told otherwise.
        port: the TCP port (0: any free port; the server prints the one it got).
        token: when set, ``/v1/score`` and ``/v1/model`` require ``Authorization: Bearer <token>``.
        max_upload_mb: largest upload accepted, in MiB (413 beyond, checked while reading).
        max_concurrent: scorings run at the same time (each worker process holds the model).
        queue: admitted requests that may wait for a free scorer; 503 + Retry-After beyond.
        timeout: seconds one scoring may take (504 beyond; the worker is ended and replaced), and
            seconds the upload itself may take (408 beyond).
        frames, batch_size, threshold, crop, margin, min_track_frames, aggregate, max_pixels,
            max_duration: the `PredictOptions` of every request (predict's defaults; the last
            two are predict's input limits).
        model_card: a ``model_card.json`` (``evaluate``) for ``/v1/model``; default: the one an
            export carries (``assets.extra/model_card.json``), if any.
        upload_dir: where the per-request temporary folders go (default: the system's).
    """

    model: str
    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None
    max_upload_mb: float = 200.0
    max_concurrent: int = 1
    queue: int = 4
    timeout: float = 120.0
    frames: int = PREDICT.frames
    batch_size: int = PREDICT.batch_size
    threshold: float | None = PREDICT.threshold
    crop: str = PREDICT.crop
    margin: float = PREDICT.margin
    min_track_frames: int = PREDICT.min_track_frames
    aggregate: str = PREDICT.aggregate
    max_pixels: int | None = getattr(PREDICT, "max_pixels", None)
    max_duration: float | None = getattr(PREDICT, "max_duration", None)
    model_card: str | None = None
    upload_dir: str | None = None

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    def predict_options(self, path: str, json: str | None = None,
                        explain: str | None = None) -> PredictOptions:
        """The `PredictOptions` that score one uploaded file at ``path``."""
        names = {field.name for field in dataclasses.fields(PredictOptions)} - set(NOT_PASSED)
        fields = {name: getattr(self, name) for name in names if hasattr(self, name)}
        return PredictOptions(inputs=[path], model=self.model, json=json, explain=explain,
                              **fields)

    def check_values(self) -> None:
        """`UsageError` for a value out of range (no file is looked at)."""
        checks = [
            (0 <= self.port <= 65535, f"--port must be in [0, 65535], got {self.port}"),
            (self.max_upload_mb > 0, f"--max-upload-mb must be > 0, got {self.max_upload_mb}"),
            (self.max_concurrent >= 1,
             f"--max-concurrent must be >= 1, got {self.max_concurrent}"),
            (self.queue >= 0, f"--queue must be >= 0, got {self.queue}"),
            (self.timeout > 0, f"--timeout must be > 0 seconds, got {self.timeout}"),
            (self.token is None or self.token.strip() == self.token != "",
             "--token must be non-empty, without surrounding spaces"),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(message)

    def validate(self) -> None:
        """`check_values`, then the predict options, the model card and the upload folder."""
        self.check_values()
        self.predict_options("upload").validate()
        if self.model_card is not None:
            from mclcr_keras.inference.card_asset import read_model_card

            try:
                read_model_card(self.model_card)
            except (OSError, ValueError) as error:
                raise UsageError(str(error)) from None
        if self.upload_dir is not None and not os.path.isdir(self.upload_dir):
            raise UsageError(f"--upload-dir {self.upload_dir} is not a folder")
