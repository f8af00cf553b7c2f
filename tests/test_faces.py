"""Face detection and alignment on real faces (public-domain photos, FF++ frames, DFDC crops)."""

import pickle
from pathlib import Path

import cv2
import dlib
import numpy as np
import pytest
from skimage import data as skdata
from skimage import transform as sktransform

from mclcr_keras.data import crops
from mclcr_keras.data.alignment import (
    TEMPLATE_5,
    region_of,
    similarity_transform,
    template_points,
    warp_crop,
)
from mclcr_keras.data.faces import Face, FaceAligner
from mclcr_keras.data.landmark_models import landmark_model_path
from mclcr_keras.data.video import read_frames, read_image, sample_indices


@pytest.fixture(scope="module")
def aligner() -> FaceAligner:
    return FaceAligner(size=256, margin=1.3)


def _iou(a, b) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / union


def _dlib_boxes(rgb, upsample=0):
    """Independent reference: dlib's detector on the untouched frame."""
    rects = dlib.get_frontal_face_detector()(rgb, upsample)
    return [(r.left(), r.top(), r.right() + 1, r.bottom() + 1) for r in rects]


def _eye_centres(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(image-left eye, image-right eye) centres from dlib 5-point landmarks."""
    return points[2:4].mean(0), points[0:2].mean(0)


def _check_aligned(aligner: FaceAligner, face: Face, tolerance: float = 0.05) -> None:
    """The crop holds a face again, eyes level and at the template's positions."""
    size = aligner.size
    assert face.image.shape == (size, size, 3) and face.image.dtype == np.uint8
    assert face.landmarks.shape == (5, 2) and face.landmarks.dtype == np.float32
    boxes = aligner.detect(face.image)
    assert boxes, "dlib finds no face in the aligned crop"
    redetected = aligner.landmarks(face.image, boxes[0])
    left, right = _eye_centres(redetected)
    template_left, template_right = _eye_centres(template_points(size, aligner.margin))
    assert np.linalg.norm(left - template_left) < tolerance * size
    assert np.linalg.norm(right - template_right) < tolerance * size
    angle = np.degrees(np.arctan2(right[1] - left[1], right[0] - left[0]))
    assert abs(angle) < 5.0
    # the face is centred and spans ~size / margin, as in the FF++ crop (dlib box x 1.3)
    box = boxes[0]
    centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
    assert np.abs(centre - size / 2).max() < 0.1 * size
    assert 0.7 < (box[2] - box[0]) / (size / aligner.margin) < 1.3


# ---------------------------------------------------------------------------------------------
# models, template, transform
def test_landmark_model_path():
    for points in (5, 68):
        path = landmark_model_path(points)
        assert path.is_file() and path.name == f"shape_predictor_{points}_face_landmarks.dat"
        assert path.parent.parent.name == "face_recognition_models"
    with pytest.raises(ValueError, match="points must be 5 or 68, received 7"):
        landmark_model_path(7)


def test_template_is_level_symmetric_and_inside_margin_box():
    points = template_points(256, 1.3)
    left, right = _eye_centres(points)
    assert left[1] == pytest.approx(right[1])  # eyes horizontal
    assert (left[0] + right[0]) / 2 == pytest.approx(128.0)  # centred
    assert points[4, 0] == pytest.approx(128.0) and points[4, 1] > left[1]  # nose below eyes
    # the dlib box (side 256 / 1.3, centred) contains every landmark
    half = 128 / 1.3
    assert np.all(np.abs(points - 128) < half)
    np.testing.assert_allclose(template_points(100, 2.0), 100 * (0.5 + TEMPLATE_5 / 2.0), atol=1e-4)


def test_similarity_transform_matches_skimage():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 500, (5, 2))
    angle, scale, shift = 0.3, 0.7, np.array([12.0, -40.0])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = scale * src @ rotation.T + shift + rng.normal(0, 2.0, (5, 2))
    if hasattr(sktransform.SimilarityTransform, "from_estimate"):  # scikit-image >= 0.26
        reference = sktransform.SimilarityTransform.from_estimate(src, dst)
    else:
        reference = sktransform.SimilarityTransform()
        reference.estimate(src, dst)
    np.testing.assert_allclose(similarity_transform(src, dst), reference.params[:2], atol=1e-8)


def test_warp_crop_and_region_of_against_numpy(astronaut):
    rgb = astronaut
    # A pure translation at scale 1 is a slice of the frame; outside the frame is black.
    shift = np.array([[1.0, 0.0, -40.0], [0.0, 1.0, -25.0]])
    np.testing.assert_array_equal(warp_crop(rgb, shift, 64), rgb[25:89, 40:104])
    corner = warp_crop(rgb, np.array([[1.0, 0.0, 16.0], [0.0, 1.0, 16.0]]), 64)
    assert not corner[:16].any() and not corner[:, :16].any()
    np.testing.assert_array_equal(corner[16:, 16:], rgb[:48, :48])
    np.testing.assert_array_equal(warp_crop(rgb, shift, 64, "replicate"), rgb[25:89, 40:104])
    # Scale 2 about the origin: crop pixel (2x, 2y) samples frame pixel (x, y).
    zoom = warp_crop(rgb, np.array([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]]), 64)
    np.testing.assert_array_equal(zoom[::2, ::2], rgb[:32, :32])
    # region_of: a slice, edge-replicated where it leaves the frame (as np.pad "edge").
    padded = np.pad(rgb, ((10, 10), (10, 10), (0, 0)), mode="edge")
    np.testing.assert_array_equal(region_of(rgb, -10, -5, 30, 40), padded[5:50, 0:40])
    x1, y1 = rgb.shape[1] + 7, rgb.shape[0] + 3
    np.testing.assert_array_equal(region_of(rgb, 500, 480, x1, y1),
                                  padded[490:y1 + 10, 510:x1 + 10])
    assert region_of(rgb, 20, 10, 60, 30).flags["C_CONTIGUOUS"]


def test_bad_arguments():
    with pytest.raises(ValueError, match="margin must be >= 1.0, received 0.5"):
        FaceAligner(margin=0.5)
    with pytest.raises(ValueError, match="size must be >= 16, received 8"):
        FaceAligner(size=8)
    with pytest.raises(ValueError, match="border must be one of .*received 'wrap'"):
        FaceAligner(border="wrap")
    with pytest.raises(ValueError, match=r"expected an \(H, W, 3\) RGB image, received \(64, 64\)"):
        FaceAligner()(np.zeros((64, 64), np.uint8))
    with pytest.raises(ValueError, match="expected a uint8 image, received dtype float32"):
        FaceAligner()(np.zeros((64, 64, 3), np.float32))


# ---------------------------------------------------------------------------------------------
# detection and alignment on real photos
@pytest.mark.parametrize("name", ["grace", "astronaut"])
def test_detect_and_align_photos(aligner, name, request):
    rgb = request.getfixturevalue(name)
    boxes = aligner.detect(rgb)
    reference = _dlib_boxes(rgb)
    assert len(boxes) == len(reference) == 1
    assert _iou(boxes[0], reference[0]) > 0.8
    face = aligner(rgb)
    assert face.box == boxes[0]
    _check_aligned(aligner, face)
    # the landmarks carried by the Face are in frame coordinates: the eyes lie inside the box
    x0, y0, x1, y1 = face.box
    assert np.all((face.landmarks[:, 0] > x0) & (face.landmarks[:, 0] < x1))
    assert np.all((face.landmarks[:, 1] > y0) & (face.landmarks[:, 1] < y1))


def test_landmarks_68_agree_with_5(aligner, grace):
    box = aligner.detect(grace)[0]
    five = aligner.landmarks(grace, box, 5)
    sixty_eight = aligner.landmarks(grace, box, 68)
    assert sixty_eight.shape == (68, 2) and sixty_eight.dtype == np.float32
    # 68-point eyes: 36-41 on the image's left, 42-47 on its right; nose base 33
    left, right = _eye_centres(five)
    scale = np.linalg.norm(right - left)
    assert np.linalg.norm(sixty_eight[36:42].mean(0) - left) < 0.15 * scale
    assert np.linalg.norm(sixty_eight[42:48].mean(0) - right) < 0.15 * scale
    assert np.linalg.norm(sixty_eight[33] - five[4]) < 0.15 * scale


def test_rotated_face_is_levelled(aligner, astronaut):
    height, width = astronaut.shape[:2]
    rotation = cv2.getRotationMatrix2D((width / 2, height / 2), 15.0, 1.0)
    rotated = cv2.warpAffine(astronaut, rotation, (width, height), borderMode=cv2.BORDER_REFLECT)
    face = aligner(rotated)
    assert face is not None
    left, right = _eye_centres(face.landmarks)
    assert abs(np.degrees(np.arctan2(right[1] - left[1], right[0] - left[0]))) > 10
    _check_aligned(aligner, face)


def test_alignment_maps_the_margin_box_onto_the_crop(aligner, grace, astronaut):
    # the FF++ crop: the dlib box enlarged 1.3x around its centre fills the crop
    for rgb in (grace, astronaut):
        face = aligner(rgb)
        matrix = aligner.transform(face.landmarks)
        x0, y0, x1, y1 = face.box
        centre = matrix @ np.array([(x0 + x1) / 2, (y0 + y1) / 2, 1.0])
        scale = np.hypot(matrix[0, 0], matrix[1, 0])
        # single faces deviate from the mean template (eye distance / box width: std 12%)
        assert np.abs(centre - 128).max() < 0.1 * 256
        assert scale * (x1 - x0) == pytest.approx(256 / 1.3, rel=0.25)


def test_ffpp_frames_face_inside_manipulation_mask(aligner, shared_data: Path):
    frames = shared_data / "ffpp_frames"
    mask = cv2.imread(str(frames / "ex_deepfakes_mask.png"), cv2.IMREAD_GRAYSCALE) > 127
    ys, xs = np.nonzero(mask)
    mask_box = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    for name in ("ex_original.png", "ex_deepfakes.png", "ex_neuraltextures.png"):
        face = aligner(read_image(frames / name))
        assert face is not None, name
        assert _iou(face.box, mask_box) > 0.5, (name, face.box, mask_box)
        _check_aligned(aligner, face)


def test_ffpp_video_frames_1080p(aligner, ffpp_mini: Path):
    path = ffpp_mini / "manipulated_sequences/Face2Face/c23/videos/750_743.mp4"
    frames = read_frames(path, 30)
    (_, first), (_, second) = next(frames), next(frames)  # frames 0 and 10 only
    frames.close()
    assert first.shape == (1080, 1920, 3)
    face = aligner(first)
    assert face is not None
    # found on the 640 px copy; agrees with dlib on the full-resolution frame
    assert max(_iou(face.box, box) for box in _dlib_boxes(first)) > 0.6
    _check_aligned(aligner, face)
    tracked = aligner(second, previous_box=face.box)
    assert tracked is not None and _iou(tracked.box, face.box) > 0.3
    _check_aligned(aligner, tracked)


def test_dfdc_face_crops_detection_rate(aligner, shared_data: Path):
    # tight 224 px crops: the padded pass finds faces that fill the image (93% on all 600)
    files = sorted((shared_data / "dfdc_faces").glob("*/*.jpg"))[::10]
    assert len(files) == 60
    faces = [aligner(read_image(path)) for path in files]
    found = [face for face in faces if face is not None]
    assert len(found) / len(files) >= 0.85
    redetected = sum(bool(aligner.detect(face.image)) for face in found)
    assert redetected / len(found) >= 0.9


# ---------------------------------------------------------------------------------------------
# small faces in 1080p frames, frames without faces
def _scene(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A large, textured, face-free background (blurred photo + sensor noise)."""
    rng = np.random.default_rng(seed)
    background = cv2.resize(skdata.coffee(), (width, height), interpolation=cv2.INTER_LINEAR)
    background = cv2.GaussianBlur(background, (0, 0), 3).astype(np.float32)
    background += rng.normal(0, 6, background.shape)
    return np.clip(background, 0, 255).astype(np.uint8)


def _paste_face(frame, photo, box, face_px, at):
    """Paste ``photo`` scaled so its face box is ``face_px`` wide; returns the pasted face box."""
    scale = face_px / (box[2] - box[0])
    small = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    x, y = at
    h = min(small.shape[0], frame.shape[0] - y)
    w = min(small.shape[1], frame.shape[1] - x)
    frame[y : y + h, x : x + w] = small[:h, :w]
    return tuple(int(round(v)) for v in (x + box[0] * scale, y + box[1] * scale,
                                         x + box[2] * scale, y + box[3] * scale))


@pytest.mark.parametrize("shape,face_px", [((1080, 1920), 55), ((1920, 1080), 65)])
def test_small_face_in_full_hd_frame(aligner, grace, shape, face_px):
    frame = _scene(*shape)
    box = aligner.detect(grace)[0]
    truth = _paste_face(frame, grace, box, face_px, (shape[1] // 3, shape[0] // 2))
    # too small for dlib on the 640 px copy (the first pass) ...
    scale = 640 / max(shape)
    small = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    assert _dlib_boxes(small) == []
    # ... but found by the escalation, aligned, and found again in the crop
    face = aligner(frame)
    assert face is not None
    assert _iou(face.box, truth) > 0.5
    _check_aligned(aligner, face, tolerance=0.06)


def test_no_face_gives_none(aligner):
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    dark = (rng.random((360, 640, 3)) * 10).astype(np.uint8)
    assert aligner(noise) is None
    assert aligner(dark) is None
    assert aligner(_scene(480, 640)) is None
    assert aligner.detect(dark) == []


def test_no_face_in_dark_full_hd_frame(aligner, grace):
    # a dark, distant scene: a face far too dim for the detector must give None, not garbage
    frame = (_scene(1080, 1920, seed=2) * 0.04).astype(np.uint8)
    box = aligner.detect(grace)[0]
    region = frame.copy()
    _paste_face(region, (grace * 0.03).astype(np.uint8), box, 30, (900, 500))
    assert aligner(region) is None


# ---------------------------------------------------------------------------------------------
# tracking
@pytest.fixture(scope="module")
def two_faces(aligner, grace, astronaut):
    frame = _scene(480, 640, seed=3)
    big = _paste_face(frame, grace[100:420, 100:440], aligner.detect(grace[100:420, 100:440])[0],
                      150, (40, 120))
    crop = astronaut[40:240, 140:310]
    small = _paste_face(frame, crop, aligner.detect(crop)[0], 100, (420, 60))
    return frame, big, small


def test_tracking_largest_first_then_nearest(aligner, two_faces):
    frame, big, small = two_faces
    boxes = aligner.detect(frame)
    assert len(boxes) == 2
    assert _iou(boxes[0], big) > 0.5 and _iou(boxes[1], small) > 0.5
    first = aligner(frame)
    assert _iou(first.box, big) > 0.5
    # the track is on the smaller face (previous box slightly off, as after motion): keep it
    previous = (small[0] + 12, small[1] - 8, small[2] + 12, small[3] - 8)
    followed = aligner(frame, previous_box=previous)
    assert _iou(followed.box, small) > 0.5
    _check_aligned(aligner, followed)
    # previous box far from both faces, nearer the small one: the full search picks the nearest
    far = (560, 380, 620, 440)
    assert _iou(aligner(frame, previous_box=far).box, small) > 0.5
    near_big = (20, 400, 80, 460)
    assert _iou(aligner(frame, previous_box=near_big).box, big) > 0.5


def test_tracking_when_the_face_is_gone(aligner, two_faces):
    frame, big, small = two_faces
    empty = _scene(480, 640, seed=4)
    assert aligner(empty, previous_box=small) is None


def test_aligner_pickles_without_models(aligner, grace):
    face = aligner(grace)  # loads the dlib models
    clone = pickle.loads(pickle.dumps(aligner))
    assert clone._detector is None and clone._predictors == {}
    assert repr(clone) == repr(aligner)
    again = clone(grace)
    assert again.box == face.box
    np.testing.assert_array_equal(again.image, face.image)


# ---------------------------------------------------------------------------------------------
# one face tracked over a real video (mclcr_keras.data.crops, the converter's loop)
def test_track_faces_over_ffpp_video(aligner, ffpp_mini: Path):
    path = ffpp_mini / "original_sequences/youtube/c23/videos/004.mp4"
    faces = list(crops.track_faces(read_frames(path, 30), aligner))
    indices = [index for index, _ in faces]
    assert len(faces) == 30 and all(isinstance(face, Face) for _, face in faces)
    assert indices == sample_indices(309, 30)  # 004.mp4 has 309 frames: a face in each sample
    # one track: consecutive boxes stay close (news anchor)
    centres = np.array([[(f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2] for _, f in faces])
    widths = np.array([f.box[2] - f.box[0] for _, f in faces])
    assert np.linalg.norm(np.diff(centres, axis=0), axis=1).max() < widths.mean()
    redetected = sum(bool(aligner.detect(face.image)) for _, face in faces)
    assert redetected >= 27
    # on average over the video, the dlib box x 1.3 fills the crop, centred (the FF++ crop)
    mapped = []
    for _, face in faces:
        matrix = aligner.transform(face.landmarks)
        x0, y0, x1, y1 = face.box
        centre = matrix @ np.array([(x0 + x1) / 2, (y0 + y1) / 2, 1.0])
        mapped.append([*centre, np.hypot(matrix[0, 0], matrix[1, 0]) * (x1 - x0)])
    mean = np.mean(mapped, axis=0)
    assert np.abs(mean[:2] - 128).max() < 0.06 * 256
    assert mean[2] == pytest.approx(256 / 1.3, rel=0.12)
