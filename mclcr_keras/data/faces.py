"""Face detection, 5-point landmarks and similarity alignment (dlib + OpenCV).

Pipeline per frame (DESIGN.md "Data" > Faces): dlib's frontal HOG detector finds the face, dlib's
5-point shape predictor (``shape_predictor_5_face_landmarks.dat`` from ``face-recognition-models``)
places the eye corners and the base of the nose on the full-resolution frame, and a least-squares
similarity transform (Umeyama) maps them onto the template
(`mclcr_keras.data.alignment.TEMPLATE_5`), giving a ``size x size`` crop.

The template is the mean position of the 5 landmarks inside dlib's own detection box (measured
on the FF++ and DFDC faces of ``../shared/data``, made left-right symmetric), so an aligned crop is
on average the classic FF++ crop -- the dlib box enlarged by ``margin`` (1.3) around its centre --
with the eyes rotated level. See ``docs/faces.md``.

Small faces: detection starts on a copy downscaled to ``detect_max_side`` and, when nothing is
found, doubles the scale until faces of ``min_face`` pixels (default 40) are reachable. In a video,
the face of the previous frame is first looked for in a window around its old box (cheap).

Example:

```python
from mclcr_keras.data.faces import FaceAligner

aligner = FaceAligner(size=256)
face = aligner(rgb_frame)  # None when the frame has no face
face.image.shape           # (256, 256, 3)
```
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np

from mclcr_keras.data.alignment import (
    BORDERS,
    check_rgb,
    region_of,
    similarity_transform,
    template_points,
    warp_crop,
)
from mclcr_keras.data.boxes import Box, box_side, center, distinct, nearest
from mclcr_keras.data.landmark_models import landmark_model_path
from mclcr_keras.data.search_cost import DLIB_WINDOW as _DLIB_WINDOW
from mclcr_keras.data.search_cost import cheap, plan_scales

_PAD = 0.15


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


class FaceAligner:
    """dlib face detector + 5-point alignment to a canonical template.

    Cheap to construct and picklable: the dlib models load on first use in each process.

    Args:
        size: side of the aligned crop in pixels.
        margin: crop side / dlib box side (1.3 = the FF++ crop).
        detect_max_side: first detection pass on a copy whose longer side is at most this.
        min_face: smallest face (dlib box side, original pixels) searched for when the first pass
            finds nothing; the scale doubles until it is reached or the image has 2560 x 1440
            pixels (`search_cost`: a faceless 1080p frame's full search costs ~0.5 s).
        track_window: side of the tracking window, in previous-box widths.
        border: ``"constant"`` (black, as DeepfakeBench's ``warpAffine``) or ``"replicate"`` for
            crop pixels outside the frame.

    Example:

    ```python
    aligner = FaceAligner(size=256, margin=1.3)
    face = aligner(rgb)
    next_face = aligner(next_rgb, previous_box=face.box)
    ```
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
        if border not in BORDERS:
            raise ValueError(f"border must be one of {sorted(BORDERS)}, received {border!r}")
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
        """Detection scales from coarse to fine: downscaled first, doubled until min_face, never
        past a 2560 x 1440 image (`mclcr_keras.data.search_cost.plan_scales`)."""
        return plan_scales(*rgb.shape[:2], self.detect_max_side, min_face)

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

    def _passes(self, rgb: np.ndarray, min_face: float, escalate: bool = True):
        """Detection passes from cheap to costly, each a callable returning boxes; without
        ``escalate`` only the first and those on images of <= `search_cost.CHEAP_PIXELS`."""
        scales, (height, width) = self._scales(rgb, min_face), rgb.shape[:2]
        pad = 2 * max(1, int(round(_PAD * max(height, width))))  # as _padded_detect pads
        yield lambda: self._detect_at(rgb, scales[0])
        if escalate or cheap((height + pad) * (width + pad) * scales[0] ** 2):
            yield lambda: self._padded_detect(rgb, scales[0])
        for scale in scales[1:]:
            if escalate or cheap(height * width * scale**2):
                yield lambda scale=scale: self._detect_at(rgb, scale)

    def detect(self, rgb: np.ndarray, escalate: bool = True) -> list[Box]:
        """All faces found by the first detection pass that finds any, largest first.

        Passes: the copy downscaled to ``detect_max_side``; the same copy padded by 15% (faces cut
        by the border, tight crops); then doubling scales until faces of ``min_face`` pixels are
        reachable. A frame whose faces are large is done after the first, cheap pass.

        Args:
            rgb: ``(H, W, 3)`` uint8 RGB frame.
            escalate: ``False`` once the input's `search_cost.SearchBudget` is spent: cheap
                passes only.

        Returns:
            Boxes ``(x0, y0, x1, y1)`` in frame coordinates, largest first; ``[]`` if none.
        """
        rgb = check_rgb(rgb)
        for run in self._passes(rgb, self.min_face, escalate):
            boxes = run()
            if boxes:
                return sorted(boxes, key=lambda b: -box_side(b))
        return []

    def detect_all(self, rgb: np.ndarray, near=(), down_to: float | None = None,
                   escalate: bool = True) -> list[Box]:
        """Every face of a frame, largest first, for following several (`mclcr_keras.data.tracks`):
        those in the tracking window of each box of ``near`` (cheap, any size), then those of the
        first pass (faces >= 80 px x long side / ``detect_max_side``) or, with ``down_to``,
        of every pass down to faces of ``max(down_to, min_face)`` px (cheap ones only without
        ``escalate``). A face found twice keeps its first box (`distinct`)."""
        rgb = check_rgb(rgb)
        found = [box for previous in near for box in self._detect_near(rgb, previous)]
        if down_to is None:
            found += self._detect_at(rgb, self._scales(rgb, self.min_face)[0])
        else:
            for run in self._passes(rgb, max(down_to, self.min_face), escalate):
                found += sorted(run(), key=lambda b: -box_side(b))
        return sorted(distinct(found), key=lambda b: -box_side(b))

    def _detect_near(self, rgb: np.ndarray, previous: Box) -> list[Box]:
        """Detections in a window of ``track_window`` box widths around the previous box."""
        height, width = rgb.shape[:2]
        side = box_side(previous)
        if side <= 0:
            return []
        cx, cy = center(previous)
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

        rgb = check_rgb(rgb)
        # The predictor only reads pixels near the box: give it that region (no copy of a whole
        # 1080p frame), replicated at the frame's edge when the box sticks out of it.
        side = box_side(box)
        x0, y0 = int(box[0] - side), int(box[1] - side)
        x1, y1 = int(box[2] + side), int(box[3] + side)
        region = region_of(rgb, x0, y0, x1, y1)
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
        """Apply ``matrix`` (frame -> crop) and return the ``size x size`` crop (`warp_crop`)."""
        return warp_crop(rgb, matrix, self.size, self.border)

    def align(self, rgb: np.ndarray, box: Box) -> Face:
        """Landmarks on the full-resolution frame, then the similarity-aligned crop."""
        rgb = check_rgb(rgb)
        points = self.landmarks(rgb, box, 5)
        image = self.warp(rgb, self.transform(points))
        return Face(image=image, box=tuple(int(v) for v in box), landmarks=points)

    def find(self, rgb: np.ndarray, previous_box: Box | None = None,
             escalate: bool = True) -> Box | None:
        """The box of the face to keep: the largest, or the one nearest ``previous_box``."""
        rgb = check_rgb(rgb)
        if previous_box is None:
            boxes = self.detect(rgb, escalate)
            return boxes[0] if boxes else None
        near = self._detect_near(rgb, previous_box)
        if near:
            return nearest(near, previous_box)
        # The tracked face left the window: full search. A face of the track is not expected to
        # shrink below half its size, so the search stops there; accept the first scale holding a
        # face close to the old box, else the nearest face found anywhere.
        side = box_side(previous_box)
        found: list[Box] = []
        for run in self._passes(rgb, max(self.min_face, 0.5 * side), escalate):
            boxes = run()
            for box in boxes:
                if np.linalg.norm(center(box) - center(previous_box)) <= side:
                    return nearest(boxes, previous_box)
            found.extend(boxes)
        return nearest(found, previous_box) if found else None

    def __call__(self, rgb: np.ndarray, previous_box: Box | None = None,
                 escalate: bool = True) -> Face | None:
        """One aligned face per track, or ``None`` when the frame has no face.

        Args:
            rgb: ``(H, W, 3)`` uint8 RGB frame.
            previous_box: the box kept in the previous frame of the same video, if any.
            escalate: ``False``: cheap passes only (`search_cost.SearchBudget` spent).
        """
        box = self.find(rgb, previous_box, escalate)
        return None if box is None else self.align(rgb, box)
