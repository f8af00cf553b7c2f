"""build_records on Beam against the local engine: the same inputs converted three ways, side by
side in one invocation, each as a fresh ``python -m mclcr_keras.build_records`` subprocess:

- **local, N workers**: ``--engine local --workers N`` (the default engine);
- **beam, 1 worker**: ``--engine beam --workers 1`` (Beam's local runner, one SDK worker process);
- **beam, N workers**: ``--engine beam --workers N``.

Printed: wall seconds of each (best of ``--repeats``, runs alternating), the ratio
beam N / local N (goal <= 1.5) and the speed-up beam 1 -> N (goal >= 1.7 for N = 2). The inputs
are distinct videos (``--videos``, default 24) of the two public-domain face photos (Grace Hopper,
matplotlib; the astronaut, scikit-image) moving over a 640x480 background, ``--frames`` frames
each; every converted frame goes through dlib detection, landmarks, alignment and PNG encoding.

    python benchmarks/bench_beam_records.py                    # 24 videos, 2 workers
    python benchmarks/bench_beam_records.py --videos 48 --repeats 2
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def faces() -> list[np.ndarray]:
    import matplotlib.cbook
    import skimage.data
    from PIL import Image

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as handle:
        grace = np.asarray(Image.open(handle).convert("RGB"))
    return [grace, skimage.data.astronaut()]


def write_videos(root: str, count: int, frames: int) -> None:
    """``count`` distinct 640x480 mp4s under ROOT/real and ROOT/fake (half each)."""
    import cv2

    photos = faces()
    for index in range(count):
        label = ("real", "fake")[index % 2]
        photo = photos[index % 2]
        rng = np.random.default_rng(index)
        scale = 300 / photo.shape[0]
        small = cv2.resize(photo, (int(photo.shape[1] * scale), 300), interpolation=cv2.INTER_AREA)
        os.makedirs(os.path.join(root, label), exist_ok=True)
        path = os.path.join(root, label, f"v{index:03d}.mp4")
        writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 25, (640, 480))
        for _ in range(frames):
            frame = np.full((480, 640, 3), int(rng.integers(60, 160)), np.uint8)
            dx, dy = int(rng.integers(0, 640 - small.shape[1])), int(rng.integers(0, 180))
            frame[dy:dy + 300, dx:dx + small.shape[1]] = small
            writer.write(np.ascontiguousarray(frame[..., ::-1]))
        writer.release()


def convert(root: str, engine: str, workers: int, frames: int) -> float:
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "mclcr_keras.build_records", "folder", "--root", root,
                   "--out", os.path.join(out, "records"), "--engine", engine, "--workers",
                   str(workers), "--frames", str(frames), "--quiet"]
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        started = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"build_records --engine {engine} failed ({done.returncode}): "
                 f"{done.stderr[-2000:]}")
    print(f"  {engine} x{workers}: {seconds:.1f} s  ({done.stdout.strip().splitlines()[-1]})",
          flush=True)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=24)
    parser.add_argument("--frames", type=int, default=30, help="frames per video, all sampled")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="alternating runs; best kept")
    args = parser.parse_args(argv)
    runs = {("local", args.workers): [], ("beam", 1): [], ("beam", args.workers): []}
    with tempfile.TemporaryDirectory() as root:
        write_videos(root, args.videos, args.frames)
        print(f"bench_beam_records: {args.videos} videos of {args.frames} frames (640x480), "
              f"{os.cpu_count()} cores", flush=True)
        for _ in range(args.repeats):
            for engine, workers in runs:
                runs[(engine, workers)].append(convert(root, engine, workers, args.frames))
    best = {key: min(times) for key, times in runs.items()}
    local, beam1, beam = (best[("local", args.workers)], best[("beam", 1)],
                          best[("beam", args.workers)])
    print(f"beam x{args.workers} / local x{args.workers}: {beam / local:.2f} (goal <= 1.5)")
    print(f"beam x1 -> x{args.workers} speed-up: {beam1 / beam:.2f} (goal >= 1.7 for 2 workers)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
