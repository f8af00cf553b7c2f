"""What a face search may cost: a pixel cap on each frame's escalation, and a per-input budget of
full searches that find nothing.

dlib's HOG detector costs about its image's pixel count (~140 ms per megapixel here). A frame
without a face runs every pass of `mclcr_keras.data.faces.FaceAligner.detect` (1080p: the copy at
640 px, the padded copy, then 1280 x 720, 2560 x 1440 and 3840 x 2160: 32 + 66 + 98 + 415 + 808
CPU-ms), so a faceless 1080p video used to cost ~1.4 s per sampled frame against ~15 ms for a
tracked face. Two caps (``docs/faces.md``, "Bounded cost"):

- **Per frame** (`MAX_DETECT_PIXELS`): no pass looks at an image of more than 2560 x 1440 pixels
  (the 4/3 pass of a 1080p frame). Given up: faces under ~45 px in 1080p frames (60 px boxes at
  scale 1 are found, 45-55 px at 4/3; 40 px needed the 3840 x 2160 pass), under ~120 px in 4K
  frames. 480p and 720p frames still search down to 40 px.
- **Per input** (`SearchBudget`, `FULL_SEARCHES` = 1): once a full search of an input's frame has
  found nothing, its later frames get only the passes on images of at most `CHEAP_PIXELS`
  (640 x 360: at 1080p, the first pass alone; tight face crops of <= 224 px keep every pass).
  Tracked faces are still looked for in their tracking window (cheap, any size). Given up: in an
  input whose first faceless frame was searched in vain, a face that appears later is found only
  if it is >= 80 px x long side / 640 (240 px at 1080p) or sits where the track was.

Example:

>>> budget = SearchBudget()
>>> budget.escalate
True
>>> budget.record(found=False); budget.escalate
False
>>> plan_scales(1080, 1920, detect_max_side=640, min_face=40)
[0.3333333333333333, 0.6666666666666666, 1.3333333333333333]
"""

from __future__ import annotations

import math

DLIB_WINDOW = 80  # dlib's HOG window: the smallest face found at a given scale
MAX_DETECT_PIXELS = 2560 * 1440
CHEAP_PIXELS = 640 * 360
FULL_SEARCHES = 1


def plan_scales(height: int, width: int, detect_max_side: int, min_face: float) -> list[float]:
    """Detection scales from coarse to fine: the frame downscaled to ``detect_max_side``, then
    doubled until faces of ``min_face`` px are reachable, never past `MAX_DETECT_PIXELS`."""
    scale = min(1.0, detect_max_side / max(height, width))
    largest = math.sqrt(MAX_DETECT_PIXELS / (height * width))
    last = max(scale, min(DLIB_WINDOW / min_face, largest))
    scales = [scale]
    while scale < last - 1e-9:
        scale = min(scale * 2.0, last)
        scales.append(scale)
    return scales


def cheap(pixels: float) -> bool:
    """Whether a pass on an image of ``pixels`` runs once an input's budget is spent."""
    return pixels <= CHEAP_PIXELS


class SearchBudget:
    """Full searches (every pass, down to ``min_face``) an input may spend on frames that turn
    out to hold no face. One per input, used by its tracking loop.

    Args:
        full_searches: fruitless full searches allowed (``None``: unlimited, the old behaviour).
    """

    def __init__(self, full_searches: int | None = FULL_SEARCHES):
        self.left = math.inf if full_searches is None else int(full_searches)

    @property
    def escalate(self) -> bool:
        """Whether the next frame may get the full search."""
        return self.left > 0

    def record(self, found: bool) -> None:
        """After a frame searched with ``escalate``: a frame without a face spends one search."""
        if not found and self.escalate:
            self.left -= 1
