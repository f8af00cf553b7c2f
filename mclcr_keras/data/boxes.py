"""Face boxes ``(x0, y0, x1, y1)`` in frame pixels (``x1``/``y1`` exclusive): centre, side,
overlap, one box per face (`distinct`), and the nearest box to a tracked one.

Example:

>>> iou((0, 0, 10, 10), (5, 0, 15, 10))
0.3333333333333333
>>> box_side((0, 0, 10, 12))
12.0
"""

from __future__ import annotations

import numpy as np

Box = tuple[int, int, int, int]


def center(box: Box) -> np.ndarray:
    """``(cx, cy)`` of a box."""
    return np.array([(box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0])


def box_side(box: Box) -> float:
    """The longer side of a box (its size for tracking and detection scales)."""
    return float(max(box[2] - box[0], box[3] - box[1]))


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 for disjoint or empty boxes)."""
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def distinct(boxes: list[Box], overlap: float = 0.4) -> list[Box]:
    """``boxes`` without those overlapping an earlier one by IoU > ``overlap``: one box per face
    when two searches (two scales, a tracking window and a full pass) find the same face. Order
    kept; the first box found wins.

    >>> distinct([(0, 0, 10, 10), (1, 0, 11, 10), (20, 0, 30, 10)])
    [(0, 0, 10, 10), (20, 0, 30, 10)]
    """
    kept: list[Box] = []
    for box in boxes:
        if all(iou(box, other) <= overlap for other in kept):
            kept.append(box)
    return kept


def nearest(boxes: list[Box], previous: Box) -> Box:
    """The box whose centre is nearest the previous box's centre (ties: larger IoU)."""
    middle = center(previous)
    return min(boxes, key=lambda b: (np.linalg.norm(center(b) - middle), -iou(b, previous)))
