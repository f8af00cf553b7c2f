"""AUC against perturbation severity (``robustness.png`` of ``evaluate --perturb``), matplotlib
Agg, no pyplot.

One panel per perturbation: per record set, the frame AUC (solid, with its 95% interval as a
band) and the video AUC (dashed, lighter band) at each severity, and the clean frame AUC as a
dotted horizontal line; chance (0.5) in grey.

Example:

```python
robustness_plot(pd.read_csv("eval/robustness.csv"), "eval/robustness.png",
                reversed_axes=("jpeg", "resize"))
```
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("records", "perturbation", "severity", "frame_auc", "frame_auc_ci95_low",
                    "frame_auc_ci95_high", "video_auc", "video_auc_ci95_low",
                    "video_auc_ci95_high")

__all__ = ["robustness_plot"]


def _draw(ax, rows: pd.DataFrame, level: str, color, style: dict, alpha: float, label: str):
    x = rows["severity"].to_numpy(np.float64)
    ax.plot(x, rows[f"{level}_auc"].to_numpy(np.float64), color=color, label=label, **style)
    low = rows[f"{level}_auc_ci95_low"].to_numpy(np.float64)
    high = rows[f"{level}_auc_ci95_high"].to_numpy(np.float64)
    if np.isfinite(low).any():
        ax.fill_between(x, low, high, color=color, alpha=alpha, linewidth=0)


def robustness_plot(
    table: pd.DataFrame,
    path: str | Path,
    *,
    axis_labels: Mapping[str, str] | None = None,
    reversed_axes: Collection[str] = (),
    title: str = "AUC under perturbation",
    panel_px: int = 360,
    dpi: int = 100,
) -> Path:
    """Writes the AUC-vs-severity panels of a robustness table to a PNG.

    Args:
        table: rows of ``robustness.csv`` (`REQUIRED_COLUMNS`); rows with perturbation
            ``"clean"`` give the dotted reference line of their record set.
        path: output PNG path (parent folders are created).
        axis_labels: x-axis label of each perturbation's panel (default: its name).
        reversed_axes: perturbations whose x axis runs from high to low values (those that get
            stronger as the value shrinks, e.g. JPEG quality), so stronger is always right.
        title: figure title.
        panel_px: width and height of one panel in pixels (up to three panels per row).
        dpi: resolution used to reach ``panel_px``.

    Returns:
        The path written.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"robustness table lacks column(s) {missing}; has {list(table.columns)}")
    if panel_px < 100:
        raise ValueError(f"panel_px must be >= 100, got {panel_px}")
    clean = table[table["perturbation"] == "clean"]
    perturbed = table[table["perturbation"] != "clean"]
    names = list(dict.fromkeys(perturbed["perturbation"]))
    if not names:
        raise ValueError("robustness_plot needs at least one perturbed row, got none")
    records = list(dict.fromkeys(table["records"]))
    from matplotlib import rcParams
    from matplotlib.figure import Figure

    colors = rcParams["axes.prop_cycle"].by_key()["color"]
    columns = min(3, len(names))
    rows = math.ceil(len(names) / columns)
    fig = Figure(figsize=(panel_px * columns / dpi, panel_px * rows / dpi + 0.4), dpi=dpi)
    axes = np.atleast_1d(fig.subplots(rows, columns, squeeze=False)).ravel()
    for ax, name in zip(axes, names):
        ax.axhline(0.5, linestyle="--", color="0.6", linewidth=1, label="chance")
        for index, record in enumerate(records):
            color = colors[index % len(colors)]
            mine = perturbed[(perturbed["perturbation"] == name) & (perturbed["records"] == record)]
            mine = mine.sort_values("severity")
            _draw(ax, mine, "frame", color, {"marker": "o", "linewidth": 2}, 0.2,
                  f"{record} frame")
            _draw(ax, mine, "video", color, {"marker": "s", "linewidth": 1.5, "linestyle": "--"},
                  0.1, f"{record} video")
            reference = clean[clean["records"] == record]["frame_auc"].to_numpy(np.float64)
            if reference.size and np.isfinite(reference[0]):
                ax.axhline(reference[0], linestyle=":", color=color, linewidth=1.5,
                           label=f"{record} clean frame")
        ax.set_xticks(sorted(set(perturbed.loc[perturbed["perturbation"] == name, "severity"])))
        if name in reversed_axes:
            ax.invert_xaxis()
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel((axis_labels or {}).get(name, name))
        ax.set_ylabel("AUC")
        ax.set_title(name)
        ax.grid(True, alpha=0.3)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    axes[0].legend(loc="lower left", fontsize="x-small")
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    logger.info("wrote robustness plot to %s", path)
    return path
