"""Bounded cost and hostile input (issue 10, item 3): sizes read from image headers and refused
before decoding, frame-size and duration limits for videos, the detector's escalation cap, and
odd inputs that either score or fail with a reason. Every file here is crafted in the test."""

import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from test_faces import _paste_face, _scene
from test_video import _decoded_index, _frame, _write_video

from mclcr_keras import cli
from mclcr_keras import predict as predict_tool
from mclcr_keras.data import search_cost
from mclcr_keras.data.crops import track_faces
from mclcr_keras.data.faces import FaceAligner
from mclcr_keras.data.image_header import HeaderError, image_size
from mclcr_keras.data.limits import MAX_PIXELS, MediaLimits, applied, check_media
from mclcr_keras.data.media import sniff_kind
from mclcr_keras.data.video import MediaError, read_frames, read_image, sample_indices

REPO = Path(__file__).resolve().parents[1]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(path: Path, width: int = 32000, height: int = 32000) -> Path:
    """A valid PNG header declaring ``width x height`` RGB, with one compressed row of data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = zlib.compress(bytes(1 + 3 * width), 9)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", body)
                     + _chunk(b"IEND", b""))
    return path


def rotate_mp4(source: Path, target: Path) -> None:
    """``source`` with its track header's display matrix set to a 90-degree clockwise turn (what
    a phone writes for a portrait clip)."""
    data = bytearray(source.read_bytes())
    at = data.find(b"tkhd")
    matrix = at + 8 + (32 if data[at + 4] == 1 else 20) + 16
    assert struct.unpack(">9i", data[matrix:matrix + 36])[0] == 0x10000  # identity before
    data[matrix:matrix + 36] = struct.pack(">9i", 0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 1 << 30)
    target.write_bytes(bytes(data))


def write_frames(path: Path, frames, fourcc: str = "mp4v") -> None:
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 25, (width, height))
    assert writer.isOpened()
    for rgb in frames:
        writer.write(np.ascontiguousarray(rgb[..., ::-1]))
    writer.release()


# ------------------------------------------------------------------ sizes from the header


def _headers(folder: Path, photo: np.ndarray) -> dict:
    """One file per format and variant, and the (width, height) OpenCV decodes it to."""
    image = Image.fromarray(photo[:300, :200])
    frames = [image, Image.fromarray(photo[:300, :200][::-1])]
    writers = {
        "png8.png": lambda p: image.save(p),
        "png16.png": lambda p: cv2.imwrite(str(p), photo[:300, :200].astype(np.uint16) * 257),
        "grey.png": lambda p: image.convert("L").save(p),
        "rgba.png": lambda p: image.convert("RGBA").save(p),
        "palette.png": lambda p: image.convert("P").save(p),
        "base.jpg": lambda p: image.save(p, quality=90),
        "progressive.jpg": lambda p: image.save(p, progressive=True),
        "cmyk.jpg": lambda p: image.convert("CMYK").save(p),
        "exif.jpg": lambda p: image.save(p, exif=b"Exif\x00\x00" + b"MM\x00*" + bytes(4) * 4000),
        "anim.gif": lambda p: frames[0].save(p, save_all=True, append_images=frames[1:]),
        "bmp.bmp": lambda p: image.save(p),
        "lossy.webp": lambda p: image.save(p, quality=80),
        "lossless.webp": lambda p: image.save(p, lossless=True),
        "anim.webp": lambda p: frames[0].save(p, save_all=True, append_images=frames[1:]),
        "le.tif": lambda p: image.save(p, compression="tiff_lzw"),
        "be.tif": lambda p: cv2.imwrite(str(p), photo[:300, :200]),
    }
    decoded = {}
    for name, write in writers.items():
        write(folder / name)
        bgr = cv2.imdecode(np.fromfile(folder / name, np.uint8), cv2.IMREAD_COLOR)
        decoded[name] = (bgr.shape[1], bgr.shape[0])
    return decoded


def test_image_size_from_the_header_matches_what_opencv_decodes(tmp_path, astronaut):
    decoded = _headers(tmp_path, astronaut)
    for name, size in decoded.items():
        header = image_size(tmp_path / name)
        assert (header.width, header.height) == size == (200, 300), name
        assert header.format == {"png": "PNG", "jpg": "JPEG", "gif": "GIF", "bmp": "BMP",
                                 "webp": "WebP", "tif": "TIFF"}[name.rsplit(".", 1)[1]]
    assert open(tmp_path / "be.tif", "rb").read(2) in (b"II", b"MM")


def _tiff(width: int, height: int, tile=None, order: str = "<") -> bytes:
    tags = [(256, 4, width), (257, 3, height)] + (
        [(322, 4, tile[0]), (323, 4, tile[1])] if tile else [])
    entries = b"".join(struct.pack(order + "HHI", tag, kind, 1)
                       + (struct.pack(order + "H", value) + bytes(2) if kind == 3
                          else struct.pack(order + "I", value)) for tag, kind, value in tags)
    magic = b"II*\x00" if order == "<" else b"MM\x00*"
    return magic + struct.pack(order + "I", 8) + struct.pack(order + "H", len(tags)) + entries


@pytest.mark.parametrize("name,data,declared", [
    ("bomb.png", None, (32000, 32000)),
    ("huge.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
     + b"\xff\xfe\x00\x05abc" + b"\xff\xc2\x00\x11\x08\xfa\x00\xfa\x00\x03" + bytes(9),
     (64000, 64000)),
    ("huge.gif", b"GIF89a" + struct.pack("<HHBBB", 100, 100, 0, 0, 0)
     + b"\x21\xf9\x04\x00\x00\x00\x00\x00" + b"\x2c" + struct.pack("<HHHH", 0, 0, 60000, 60000),
     (60000, 60000)),
    ("huge.bmp", b"BM" + bytes(12) + struct.pack("<Iii", 40, 20000, -20000), (20000, 20000)),
    ("huge.webp", b"RIFF\x00\x00\x00\x00WEBPVP8X" + bytes(8)
     + (16383).to_bytes(3, "little") + (16383).to_bytes(3, "little"), (16384, 16384)),
    ("huge.tif", _tiff(30000, 30000, order=">"), (30000, 30000)),
    ("tiles.tif", _tiff(100, 100, tile=(40000, 40000)), (40000, 40000)),
])
def test_an_image_declaring_too_many_pixels_is_refused_in_one_line(tmp_path, name, data,
                                                                   declared):
    path = tmp_path / name
    bomb_png(path) if data is None else path.write_bytes(data)
    assert (image_size(path).width, image_size(path).height) == declared
    width, height = declared
    megapixels = f"{width * height / 1e6:.4g}"
    with pytest.raises(MediaError) as info:
        read_image(path)
    assert str(info.value) == (f"image declares {width} x {height} = {megapixels} MP, over "
                               "--max-pixels 50 MP; not decoded")
    with pytest.raises(MediaError, match="over --max-pixels 50 MP"):
        check_media(path)


@pytest.mark.parametrize("data,reason", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00", "truncated PNG header"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIDAT" + bytes(8), "no IHDR chunk first"),
    (b"\xff\xd8\xff\xda\x00\x08" + bytes(40), "no frame header (SOF) before the image data"),
    (b"\xff\xd8\xff\xc0\x00\x11\x08\x00\x00\x01\x00\x03", "height in its frame header (DNL)"),
    (b"BM" + bytes(12) + struct.pack("<I", 8) + bytes(8), "DIB header of 8 bytes"),
    (b"RIFF\x00\x00\x00\x00WEBPVP8Q" + bytes(20), "unknown chunk"),
    (_tiff(0, 10), "declares 0 x 10"),
    (b"P6\n30000 30000\n255\n" + bytes(64), "unknown format (PNG, JPEG, GIF, BMP, WebP and TIFF"),
])
def test_a_broken_or_unknown_header_is_named_not_decoded(tmp_path, data, reason):
    path = tmp_path / "x.png"
    path.write_bytes(data)
    with pytest.raises(HeaderError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        image_size(path)
    with pytest.raises(MediaError, match="^not an image: "):
        read_image(path)


_READ = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
from mclcr_keras.data.limits import MediaLimits
from mclcr_keras.data.video import MediaError, read_image
try:
    read_image(sys.argv[1], MediaLimits(max_pixels=int(sys.argv[2])))
    print("decoded")
except MediaError as error:
    print(error)
except Exception as error:
    print(type(error).__name__)
# peak RSS of this process image (ru_maxrss would include the forked parent's pages)
print([int(l.split()[1]) // 1024 for l in open("/proc/self/status") if l.startswith("VmHWM")][0])
"""


def test_the_refusal_holds_under_a_600_mb_address_space_where_decoding_cannot(tmp_path):
    path = bomb_png(tmp_path / "bomb.png")  # 3 GB of RGB declared
    code = _READ.format(limit=600 * 2**20)

    def run(max_pixels):
        out = subprocess.run([sys.executable, "-c", code, str(path), str(max_pixels)],
                             capture_output=True, text=True, timeout=120, cwd=REPO)
        assert out.returncode == 0, out.stderr
        message, peak_mb = out.stdout.strip().splitlines()
        return message, int(peak_mb)

    message, peak_mb = run(MAX_PIXELS)
    assert message.startswith("image declares 32000 x 32000 = 1024 MP, over --max-pixels")
    assert peak_mb < 200  # NumPy + OpenCV + the header: no bitmap
    message, _ = run(2_000_000_000)  # no cap: OpenCV tries to allocate the 3 GB and fails
    assert message in ("error", "MemoryError") or message.startswith("not an image: OpenCV")


# ------------------------------------------------------------------------- video limits


def test_video_frames_over_the_pixel_cap_are_refused_before_decoding(tmp_path):
    path = tmp_path / "clip.mp4"
    _write_video(path, 10, size=(64, 48))
    limits = MediaLimits(max_pixels=3000)
    with pytest.raises(MediaError) as info:
        list(read_frames(path, 30, limits))
    assert str(info.value) == ("video frames are 64 x 48 = 0.003072 MP, over --max-pixels "
                               "0.003 MP; not decoded")
    with applied(limits), pytest.raises(MediaError, match="^video frames are 64 x 48"):
        list(read_frames(path, 30))
    assert len(list(read_frames(path, 30, MediaLimits(max_pixels=3072)))) == 10
    with pytest.raises(MediaError, match="^video frames are 64 x 48"):
        check_media(path, max_pixels=3000)


def test_a_video_longer_than_max_duration_is_sampled_over_its_first_seconds(tmp_path):
    path = tmp_path / "long.mp4"
    _write_video(path, 200, size=(64, 48))  # 8 s at 25 fps
    got = list(read_frames(path, 30, MediaLimits(max_duration=2.0)))
    assert [i for i, _ in got] == sample_indices(50, 30)  # the first 2 s = 50 frames
    assert all(_decoded_index(rgb) == i for i, rgb in got)
    assert [i for i, _ in read_frames(path, 30)][-1] == 199  # no limit: the whole video
    info = check_media(path, max_duration=2.0)
    assert (info.kind, info.width, info.height, info.frames, info.fps, info.window) == \
        ("video", 64, 48, 200, 25.0, 50)
    assert info.duration == 8.0
    assert check_media(path, max_duration=None).window is None


def test_a_stream_without_a_frame_count_is_counted_only_up_to_the_window(tmp_path):
    av = pytest.importorskip("av")
    path = tmp_path / "raw.h264"  # Annex B: no container, no frame count
    with av.open(str(path), "w", format="h264") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(120):
            frame = cv2.cvtColor(_frame_of(i), cv2.COLOR_BGR2RGB)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    assert sniff_kind(path) == "video"
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    assert not capture.get(cv2.CAP_PROP_FRAME_COUNT) > 0  # nothing reported
    capture.release()
    got = list(read_frames(path, 10, MediaLimits(max_duration=1.0)))
    assert [i for i, _ in got] == sample_indices(25, 10)
    assert [i for i, _ in read_frames(path, 10)] == sample_indices(120, 10)


def _frame_of(i: int) -> np.ndarray:
    return _frame(i, (64, 48))


def test_only_video_containers_are_given_to_ffmpeg(tmp_path):
    png = bomb_png(tmp_path / "bomb.mp4")  # an image bomb named like a video
    with pytest.raises(MediaError, match="^not a video: an image file$"):
        list(read_frames(png))
    ppm = tmp_path / "frames.mp4"
    ppm.write_bytes(b"P6\n30000 30000\n255\n" + bytes(64))  # FFmpeg would probe it as an image
    with pytest.raises(MediaError, match="^not a video: text file$|^not a video: unknown"):
        list(read_frames(ppm))
    with pytest.raises(MediaError, match="^not an image or video: unknown format$"):
        check_media(ppm)


# -------------------------------------------------------------------- detector escalation


class CountingAligner(FaceAligner):
    """The real aligner, recording the pixel count of every image given to dlib."""

    def __init__(self):
        super().__init__()
        self.searched: list[int] = []

    def _detect_at(self, rgb, scale, offset=(0, 0)):
        self.searched.append(round(rgb.shape[0] * scale) * round(rgb.shape[1] * scale))
        return super()._detect_at(rgb, scale, offset)


def test_scales_stop_at_the_pixel_cap():
    plan = search_cost.plan_scales
    assert plan(1080, 1920, 640, 40) == pytest.approx([1 / 3, 2 / 3, 4 / 3])  # was ... 2
    assert plan(1920, 1080, 640, 40)[-1] == pytest.approx(4 / 3)
    assert plan(720, 1280, 640, 40) == pytest.approx([0.5, 1.0, 2.0])  # 40 px kept
    assert plan(480, 640, 640, 40) == pytest.approx([1.0, 2.0])
    assert plan(2160, 3840, 640, 40) == pytest.approx([1 / 6, 1 / 3, 2 / 3])  # >= 120 px faces
    assert plan(224, 224, 640, 40) == [1.0, 2.0]
    for height, width in ((1080, 1920), (2160, 3840), (6000, 8000), (100, 40000)):
        largest = plan(height, width, 640, 40)[-1] ** 2 * height * width
        assert largest <= search_cost.MAX_DETECT_PIXELS * 1.0001


def test_a_faceless_video_spends_one_full_search_then_cheap_passes(tmp_path):
    aligner = CountingAligner()
    frames = [(i, _scene(1080, 1920, seed=i)) for i in range(5)]
    assert list(track_faces(frames, aligner)) == []
    full = [230400, 459264, 921600, 3686400]  # 640x360, padded 832x552, 1280x720, 2560x1440
    assert aligner.searched == full + [230400] * 4
    assert max(aligner.searched) <= search_cost.MAX_DETECT_PIXELS
    # the first version: 5 x (the four passes + 3840 x 2160) = 68.0 M pixels; now 6.2 M
    assert sum(aligner.searched) < 0.1 * 5 * (sum(full) + 3840 * 2160)


def test_what_the_budget_gives_up_and_what_it_keeps(astronaut):
    aligner = FaceAligner()
    photo = astronaut[40:300, 100:360]
    box = aligner.detect(photo)[0]
    empty = _scene(1080, 1920, seed=5)
    small = _scene(1080, 1920, seed=6)
    _paste_face(small, photo, box, 60, (900, 500))
    large = _scene(1080, 1920, seed=7)
    truth = _paste_face(large, photo, box, 300, (800, 300))
    # a 60 px face is found by a full search, on any frame of an input until one comes up empty
    assert [i for i, _ in track_faces([(0, small), (1, small)], aligner)] == [0, 1]
    assert aligner(small, escalate=False) is None
    # after a fruitless full search: the small face is given up, a large one is still found
    assert list(track_faces([(0, empty), (1, small)], aligner)) == []
    found = list(track_faces([(0, empty), (1, large)], aligner))
    assert [i for i, _ in found] == [1]
    assert abs(found[0][1].box[0] - truth[0]) < 40


# ---------------------------------------------------------------- odd inputs, end to end


@pytest.fixture(scope="module")
def odd_inputs(tmp_path_factory, astronaut):
    folder = tmp_path_factory.mktemp("odd")
    face = np.ascontiguousarray(astronaut[:, :400])  # 512 x 400, a face of ~90 px
    sideways = np.ascontiguousarray(np.rot90(face))  # as a phone stores a portrait shot
    bgr = face[..., ::-1]
    cv2.imwrite(str(folder / "control.png"), bgr)
    cv2.imwrite(str(folder / "grey.png"), cv2.cvtColor(face, cv2.COLOR_RGB2GRAY))
    cv2.imwrite(str(folder / "alpha.png"), np.dstack([bgr, np.full(face.shape[:2], 200,
                                                                   np.uint8)]))
    cv2.imwrite(str(folder / "deep16.png"), bgr.astype(np.uint16) * 257)
    Image.fromarray(face).convert("CMYK").save(folder / "cmyk.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6  # "turn 90 degrees clockwise to display"
    Image.fromarray(sideways).save(folder / "rotated.jpg", exif=exif.tobytes())
    Image.fromarray(face).save(folder / "frames.gif", save_all=True,
                               append_images=[Image.fromarray(face[:, ::-1])])
    (folder / "named.txt").write_bytes((folder / "control.png").read_bytes())
    cv2.imwrite(str(folder / "float.tif"), face.astype(np.float32) / 255)
    bomb_png(folder / "bomb.png")
    (folder / "netpbm.png").write_bytes(b"P6\n400 512\n255\n" + face.tobytes())
    write_frames(folder / "one_frame.mp4", [face])
    writer = cv2.VideoWriter(str(folder / "zero_frames.mp4"), cv2.VideoWriter_fourcc(*"mp4v"),
                             25, (400, 512))
    writer.release()
    write_frames(folder / "sideways.mp4", [sideways] * 6)
    rotate_mp4(folder / "sideways.mp4", folder / "rotated.mp4")
    data = (folder / "sideways.mp4").read_bytes()
    (folder / "truncated.mp4").write_bytes(data[: len(data) // 2])
    return folder


# name -> (status, error prefix, frames sampled)
ODD = {
    "control.png": ("ok", None, 1),
    "grey.png": ("ok", None, 1),
    "alpha.png": ("ok", None, 1),
    "deep16.png": ("ok", None, 1),
    "cmyk.jpg": ("ok", None, 1),
    "rotated.jpg": ("ok", None, 1),
    "frames.gif": ("ok", None, 1),
    "named.txt": ("ok", None, 1),
    "one_frame.mp4": ("ok", None, 1),
    "rotated.mp4": ("ok", None, 6),
    "float.tif": ("failed", "not an image: OpenCV cannot decode it", 0),
    "bomb.png": ("failed", "image declares 32000 x 32000 = 1024 MP, over --max-pixels 50 MP", 0),
    "netpbm.png": ("failed", "not an image: unknown format (PNG, JPEG, GIF, BMP, WebP and TIFF", 0),
    "zero_frames.mp4": ("failed", "truncated or corrupt video: FFmpeg cannot read its header", 0),
    "truncated.mp4": ("failed", "truncated or corrupt video: FFmpeg cannot read its header", 0),
}


def test_odd_inputs_score_or_fail_with_a_reason(odd_inputs, tiny_model_path, tmp_path, capsys):
    report = tmp_path / "report.json"
    status = predict_tool.main(["--model", str(tiny_model_path), "--threshold", "0.5",
                                "--json", str(report)] + [str(odd_inputs / n) for n in ODD])
    assert status == cli.EXIT_PARTIAL
    entries = {Path(e["path"]).name: e for e in json.loads(report.read_text())["files"]}
    got = {name: (e["status"], e["error"], e["frames_sampled"]) for name, e in entries.items()}
    for name, (state, reason, sampled) in ODD.items():
        assert got[name][0] == state and got[name][2] == sampled, (name, got[name])
        assert (got[name][1] or "").startswith(reason or ""), (name, got[name])
        if state == "ok":
            assert 0.0 <= entries[name]["probability"] <= 1.0
    assert json.loads(report.read_text())["max_pixels"] == MAX_PIXELS
    rows = capsys.readouterr().out
    assert "failed: image declares 32000 x 32000 = 1024 MP" in rows


def test_orientation_is_what_makes_the_rotated_inputs_score(odd_inputs):
    aligner = FaceAligner()
    stored = cv2.imdecode(np.fromfile(odd_inputs / "rotated.jpg", np.uint8),
                          cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    assert stored.shape == (400, 512, 3) and aligner.detect(stored[..., ::-1].copy()) == []
    assert read_image(odd_inputs / "rotated.jpg").shape == (512, 400, 3)
    capture = cv2.VideoCapture(str(odd_inputs / "rotated.mp4"), cv2.CAP_FFMPEG)
    assert capture.get(cv2.CAP_PROP_ORIENTATION_META) == 90
    capture.release()
    (_, first), *_ = read_frames(odd_inputs / "rotated.mp4", 1)
    assert first.shape == (512, 400, 3) and aligner.detect(first)
    (_, plain), *_ = read_frames(odd_inputs / "sideways.mp4", 1)
    assert plain.shape == (400, 512, 3) and aligner.detect(plain) == []


def test_ten_bit_video_scores(tmp_path, tiny_model_path, astronaut):
    av = pytest.importorskip("av")
    if "libx265" not in av.codecs_available:
        pytest.skip("PyAV without libx265: no 10-bit encoder here")
    path = tmp_path / "ten_bit.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx265", rate=25)
        stream.width, stream.height, stream.pix_fmt = 512, 512, "yuv420p10le"
        stream.options = {"x265-params": "log-level=error"}
        for _ in range(5):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(astronaut), format="rgb24")
            for packet in stream.encode(frame.reformat(format="yuv420p10le")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuv420p10le"
    frames = list(read_frames(path, 30))
    assert len(frames) == 5 and frames[0][1].dtype == np.uint8
    assert np.abs(frames[0][1].astype(int) - astronaut).mean() < 8
    report = tmp_path / "r.json"
    status = predict_tool.main(["--model", str(tiny_model_path), "--threshold", "0.5",
                                "--json", str(report), str(path)])
    entry = json.loads(report.read_text())["files"][0]
    assert (status, entry["status"], entry["frames_sampled"]) == (cli.EXIT_OK, "ok", 5)


@pytest.mark.parametrize("flag,value,message", [
    ("--max-pixels", "0", "--max-pixels must be >= 1, got 0"),
    ("--max-duration", "-5", "--max-duration must be > 0, got -5.0"),
    ("--max-pixels", "50M", "--max-pixels: invalid int value: '50M'"),
])
def test_bad_limits_are_one_line_usage_errors(tmp_path, capsys, tiny_model_path, flag, value,
                                              message):
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    status = predict_tool.main(["--model", str(tiny_model_path), flag, value, str(image)])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert status == cli.EXIT_USAGE and len(err) == 1 and message in err[0], err


def test_predict_samples_a_long_video_over_its_first_max_duration_seconds(tmp_path, astronaut,
                                                                         tiny_model_path):
    path = tmp_path / "long.mp4"
    write_frames(path, [np.ascontiguousarray(astronaut[:, :400])] * 100)  # 4 s at 25 fps
    report = tmp_path / "r.json"
    status = predict_tool.main(["--model", str(tiny_model_path), "--threshold", "0.5",
                                "--frames", "5", "--max-duration", "1", "--json", str(report),
                                str(path)])
    data = json.loads(report.read_text())
    entry = data["files"][0]
    assert (status, entry["status"], entry["frames_sampled"]) == (cli.EXIT_OK, "ok", 5)
    assert entry["tracks"][0]["frames"] == sample_indices(25, 5) == [0, 6, 12, 18, 24]
    assert data["max_duration"] == 1.0
