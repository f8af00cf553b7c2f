"""Fig. 6: the summed feature maps of Xception blocks 1-3 (the taps b1, b2, b3 of MC-LCR).

Each map is ``sum_c |F[y, x, c]|`` over the channels of a tap from `MCLCR.feature_extractor`
(b1: 64 channels, b2: 128, b3: 256, post-ReLU). The taps are ReLU outputs, so the absolute value
changes nothing for them; it keeps the figure meaningful for a tap that can be negative. The
paper shows these maps to argue that the shallow blocks respond to the local texture of the
manipulated region.

Example:

```python
maps = summed_feature_maps(model, faces)
plot_feature_maps(model, faces, "fig6.png", titles=["real", "Deepfakes"])
```
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mclcr_keras.models.saving import model_image_size
from mclcr_keras.viz._common import (
    DEFAULT_DPI,
    feature_extractor,
    new_figure,
    save_figure,
    stack_images,
    to_uint8,
)

BLOCKS = ("b1", "b2", "b3")
_BLOCK_NAMES = {"b1": "block 1", "b2": "block 2", "b3": "block 3"}


def summed_feature_maps(
    model,
    images: np.ndarray | Sequence[np.ndarray],
    blocks: Sequence[str] = BLOCKS,
    batch_size: int = 16,
) -> dict[str, np.ndarray]:
    """Channel sums of absolute activations of the block taps, one map per image.

    Args:
        model: an `MCLCR` model (any variant: all have b1, b2, b3).
        images: ``(B, H, W, 3)`` array or a list of ``(H, W, 3)`` RGB images in [0, 255]; images
            not of the model's size are centre-cropped to a square and resized.
        blocks: which taps to sum.
        batch_size: images per forward pass.

    Returns:
        ``{"images": (B, S, S, 3) float32 model inputs, "b1": (B, h1, w1), ...}`` float32.

    Example:

    ```python
    model = build_mclcr(image_size=64, weights=None)
    maps = summed_feature_maps(model, faces)   # two faces
    maps["b1"].shape                           # (2, 29, 29)
    ```
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, received {batch_size!r}")
    extractor = feature_extractor(model, blocks)
    batch = stack_images(images, model_image_size(model))
    sums: dict[str, list[np.ndarray]] = {block: [] for block in blocks}
    for start in range(0, len(batch), batch_size):
        features = extractor(batch[start : start + batch_size], training=False)
        for block in blocks:
            activations = np.asarray(features[block], dtype=np.float32)
            sums[block].append(np.abs(activations).sum(axis=-1))
    result = {"images": batch}
    result.update({block: np.concatenate(parts) for block, parts in sums.items()})
    return result


def feature_maps_figure(
    maps: dict[str, np.ndarray],
    titles: Sequence[str] | None = None,
    overlay: bool = False,
    shared_scale: bool = True,
    title: str | None = None,
    dpi: int = DEFAULT_DPI,
):
    """The Fig. 6 matplotlib Figure: one row per image; columns input, block 1, 2, 3.

    Args:
        maps: the output of `summed_feature_maps`.
        titles: one label per image (e.g. ``"real"``, ``"Deepfakes"``), shown left of its row.
        overlay: draw each map semi-transparently over the (grey) input instead of alone.
        shared_scale: one colour scale per block for all images (so rows compare), with one
            colour bar under the column; otherwise each map has its own scale and colour bar.
        title: figure title.
        dpi: figure resolution.

    Example:

    ```python
    maps = summed_feature_maps(model, faces)
    fig = feature_maps_figure(maps, ["real", "fake"])
    ```
    """
    images = maps["images"]
    blocks = [key for key in BLOCKS if key in maps]
    count = len(images)
    if titles is None:
        titles = [f"image {i + 1}" for i in range(count)]
    titles = list(titles)
    if len(titles) != count:
        raise ValueError(f"got {len(titles)} titles for {count} images")
    columns = 1 + len(blocks)
    fig = new_figure(2.6 * columns + (0.0 if shared_scale else 0.8 * len(blocks)),
                     2.45 * count + (0.9 if shared_scale else 0.5), dpi)
    axes = np.asarray(fig.subplots(count, columns, squeeze=False))
    size = images.shape[1]
    for i in range(count):
        ax = axes[i, 0]
        ax.imshow(to_uint8(images[i]))
        ax.set_ylabel(titles[i], fontsize="large", fontweight="bold")
        if i == 0:
            ax.set_title(f"input ({size}x{size})")
    grey = to_uint8(images @ np.array([0.299, 0.587, 0.114], np.float32))
    for j, block in enumerate(blocks, start=1):
        values = maps[block]
        height, width = values.shape[1:]
        vmax = float(values.max()) or 1.0
        image = None
        for i in range(count):
            ax = axes[i, j]
            top = vmax if shared_scale else (float(values[i].max()) or 1.0)
            if overlay:
                ax.imshow(grey[i], cmap="gray", extent=(0, width, height, 0))
                image = ax.imshow(values[i], cmap="jet", alpha=0.55, vmin=0.0, vmax=top,
                                  extent=(0, width, height, 0), interpolation="bilinear")
            else:
                image = ax.imshow(values[i], cmap="viridis", vmin=0.0, vmax=top,
                                  interpolation="nearest")
            if i == 0:
                ax.set_title(f"{_BLOCK_NAMES[block]} ({block}, {height}x{width})")
            if not shared_scale:
                fig.colorbar(image, ax=ax, shrink=0.85)
        if shared_scale:
            fig.colorbar(image, ax=list(axes[:, j]), location="bottom", shrink=0.9,
                         label=rf"$\Sigma_c\,|{block[0]}_{block[1]}|$ (one scale for all rows)")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title or "Feature maps of Xception blocks 1-3, summed over channels "
                 r"($\Sigma_c$ |activation|)", fontsize="large")
    return fig


def plot_feature_maps(
    model,
    images: np.ndarray | Sequence[np.ndarray],
    path: str | os.PathLike,
    titles: Sequence[str] | None = None,
    overlay: bool = False,
    shared_scale: bool = True,
    title: str | None = None,
    dpi: int = DEFAULT_DPI,
) -> Path:
    """Writes Fig. 6: inputs and their summed block 1-3 feature maps.

    Args:
        model: an `MCLCR` model.
        images: face crops, ``(B, H, W, 3)`` or a list of ``(H, W, 3)`` in [0, 255]; a few
            (2-8) real and fake faces read best.
        path: output PNG.
        titles: one label per image.
        overlay: draw the maps over the inputs (see `feature_maps_figure`).
        shared_scale: one colour scale per block across images.
        title: figure title.
        dpi: PNG resolution.

    Returns:
        The path written.

    Example:

    ```python
    plot_feature_maps(model, [real, fake], "fig6.png", ["real", "fake"])
    ```
    """
    count = len(images)
    if titles is not None and len(titles) != count:
        raise ValueError(f"got {len(titles)} titles for {count} images")
    maps = summed_feature_maps(model, images)
    fig = feature_maps_figure(maps, titles=titles, overlay=overlay, shared_scale=shared_scale,
                              title=title, dpi=dpi)
    return save_figure(fig, path, dpi)
