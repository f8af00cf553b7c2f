"""Self-blended images (SBI): a fake made by blending a face with a transformed copy of itself.

Shiohara & Yamasaki, "Detecting Deepfakes with Self-Blended Images", CVPR 2022. A source copy of
the frame gets a colour change (RGB shift, brightness, contrast) and a frequency change (blur by
down-and-up scaling, or sharpening), a small random scale and translation around the face centre;
it is then pasted back onto the untouched frame inside a soft mask made from the convex hull of the
68 dlib landmarks, deformed (elastic warp), eroded and blurred, with a random blend ratio. The
result carries the blending boundary and the source/target statistics mismatch of a face swap
without any identity change.

Sizes are expressed as fractions of the face size (the larger side of the landmarks' bounding
box), so the same parameters work on a 320 px demo frame and a 1080p frame. Differences from the
reference code (``mapooon/SelfBlendedImages``) are listed in ``docs/demo_data.md``; the main one:
the transform always goes to the source, so outside the mask the fake equals the input exactly.

Example:

```python
fake, mask = self_blend(rgb, landmarks68, np.random.default_rng(0))
bool(np.all(fake[mask == 0] == rgb[mask == 0]))   # True: outside the mask, the input
```
"""

from __future__ import annotations

import dataclasses
import logging

import cv2
import numpy as np

logger = logging.getLogger(__name__)

HULL_TYPES = ("full", "extended", "inner")

# 68-point dlib indices (iBUG 300-W order).
_JAW = np.arange(0, 17)
_BROWS = np.arange(17, 27)
_NOSE_BRIDGE_TOP = 27
_CHIN = 8


@dataclasses.dataclass(frozen=True)
class SelfBlendConfig:
    """Parameters of `self_blend`; defaults follow the SBI reference code where it has one.

    Attributes:
        hull_types: mask shapes drawn uniformly: ``"full"`` (hull of all 68 points),
            ``"extended"`` (jaw + eyebrows raised towards the forehead), ``"inner"`` (eyebrows,
            eyes, nose and mouth, without the jaw line).
        forehead: how far ``"extended"`` raises the eyebrows, as a fraction of the chin to
            nose-bridge distance.
        blend_ratios: the mask is multiplied by one of these (SBI: 0.25, 0.5, 0.75, 1, 1, 1).
        scale_range: source scale about the face centre (SBI: 0.95 .. 1/0.95).
        translate: max source shift (x, y) as a fraction of the face size (SBI: 3% / 1.5% of a
            crop that is ~1.3x the face).
        rgb_shift: max per-channel additive shift, applied with probability ``rgb_shift_p``.
        rgb_shift_p: probability of the RGB shift (SBI: 0.3).
        brightness: max brightness change (fraction of 255).
        contrast: max contrast change (gain 1 +/- contrast).
        downscale_range: blur branch: shrink by this factor then enlarge back (SBI: 2 .. 4).
        sharpen_range: sharpen branch: unsharp-mask amount.
        elastic: max elastic displacement of the mask, fraction of the face size.
        kernel_range: blur kernel sizes of the mask (erode-blur, then soften), fraction of the
            face size (SBI: 5 .. 25 px at ~200 px faces).
    """

    hull_types: tuple[str, ...] = HULL_TYPES
    forehead: float = 0.25
    blend_ratios: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)
    scale_range: tuple[float, float] = (0.95, 1.0 / 0.95)
    translate: tuple[float, float] = (0.04, 0.02)
    rgb_shift: float = 20.0
    rgb_shift_p: float = 0.3
    brightness: float = 0.1
    contrast: float = 0.1
    downscale_range: tuple[float, float] = (2.0, 4.0)
    sharpen_range: tuple[float, float] = (0.3, 1.0)
    elastic: float = 0.03
    kernel_range: tuple[float, float] = (0.03, 0.13)

    def __post_init__(self):
        unknown = [h for h in self.hull_types if h not in HULL_TYPES]
        if not self.hull_types or unknown:
            raise ValueError(
                f"hull_types must be a non-empty subset of {HULL_TYPES}, got {self.hull_types}"
            )
        if not self.blend_ratios or not all(0.0 < r <= 1.0 for r in self.blend_ratios):
            raise ValueError(f"blend_ratios must lie in (0, 1], got {self.blend_ratios}")
        lo, hi = self.kernel_range
        if not 0.0 < lo <= hi <= 0.5:
            raise ValueError(
                f"kernel_range must satisfy 0 < lo <= hi <= 0.5, got {self.kernel_range}"
            )
        lo, hi = self.scale_range
        if not 0.5 <= lo <= hi <= 2.0:
            raise ValueError(
                f"scale_range must satisfy 0.5 <= lo <= hi <= 2, got {self.scale_range}"
            )

    def reach(self) -> float:
        """Upper bound of how far (in face sizes) the mask can extend beyond the 68-point hull."""
        return (
            self.forehead  # extended hull (chin-to-bridge distance <= face size)
            + max(abs(1.0 - self.scale_range[0]), abs(self.scale_range[1] - 1.0)) * 0.75
            + float(np.hypot(*self.translate))
            + self.elastic
            + self.kernel_range[1]  # the softening blur; the first blur only erodes
        )


def face_size(landmarks68: np.ndarray) -> float:
    """Larger side of the landmarks' bounding box, in pixels."""
    span = landmarks68.max(axis=0) - landmarks68.min(axis=0)
    return float(span.max())


def hull_points(landmarks68: np.ndarray, hull_type: str, forehead: float = 0.25) -> np.ndarray:
    """The points whose convex hull is the blending region, ``(k, 2)`` float32.

    Args:
        landmarks68: ``(68, 2)`` dlib landmarks ``(x, y)``.
        hull_type: one of `HULL_TYPES`.
        forehead: for ``"extended"``, how far the eyebrows are raised (fraction of the chin to
            nose-bridge distance).
    """
    lm = np.asarray(landmarks68, dtype=np.float32)
    if hull_type == "full":
        return lm
    if hull_type == "inner":
        return lm[17:]
    if hull_type == "extended":
        up = lm[_NOSE_BRIDGE_TOP] - lm[_CHIN]  # the face's own "up", so tilted faces work
        brows = lm[_BROWS] + forehead * up
        return np.concatenate([lm[_JAW], brows], axis=0)
    raise ValueError(f"hull_type must be one of {HULL_TYPES}, got {hull_type!r}")


def _odd(x: float) -> int:
    k = max(3, int(round(x)))
    return k if k % 2 == 1 else k + 1


def _color_transform(img: np.ndarray, rng: np.random.Generator, cfg: SelfBlendConfig) -> np.ndarray:
    out = img.astype(np.float32)
    if rng.random() < cfg.rgb_shift_p:
        out += rng.uniform(-cfg.rgb_shift, cfg.rgb_shift, size=3).astype(np.float32)
    gain = 1.0 + rng.uniform(-cfg.contrast, cfg.contrast)
    bias = 255.0 * rng.uniform(-cfg.brightness, cfg.brightness)
    mean = out.mean()
    out = (out - mean) * gain + mean + bias
    return np.clip(out, 0.0, 255.0)


def _frequency_transform(
    img: np.ndarray, rng: np.random.Generator, cfg: SelfBlendConfig
) -> np.ndarray:
    h, w = img.shape[:2]
    if rng.random() < 0.5:  # blur: shrink and enlarge back (SBI's RandomDownScale)
        factor = rng.uniform(*cfg.downscale_range)
        small = (max(1, round(w / factor)), max(1, round(h / factor)))
        down = cv2.resize(img, small, interpolation=cv2.INTER_AREA)
        return cv2.resize(down, (w, h), interpolation=cv2.INTER_LINEAR)
    amount = rng.uniform(*cfg.sharpen_range)
    blurred = cv2.GaussianBlur(img, (0, 0), sigmaX=1.0)
    return np.clip(img + amount * (img - blurred), 0.0, 255.0)


def _elastic(mask: np.ndarray, amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth random displacement (a 5 x 5 grid of vectors, bicubic-interpolated)."""
    h, w = mask.shape
    grid = rng.uniform(-amplitude, amplitude, size=(2, 5, 5)).astype(np.float32)
    dx = np.clip(cv2.resize(grid[0], (w, h), interpolation=cv2.INTER_CUBIC), -amplitude, amplitude)
    dy = np.clip(cv2.resize(grid[1], (w, h), interpolation=cv2.INTER_CUBIC), -amplitude, amplitude)
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(mask, xs + dx, ys + dy, interpolation=cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)


def _soft_mask(mask: np.ndarray, size: float, rng: np.random.Generator,
               cfg: SelfBlendConfig) -> np.ndarray:
    """SBI's get_blend_mask: blur, keep the fully-inside part (erosion), blur again, to max 1."""
    lo, hi = cfg.kernel_range
    k1 = (_odd(size * rng.uniform(lo, hi)), _odd(size * rng.uniform(lo, hi)))
    k2 = (_odd(size * rng.uniform(lo, hi)), _odd(size * rng.uniform(lo, hi)))
    blurred = cv2.GaussianBlur(mask, k1, 0)
    core = np.where(blurred >= 0.999, 1.0, 0.0).astype(np.float32)
    if core.sum() == 0:  # tiny face: skip the erosion rather than lose the mask
        core = (mask > 0.5).astype(np.float32)
    # sigma = 0 lets OpenCV derive it from the kernel size, so the support ends at the kernel.
    soft = cv2.GaussianBlur(core, k2, 0)
    return soft / soft.max()


def self_blend(
    rgb: np.ndarray,
    landmarks68: np.ndarray,
    rng: np.random.Generator,
    config: SelfBlendConfig | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Makes a self-blended fake of a face image (Shiohara & Yamasaki, CVPR 2022).

    Args:
        rgb: ``(H, W, 3)`` uint8 RGB image holding the face.
        landmarks68: ``(68, 2)`` dlib landmarks ``(x, y)`` of that face, e.g. from
            ``FaceAligner().landmarks(rgb, box, points=68)``.
        rng: the only source of randomness: the same generator state gives the same output.
        config: `SelfBlendConfig`; paper-like defaults when ``None``.

    Returns:
        ``(fake, mask)``: the uint8 fake and the float32 ``(H, W)`` blend weight in [0, 1]
        (``fake = round(mask * source + (1 - mask) * rgb)``); where ``mask == 0`` the fake equals
        ``rgb`` exactly.

    Example:

    ```python
    fake, mask = self_blend(rgb, landmarks68, np.random.default_rng(0))
    ```
    """
    cfg = config or SelfBlendConfig()
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got {getattr(rgb, 'shape', rgb)!r}")
    if rgb.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got dtype {rgb.dtype}")
    lm = np.asarray(landmarks68, dtype=np.float32)
    if lm.shape != (68, 2) or not np.isfinite(lm).all():
        raise ValueError(f"expected finite (68, 2) landmarks, got shape {lm.shape}")
    h, w = rgb.shape[:2]
    size = face_size(lm)
    hull_type = cfg.hull_types[int(rng.integers(len(cfg.hull_types)))]
    hull = cv2.convexHull(np.rint(hull_points(lm, hull_type, cfg.forehead)).astype(np.int32))
    mask = np.zeros((h, w), np.float32)
    cv2.fillConvexPoly(mask, hull, 1.0)
    if mask.sum() < 16:
        raise ValueError(
            f"the landmarks' hull covers {int(mask.sum())} pixels inside the {w}x{h} image; "
            "too small (or outside the image) to blend"
        )

    # Source: colour, then blur-or-sharpen, then a small scale/shift about the face centre,
    # applied to the source and its mask together (the mask then follows the moved face).
    source = _frequency_transform(_color_transform(rgb, rng, cfg), rng, cfg)
    center = lm.mean(axis=0)
    scale = rng.uniform(*cfg.scale_range)
    shift = rng.uniform(-1.0, 1.0, size=2) * np.asarray(cfg.translate) * size
    matrix = cv2.getRotationMatrix2D((float(center[0]), float(center[1])), 0.0, scale)
    matrix[:, 2] += shift
    source = cv2.warpAffine(source, matrix, (w, h), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REFLECT_101)
    mask = cv2.warpAffine(mask, matrix, (w, h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)

    mask = _elastic(mask, cfg.elastic * size, rng)
    if mask.max() <= 0.0:
        raise ValueError("the blending mask left the image; landmarks too close to the border")
    mask = _soft_mask(mask, size, rng, cfg)
    mask *= np.float32(cfg.blend_ratios[int(rng.integers(len(cfg.blend_ratios)))])

    blended = mask[..., None] * source + (1.0 - mask[..., None]) * rgb.astype(np.float32)
    fake = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    logger.debug("self_blend: hull=%s scale=%.3f shift=%s", hull_type, scale, shift)
    return fake, mask.astype(np.float32)
