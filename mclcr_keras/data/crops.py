"""Inputs -> aligned face crops: the one face-tracking loop, used by the converter and by `predict`.

`crop_input` reads the sampled frames of a video, an image or a folder of frames, and follows one
face across them: the track starts at the largest face of the first frame that has one and then
keeps the face nearest the last kept box (a frame without a face keeps the last box). With
``crop="none"`` the inputs already are face crops and are only resized. One odd input never raises:
its failure comes back as a one-line reason (the converter writes it to ``failures.csv``, `predict`
to the file's row).

Example:

```python
frames, sampled, failure = crop_input("video", ["clip.mp4"], FaceAligner(), 30)
index, rgb, box, landmarks = frames[0]
```
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence

from mclcr_keras.data import video
from mclcr_keras.data.search_cost import SearchBudget

logger = logging.getLogger(__name__)

CROP_MODES = ("detect", "none")


def resize_square(rgb, size: int):
    """``rgb`` resized to ``size x size`` (area filter when shrinking, cubic when enlarging)."""
    import cv2

    height, width = rgb.shape[:2]
    if (height, width) == (size, size):
        return rgb
    shrink = size < max(height, width)
    return cv2.resize(rgb, (size, size),
                      interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def sampled_frames(kind: str, paths: Sequence[str],
                   num_frames: int) -> Iterator[tuple[int, object]]:
    """(frame_index, rgb) of the sampled frames of a video, an image, or a folder of frames."""
    if kind == "video":
        yield from video.read_frames(paths[0], num_frames)
        return
    if kind == "image":
        yield 0, video.read_image(paths[0])
        return
    readable = 0
    for index in video.sample_indices(len(paths), num_frames):
        try:
            rgb = video.read_image(paths[index])
        except video.MediaError as error:
            logger.warning("%s: %s; frame skipped", paths[index], error)
            continue
        readable += 1
        yield index, rgb
    if not readable:
        raise video.MediaError(f"no readable image among the {len(paths)} frames of the folder")


def track_faces(frames: Iterable[tuple[int, object]], aligner) -> Iterator[tuple[int, object]]:
    """``(frame_index, Face)`` of one face tracked across ``frames`` (frames without one skipped).

    Once a frame's full search found nothing, the later frames get the cheap search only
    (`mclcr_keras.data.search_cost.SearchBudget`): a faceless video costs about what one with a
    face does.

    Args:
        frames: ``(frame_index, rgb uint8 (H, W, 3))`` in frame order.
        aligner: a `mclcr_keras.data.faces.FaceAligner`.
    """
    previous, budget = None, SearchBudget()
    for index, rgb in frames:
        face = aligner(rgb, previous, escalate=budget.escalate)
        budget.record(found=face is not None)
        if face is None:
            continue
        previous = face.box
        yield index, face


def failure_reason(error: Exception) -> str:
    """``"TypeName: first line of the message"``: the reason column of a failed input."""
    first_line = (str(error).splitlines() or [""])[0]
    return f"{type(error).__name__}: {first_line}"


def crop_input(kind: str, paths: Sequence[str], aligner, num_frames: int,
               crop: str = "detect", size: int = 256) -> tuple[list[tuple], int, str | None]:
    """Aligned face crops of one input.

    Args:
        kind: ``"video"``, ``"image"`` or ``"frames"`` (a folder of frame images).
        paths: the input's file(s), as in `mclcr_keras.data.sources.Item`.
        aligner: a `mclcr_keras.data.faces.FaceAligner` (unused with ``crop="none"``).
        num_frames: frames sampled evenly over a video or frame folder.
        crop: ``"detect"`` (detect, track and align one face) or ``"none"`` (resize whole frames).
        size: crop side with ``crop="none"`` (the aligner's size otherwise).

    Returns:
        ``(frames, sampled, failure)``: ``frames`` is ``[(frame_index, rgb uint8 (S, S, 3), box,
        landmarks)]`` with ``box``/``landmarks`` lists in frame pixels (``landmarks`` ``None``
        with ``crop="none"``); ``sampled`` the number of frames read; ``failure`` ``None`` or
        the reason the input gave no crop (then ``frames`` is empty).
    """
    frames: list[tuple] = []
    sampled = 0

    def counted():
        nonlocal sampled
        for index, rgb in sampled_frames(kind, paths, num_frames):
            sampled += 1
            yield index, rgb

    try:
        if crop == "none":
            for index, rgb in counted():
                box = [0, 0, int(rgb.shape[1]), int(rgb.shape[0])]
                frames.append((int(index), resize_square(rgb, size), box, None))
        else:
            for index, face in track_faces(counted(), aligner):
                landmarks = [[float(x), float(y)] for x, y in face.landmarks]
                frames.append((int(index), face.image, [int(v) for v in face.box], landmarks))
    except video.MediaError as error:
        return [], sampled, str(error)
    except Exception as error:  # one odd input must not end a day-long job
        return [], sampled, failure_reason(error)
    if not frames:
        return [], sampled, f"no face found in any of the {sampled} sampled frames"
    return frames, sampled, None
