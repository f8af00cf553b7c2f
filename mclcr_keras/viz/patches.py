"""Patch grids of the frequency figures: cutting an image into whole patches, and tiling
per-patch spectra back into an image in `PatchSpectrum`'s row-major patch order."""

from __future__ import annotations

import numpy as np


def check_patch_size(patch_size: int) -> None:
    if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < 1:
        raise ValueError(f"patch_size must be a positive integer, received {patch_size!r}")


def patch_mosaic(spectra: np.ndarray, grid: tuple[int, int], shift: bool = True) -> np.ndarray:
    """Tiles per-patch spectra back into an image, in the layer's row-major patch order.

    Args:
        spectra: ``(N, P*P)`` per-patch values (one `PatchSpectrum` output for one image).
        grid: ``(rows, cols)`` of patches, ``rows * cols == N``.
        shift: ``fftshift`` each patch so its zero frequency sits in the patch centre.

    Returns:
        ``(rows * P, cols * P)`` array: patch ``r * cols + c`` fills block ``(r, c)``.

    Example:

    >>> patch_mosaic(np.arange(8.0).reshape(2, 4), (1, 2), shift=False)
    array([[0., 1., 4., 5.],
           [2., 3., 6., 7.]])
    """
    spectra = np.asarray(spectra)
    rows, cols = grid
    if spectra.ndim != 2 or spectra.shape[0] != rows * cols:
        raise ValueError(
            f"spectra must be (N, P*P) with N = {rows} x {cols}, received shape {spectra.shape}"
        )
    p = int(round(np.sqrt(spectra.shape[1])))
    if p * p != spectra.shape[1]:
        raise ValueError(f"each patch must hold P*P values, received {spectra.shape[1]}")
    blocks = spectra.reshape(rows, cols, p, p)
    if shift:
        blocks = np.fft.fftshift(blocks, axes=(2, 3))
    return blocks.transpose(0, 2, 1, 3).reshape(rows * p, cols * p)


def crop_to_patches(image: np.ndarray, patch_size: int) -> np.ndarray:
    """Centre crop of ``image`` whose height and width are multiples of ``patch_size``."""
    height, width = image.shape[:2]
    h, w = height // patch_size * patch_size, width // patch_size * patch_size
    if h == 0 or w == 0:
        raise ValueError(
            f"image of shape {image.shape} is smaller than one {patch_size}x{patch_size} patch"
        )
    top, left = (height - h) // 2, (width - w) // 2
    return image[top : top + h, left : left + w]
