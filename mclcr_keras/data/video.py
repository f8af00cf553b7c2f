"""Video and image reading: 30 frames per video, evenly spaced, decoded sequentially.

H.264 seeking (``CAP_PROP_POS_FRAMES``) is slow and can land on the wrong frame, so
:func:`read_frames` walks the video once from the start, ``grab()``-ing every frame (demux +
decode, no colour conversion) and ``retrieve()``-ing only the sampled ones. The frame count the
container reports can be wrong: a video that ends early yields the frames that exist; a file that
decodes no frame at all raises :class:`MediaError` with a one-line reason (the converter writes it
to ``failures.csv``).

Every read is bounded (`mclcr_keras.data.limits`): a file is given to FFmpeg only when its first
bytes are a video container's, an image is decoded only when its header declares at most
``max_pixels``, a video only when its frames are at most that large, and with ``max_duration``
at most its first ``max_duration`` seconds are decoded (also when the frame count must be found
by counting).

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

from mclcr_keras.data import limits as media_limits
from mclcr_keras.data.image_header import HeaderError, ImageSize, image_size
from mclcr_keras.data.limits import MediaLimits
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


def check_file(path: str, what: str = "a video") -> None:
    """`MediaError` for a missing path, a directory or an empty file."""
    if not os.path.exists(path):
        raise MediaError("file not found", path)
    if os.path.isdir(path):
        raise MediaError(f"not {what}: is a directory", path)
    if os.path.getsize(path) == 0:
        raise MediaError("empty file (0 bytes)", path)


def open_video(path: str | os.PathLike, max_pixels: int | None = None) -> cv2.VideoCapture:
    """The file opened by FFmpeg (only FFmpeg: OpenCV's image-sequence reader decodes images
    unchecked), if its first bytes are a video container's and its frames at most
    ``max_pixels`` (default: the limits in effect). Nothing is decoded."""
    path = os.fspath(path)
    check_file(path)
    if sniff_kind(path) != VIDEO:  # by content: FFmpeg would also open a disguised image
        raise MediaError(_unopenable_reason(path), path)
    capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    if not capture.isOpened():
        capture.release()
        raise MediaError(_unopenable_reason(path), path)
    width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    max_pixels = media_limits.current().max_pixels if max_pixels is None else max_pixels
    refusal = media_limits.pixel_refusal(VIDEO, width, height, max_pixels)
    if refusal:
        capture.release()
        raise MediaError(refusal, path)
    return capture



def reported_count_and_rate(capture: cv2.VideoCapture) -> tuple[int, float]:
    """``(frame count, fps)`` as the container reports them; 0 for either when missing."""
    total, fps = capture.get(cv2.CAP_PROP_FRAME_COUNT), capture.get(cv2.CAP_PROP_FPS)
    total = int(total) if np.isfinite(total) and total > 0 else 0
    return total, (float(fps) if np.isfinite(fps) and fps > 0 else 0.0)


# Leading bytes of the containers FFmpeg reads: a file that starts like one but does not open is
# truncated or corrupt (e.g. an mp4 cut before its "moov" index), otherwise it is not a video.
def _unopenable_reason(path: str) -> str:
    with open(path, "rb") as handle:
        head = handle.read(512)
    kind = sniff_kind(path)
    if kind == VIDEO:
        return ("truncated or corrupt video: FFmpeg cannot read its header (or it holds no "
                "video stream)")
    if kind == IMAGE:
        return "not a video: an image file"
    try:
        # final=False: the 512-byte cut may split a multi-byte character
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        is_text = b"\x00" not in head
    except UnicodeDecodeError:
        is_text = False
    return "not a video: text file" if is_text else "not a video: unknown format"


def _count_frames(path: str | os.PathLike, limit: int | None, max_pixels: int) -> int:
    """Count frames by grabbing them (when the container reports no count), at most ``limit``."""
    capture = open_video(path, max_pixels)
    count = 0
    try:
        while (limit is None or count < limit) and capture.grab():
            count += 1
    finally:
        capture.release()
    return count


def read_frames(
    path: str | os.PathLike, num_frames: int | None = 30, limits: MediaLimits | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(frame_index, rgb)`` for ``num_frames`` frames evenly spaced over a video.

    Decodes sequentially with ``cv2.VideoCapture``: ``grab()`` for every frame up to the last
    sampled one, ``retrieve()`` (and BGR->RGB) only for the sampled frames. No seeking.

    Args:
        path: video file.
        num_frames: frames to sample (see :func:`sample_indices`); ``None`` yields every frame.
        limits: pixel cap and duration window (default: the limits in effect,
            `mclcr_keras.data.limits.current`). With ``max_duration``, a longer video is sampled
            over its first ``max_duration`` seconds and at most that many frames are decoded.

    Yields:
        ``(frame_index, frame)`` with ``frame`` an RGB ``uint8`` array of shape ``(H, W, 3)``,
        in increasing ``frame_index`` order.

    Raises:
        MediaError: the file is empty, not a video, over ``max_pixels``, or decodes no frame at
            all. A video that ends before its reported frame count yields the sampled frames
            that exist (logged).

    Example:

    ```python
    frames = dict(read_frames("clip.mp4", 30))  # {frame_index: rgb}
    ```
    """
    if num_frames is not None and num_frames < 1:
        raise ValueError(f"num_frames must be >= 1 or None, received {num_frames}")
    limits = limits or media_limits.current()
    capture = open_video(path, limits.max_pixels)
    try:
        total, fps = reported_count_and_rate(capture)
        window = media_limits.frame_window(fps, limits.max_duration)
        if total == 0:  # no count reported: count by grabbing, at most the window
            capture.release()
            total = _count_frames(path, window, limits.max_pixels)
            if total == 0:
                raise MediaError("no decodable frames", path)
            capture = open_video(path, limits.max_pixels)
        if window is not None and total > window:
            logger.info("%s: %d frames at %.3g fps, longer than max_duration %g s: sampled over "
                        "its first %d frames", os.fspath(path), total, fps, limits.max_duration,
                        window)
            total = window
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
                    _check_frame(frame, limits.max_pixels, path)
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


def _check_frame(frame: np.ndarray, max_pixels: int, path) -> None:
    """A decoded frame larger than the container said (a stream that changes size) is refused."""
    refusal = media_limits.pixel_refusal(VIDEO, frame.shape[1], frame.shape[0], max_pixels)
    if refusal:
        raise MediaError(refusal, path)


def _to_rgb(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def checked_image_size(path: str, max_pixels: int) -> ImageSize:
    """The size an image's header declares; `MediaError` when unreadable or over ``max_pixels``."""
    try:
        size = image_size(path)
    except HeaderError as error:
        raise MediaError(f"not an image: {error}", path) from None
    refusal = media_limits.pixel_refusal(IMAGE, size.width, size.height, max_pixels)
    if refusal:
        raise MediaError(refusal, path)
    return size


def read_image(path: str | os.PathLike, limits: MediaLimits | None = None) -> np.ndarray:
    """Read an image file as RGB ``uint8`` ``(H, W, 3)`` (grey, alpha, 16-bit, CMYK converted;
    a JPEG's EXIF orientation applied).

    Only PNG, JPEG, GIF (its first frame), BMP, WebP and TIFF are decoded, and only when the
    header declares at most ``limits.max_pixels`` (default: the limits in effect).

    Raises:
        MediaError: the file is missing, empty, not one of those formats, over the pixel cap, or
            not decodable.

    Example:

    ```python
    rgb = read_image("face.png")
    ```
    """
    path = os.fspath(path)
    check_file(path, "an image")
    checked_image_size(path, (limits or media_limits.current()).max_pixels)
    data = np.fromfile(path, dtype=np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise MediaError("not an image: OpenCV cannot decode it (corrupt or wrong format)", path)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
