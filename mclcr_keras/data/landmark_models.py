"""Where dlib's landmark models are: the 5-point (alignment) and 68-point (blending masks) shape
predictors shipped by the ``face-recognition-models`` package."""

from __future__ import annotations

import importlib.util
import pathlib


def landmark_model_path(points: int = 5) -> pathlib.Path:
    """Path of dlib's 5- or 68-point shape predictor shipped by ``face-recognition-models``.

    The package is located with ``importlib.util.find_spec`` instead of being imported, because its
    ``__init__`` needs ``pkg_resources`` (gone from recent setuptools).

    Args:
        points: 5 or 68.

    Example:
        >>> landmark_model_path(5).name
        'shape_predictor_5_face_landmarks.dat'
    """
    if points not in (5, 68):
        raise ValueError(f"points must be 5 or 68, received {points}")
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "package face-recognition-models is not installed (pip install face-recognition-models)"
        )
    name = f"shape_predictor_{points}_face_landmarks.dat"
    path = pathlib.Path(spec.origin).parent / "models" / name
    if not path.is_file():
        raise FileNotFoundError(f"dlib landmark model not found: {path}")
    return path
