"""The explanation figure of one scored file (``predict --explain DIR``): per face track, the frame
where it scored highest with its face box, the aligned crop, Grad-CAM over the crop and the
frequency branch's per-patch saliency; below, the per-frame fake probability of every track
against the decision threshold.

A *track* is a dict (what `predict` collects per tracked face)::

    {"track_id": 0,
     "frames": [0, 8, 16, ...],              # frame indices that were scored
     "probabilities": [0.12, 0.80, ...],     # P(fake) of each of those frames
     "probability": 0.46,                    # the track's score (predict: the mean)
     "best": {"frame_index": 8,              # the frame where the track scored highest
              "frame": full RGB uint8 frame (H, W, 3),
              "box": [x0, y0, x1, y1],       # face box in frame pixels
              "crop": aligned RGB uint8 crop (S, S, 3),
              "grad_cam": (S, S) in [0, 1],  # filled in by `explain_tracks`
              "frequency": (G, G) or None}}  # filled in by `explain_tracks`

`explain_tracks` computes ``grad_cam`` and ``frequency`` (`mclcr_keras.viz.saliency`) for every
track's best crop in one pass and draws the figure; `explanation_figure` draws tracks that
already hold them. Design notes are in ``docs/figures.md`` ("Explanations").

Example:

```python
explain_tracks(load_model("runs/a/best.keras"), tracks, threshold=0.42, path="explain/clip.png",
               title="clip.mp4: FAKE (P(fake) 0.71 > 0.42)")
```
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from mclcr_keras.viz._common import check_rgb, new_figure, save_figure, to_uint8
from mclcr_keras.viz.saliency import explain_crops

EXPLAIN_DPI = 100
_TRACK_KEYS = ("track_id", "frames", "probabilities", "probability", "best")
_BEST_KEYS = ("frame_index", "frame", "box", "crop")
_GREY = np.array([0.299, 0.587, 0.114], np.float32)


def _colour(index: int):
    from matplotlib import colormaps

    return colormaps["tab10"](index % 10)


def check_track(track: Mapping, index: int = 0, saliency: bool = True) -> None:
    """One-line ValueError when ``track`` lacks a key or its arrays disagree in shape."""
    where = f"tracks[{index}]"
    missing = [key for key in _TRACK_KEYS if key not in track]
    missing += [f"best.{key}" for key in _BEST_KEYS if key not in track.get("best", {})]
    if saliency and "grad_cam" not in track.get("best", {}):
        missing.append("best.grad_cam")
    if missing:
        raise ValueError(f"{where} has no {', '.join(missing)}")
    frames, probabilities = np.asarray(track["frames"]), np.asarray(track["probabilities"])
    if frames.ndim != 1 or frames.shape != probabilities.shape or frames.size == 0:
        raise ValueError(f"{where}: frames {frames.shape} and probabilities "
                         f"{probabilities.shape} must be equal, non-empty 1-D lists")
    best = track["best"]
    check_rgb(best["frame"], f"{where}.best.frame")
    crop = check_rgb(best["crop"], f"{where}.best.crop")
    if crop.shape[0] != crop.shape[1]:
        raise ValueError(f"{where}.best.crop must be square, received shape {crop.shape}")
    if np.asarray(best["box"]).shape != (4,):
        raise ValueError(f"{where}.best.box must be [x0, y0, x1, y1], received {best['box']!r}")
    if saliency and np.asarray(best["grad_cam"]).shape != crop.shape[:2]:
        raise ValueError(f"{where}.best.grad_cam must be {crop.shape[:2]}, received "
                         f"{np.asarray(best['grad_cam']).shape}")
    grid = best.get("frequency")
    if saliency and grid is not None and np.asarray(grid).ndim != 2:
        raise ValueError(f"{where}.best.frequency must be (G, G) or None")


def default_title(tracks: Sequence[Mapping], threshold: float) -> str:
    """The verdict of the most suspicious track, as `predict` calls a file (``p > threshold``).

    >>> default_title([{"track_id": 0, "probability": 0.2}, {"track_id": 3, "probability": 0.7}],
    ...               0.5)
    'FAKE: track 3 has P(fake) 0.700 > threshold 0.500'
    """
    top = max(tracks, key=lambda track: float(track["probability"]))
    p = float(top["probability"])
    verdict, sign = ("FAKE", ">") if p > threshold else ("REAL", "<=")
    return (f"{verdict}: track {top['track_id']} has P(fake) {p:.3f} {sign} "
            f"threshold {threshold:.3f}")


def _best_probability(track: Mapping) -> float | None:
    frames = [int(f) for f in track["frames"]]
    index = int(track["best"]["frame_index"])
    return float(track["probabilities"][frames.index(index)]) if index in frames else None


def _frame_panel(ax, track: Mapping, colour) -> None:
    from matplotlib.patches import Rectangle

    best = track["best"]
    frame = to_uint8(best["frame"])
    x0, y0, x1, y1 = (float(v) for v in best["box"])
    ax.imshow(frame)
    width = max(1.5, frame.shape[1] / 400)
    ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=colour,
                           linewidth=width))
    ax.text(x0, y0, f" track {track['track_id']}", color="white", fontsize="small",
            va="bottom", ha="left", bbox={"facecolor": colour, "edgecolor": "none", "pad": 1.5})
    ax.set_title(f"frame {best['frame_index']} ({frame.shape[1]}x{frame.shape[0]})",
                 fontsize="medium")


def _track_row(fig, axes, track: Mapping, colour) -> None:
    best = track["best"]
    crop = to_uint8(best["crop"])
    size = crop.shape[0]
    _frame_panel(axes[0], track, colour)
    at_best = _best_probability(track)
    label = f"track {track['track_id']}\nP(fake) {float(track['probability']):.3f}"
    if at_best is not None:
        label += f"\nthis frame {at_best:.3f}"
    axes[0].set_ylabel(label, fontsize="medium", fontweight="bold", color=colour)

    axes[1].imshow(crop)
    axes[1].set_title(f"aligned crop\n({size}x{size}, as scored)", fontsize="medium")

    axes[2].imshow(crop)
    cam = axes[2].imshow(np.asarray(best["grad_cam"], np.float32), cmap="jet", alpha=0.45,
                         vmin=0.0, vmax=1.0, interpolation="bilinear")
    axes[2].set_title("Grad-CAM of the logit\n(last Xception block)", fontsize="medium")
    fig.colorbar(cam, ax=axes[2], shrink=0.85, label="relative (1 = max of this crop)")

    grid = best.get("frequency")
    if grid is None:
        axes[3].text(0.5, 0.5, "no frequency branch\nin this model variant", ha="center",
                     va="center", transform=axes[3].transAxes, fontsize="medium")
        axes[3].set_title("frequency saliency\n(none)", fontsize="medium")
        axes[3].set_frame_on(False)
        return
    grid = np.asarray(grid, np.float32)
    cells = grid.shape[0]
    axes[3].imshow(to_uint8(crop.astype(np.float32) @ _GREY), cmap="gray", vmin=0, vmax=255)
    image = axes[3].imshow(grid, cmap="inferno", alpha=0.6, vmin=0.0,
                           vmax=float(grid.max()) or 1.0, interpolation="nearest",
                           extent=(0, size, size, 0))
    for k in range(1, cells):
        axes[3].axhline(k * size / cells, color="white", linewidth=0.4, alpha=0.6)
        axes[3].axvline(k * size / cells, color="white", linewidth=0.4, alpha=0.6)
    axes[3].set_xlim(0, size)
    axes[3].set_ylim(size, 0)
    patch = size // cells
    axes[3].set_title(f"frequency saliency\n({cells}x{cells} patches of {patch} px)",
                      fontsize="medium")
    fig.colorbar(image, ax=axes[3], shrink=0.85,
                 label=r"$\|\partial\,$logit$/\partial$(amp., phase)$\|_2$")


def _timeline(ax, tracks: Sequence[Mapping], threshold: float) -> None:
    top = 1.03
    ax.axhspan(threshold, top, color="crimson", alpha=0.06, linewidth=0)
    ax.axhline(threshold, color="crimson", linestyle="--", linewidth=1.2,
               label=f"threshold {threshold:.3f} (above: fake)")
    for index, track in enumerate(tracks):
        colour = _colour(index)
        frames = np.asarray(track["frames"], np.float64)
        probabilities = np.asarray(track["probabilities"], np.float64)
        order = np.argsort(frames, kind="stable")
        ax.plot(frames[order], probabilities[order], "-o", color=colour, markersize=3.5,
                linewidth=1.5, label=f"track {track['track_id']} "
                f"(P(fake) {float(track['probability']):.3f}, "
                f"{frames.size} frame{'s' if frames.size != 1 else ''})")
        at_best = _best_probability(track)
        if at_best is not None:
            ax.plot([int(track["best"]["frame_index"])], [at_best], marker="*", markersize=13,
                    color=colour, markeredgecolor="black", linestyle="none")
    ax.set_ylim(-0.03, top)
    ax.set_xlabel("frame index")
    ax.set_ylabel("P(fake)")
    ax.set_title("fake probability per scored frame (star: the frame shown above)",
                 fontsize="medium")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize="small", framealpha=0.9)


def explanation_figure(tracks: Sequence[Mapping], threshold: float, title: str | None = None,
                       dpi: int = EXPLAIN_DPI):
    """The explanation matplotlib Figure of tracks that hold ``best.grad_cam`` (and
    ``best.frequency``, ``None`` for a model without the frequency branch).

    One row per track: the best frame with the face box, the aligned crop, the Grad-CAM overlay
    (jet, alpha 0.45, 1 = the crop's maximum), the frequency saliency as a G x G grid of patches
    over the grey crop (inferno, its own scale per track); below, one line per track of P(fake)
    against the frame index, the best frame starred, the threshold dashed. ``title`` defaults to
    `default_title`.
    """
    if not tracks:
        raise ValueError("tracks is empty: a file without a face track has nothing to explain")
    for index, track in enumerate(tracks):
        check_track(track, index)
    threshold = float(threshold)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], received {threshold}")
    count = len(tracks)
    fig = new_figure(13.0, 3.3 * count + 3.0, dpi)
    grid = fig.add_gridspec(count + 1, 4, width_ratios=[1.3, 1.0, 1.2, 1.2],
                            height_ratios=[1.0] * count + [0.8])
    for index, track in enumerate(tracks):
        axes = [fig.add_subplot(grid[index, column]) for column in range(4)]
        _track_row(fig, axes, track, _colour(index))
        for ax in axes:
            ax.set_xticks([])
            ax.set_yticks([])
    _timeline(fig.add_subplot(grid[count, :]), tracks, threshold)
    fig.suptitle(title or default_title(tracks, threshold), fontsize="x-large",
                 fontweight="bold")
    return fig


def plot_explanation(tracks: Sequence[Mapping], threshold: float, path: str | os.PathLike,
                     title: str | None = None, dpi: int = EXPLAIN_DPI) -> Path:
    """Writes `explanation_figure` to the PNG ``path`` and returns the path."""
    return save_figure(explanation_figure(tracks, threshold, title, dpi), path, dpi)


def explain_tracks(model, tracks: Sequence[Mapping], threshold: float,
                   path: str | os.PathLike, title: str | None = None, dpi: int = EXPLAIN_DPI,
                   batch_size: int = 8) -> Path:
    """Computes Grad-CAM and frequency saliency of every track's best crop and writes the figure.

    Args:
        model: the MC-LCR Keras model, or the path of its ``.keras`` file.
        tracks: track dicts (module docstring); ``best.grad_cam`` / ``best.frequency`` are
            computed here (the caller's dicts are not modified).
        threshold: the decision threshold the file was called with.
        path: output PNG.
        title: figure title; `predict` passes the file name and its verdict.
        dpi: PNG resolution.
        batch_size: crops per forward/backward pass.

    Returns:
        The path written.
    """
    if not tracks:
        raise ValueError("tracks is empty: a file without a face track has nothing to explain")
    for index, track in enumerate(tracks):
        check_track(track, index, saliency=False)
    if isinstance(model, (str, os.PathLike)):
        from mclcr_keras.viz._common import load_model

        model = load_model(model)
    explained = explain_crops(model, [t["best"]["crop"] for t in tracks], batch_size)
    filled = []
    for index, track in enumerate(tracks):
        track = {**track, "best": copy.copy(dict(track["best"]))}
        crop_side = np.asarray(track["best"]["crop"]).shape[0]
        cam = explained["grad_cam"][index]
        if cam.shape[0] != crop_side:  # the crop was resized to the model's side: map it back
            import cv2

            cam = cv2.resize(cam, (crop_side, crop_side), interpolation=cv2.INTER_LINEAR)
        track["best"]["grad_cam"] = cam
        frequency = explained["frequency"]
        track["best"]["frequency"] = None if frequency is None else frequency[index]
        filled.append(track)
    return plot_explanation(filled, threshold, path, title, dpi)
