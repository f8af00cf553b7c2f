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

Both ratios build / decode are printed for wall time (the goal's measure) and for CPU time
(user + system of all processes; steadier on a shared machine), best of ``--repeats``
alternating runs. DESIGN.md's goal is <= 2.0.

    python benchmarks/bench_convert.py                       # ../shared/data/ffpp_mini
    python benchmarks/bench_convert.py --root /data/FF++ --splits-dir /data/FF++/splits
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
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


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_decode(paths: list[str], workers: int, mode: str) -> tuple[float, float, int]:
    """Wall and CPU seconds (all worker processes) of decoding every frame of ``paths``."""
    cpu = _children_cpu()
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(workers, len(paths)), mp_context=context,
                             initializer=_init_decoder) as executor:
        frames = sum(executor.map(decode_all, paths, [mode] * len(paths), chunksize=1))
    return time.perf_counter() - started, _children_cpu() - cpu, frames


def time_build(args: argparse.Namespace, out: str) -> tuple[float, float]:
    """Wall and CPU seconds (the CLI and its workers) of one build_records run."""
    command = [sys.executable, "-m", "mclcr_keras.build_records", args.source, "--root",
               args.root, "--out", out, "--workers", str(args.workers), "--quiet",
               *args.build_args]
    if args.splits_dir:
        command += ["--splits-dir", args.splits_dir]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    cpu = _children_cpu()
    started = time.perf_counter()
    completed = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    cpu = _children_cpu() - cpu
    if completed.returncode not in (0, 3):
        sys.exit(f"build_records failed ({completed.returncode}): {completed.stderr[-2000:]}")
    print("  " + completed.stdout.strip().splitlines()[-1])
    with open(os.path.join(out, "dataset.json")) as handle:
        loop = json.load(handle)["seconds"]
    print(f"  build_records: {seconds:.1f} s ({cpu:.1f} s CPU), of which {loop:.1f} s from the "
          f"workers' start to the last shard and {seconds - loop:.1f} s start-up (interpreter, "
          f"listing) and final tables")
    return seconds, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=str(DEFAULT_ROOT), help="dataset root (ffpp layout)")
    parser.add_argument("--source", default="ffpp", help="build_records SOURCE (default: ffpp)")
    parser.add_argument("--splits-dir", help="default: ROOT/splits when it exists")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=1, help="alternating runs; best kept")
    parser.add_argument("--replicate", type=int, default=1,
                        help="convert each video N times (symlinks in a temporary folder "
                             "layout), to see the steady state past the fixed start-up cost")
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
    with tempfile.TemporaryDirectory() as links:
        if args.replicate > 1:
            items = _replicate(items, args.replicate, links)
            args.source, args.root, args.splits_dir = "folder", links, None
        return _run(args, [item.paths[0] for item in items if item.kind == "video"])


def _replicate(items: list, copies: int, root: str) -> list:
    """A folder layout of ``copies`` symlinks per video (nothing is copied)."""
    from mclcr_keras.data import sources

    for item in items:
        os.makedirs(os.path.join(root, item.label_name), exist_ok=True)
        for copy in range(copies):
            name = f"{item.method}_{item.video_id}_{copy}{os.path.splitext(item.paths[0])[1]}"
            os.symlink(item.paths[0], os.path.join(root, item.label_name, name))
    return sources.list_items("folder", root)


def _run(args: argparse.Namespace, paths: list[str]) -> int:
    print(f"bench_convert: {len(paths)} videos under {args.root}, {args.workers} workers, "
          f"build_records options: {' '.join(args.build_args) or '(defaults)'}")
    wall: dict[str, list[float]] = {"read": [], "grab": [], "build": []}
    cpu: dict[str, list[float]] = {"read": [], "grab": [], "build": []}
    for _ in range(args.repeats):
        for mode in ("read", "grab"):
            seconds, cpu_seconds, frames = time_decode(paths, args.workers, mode)
            wall[mode].append(seconds)
            cpu[mode].append(cpu_seconds)
            print(f"  decode all {frames} frames ({mode}): {seconds:.1f} s "
                  f"({cpu_seconds:.1f} s CPU)")
        with tempfile.TemporaryDirectory() as tmp:
            seconds, cpu_seconds = time_build(args, os.path.join(tmp, "records"))
        wall["build"].append(seconds)
        cpu["build"].append(cpu_seconds)
    for name, table in (("wall", wall), ("CPU", cpu)):
        read, grab, build = (min(table[k]) for k in ("read", "grab", "build"))
        print(f"{name:>4}: decode alone {read:.1f} s (read) / {grab:.1f} s (grab) | "
              f"build_records {build:.1f} s | ratio {build / read:.2f} (vs read) / "
              f"{build / grab:.2f} (vs grab)  (goal <= 2.0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
