"""Face detection, 5-point landmarks and similarity alignment (dlib + OpenCV).

Pipeline per frame (DESIGN.md "Data" > Faces): dlib's frontal HOG detector finds the face, dlib's
5-point shape predictor (``shape_predictor_5_face_landmarks.dat`` from ``face-recognition-models``)
places the eye corners and the base of the nose on the full-resolution frame, and a least-squares
similarity transform (Umeyama) maps them onto :data:`TEMPLATE_5`, giving a ``size x size`` crop.

The template is the mean position of the 5 landmarks inside dlib's own detection box (measured
on the FF++ and DFDC faces of ``../shared/data``, made left-right symmetric), so an aligned crop is
on average the classic FF++ crop -- the dlib box enlarged by ``margin`` (1.3) around its centre --
with the eyes rotated level. See ``docs/faces.md``.

Small faces: detection starts on a copy downscaled to ``detect_max_side`` and, when nothing is
found, doubles the scale until faces of ``min_face`` pixels (default 40) are reachable. In a video,
the face of the previous frame is first looked for in a window around its old box (cheap).

Example:
    >>> from mclcr_keras.data.faces import FaceAligner
    >>> aligner = FaceAligner(size=256)
    >>> face = aligner(rgb_frame)  # doctest: +SKIP
    >>> face.image.shape  # doctest: +SKIP
    (256, 256, 3)
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import math
import os
import pathlib

import cv2
import numpy as np

from mclcr_keras.data.video import read_frames

logger = logging.getLogger(__name__)

Box = tuple[int, int, int, int]

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

# dlib's HOG window is 80 x 80 pixels: the smallest face found at a given scale.
_DLIB_WINDOW = 80
_PAD = 0.15
_MAX_DETECT_SIDE = 3840
_BORDERS = {"constant": cv2.BORDER_CONSTANT, "replicate": cv2.BORDER_REPLICATE}


@dataclasses.dataclass(frozen=True, eq=False)
class Face:
    """An aligned face crop and where it came from.

    Attributes:
        image: ``(size, size, 3)`` uint8 RGB aligned crop.
        box: ``(x0, y0, x1, y1)`` of the dlib detection in the original frame (``x1``/``y1``
            exclusive; may extend beyond the frame, as dlib's boxes do).
        landmarks: ``(5, 2)`` float32 landmarks in original frame coordinates, dlib 5-point order.

    Compared by identity (``eq=False``): NumPy fields make ``==`` ambiguous.
    """

    image: np.ndarray
    box: Box
    landmarks: np.ndarray


def landmark_model_path(points: int = 5) -> pathlib.Path:
    """Path of dlib's 5- or 68-point shape predictor shipped by ``face-recognition-models``.

    The package is located with ``importlib.util.find_spec`` instead of being imported, because its
    ``__init__`` needs ``pkg_resources`` (gone from recent setuptools).

    Args:
        points: 5 or 68.

    Example:
        >>> landmark_model_path(5).name
        'shape_predictor_5_face_landmarks.dat'
    """
    if points not in (5, 68):
        raise ValueError(f"points must be 5 or 68, received {points}")
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "package face-recognition-models is not installed (pip install face-recognition-models)"
        )
    name = f"shape_predictor_{points}_face_landmarks.dat"
    path = pathlib.Path(spec.origin).parent / "models" / name
    if not path.is_file():
        raise FileNotFoundError(f"dlib landmark model not found: {path}")
    return path


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


def _center(box: Box) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0])


def _width(box: Box) -> float:
    return float(max(box[2] - box[0], box[3] - box[1]))


def _nearest(boxes: list[Box], previous: Box) -> Box:
    """The box whose centre is nearest the previous box's centre (ties: larger IoU)."""
    center = _center(previous)
    return min(boxes, key=lambda b: (np.linalg.norm(_center(b) - center), -_iou(b, previous)))


def _iou(a: Box, b: Box) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class FaceAligner:
    """dlib face detector + 5-point alignment to a canonical template.

    Cheap to construct and picklable: the dlib models load on first use in each process.

    Args:
        size: side of the aligned crop in pixels.
        margin: crop side / dlib box side (1.3 = the FF++ crop).
        detect_max_side: first detection pass on a copy whose longer side is at most this.
        min_face: smallest face (dlib box side, original pixels) searched for when the first pass
            finds nothing; the scale doubles until it is reached (40 px costs ~1 s on a 1080p frame
            with no face; it is only paid when the cheaper passes fail).
        track_window: side of the tracking window, in previous-box widths.
        border: ``"constant"`` (black, as DeepfakeBench's ``warpAffine``) or ``"replicate"`` for
            crop pixels outside the frame.

    Example:
        >>> aligner = FaceAligner(size=256, margin=1.3)
        >>> face = aligner(rgb)  # doctest: +SKIP
        >>> next_face = aligner(next_rgb, previous_box=face.box)  # doctest: +SKIP
    """

    def __init__(
        self,
        size: int = 256,
        margin: float = 1.3,
        detect_max_side: int = 640,
        min_face: int = 40,
        track_window: float = 2.2,
        border: str = "constant",
    ):
        if size < 16:
            raise ValueError(f"size must be >= 16, received {size}")
        if not margin >= 1.0:
            raise ValueError(f"margin must be >= 1.0, received {margin}")
        if detect_max_side < _DLIB_WINDOW:
            raise ValueError(
                f"detect_max_side must be >= {_DLIB_WINDOW}, received {detect_max_side}"
            )
        if min_face < 10:
            raise ValueError(f"min_face must be >= 10, received {min_face}")
        if track_window < 1.5:
            raise ValueError(f"track_window must be >= 1.5, received {track_window}")
        if border not in _BORDERS:
            raise ValueError(f"border must be one of {sorted(_BORDERS)}, received {border!r}")
        self.size = int(size)
        self.margin = float(margin)
        self.detect_max_side = int(detect_max_side)
        self.min_face = int(min_face)
        self.track_window = float(track_window)
        self.border = border
        self.template = template_points(self.size, self.margin)
        self._detector = None
        self._predictors: dict[int, object] = {}

    # -- pickling: ship the configuration, not the dlib models ---------------------------------
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_detector"] = None
        state["_predictors"] = {}
        return state

    def __repr__(self) -> str:
        return (
            f"FaceAligner(size={self.size}, margin={self.margin}, "
            f"detect_max_side={self.detect_max_side}, min_face={self.min_face}, "
            f"track_window={self.track_window}, border={self.border!r})"
        )

    @property
    def detector(self):
        if self._detector is None:
            import dlib

            self._detector = dlib.get_frontal_face_detector()
        return self._detector

    def _predictor(self, points: int):
        if points not in self._predictors:
            import dlib

            self._predictors[points] = dlib.shape_predictor(str(landmark_model_path(points)))
        return self._predictors[points]

    # -- detection -----------------------------------------------------------------------------
    def _detect_at(self, rgb: np.ndarray, scale: float, offset=(0, 0)) -> list[Box]:
        """dlib detections on ``rgb`` resized by ``scale``, mapped back (+ offset) to the frame."""
        if scale != 1.0:
            h, w = rgb.shape[:2]
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
            image = cv2.resize(rgb, size, interpolation=interpolation)
        else:
            image = np.ascontiguousarray(rgb)
        boxes = []
        for rect in self.detector(image, 0):
            boxes.append(
                (
                    int(round(rect.left() / scale)) + offset[0],
                    int(round(rect.top() / scale)) + offset[1],
                    int(round((rect.right() + 1) / scale)) + offset[0],
                    int(round((rect.bottom() + 1) / scale)) + offset[1],
                )
            )
        return boxes

    def _scales(self, rgb: np.ndarray, min_face: float) -> list[float]:
        """Detection scales from coarse to fine: downscaled first, doubled until min_face."""
        longest = max(rgb.shape[:2])
        scale = min(1.0, self.detect_max_side / longest)
        # never beyond a 3840 px image (1080p upsampled twice): in 4K video a face is 80 px or more
        last = max(scale, min(_DLIB_WINDOW / min_face, _MAX_DETECT_SIDE / longest))
        scales = [scale]
        while scale < last - 1e-9:
            scale = min(scale * 2.0, last)
            scales.append(scale)
        return scales

    def _padded_detect(self, rgb: np.ndarray, scale: float) -> list[Box]:
        """Detect on a copy padded by edge replication: finds faces cut by the frame's border.

        dlib misses faces that fill the image (tight face crops) or touch its edge; padding 15%
        raises the detection rate on the tight DFDC crops of ``../shared/data`` from 77% to 91%.
        """
        pad = max(1, int(round(_PAD * max(rgb.shape[:2]))))
        padded = cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        return [
            (b[0] - pad, b[1] - pad, b[2] - pad, b[3] - pad)
            for b in self._detect_at(padded, scale)
        ]

    def _passes(self, rgb: np.ndarray, min_face: float):
        """Detection passes from cheap to costly, each a callable returning boxes."""
        scales = self._scales(rgb, min_face)
        yield lambda: self._detect_at(rgb, scales[0])
        yield lambda: self._padded_detect(rgb, scales[0])
        for scale in scales[1:]:
            yield lambda scale=scale: self._detect_at(rgb, scale)

    def detect(self, rgb: np.ndarray) -> list[Box]:
        """All faces found by the first detection pass that finds any, largest first.

        Passes: the copy downscaled to ``detect_max_side``; the same copy padded by 15% (faces cut
        by the border, tight crops); then doubling scales until faces of ``min_face`` pixels are
        reachable. A frame whose faces are large is done after the first, cheap pass.

        Args:
            rgb: ``(H, W, 3)`` uint8 RGB frame.

        Returns:
            Boxes ``(x0, y0, x1, y1)`` in frame coordinates, largest first; ``[]`` if none.
        """
        rgb = _check_rgb(rgb)
        for run in self._passes(rgb, self.min_face):
            boxes = run()
            if boxes:
                return sorted(boxes, key=lambda b: -_width(b))
        return []

    def _detect_near(self, rgb: np.ndarray, previous: Box) -> list[Box]:
        """Detections in a window of ``track_window`` box widths around the previous box."""
        height, width = rgb.shape[:2]
        side = _width(previous)
        if side <= 0:
            return []
        cx, cy = _center(previous)
        half = self.track_window * side / 2.0
        x0, y0 = max(0, int(cx - half)), max(0, int(cy - half))
        x1, y1 = min(width, int(math.ceil(cx + half))), min(height, int(math.ceil(cy + half)))
        if x1 - x0 < 8 or y1 - y0 < 8:
            return []
        # The previous face becomes 1.2 dlib windows wide: found again if it shrinks by < 1/6. The
        # window's pixel count, hence its cost, is (1.2 * 80 * track_window)^2 whatever the frame.
        scale = 1.2 * _DLIB_WINDOW / side
        return self._detect_at(rgb[y0:y1, x0:x1], scale, offset=(x0, y0))

    # -- landmarks and alignment ---------------------------------------------------------------
    def landmarks(self, rgb: np.ndarray, box: Box, points: int = 5) -> np.ndarray:
        """dlib landmarks of the face in ``box`` on the full-resolution frame.

        Args:
            rgb: ``(H, W, 3)`` uint8 RGB frame.
            box: ``(x0, y0, x1, y1)`` face box.
            points: 5 (alignment) or 68 (e.g. blending masks).

        Returns:
            ``(points, 2)`` float32 ``(x, y)`` coordinates.
        """
        import dlib

        rgb = _check_rgb(rgb)
        # The predictor only reads pixels near the box: give it that region (no copy of a whole
        # 1080p frame), replicated at the frame's edge when the box sticks out of it.
        side = _width(box)
        x0, y0 = int(box[0] - side), int(box[1] - side)
        x1, y1 = int(box[2] + side), int(box[3] + side)
        region = _region(rgb, x0, y0, x1, y1)
        rect = dlib.rectangle(
            int(box[0]) - x0, int(box[1]) - y0, int(box[2]) - 1 - x0, int(box[3]) - 1 - y0
        )
        shape = self._predictor(points)(region, rect)
        return np.array([(p.x + x0, p.y + y0) for p in shape.parts()], dtype=np.float32)

    def transform(self, landmarks: np.ndarray) -> np.ndarray:
        """2 x 3 similarity matrix mapping frame coordinates to crop coordinates."""
        landmarks = np.asarray(landmarks, dtype=np.float64)
        if landmarks.shape != (5, 2):
            raise ValueError(f"expected (5, 2) landmarks, received shape {landmarks.shape}")
        return similarity_transform(landmarks, self.template)

    def warp(self, rgb: np.ndarray, matrix: np.ndarray) -> np.ndarray:
        """Apply ``matrix`` (frame -> crop) and return the ``size x size`` crop.

        When the face shrinks (scale < 1) the region is first reduced with ``INTER_AREA`` so a
        large face is averaged, not aliased, by the bilinear warp.
        """
        matrix = np.asarray(matrix, dtype=np.float64)
        scale = math.hypot(matrix[0, 0], matrix[1, 0])
        border = _BORDERS[self.border]
        inverse = cv2.invertAffineTransform(matrix)
        n = self.size
        corners = np.array([[0, 0, 1], [n, 0, 1], [0, n, 1], [n, n, 1]])
        src = corners @ inverse.T
        height, width = rgb.shape[:2]
        x0 = max(0, int(math.floor(src[:, 0].min())) - 2)
        y0 = max(0, int(math.floor(src[:, 1].min())) - 2)
        x1 = min(width, int(math.ceil(src[:, 0].max())) + 3)
        y1 = min(height, int(math.ceil(src[:, 1].max())) + 3)
        if x1 <= x0 or y1 <= y0:  # crop entirely outside the frame
            return np.zeros((self.size, self.size, 3), np.uint8)
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
            region, local[:2], (self.size, self.size), flags=cv2.INTER_LINEAR, borderMode=border
        )

    def align(self, rgb: np.ndarray, box: Box) -> Face:
        """Landmarks on the full-resolution frame, then the similarity-aligned crop."""
        rgb = _check_rgb(rgb)
        points = self.landmarks(rgb, box, 5)
        image = self.warp(rgb, self.transform(points))
        return Face(image=image, box=tuple(int(v) for v in box), landmarks=points)

    def find(self, rgb: np.ndarray, previous_box: Box | None = None) -> Box | None:
        """The box of the face to keep: the largest, or the one nearest ``previous_box``."""
        rgb = _check_rgb(rgb)
        if previous_box is None:
            boxes = self.detect(rgb)
            return boxes[0] if boxes else None
        near = self._detect_near(rgb, previous_box)
        if near:
            return _nearest(near, previous_box)
        # The tracked face left the window: full search. A face of the track is not expected to
        # shrink below half its size, so the search stops there; accept the first scale holding a
        # face close to the old box, else the nearest face found anywhere.
        side = _width(previous_box)
        found: list[Box] = []
        for run in self._passes(rgb, max(self.min_face, 0.5 * side)):
            boxes = run()
            for box in boxes:
                if np.linalg.norm(_center(box) - _center(previous_box)) <= side:
                    return _nearest(boxes, previous_box)
            found.extend(boxes)
        return _nearest(found, previous_box) if found else None

    def __call__(self, rgb: np.ndarray, previous_box: Box | None = None) -> Face | None:
        """One aligned face per track, or ``None`` when the frame has no face.

        Args:
            rgb: ``(H, W, 3)`` uint8 RGB frame.
            previous_box: the box kept in the previous frame of the same video, if any.
        """
        box = self.find(rgb, previous_box)
        return None if box is None else self.align(rgb, box)


def _region(rgb: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
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


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3:
        shape = getattr(rgb, "shape", type(rgb).__name__)
        raise ValueError(f"expected an (H, W, 3) RGB image, received {shape}")
    if rgb.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, received dtype {rgb.dtype}")
    return rgb


def crop_video(
    path: str | os.PathLike, aligner: FaceAligner, num_frames: int | None = 30
) -> tuple[list[tuple[int, Face]], int]:
    """Sample ``num_frames`` frames of a video and align one tracked face in each.

    The track starts at the largest face of the first frame that has one and then follows the
    face nearest the last kept box (frames without a face keep the last box).

    Args:
        path: video file.
        aligner: the :class:`FaceAligner` to use.
        num_frames: frames to sample evenly over the whole video (``None``: all).

    Returns:
        ``(faces, missing)``: ``[(frame_index, Face), ...]`` in frame order, and the number of
        decoded sampled frames in which no face was found.

    Raises:
        MediaError: the video cannot be decoded (see :func:`read_frames`).

    Example:
        >>> faces, missing = crop_video("clip.mp4", FaceAligner())  # doctest: +SKIP
    """
    faces: list[tuple[int, Face]] = []
    missing = 0
    previous: Box | None = None
    for index, rgb in read_frames(path, num_frames):
        face = aligner(rgb, previous)
        if face is None:
            missing += 1
            continue
        previous = face.box
        faces.append((index, face))
    return faces, missing
