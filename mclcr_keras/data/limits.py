"""Bounded cost for any input: a pixel cap checked before decoding, a duration window for videos,
and `check_media`, the check a service runs on an upload before scoring it.

- **Pixels** (`MAX_PIXELS`, 50 MP): an image whose header declares more pixels is refused before
  it is decoded (`mclcr_keras.data.image_header`), and so is a video whose frames are larger
  (the size FFmpeg reports when the file is opened, before any frame is decoded; each retrieved
  frame is checked again). One line says why, e.g. ``image declares 32000 x 32000 = 1024 MP,
  over --max-pixels 50 MP; not decoded``.
- **Duration** (``max_duration`` seconds; `predict` uses `MAX_DURATION` = 600 s, the library
  default is ``None``: the whole video): a longer video is sampled over its first
  ``max_duration`` seconds, so at most ``max_duration x fps`` frames are decoded (fps as reported,
  at most `MAX_FPS`; `UNKNOWN_FPS` when none is).

`mclcr_keras.data.video.read_frames` and ``read_image`` take a `MediaLimits`; without one they
use the limits in effect (`applied`: a context, so a caller such as `predict` sets them once for
every read below it; outside any, `MediaLimits()`: 50 MP, whole videos). See ``docs/predict.md``
("Limits and hostile input").

Example:

>>> pixel_refusal("image", 32000, 32000, MAX_PIXELS)
'image declares 32000 x 32000 = 1024 MP, over --max-pixels 50 MP; not decoded'
>>> frame_window(25.0, 600.0), frame_window(float("nan"), 10.0), frame_window(25.0, None)
(15000, 300, None)
>>> with applied(MediaLimits(max_duration=60.0)):
...     current().max_duration
60.0
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import math
import os

MAX_PIXELS = 50_000_000
MAX_DURATION = 600.0
MAX_FPS = 120.0     # a higher reported rate is taken as 120 fps when capping the frames decoded
UNKNOWN_FPS = 30.0  # the rate assumed when the container reports none


@dataclasses.dataclass(frozen=True)
class MediaLimits:
    """What one input may cost.

    Attributes:
        max_pixels: largest image / video frame (width x height) that is decoded.
        max_duration: a longer video is sampled over its first ``max_duration`` seconds;
            ``None``: over its whole length.
    """

    max_pixels: int = MAX_PIXELS
    max_duration: float | None = None

    def validate(self) -> None:
        """`ValueError` for a non-positive limit."""
        if not self.max_pixels >= 1:
            raise ValueError(f"max_pixels must be >= 1, received {self.max_pixels}")
        if self.max_duration is not None and not self.max_duration > 0:
            raise ValueError(f"max_duration must be > 0, received {self.max_duration}")


_CURRENT: contextvars.ContextVar[MediaLimits] = contextvars.ContextVar(
    "mclcr_keras_media_limits", default=MediaLimits())


def current() -> MediaLimits:
    """The limits in effect (see `applied`)."""
    return _CURRENT.get()


@contextlib.contextmanager
def applied(limits: MediaLimits):
    """Make ``limits`` the limits of every read inside the ``with`` block (this thread/task)."""
    limits.validate()
    token = _CURRENT.set(limits)
    try:
        yield limits
    finally:
        _CURRENT.reset(token)


def with_limits(function, limits: MediaLimits):
    """``function`` wrapped to run under ``applied(limits)`` (e.g. a cropper of `predict`)."""

    @functools.wraps(function)
    def limited(*args, **kwargs):
        with applied(limits):
            return function(*args, **kwargs)

    return limited


def _megapixels(pixels: float) -> str:
    return f"{pixels / 1e6:.4g} MP"


def pixel_refusal(kind: str, width: int, height: int, max_pixels: int) -> str | None:
    """The one-line refusal of a ``width x height`` image or video frame, or ``None`` if allowed."""
    if width * height <= max_pixels:
        return None
    what = "image declares" if kind == "image" else "video frames are"
    return (f"{what} {width} x {height} = {_megapixels(width * height)}, over --max-pixels "
            f"{_megapixels(max_pixels)}; not decoded")


def frame_window(fps: float, max_duration: float | None) -> int | None:
    """Frames of a video that may be decoded: its first ``max_duration`` seconds at ``fps``
    (clamped to `MAX_FPS`, `UNKNOWN_FPS` when not a positive number); ``None``: no limit."""
    if max_duration is None:
        return None
    rate = fps if math.isfinite(fps) and fps > 0 else UNKNOWN_FPS
    return max(1, int(math.ceil(max_duration * min(rate, MAX_FPS))))


@dataclasses.dataclass(frozen=True)
class MediaInfo:
    """What `check_media` found, without decoding.

    Attributes:
        kind: ``"image"`` or ``"video"`` (from the content, not the name).
        format: image format (``"PNG"``, ...) or ``"video"``.
        width, height: declared size (a video's frame size as FFmpeg reports it).
        frames: a video's reported frame count (``None``: not reported, or an image).
        fps: a video's reported frame rate (``None``: not reported, or an image).
        window: frames of the video that will be decoded at most (``None``: all).
    """

    kind: str
    format: str
    width: int
    height: int
    frames: int | None = None
    fps: float | None = None
    window: int | None = None

    @property
    def duration(self) -> float | None:
        """Seconds, from the reported count and rate (``None`` when either is missing)."""
        return self.frames / self.fps if self.frames and self.fps else None


def check_media(path: str | os.PathLike, max_pixels: int = MAX_PIXELS,
                max_duration: float | None = MAX_DURATION) -> MediaInfo:
    """Check an input against the limits without decoding it: the service's upload check.

    The kind comes from the file's first bytes (`mclcr_keras.data.media.sniff_kind`); an image's
    size from its header, a video's from FFmpeg's view of its container (opened, not decoded).

    Raises:
        mclcr_keras.data.video.MediaError: missing, empty, not an image or video, corrupt
            header, or over ``max_pixels`` (``str(error)`` is the one-line reason).

    Example:

    ```python
    info = check_media("upload.bin")          # MediaError: ... over --max-pixels 50 MP ...
    info.kind, info.width, info.height, info.window
    ```
    """
    from mclcr_keras.data import video
    from mclcr_keras.data.media import IMAGE, VIDEO, sniff_kind

    limits = MediaLimits(int(max_pixels), max_duration)
    limits.validate()
    path = os.fspath(path)
    video.check_file(path, "an image or video")
    kind = sniff_kind(path)
    if kind == IMAGE:
        size = video.checked_image_size(path, limits.max_pixels)
        return MediaInfo(IMAGE, size.format, size.width, size.height)
    if kind != VIDEO:
        raise video.MediaError("not an image or video: unknown format", path)
    import cv2

    capture = video.open_video(path, limits.max_pixels)
    try:
        total, fps = video.reported_count_and_rate(capture)
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    finally:
        capture.release()
    return MediaInfo(VIDEO, "video", width, height, total or None, fps or None,
                     frame_window(fps, limits.max_duration))
