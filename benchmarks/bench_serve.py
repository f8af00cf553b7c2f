"""The scoring service against the same work done by predict in-process (goal: overhead <= 10%
at 1 client).

One run measures two contenders on the same files, at 1, 2 and 4 concurrent clients:

- `service`: a real ``python -m mclcr_keras.serve`` (uvicorn, ``--max-concurrent W`` worker
  processes that each loaded the model once, a queue large enough that nothing is refused) on a
  free loopback port; each client thread POSTs the file to ``/v1/score`` with httpx and waits for
  the JSON (upload, streaming to disk, sniffing, hand-over to a worker, predict, report, reply);
- `in_process`: the same number of threads in this process, each calling the predict library
  exactly as a worker does for one request: `predict(PredictOptions([file], json=...), scorer)`
  with one shared, already loaded scorer, then reading the JSON report.

Inputs: an image (scikit-image's astronaut, 512 x 512) and a short video (``--clip-frames``
frames of matplotlib's Grace Hopper drifting over a grey canvas, 25 fps, MPEG-4), scored with
``--frames`` sampled frames. A fresh ``build_mclcr(weights=None)`` at ``--image-size`` (or
``--model``): random weights score like trained ones. Each contender has its own client threads
per client count, kept for the whole run, and each thread makes 2 untimed warm-up requests per
input (predict keeps a face aligner per thread); then, per round, every (input, clients) cell
runs ``--requests`` requests for each contender, the order of the contenders alternating cell
by cell and round by round, so background load on a shared machine hits both alike. Reported
per cell: requests/s (requests / wall time of the cell, summed over rounds) and the p50 / p95
latency of the single requests.

    python benchmarks/bench_serve.py                       # 256 px, 2 workers, 2 rounds
    python benchmarks/bench_serve.py --workers 1 --requests 4 --json serve_bench.json
    python benchmarks/bench_serve.py --inputs image --clients 1 --requests 20 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import common

GOAL = 1.10
CLIENTS = (1, 2, 4)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Scoring service vs predict in-process.")
    parser.add_argument("--model", default=None, help="a .keras file (default: a fresh model)")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2, help="the service's --max-concurrent")
    parser.add_argument("--frames", type=int, default=16, help="frames sampled per video")
    parser.add_argument("--clip-frames", type=int, default=50, help="frames of the video (25 fps)")
    parser.add_argument("--requests", type=int, default=6, help="requests per cell and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clients", type=int, nargs="+", default=list(CLIENTS))
    parser.add_argument("--inputs", nargs="+", default=["image", "video"],
                        choices=["image", "video"])
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    return parser


def write_inputs(folder: str, clip_frames: int) -> dict[str, str]:
    import cv2
    import matplotlib.cbook
    import numpy as np
    import skimage.data

    image = os.path.join(folder, "astronaut.png")
    cv2.imwrite(image, cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR))
    face = cv2.imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    height, width = face.shape[:2]
    video = os.path.join(folder, "clip.mp4")
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"mp4v"), 25.0,
                             (width + 80, height + 80))
    for step in range(clip_frames):
        canvas = np.full((height + 80, width + 80, 3), 128, np.uint8)
        shift = (step * 2) % 80
        canvas[shift:shift + height, shift:shift + width] = face
        writer.write(canvas)
    writer.release()
    return {"image": image, "video": video}


def start_service(model: str, args, folder: str):
    """The service as a subprocess; returns (process, base URL) once it listens."""
    command = [sys.executable, "-m", "mclcr_keras.serve", "--model", model, "--port", "0",
               "--max-concurrent", str(args.workers), "--queue", "64", "--frames",
               str(args.frames), "--timeout", "3600", "--upload-dir", folder]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True,
                               stderr=subprocess.DEVNULL)
    line = process.stdout.readline()
    if not line.startswith("serve: listening on "):
        process.kill()
        raise RuntimeError(f"the service did not start: {line!r} (exit {process.poll()})")
    return process, line.split()[3].rstrip("/")


def service_call(url: str):
    import httpx

    client = httpx.Client(timeout=3600)
    lock = threading.Lock()

    def call(path: str) -> None:
        with open(path, "rb") as handle:
            response = client.post(f"{url}/v1/score",
                                   files={"file": (os.path.basename(path), handle)})
        if response.status_code != 200:
            raise RuntimeError(f"service: {response.status_code} {response.text[:200]}")
        with lock:
            json.loads(response.content)

    return call


def in_process_call(model: str, scorer, frames: int, folder: str):
    from mclcr_keras.inference.predict import PredictOptions, predict

    counter = iter(range(10 ** 9))

    def call(path: str) -> None:
        report = os.path.join(folder, f"report-{next(counter)}.json")
        with open(os.devnull, "w") as table:
            predict(PredictOptions([path], model=model, frames=frames, json=report), scorer,
                    stream=table)
        with open(report) as handle:
            entry = json.load(handle)["files"][0]
        os.remove(report)
        if entry["status"] != "ok":
            raise RuntimeError(f"in-process: {entry['error']}")

    return call


def warm_pool(call, paths, clients: int) -> ThreadPoolExecutor:
    """``clients`` client threads, kept for the whole run, each warmed up on every input (predict
    keeps one face aligner per thread: its dlib models load on a thread's first file)."""
    pool = ThreadPoolExecutor(clients)
    barrier = threading.Barrier(clients)

    def warm(_):
        barrier.wait()  # one warm-up task per thread
        for path in paths:
            for _ in range(2):
                call(path)

    list(pool.map(warm, range(clients)))
    return pool


def run_cell(pool, call, path: str, requests: int) -> tuple[float, list[float]]:
    """``requests`` calls by the pool's client threads; (wall seconds, each call's latency)."""
    latencies: list[float] = []

    def one(_):
        started = time.perf_counter()
        call(path)
        latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    list(pool.map(one, range(requests)))
    return time.perf_counter() - started, latencies


def measure(args, work: str) -> dict:
    import keras
    import numpy as np

    from mclcr_keras.inference.predict import load
    from mclcr_keras.models import build_mclcr

    model = args.model
    if model is None:
        keras.utils.set_random_seed(0)
        built = build_mclcr(image_size=args.image_size, weights=None, compile=False)
        model = os.path.join(work, "model.keras")
        built.save(model)
        del built
    inputs = {kind: path for kind, path in write_inputs(work, args.clip_frames).items()
              if kind in args.inputs}
    uploads = os.path.join(work, "uploads")
    reports = os.path.join(work, "reports")
    os.mkdir(uploads)
    os.mkdir(reports)
    process, url = start_service(model, args, uploads)
    try:
        scorer = load(model)
        contenders = {"service": service_call(url),
                      "in_process": in_process_call(model, scorer, args.frames, reports)}
        pools = {(name, clients): warm_pool(call, list(inputs.values()), clients)
                 for name, call in contenders.items() for clients in args.clients}
        cells = [(kind, clients) for kind in inputs for clients in args.clients]
        totals = {(name, kind, c): [0.0, []] for name in contenders for kind, c in cells}
        flip = 0
        for _ in range(args.rounds):
            for kind, clients in cells:
                order = list(contenders)[::-1] if flip % 2 else list(contenders)
                flip += 1
                for name in order:
                    wall, latencies = run_cell(pools[(name, clients)], contenders[name],
                                               inputs[kind], args.requests)
                    totals[(name, kind, clients)][0] += wall
                    totals[(name, kind, clients)][1] += latencies
    finally:
        process.terminate()
        process.wait(60)
    rows = []
    for (name, kind, clients), (wall, latencies) in totals.items():
        rows.append({"contender": name, "input": kind, "clients": clients,
                     "requests": len(latencies), "requests_per_s": len(latencies) / wall,
                     "p50_s": float(np.percentile(latencies, 50)),
                     "p95_s": float(np.percentile(latencies, 95))})
    by = {(r["contender"], r["input"], r["clients"]): r for r in rows}
    overhead = {kind: by[("service", kind, 1)]["p50_s"] / by[("in_process", kind, 1)]["p50_s"]
                for kind in inputs if 1 in args.clients}
    return {"model": args.model or f"build_mclcr(image_size={args.image_size}, weights=None)",
            "workers": args.workers, "frames": args.frames, "clip_frames": args.clip_frames,
            "rounds": args.rounds, "rows": rows, "overhead_p50_at_1_client": overhead,
            "goal": GOAL, **common.machine()}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    work = tempfile.mkdtemp(prefix="bench_serve_")
    try:
        result = measure(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"service (--max-concurrent {result['workers']}) vs predict in-process; "
          f"{result['model']}; video: {result['clip_frames']} frames, {result['frames']} sampled")
    print(f"{'input':6s} {'clients':>7s} {'contender':11s} {'req/s':>7s} {'p50 s':>7s} "
          f"{'p95 s':>7s}")
    for row in sorted(result["rows"], key=lambda r: (r["input"], r["clients"], r["contender"])):
        print(f"{row['input']:6s} {row['clients']:7d} {row['contender']:11s} "
              f"{row['requests_per_s']:7.3f} {row['p50_s']:7.3f} {row['p95_s']:7.3f}")
    for kind, ratio in result["overhead_p50_at_1_client"].items():
        verdict = "meets" if ratio <= GOAL else "misses"
        print(f"{kind}: service / in-process p50 at 1 client = {ratio:.3f} ({verdict} the goal "
              f"<= {GOAL})")
    return common.finish(result, args.json)


if __name__ == "__main__":
    sys.exit(main())
