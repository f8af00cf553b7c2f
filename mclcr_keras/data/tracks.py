"""Every face of an input, followed across its sampled frames: the tracks `predict` scores.

The converter keeps one face per video (`mclcr_keras.data.crops.crop_input`, its labels are per
video); `predict` must not miss the one fake face among several, so it follows them all:

- **Detection** (`faces_in`, on `FaceAligner.detect_all`): each sampled frame is searched in the
  tracking window of every live track (cheap, finds small faces already tracked) and by one
  full-frame pass at ``detect_max_side`` (new faces >= 80 px x long side / 640). The first frame
  with a face gets every pass down to ``min_face`` (small faces beside a large one), and a frame
  where the cheap search finds nothing gets the full search down to half the smallest live face,
  as the one-face tracking does; once such a search has found nothing, later ones run their cheap
  passes only (`search_cost.SearchBudget`, as the converter). A face found twice keeps its first
  box (`boxes.distinct`), so a video with one face gets exactly the converter's boxes and crops.
- **Linking** (`Tracker`): detections are matched to live tracks greedily, best pair first: IoU
  >= `IOU_MATCH` with the track's last box, then, for what is left, centre distance <=
  `CENTRE_MATCH` last-box sides with sides within a factor `SIZE_RATIO` (fast motion); ties go to
  the older track, then to the earlier box. A track may miss up to `MAX_GAP` consecutive sampled
  frames; an unmatched face starts a new track (ids in order of appearance, largest face first).
- **Keeping** (`track_input`): tracks seen in fewer than ``min_track_frames`` sampled frames
  (capped at the number of frames sampled) are dropped: passers-by and flickering false
  detections. So are tracks whose best dlib score (`detection_score`) stays below `MIN_SCORE`
  (a badge, a pattern), unless it is the input's best-scoring track: an input is never left
  without its most face-like track, as with the one-face tracking. An image is one frame, so each
  of its faces is a track (minimum 1). With ``crop="none"`` every frame is the face: one track.

Example:

```python
tracked = track_input("video", ["clip.mp4"], FaceAligner(), 30, min_track_frames=5)
[(t.track_id, t.frames, t.boxes) for t in tracked.kept]      # faces: t.items (aligned `Face`)
```
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence

import numpy as np

from mclcr_keras.data import video
from mclcr_keras.data.alignment import region_of
from mclcr_keras.data.boxes import Box, box_side, center, iou
from mclcr_keras.data.crops import failure_reason, resize_square, sampled_frames
from mclcr_keras.data.faces import Face
from mclcr_keras.data.search_cost import SearchBudget

logger = logging.getLogger(__name__)

IOU_MATCH = 0.3      # a face continues a track when its IoU with the track's last box is >= this
CENTRE_MATCH = 1.0   # else when its centre is within this many last-box sides of the last box's
SIZE_RATIO = 2.0     # ... and the two boxes' sides differ by at most this factor
MAX_GAP = 5          # consecutive sampled frames a track may miss and still be continued
MIN_SCORE = 0.5      # a kept track's best dlib score is >= this (or it is the input's best track)


@dataclasses.dataclass(eq=False)
class Track:
    """One face followed across frames.

    Attributes:
        track_id: 0, 1, ... in order of appearance.
        frames: frame indices in which the face was found, increasing.
        boxes: its box ``(x0, y0, x1, y1)`` in each of those frames.
        items: what the caller attached to each detection (`track_input`: the aligned `Face`).
        gap: sampled frames since the track was last matched.
        score: the best `detection_score` of its faces so far (scoring stops at `MIN_SCORE`).
    """

    track_id: int
    frames: list[int] = dataclasses.field(default_factory=list)
    boxes: list[Box] = dataclasses.field(default_factory=list)
    items: list = dataclasses.field(default_factory=list)
    gap: int = 0
    score: float = -math.inf

    @property
    def last_box(self) -> Box:
        return self.boxes[-1]


class Tracker:
    """Links the faces of successive frames into tracks (greedy matching, deterministic).

    Example:

    >>> tracker = Tracker()
    >>> [t.track_id for t in tracker.update(0, [(0, 0, 100, 100), (300, 0, 400, 100)])]
    [0, 1]
    >>> [t.track_id for t in tracker.update(1, [(310, 0, 410, 100), (20, 0, 120, 100)])]
    [1, 0]
    >>> [(t.track_id, t.frames) for t in tracker.tracks]
    [(0, [0, 1]), (1, [0, 1])]
    """

    def __init__(self, iou_match: float = IOU_MATCH, centre_match: float = CENTRE_MATCH,
                 size_ratio: float = SIZE_RATIO, max_gap: int = MAX_GAP):
        self.iou_match = float(iou_match)
        self.centre_match = float(centre_match)
        self.size_ratio = float(size_ratio)
        self.max_gap = int(max_gap)
        self.tracks: list[Track] = []

    def live(self) -> list[Track]:
        """The tracks a face may still continue (missed at most ``max_gap`` frames in a row)."""
        return [t for t in self.tracks if t.gap <= self.max_gap]

    def _near(self, track: Track, box: Box) -> float | None:
        """Centre distance in last-box sides, or None when too far or too different in size."""
        side, other = box_side(track.last_box), box_side(box)
        if side <= 0 or other <= 0 or max(side, other) > self.size_ratio * min(side, other):
            return None
        distance = float(np.linalg.norm(center(box) - center(track.last_box))) / side
        return distance if distance <= self.centre_match else None

    def update(self, frame_index: int, boxes: Sequence[Box], items: Sequence | None = None
               ) -> list[Track]:
        """Adds one frame's faces; returns the track of each box (in the order of ``boxes``).

        Args:
            frame_index: the frame's index (increasing from call to call).
            boxes: the frame's face boxes; unmatched ones start tracks in this order.
            items: one object per box to keep with it (``Track.items``), or None.
        """
        boxes = [tuple(int(v) for v in box) for box in boxes]
        items = list(items) if items is not None else [None] * len(boxes)
        live = self.live()
        overlaps = [(-iou(t.last_box, b), t.track_id, j, t) for t in live
                    for j, b in enumerate(boxes) if iou(t.last_box, b) >= self.iou_match]
        distances = [(d, t.track_id, j, t) for t in live for j, b in enumerate(boxes)
                     if (d := self._near(t, b)) is not None]
        owner: dict[int, Track] = {}
        for pairs in (overlaps, distances):  # IoU pairs first, then the centre-distance fallback
            for _, _, j, track in sorted(pairs, key=lambda p: p[:3]):
                if j not in owner and track not in owner.values():
                    owner[j] = track
        for track in live:
            track.gap += 1
        for j, box in enumerate(boxes):
            if j not in owner:
                owner[j] = Track(track_id=len(self.tracks))
                self.tracks.append(owner[j])
            track = owner[j]
            track.frames.append(int(frame_index))
            track.boxes.append(box)
            track.items.append(items[j])
            track.gap = 0
        return [owner[j] for j in range(len(boxes))]


def detection_score(aligner, rgb, box: Box) -> float:
    """dlib's confidence that ``box`` holds a face: its detector's best score (``run`` with
    threshold -1) for a detection overlapping the box (IoU >= 0.3), on a region of 2.2 box sides
    around it scaled so that the box is 96 px (edge-replicated outside the frame); ``-inf`` if
    none. FF++ faces score 1.5-3.6 (0.6-3 darkened 8x; 2.2-3 at 60 px), a badge -0.1-0.25."""
    import cv2

    side = box_side(box)
    if side <= 0:
        return -math.inf
    (cx, cy), half, scale = center(box), 1.1 * side, 96.0 / side
    x0, y0 = int(cx - half), int(cy - half)
    region = region_of(rgb, x0, y0, int(math.ceil(cx + half)), int(math.ceil(cy + half)))
    image = cv2.resize(region, None, fx=scale, fy=scale,
                       interpolation=cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR)
    rects, scores, _ = aligner.detector.run(image, 0, -1.0)
    found = [s for r, s in zip(rects, scores)
             if iou((r.left() / scale + x0, r.top() / scale + y0, (r.right() + 1) / scale + x0,
                     (r.bottom() + 1) / scale + y0), box) >= 0.3]
    return float(max(found, default=-math.inf))


def faces_in(rgb, aligner, tracker: Tracker, budget: SearchBudget | None = None) -> list[Box]:
    """The face boxes of one frame for ``tracker`` (see the module docstring), largest first.
    A full search that finds nothing spends ``budget`` (`search_cost.SearchBudget`); once it is
    spent, full searches run their cheap passes only."""
    budget = budget or SearchBudget(None)
    live = tracker.live()
    if tracker.tracks:
        boxes = aligner.detect_all(rgb, near=[t.last_box for t in live])
        if boxes:
            return boxes
        down_to = 0.5 * min((box_side(t.last_box) for t in live), default=2 * aligner.min_face)
    else:  # no face seen yet: every pass, small faces beside large ones too
        down_to = aligner.min_face
    boxes = aligner.detect_all(rgb, down_to=down_to, escalate=budget.escalate)
    budget.record(found=bool(boxes))
    return boxes


def keep(tracks: Sequence[Track], min_frames: int) -> list[Track]:
    """The tracks to score: seen in >= ``min_frames`` frames, and with a best score >=
    `MIN_SCORE` unless it is the best-scoring of those (the first of equals); order kept.

    >>> a, b, c = Track(0, [0, 1, 2], score=1.6), Track(1, [1, 2, 3], score=0.1), Track(2, [3])
    >>> [t.track_id for t in keep([a, b, c], 3)], [t.track_id for t in keep([b, c], 3)]
    ([0], [1])
    """
    long_enough = [t for t in tracks if len(t.frames) >= min_frames]
    best = max(long_enough, key=lambda t: t.score, default=None)
    return [t for t in long_enough if t.score >= MIN_SCORE or t is best]


@dataclasses.dataclass
class TrackedInput:
    """The tracks of one input (`track_input`).

    Attributes:
        tracks: every track found, in order of appearance; ``items`` are aligned `Face` objects.
        kept: the tracks of at least ``min_frames`` frames (those to score), same order.
        sampled: frames read from the input.
        min_frames: the minimum applied (``min_track_frames`` capped at ``sampled``; 1 for an
            image and with ``crop="none"``).
        failure: ``None``, or why the input gave no kept track (then ``kept`` is empty).
        frames: ``{frame_index: rgb}`` of the frames holding a kept face, with ``keep_frames``.
    """

    tracks: list[Track]
    kept: list[Track]
    sampled: int
    min_frames: int
    failure: str | None = None
    frames: dict = dataclasses.field(default_factory=dict)

    @property
    def faces_found(self) -> int:
        """Faces found over all sampled frames (dropped tracks included)."""
        return sum(len(t.frames) for t in self.tracks)


def follow_frames(frames, aligner, crop: str = "detect", size: int = 256,
                  keep_frames: bool = False) -> tuple[list[Track], dict]:
    """(tracks, {frame_index: rgb}) of decoded ``(frame_index, rgb)`` frames: every face found,
    aligned and tracked, or with ``crop="none"`` one track of the whole frames resized. The
    frames are kept only with ``keep_frames``. `track_input` is this on an input's frames."""
    tracker, single, kept_frames, budget = Tracker(), Track(track_id=0), {}, SearchBudget()
    for index, rgb in frames:
        if crop == "none":
            box = (0, 0, int(rgb.shape[1]), int(rgb.shape[0]))
            faces = [Face(image=resize_square(rgb, size), box=box, landmarks=None)]
            single.frames.append(int(index))
            single.boxes.append(box)
            single.items.append(faces[0])
        else:
            faces = [aligner.align(rgb, box) for box in faces_in(rgb, aligner, tracker, budget)]
            for track, face in zip(tracker.update(index, [f.box for f in faces], faces), faces):
                if track.score < MIN_SCORE:
                    track.score = max(track.score, detection_score(aligner, rgb, face.box))
        if keep_frames and faces:
            kept_frames[int(index)] = rgb
    if crop == "none":
        single.score = math.inf
        return ([single] if single.frames else []), kept_frames
    return tracker.tracks, kept_frames


def track_input(kind: str, paths: Sequence[str], aligner, num_frames: int, crop: str = "detect",
                size: int = 256, min_track_frames: int = 1,
                keep_frames: bool = False) -> TrackedInput:
    """Every face of one input, aligned and tracked; one odd input never raises.

    Args:
        kind: ``"video"``, ``"image"`` or ``"frames"`` (a folder of frame images).
        paths: the input's file(s), as in `mclcr_keras.data.crops.crop_input`.
        aligner: a `mclcr_keras.data.faces.FaceAligner` (unused with ``crop="none"``).
        num_frames: frames sampled evenly over a video or frame folder.
        crop: ``"detect"`` (find, align and track every face) or ``"none"`` (frames are crops).
        size: crop side with ``crop="none"`` (the aligner's size otherwise).
        min_track_frames: tracks of fewer sampled frames are dropped (capped at the frames read;
            1 for an image).
        keep_frames: also keep the RGB frames that hold a kept face (``TrackedInput.frames``).
    """
    sampled = 0

    def counted():
        nonlocal sampled
        for index, rgb in sampled_frames(kind, paths, num_frames):
            sampled += 1
            yield index, rgb

    try:
        tracks, frames = follow_frames(counted(), aligner, crop, size, keep_frames)
    except video.MediaError as error:
        return TrackedInput([], [], sampled, 1, str(error))
    except Exception as error:  # one odd input must not end the run
        logger.debug("tracking faces in %s failed", paths[0], exc_info=True)
        return TrackedInput([], [], sampled, 1, failure_reason(error))
    single = kind == "image" or crop == "none"
    minimum = 1 if single else max(1, min(int(min_track_frames), sampled))
    kept = keep(tracks, minimum)
    needed = {i for t in kept for i in t.frames}
    result = TrackedInput(tracks, kept, sampled, minimum,
                          frames={i: rgb for i, rgb in frames.items() if i in needed})
    if not tracks:
        result.failure = f"no face found in any of the {sampled} sampled frames"
    elif not kept:
        longest = max(len(t.frames) for t in tracks)
        result.failure = (f"no face tracked in >= {minimum} of the {sampled} sampled frames "
                          f"({len(tracks)} tracks of <= {longest} frames)")
    return result
