"""`mclcr_keras.data.tracks`: linking faces into tracks (synthetic boxes, expectations computed by
hand in the comments), keeping tracks, and every face of real frames (the public-domain photos
side by side, FF++ videos when ../shared/data is present).

Real detections are checked against dlib's detector called directly on the photos (not through
`FaceAligner`), and a one-face FF++ video against the converter's own one-face tracking."""

import functools
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from mclcr_keras.data.boxes import distinct, iou
from mclcr_keras.data.crops import track_faces
from mclcr_keras.data.faces import FaceAligner
from mclcr_keras.data.tracks import MAX_GAP, MIN_SCORE, Track, Tracker, keep, track_input
from mclcr_keras.data.video import read_frames

FFPP_REAL = Path("original_sequences/youtube/c23/videos/004.mp4")
FFPP_FAKE = Path("manipulated_sequences/FaceSwap/c23/videos/634_660.mp4")


def ids(tracks) -> list[int]:
    return [t.track_id for t in tracks]


# --------------------------------------------------------------------------- linking boxes


def test_crossing_paths_keep_their_identities():
    # A moves right 50 px per frame along y 0..100, B left along y 60..160: they pass each other
    # at t = 3. IoU(A2, A3) = 5000 / 15000 = 0.333 >= 0.3, IoU(A2, B3) = 2000 / 18000 = 0.111,
    # and symmetrically for B, so each keeps its own; the boxes are given swapped from t = 3 on.
    tracker = Tracker()
    for t in range(7):
        a, b = (50 * t, 0, 50 * t + 100, 100), (300 - 50 * t, 60, 400 - 50 * t, 160)
        assert ids(tracker.update(t, [a, b] if t < 3 else [b, a])) == ([0, 1] if t < 3 else [1, 0])
    first, second = tracker.tracks
    assert first.boxes[-1] == (300, 0, 400, 100) and second.boxes[-1] == (0, 60, 100, 160)
    assert first.frames == second.frames == list(range(7))


def test_the_best_pair_is_matched_first():
    # A = (0, 0, 100, 100) and B = (60, 0, 160, 100). New boxes: n1 = (50, 0, 150, 100) with
    # IoU(B, n1) = 90 / 110 = 0.818 and IoU(A, n1) = 50 / 150 = 0.333; n2 = (-60, 0, 40, 100)
    # with IoU(A, n2) = 40 / 160 = 0.25 < 0.3, centre 60 px = 0.6 sides from A's. Taking A's best
    # box first would give A n1 and leave n2 a new track; best pair first: B n1, then A n2.
    tracker = Tracker()
    tracker.update(0, [(0, 0, 100, 100), (60, 0, 160, 100)])
    assert ids(tracker.update(1, [(50, 0, 150, 100), (-60, 0, 40, 100)])) == [1, 0]
    assert len(tracker.tracks) == 2


def test_a_track_may_miss_frames_up_to_max_gap():
    box = (100, 100, 200, 200)
    tracker = Tracker()
    tracker.update(0, [box])
    tracker.update(1, [box])
    tracker.update(2, [])                                   # missed once
    assert ids(tracker.update(3, [(110, 100, 210, 200)])) == [0]
    assert tracker.tracks[0].frames == [0, 1, 3]
    for t in range(4, 4 + MAX_GAP):                         # missed MAX_GAP = 5 times: still live
        tracker.update(t, [])
    assert ids(tracker.live()) == [0] and tracker.tracks[0].gap == MAX_GAP
    assert ids(tracker.update(9, [box])) == [0]
    for t in range(10, 11 + MAX_GAP):                       # missed 6 times: closed
        tracker.update(t, [])
    assert tracker.live() == []
    assert ids(tracker.update(16, [box])) == [1]            # the same place: a new track
    assert tracker.tracks[0].frames == [0, 1, 3, 9] and tracker.tracks[1].frames == [16]


def test_a_new_face_starts_a_track():
    tracker = Tracker()
    assert ids(tracker.update(0, [(0, 0, 100, 100)])) == [0]
    assert ids(tracker.update(10, [(5, 0, 105, 100)])) == [0]
    # a second face far from the first (IoU 0, centre 400 px = 4 sides away)
    assert ids(tracker.update(20, [(400, 0, 500, 100), (10, 0, 110, 100)])) == [1, 0]
    assert ids(tracker.update(30, [(12, 0, 112, 100), (405, 5, 505, 105)])) == [0, 1]
    assert [t.frames for t in tracker.tracks] == [[0, 10, 20, 30], [20, 30]]


def test_centre_distance_fallback_and_its_gates():
    # Fast motion: (0, 0, 100, 100) -> (80, 0, 180, 100), IoU 20 / 180 = 0.11 but the centre is
    # 80 px = 0.8 sides away: the same face.
    tracker = Tracker()
    tracker.update(0, [(0, 0, 100, 100)])
    assert ids(tracker.update(1, [(80, 0, 180, 100)])) == [0]
    # 110 px = 1.1 sides away: a new face.
    assert ids(tracker.update(2, [(190, 0, 290, 100)])) == [1]
    # Same centre as track 1's last box, but 2.5x the side (250 vs 100): IoU 0.16, sizes too far
    # apart for the fallback: another face (track 0's last box (80, 0, 180, 100) is also too far).
    assert ids(tracker.update(3, [(115, -75, 365, 175)])) == [2]


def test_ties_go_to_the_older_track_then_the_earlier_box():
    tracker = Tracker()
    tracker.update(0, [(0, 0, 100, 100)])
    tracker.update(1, [(0, 0, 100, 100), (300, 0, 400, 100)])   # track 0 continues, 1 starts
    tracker.tracks[1].boxes[-1] = (0, 0, 100, 100)              # both tracks end at one box
    assert ids(tracker.update(2, [(0, 0, 100, 100)])) == [0]
    assert tracker.tracks[1].gap == 1
    # One track, two identical boxes: the first one continues it.
    other = Tracker()
    other.update(0, [(0, 0, 100, 100)])
    assert ids(other.update(1, [(0, 0, 100, 100), (0, 0, 100, 100)])) == [0, 1]


def test_linking_is_deterministic():
    rng = np.random.default_rng(3)
    frames = [[tuple(int(v) for v in (x, y, x + 80, y + 80))
               for x, y in rng.integers(0, 400, (int(rng.integers(0, 4)), 2))] for _ in range(20)]
    runs = []
    for _ in range(2):
        tracker = Tracker()
        for t, boxes in enumerate(frames):
            tracker.update(t, boxes)
        runs.append([(t.track_id, t.frames, t.boxes) for t in tracker.tracks])
    assert runs[0] == runs[1]


def test_keep_drops_short_and_unlikely_tracks():
    face = Track(0, frames=list(range(6)), score=1.8)
    passer_by = Track(1, frames=[2, 3, 4], score=2.0)
    badge = Track(2, frames=list(range(6)), score=MIN_SCORE - 0.2)
    second_face = Track(3, frames=[0, 1, 2, 3, 5], score=MIN_SCORE)
    tracks = [face, passer_by, badge, second_face]
    assert ids(keep(tracks, 5)) == [0, 3]
    assert ids(keep(tracks, 3)) == [0, 1, 3]
    assert ids(keep(tracks, 7)) == []
    # the best-scoring long track is kept whatever its score (the one-face policy never gave up)
    assert ids(keep([badge, passer_by], 5)) == [2]


def test_distinct_keeps_the_first_box_of_each_face():
    boxes = [(0, 0, 100, 100), (5, 5, 105, 105), (300, 0, 400, 100), (0, 0, 60, 60)]
    # IoU((0,0,100,100), (5,5,105,105)) = 9025 / 10975 = 0.82; with (0,0,60,60): 0.36 <= 0.4
    assert distinct(boxes) == [(0, 0, 100, 100), (300, 0, 400, 100), (0, 0, 60, 60)]


# --------------------------------------------------------------------------- real faces


@functools.cache
def dlib_detector():
    import dlib

    return dlib.get_frontal_face_detector()  # ~1 s to build: once


def dlib_faces(rgb, upsample: int = 1) -> list[tuple]:
    """dlib's frontal detector called directly (the reference for FaceAligner's boxes)."""
    rects = dlib_detector()(rgb, upsample)
    return [(r.left(), r.top(), r.right() + 1, r.bottom() + 1) for r in rects]


@pytest.fixture(scope="module")
def photos(astronaut, grace):
    """(astronaut, its face box), (grace, its face box): the largest face dlib finds in each."""
    out = []
    for rgb in (astronaut, grace):
        boxes = dlib_faces(rgb, upsample=0)
        assert len(boxes) == 1
        out.append((rgb, boxes[0]))
    return out


def two_face_frame(photos, step: int, grace_on: bool = True) -> np.ndarray:
    """A 1200 x 640 frame: the astronaut at (20 + 8 step, 10 + 3 step), Grace Hopper at
    (640 - 6 step, 20)."""
    (astro, _), (grace, _) = photos
    frame = np.full((640, 1200, 3), 128, np.uint8)
    frame[10 + 3 * step:10 + 3 * step + astro.shape[0],
          20 + 8 * step:20 + 8 * step + astro.shape[1]] = astro
    if grace_on:
        frame[20:20 + grace.shape[0], 640 - 6 * step:640 - 6 * step + grace.shape[1]] = grace
    return frame


def shifted(box, dx, dy):
    return (box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy)


def expected_box(photos, name: str, step: int):
    """Where `two_face_frame` put the face of ``name`` in frame ``step``."""
    (_, astro_box), (_, grace_box) = photos
    if name == "astronaut":
        return shifted(astro_box, 20 + 8 * step, 10 + 3 * step)
    return shifted(grace_box, 640 - 6 * step, 20)


def face_of(track, photos) -> str | None:
    """The photo whose face the track follows in every frame (IoU > 0.6), if any."""
    for name in ("astronaut", "grace"):
        if all(iou(box, expected_box(photos, name, f)) > 0.6
               for f, box in zip(track.frames, track.boxes)):
            return name
    return None


def test_detect_all_finds_a_small_face_beside_a_large_one(photos):
    (_, astro_box), (_, grace_box) = photos
    frame = two_face_frame(photos, 0)
    aligner = FaceAligner(size=64)
    # The astronaut's face (88 px) is below the first pass's reach (80 px x 1200 / 640 = 150 px):
    # `detect` stops at the first pass with a face and returns Grace only.
    assert len(aligner.detect(frame)) == 1
    found = aligner.detect_all(frame, down_to=aligner.min_face)
    for name in ("grace", "astronaut"):
        box = expected_box(photos, name, 0)
        assert max(iou(box, other) for other in found) > 0.7, (box, found)
    assert all(iou(a, b) <= 0.4 for i, a in enumerate(found) for b in found[i + 1:])
    assert found == sorted(found, key=lambda b: -(b[2] - b[0]))
    # The cheap search (first pass + the tracking windows) re-finds the small face from its box.
    cheap = aligner.detect_all(frame)
    assert max(iou(shifted(astro_box, 20, 10), b) for b in cheap) < 0.3
    near = aligner.detect_all(frame, near=[shifted(astro_box, 20, 10)])
    assert max(iou(shifted(astro_box, 20, 10), b) for b in near) > 0.7


@pytest.fixture(scope="module")
def two_face_video(tmp_path_factory, photos) -> str:
    """10 frames: the astronaut moving in all of them, Grace Hopper in frames 0-3 only."""
    path = tmp_path_factory.mktemp("tracks") / "two.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (1200, 640))
    for step in range(10):
        writer.write(cv2.cvtColor(two_face_frame(photos, step, step < 4), cv2.COLOR_RGB2BGR))
    writer.release()
    return str(path)


@pytest.fixture(scope="module")
def two_face_tracks(two_face_video):
    return track_input("video", [two_face_video], FaceAligner(size=64), 10, min_track_frames=5,
                       keep_frames=True)


def test_track_input_follows_both_faces(two_face_video, two_face_tracks, photos):
    aligner = FaceAligner(size=64)
    tracked = two_face_tracks
    assert tracked.failure is None and tracked.sampled == 10 and tracked.min_frames == 5
    by_face = {face_of(t, photos): t for t in tracked.tracks}
    assert by_face["grace"].frames == [0, 1, 2, 3]          # 4 < 5 frames: dropped
    assert by_face["astronaut"].frames == list(range(10))
    assert ids(tracked.kept) == [by_face["astronaut"].track_id]
    assert by_face["astronaut"].score > 1.0 and by_face["grace"].score > 1.0
    # any other track (the astronaut's mission patch, a weak dlib hit) is not kept
    assert all(t.score < MIN_SCORE for t in tracked.tracks if t not in by_face.values())
    assert tracked.faces_found == sum(len(t.frames) for t in tracked.tracks)
    for face, box in zip(by_face["astronaut"].items, by_face["astronaut"].boxes):
        assert face.image.shape == (64, 64, 3) and face.box == box
    # min_track_frames 4 keeps Grace too, in order of appearance (the larger face first)
    again = track_input("video", [two_face_video], aligner, 10, min_track_frames=4)
    assert ids(again.kept) == sorted([by_face["grace"].track_id, by_face["astronaut"].track_id])
    assert ids(again.kept)[0] == by_face["grace"].track_id


def test_an_image_makes_one_track_per_face(tmp_path, photos):
    path = tmp_path / "two.png"
    cv2.imwrite(str(path), cv2.cvtColor(two_face_frame(photos, 0), cv2.COLOR_RGB2BGR))
    tracked = track_input("image", [str(path)], FaceAligner(size=64), 30, min_track_frames=5)
    assert tracked.min_frames == 1 and tracked.sampled == 1 and tracked.failure is None
    assert [t.frames for t in tracked.kept] == [[0], [0]]
    assert all(t.score >= MIN_SCORE for t in tracked.kept)


def test_no_track_long_enough_is_a_failure_saying_why(tmp_path, photos):
    path = tmp_path / "flash.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (512, 600))
    for step in range(4):   # Grace Hopper in frames 0 and 1 only, then an empty grey frame
        frame = np.full((600, 512, 3), 128, np.uint8) if step > 1 else photos[1][0]
        writer.write(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR))
    writer.release()
    tracked = track_input("video", [str(path)], FaceAligner(size=64), 4, min_track_frames=30)
    assert tracked.min_frames == 4  # capped at the frames sampled
    assert tracked.kept == [] and [t.frames for t in tracked.tracks] == [[0, 1]]
    assert tracked.failure == ("no face tracked in >= 4 of the 4 sampled frames "
                               "(1 tracks of <= 2 frames)")


def test_crop_none_is_one_track_of_every_frame(two_face_video):
    tracked = track_input("video", [two_face_video], None, 4, crop="none", size=32,
                          min_track_frames=5)
    assert tracked.failure is None and tracked.min_frames == 1
    assert [t.frames for t in tracked.kept] == [[0, 3, 6, 9]] and math.isinf(tracked.kept[0].score)
    assert tracked.kept[0].boxes == [(0, 0, 1200, 640)] * 4
    assert tracked.kept[0].items[0].image.shape == (32, 32, 3)


def test_keep_frames_keeps_the_frames_of_kept_faces(two_face_tracks, photos):
    assert sorted(two_face_tracks.frames) == list(range(10))   # the astronaut is in all 10
    kept = two_face_tracks.frames[9].astype(np.float32)
    error = [np.abs(kept - two_face_frame(photos, step, False)).mean() for step in (9, 8)]
    assert error[0] < 3 < error[1]  # frame 9 (MJPG-compressed), not its neighbour


def test_unreadable_input_is_a_failure(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    tracked = track_input("video", [str(text)], FaceAligner(size=64), 4)
    assert tracked.kept == [] and tracked.sampled == 0 and "not a video" in tracked.failure


# --------------------------------------------------------------------------- FF++


def test_one_face_video_gets_the_converters_boxes_and_crops(ffpp_mini):
    path = str(ffpp_mini / FFPP_REAL)
    aligner = FaceAligner(size=64)
    reference = list(track_faces(read_frames(path, 6), aligner))
    tracked = track_input("video", [path], aligner, 6, min_track_frames=5)
    assert tracked.failure is None and len(tracked.kept) == 1
    track = tracked.kept[0]
    assert track.frames == [index for index, _ in reference]
    assert track.boxes == [face.box for _, face in reference]
    for face, (_, expected) in zip(track.items, reference):
        assert np.array_equal(face.image, expected.image)


@pytest.fixture(scope="module")
def ffpp_two_people(ffpp_mini, tmp_path_factory):
    """8 frames: FF++ real 004 (left) beside the FaceSwap fake 634_660 (right), both 1280x720
    videos shrunk to 640x360: two people, one face swapped; faces ~90-110 px."""
    left = [rgb for _, rgb in read_frames(str(ffpp_mini / FFPP_REAL), 8)]
    right = [rgb for _, rgb in read_frames(str(ffpp_mini / FFPP_FAKE), 8)]
    path = tmp_path_factory.mktemp("ffpp_two") / "two_people.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (1280, 360))
    halves = []
    for a, b in zip(left, right):
        a, b = (cv2.resize(x, (640, 360), interpolation=cv2.INTER_AREA) for x in (a, b))
        halves.append((a, b))
        writer.write(cv2.cvtColor(np.hstack([a, b]), cv2.COLOR_RGB2BGR))
    writer.release()
    return str(path), halves


def test_two_people_one_swapped_give_two_tracks(ffpp_two_people):
    path, halves = ffpp_two_people
    tracked = track_input("video", [path], FaceAligner(size=64), 8, min_track_frames=5)
    assert tracked.failure is None and len(tracked.kept) == 2
    for track, side in zip(sorted(tracked.kept, key=lambda t: t.boxes[0][0]), (0, 1)):
        assert track.frames == list(range(8))
        for frame, box in zip(track.frames, track.boxes):
            half = halves[frame][side]
            expected = [shifted(b, 640 * side, 0) for b in dlib_faces(half, 0)]
            assert max(iou(box, b) for b in expected) > 0.6, (frame, box, expected)
