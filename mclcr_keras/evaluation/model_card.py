"""The model card of an evaluated model: ``model_card.json`` and ``model_card.md``.

`model_card(report)` builds the card from the ``metrics.json`` report of ``evaluate``, with the
field names of the Model Card Toolkit schema (v0.0.2; plain JSON, the toolkit is not needed):

- ``model_details``: name, overview, documentation, version (package version and git commit),
  licenses, references, citations, path;
- ``model_parameters``: model_architecture (variant, image size, the ``MCLCRConfig``), data (the
  training records when the model's run folder names them, and every evaluated record set),
  input_format, output_format (with the decision threshold);
- ``quantitative_analysis.performance_metrics``: ``{type, value, slice, confidence_interval:
  {lower_bound, upper_bound}}`` per metric and record set (values as strings, as the schema
  has them; the intervals are the bootstrap 95% intervals of ``metrics.json``);
- ``considerations``: users, use_cases, limitations (aligned face crops only, one face per crop,
  the compression levels it was trained on, no guarantee on unseen generators), tradeoffs,
  ethical_considerations.

`render_markdown(card)` is the same card for a person to read. See ``docs/evaluation.md``.

Example:

>>> report = {"model": "best.keras", "image_size": 64, "split": "test", "threshold": 0.5,
...           "records": {"ffpp": {"path": "records/ffpp",
...                                "frame": {"auc": 0.9, "auc_ci95": [0.8, 0.95]}}}}
>>> card = model_card(report)
>>> card["quantitative_analysis"]["performance_metrics"][0]
{'type': 'frame AUC', 'value': '0.9000', 'slice': 'ffpp (test split)',
 'confidence_interval': {'lower_bound': '0.8000', 'upper_bound': '0.9500'}}
>>> render_markdown(card).splitlines()[0]
'# Model card: MC-LCR face-forgery detector (variant unknown)'
"""

from __future__ import annotations

import datetime
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path

from mclcr_keras.evaluation.paper import records_protocol
from mclcr_keras.evaluation.provenance import export_metadata
from mclcr_keras.files import write_atomic, write_json
from mclcr_keras.training.run_dir import CONFIG_FILE

CARD_JSON = "model_card.json"
CARD_MARKDOWN = "model_card.md"
SCHEMA_VERSION_MCT = "0.0.2"  # the Model Card Toolkit schema whose field names the card uses
PAPER = "https://arxiv.org/abs/2110.03290"
CITATION = ("Wang, Jiang, Jin, Li, Cui. MC-LCR: Multi-modal contrastive classification by "
            "locally correlated representations for effective face forgery detection. "
            "Knowledge-Based Systems, 2022 (arXiv:2110.03290).")
# (metrics.json level, key, the card's metric type, bootstrap interval key or None)
METRICS = (("frame", "auc", "frame AUC", "auc_ci95"), ("frame", "acc", "frame ACC", None),
           ("frame", "acc_at_0.5", "frame ACC at 0.5", None), ("frame", "eer", "frame EER", None),
           ("frame", "ap", "frame AP", None), ("frame", "brier", "frame Brier score", None),
           ("frame", "ece", "frame ECE", None), ("video", "auc", "video AUC", "auc_ci95"),
           ("video", "acc", "video ACC", None))

__all__ = ["CARD_JSON", "CARD_MARKDOWN", "model_card", "render_markdown", "training_data",
           "write_model_card"]


def _number(value) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    value = float(value)
    return f"{value:.4f}" if math.isfinite(value) else None


def _run_config(model_path: str) -> Path | None:
    """The ``config.json`` of the run folder a ``.keras`` model (or an export of one) came from."""
    source = Path(model_path)
    if source.is_dir():
        source = Path((export_metadata(source) or {}).get("source_model") or "")
    folder = source.parent
    for candidate in (folder, folder.parent):
        if (candidate / CONFIG_FILE).is_file():
            return candidate / CONFIG_FILE
    return None


def training_data(model_path: str | os.PathLike) -> dict | None:
    """The training records of a model (path, source, compression, methods), found through the
    ``config.json`` of its run folder; None when the model is not in one."""
    config = _run_config(str(model_path))
    try:
        records = json.loads(config.read_text())["training"]["records"] if config else None
    except (OSError, ValueError, KeyError, TypeError):
        records = None
    if not records:
        return None
    return {"path": str(records), **records_protocol(records)}


def _describe_records(protocol: Mapping) -> str:
    parts = [f"source {protocol.get('source') or 'unknown'}"]
    if protocol.get("source") == "ffpp":
        parts.append(f"compression {protocol.get('compression')}, methods "
                     f"{', '.join(protocol.get('methods') or [])}")
    return "; ".join(parts)


def _threshold_text(threshold) -> str:
    """``metrics.json``'s threshold (a number, or ``{value, criterion, split, records}``)."""
    if isinstance(threshold, Mapping):
        value, split = threshold.get("value"), threshold.get("split")
        if split:
            return (f"{float(value):.4f}, chosen by the {threshold.get('criterion')} criterion on "
                    f"the {split} split of {threshold.get('records')}")
        return f"{float(value):.4f} (fixed)"
    return "unknown" if threshold is None else f"{float(threshold):.4f} (fixed)"


def _metrics(report: Mapping) -> list[dict]:
    split, metrics = report.get("split", "test"), []
    threshold = report.get("threshold")
    threshold = threshold.get("value") if isinstance(threshold, Mapping) else threshold
    at = f" at {float(threshold):.4f}" if threshold is not None else ""
    for name, result in (report.get("records") or {}).items():
        where = f"{name} ({split} split)"
        for level, key, kind, interval in METRICS:
            value = _number((result.get(level) or {}).get(key))
            if value is None:
                continue
            kind = kind + at if kind.endswith(" ACC") else kind  # ACC at the threshold used
            metric = {"type": kind, "value": value, "slice": where}
            bounds = (result.get(level) or {}).get(interval) if interval else None
            if bounds and None not in bounds:
                metric["confidence_interval"] = {"lower_bound": _number(bounds[0]),
                                                 "upper_bound": _number(bounds[1])}
            metrics.append(metric)
        for method, row in sorted((result.get("per_method") or {}).items()):
            value = _number(row.get("frame_auc"))
            if value is not None:
                metrics.append({"type": "frame AUC", "value": value,
                                "slice": f"{where}, {method} against all real frames"})
    return metrics


def _data(report: Mapping, training: Mapping | None) -> list[dict]:
    data = []
    if training:
        data.append({"name": f"training: {Path(training['path']).name}",
                     "description": f"records {training['path']} (train and val splits); "
                                    f"{_describe_records(training)}"})
    split = report.get("split", "test")
    for name, result in (report.get("records") or {}).items():
        frame, video = result.get("frame") or {}, result.get("video") or {}
        counts = (f"{frame.get('n')} frames ({frame.get('n_real')} real, {frame.get('n_fake')} "
                  f"fake), {video.get('n_videos')} videos") if frame.get("n") else "counts unknown"
        data.append({"name": f"evaluation: {name}",
                     "description": f"records {result.get('path')}, {split} split: {counts}; "
                                    f"{_describe_records(records_protocol(result.get('path')))}"
                                    if result.get("path") else counts})
    return data


def _limitations(training: Mapping | None) -> list[dict]:
    if training and training.get("source") == "ffpp":
        trained = (f"Trained on FaceForensics++ {training.get('compression')} videos "
                   f"({', '.join(training.get('methods') or [])}); other compression levels "
                   "(and recompression by platforms) shift its scores: evaluate on them first.")
    elif training:
        trained = (f"Trained on {training.get('source')} records only; data of other compression "
                   "levels and sources shift its scores.")
    else:
        trained = ("The training records are unknown to this card (the model is not in its run "
                   "folder); its compression levels are those of its training records only.")
    texts = [
        "Scores aligned face crops only (the crops build_records and predict cut: 5-point "
        "alignment, margin 1.3); a whole frame, a badly aligned or a non-face crop gets a "
        "meaningless score. The served SavedModel does no face detection.",
        "One face per crop: a crop holding several faces, or none, is out of scope.",
        trained,
        "No guarantee on forgeries from generators absent from training: cross-dataset AUC "
        "(e.g. FF++ -> Celeb-DF v2) is far below in-dataset AUC, in the paper and in practice.",
        "Frame-level scores; a video's score is the mean of its frames' probabilities.",
    ]
    return [{"description": text} for text in texts]


def model_card(report: Mapping) -> dict:
    """The model card (Model Card Toolkit field names) of a ``metrics.json`` report."""
    provenance = report.get("provenance") or {}
    model, package = provenance.get("model") or {}, provenance.get("package") or {}
    variant = model.get("variant") or "unknown"
    size = report.get("image_size")
    training = training_data(report["model"]) if report.get("model") else None
    version = f"mclcr_keras {package.get('version', 'unknown')}"
    if package.get("git_commit"):
        version += f", git {package['git_commit'][:12]}" + (" (dirty)" if package.get("dirty")
                                                            else "")
    config = json.dumps(model.get("config"), sort_keys=True) if model.get("config") else "unknown"
    return {
        "schema_version": SCHEMA_VERSION_MCT,
        "model_details": {
            "name": f"MC-LCR face-forgery detector (variant {variant})",
            "overview": "Scores an aligned face crop: the probability that the face is forged "
                        "(deepfake), after MC-LCR (Wang et al. 2022).",
            "documentation": "Spatial (Xception, Gram-matrix style of blocks 1-3) and frequency "
                             "(patch-wise amplitude and phase dual attention) branches, trained "
                             "with supervised contrastive + cross-entropy loss; see the package "
                             "README and docs/evaluation.md. Numbers below are this model's, "
                             "measured by mclcr_keras.evaluate.",
            "version": {"name": version, "date": datetime.date.today().isoformat()},
            "licenses": [{"identifier": "Apache-2.0"}],
            "references": [{"reference": PAPER}],
            "citations": [{"style": "text", "citation": CITATION}],
            "path": str(report.get("model")),
        },
        "model_parameters": {
            "model_architecture": f"MC-LCR variant {variant}, {size}x{size} RGB input "
                                  f"({model.get('format') or report.get('model_format')}); "
                                  f"MCLCRConfig {config}",
            "data": _data(report, training),
            "input_format": f"aligned RGB face crops, float32 (None, {size}, {size}, 3), pixels "
                            "in [0, 255] (SavedModel serving_default 'images'), or PNG/JPEG "
                            "bytes (serving_bytes 'images_bytes')",
            "output_format": "probability (of fake) and logit, float32 (None,); a crop is called "
                             f"fake when probability > {_threshold_text(report.get('threshold'))}",
        },
        "quantitative_analysis": {"performance_metrics": _metrics(report)},
        "considerations": {
            "users": [{"description": "Researchers and engineers studying or benchmarking face-"
                                      "forgery detection."},
                      {"description": "Content-moderation and forensics analysts, as one signal "
                                      "beside human review."}],
            "use_cases": [{"description": "Scoring face crops of videos or images for signs of "
                                          "face manipulation (face swap, reenactment)."},
                          {"description": "Reproducing and comparing with the MC-LCR paper's "
                                          "tables (evaluate --compare-paper)."}],
            "limitations": _limitations(training),
            "tradeoffs": [{"description": "The decision threshold trades missed fakes against "
                                          "false alarms; the AUC does not depend on it."}],
            "ethical_considerations": [
                {"name": "A wrong 'fake' verdict can accuse a real person of manipulation.",
                 "mitigation_strategy": "Use the probability as evidence for review, never as "
                                        "the sole basis of a decision about a person."},
                {"name": "Training faces come from research-only datasets (FaceForensics++, "
                         "Celeb-DF); accuracy across demographic groups was not measured.",
                 "mitigation_strategy": "Measure it on the population it is used on before use."},
            ],
        },
    }


def _bullets(items, key="description") -> list[str]:
    return [f"- {item[key]}" for item in items] or ["- (none)"]


def render_markdown(card: Mapping) -> str:
    """A model card as Markdown, for a person to read."""
    details, parameters = card["model_details"], card["model_parameters"]
    considerations = card["considerations"]
    lines = [f"# Model card: {details['name']}", "", details["overview"], "",
             "## Model details", "", details["documentation"], "",
             f"- Version: {details['version']['name']} ({details['version']['date']})",
             f"- Path: `{details.get('path')}`",
             f"- License: {', '.join(x['identifier'] for x in details['licenses'])}",
             f"- Reference: {details['references'][0]['reference']}",
             f"- Citation: {details['citations'][0]['citation']}", "",
             "## Model parameters", "", f"- Architecture: {parameters['model_architecture']}",
             f"- Input: {parameters['input_format']}", f"- Output: {parameters['output_format']}",
             "", "### Data", ""]
    lines += [f"- **{d['name']}**: {d['description']}" for d in parameters["data"]] or ["- none"]
    lines += ["", "## Quantitative analysis", "", "| metric | value | 95% interval | slice |",
              "|---|---|---|---|"]
    for metric in card["quantitative_analysis"]["performance_metrics"]:
        interval = metric.get("confidence_interval")
        shown = (f"[{interval['lower_bound']}, {interval['upper_bound']}]" if interval else "-")
        lines.append(f"| {metric['type']} | {metric['value']} | {shown} | {metric['slice']} |")
    lines += ["", "## Considerations", "", "### Intended users", ""]
    lines += _bullets(considerations["users"])
    lines += ["", "### Use cases", ""] + _bullets(considerations["use_cases"])
    lines += ["", "### Limitations", ""] + _bullets(considerations["limitations"])
    lines += ["", "### Tradeoffs", ""] + _bullets(considerations["tradeoffs"])
    lines += ["", "### Ethical considerations", ""]
    lines += [f"- {r['name']} Mitigation: {r['mitigation_strategy']}"
              for r in considerations["ethical_considerations"]]
    return "\n".join(lines) + "\n"


def write_model_card(report: Mapping, out: str | os.PathLike) -> dict:
    """Writes ``model_card.json`` and ``model_card.md`` into ``out``; returns the card."""
    card = model_card(report)
    text = render_markdown(card)
    write_json(Path(out) / CARD_JSON, card, allow_nan=False)
    write_atomic(Path(out) / CARD_MARKDOWN, lambda handle: handle.write(text))
    return card
