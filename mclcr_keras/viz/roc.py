"""ROC curve figure for evaluation reports (``roc.png``), rendered by matplotlib (Agg, no pyplot).

Example:

```python
roc_curve_plot({"FF++ c23": (labels, probs)}, "runs/eval/roc.png")
```
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

logger = logging.getLogger(__name__)


def roc_curve_plot(
    curves: Mapping[str, tuple],
    path: str | Path,
    *,
    title: str = "ROC curve (frame level)",
    size_px: int = 600,
    dpi: int = 100,
) -> Path:
    """Writes one ROC curve per entry to a PNG, with AUC in the legend and the chance diagonal.

    Args:
        curves: ``{name: (labels, probabilities)}``; labels 0 real / 1 fake. A curve with a single
            class cannot be drawn: it is listed in the legend as "AUC n/a" and a warning is logged.
        path: output PNG path (parent folders are created).
        title: figure title.
        size_px: width and height of the PNG in pixels.
        dpi: resolution used to reach ``size_px``.

    Returns:
        The path written.

    Example:

    ```python
    roc_curve_plot({"test": ([0, 1, 0, 1], [0.1, 0.8, 0.3, 0.6])}, "roc.png")
    ```
    """
    if not curves:
        raise ValueError("roc_curve_plot needs at least one curve, got none")
    if size_px < 100:
        raise ValueError(f"size_px must be >= 100, got {size_px}")
    # A bare Figure renders with Agg and never touches pyplot's global backend or state.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size_px / dpi, size_px / dpi), dpi=dpi)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0, 1], [0, 1], linestyle="--", color="0.6", linewidth=1, label="chance (AUC 0.5)")
    for name, (labels, probabilities) in curves.items():
        y = np.asarray(labels).astype(np.int64)
        p = np.asarray(probabilities, dtype=np.float64)
        if y.shape != p.shape or y.ndim != 1:
            raise ValueError(
                f"curve {name!r}: labels {y.shape} and probabilities {p.shape} must be 1-D, equal"
            )
        if np.unique(y).size < 2:
            logger.warning("ROC curve %r has a single class; not drawn", name)
            ax.plot([], [], label=f"{name} (AUC n/a, one class)")
            continue
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, linewidth=2, label=f"{name} (AUC {roc_auc_score(y, p):.3f})")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_aspect("equal")
    ax.set_xlabel("False positive rate (real called fake)")
    ax.set_ylabel("True positive rate (fake detected)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    logger.info("wrote ROC plot to %s", path)
    return path
