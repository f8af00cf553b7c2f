"""One upload -> the JSON report of ``predict``; the model's description for ``/v1/model``.

`score_upload` calls the predict library itself (`mclcr_keras.inference.predict.predict`) on the
stored file, with a report path in the request's folder, and answers the report predict wrote:
the same JSON as ``python -m mclcr_keras.predict --json`` for that one file, whatever fields
predict grows. Two fields are rewritten so that no server path leaves the service: ``model``
(the model's base name) and ``files[0].path`` (the client's file name). It runs wherever the
model is: in a worker process, or in a thread of the server (`mclcr_keras.serve.runner`).
"""

from __future__ import annotations

import dataclasses
import io
import json
import os

from mclcr_keras.serve.settings import ServeSettings

# Statuses of a finished scoring: scored, or predict's own "failed" row (no face, undecodable).
SCORED, NOT_SCORED = 200, 422

__all__ = ["NOT_SCORED", "SCORED", "can_explain", "model_info", "model_name", "score_upload",
           "warm_up"]


def model_name(settings: ServeSettings) -> str:
    """The model's base name, as responses show it (``runs/ffpp/best.keras`` -> ``best.keras``)."""
    return os.path.basename(os.path.normpath(settings.model))


def can_explain(scorer) -> bool:
    """Whether predict can draw explanation figures here (it has ``explain``; a .keras model)."""
    from mclcr_keras.inference.predict import PredictOptions

    fields = {field.name for field in dataclasses.fields(PredictOptions)}
    return "explain" in fields and getattr(scorer, "kind", "") == "keras"


def score_upload(settings: ServeSettings, scorer, path: str, filename: str, folder: str,
                 explain: bool = False) -> tuple[int, dict]:
    """Scores one stored upload with predict; returns ``(status, report)``.

    Args:
        settings: the service's settings (the predict options of every request).
        scorer: the loaded model (`mclcr_keras.inference.scorer.Scorer`).
        path: the stored upload.
        filename: the client's file name, shown as the report's ``files[0].path``.
        folder: the request's temporary folder (the report and figures are written there).
        explain: also return predict's explanation figures (``explanations``: data URLs).

    Returns:
        `SCORED` (200) and the report, or `NOT_SCORED` (422) and the report with a top-level
        ``error`` (predict's reason, e.g. no face in any sampled frame).
    """
    from mclcr_keras.inference.predict import predict

    report_path = os.path.join(folder, "report.json")
    figures = os.path.join(folder, "explain") if explain else None
    options = settings.predict_options(path, json=report_path, explain=figures)
    predict(options, scorer, stream=io.StringIO())
    with open(report_path, encoding="utf-8") as handle:
        report = json.load(handle)
    report["model"] = model_name(settings)
    entry = report["files"][0]
    entry["path"] = filename
    if figures is not None:
        report["explanations"] = _figures(figures)
        _hide_folder(report, folder)
    if entry.get("error"):
        report["error"] = entry["error"]
        return NOT_SCORED, report
    return SCORED, report


def _figures(folder: str) -> list[dict]:
    """The PNG figures predict wrote under ``folder``, as ``{"name", "png"}`` data URLs."""
    import base64

    found = []
    for root, _, names in os.walk(folder):
        for name in sorted(names):
            if name.lower().endswith(".png"):
                with open(os.path.join(root, name), "rb") as handle:
                    data = base64.b64encode(handle.read()).decode("ascii")
                found.append({"name": name, "png": f"data:image/png;base64,{data}"})
    return found


def _hide_folder(value, folder: str):
    """Paths inside the request's folder (the figure's, in the report) become base names."""
    if isinstance(value, dict):
        for key, item in value.items():
            value[key] = _hide_folder(item, folder)
    elif isinstance(value, list):
        value[:] = [_hide_folder(item, folder) for item in value]
    elif isinstance(value, str) and value.startswith(folder):
        return os.path.basename(value)
    return value


def warm_up(scorer) -> None:
    """One model call on a blank crop: the first request does not pay the function's tracing."""
    import numpy as np

    size = int(scorer.image_size)
    scorer.predict(np.zeros((1, size, size, 3), np.float32), batch_size=1)


def model_info(settings: ServeSettings, scorer) -> dict:
    """What ``GET /v1/model`` answers: format, variant, input size, threshold, model card."""
    from mclcr_keras.inference.verdicts import resolve_threshold

    threshold, source = resolve_threshold(settings.threshold, scorer)
    return {
        "model": model_name(settings),
        "format": scorer.kind,
        "variant": _variant(scorer),
        "image_size": int(scorer.image_size),
        "threshold": threshold,
        "threshold_source": source,
        "frames": settings.frames,
        "crop": settings.crop,
        "margin": settings.margin,
        "aggregate": settings.aggregate,
        "min_track_frames": settings.min_track_frames,
        "explain": can_explain(scorer),
        "model_card": _model_card(settings, scorer),
    }


def _variant(scorer) -> str | None:
    config = getattr(getattr(scorer, "model", None), "config", None)
    if config is not None:
        return getattr(config, "variant", None)
    metadata = _read_json(os.path.join(scorer.path, _metadata_file()))
    model_config = metadata.get("model_config") if isinstance(metadata, dict) else None
    return model_config.get("variant") if isinstance(model_config, dict) else None


def _metadata_file() -> str:
    from mclcr_keras.inference.scorer import METADATA_FILE

    return METADATA_FILE


def _model_card(settings: ServeSettings, scorer) -> dict | None:
    """``--model-card``, else the card an export carries, else ``None``."""
    from mclcr_keras.inference.card_asset import MODEL_CARD_ASSET

    if settings.model_card is not None:
        return _read_json(settings.model_card)
    if scorer.kind == "saved_model":
        return _read_json(os.path.join(scorer.path, MODEL_CARD_ASSET))
    return None


def _read_json(path: str):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None
