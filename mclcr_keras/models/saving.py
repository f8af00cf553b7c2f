"""Loading a saved MC-LCR model, and the face-crop size a model takes.

`load_model` is the one ``.keras`` loader of the package (the scorer, export and the figures use
it): it registers MC-LCR's classes first and turns every Keras failure into one line naming the
file. `model_image_size` reads ``S`` of a ``(None, S, S, 3)`` input.

A model file may have a *threshold sidecar* beside it, ``<stem>.threshold.json`` (training writes
``RUN_DIR/best.threshold.json`` for ``best.keras``): the decision threshold chosen on the
validation split, with the SHA-256 of the model file it belongs to. `write_threshold_sidecar`
writes it, `stored_threshold` reads it back and ignores a sidecar of other model bytes (a
``best.keras`` that has moved on, a copy of another run).

Example:

```python
model = load_model("runs/ffpp/best.keras")
size = model_image_size(model)  # 256 for a model of the paper's size
```
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
THRESHOLD_SUFFIX = ".threshold.json"


def model_image_size(model_or_shape, where: str = "model") -> int:
    """Side ``S`` of the square RGB crops a model (or an input shape) takes.

    Raises:
        ValueError: the input is not ``(None, S, S, 3)``.
    """
    shape = getattr(model_or_shape, "input_shape", model_or_shape)
    shape = tuple(shape or ())
    if len(shape) != 4 or shape[3] != 3 or shape[1] is None or shape[1] != shape[2]:
        raise ValueError(f"{where}: expected an image input of shape (None, S, S, 3), got {shape}")
    return int(shape[1])


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def load_model(path: str | os.PathLike):
    """Loads a `.keras` model file with MC-LCR's classes registered (no optimizer state).

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: not a Keras model file, or it cannot be loaded (one line, naming the file).
    """
    import keras

    import mclcr_keras.models.mclcr  # noqa: F401  (registers MCLCR and its layers)

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model not found: {path}")
    if path.is_dir() or path.suffix.lower() not in KERAS_SUFFIXES:
        raise ValueError(f"expected a Keras model file (.keras), got {path}")
    if path.suffix.lower() == ".keras" and not zipfile.is_zipfile(path):
        # Keras itself says "File not found" for a truncated or foreign file.
        reason = "not a complete .keras zip archive: truncated, or another kind of file"
        raise ValueError(f"could not load Keras model {path}: not a readable Keras model file "
                         f"({reason})") from None
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as error:  # keras raises many types; the user needs the file and the cause
        raise ValueError(f"could not load Keras model {path}: {_first_line(error)}") from None


def threshold_sidecar(model_path: str | os.PathLike) -> Path:
    """``runs/x/best.keras`` -> ``runs/x/best.threshold.json``.

    >>> str(threshold_sidecar("runs/x/best.keras"))
    'runs/x/best.threshold.json'
    """
    path = Path(model_path)
    return path.with_name(path.stem + THRESHOLD_SUFFIX)


def write_threshold_sidecar(model_path: str | os.PathLike, record: dict) -> Path:
    """Writes ``record`` (``value``, ``criterion``, ``split``, ...) beside the model file, with
    the model file's SHA-256 (atomically)."""
    from mclcr_keras.files import file_sha256, write_json

    sidecar = threshold_sidecar(model_path)
    write_json(sidecar, {**record, "model": Path(model_path).name,
                         "sha256": file_sha256(model_path)}, sort_keys=True)
    return sidecar


def stored_threshold(model_path: str | os.PathLike) -> dict | None:
    """The sidecar's record when it belongs to these model bytes, else `None` (logged).

    Example:

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "best.keras").write_bytes(b"weights")
    >>> _ = write_threshold_sidecar(folder / "best.keras", {"value": 0.31, "criterion": "eer"})
    >>> stored_threshold(folder / "best.keras")["value"]
    0.31
    >>> _ = (folder / "best.keras").write_bytes(b"other weights")
    >>> stored_threshold(folder / "best.keras") is None
    True
    """
    import json
    import logging

    from mclcr_keras.files import file_sha256

    sidecar = threshold_sidecar(model_path)
    if not sidecar.is_file():
        return None
    log = logging.getLogger(__name__)
    try:
        record = json.loads(sidecar.read_text(encoding="utf-8"))
        value = float(record["value"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        log.warning("ignoring %s: unreadable (%s)", sidecar, error)
        return None
    if record.get("sha256") != file_sha256(model_path) or not 0.0 <= value <= 1.0:
        log.warning("ignoring %s: it belongs to other model bytes than %s", sidecar, model_path)
        return None
    return record
