"""mclcr_keras.viz.roc: a real PNG of the requested size that shows the curves."""

import logging

import cv2
import numpy as np
import pytest

from mclcr_keras import viz
from mclcr_keras.viz.roc import roc_curve_plot


def test_roc_png_written_with_expected_size(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    curves = {
        "good": (y, np.clip(0.3 + 0.4 * y + rng.normal(0, 0.2, 200), 0, 1)),
        "chance": (y, rng.uniform(0, 1, 200)),
    }
    path = roc_curve_plot(curves, tmp_path / "sub" / "roc.png", size_px=500)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None and img.shape == (500, 500, 3)
    # Not blank: the axes, text and coloured curves put many non-white pixels on the canvas.
    non_white = np.mean(img.min(axis=2) < 200)
    assert 0.01 < non_white < 0.5
    # matplotlib's default first colour (C0, #1f77b4, BGR (180,119,31)) draws the first curve.
    c0 = np.all(np.abs(img.astype(int) - [180, 119, 31]) < 30, axis=2)
    assert c0.sum() > 200
    # ... and the second colour (C1, #ff7f0e, BGR (14, 127, 255)) the second one.
    c1 = np.all(np.abs(img.astype(int) - [14, 127, 255]) < 30, axis=2)
    assert c1.sum() > 200


def test_roc_single_class_curve_is_listed_not_crashing(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="mclcr_keras.viz.roc"):
        path = roc_curve_plot({"only real": ([0, 0, 0], [0.1, 0.2, 0.3])}, tmp_path / "r.png")
    assert cv2.imread(str(path)).shape == (600, 600, 3)
    assert "single class" in caplog.text


def test_roc_is_exported_from_viz():
    assert viz.roc_curve_plot is roc_curve_plot


def test_roc_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="at least one curve"):
        roc_curve_plot({}, tmp_path / "r.png")
    with pytest.raises(ValueError, match=r"curve 'x': labels \(2,\) and probabilities \(3,\)"):
        roc_curve_plot({"x": ([0, 1], [0.1, 0.2, 0.3])}, tmp_path / "r.png")
