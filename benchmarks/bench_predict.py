"""predict on a video against the sum of its parts, timed separately in the same run (goal <= 1.2).

One process loads the model once and, on each video, times in interleaved rounds (the order
alternates every round):

- **predict** (numerator): `mclcr_keras.inference.predict.predict` on the one video, as
  ``python -m mclcr_keras.predict`` runs it after loading the model: sampling and decoding, every
  face found, aligned and tracked, the crops of the kept tracks scored, the verdict, the table row
  (to a string buffer);
- **the parts** (denominator), each timed on its own:
  - *decode*: ``list(read_frames(video, frames))`` (the sampled frames, decoded sequentially);
  - *faces*: `mclcr_keras.data.tracks.follow_frames` on those decoded frames (detection, landmarks,
    alignment, linking, the dlib scores) and `keep`;
  - *model*: ``scorer.predict`` on the kept tracks' crops, in batches of ``--batch-size``.

Before timing, one untimed predict call per video traces the model's graph and loads dlib, and
the parts' crops and probabilities are checked against predict's own (same crops, same file
probability to 1e-5), so both sides do the same work. Wall and CPU time (the process's, all
threads) are reported, median per contender; the ratio is predict / (decode + faces + model).

    python benchmarks/bench_predict.py                         # FF++ 004.mp4 and 750_743.mp4
    python benchmarks/bench_predict.py --two-people --rounds 5 # + a real|fake side-by-side video
    python benchmarks/bench_predict.py --video clip.mp4 --model runs/ffpp/best.keras
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import common

GOAL = 1.2
FFPP = Path(__file__).resolve().parents[2] / "shared" / "data" / "ffpp_mini"
DEFAULT_VIDEOS = [FFPP / "original_sequences/youtube/c23/videos/004.mp4",
                  FFPP / "manipulated_sequences/Face2Face/c23/videos/750_743.mp4"]
TWO_PEOPLE = [FFPP / "original_sequences/youtube/c23/videos/004.mp4",
              FFPP / "manipulated_sequences/FaceSwap/c23/videos/634_660.mp4"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="predict on a video vs decode + faces + model timed apart (goal <= 1.2).")
    parser.add_argument("--video", action="append", default=None,
                        help="a video to time (repeatable; default: FF++ 004.mp4, 750_743.mp4)")
    parser.add_argument("--two-people", action="store_true",
                        help="also time a video of two people: FF++ 004 (real) beside 634_660 "
                             "(FaceSwap), each 640x360, written to a temporary mp4")
    parser.add_argument("--model", default=None,
                        help="a .keras model (default: a fresh build_mclcr, weights=None)")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="timed interleaved rounds")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    return parser


def compose_two_people(work: str) -> str:
    """FF++ 004 (left) beside 634_660 (right), every frame, 1280x360 mp4v."""
    import cv2
    import numpy as np

    path = os.path.join(work, "two_people.mp4")
    left, right = (cv2.VideoCapture(str(p)) for p in TWO_PEOPLE)
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (1280, 360))
    while True:
        (ok_a, a), (ok_b, b) = left.read(), right.read()
        if not (ok_a and ok_b):
            break
        halves = [cv2.resize(x, (640, 360), interpolation=cv2.INTER_AREA) for x in (a, b)]
        writer.write(np.hstack(halves))
    writer.release()
    return path


def timed(call):
    wall, cpu = time.perf_counter(), time.process_time()
    value = call()
    return value, time.perf_counter() - wall, time.process_time() - cpu


def parts(video: str, options, scorer, aligner):
    """(probability, crops, {part: (wall, cpu)}) of the three parts, each timed alone."""
    import numpy as np

    from mclcr_keras.data.tracks import follow_frames, keep
    from mclcr_keras.data.video import read_frames
    from mclcr_keras.inference.results import aggregate

    frames, *decode = timed(lambda: list(read_frames(video, options.frames)))

    def faces():
        tracks, _ = follow_frames(frames, aligner, size=aligner.size)
        return keep(tracks, max(1, min(options.min_track_frames, len(frames))))

    kept, *face_time = timed(faces)
    crops = np.stack([f.image for t in kept for f in t.items]).astype(np.float32)
    (probabilities, _), *model = timed(lambda: scorer.predict(crops, options.batch_size))
    start, means = 0, []
    for track in kept:
        means.append(float(np.mean(probabilities[start:start + len(track.frames)])))
        start += len(track.frames)
    times = {"decode": tuple(decode), "faces": tuple(face_time), "model": tuple(model)}
    return aggregate(means, options.aggregate), len(crops), times


def measure(video: str, model_path: str, scorer, args) -> dict:
    from mclcr_keras.inference.predict import PredictOptions, aligner_for, predict

    options = PredictOptions([video], model=model_path, frames=args.frames,
                             batch_size=args.batch_size, threshold=0.5)
    aligner = aligner_for(size=int(scorer.image_size), margin=options.margin)

    def run_predict():
        return predict(options, scorer, stream=io.StringIO())[0]

    warm = run_predict()  # traces the graph, loads dlib
    if warm.error:
        raise RuntimeError(f"{video}: {warm.error}")
    probability, crops, _ = parts(video, options, scorer, aligner)
    if crops != warm.frames_scored or abs(probability - warm.probability) > 1e-5:
        raise RuntimeError(f"{video}: the parts scored {crops} crops (p {probability:.6f}), "
                           f"predict {warm.frames_scored} (p {warm.probability:.6f})")
    samples = {name: [] for name in ("predict", "decode", "faces", "model")}
    for round_index in range(args.rounds):
        order = ("predict", "parts") if round_index % 2 == 0 else ("parts", "predict")
        for name in order:
            if name == "predict":
                _, wall, cpu = timed(run_predict)
                samples["predict"].append((wall, cpu))
            else:
                for part, value in parts(video, options, scorer, aligner)[2].items():
                    samples[part].append(value)
    medians = {name: [statistics.median(v[0] for v in values),
                      statistics.median(v[1] for v in values)]
               for name, values in samples.items()}
    total = [sum(medians[p][i] for p in ("decode", "faces", "model")) for i in (0, 1)]
    return {"video": video, "frames_sampled": warm.frames_sampled,
            "faces_found": warm.faces_found, "tracks": f"{warm.tracks_kept}/{warm.tracks_found}",
            "crops_scored": warm.frames_scored, "median_wall_cpu_seconds": medians,
            "parts_wall_cpu_seconds": total,
            "ratio_wall": medians["predict"][0] / total[0],
            "ratio_cpu": medians["predict"][1] / total[1]}


def run(args) -> dict:
    import keras

    from mclcr_keras.inference.predict import load
    from mclcr_keras.models import build_mclcr

    work = tempfile.mkdtemp(prefix="bench_predict_")
    try:
        model_path = args.model
        if model_path is None:
            keras.utils.set_random_seed(0)
            model_path = os.path.join(work, "model.keras")
            build_mclcr(image_size=args.image_size, weights=None, compile=False).save(model_path)
        scorer = load(model_path)
        videos = [str(v) for v in (args.video or DEFAULT_VIDEOS)]
        if args.two_people:
            videos.append(compose_two_people(work))
        results = [measure(video, model_path, scorer, args) for video in videos]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"model": args.model or f"build_mclcr(image_size={args.image_size}, weights=None)",
            "image_size": int(scorer.image_size), "frames": args.frames,
            "batch_size": args.batch_size, "rounds": args.rounds, "goal": GOAL,
            **common.machine(), "videos": results}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    result = run(args)
    print(f"{result['model']}, {result['frames']} frames, batch {result['batch_size']}, "
          f"median of {result['rounds']} interleaved rounds (wall s / CPU s):")
    for entry in result["videos"]:
        m = entry["median_wall_cpu_seconds"]
        cells = "  ".join(f"{k} {m[k][0]:.2f}/{m[k][1]:.2f}" for k in ("decode", "faces", "model"))
        parts_wall, parts_cpu = entry["parts_wall_cpu_seconds"]
        print(f"  {os.path.basename(entry['video'])}: {entry['faces_found']} faces, tracks "
              f"{entry['tracks']}, {entry['crops_scored']} crops | {cells} | sum "
              f"{parts_wall:.2f}/{parts_cpu:.2f} | predict {m['predict'][0]:.2f}/"
              f"{m['predict'][1]:.2f} | ratio {entry['ratio_wall']:.3f} wall, "
              f"{entry['ratio_cpu']:.3f} CPU "
              f"({'meets' if entry['ratio_wall'] <= GOAL else 'misses'} <= {GOAL})")
    return common.finish(result, args.json)


if __name__ == "__main__":
    sys.exit(main())
