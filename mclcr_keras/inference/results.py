"""What `predict` knows about one file: its face tracks, their scores and the file's verdict.

A file's tracks come from `mclcr_keras.data.tracks.track_input`. `score_tracks` scores the crops
of every kept track in batches; a track's fake probability is the **mean of its frame
probabilities** (the video-level aggregation of `mclcr_keras.metrics`), and the file's is the
**max** over its tracks (``aggregate="max"``: the file is as suspicious as its most suspicious
face, so one swapped face among real ones is not averaged away) or their mean
(``aggregate="mean"``). The file is FAKE when that is ``> threshold``. `FileResult.to_json` is the
file's entry of the JSON report (``docs/predict.md``).

Example:

>>> aggregate([0.2, 0.9, 0.4], "max"), aggregate([0.2, 0.9, 0.4], "mean")
(0.9, 0.5)
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

AGGREGATES = ("max", "mean")
logger = logging.getLogger(__name__)

__all__ = ["AGGREGATES", "FileResult", "TrackResult", "aggregate", "apply_scores", "score_keyed",
           "failed_result", "score_tracks", "unscored"]


def aggregate(probabilities, how: str) -> float:
    """The file's probability from its tracks' probabilities: ``"max"`` or ``"mean"``."""
    if how not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {AGGREGATES}, got {how!r}")
    values = np.asarray(probabilities, dtype=np.float64)
    return float(values.max() if how == "max" else values.mean())


@dataclasses.dataclass(eq=False)
class TrackResult:
    """One scored face track.

    Attributes:
        track_id: the track's id (order of appearance among all tracks of the file, dropped ones
            included).
        frames: frame indices of its faces.
        boxes: its face box ``[x0, y0, x1, y1]`` in each of those frames.
        probabilities, logits: the model's output on each of its aligned crops.
        probability: the mean of ``probabilities``.
        detection_score: the best dlib score of its faces (`mclcr_keras.data.tracks`).
        best_frame: the frame index where it scored highest (the frame an explanation shows).
        best_crop: the aligned crop of that frame, ``(S, S, 3)`` uint8 (not in the JSON).
        best_rgb: the full RGB frame of ``best_frame`` when the frames were kept (``--explain``),
            else ``None`` (not in the JSON).
    """

    track_id: int
    frames: list[int]
    boxes: list[list[int]]
    probabilities: list[float]
    logits: list[float]
    probability: float
    detection_score: float
    best_frame: int
    best_crop: np.ndarray | None = None
    best_rgb: np.ndarray | None = None

    def to_json(self) -> dict:
        return {"track_id": self.track_id, "frames": self.frames, "boxes": self.boxes,
                "probabilities": self.probabilities, "probability": self.probability,
                "best_frame": self.best_frame,
                "detection_score": round(self.detection_score, 4)
                if np.isfinite(self.detection_score) else None}


@dataclasses.dataclass
class FileResult:
    """The outcome for one input file (one row of the table, one entry of the JSON)."""

    path: str
    kind: str | None = None
    probability: float | None = None
    label: str | None = None
    frames_sampled: int = 0
    faces_found: int = 0
    tracks_found: int = 0
    min_track_frames: int | None = None
    tracks: list[TrackResult] = dataclasses.field(default_factory=list)
    error: str | None = None
    explanation: str | None = None

    @property
    def tracks_kept(self) -> int:
        return len(self.tracks)

    @property
    def frames_scored(self) -> int:
        """Face crops scored (the faces of the kept tracks)."""
        return sum(len(t.frames) for t in self.tracks)

    @property
    def top_track(self) -> int | None:
        """The id of the most suspicious track (the one ``aggregate="max"`` calls the file by)."""
        return max(self.tracks, key=lambda t: t.probability).track_id if self.tracks else None

    @property
    def frame_scores(self) -> list[dict]:
        """Every scored crop, by frame then track: ``{frame_index, track_id, probability, logit,
        box}`` (the per-frame view of ``tracks``, kept from the one-face report)."""
        rows = [{"frame_index": index, "track_id": t.track_id, "probability": p, "logit": z,
                 "box": box}
                for t in self.tracks
                for index, box, p, z in zip(t.frames, t.boxes, t.probabilities, t.logits)]
        return sorted(rows, key=lambda row: (row["frame_index"], row["track_id"]))

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
            "tracks_found": self.tracks_found,
            "tracks_kept": self.tracks_kept,
            "min_track_frames": self.min_track_frames,
            "top_track": self.top_track,
            "tracks": [t.to_json() for t in self.tracks],
            "frame_scores": self.frame_scores,
            "explanation": self.explanation,
            "error": self.error,
        }


def failed_result(path: str, error: Exception) -> FileResult:
    """The result of a file whose processing raised ``error`` (the traceback logged at DEBUG).

    >>> failed_result("a.mp4", OSError("disk gone\\nmore")).error
    'OSError: disk gone'
    """
    logger.debug("scoring %s failed", path, exc_info=True)
    reason = (str(error).strip().splitlines() or [""])[0]
    return FileResult(path=path, error=f"{type(error).__name__}: {reason}")


def unscored(track) -> TrackResult:
    """A kept `mclcr_keras.data.tracks.Track` as a `TrackResult` whose scores are still to come
    (``probabilities`` empty, ``probability`` NaN, ``best_frame`` -1): what the crops of a file
    are scored against, here (`score_tracks`) or on Beam workers (`mclcr_keras.beam.scoring`)."""
    return TrackResult(
        track_id=int(track.track_id), frames=[int(i) for i in track.frames],
        boxes=[[int(v) for v in box] for box in track.boxes], probabilities=[], logits=[],
        probability=float("nan"), detection_score=float(track.score), best_frame=-1)


def apply_scores(result: FileResult, probabilities, logits, how: str,
                 threshold: float) -> list[int]:
    """Fills the `unscored` tracks of ``result`` with their crops' scores; sets the verdict.

    Pure: the one place where per-crop outputs become track and file scores (the local and the
    Beam engine both call it).

    Args:
        result: the file's result; ``tracks`` from `unscored`, in their order.
        probabilities, logits: one per crop, track after track, each track's frames in order.
        how: ``"max"`` or ``"mean"`` over the tracks (`aggregate`).
        threshold: FAKE when the file's probability is ``> threshold``.

    Returns:
        Per track, the position in its frames of the best (first highest) probability.

    Example:

    >>> result = FileResult("a.mp4", tracks=[
    ...     TrackResult(0, [0, 5], [[0, 0, 9, 9]] * 2, [], [], float("nan"), 1.0, -1),
    ...     TrackResult(2, [5], [[20, 0, 29, 9]], [], [], float("nan"), 2.0, -1)])
    >>> apply_scores(result, [0.25, 0.75, 0.9], [-1.1, 1.1, 2.2], "max", 0.5)
    [1, 0]
    >>> result.label, result.probability, result.tracks[0].probability, result.top_track
    ('FAKE', 0.9, 0.5, 2)
    """
    probabilities = np.asarray(probabilities, np.float64).reshape(-1)
    logits = np.asarray(logits, np.float64).reshape(-1)
    expected = sum(len(t.frames) for t in result.tracks)
    if not len(probabilities) == len(logits) == expected:
        raise ValueError(f"{result.path}: {len(probabilities)} probabilities and {len(logits)} "
                         f"logits for {expected} crops")
    best, start = [], 0
    for track in result.tracks:
        stop = start + len(track.frames)
        p = probabilities[start:stop]
        best.append(int(np.argmax(p)))  # the first frame of the highest probability
        track.probabilities = [float(v) for v in p]
        track.logits = [float(v) for v in logits[start:stop]]
        track.probability = float(p.mean())
        track.best_frame = int(track.frames[best[-1]])
        start = stop
    result.probability = aggregate([t.probability for t in result.tracks], how)
    result.label = "FAKE" if result.probability > threshold else "REAL"
    return best


def score_tracks(result: FileResult, tracked, scorer, batch_size: int, how: str,
                 threshold: float) -> FileResult:
    """Scores the kept tracks of ``tracked`` into ``result`` (tracks, probability, label).

    Args:
        result: the file's result, ``kind`` and counts filled in.
        tracked: a `mclcr_keras.data.tracks.TrackedInput` with at least one kept track.
        scorer: a `mclcr_keras.inference.scorer.Scorer` (``predict(images, batch_size)``).
        batch_size: crops per model call; the crops of all tracks are scored together.
        how: ``"max"`` or ``"mean"`` over the tracks (`aggregate`).
        threshold: FAKE when the file's probability is ``> threshold``.

    Each track keeps its best frame's aligned crop (``best_crop``) and, when the frames were kept,
    that RGB frame (``best_rgb``).
    """
    kept = tracked.kept
    crops = np.stack([face.image for track in kept for face in track.items])
    probabilities, logits = scorer.predict(crops.astype(np.float32), batch_size=batch_size)
    result.tracks = [unscored(track) for track in kept]
    best = apply_scores(result, probabilities, logits, how, threshold)
    for track, source, position in zip(result.tracks, kept, best):
        track.best_crop = source.items[position].image
        track.best_rgb = tracked.frames.get(track.best_frame)
    return result


def score_keyed(result: FileResult, scores: dict, how: str, threshold: float) -> FileResult:
    """`apply_scores` from scores keyed by crop: ``{(track_id, frame_index): (probability,
    logit)}`` (a distributed scorer's output, in any order); a crop without its score is an
    ``error`` on the file (nothing else is set).

    Example:

    >>> result = FileResult("a.png", kind="image",
    ...                     tracks=[TrackResult(0, [0], [[0, 0, 9, 9]], [], [], 0.0, 1.0, -1)])
    >>> score_keyed(result, {(0, 0): (0.25, -1.1)}, "max", 0.5).label
    'REAL'
    >>> score_keyed(FileResult("b.png", tracks=result.tracks), {}, "max", 0.5).error
    'no score for 1 of 1 face crops (the model failed on them)'
    """
    wanted = [(t.track_id, frame) for t in result.tracks for frame in t.frames]
    missing = sum(key not in scores for key in wanted)
    if missing:
        result.error = (f"no score for {missing} of {len(wanted)} face crops (the model failed "
                        "on them)")
        result.tracks = []
        return result
    apply_scores(result, [scores[k][0] for k in wanted], [scores[k][1] for k in wanted], how,
                 threshold)
    return result
