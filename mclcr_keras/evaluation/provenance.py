"""Where a result comes from: the package (and its git commit), the model, and the records.

`provenance(scorer, records)` is the ``"provenance"`` entry of ``metrics.json``:

- ``package``: the installed version, and the git commit when the package runs from a checkout
  (``None`` otherwise; ``dirty`` says whether tracked files were modified);
- ``model``: its format, path, image size, ``MCLCRConfig`` and variant (a ``.keras`` model's own
  config, or the config an export stored in ``assets.extra/mclcr_keras.json``);
- ``records``: per record set, the SHA-256 of its ``dataset.json``, the build settings (frames
  per video, crop size, margin, image format, crop mode) and the SHA-256 of the split files or
  test lists it was built from (``dataset.json``'s ``source_files``, written by build_records).

Example:

```python
provenance(load_scorer("runs/ffpp/best.keras"), {"ffpp": "records/ffpp"})["model"]["variant"]
# 'mclcr'
```
"""

from __future__ import annotations

import json
import os
import subprocess
import zipfile
from collections.abc import Mapping
from pathlib import Path

import mclcr_keras
from mclcr_keras.files import file_sha256

BUILD_SETTINGS = ("frames", "size", "margin", "image_format", "crop", "jpeg_quality")
EXPORT_METADATA = os.path.join("assets.extra", "mclcr_keras.json")


def package_record() -> dict:
    """The package version and, from a git checkout, its commit."""
    root = Path(mclcr_keras.__file__).resolve().parents[1]
    commit, dirty = None, None
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"],
                                capture_output=True, text=True, timeout=10,
                                check=True).stdout.strip() or None
        if commit:
            status = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                     "--untracked-files=no"], capture_output=True, text=True,
                                    timeout=10, check=True).stdout
            dirty = bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"version": mclcr_keras.__version__, "git_commit": commit, "dirty": dirty}


def export_metadata(path: str | os.PathLike) -> dict | None:
    """The ``assets.extra/mclcr_keras.json`` of an export (a version directory, or a model base's
    highest version holding a ``saved_model.pb``, as TF Serving picks), or None. No TensorFlow."""
    path = Path(path)
    if not path.is_dir():
        return None
    versions = sorted((int(c.name) for c in path.iterdir()
                       if c.name.isdigit() and (c / "saved_model.pb").is_file()), reverse=True)
    for folder in [path] + [path / str(v) for v in versions]:
        if (folder / EXPORT_METADATA).is_file():
            try:
                return json.loads((folder / EXPORT_METADATA).read_text())
            except (OSError, ValueError):
                return None
    return None


def stored_config(path: str | os.PathLike) -> dict | None:
    """The ``MCLCRConfig`` dict a model file records, read without loading the model (no
    TensorFlow): a ``.keras`` archive's ``config.json``, or an export's metadata; None for
    another kind of model or an unreadable file."""
    path = Path(path)
    if path.is_dir():
        return (export_metadata(path) or {}).get("model_config")
    try:
        with zipfile.ZipFile(path) as archive:
            saved = json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    config = (saved.get("config") or {}).get("config") if isinstance(saved, dict) else None
    return config if isinstance(config, dict) else None


def model_record(scorer) -> dict:
    """Format, path, image size, config and variant of a `mclcr_keras.inference.scorer.Scorer`."""
    config = None
    model = getattr(scorer, "model", None)
    if model is not None and hasattr(getattr(model, "config", None), "to_dict"):
        config = model.config.to_dict()
    elif scorer.kind == "saved_model":
        metadata = Path(scorer.path) / EXPORT_METADATA
        if metadata.is_file():
            config = json.loads(metadata.read_text()).get("model_config")
    return {"format": scorer.kind, "path": str(scorer.path), "image_size": scorer.image_size,
            "variant": (config or {}).get("variant"), "config": config}


def records_record(records_dir: str | os.PathLike) -> dict:
    """The digest, build settings and source files of one record set (its ``dataset.json``)."""
    path = Path(records_dir) / "dataset.json"
    if not path.is_file():
        return {"dataset_json_sha256": None, "build": None, "source_files": None}
    info = json.loads(path.read_text())
    arguments = info.get("arguments", {})
    return {
        "dataset_json_sha256": file_sha256(str(path)),
        "build": {key: arguments.get(key) for key in BUILD_SETTINGS},
        "source": arguments.get("source"),
        "source_files": info.get("source_files"),
    }


def provenance(scorer, records: Mapping[str, str | os.PathLike]) -> dict:
    """The ``"provenance"`` entry of ``metrics.json`` (see the module docstring)."""
    return {"package": package_record(), "model": model_record(scorer),
            "records": {name: records_record(path) for name, path in records.items()}}
