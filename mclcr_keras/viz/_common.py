"""Helpers shared by the figure modules: reading and aligning images, model access, saving PNGs."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

logger = logging.getLogger(__name__)

DEFAULT_DPI = 150


def check_rgb(image: np.ndarray, name: str = "image") -> np.ndarray:
    """An ``(H, W, 3)`` image with pixels in [0, 255] as float32; raises a one-line ValueError."""
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(f"{name} must be an (H, W, 3) RGB image, received shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f"{name} must hold numbers, received dtype {array.dtype}")
    array = array.astype(np.float32)
    if not np.isfinite(array).all() or array.min() < 0.0 or array.max() > 255.0:
        raise ValueError(
            f"{name} must hold finite pixels in [0, 255], received range "
            f"[{np.nanmin(array):g}, {np.nanmax(array):g}]"
        )
    return array


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Pixels in [0, 255] (any dtype) as uint8 for display."""
    return np.clip(np.rint(np.asarray(image, np.float32)), 0, 255).astype(np.uint8)


def square_resize(image: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop to a square, then resize to ``size x size`` (area filter when shrinking)."""
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = np.ascontiguousarray(image[top : top + side, left : left + side])
    if side == size:
        return square.astype(np.float32)
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    resized = cv2.resize(square, (size, size), interpolation=interpolation)
    return np.clip(resized.astype(np.float32), 0.0, 255.0)


def stack_images(images: np.ndarray | Sequence[np.ndarray], size: int) -> np.ndarray:
    """A ``(B, size, size, 3)`` float32 batch from a batch array or a list of RGB images.

    Images of another size are centre-cropped to a square and resized (see `square_resize`).
    """
    if isinstance(images, np.ndarray) and images.ndim == 4:
        items = list(images)
    elif isinstance(images, np.ndarray):
        raise ValueError(
            f"images must be a (B, H, W, 3) array or a list of (H, W, 3) images, "
            f"received shape {images.shape}"
        )
    else:
        items = list(images)
    if not items:
        raise ValueError("images is empty: at least one image is needed")
    batch = [square_resize(check_rgb(item, f"images[{i}]"), size) for i, item in enumerate(items)]
    return np.stack(batch)


def feature_extractor(model, keys: Sequence[str]):
    """``model.feature_extractor`` after checking that it provides ``keys``."""
    extractor = getattr(model, "feature_extractor", None)
    if extractor is None:
        raise ValueError(
            f"{type(model).__name__} has no feature_extractor; the figures need an MCLCR model "
            "(a .keras file saved by mclcr_keras, not an exported SavedModel)"
        )
    available = tuple(getattr(model, "feature_names", ()) or extractor.output.keys())
    missing = [key for key in keys if key not in available]
    if missing:
        variant = getattr(getattr(model, "config", None), "variant", "?")
        raise ValueError(
            f"model variant {variant!r} has no feature(s) {missing}; available: {list(available)}"
        )
    return extractor


def check_model_path(path: str | os.PathLike) -> Path:
    """``path`` as a Path if it names an existing `.keras` file; a one-line error otherwise."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model file not found: {path}")
    if path.is_dir() or path.suffix != ".keras":
        raise ValueError(
            f"expected a .keras model file, received {path} (exported SavedModels have no "
            "feature taps; use the .keras file written by training)"
        )
    return path


def load_model(path: str | os.PathLike):
    """Load a `.keras` MC-LCR model for the figures (`mclcr_keras.models.saving.load_model`)."""
    from mclcr_keras.models.saving import load_model as load_keras_model

    return load_keras_model(check_model_path(path))


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """An image file as RGB uint8; a one-line ValueError naming the file when it is unreadable."""
    from mclcr_keras.data.video import MediaError, read_image

    try:
        return read_image(path)
    except MediaError as error:
        raise ValueError(f"{path}: {error}") from None


def align_faces(images: Sequence[np.ndarray], names: Sequence[str], size: int) -> list:
    """The aligned face crop (``size`` px) of each image; a ValueError naming one without a face."""
    from mclcr_keras.data.faces import FaceAligner

    aligner = FaceAligner(size=size)
    faces = []
    for name, image in zip(names, images):
        face = aligner(image)
        if face is None:
            raise ValueError(f"{name}: no face found")
        faces.append(face.image)
    return faces


def new_figure(width: float, height: float, dpi: int = DEFAULT_DPI):
    """A pyplot-free matplotlib Figure (Agg canvas, constrained layout for the colour bars)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=dpi, layout="constrained")


def save_figure(fig, path: str | os.PathLike, dpi: int = DEFAULT_DPI) -> Path:
    """Writes ``fig`` to a PNG file (parent folders created) and returns its path."""
    if not isinstance(dpi, int) or isinstance(dpi, bool) or not 30 <= dpi <= 600:
        raise ValueError(f"dpi must be an integer in [30, 600], received {dpi!r}")
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"figures are written as PNG; the output path must end in .png: {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=dpi)
    logger.info("wrote %s", path)
    return path
