"""Bounded cost of hostile input: a video with no face against the same video with a face, and a
PNG that declares 32000 x 32000 pixels.

Videos: synthetic, ``--width x --height`` (default 1920 x 1080), ``--seconds`` at 30 fps, written
in this run (``--codec mp4v``: OpenCV's ``VideoWriter``; ``h264``: PyAV's libx264, CRF 23, when
installed). The same panning textured background (scikit-image's coffee photo, blurred, sensor
noise) with no face, with a face of ~260 px (an FF++ anchor at 1080p: the astronaut photo
pasted), and with a face of ~60 px. Each is cropped as ``build_records`` and ``predict`` crop it
(`mclcr_keras.data.crops.crop_input`, 30 sampled frames, one `FaceAligner`), timed in CPU seconds
of this process (all threads: FFmpeg decodes on several), median of ``--repeats`` interleaved
rounds, two ways:

- **capped**: the code as it is (per-frame pixel cap + per-input search budget,
  `mclcr_keras.data.search_cost`);
- **uncapped**: the first version's search: every frame without a track gets every pass, up to a
  3840 x 2160 image (``MAX_DETECT_PIXELS`` raised, the budget not used).

``decode`` is the cost of grabbing every frame with no detection at all (the floor). The ratio
the issue asks about is faceless / face <= ~2.

Image: the 3 MB PNG declaring 32000 x 32000 (3 GB of RGB), read with
`mclcr_keras.data.video.read_image` in a fresh process; its peak RSS and wall time, and the
one-line refusal. (The first version decoded it: 55 s and 9.1 GB in ``predict``, per the issue.)

    python benchmarks/bench_hostile.py                     # 1080p, 10 s, mp4v
    python benchmarks/bench_hostile.py --codec h264 --seconds 10 --json hostile_bench.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import cv2
import numpy as np

FPS = 30


def scene(width: int, height: int, frames: int):
    """Frame ``i`` of a panning, textured, face-free background."""
    import skimage.data

    rng = np.random.default_rng(0)
    pan = 4 * frames
    big = cv2.resize(skimage.data.coffee(), (width + pan, height), interpolation=cv2.INTER_LINEAR)
    big = cv2.GaussianBlur(big, (0, 0), 3).astype(np.float32)
    big = np.clip(big + rng.normal(0, 6, big.shape), 0, 255).astype(np.uint8)
    return lambda i: np.ascontiguousarray(big[:, 4 * i: 4 * i + width])


def with_face(background, face_px: int):
    """``background`` with the astronaut pasted so her dlib box is ~``face_px`` wide."""
    import skimage.data

    from mclcr_keras.data.faces import FaceAligner

    photo = np.ascontiguousarray(skimage.data.astronaut())
    box = FaceAligner().detect(photo)[0]
    small = cv2.resize(photo, None, fx=face_px / (box[2] - box[0]),
                       fy=face_px / (box[2] - box[0]), interpolation=cv2.INTER_AREA)

    def frame(i):
        rgb = background(i).copy()
        x, y = rgb.shape[1] // 3 + (i % 40), rgb.shape[0] // 6
        h, w = min(small.shape[0], rgb.shape[0] - y), min(small.shape[1], rgb.shape[1] - x)
        rgb[y:y + h, x:x + w] = small[:h, :w]
        return rgb

    return frame


def write_video(path: Path, frame, count: int, width: int, height: int, codec: str) -> None:
    if codec == "mp4v":
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS,
                                 (width, height))
        for i in range(count):
            writer.write(frame(i)[..., ::-1])
        writer.release()
        return
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast"}
        for i in range(count):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame(i), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def uncapped_crop(path: str, aligner, frames: int) -> int:
    """The first version's search: every frame's full search, up to a 3840 x 2160 image."""
    from mclcr_keras.data import search_cost
    from mclcr_keras.data.video import read_frames

    saved, search_cost.MAX_DETECT_PIXELS = search_cost.MAX_DETECT_PIXELS, 3840 * 2160
    try:
        previous, found = None, 0
        for _, rgb in read_frames(path, frames):
            face = aligner(rgb, previous, escalate=True)
            if face is not None:
                previous, found = face.box, found + 1
        return found
    finally:
        search_cost.MAX_DETECT_PIXELS = saved


def decode_only(path: str, aligner, frames: int) -> int:
    capture = cv2.VideoCapture(path)
    count = 0
    while capture.grab():
        count += 1
    capture.release()
    return 0


def capped_crop(path: str, aligner, frames: int) -> int:
    from mclcr_keras.data.crops import crop_input

    return len(crop_input("video", [path], aligner, frames)[0])


def big_png(path: Path, width: int, height: int) -> None:
    """A valid RGB PNG of zeros: ~3 MB for 32000 x 32000 (zlib packs zero rows ~1000:1)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    compressor, row = zlib.compressobj(9), bytes(1 + 3 * width)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body)
                     + chunk(b"IEND", b""))


_READ = """
import sys, time
from mclcr_keras.data.video import MediaError, read_image
start = time.perf_counter()
try:
    read_image(sys.argv[1]); outcome = "decoded"
except MediaError as error:
    outcome = str(error)
# VmHWM: this image's peak RSS (ru_maxrss would count the pages of the forked parent)
peak = [int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")]
print(time.perf_counter() - start, peak[0], outcome, sep="\\t")
"""


def bench_image(folder: Path) -> dict:
    path = folder / "bomb.png"
    big_png(path, 32000, 32000)
    result = subprocess.run([sys.executable, "-c", _READ, str(path)], capture_output=True,
                            text=True, timeout=600, check=True)
    seconds, rss, outcome = result.stdout.strip().split("\t")
    return {"file_mb": round(path.stat().st_size / 1e6, 2), "read_seconds": float(seconds),
            "peak_rss_mb": round(int(rss) / 1024, 1), "outcome": outcome}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--frames", type=int, default=30, help="frames sampled per video")
    parser.add_argument("--codec", choices=("mp4v", "h264"), default="mp4v")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-uncapped", action="store_true",
                        help="skip the first version's search (~1.4 CPU-s per faceless frame)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)

    from mclcr_keras.data.faces import FaceAligner

    aligner = FaceAligner()
    aligner.detector  # load dlib outside the timings
    count = int(round(args.seconds * FPS))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        background = scene(args.width, args.height, count)
        videos = {"faceless": background, "face_260px": with_face(background, 260),
                  "face_60px": with_face(background, 60)}
        for name, frame in videos.items():
            write_video(folder / f"{name}.mp4", frame, count, args.width, args.height,
                        args.codec)
        ways = {"decode": decode_only, "capped": capped_crop}
        if not args.no_uncapped:
            ways["uncapped"] = uncapped_crop
        times = {(v, w): [] for v in videos for w in ways}
        found = {}
        for _ in range(args.repeats):
            for video in videos:
                for way, run in ways.items():
                    start = time.process_time()
                    found[video, way] = run(str(folder / f"{video}.mp4"), aligner, args.frames)
                    times[video, way].append(time.process_time() - start)
        image = bench_image(folder)
    median = {key: statistics.median(values) for key, values in times.items()}
    print(f"{args.width}x{args.height}, {count} frames ({args.seconds:g} s at {FPS} fps), "
          f"{args.codec}, {args.frames} sampled; CPU s, median of {args.repeats}")
    print(f"{'video':12} " + " ".join(f"{w:>16}" for w in ways))
    for video in videos:
        print(f"{video:12} " + " ".join(
            f"{median[video, w]:8.2f} ({found[video, w]:2d} f)" for w in ways))
    ratios = {w: median["faceless", w] / median["face_260px", w] for w in ways if w != "decode"}
    for way, ratio in ratios.items():
        print(f"faceless / face_260px, {way}: {ratio:.2f}")
    print(f"32000 x 32000 PNG ({image['file_mb']} MB): {image['read_seconds'] * 1000:.1f} ms, "
          f"peak RSS {image['peak_rss_mb']} MB: {image['outcome']}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "settings": vars(args), "cpu_seconds": {f"{v}/{w}": t for (v, w), t in
                                                    median.items()},
            "faces_found": {f"{v}/{w}": n for (v, w), n in found.items()},
            "ratios": ratios, "image": image}, indent=2))


if __name__ == "__main__":
    main()
