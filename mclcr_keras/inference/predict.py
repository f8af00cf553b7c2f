"""Score images and videos with a trained MC-LCR model (``.keras`` file or exported SavedModel).

Every input goes through exactly the converter's cropping (`mclcr_keras.data.crops.crop_input`): a
video gives ``frames`` frames sampled evenly over its whole length, decoded sequentially, one face
tracked across them (dlib detection, 5-point similarity alignment, margin 1.3, crop side = the
model's input size); an image gives one frame. Each aligned crop is scored by the model, in
batches; the file's fake probability is the mean of its frame probabilities (the video-level
aggregation of `mclcr_keras.metrics`), and it is called FAKE when that mean is ``> threshold``.
A missing, unreadable or faceless file gets a row saying why; the other files are still scored.
The JSON report is described in ``docs/predict.md``.

Example:

```python
results = predict(PredictOptions(["clip.mp4", "face.jpg"], model="runs/ffpp/best.keras"))
results[0].label, round(results[0].probability, 3)   # ('FAKE', 0.912)
```
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from collections.abc import Callable, Sequence

from mclcr_keras.data.crops import CROP_MODES, crop_input
from mclcr_keras.data.faces import FaceAligner
from mclcr_keras.data.media import IMAGE, VIDEO, media_kind, sniff_kind
from mclcr_keras.errors import UsageError
from mclcr_keras.files import check_output_file
from mclcr_keras.inference.verdicts import (  # summary: part of this module's interface
    Table,
    resolve_threshold,
    summary,  # noqa: F401
    write_report,
)

logger = logging.getLogger(__name__)

# cropper(kind, paths) -> (frames, sampled, failure), see make_cropper.
Cropper = Callable[[str, tuple[str, ...]], tuple]


@dataclasses.dataclass
class PredictOptions:
    """What to score and how (the options of ``python -m mclcr_keras.predict``).

    Attributes:
        inputs: image or video files; a directory stands for the media files under it.
        model: a ``.keras`` model or an exported SavedModel (its base or a version directory).
        frames: frames sampled evenly over each video (as build_records).
        batch_size: face crops per model call.
        threshold: a file is FAKE when its mean fake probability is ``> threshold``; ``None``:
            the threshold chosen on the validation split that the model carries (training's
            ``best.threshold.json`` beside a ``.keras`` file, an export's metadata), else
            `FALLBACK_THRESHOLD` (`resolve_threshold`).
        crop: ``detect`` (find and align a face) or ``none`` (inputs are aligned crops).
        margin: crop side / face box side; the value the records were built with.
        json: also write the JSON report to this file.
    """

    inputs: Sequence[str]
    model: str
    frames: int = 30
    batch_size: int = 16
    threshold: float | None = None
    crop: str = "detect"
    margin: float = 1.3
    json: str | None = None

    def validate(self) -> None:
        """One-line `UsageError` for a bad value, a missing model or an unwritable report."""
        checks = [
            (self.frames >= 1, f"--frames must be >= 1, got {self.frames}"),
            (self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}"),
            (self.threshold is None or 0.0 <= self.threshold <= 1.0,
             f"--threshold must be in [0, 1], got {self.threshold}"),
            (self.margin >= 1.0, f"--margin must be >= 1.0, got {self.margin}"),
            (self.crop in CROP_MODES, f"--crop must be one of {CROP_MODES}, got {self.crop!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(message)
        if not os.path.exists(self.model):
            raise UsageError(f"--model {self.model} does not exist")
        if self.json:
            check_output_file(self.json, "--json")
            folder = os.path.dirname(os.path.abspath(self.json))
            if not os.path.isdir(folder):
                raise UsageError(f"--json {self.json}: folder {folder} does not exist")


# ------------------------------------------------------------------------------ inputs


@dataclasses.dataclass
class FileResult:
    """The outcome for one input file (one row of the table, one entry of the JSON)."""

    path: str
    kind: str | None = None
    probability: float | None = None
    label: str | None = None
    frames_sampled: int = 0
    faces_found: int = 0
    frame_scores: list[dict] = dataclasses.field(default_factory=list)
    error: str | None = None

    @property
    def frames_scored(self) -> int:
        return len(self.frame_scores)

    def to_json(self) -> dict:
        return {
            "path": self.path,
            "kind": self.kind,
            "status": "failed" if self.error else "ok",
            "probability": self.probability,
            "label": self.label,
            "frames_sampled": self.frames_sampled,
            "faces_found": self.faces_found,
            "frames_scored": self.frames_scored,
            "frame_scores": self.frame_scores,
            "error": self.error,
        }


def expand_inputs(inputs: Sequence[str]) -> list[str]:
    """The input paths with every directory replaced by the images and videos under it.

    Files given explicitly are kept whatever their extension (they get a row, scored or not); a
    directory contributes its media files recursively, sorted, and stays as itself (to be reported
    as failed) when it holds none. Duplicates are dropped, first occurrence kept.

    Example:

    >>> expand_inputs(["clip.mp4", "missing.png", "clip.mp4"])   # files are kept, once each
    ['clip.mp4', 'missing.png']
    """
    paths: list[str] = []
    for item in inputs:
        if not os.path.isdir(item):
            paths.append(item)
            continue
        found = []
        for folder, subfolders, files in os.walk(item):
            subfolders.sort()
            found.extend(os.path.join(folder, name) for name in sorted(files)
                         if media_kind(name) is not None)
        paths.extend(found or [item])
    return list(dict.fromkeys(paths))


# ------------------------------------------------------------------------------ cropping


def make_cropper(options: PredictOptions, size: int) -> Cropper:
    """``cropper(kind, paths)``: the converter's `mclcr_keras.data.crops.crop_input` with the
    options' frames, crop mode and margin, and a `FaceAligner` of the model's input ``size``."""
    aligner = FaceAligner(size=size, margin=options.margin)
    return functools.partial(crop_input, aligner=aligner, num_frames=options.frames,
                             crop=options.crop, size=size)


def crop_file(path: str, cropper: Cropper) -> tuple[FileResult, list]:
    """Sampled frames -> aligned face crops of one file, with the converter's own function.

    Args:
        path: an image or video file.
        cropper: see `make_cropper`.

    Returns:
        ``(result, crops)``: ``result`` has ``kind``, ``frames_sampled``, ``faces_found`` and
        ``error`` filled in; ``crops`` is ``[(frame_index, rgb uint8, box), ...]``.
    """
    result = FileResult(path=path)
    if not os.path.exists(path):
        result.error = "file not found"
        return result, []
    if os.path.isdir(path):
        result.error = "directory holds no image or video files"
        return result, []
    # By content first (a PNG named .mp4 is an image), then by name.
    kind = sniff_kind(path) or media_kind(path)
    # An unknown extension: try it as an image, then as a video.
    kinds = [kind] if kind else [IMAGE, VIDEO]
    for candidate in kinds:
        frames, sampled, failure = cropper(candidate, (path,))
        if not failure or sampled:
            break
    if kind is None and failure and not sampled:
        result.error = "not a decodable image or video (unknown extension)"
        return result, []
    result.kind = candidate
    result.frames_sampled = sampled
    result.faces_found = len(frames)
    if failure:
        result.error = failure
        return result, []
    return result, [(index, rgb, box) for index, rgb, box, _ in frames]


# ------------------------------------------------------------------------------ scoring


def score_crops(scorer, images, batch_size: int):
    """Fake probabilities and logits, ``(N,)`` each, of ``(N, S, S, 3)`` uint8 face crops."""
    import numpy as np

    return scorer.predict(np.asarray(images, dtype=np.float32), batch_size=batch_size)


def score_file(path: str, cropper: Cropper, scorer, batch_size: int,
               threshold: float) -> FileResult:
    """Crop one file as build_records does and score it: mean of the frame probabilities."""
    import numpy as np

    result, crops = crop_file(path, cropper)
    if result.error:
        return result
    probabilities, logits = score_crops(scorer, np.stack([c[1] for c in crops]), batch_size)
    result.frame_scores = [
        {"frame_index": index, "probability": float(p), "logit": float(z), "box": box}
        for (index, _, box), p, z in zip(crops, probabilities, logits)
    ]
    result.probability = float(np.mean(probabilities))
    result.label = "FAKE" if result.probability > threshold else "REAL"
    return result


def load(model: str):
    """The model as a scorer (`mclcr_keras.inference.scorer.load_scorer`); failures: UsageError."""
    from mclcr_keras.inference.scorer import load_scorer

    try:
        return load_scorer(model)
    except Exception as error:  # any loader failure is one line for the user
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise UsageError(f"cannot load --model {model}: {reason}") from None


def predict(options: PredictOptions, scorer=None, stream=None) -> list[FileResult]:
    """Scores every input, printing a table row per file as it is scored; returns the results.

    Args:
        options: what to score (validated here).
        scorer: a `mclcr_keras.inference.scorer.Scorer` already loaded from ``options.model``
            (a program that scores several sets of inputs in one process); loaded if ``None``.
        stream: where the table goes (default: stdout).

    Raises:
        UsageError: bad options, or the model cannot be loaded (nothing scored).
    """
    options.validate()
    paths = expand_inputs(options.inputs)
    if scorer is None:
        scorer = load(options.model)
    image_size = int(scorer.image_size)
    threshold = resolve_threshold(options.threshold, scorer)
    if threshold[1]["from"] == "default":
        logger.warning("%s carries no validation threshold (train writes best.threshold.json "
                       "beside best.keras; export copies it): calling files at %.2f; pass "
                       "--threshold to choose", options.model, threshold[0])
    else:
        logger.info("threshold %.4f (%s)", threshold[0], threshold[1]["from"])
    cropper = make_cropper(options, image_size)
    table = Table(paths, stream)
    table.header()
    results = []
    for path in paths:
        try:
            result = score_file(path, cropper, scorer, options.batch_size, threshold[0])
        except Exception as error:  # one odd file must not end the run
            logger.debug("scoring %s failed", path, exc_info=True)
            reason = (str(error).strip().splitlines() or [""])[0]
            result = FileResult(path=path, error=f"{type(error).__name__}: {reason}")
        table.row(result)
        results.append(result)
    if options.json:
        write_report(options.json, results, options, image_size, threshold)
    return results
