"""Frame sampling and decoding: real FF++ video, synthetic videos, and broken files."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from mclcr_keras.data import media
from mclcr_keras.data.video import MediaError, read_frames, read_image, sample_indices


# ---------------------------------------------------------------------------------------------
# sample_indices
@pytest.mark.parametrize("total,num", [(300, 30), (751, 30), (31, 30), (1000, 7), (45, 30)])
def test_sample_indices_evenly_spaced_over_whole_video(total, num):
    indices = sample_indices(total, num)
    assert len(indices) == num
    assert indices == sorted(set(indices))
    assert indices[0] == 0 and indices[-1] == total - 1
    gaps = np.diff(indices)
    ideal = (total - 1) / (num - 1)
    # evenly spaced: every gap is the ideal gap rounded down or up
    assert gaps.min() >= np.floor(ideal) and gaps.max() <= np.ceil(ideal)
    # each index is the nearest frame to its ideal position
    for k, index in enumerate(indices):
        assert abs(index - k * ideal) <= 0.5 + 1e-9


def test_sample_indices_not_the_first_frames():
    indices = sample_indices(300, 30)
    assert indices[:3] == [0, 10, 21] and indices[-1] == 299


@pytest.mark.parametrize("total", [0, 1, 5, 29, 30])
def test_sample_indices_short_video_gives_every_frame(total):
    assert sample_indices(total, 30) == list(range(total))


def test_sample_indices_all_frames_and_bad_arguments():
    assert sample_indices(12, None) == list(range(12))
    assert sample_indices(12, 1) == [0]
    with pytest.raises(ValueError, match="num_frames must be >= 1 or None, received 0"):
        sample_indices(10, 0)
    with pytest.raises(ValueError, match="total_frames must be >= 0, received -1"):
        sample_indices(-1, 30)


@pytest.mark.parametrize("name,kind", [
    ("clip.mp4", "video"), ("CLIP.MP4", "video"), ("a/b.c/x.avi", "video"), ("x.mov", "video"),
    ("x.mkv", "video"), ("x.webm", "video"), ("face.png", "image"), ("face.JPG", "image"),
    ("face.jpeg", "image"), ("notes.txt", None), ("mp4", None), ("archive.mp4.zip", None),
    (Path("dir/frame.png"), "image"),
])
def test_media_kind(name, kind):
    assert media.media_kind(name) == kind
    assert (media.VIDEO, media.IMAGE) == ("video", "image")


# ---------------------------------------------------------------------------------------------
# read_frames on a real FF++ video
def test_read_frames_matches_plain_sequential_decoding(ffpp_mini: Path):
    path = ffpp_mini / "original_sequences/youtube/c23/videos/519.mp4"
    got = list(read_frames(path, 30))

    indices = [index for index, _ in got]
    # independent reference: decode every frame with a plain read() loop
    capture = cv2.VideoCapture(str(path))
    reference = {}
    total = 0
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        if total in indices:
            reference[total] = bgr
        total += 1
    capture.release()
    assert total == 751

    assert len(got) == 30
    assert indices == sorted(set(indices))
    assert indices[0] == 0 and indices[-1] == total - 1
    assert np.diff(indices).min() >= 25 and np.diff(indices).max() <= 26
    for index, rgb in got:
        assert rgb.dtype == np.uint8 and rgb.shape == (480, 640, 3)
        np.testing.assert_array_equal(rgb, reference[index][..., ::-1])


# ---------------------------------------------------------------------------------------------
# synthetic videos
def _write_video(path: Path, num_frames: int, fourcc: str = "mp4v", size=(64, 48)) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 25, size)
    assert writer.isOpened()
    for i in range(num_frames):
        writer.write(_frame(i, size))
    writer.release()


def _frame(i: int, size) -> np.ndarray:
    # frame i carries its index in two flat grey fields (i mod 16, i // 16; steps of 16 survive
    # lossy coding); a red patch on the left marks the colour order
    frame = np.zeros((size[1], size[0], 3), np.uint8)
    frame[:, :16] = (0, 0, 255)
    frame[:, 16:40] = 8 + 16 * (i % 16)
    frame[:, 40:] = 8 + 16 * (i // 16)
    return frame


def _decoded_index(rgb: np.ndarray) -> int:
    low = int(rgb[4:-4, 20:36].mean() // 16)
    high = int(rgb[4:-4, 44:-4].mean() // 16)
    return 16 * high + low


@pytest.mark.parametrize("num_frames,expected", [(7, list(range(7))), (100, None), (31, None)])
def test_read_frames_synthetic_counts(tmp_path: Path, num_frames, expected):
    path = tmp_path / "clip.mp4"
    _write_video(path, num_frames)
    got = list(read_frames(path, 30))
    expected = expected or sample_indices(num_frames, 30)
    assert [index for index, _ in got] == expected
    for index, rgb in got:
        assert rgb.shape == (48, 64, 3)
        assert _decoded_index(rgb) == index
        # RGB order: the BGR (0, 0, 255) patch reads back as red
        assert rgb[:, :12, 0].mean() > 200 and rgb[:, :12, 2].mean() < 50


def test_read_frames_all_and_bad_num_frames(tmp_path: Path):
    path = tmp_path / "clip.mp4"
    _write_video(path, 12)
    assert [i for i, _ in read_frames(path, None)] == list(range(12))
    with pytest.raises(ValueError, match="received 0"):
        list(read_frames(path, 0))


def test_read_frames_video_ending_before_its_frame_count(tmp_path: Path):
    # An AVI cut in half still opens and reports 60 frames, but only the first ones decode.
    full = tmp_path / "full.avi"
    _write_video(full, 60, fourcc="MJPG")
    cut = tmp_path / "cut.avi"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    capture = cv2.VideoCapture(str(cut))
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 60
    capture.release()

    got = list(read_frames(cut, 30))
    indices = [index for index, _ in got]
    assert 0 < len(got) < 30
    assert indices == sample_indices(60, 30)[: len(got)]
    for index, rgb in got[:-1]:  # the last decodable frame may be partly cut
        assert _decoded_index(rgb) == index


def _grab_count(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.grab():
        count += 1
    capture.release()
    return count


def test_read_frames_count_off_by_one_keeps_the_last_frame(tmp_path: Path):
    # The container says 60 frames, 59 decode: the real last frame stands in for the missing 59.
    full = tmp_path / "full.avi"
    _write_video(full, 60, fourcc="MJPG")
    data = full.read_bytes()
    cut = tmp_path / "cut.avi"
    for size in range(len(data), len(data) // 2, -64):
        cut.write_bytes(data[:size])
        if _grab_count(cut) == 59:
            break
    assert _grab_count(cut) == 59
    got = list(read_frames(cut, 30))
    indices = [index for index, _ in got]
    assert indices == sample_indices(60, 30)[:-1] + [58]
    assert _decoded_index(got[-1][1]) == 58


# ---------------------------------------------------------------------------------------------
# broken files
def test_zero_byte_video(tmp_path: Path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    with pytest.raises(MediaError, match=r"^empty file \(0 bytes\)$") as info:
        list(read_frames(path))
    assert info.value.path == str(path)


def test_text_file_named_mp4(tmp_path: Path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 20)
    with pytest.raises(MediaError, match=r"^not a video: text file$"):
        list(read_frames(path))


def test_binary_garbage_named_mp4(tmp_path: Path):
    path = tmp_path / "garbage.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(MediaError, match=r"^not a video: unknown format$"):
        list(read_frames(path))


def test_truncated_mp4(tmp_path: Path, ffpp_mini: Path):
    source = ffpp_mini / "original_sequences/youtube/c23/videos/004.mp4"
    path = tmp_path / "cut.mp4"
    path.write_bytes(source.read_bytes()[:50_000])
    with pytest.raises(MediaError, match=r"^truncated or corrupt video: FFmpeg cannot read"):
        list(read_frames(path))
    synthetic = tmp_path / "synthetic.mp4"
    _write_video(synthetic, 30)
    path.write_bytes(synthetic.read_bytes()[: synthetic.stat().st_size // 2])
    with pytest.raises(MediaError, match=r"^truncated or corrupt video"):
        list(read_frames(path))


def test_missing_file(tmp_path: Path):
    with pytest.raises(MediaError, match="^file not found$"):
        list(read_frames(tmp_path / "nope.mp4"))
    with pytest.raises(MediaError, match="^file not found$"):
        read_image(tmp_path / "nope.png")


# ---------------------------------------------------------------------------------------------
# read_image
def test_read_image_rgb_and_grey(tmp_path: Path):
    bgr = np.zeros((20, 30, 3), np.uint8)
    bgr[..., 2] = 200  # red in BGR
    cv2.imwrite(str(tmp_path / "red.png"), bgr)
    rgb = read_image(tmp_path / "red.png")
    assert rgb.shape == (20, 30, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb, bgr[..., ::-1])
    grey = np.arange(600, dtype=np.uint8).reshape(20, 30)
    cv2.imwrite(str(tmp_path / "grey.png"), grey)
    np.testing.assert_array_equal(read_image(tmp_path / "grey.png"), np.stack([grey] * 3, -1))


def test_read_image_errors(tmp_path: Path):
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(MediaError, match=r"^not an image: unknown format \(PNG, JPEG, GIF, BMP"):
        read_image(tmp_path / "text.png")
    png = cv2.imencode(".png", np.zeros((64, 64, 3), np.uint8))[1].tobytes()
    (tmp_path / "body.png").write_bytes(png[:40] + bytes(64))  # a valid header, a broken body
    with pytest.raises(MediaError, match="^not an image: OpenCV cannot decode it"):
        read_image(tmp_path / "body.png")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(MediaError, match=r"^empty file \(0 bytes\)$"):
        read_image(tmp_path / "empty.jpg")
    data = cv2.imencode(".jpg", np.zeros((64, 64, 3), np.uint8))[1].tobytes()
    (tmp_path / "cut.jpg").write_bytes(data[:10])
    with pytest.raises(MediaError, match="^not an image"):
        read_image(tmp_path / "cut.jpg")
