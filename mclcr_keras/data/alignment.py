"""The geometry of face alignment: the 5-point template, the similarity fit and the crop warp.

An aligned crop maps dlib's 5 landmarks (eye corners, base of the nose) onto :data:`TEMPLATE_5`
with a least-squares similarity transform (Umeyama 1991) and warps the frame into a ``size x size``
crop. `mclcr_keras.data.faces.FaceAligner` finds the faces and their landmarks; this module only
does the arithmetic (NumPy and OpenCV, no dlib). See ``docs/faces.md``.

Example:

```python
matrix = similarity_transform(landmarks, template_points(256, 1.3))  # (5, 2) dlib points
crop = warp_crop(rgb, matrix, 256)                                   # (256, 256, 3) uint8
```
"""

from __future__ import annotations

import math

import cv2
import numpy as np

BORDERS = {"constant": cv2.BORDER_CONSTANT, "replicate": cv2.BORDER_REPLICATE}

# Mean 5-point landmarks in dlib-box units: origin at the box centre, box width = 1, eyes level.
# dlib's 5-point order: 0/1 outer/inner corner of the eye on the image's right, 2/3 outer/inner
# corner of the eye on the image's left, 4 base of the nose (subnasale). Measured with this module's
# detector on ../shared/data (7 FF++ videos x 10 frames, 283 DFDC real crops), mean of the two
# datasets, made left-right symmetric (docs/faces.md).
TEMPLATE_5 = np.array(
    [
        [0.2876, -0.1900],
        [0.1231, -0.1900],
        [-0.2876, -0.1900],
        [-0.1231, -0.1900],
        [0.0, 0.1038],
    ],
    dtype=np.float64,
)


def template_points(size: int = 256, margin: float = 1.3) -> np.ndarray:
    """The 5 canonical landmark positions in a ``size x size`` crop with the given margin.

    A dlib box of width ``w`` centred in the crop becomes a square of ``size / margin`` pixels.

    Example:
        >>> template_points(256, 1.3).shape
        (5, 2)
    """
    return (size * (0.5 + TEMPLATE_5 / margin)).astype(np.float32)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping ``src`` to ``dst``.

    Umeyama (1991), without reflection. Returns the 2 x 3 matrix for ``cv2.warpAffine``.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1] = -1.0
    rotation = u @ np.diag(d) @ vt
    var = (src_c**2).sum() / len(src)
    scale = (s * d).sum() / var
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


def warp_crop(rgb: np.ndarray, matrix: np.ndarray, size: int,
              border: str = "constant") -> np.ndarray:
    """Apply ``matrix`` (frame -> crop) and return the ``size x size`` crop.

    When the face shrinks (scale < 1) the region is first reduced with ``INTER_AREA`` so a
    large face is averaged, not aliased, by the bilinear warp. ``border`` (`BORDERS`) fills crop
    pixels outside the frame.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    scale = math.hypot(matrix[0, 0], matrix[1, 0])
    border_mode = BORDERS[border]
    inverse = cv2.invertAffineTransform(matrix)
    n = size
    corners = np.array([[0, 0, 1], [n, 0, 1], [0, n, 1], [n, n, 1]])
    src = corners @ inverse.T
    height, width = rgb.shape[:2]
    x0 = max(0, int(math.floor(src[:, 0].min())) - 2)
    y0 = max(0, int(math.floor(src[:, 1].min())) - 2)
    x1 = min(width, int(math.ceil(src[:, 0].max())) + 3)
    y1 = min(height, int(math.ceil(src[:, 1].max())) + 3)
    if x1 <= x0 or y1 <= y0:  # crop entirely outside the frame
        return np.zeros((size, size, 3), np.uint8)
    region = rgb[y0:y1, x0:x1]
    shift = np.array([[1.0, 0.0, x0], [0.0, 1.0, y0], [0.0, 0.0, 1.0]])
    local = matrix @ shift  # region coordinates -> crop
    if scale < 0.9:
        rw, rh = max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))
        region = cv2.resize(region, (rw, rh), interpolation=cv2.INTER_AREA)
        sx, sy = (x1 - x0) / rw, (y1 - y0) / rh
        # pixel centres: region_x = (small_x + 0.5) * sx - 0.5
        up = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
        local = local @ np.vstack([up[:2], [0.0, 0.0, 1.0]])
    return cv2.warpAffine(
        region, local[:2], (size, size), flags=cv2.INTER_LINEAR, borderMode=border_mode
    )


def region_of(rgb: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """``rgb[y0:y1, x0:x1]``, contiguous, edge-replicated where it leaves the frame."""
    height, width = rgb.shape[:2]
    cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
    if cx1 <= cx0 or cy1 <= cy0:
        return np.zeros((y1 - y0, x1 - x0, 3), np.uint8)
    region = rgb[cy0:cy1, cx0:cx1]
    pads = (cy0 - y0, y1 - cy1, cx0 - x0, x1 - cx1)
    if any(pads):
        return cv2.copyMakeBorder(region, *pads, cv2.BORDER_REPLICATE)
    return np.ascontiguousarray(region)


def check_rgb(rgb: np.ndarray) -> np.ndarray:
    """``rgb`` if it is an ``(H, W, 3)`` uint8 array; a one-line ValueError otherwise."""
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3:
        shape = getattr(rgb, "shape", type(rgb).__name__)
        raise ValueError(f"expected an (H, W, 3) RGB image, received {shape}")
    if rgb.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, received dtype {rgb.dtype}")
    return rgb
