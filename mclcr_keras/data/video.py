"""Video and image reading: 30 frames per video, evenly spaced, decoded sequentially.

H.264 seeking (``CAP_PROP_POS_FRAMES``) is slow and can land on the wrong frame, so
:func:`read_frames` walks the video once from the start, ``grab()``-ing every frame (demux +
decode, no colour conversion) and ``retrieve()``-ing only the sampled ones. The frame count the
container reports can be wrong: a video that ends early yields the frames that exist; a file that
decodes no frame at all raises :class:`MediaError` with a one-line reason (the converter writes it
to ``failures.csv``).

Example:

```python
from mclcr_keras.data.video import read_frames

for index, rgb in read_frames("clip.mp4", num_frames=30):
    print(index, rgb.shape)
```
"""

from __future__ import annotations

import codecs
import logging
import os
from collections.abc import Iterator

import cv2
import numpy as np

from mclcr_keras.data.media import IMAGE, VIDEO, sniff_kind

logger = logging.getLogger(__name__)


class MediaError(Exception):
    """A video or image that cannot be decoded; ``str(error)`` is a one-line reason.

    Args:
        reason: human-readable reason, e.g. ``"no decodable frames"``.
        path: the offending file (kept as an attribute, not repeated in the message, so the
            reason column of ``failures.csv`` stays short).
    """

    def __init__(self, reason: str, path: str | os.PathLike | None = None):
        super().__init__(reason)
        self.reason = reason
        self.path = None if path is None else os.fspath(path)


def sample_indices(total_frames: int, num_frames: int | None = 30) -> list[int]:
    """Indices of ``num_frames`` frames evenly spaced over the whole video.

    ``np.linspace(0, total_frames - 1, num_frames)`` rounded, deduplicated and sorted, so the first
    and the last frame are always included and a video shorter than ``num_frames`` gives every
    frame once.

    Args:
        total_frames: number of frames in the video (>= 0).
        num_frames: how many to sample (>= 1); ``None`` means every frame.

    Returns:
        Sorted unique frame indices in ``[0, total_frames)``.

    Example:
        >>> sample_indices(10, 4)
        [0, 3, 6, 9]
        >>> sample_indices(3, 30)
        [0, 1, 2]
    """
    if total_frames < 0:
        raise ValueError(f"total_frames must be >= 0, received {total_frames}")
    if num_frames is None:
        return list(range(total_frames))
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1 or None, received {num_frames}")
    if total_frames == 0:
        return []
    if num_frames >= total_frames:
        return list(range(total_frames))
    points = np.linspace(0, total_frames - 1, num_frames)
    return sorted({int(i) for i in np.round(points)})


def _open(path: str | os.PathLike) -> cv2.VideoCapture:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise MediaError("file not found", path)
    if os.path.isdir(path):
        raise MediaError("not a video: is a directory", path)
    if os.path.getsize(path) == 0:
        raise MediaError("empty file (0 bytes)", path)
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        capture.release()
        raise MediaError(_unopenable_reason(path), path)
    return capture


# Leading bytes of the containers FFmpeg reads: a file that starts like one but does not open is
# truncated or corrupt (e.g. an mp4 cut before its "moov" index), otherwise it is not a video.
def _unopenable_reason(path: str) -> str:
    with open(path, "rb") as handle:
        head = handle.read(512)
    kind = sniff_kind(path)
    if kind == VIDEO:
        return "truncated or corrupt video: FFmpeg cannot read its header"
    if kind == IMAGE:
        return "not a video: an image file"
    try:
        # final=False: the 512-byte cut may split a multi-byte character
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        is_text = b"\x00" not in head
    except UnicodeDecodeError:
        is_text = False
    return "not a video: text file" if is_text else "not a video: unknown format"


def _count_frames(path: str | os.PathLike) -> int:
    """Count frames by grabbing them all (used when the container reports no count)."""
    capture = _open(path)
    count = 0
    try:
        while capture.grab():
            count += 1
    finally:
        capture.release()
    return count


def read_frames(
    path: str | os.PathLike, num_frames: int | None = 30
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(frame_index, rgb)`` for ``num_frames`` frames evenly spaced over a video.

    Decodes sequentially with ``cv2.VideoCapture``: ``grab()`` for every frame up to the last
    sampled one, ``retrieve()`` (and BGR->RGB) only for the sampled frames. No seeking.

    Args:
        path: video file.
        num_frames: frames to sample (see :func:`sample_indices`); ``None`` yields every frame.

    Yields:
        ``(frame_index, frame)`` with ``frame`` an RGB ``uint8`` array of shape ``(H, W, 3)``,
        in increasing ``frame_index`` order.

    Raises:
        MediaError: the file is empty, not a video, or decodes no frame at all. A video that
            ends before its reported frame count yields the sampled frames that exist (logged).

    Example:

    ```python
    frames = dict(read_frames("clip.mp4", 30))  # {frame_index: rgb}
    ```
    """
    if num_frames is not None and num_frames < 1:
        raise ValueError(f"num_frames must be >= 1 or None, received {num_frames}")
    capture = _open(path)
    try:
        total = capture.get(cv2.CAP_PROP_FRAME_COUNT)
        total = int(total) if np.isfinite(total) and total > 0 else 0
        if total == 0:
            capture.release()
            total = _count_frames(path)
            if total == 0:
                raise MediaError("no decodable frames", path)
            capture = _open(path)
        wanted = sample_indices(total, num_frames)
        last = wanted[-1]
        wanted_set = set(wanted)
        # Counts estimated from the duration can exceed the real count by a few frames: keep the
        # newest frame after the second-to-last sample, to stand in for a last one that is missing.
        tail_start = wanted[-2] if len(wanted) > 1 else -1
        latest = None
        yielded = 0
        index = 0
        while index <= last:
            if not capture.grab():
                break
            if index in wanted_set or index > tail_start:
                ok, frame = capture.retrieve()
                if ok and frame is not None:
                    if index in wanted_set:
                        yielded += 1
                        latest = None
                        yield index, _to_rgb(frame)
                    else:
                        latest = (index, frame)
            index += 1
        if index <= last and latest is not None:
            yielded += 1
            yield latest[0], _to_rgb(latest[1])
    finally:
        capture.release()
    if yielded == 0:
        raise MediaError("no decodable frames", path)
    if index <= last:
        logger.warning(
            "%s: ended after %d of %d reported frames; yielded %d of %d sampled frames",
            os.fspath(path), index, total, yielded, len(wanted),
        )


def _to_rgb(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as RGB ``uint8`` ``(H, W, 3)`` (grey and alpha converted).

    Raises:
        MediaError: the file is missing, empty or not a decodable image.

    Example:

    ```python
    rgb = read_image("face.png")
    ```
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise MediaError("file not found", path)
    if os.path.isdir(path):
        raise MediaError("not an image: is a directory", path)
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0:
        raise MediaError("empty file (0 bytes)", path)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise MediaError("not an image: OpenCV cannot decode it (corrupt or wrong format)", path)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
