"""Batch scoring on Beam against predict on the same files, side by side in one run (goal <= 1.5).

Both contenders are the full command a user runs, each in a fresh process (TensorFlow import,
model load, and for Beam the pipeline and its worker processes included), in interleaved rounds
(the order alternates every round; median per contender):

- **predict** (denominator): ``python -m mclcr_keras.predict --model EXPORT FILES...
  --json-lines OUT`` (the local engine: one process, file after file);
- **beam** (numerator): the same with ``--engine beam --workers W`` (Beam's local runner, W SDK
  worker processes, ``RunInference``).

Before timing, the two outputs are compared: the same lines, every probability and logit to
1e-5. Wall time and the CPU time of the process and all its children are reported.

Files: the seven FF++ c23 videos of ../shared/data/ffpp_mini (640x480 to 1920x1080), each
listed ``--copies`` times under distinct names (hard links, so that more files can be timed
without more data), 30 frames each; the model: a fresh 256 px MC-LCR (weights=None) exported to
a temporary SavedModel, or ``--model``.

    python benchmarks/bench_beam_scoring.py                       # 7 videos, 2 rounds
    python benchmarks/bench_beam_scoring.py --copies 2 --rounds 3 # 14 files
    python benchmarks/bench_beam_scoring.py --model serving/mclcr --files 'clips/*.mp4'
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common

GOAL = 1.5
FFPP = Path(__file__).resolve().parents[2] / "shared" / "data" / "ffpp_mini"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="predict --engine beam vs predict on the same files (goal <= 1.5).")
    parser.add_argument("--files", action="append", default=None,
                        help="a file or glob to score (repeatable; default: the FF++ videos)")
    parser.add_argument("--copies", type=int, default=1,
                        help="list every file this many times, under distinct names")
    parser.add_argument("--model", default=None,
                        help="an export or .keras model (default: a fresh build_mclcr, "
                             "weights=None, exported)")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--rounds", type=int, default=2, help="timed interleaved rounds")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    return parser


def export_model(work: str, image_size: int) -> str:
    import keras

    from mclcr_keras import export
    from mclcr_keras.models import build_mclcr

    keras.utils.set_random_seed(0)
    model = os.path.join(work, "model.keras")
    build_mclcr(image_size=image_size, weights=None, compile=False).save(model)
    base = os.path.join(work, "serving")
    if export.main(["--model", model, "--out", base]) != 0:
        raise RuntimeError("export failed")
    return base


def input_files(work: str, patterns, copies: int) -> list[str]:
    found = sorted({p for pattern in patterns for p in glob.glob(pattern, recursive=True)})
    if not found:
        raise SystemExit(f"no file to score (looked for {patterns}); see --files")
    files = []
    for copy in range(copies):
        folder = os.path.join(work, "inputs", str(copy))
        os.makedirs(folder, exist_ok=True)
        for path in found:
            target = os.path.join(folder, os.path.basename(path))
            try:
                os.link(path, target)
            except OSError:
                shutil.copyfile(path, target)
            files.append(target)
    return files


def command(engine: str, model: str, files, out: str, args) -> list[str]:
    argv = [sys.executable, "-m", "mclcr_keras.predict", "--model", model, "--frames",
            str(args.frames), "--batch-size", str(args.batch_size), "--json-lines", out]
    if engine == "beam":
        argv += ["--engine", "beam", "--workers", str(args.workers)]
    return argv + list(files)


def timed(argv) -> tuple[float, float]:
    """(wall, CPU) seconds of a command and its children; exit status 0 or 3 (some failed)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 3):
        raise RuntimeError(f"{' '.join(argv[:6])} ... exited {done.returncode}: "
                           f"{done.stderr.strip().splitlines()[-1:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def compare(local: str, beam: str) -> dict:
    """The two outputs: same lines (paths, statuses, labels); the largest float difference."""
    def read(path):
        with open(path, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle]

    lines = read(local), read(beam)
    if [(e["path"], e["status"], e["label"]) for e in lines[0]] != \
            [(e["path"], e["status"], e["label"]) for e in lines[1]]:
        raise RuntimeError("predict and Beam disagree on the files, statuses or labels")
    worst = 0.0
    for a, b in zip(*lines):
        for x, y in zip(a["frame_scores"], b["frame_scores"]):
            worst = max(worst, abs(x["probability"] - y["probability"]),
                        abs(x["logit"] - y["logit"]))
    if worst > 1e-5:
        raise RuntimeError(f"scores differ by {worst:.2e} > 1e-5")
    return {"files": len(lines[0]), "scored": sum(e["status"] == "ok" for e in lines[0]),
            "crops": sum(e["frames_scored"] for e in lines[0]), "max_difference": worst}


def run(args) -> dict:
    work = tempfile.mkdtemp(prefix="bench_beam_")
    try:
        model = args.model or export_model(work, args.image_size)
        patterns = args.files or [str(FFPP / "**" / "*.mp4")]
        files = input_files(work, patterns, args.copies)
        outs = {e: os.path.join(work, f"{e}.jsonl") for e in ("predict", "beam")}
        argvs = {e: command("beam" if e == "beam" else "local", model, files, outs[e], args)
                 for e in outs}
        samples = {e: [] for e in outs}
        for index in range(args.rounds):
            order = ("predict", "beam") if index % 2 == 0 else ("beam", "predict")
            for engine in order:
                samples[engine].append(timed(argvs[engine]))
                print(f"round {index + 1} {engine}: {samples[engine][-1][0]:.1f} s wall",
                      flush=True)
            checked = compare(outs["predict"], outs["beam"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    medians = {e: [statistics.median(s[0] for s in v), statistics.median(s[1] for s in v)]
               for e, v in samples.items()}
    return {"model": args.model or f"build_mclcr(image_size={args.image_size}, weights=None), "
                                   "exported", "frames": args.frames,
            "batch_size": args.batch_size, "workers": args.workers, "rounds": args.rounds,
            "inputs": patterns, "copies": args.copies, **checked, "goal": GOAL,
            "median_wall_cpu_seconds": medians, "samples": samples,
            "ratio_wall": medians["beam"][0] / medians["predict"][0],
            "ratio_cpu": medians["beam"][1] / medians["predict"][1],
            **common.machine()}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    result = run(args)
    m = result["median_wall_cpu_seconds"]
    print(f"{result['model']}; {result['files']} files ({result['scored']} scored, "
          f"{result['crops']} crops), {result['frames']} frames, batch {result['batch_size']}, "
          f"{result['workers']} Beam workers; median of {result['rounds']} interleaved rounds:")
    print(f"  predict {m['predict'][0]:.1f} s wall / {m['predict'][1]:.1f} s CPU | beam "
          f"{m['beam'][0]:.1f} s wall / {m['beam'][1]:.1f} s CPU | ratio beam/predict "
          f"{result['ratio_wall']:.3f} wall, {result['ratio_cpu']:.3f} CPU "
          f"({'meets' if result['ratio_wall'] <= GOAL else 'misses'} <= {GOAL}); outputs "
          f"equal to {result['max_difference']:.1e}")
    return common.finish(result, args.json)


if __name__ == "__main__":
    sys.exit(main())
