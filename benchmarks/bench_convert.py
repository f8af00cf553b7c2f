"""Converter speed: build_records wall time against decoding the same videos' frames alone.

Both sides run side by side in one invocation, on the same videos, with the same number of
worker processes (``--workers``, default: all cores), OpenCV limited to one thread per process in
both:

- **decode**: every frame of every video decoded sequentially, the videos spread over a
  ``spawn`` process pool, two ways: ``read`` = ``cv2.VideoCapture.read()`` (demux + decode + BGR
  conversion: the frames as arrays) and ``grab`` = ``grab()`` only (demux + decode, no
  conversion; the stricter baseline, and what the converter itself does for unsampled frames);
- **build_records**: ``python -m mclcr_keras.build_records`` as a fresh subprocess (interpreter
  start, TensorFlow import, listing, 30 sampled frames per video decoded sequentially, face
  detection, landmarks, alignment, PNG encoding, TFRecord writing, manifest), into a temporary
  directory.

Both ratios build / decode are printed (best of ``--repeats`` alternating runs, since the
machine may be shared); DESIGN.md's goal is <= 2.0.

    python benchmarks/bench_convert.py                       # ../shared/data/ffpp_mini
    python benchmarks/bench_convert.py --root /data/FF++ --splits-dir /data/FF++/splits
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_ROOT = HERE.parent.parent / "shared" / "data" / "ffpp_mini"


def _init_decoder() -> None:
    import cv2

    cv2.setNumThreads(1)


def decode_all(path: str, mode: str = "read") -> int:
    """Decodes every frame of a video sequentially; returns the number of frames.

    ``read``: ``VideoCapture.read()`` (decode + conversion to a BGR array, what a user gets as
    "frames"); ``grab``: ``grab()`` only (demux + decode, no colour conversion), the cheapest
    full decode OpenCV offers and the stricter baseline.
    """
    import cv2

    capture = cv2.VideoCapture(path)
    step = capture.read if mode == "read" else capture.grab
    count = 0
    while True:
        result = step()
        if not (result[0] if isinstance(result, tuple) else result):
            break
        count += 1
    capture.release()
    return count


def time_decode(paths: list[str], workers: int, mode: str) -> tuple[float, int]:
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(workers, len(paths)), mp_context=context,
                             initializer=_init_decoder) as executor:
        frames = sum(executor.map(decode_all, paths, [mode] * len(paths), chunksize=1))
    return time.perf_counter() - started, frames


def time_build(args: argparse.Namespace, out: str) -> float:
    command = [sys.executable, "-m", "mclcr_keras.build_records", args.source, "--root",
               args.root, "--out", out, "--workers", str(args.workers), "--quiet",
               *args.build_args]
    if args.splits_dir:
        command += ["--splits-dir", args.splits_dir]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    started = time.perf_counter()
    completed = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if completed.returncode not in (0, 3):
        sys.exit(f"build_records failed ({completed.returncode}): {completed.stderr[-2000:]}")
    print("  " + completed.stdout.strip().splitlines()[-1])
    with open(os.path.join(out, "dataset.json")) as handle:
        loop = json.load(handle)["seconds"]
    print(f"  build_records: {seconds:.1f} s, of which {loop:.1f} s converting and "
          f"{seconds - loop:.1f} s start-up (interpreter, TensorFlow import, listing) and "
          f"final tables")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=str(DEFAULT_ROOT), help="dataset root (ffpp layout)")
    parser.add_argument("--source", default="ffpp", help="build_records SOURCE (default: ffpp)")
    parser.add_argument("--splits-dir", help="default: ROOT/splits when it exists")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=1, help="alternating runs; best kept")
    parser.add_argument("build_args", nargs=argparse.REMAINDER,
                        help="extra build_records options after '--'")
    args = parser.parse_args(argv)
    if args.build_args and args.build_args[0] == "--":
        args.build_args = args.build_args[1:]
    if not os.path.isdir(args.root):
        print(f"bench_convert: error: --root {args.root} is not a directory", file=sys.stderr)
        return 2
    if args.splits_dir is None and os.path.isdir(os.path.join(args.root, "splits")):
        args.splits_dir = os.path.join(args.root, "splits")

    sys.path.insert(0, str(HERE.parent))
    from mclcr_keras.data import sources

    options = {"splits_dir": args.splits_dir} if args.source in ("ffpp", "celebdf") else {}
    items = sources.list_items(args.source, args.root, **options)
    paths = [item.paths[0] for item in items if item.kind == "video"]
    print(f"bench_convert: {len(paths)} videos under {args.root}, {args.workers} workers, "
          f"build_records options: {' '.join(args.build_args) or '(defaults)'}")
    times: dict[str, list[float]] = {"read": [], "grab": [], "build": []}
    for _ in range(args.repeats):
        for mode in ("read", "grab"):
            seconds, frames = time_decode(paths, args.workers, mode)
            times[mode].append(seconds)
            print(f"  decode all {frames} frames ({mode}): {seconds:.1f} s")
        with tempfile.TemporaryDirectory() as tmp:
            times["build"].append(time_build(args, os.path.join(tmp, "records")))
    read, grab, build = (min(times[k]) for k in ("read", "grab", "build"))
    print(f"decode alone {read:.1f} s (read) / {grab:.1f} s (grab) | build_records {build:.1f} s "
          f"| ratio {build / read:.2f} (vs read) / {build / grab:.2f} (vs grab) (goal <= 2.0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
