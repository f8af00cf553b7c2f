"""The image perturbations of the robustness sweep (``evaluate --perturb``): NumPy and OpenCV.

A perturbation acts on aligned face crops **at the model's input size** (after the pipeline's
resize), ``(B, S, S, 3)`` RGB pixels in [0, 255], and returns float32 pixels holding 8-bit values:
each crop is first rounded to 8 bits (a no-op for records stored at the model's size), perturbed,
then rounded to the nearest integer and clipped to [0, 255], as an image file would hold it.

- ``jpeg:Q``, quality Q an integer 1-100: OpenCV's encoder, ``cv2.imencode(".jpg", bgr,
  [IMWRITE_JPEG_QUALITY, Q, IMWRITE_JPEG_SAMPLING_FACTOR, 4:2:0])``, then ``cv2.imdecode``
  (RGB to BGR and back);
- ``blur:SIGMA``, 0 < SIGMA <= 32 pixels: ``cv2.GaussianBlur`` on float32, SIGMA in x and y,
  kernel side ``2 * ceil(3 SIGMA) + 1``, border reflect-101 (``dcb|abcd|cba``);
- ``noise:SIGMA``, 0 < SIGMA <= 255 (0-255 units): ``x + SIGMA * z``, ``z`` standard normal per
  pixel and channel from `frame_rng` (seeded per frame; the same ``z`` for every SIGMA);
- ``resize:F``, 0 < F < 1: ``cv2.resize`` on float32 down to ``max(1, floor(F * S + 0.5))`` px,
  then back to ``S``, ``INTER_LINEAR`` both ways (half-pixel centres, no antialiasing);
- ``h264:CRF``, CRF an integer 0-51: one video's crops in frame order, encoded by libx264
  through PyAV (yuv420p, preset medium, one thread, 25 fps, mp4 in memory) and decoded back.

Nothing depends on the batch: noise is seeded by each frame's key, so any batch size or order
gives the same pixels. H.264 needs PyAV (``pip install av``; its wheels include libx264): the
OpenCV wheel has no libx264 encoder and its ``VideoWriter`` sets no CRF. See
``docs/evaluation.md``, "Robustness sweep".

Example:

>>> parse_perturbations(["jpeg:90,70", "blur:1.5"])
[Perturbation(name='jpeg', severity=90), Perturbation(name='jpeg', severity=70),
 Perturbation(name='blur', severity=1.5)]
>>> parse_perturbations(["jpeg:0"])
Traceback (most recent call last):
...
mclcr_keras.evaluation.perturb.PerturbationError: --perturb 'jpeg:0': jpeg takes a JPEG ...
>>> faces = np.full((2, 16, 16, 3), 100.0, np.float32)
>>> out = apply(faces, Perturbation("noise", 5.0), keys=[("ffpp", "original", "000", 0)] * 2)
>>> out.dtype.name, bool((out[0] == out[1]).all()), bool((out != 100).any())
('float32', True, True)
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Sequence

import numpy as np

from mclcr_keras.errors import UsageError

# Base seed of the per-frame noise (`frame_rng`).
PERTURB_SEED = 0
JPEG_SAMPLING = "4:2:0"
H264_FPS = 25
H264_PRESET = "medium"
# Perturbations that act on a video's crops together, in frame order (the others frame by frame).
SEQUENCE_PERTURBATIONS = ("h264",)


@dataclasses.dataclass(frozen=True)
class _Kind:
    what: str
    integer: bool
    low: float
    high: float
    low_open: bool
    high_open: bool
    example: str
    milder_when_higher: bool

    def range_text(self) -> str:
        if self.integer:
            return f"an integer from {self.low:g} to {self.high:g}"
        low = f"> {self.low:g}" if self.low_open else f">= {self.low:g}"
        high = f"< {self.high:g}" if self.high_open else f"<= {self.high:g}"
        return f"a number {low} and {high}"

    def contains(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return bool(above and below)


KINDS = {
    "jpeg": _Kind("a JPEG quality", True, 1, 100, False, False, "90,70,50,30", True),
    "blur": _Kind("a Gaussian sigma in pixels", False, 0, 32, True, False, "1,2,3", False),
    "noise": _Kind("a Gaussian sigma in 0-255 units", False, 0, 255, True, False, "5,10,20", False),
    "resize": _Kind("a scale factor", False, 0, 1, True, True, "0.5,0.25", True),
    "h264": _Kind("an H.264 CRF", True, 0, 51, False, False, "23,30,40", False),
}
VALID_SPECS = ("jpeg:Q (Q an integer 1-100), blur:SIGMA (pixels, 0 < SIGMA <= 32), "
               "noise:SIGMA (0-255 units, 0 < SIGMA <= 255), resize:F (0 < F < 1), "
               "h264:CRF (an integer 0-51)")
AXIS_LABELS = {
    "jpeg": "JPEG quality (lower is stronger)",
    "blur": "Gaussian blur sigma (pixels)",
    "noise": "Gaussian noise sigma (0-255)",
    "resize": "resize factor, down and up (lower is stronger)",
    "h264": "H.264 CRF (higher is stronger)",
}
# The panels of the plot whose severity grows as the value shrinks (x axis reversed).
MILDER_WHEN_HIGHER = tuple(name for name, kind in KINDS.items() if kind.milder_when_higher)

__all__ = ["KINDS", "PERTURB_SEED", "Perturbation", "PerturbationError", "apply",
           "check_available", "encoders", "frame_rng", "h264_encoder", "parse_perturbations"]


class PerturbationError(UsageError, ValueError):
    """A bad ``--perturb`` spec (a `UsageError`, exit 2, and a `ValueError` for library callers)."""


@dataclasses.dataclass(frozen=True)
class Perturbation:
    """One perturbation at one severity, e.g. ``Perturbation("jpeg", 70)``."""

    name: str
    severity: float

    @property
    def label(self) -> str:
        """``"jpeg:70"``."""
        return f"{self.name}:{self.severity:g}"


def _parse_token(token: str) -> list[Perturbation]:
    name, sep, values = str(token).strip().partition(":")
    name = name.strip().lower()
    if name not in KINDS:
        raise PerturbationError(
            f"--perturb {token!r}: unknown perturbation {name!r}; pass one of {VALID_SPECS}, "
            "e.g. --perturb jpeg:90,70 blur:1,2")
    kind = KINDS[name]
    hint = f"e.g. {name}:{kind.example}"
    parts = [part.strip() for part in values.split(",")]
    if not sep or not all(parts):
        raise PerturbationError(
            f"--perturb {token!r}: expected {name}:S1,S2,... with each S {kind.range_text()}; "
            f"{hint}")
    found = []
    for text in parts:
        try:
            value = int(text) if kind.integer else float(text)
        except ValueError:
            value = None
        if value is None or not kind.contains(value):
            raise PerturbationError(
                f"--perturb {token!r}: {name} takes {kind.what}, {kind.range_text()}, got "
                f"{text}; {hint}")
        if value in found:
            raise PerturbationError(f"--perturb {token!r}: {name} severity {text} is listed "
                                    f"twice; {hint}")
        found.append(value)
    return [Perturbation(name, value) for value in found]


def parse_perturbations(specs: Sequence[str]) -> list[Perturbation]:
    """``["jpeg:90,70", "blur:1,2"]`` -> one `Perturbation` per severity, in the order given.

    Raises:
        PerturbationError: one line naming the bad token and what to pass instead: an unknown
            name, a severity out of range (see `KINDS`), a severity or a name given twice.
    """
    if isinstance(specs, str):
        specs = [specs]
    result, seen = [], {}
    for token in specs:
        perturbations = _parse_token(token)
        name = perturbations[0].name
        if name in seen:
            raise PerturbationError(
                f"--perturb: {name} is given twice ({seen[name]!r} and {token!r}); list all its "
                f"severities in one spec, e.g. {name}:{KINDS[name].example}")
        seen[name] = token
        result += perturbations
    return result


def h264_encoder() -> str | None:
    """``"PyAV <version>, libx264"`` when PyAV with libx264 is installed, else None."""
    try:
        import av
    except ImportError:
        return None
    if "libx264" not in getattr(av, "codecs_available", ()):
        return None
    return f"PyAV {av.__version__}, libx264"


def check_available(perturbations: Sequence[Perturbation]) -> None:
    """Raises `PerturbationError` when a requested perturbation cannot run here (H.264)."""
    if any(p.name == "h264" for p in perturbations) and h264_encoder() is None:
        import cv2

        raise PerturbationError(
            f"--perturb h264: cannot encode H.264 here: this OpenCV ({cv2.__version__}) has no "
            "libx264 encoder and its VideoWriter sets no CRF, and PyAV is not installed; "
            "pip install av (its wheels include libx264), or leave h264 out of --perturb")


def encoders(perturbations: Sequence[Perturbation]) -> dict:
    """The encoder of each requested codec perturbation (``{"jpeg": "OpenCV 4.x"}``)."""
    names = {p.name for p in perturbations}
    found = {}
    if "jpeg" in names:
        import cv2

        found["jpeg"] = f"OpenCV {cv2.__version__}, chroma {JPEG_SAMPLING}"
    if "h264" in names:
        found["h264"] = h264_encoder()
    return found


def frame_rng(key: Sequence, seed: int = PERTURB_SEED) -> np.random.Generator:
    """The noise generator of one frame: PCG64 seeded with the first 16 bytes (little endian) of
    the SHA-256 of ``"seed\\x1fdataset\\x1fmethod\\x1fvideo_id\\x1fframe_index"``.

    >>> key = ("ffpp", "Deepfakes", "000_003", 30)
    >>> bool(frame_rng(key).standard_normal() == frame_rng(key).standard_normal())
    True
    """
    text = "\x1f".join(str(part) for part in (seed, *key))
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return np.random.Generator(np.random.PCG64(int.from_bytes(digest[:16], "little")))


def _to_uint8(images) -> np.ndarray:
    return np.clip(np.rint(np.asarray(images, np.float64)), 0, 255).astype(np.uint8)


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    import cv2

    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality),
              cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420]
    ok, encoded = cv2.imencode(".jpg", np.ascontiguousarray(image[..., ::-1]), params)
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a JPEG at quality {quality}")
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1]


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    import cv2

    side = 2 * math.ceil(3 * sigma) + 1
    return cv2.GaussianBlur(image.astype(np.float32), (side, side), sigmaX=sigma, sigmaY=sigma,
                            borderType=cv2.BORDER_REFLECT_101)


def _resize(image: np.ndarray, factor: float) -> np.ndarray:
    import cv2

    size = image.shape[0]
    small = max(1, math.floor(factor * size + 0.5))
    down = cv2.resize(image.astype(np.float32), (small, small), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(down, (size, size), interpolation=cv2.INTER_LINEAR).reshape(image.shape)


def _h264(frames: np.ndarray, crf: int) -> np.ndarray:
    import io

    import av

    count, height, width = frames.shape[:3]
    # yuv420p needs even sides: replicate the last row/column, cut it off after decoding.
    even = np.pad(frames, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="edge")
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=H264_FPS)
        stream.width, stream.height = even.shape[2], even.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(int(crf)), "preset": H264_PRESET, "threads": "1"}
        for frame in even:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    buffer.seek(0)
    with av.open(buffer, mode="r") as container:
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    if len(decoded) != count:
        raise RuntimeError(f"H.264 round trip returned {len(decoded)} of {count} frames")
    return np.stack(decoded)[:, :height, :width]


def apply(images, perturbation: Perturbation, *, keys: Sequence[Sequence] | None = None,
          seed: int = PERTURB_SEED) -> np.ndarray:
    """``perturbation`` applied to a batch of crops at the model's input size.

    Args:
        images: ``(B, S, S, 3)`` RGB pixels in [0, 255], uint8 or float (NumPy or a tensor).
        perturbation: from `parse_perturbations`.
        keys: one ``(dataset, method, video_id, frame_index)`` per image; needed by ``noise``
            (the seed of each frame's noise, `frame_rng`).
        seed: base seed of the noise.

    Returns:
        float32 ``(B, S, S, 3)`` holding integers in [0, 255]. For ``h264`` the batch is one
        video's crops in frame order, encoded as one sequence.
    """
    batch = _to_uint8(images)
    if batch.ndim != 4 or batch.shape[-1] != 3 or batch.shape[1] != batch.shape[2]:
        raise ValueError(f"images must have shape (B, S, S, 3), got {batch.shape}")
    name, severity = perturbation.name, perturbation.severity
    if name not in KINDS or not KINDS[name].contains(severity):
        raise ValueError(f"not a valid perturbation: {perturbation}")
    if len(batch) == 0:
        return batch.astype(np.float32)
    if name == "jpeg":
        out = np.stack([_jpeg(image, severity) for image in batch])
    elif name == "blur":
        out = np.stack([_blur(image, severity) for image in batch])
    elif name == "resize":
        out = np.stack([_resize(image, severity) for image in batch])
    elif name == "noise":
        if keys is None or len(keys) != len(batch):
            raise ValueError(f"noise needs one frame key per image, got "
                             f"{None if keys is None else len(keys)} for {len(batch)} images")
        noise = np.stack([frame_rng(key, seed).standard_normal(batch.shape[1:]) for key in keys])
        out = batch + severity * noise
    else:
        out = _h264(batch, severity)
    return _to_uint8(out).astype(np.float32)
