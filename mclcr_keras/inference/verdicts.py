"""What `predict` reports: the printed table, the JSON report, the JSON lines (one file's report
entry per line, and the failed files' sidecar), the summary line, and the threshold files are
called with (`resolve_threshold`). Both engines (local, ``mclcr_keras.beam.scoring``) write
their JSON lines with `json_lines` and `failure_row`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterable, Sequence

from mclcr_keras.data.storage import scheme_of
from mclcr_keras.errors import UsageError
from mclcr_keras.files import check_output_file, write_atomic, write_json

logger = logging.getLogger(__name__)
# The decision threshold of a model that carries no validation threshold.
FALLBACK_THRESHOLD = 0.5

__all__ = ["FALLBACK_THRESHOLD", "Table", "check_report_path", "failure_row", "failures_path",
           "json_lines", "resolve_threshold", "summary", "summary_line", "threshold_for",
           "write_json_lines", "write_report"]
# Extensions of a --json-lines file that its failures sidecar keeps (``out.failures.jsonl``).
LINES_EXTENSIONS = (".jsonl", ".ndjson", ".json")


class Table:
    """Rows printed as files are scored: file, verdict, probability, faces found, tracks kept /
    found, frames sampled, status."""

    def __init__(self, paths: Sequence[str], stream=None):
        self.stream = stream or sys.stdout
        self.width = max([len("FILE")] + [len(p) for p in paths])

    def _line(self, *cells: str) -> None:
        file, verdict, probability, faces, tracks, sampled, status = cells
        print(f"{file:<{self.width}}  {verdict:<7}  {probability:>7}  {faces:>5}  {tracks:>6}  "
              f"{sampled:>7}  {status}", file=self.stream, flush=True)

    def header(self) -> None:
        self._line("FILE", "VERDICT", "P(FAKE)", "FACES", "TRACKS", "SAMPLED", "STATUS")

    def row(self, result) -> None:
        counts = (str(result.faces_found), f"{result.tracks_kept}/{result.tracks_found}",
                  str(result.frames_sampled))
        if result.error:
            self._line(result.path, "-", "-", *counts, f"failed: {result.error}")
        else:
            self._line(result.path, result.label, f"{result.probability:.4f}", *counts, "ok")


def resolve_threshold(threshold: float | None, scorer) -> tuple[float, dict]:
    """The threshold to call files with, and where it comes from.

    ``--threshold`` when given; else the validation threshold the model carries
    (``scorer.threshold``); else `FALLBACK_THRESHOLD`.

    Returns:
        ``(value, source)``, ``source`` a dict with ``"from"``: ``"--threshold"``, ``"model"``
        (with the stored record's ``criterion``, ``split``, ...) or ``"default"``.

    Example:

    >>> class Model:
    ...     threshold = {"value": 0.27, "criterion": "eer", "split": "val"}
    >>> resolve_threshold(None, Model())
    (0.27, {'from': 'model', 'criterion': 'eer', 'split': 'val'})
    >>> resolve_threshold(0.6, Model())[0], resolve_threshold(None, object())
    (0.6, (0.5, {'from': 'default'}))
    """
    if threshold is not None:
        return float(threshold), {"from": "--threshold"}
    stored = getattr(scorer, "threshold", None)
    if stored:
        keep = ("criterion", "split", "checkpoint", "epoch")
        return float(stored["value"]), {"from": "model",
                                        **{k: stored[k] for k in keep if k in stored}}
    return FALLBACK_THRESHOLD, {"from": "default"}


def threshold_for(threshold: float | None, scorer, model: str) -> tuple[float, dict]:
    """`resolve_threshold`, logged: a warning when the model carries none (0.5 is used)."""
    value, source = resolve_threshold(threshold, scorer)
    if source["from"] == "default":
        logger.warning("%s carries no validation threshold (train writes best.threshold.json "
                       "beside best.keras; export copies it): calling files at %.2f; pass "
                       "--threshold to choose", model, value)
    else:
        logger.info("threshold %.4f (%s)", value, source["from"])
    return value, source


def write_report(path: str, results: Sequence, options,
                 image_size: int, threshold: tuple[float, dict]) -> None:
    """The JSON report: options, a summary, and one entry per file (``docs/predict.md``)."""
    report = {
        "model": options.model,
        "threshold": threshold[0],
        "threshold_source": threshold[1],
        "frames": options.frames,
        "crop": options.crop,
        "margin": options.margin,
        "min_track_frames": options.min_track_frames,
        "aggregate": options.aggregate,
        "max_pixels": options.max_pixels,
        "max_duration": options.max_duration,
        "image_size": image_size,
        "summary": {"files": len(results),
                    "scored": sum(r.error is None for r in results),
                    "failed": sum(r.error is not None for r in results)},
        "files": [r.to_json() for r in results],
    }
    write_json(path, report)


def check_report_path(path: str | None, flag: str, remote: bool = False) -> None:
    """`UsageError` unless ``path`` (``None``: not asked for) can be written: a local file whose
    folder exists, or with ``remote`` (``--json-lines`` of the Beam engine) also ``gs://...``."""
    if path and scheme_of(path) and not remote:
        raise UsageError(f"{flag} {path}: a local file only (--json-lines with --engine beam "
                         "may be on gs:// or s3://)")
    if path and not scheme_of(path):
        check_output_file(path, flag)
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise UsageError(f"{flag} {path}: folder {folder} does not exist")


def failures_path(path: str) -> str:
    """The dead-letter sidecar of a ``--json-lines`` file: one line per file that failed.

    >>> failures_path("out/scores.jsonl"), failures_path("gs://b/scores"), failures_path("s.json")
    ('out/scores.failures.jsonl', 'gs://b/scores.failures.jsonl', 's.failures.json')
    """
    root, extension = os.path.splitext(path)
    if extension.lower() in LINES_EXTENSIONS and "/" not in extension:
        return f"{root}.failures{extension}"
    return f"{path}.failures.jsonl"


def failure_row(result) -> dict:
    """A failed file's line of the failures sidecar: ``{path, kind, error}``."""
    return {"path": result.path, "kind": result.kind, "error": result.error}


def json_lines(rows: Iterable[dict]) -> str:
    r"""JSON lines: one object per line, each line ended by a newline.

    >>> json_lines([{"path": "a.png", "probability": 0.25}, {"path": "b.png"}])
    '{"path": "a.png", "probability": 0.25}\n{"path": "b.png"}\n'
    """
    return "".join(json.dumps(row) + "\n" for row in rows)


def write_json_lines(path: str, results: Sequence) -> None:
    """``--json-lines``: each file's report entry (`FileResult.to_json`) on its line, in the
    order of ``results``, and the failed files' `failure_row` in `failures_path` (written even
    when empty, so that it never belongs to an older run); both atomically."""
    main = json_lines(r.to_json() for r in results)
    failed = json_lines(failure_row(r) for r in results if r.error)
    write_atomic(path, lambda handle: handle.write(main))
    write_atomic(failures_path(path), lambda handle: handle.write(failed))


def summary_line(files: int, failed: int, options) -> str:
    """The last line of a run: files scored, failed, and where the reports are."""
    text = f"predict: scored {files - failed} of {files} files"
    if failed:
        text += f"; {failed} failed"
    if getattr(options, "json", None):
        text += f"; JSON report in {options.json}"
    lines = getattr(options, "json_lines", None)
    if lines:
        text += f"; JSON lines in {lines} (failures in {failures_path(lines)})"
    return text


def summary(results: Sequence, options) -> str:
    """`summary_line` of a run's results."""
    return summary_line(len(results), sum(bool(r.error) for r in results), options)
