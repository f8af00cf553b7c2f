"""What `predict` reports: the printed table, the JSON report, the summary line, and the threshold
files are called with (`resolve_threshold`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from mclcr_keras.files import write_json

# The decision threshold of a model that carries no validation threshold.
FALLBACK_THRESHOLD = 0.5

__all__ = ["FALLBACK_THRESHOLD", "Table", "resolve_threshold", "summary", "write_report"]


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


def summary(results: Sequence, options) -> str:
    """The last line of a run: files scored, failed, and where the JSON report is."""
    failed = [r for r in results if r.error]
    text = f"predict: scored {len(results) - len(failed)} of {len(results)} files"
    if failed:
        text += f"; {len(failed)} failed"
    if options.json:
        text += f"; JSON report in {options.json}"
    return text
