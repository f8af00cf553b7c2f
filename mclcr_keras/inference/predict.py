"""Score images and videos with a trained MC-LCR model (``.keras`` file or exported SavedModel).

A video gives ``frames`` frames sampled evenly over its whole length, decoded sequentially, as the
converter samples them; **every** face in them is found, aligned exactly as the converter aligns
its one face (dlib, 5-point similarity, margin 1.3, crop side = the model's input size) and
followed across the frames (`mclcr_keras.data.tracks.track_input`); tracks seen in fewer than
``min_track_frames`` frames are dropped. An image is one frame; each of its faces is a track. Each
track's crops are scored in batches; a track's fake probability is the mean of its frames'
(`mclcr_keras.inference.results`), the file's the max over its tracks (``aggregate="mean"``: their
mean), and it is called FAKE when that is ``> threshold``. A missing, unreadable or faceless file
gets a row saying why; the other files are still scored. The JSON report: ``docs/predict.md``.

`score_path(path, scorer, options)` scores one file and returns its `FileResult` (``to_json()``:
the file's report entry); `predict` runs it over the inputs, prints the table and writes the
report; `outline_file` gives a file's crops to a scorer elsewhere (``predict --engine beam``).

Example:

```python
results = predict(PredictOptions(["clip.mp4", "face.jpg"], model="runs/ffpp/best.keras"))
results[0].label, round(results[0].probability, 3)   # ('FAKE', 0.912)
result = score_path("upload.mp4", load("serving/mclcr"), PredictOptions([], model="serving/mclcr"))
result.to_json()["tracks"][0]["probabilities"]
```
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import threading
from collections.abc import Callable, Sequence

from mclcr_keras.data.crops import CROP_MODES
from mclcr_keras.data.faces import FaceAligner
from mclcr_keras.data.limits import MAX_DURATION, MAX_PIXELS, MediaLimits, with_limits
from mclcr_keras.data.media import IMAGE, VIDEO, media_kind, sniff_kind
from mclcr_keras.data.storage import scheme_of
from mclcr_keras.data.tracks import TrackedInput, track_input
from mclcr_keras.errors import UsageError
from mclcr_keras.files import check_output_dir
from mclcr_keras.inference.results import (  # FileResult: part of this module's interface
    AGGREGATES,
    FileResult,
    failed_result,
    score_tracks,
    unscored,
)
from mclcr_keras.inference.verdicts import (  # summary: part of this module's interface
    Table,
    check_report_path,
    resolve_threshold,
    summary,  # noqa: F401
    threshold_for,
    write_json_lines,
    write_report,
)

logger = logging.getLogger(__name__)

# cropper(kind, paths) -> TrackedInput, see make_cropper.
Cropper = Callable[[str, tuple[str, ...]], TrackedInput]
# One FaceAligner per thread and configuration (the dlib models load once, not per file).
_ALIGNERS = threading.local()


@dataclasses.dataclass
class PredictOptions:
    """What to score and how (the options of ``python -m mclcr_keras.predict``).

    Attributes:
        inputs: image or video files; a directory stands for the media files under it.
        model: a ``.keras`` model or an exported SavedModel (its base or a version directory).
        frames: frames sampled evenly over each video (as build_records).
        batch_size: face crops per model call.
        threshold: a file is FAKE when its fake probability is ``> threshold``; ``None``:
            the threshold chosen on the validation split that the model carries (training's
            ``best.threshold.json`` beside a ``.keras`` file, an export's metadata), else
            `FALLBACK_THRESHOLD` (`resolve_threshold`).
        crop: ``detect`` (find and align a face) or ``none`` (inputs are aligned crops).
        margin: crop side / face box side; the value the records were built with.
        json: also write the JSON report to this file.
        json_lines: also write each file's report entry as one line of this file, and the failed
            files to its sidecar (`mclcr_keras.inference.verdicts.write_json_lines`).
        min_track_frames: a video's face tracks seen in fewer sampled frames are dropped (capped
            at the frames sampled; not applied to an image, whose faces are one-frame tracks).
        aggregate: the file's probability from its tracks': ``max`` (the most suspicious face)
            or ``mean``.
        explain: write an explanation figure per scored file into this folder (a ``.keras``
            model only; `mclcr_keras.inference.explanations`).
        max_pixels: an image (by its header) or video (by its frame size) of more pixels is
            refused before decoding (`mclcr_keras.data.limits`).
        max_duration: a longer video is sampled over its first ``max_duration`` seconds
            (``None``: over its whole length, as build_records).
    """

    inputs: Sequence[str]
    model: str
    frames: int = 30
    batch_size: int = 16
    threshold: float | None = None
    crop: str = "detect"
    margin: float = 1.3
    json: str | None = None
    json_lines: str | None = None
    min_track_frames: int = 5
    aggregate: str = "max"
    explain: str | None = None
    max_pixels: int = MAX_PIXELS
    max_duration: float | None = MAX_DURATION

    def validate(self, remote: bool = False) -> None:
        """One-line `UsageError` for a bad value, a missing model or an unwritable report;
        ``remote`` (the Beam engine): ``model`` and ``json_lines`` may be ``gs://...`` too."""
        checks = [
            (self.frames >= 1, f"--frames must be >= 1, got {self.frames}"),
            (self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}"),
            (self.threshold is None or 0.0 <= self.threshold <= 1.0,
             f"--threshold must be in [0, 1], got {self.threshold}"),
            (self.margin >= 1.0, f"--margin must be >= 1.0, got {self.margin}"),
            (self.crop in CROP_MODES, f"--crop must be one of {CROP_MODES}, got {self.crop!r}"),
            (self.min_track_frames >= 1,
             f"--min-track-frames must be >= 1, got {self.min_track_frames}"),
            (self.aggregate in AGGREGATES,
             f"--aggregate must be one of {AGGREGATES}, got {self.aggregate!r}"),
            (self.max_pixels >= 1, f"--max-pixels must be >= 1, got {self.max_pixels}"),
            (self.max_duration is None or self.max_duration > 0,
             f"--max-duration must be > 0, got {self.max_duration}"),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(message)
        if not (remote and scheme_of(self.model)) and not os.path.exists(self.model):
            raise UsageError(f"--model {self.model} does not exist")
        check_report_path(self.json, "--json")
        check_report_path(self.json_lines, "--json-lines", remote)
        if self.explain:
            check_output_dir(self.explain, "--explain")


# ------------------------------------------------------------------------------ inputs


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


def aligner_for(**settings) -> FaceAligner:
    """A `FaceAligner(**settings)` shared by the calls of one thread (dlib is loaded once)."""
    cache = _ALIGNERS.__dict__.setdefault("aligners", {})
    key = tuple(sorted(settings.items()))
    if key not in cache:
        cache[key] = FaceAligner(**settings)
    return cache[key]


def make_cropper(options: PredictOptions, size: int) -> Cropper:
    """``cropper(kind, paths)``: `mclcr_keras.data.tracks.track_input` (every face, aligned as
    the converter aligns its one face) with the options' frames, crop mode, margin and
    ``min_track_frames``, and a `FaceAligner` of the model's input ``size``; the frames are kept
    for ``--explain``. Every read runs under the options' `MediaLimits` (pixels, duration)."""
    aligner = aligner_for(size=size, margin=options.margin)
    crop = functools.partial(track_input, aligner=aligner, num_frames=options.frames,
                             crop=options.crop, size=size,
                             min_track_frames=options.min_track_frames,
                             keep_frames=bool(options.explain))
    return with_limits(crop, MediaLimits(options.max_pixels, options.max_duration))


def crop_file(path: str, cropper: Cropper) -> tuple[FileResult, TrackedInput | None]:
    """Sampled frames -> the aligned, tracked faces of one file.

    Args:
        path: an image or video file.
        cropper: see `make_cropper`.

    Returns:
        ``(result, tracked)``: ``result`` has ``kind``, ``frames_sampled``, ``faces_found``,
        ``tracks_found``, ``min_track_frames`` and ``error`` filled in; ``tracked`` is the
        `TrackedInput` (``None`` when there is nothing to score).
    """
    result = FileResult(path=path)
    if not os.path.exists(path):
        result.error = "file not found"
        return result, None
    if os.path.isdir(path):
        result.error = "directory holds no image or video files"
        return result, None
    # By content first (a PNG named .mp4 is an image), then by name.
    kind = sniff_kind(path) or media_kind(path)
    # An unknown extension: try it as an image, then as a video.
    kinds = [kind] if kind else [IMAGE, VIDEO]
    for candidate in kinds:
        tracked = cropper(candidate, (path,))
        if not tracked.failure or tracked.sampled:
            break
    if kind is None and tracked.failure and not tracked.sampled:
        result.error = "not a decodable image or video (unknown extension)"
        return result, None
    result.kind = candidate
    result.frames_sampled = tracked.sampled
    result.faces_found = tracked.faces_found
    result.tracks_found = len(tracked.tracks)
    result.min_track_frames = tracked.min_frames
    if tracked.failure:
        result.error = tracked.failure
        return result, None
    return result, tracked


def outline_file(path: str, cropper: Cropper) -> tuple[FileResult, list]:
    """`crop_file` for a scorer elsewhere (`mclcr_keras.beam.scoring`): the result, its kept tracks
    `unscored`, and their crops ``(S, S, 3)`` uint8 in the order `apply_scores` takes their scores.
    Never raises: a failure is the result's ``error`` (then no crops)."""
    try:
        result, tracked = crop_file(path, cropper)
    except Exception as error:  # one odd file must not end the run
        return failed_result(path, error), []
    if result.error:
        return result, []
    result.tracks = [unscored(track) for track in tracked.kept]
    return result, [face.image for track in tracked.kept for face in track.items]


# ------------------------------------------------------------------------------ scoring


def score_path(path: str, scorer, options: PredictOptions,
               cropper: Cropper | None = None) -> FileResult:
    """Scores one file, as `predict` does for each input; never raises for a bad file.

    Args:
        path: an image or video file.
        scorer: a loaded `mclcr_keras.inference.scorer.Scorer` (`load`).
        options: frames, crop, margin, batch size, threshold (``None``: the model's, see
            `resolve_threshold`), ``min_track_frames``, ``aggregate``; ``inputs``, ``json`` and
            ``explain`` are not used here (with ``explain`` set the best frames are kept).
        cropper: `make_cropper(options, scorer.image_size)`, made here when ``None``.

    Returns:
        The `FileResult`: ``to_json()`` is the file's entry of the JSON report; per track, the
        best frame's index and aligned crop (and its RGB frame with ``explain``) are kept.
    """
    try:
        threshold = resolve_threshold(options.threshold, scorer)[0]
        cropper = cropper or make_cropper(options, int(scorer.image_size))
        result, tracked = crop_file(path, cropper)
        if not result.error:
            score_tracks(result, tracked, scorer, options.batch_size, options.aggregate,
                         threshold)
    except Exception as error:  # one odd file must not end the run
        result = failed_result(path, error)
    return result


def explain(result: FileResult, scorer, threshold: float, options: PredictOptions,
            taken: set[str]) -> None:
    """The file's explanation figure (`mclcr_keras.inference.explanations.explain_file`) into
    ``options.explain``; a failure is a warning, the file stays scored. Frees the kept frames."""
    from mclcr_keras.inference.explanations import explain_file

    try:
        result.explanation = explain_file(result, scorer, threshold, options.explain, taken,
                                          options.aggregate)
    except Exception as error:  # the verdict stands without its figure
        logger.debug("explaining %s failed", result.path, exc_info=True)
        logger.warning("%s: no explanation figure: %s: %s", result.path, type(error).__name__,
                       (str(error).strip().splitlines() or [""])[0])
    for track in result.tracks:
        track.best_rgb = None


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
    threshold = threshold_for(options.threshold, scorer, options.model)
    if options.explain and getattr(scorer, "kind", "") != "keras":
        raise UsageError(f"--explain needs a .keras model (gradients); {options.model} is "
                         f"{getattr(scorer, 'kind', '') or 'not one'}")
    cropper = make_cropper(options, image_size)
    table = Table(paths, stream)
    table.header()
    results, figures = [], set()
    for path in paths:
        result = score_path(path, scorer, options, cropper)
        if options.explain and not result.error:
            explain(result, scorer, threshold[0], options, figures)
        table.row(result)
        results.append(result)
    if options.json:
        write_report(options.json, results, options, image_size, threshold)
    if options.json_lines:
        write_json_lines(options.json_lines, results)
    return results
