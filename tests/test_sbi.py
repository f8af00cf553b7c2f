"""Self-blended images on a real photo (matplotlib's grace_hopper.jpg) with real dlib landmarks."""

import cv2
import numpy as np
import pytest

from mclcr_keras.data.faces import FaceAligner
from mclcr_keras.demo.sbi import HULL_TYPES, SelfBlendConfig, face_size, hull_points, self_blend


@pytest.fixture(scope="module")
def face(grace):
    aligner = FaceAligner()
    boxes = aligner.detect(grace)
    assert len(boxes) == 1
    return grace, aligner.landmarks(grace, boxes[0], points=68)


def hull_mask(shape, points):
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.rint(points).astype(np.int32)), 1)
    return mask


@pytest.mark.parametrize("seed", range(8))
def test_fake_differs_only_inside_mask_and_mask_stays_near_face(face, seed):
    rgb, lm = face
    original = rgb.copy()
    cfg = SelfBlendConfig()
    fake, mask = self_blend(rgb, lm, np.random.default_rng(seed), cfg)
    np.testing.assert_array_equal(rgb, original)  # input untouched
    assert fake.shape == rgb.shape and fake.dtype == np.uint8
    assert mask.shape == rgb.shape[:2] and mask.dtype == np.float32
    assert 0.0 <= mask.min() and mask.max() <= 1.0
    assert any(np.isclose(mask.max(), r, atol=1e-6) for r in cfg.blend_ratios)

    changed = np.any(fake != rgb, axis=2)
    outside = mask == 0
    np.testing.assert_array_equal(fake[outside], rgb[outside])
    assert not np.any(changed & outside)
    # It is a real manipulation: thousands of face pixels change, visibly on average.
    assert changed.sum() > 2000
    core = mask >= 0.9 * mask.max()
    assert np.abs(fake[core].astype(int) - rgb[core]).mean() > 1.0

    # The mask support lies in the 68-point hull dilated by the configured reach, and the face
    # centre (nose) is inside the strongest part of the mask.
    reach = int(np.ceil(cfg.reach() * face_size(lm)))
    allowed = cv2.dilate(hull_mask(rgb.shape, lm), np.ones((2 * reach + 1,) * 2, np.uint8))
    assert not np.any((mask > 0) & (allowed == 0))
    assert (mask > 0).sum() < 2.5 * hull_mask(rgb.shape, lm).sum()
    nose = np.rint(lm[30]).astype(int)
    assert mask[nose[1], nose[0]] >= 0.5 * mask.max()


def test_same_seed_same_fake_other_seed_other_fake(face):
    rgb, lm = face
    a = self_blend(rgb, lm, np.random.default_rng(42))
    b = self_blend(rgb, lm, np.random.default_rng(42))
    c = self_blend(rgb, lm, np.random.default_rng(43))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_hull_types(face):
    rgb, lm = face
    assert hull_points(lm, "full").shape == (68, 2)
    inner = hull_points(lm, "inner")
    assert inner.shape == (51, 2) and inner[:, 1].max() < lm[8, 1]  # stops above the chin
    ext = hull_points(lm, "extended", forehead=0.25)
    assert ext.shape == (27, 2)
    rise = 0.25 * (lm[8, 1] - lm[27, 1])  # upright face: "up" is -y
    assert ext[:, 1].min() == pytest.approx(lm[17:27, 1].min() - rise, abs=2.0)
    # Each hull type alone gives a mask that covers its own hull's core.
    for hull_type in HULL_TYPES:
        cfg = SelfBlendConfig(hull_types=(hull_type,), blend_ratios=(1.0,))
        _, mask = self_blend(rgb, lm, np.random.default_rng(0), cfg)
        core = cv2.erode(hull_mask(rgb.shape, hull_points(lm, hull_type)), np.ones((41, 41)))
        assert core.sum() > 0
        assert np.mean(mask[core > 0] > 0.5) > 0.95, hull_type


def test_blend_ratio_scales_the_mask(face):
    rgb, lm = face
    full = self_blend(rgb, lm, np.random.default_rng(5), SelfBlendConfig(blend_ratios=(1.0,)))
    quarter = self_blend(rgb, lm, np.random.default_rng(5), SelfBlendConfig(blend_ratios=(0.25,)))
    full, quarter = full[1], quarter[1]
    np.testing.assert_allclose(quarter, 0.25 * full, atol=1e-6)


def test_bad_inputs(face):
    rgb, lm = face
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"\(68, 2\) landmarks, got shape \(5, 2\)"):
        self_blend(rgb, lm[:5], rng)
    with pytest.raises(ValueError, match="numpy.random.Generator, got int"):
        self_blend(rgb, lm, 0)
    with pytest.raises(ValueError, match="uint8 image, got dtype float32"):
        self_blend(rgb.astype(np.float32), lm, rng)
    with pytest.raises(ValueError, match="too small"):
        self_blend(rgb, lm + 5000, rng)
    with pytest.raises(ValueError, match="blend_ratios must lie in"):
        SelfBlendConfig(blend_ratios=(0.0,))
    with pytest.raises(ValueError, match="hull_types"):
        SelfBlendConfig(hull_types=("ears",))
