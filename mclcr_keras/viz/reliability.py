"""Reliability diagram for evaluation reports (``reliability.png``), matplotlib Agg, no pyplot.

The bins come computed (`mclcr_keras.metrics.reliability_bins`, the ECE's bins), so the figure
shows exactly the numbers of ``metrics.json``. Top: the fraction of fake frames against the mean
fake probability in each non-empty bin, one curve per record set, the diagonal of perfect
calibration. Bottom: the frames in each bin (the weight of each point in the ECE).

Example:

```python
from mclcr_keras.metrics import reliability_bins

reliability_plot({"FF++": reliability_bins(labels, probs)}, "runs/eval/reliability.png")
```
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["reliability_plot"]


def _arrays(name: str, bins: Mapping) -> tuple[np.ndarray, ...]:
    try:
        edges = np.asarray(bins["edges"], dtype=np.float64)
        count = np.asarray(bins["count"], dtype=np.float64)
        mean_p = np.asarray(bins["mean_probability"], dtype=np.float64)
        fake = np.asarray(bins["fake_fraction"], dtype=np.float64)
    except (KeyError, TypeError):
        raise ValueError(
            f"curve {name!r} is not a reliability_bins() dict (needs edges, count, "
            "mean_probability, fake_fraction)"
        ) from None
    if not (edges.ndim == 1 and edges.size >= 2
            and count.shape == mean_p.shape == fake.shape == (edges.size - 1,)):
        raise ValueError(
            f"curve {name!r}: {edges.size} edges need {edges.size - 1} bins, got count "
            f"{count.shape}, mean_probability {mean_p.shape}, fake_fraction {fake.shape}"
        )
    return edges, count, mean_p, fake


def reliability_plot(
    curves: Mapping[str, Mapping],
    path: str | Path,
    *,
    title: str = "Reliability (frame level)",
    size_px: int = 600,
    dpi: int = 100,
) -> Path:
    """Writes a reliability diagram with a bin-count panel to a PNG.

    Args:
        curves: ``{name: reliability_bins(labels, probabilities)}``; an optional ``"ece"`` entry
            is shown in the legend.
        path: output PNG path (parent folders are created).
        title: figure title.
        size_px: width of the PNG in pixels; the height is 4/3 of it.
        dpi: resolution used to reach ``size_px``.

    Returns:
        The path written.
    """
    if not curves:
        raise ValueError("reliability_plot needs at least one curve, got none")
    if size_px < 100:
        raise ValueError(f"size_px must be >= 100, got {size_px}")
    arrays = {name: _arrays(name, bins) for name, bins in curves.items()}
    from matplotlib.figure import Figure

    width = size_px / dpi
    fig = Figure(figsize=(width, width * 4 / 3), dpi=dpi)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0, 1], [0, 1], linestyle="--", color="0.6", linewidth=1,
             label="perfect calibration")
    for name, (edges, count, mean_p, fake) in arrays.items():
        full = count > 0
        ece = curves[name].get("ece")
        label = name if ece is None else f"{name} (ECE {ece:.3f})"
        (line,) = top.plot(mean_p[full], fake[full], marker="o", linewidth=2, label=label)
        bottom.stairs(count, edges, color=line.get_color(), linewidth=2, label=name)
    top.set_xlim(0.0, 1.0)
    top.set_ylim(0.0, 1.0)
    top.set_ylabel("Fraction of fake frames")
    top.set_title(title)
    top.grid(True, alpha=0.3)
    top.legend(loc="upper left", fontsize="small")
    bottom.set_xlabel("Predicted fake probability")
    bottom.set_ylabel("Frames per bin")
    bottom.set_ylim(bottom=0)
    bottom.grid(True, alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    logger.info("wrote reliability diagram to %s", path)
    return path
