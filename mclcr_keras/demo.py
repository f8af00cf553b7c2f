"""The whole MC-LCR chain end to end on a small built-in dataset, with no download.

    python -m mclcr_keras.demo                      # ./mclcr_demo, ~5 min on 2 CPU cores
    python -m mclcr_keras.demo --out /tmp/demo --overwrite
    python -m mclcr_keras.demo --quick              # a tiny version of every stage (tests)

Stages, each through the same command-line tool a user runs by hand (the demo prints each
command before running it in-process):

1. demo data: real face "videos" made from the public-domain photos shipped with matplotlib and
   scikit-image, and self-blended fakes (``python -m mclcr_keras.demo_data``);
2. records: face detection, alignment and sharding (``python -m mclcr_keras.build_records``);
3. training at reduced size from random weights (``python -m mclcr_keras.train``);
4. evaluation on the test split (``python -m mclcr_keras.evaluate``);
5. export for TF Serving, then the SavedModel is reloaded and both signatures are compared with
   the Keras model (``python -m mclcr_keras.export``);
6. prediction on full demo frames, so faces are detected (``python -m mclcr_keras.predict``);
7. the paper's figures (``python -m mclcr_keras.viz``; skip with ``--skip-figures``);
8. a summary: where every artifact is, the metrics, the time of each stage.

Output folder ``--out`` (default ``./mclcr_demo``)::

    demo.json        settings, stage timings, metrics, artifact paths (written at start and end)
    faces/           demo frames (OUT/<split>/<real|fake>/<video>/<frame>.png)
    records/         TFRecords: <split>/<real|fake>-*.tfrecord, manifest.csv, dataset.json
    run/             config.json, history.csv, best.keras, last.keras, logs/
    eval/            metrics.json, predictions.csv, roc.png
    serving/mclcr/1/ SavedModel (signatures serving_default and serving_bytes)
    predict/         predictions.json
    figures/         fig3_patch_spectra.png, fig6_feature_maps.png, fig7_tsne.png

An existing, non-empty ``--out`` is refused; ``--overwrite`` replaces it, but only when it holds
the ``demo.json`` of an earlier demo run (no other folder is ever deleted). ImageNet weights are
not used: Keras would download them, and the demo must run offline; see ``docs/demo.md`` for what
this small run can and cannot show.

Exit status: 0 every stage passed; 1 a stage failed (its message says which); 2 bad arguments or
an ``--out`` folder in the way.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import resource
import shlex
import shutil
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

PROG = "python -m mclcr_keras.demo"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_ERROR = 2
MARKER = "demo.json"
STAGES = 8
# Max |difference| of probabilities between the exported SavedModel and the Keras model.
EXPORT_TOLERANCE = 1e-4


@dataclasses.dataclass(frozen=True)
class DemoSettings:
    """Sizes of one demo run.

    Attributes:
        videos_per_class: demo videos per class and split (train, val and test alike).
        frames_per_video: frames per demo video.
        frame_size: side of the demo frames (full frames; the face is 30-42% of it).
        image_size: side of the face crops in the records, and of the model's input.
        epochs: training epochs.
        steps_per_epoch: training batches per epoch.
        batch_size: training batch (half real, half fake; a multiple of 4).
        learning_rate: AdamW learning rate.
        predict_per_class: test videos per class whose first frame goes through ``predict``.
        figure_faces_per_class: faces per class in the feature-map figure.
        tsne_points: at most this many test faces in the t-SNE figure.
        spectra_size: side of the aligned crops of the spectra figure.
        blend_ratios: opacities of the self-blended fakes (`SelfBlendConfig.blend_ratios`);
            ``None`` keeps the SBI defaults (0.25, 0.5, 0.75, 1, 1, 1).
    """

    videos_per_class: int
    frames_per_video: int
    frame_size: int
    image_size: int
    epochs: int
    steps_per_epoch: int
    batch_size: int
    learning_rate: float
    predict_per_class: int
    figure_faces_per_class: int
    tsne_points: int
    spectra_size: int
    blend_ratios: tuple[float, ...] | None = None


DEFAULT = DemoSettings(
    videos_per_class=24,
    frames_per_video=2,
    frame_size=320,
    image_size=96,
    epochs=8,
    steps_per_epoch=10,
    batch_size=16,
    learning_rate=1e-3,
    predict_per_class=2,
    figure_faces_per_class=2,
    tsne_points=200,
    spectra_size=256,
    # Fully opaque blends: random-init training of 80 steps learns them (test AUC ~0.85-0.9,
    # docs/demo.md); with the SBI mix of 0.25-1 opacities it reaches ~0.65-0.7.
    blend_ratios=(1.0,),
)

QUICK = DemoSettings(
    videos_per_class=2,
    frames_per_video=2,
    frame_size=192,
    image_size=64,
    epochs=1,
    steps_per_epoch=2,
    batch_size=8,
    learning_rate=1e-3,
    predict_per_class=1,
    figure_faces_per_class=1,
    tsne_points=40,
    spectra_size=128,
)


class StageError(Exception):
    """A stage of the chain failed; the message says which and why (exit status 1)."""


class UsageError(Exception):
    """Bad arguments or an output folder in the way (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block), exit status 2."""

    def error(self, message: str):
        self.exit(EXIT_ERROR, f"demo: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description=(
            "Run the whole MC-LCR chain on a small dataset made at run time from the public-"
            "domain face photos shipped with matplotlib and scikit-image (fakes: self-blended "
            "images): demo data -> build_records -> train -> evaluate -> export (TF Serving) -> "
            "predict -> figures. No download; about 5 minutes on 2 CPU cores."
        ),
        epilog=(
            "Exit status: 0 all stages passed; 1 a stage failed; 2 bad arguments or --out in "
            "the way. Details: docs/demo.md."
        ),
    )
    parser.add_argument("--out", default="mclcr_demo", metavar="DIR",
                        help="output folder (default: ./mclcr_demo); must be new or empty")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace --out if it holds an earlier demo run (its demo.json)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny version of every stage (64 px, 1 epoch of 2 steps; ~1 min): "
                             "checks the chain, learns nothing")
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"training epochs (default: {DEFAULT.epochs}, --quick "
                             f"{QUICK.epochs})")
    parser.add_argument("--steps-per-epoch", type=int, default=None,
                        help=f"training batches per epoch (default: {DEFAULT.steps_per_epoch}, "
                             f"--quick {QUICK.steps_per_epoch})")
    parser.add_argument("--skip-figures", action="store_true",
                        help="skip stage 7 (the paper's figures)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the demo data and of training (default: 0)")
    return parser


# ------------------------------------------------------------------------------ bookkeeping


def _cpu_seconds() -> float:
    """CPU time (user + system) of this process and of its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes:d}:{seconds:02d}"


class Timeline:
    """Stage headers with the elapsed time, and per-stage wall and CPU seconds."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self.start_wall = time.perf_counter()
        self.start_cpu = _cpu_seconds()
        self.stages: list[dict] = []
        self._open: dict | None = None

    def elapsed(self) -> float:
        return time.perf_counter() - self.start_wall

    def cpu(self) -> float:
        return _cpu_seconds() - self.start_cpu

    def begin(self, number: int, title: str) -> None:
        self.end()
        self._open = {"stage": number, "title": title, "wall_start": self.elapsed(),
                      "cpu_start": self.cpu()}
        print(f"\n=== [{_clock(self.elapsed())} elapsed] stage {number}/{STAGES}: {title} ===",
              file=self.stream, flush=True)

    def end(self) -> None:
        if self._open is None:
            return
        stage = self._open
        stage["wall_s"] = round(self.elapsed() - stage.pop("wall_start"), 2)
        stage["cpu_s"] = round(self.cpu() - stage.pop("cpu_start"), 2)
        self.stages.append(stage)
        self._open = None


def _run_tool(module: str, main: Callable[[list[str]], int], argv: Sequence[str],
              accept: Sequence[int] = (0,)) -> int:
    """Prints the command, runs ``main(argv)`` in this process, checks its exit status."""
    print("$ python -m " + module + " " + " ".join(shlex.quote(str(a)) for a in argv), flush=True)
    try:
        status = main([str(a) for a in argv])
    except SystemExit as exit_:  # argparse inside a tool
        status = exit_.code if isinstance(exit_.code, int) else 1
    sys.stdout.flush()
    if status not in accept:
        raise StageError(f"python -m {module} exited with status {status} (see its message above)")
    return status


def _write_json(path: Path, data: dict) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(temporary, path)


def prepare_out(out: Path, overwrite: bool) -> None:
    """Creates ``out``, or empties an earlier demo run there with ``overwrite``.

    Raises:
        UsageError: ``out`` is a file, or a non-empty folder that may not be replaced.
    """
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise UsageError(
                f"--out {out} exists and is not empty; pass --overwrite to replace an earlier "
                "demo run there, or choose another --out"
            )
        if not (out / MARKER).is_file():
            raise UsageError(
                f"--out {out} is not empty and holds no {MARKER} of a demo run; --overwrite only "
                "replaces demo output, so choose another --out"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


# ------------------------------------------------------------------------------ stages


@dataclasses.dataclass
class Paths:
    """Where each artifact of a demo run lives (all under ``root``)."""

    root: Path

    @property
    def faces(self) -> Path:
        return self.root / "faces"

    @property
    def records(self) -> Path:
        return self.root / "records"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def best_model(self) -> Path:
        return self.run / "best.keras"

    @property
    def eval(self) -> Path:
        return self.root / "eval"

    @property
    def serving_base(self) -> Path:
        return self.root / "serving" / "mclcr"

    @property
    def saved_model(self) -> Path:
        return self.serving_base / "1"

    @property
    def predict_json(self) -> Path:
        return self.root / "predict" / "predictions.json"

    @property
    def figures(self) -> Path:
        return self.root / "figures"


def stage_data(paths: Paths, settings: DemoSettings, seed: int) -> dict:
    """Stage 1: the demo frames (real videos from two public-domain photos, SBI fakes)."""
    from mclcr_keras import demo_data
    from mclcr_keras.data.sbi import SelfBlendConfig

    sbi_config = SelfBlendConfig()
    if settings.blend_ratios is not None:
        sbi_config = SelfBlendConfig(blend_ratios=tuple(settings.blend_ratios))
    print(f">>> make_demo_folder({str(paths.faces)!r}, videos_per_class="
          f"{settings.videos_per_class}, frames_per_video={settings.frames_per_video}, "
          f"image_size={settings.frame_size}, seed={seed}, "
          f"sbi_config=SelfBlendConfig(blend_ratios={sbi_config.blend_ratios}))", flush=True)
    demo_data.make_demo_folder(paths.faces, videos_per_class=settings.videos_per_class,
                               frames_per_video=settings.frames_per_video,
                               image_size=settings.frame_size, seed=seed, sbi_config=sbi_config)
    frames = sorted(paths.faces.glob("*/*/*/*.png"))
    print(f"demo data: {len(frames)} frames of {settings.frame_size} px in {paths.faces}")
    return {"frames": len(frames)}


def stage_records(paths: Paths, settings: DemoSettings) -> dict:
    """Stage 2: dlib detection + alignment of every frame into PNG TFRecords."""
    from mclcr_keras import build_records

    status = _run_tool("mclcr_keras.build_records", build_records.main, [
        "folder", "--root", paths.faces, "--out", paths.records, "--dataset-name", "demo",
        "--size", settings.image_size, "--frames", settings.frames_per_video,
        "--image-format", "png", "--quiet",
    ], accept=(build_records.EXIT_OK, build_records.EXIT_FAILED_INPUTS))
    info = json.loads((paths.records / "dataset.json").read_text())
    if status == build_records.EXIT_FAILED_INPUTS:
        print(f"warning: some demo videos had no face; see {paths.records / 'failures.csv'}")
    return {"exit_status": status, "counts": info.get("counts")}


def stage_train(paths: Paths, settings: DemoSettings, seed: int) -> dict:
    """Stage 3: a short training at reduced size from random weights."""
    import pandas as pd

    from mclcr_keras import train

    print("Xception starts from random weights (--weights none): ImageNet weights would be "
          "downloaded by Keras, and this demo runs offline. On your own data use the default "
          "--weights imagenet (or a local .h5 file) and the paper's 256 px, 50 epochs.")
    _run_tool("mclcr_keras.train", train.main, [
        "--records", paths.records, "--out", paths.run, "--image-size", settings.image_size,
        "--weights", "none", "--epochs", settings.epochs,
        "--steps-per-epoch", settings.steps_per_epoch, "--batch-size", settings.batch_size,
        "--learning-rate", settings.learning_rate, "--seed", seed,
    ])
    if not paths.best_model.is_file():
        raise StageError(f"training wrote no {paths.best_model} (validation AUC never finite?)")
    history = pd.read_csv(paths.run / "history.csv")
    best = history.loc[history["val_auc"].idxmax()]
    return {"epochs": len(history), "best_epoch": int(best["epoch"]) + 1,
            "best_val_auc": float(best["val_auc"]),
            "final_train_auc": float(history["auc"].iloc[-1])}


def stage_evaluate(paths: Paths) -> dict:
    """Stage 4: frame and video metrics on the test split with best.keras."""
    from mclcr_keras import evaluate

    _run_tool("mclcr_keras.evaluate", evaluate.main, [
        "--model", paths.best_model, "--records", paths.records, "--name", "demo",
        "--split", "test", "--out", paths.eval,
    ])
    report = json.loads((paths.eval / "metrics.json").read_text())
    (result,) = report["records"].values()
    return {"frame": result["frame"], "video": result["video"]}


def _test_crops(paths: Paths, image_size: int, count: int):
    """The first ``count`` test face crops (uint8) and their PNG bytes, from the records."""
    import numpy as np

    from mclcr_keras.data import make_dataset, schema
    from mclcr_keras.data.pipeline import list_shards

    images = []
    for images_batch, _ in make_dataset(paths.records, "test", batch_size=count, training=False,
                                        image_size=image_size).take(1):
        images = images_batch.numpy()
    if len(images) == 0:
        raise StageError(f"no test faces in {paths.records}: {list_shards(paths.records, 'test')}")
    crops = np.clip(np.rint(images), 0, 255).astype(np.uint8)
    encoded = [schema.encode_image(crop) for crop in crops]
    return crops, encoded


def stage_export(paths: Paths, settings: DemoSettings) -> dict:
    """Stage 5: SavedModel for TF Serving, reloaded and compared with the Keras model."""
    import numpy as np
    import tensorflow as tf

    from mclcr_keras import export, serving

    _run_tool("mclcr_keras.export", export.main, [
        "--model", paths.best_model, "--out", paths.serving_base, "--version", 1,
    ])
    crops, encoded = _test_crops(paths, settings.image_size, 8)
    keras_probability, _ = serving.load_scorer(paths.best_model).predict(crops)
    loaded = tf.saved_model.load(str(paths.saved_model))
    signatures = sorted(loaded.signatures.keys())
    pixels = loaded.signatures[serving.PIXELS_SIGNATURE](
        **{serving.PIXELS_INPUT: tf.constant(crops, tf.float32)})
    as_bytes = loaded.signatures[serving.BYTES_SIGNATURE](
        **{serving.BYTES_INPUT: tf.constant(encoded)})
    differences = {
        name: float(np.max(np.abs(outputs["probability"].numpy() - keras_probability)))
        for name, outputs in ((serving.PIXELS_SIGNATURE, pixels),
                              (serving.BYTES_SIGNATURE, as_bytes))
    }
    for name, difference in differences.items():
        print(f"reload check: {name} vs best.keras on {len(crops)} test faces: "
              f"max |probability difference| = {difference:.2e}")
        if not difference <= EXPORT_TOLERANCE:
            raise StageError(f"the exported {name} signature differs from the Keras model by "
                             f"{difference:.2e} (> {EXPORT_TOLERANCE:g})")
    return {"signatures": signatures, "max_abs_difference": differences}


def _first_frames(paths: Paths, per_class: int) -> list[Path]:
    """The first frame of the first ``per_class`` test videos of each class (full frames)."""
    chosen = []
    for label in ("real", "fake"):
        videos = sorted(p for p in (paths.faces / "test" / label).iterdir() if p.is_dir())
        chosen += [sorted(video.glob("*.png"))[0] for video in videos[:per_class]]
    return chosen


def stage_predict(paths: Paths, settings: DemoSettings) -> dict:
    """Stage 6: face detection + scoring of full frames with the exported SavedModel."""
    from mclcr_keras import predict

    files = _first_frames(paths, settings.predict_per_class)
    paths.predict_json.parent.mkdir(parents=True, exist_ok=True)
    status = _run_tool("mclcr_keras.predict", predict.main, [
        "--model", paths.serving_base, "--json", paths.predict_json, *files,
    ], accept=(predict.EXIT_OK, predict.EXIT_FAILED_INPUTS))
    report = json.loads(paths.predict_json.read_text())
    scored = []
    for entry in report["files"]:
        truth = "FAKE" if f"{os.sep}fake{os.sep}" in entry["path"] else "REAL"
        scored.append({"file": entry["path"], "truth": truth, "verdict": entry["label"],
                       "probability": entry["probability"]})
    correct = sum(s["verdict"] == s["truth"] for s in scored)
    print(f"predict: {correct} of {len(scored)} frames called correctly (truth from the folder)")
    return {"exit_status": status, "files": scored, "correct": correct}


def _spectra_pair(paths: Paths, seed: int) -> tuple[Path, Path]:
    """A real test frame and its self-blended fake (same pixels outside the blend mask)."""
    import cv2
    import numpy as np

    from mclcr_keras.data.faces import FaceAligner
    from mclcr_keras.data.sbi import SelfBlendConfig, self_blend
    from mclcr_keras.data.video import read_image

    real_path = _first_frames(paths, 1)[0]
    real = read_image(real_path)
    aligner = FaceAligner()
    boxes = aligner.detect(real)
    if not boxes:
        raise StageError(f"no face found in {real_path} for the spectra figure")
    landmarks = aligner.landmarks(real, boxes[0], points=68)
    # A fully opaque blend (ratio 1) so the residual shows the whole manipulated region.
    fake, _ = self_blend(real, landmarks, np.random.default_rng(seed),
                         SelfBlendConfig(blend_ratios=(1.0,)))
    out = paths.figures
    pair = (out / "pair_real.png", out / "pair_fake_sbi.png")
    for path, rgb in zip(pair, (real, fake)):
        if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise StageError(f"could not write {path}")
    return pair


def stage_figures(paths: Paths, settings: DemoSettings, seed: int) -> dict:
    """Stage 7: Fig. 3 (patch spectra), Fig. 6 (feature maps), Fig. 7 (t-SNE of F_E)."""
    from mclcr_keras.viz.__main__ import main as viz_main

    paths.figures.mkdir(parents=True, exist_ok=True)
    real, fake = _spectra_pair(paths, seed)
    figures = {
        "spectra": paths.figures / "fig3_patch_spectra.png",
        "features": paths.figures / "fig6_feature_maps.png",
        "tsne": paths.figures / "fig7_tsne.png",
    }
    _run_tool("mclcr_keras.viz", viz_main, [
        "spectra", "--real", real, "--fake", fake, "--align", "--image-size",
        settings.spectra_size, "--names", "real", "self-blended", "--out", figures["spectra"],
    ])
    faces = _first_frames(paths, settings.figure_faces_per_class)
    titles = ["real"] * settings.figure_faces_per_class + ["fake"] * settings.figure_faces_per_class
    _run_tool("mclcr_keras.viz", viz_main, [
        "features", "--model", paths.best_model, "--images", *faces, "--titles", *titles,
        "--align", "--out", figures["features"],
    ])
    _run_tool("mclcr_keras.viz", viz_main, [
        "tsne", "--model", paths.best_model, "--records", paths.records, "--split", "test",
        "--max-points", settings.tsne_points, "--seed", seed, "--out", figures["tsne"],
    ])
    return {name: str(path) for name, path in figures.items()}


# ------------------------------------------------------------------------------ summary


def _metric(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def print_summary(paths: Paths, results: dict, timeline: Timeline, stream=None) -> None:
    """The artifacts, the key metrics and the time of each stage."""
    stream = stream or sys.stdout
    root = paths.root
    lines = [f"\n=== demo finished in {_clock(timeline.elapsed())} (wall), "
             f"{timeline.cpu():.0f} s CPU ==="]
    artifacts = [
        ("demo frames", paths.faces),
        ("records", paths.records),
        ("training run", paths.run),
        ("best model", paths.best_model),
        ("test metrics", paths.eval / "metrics.json"),
        ("test predictions", paths.eval / "predictions.csv"),
        ("ROC curve", paths.eval / "roc.png"),
        ("SavedModel (TF Serving)", paths.saved_model),
        ("predict report", paths.predict_json),
    ]
    if "figures" in results:
        artifacts += [(f"figure: {name}", Path(path)) for name, path in
                      results["figures"].items()]
    artifacts.append(("this summary", root / MARKER))
    width = max(len(name) for name, _ in artifacts)
    lines.append("Artifacts:")
    lines += [f"  {name:<{width}}  {path}" for name, path in artifacts]
    train, evaluation = results.get("train", {}), results.get("evaluate", {})
    frame, video = evaluation.get("frame", {}), evaluation.get("video", {})
    lines.append("Metrics (test split, best.keras; random init, short training, two identities: "
                 "a smoke test, not a benchmark):")
    lines.append(f"  training: {train.get('epochs')} epochs, best val AUC "
                 f"{_metric(train.get('best_val_auc'))} (epoch {train.get('best_epoch')})")
    lines.append(f"  frame: AUC {_metric(frame.get('auc'))}  ACC {_metric(frame.get('acc'))}  "
                 f"EER {_metric(frame.get('eer'))}  AP {_metric(frame.get('ap'))}  "
                 f"({frame.get('n')} faces)")
    lines.append(f"  video: AUC {_metric(video.get('auc'))}  ACC {_metric(video.get('acc'))}  "
                 f"({video.get('n_videos')} videos)")
    if "predict" in results:
        lines.append(f"  predict: {results['predict']['correct']} of "
                     f"{len(results['predict']['files'])} full frames called correctly")
    lines.append("Time per stage (wall / CPU seconds):")
    lines += [f"  {s['stage']}. {s['title']:<56} {s['wall_s']:7.1f} / {s['cpu_s']:7.1f}"
              for s in timeline.stages]
    print("\n".join(lines), file=stream, flush=True)


# ------------------------------------------------------------------------------ entry point


def run(out: Path, settings: DemoSettings, *, seed: int = 0, figures: bool = True,
        quick: bool = False, argv: Sequence[str] = ()) -> dict:
    """Runs every stage into ``out`` (already prepared) and returns the summary dict.

    Args:
        out: output folder (see `prepare_out`).
        settings: sizes of the run (`DEFAULT`, `QUICK` or a variant).
        seed: seed of the demo data, the training and the figures.
        figures: run stage 7.
        quick: recorded in ``demo.json``.
        argv: the command-line arguments, recorded in ``demo.json``.

    Raises:
        StageError: a tool exited with an unexpected status or a check failed.
    """
    timeline = Timeline()
    paths = Paths(out)
    summary = {"status": "running", "quick": quick, "seed": seed,
               "settings": dataclasses.asdict(settings), "out": str(out.resolve()),
               "command": " ".join([PROG, *map(shlex.quote, map(str, argv))])}
    _write_json(out / MARKER, summary)
    results: dict = {}
    steps = [
        ("demo data (public-domain photos + self-blended fakes)",
         "data", lambda: stage_data(paths, settings, seed)),
        (f"build_records (dlib faces -> {settings.image_size} px PNG TFRecords)",
         "records", lambda: stage_records(paths, settings)),
        (f"train ({settings.epochs} x {settings.steps_per_epoch} steps, {settings.image_size} px)",
         "train", lambda: stage_train(paths, settings, seed)),
        ("evaluate on the test split", "evaluate", lambda: stage_evaluate(paths)),
        ("export SavedModel + reload check", "export", lambda: stage_export(paths, settings)),
        ("predict on full demo frames", "predict", lambda: stage_predict(paths, settings)),
    ]
    if figures:
        steps.append(("figures (Fig. 3, 6, 7)", "figures",
                      lambda: stage_figures(paths, settings, seed)))
    try:
        for number, (title, key, action) in enumerate(steps, start=1):
            timeline.begin(number, title)
            results[key] = action()
        if not figures:
            timeline.begin(7, "figures: skipped (--skip-figures)")
        timeline.begin(STAGES, "summary")
        timeline.end()
    except BaseException as error:
        timeline.end()
        summary.update(status="failed", results=results, stages=timeline.stages,
                       wall_s=round(timeline.elapsed(), 1), cpu_s=round(timeline.cpu(), 1),
                       error=f"{type(error).__name__}: {error}",
                       traceback=traceback.format_exc())
        _write_json(out / MARKER, summary)
        raise
    summary.update(status="ok", results=results, stages=timeline.stages,
                   wall_s=round(timeline.elapsed(), 1), cpu_s=round(timeline.cpu(), 1))
    _write_json(out / MARKER, summary)
    print_summary(paths, results, timeline)
    return summary


def settings_from_args(args: argparse.Namespace) -> DemoSettings:
    """The preset (``--quick`` or the default) with the command-line overrides.

    Raises:
        UsageError: a non-positive ``--epochs`` / ``--steps-per-epoch``.
    """
    settings = QUICK if args.quick else DEFAULT
    for name in ("epochs", "steps_per_epoch"):
        value = getattr(args, name)
        if value is None:
            continue
        if value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
        settings = dataclasses.replace(settings, **{name: value})
    return settings


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m mclcr_keras.demo``; returns the exit status.

    Example:
        >>> main(["--out", "/tmp/mclcr_demo", "--quick"])  # doctest: +SKIP
        0
    """
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if not logging.getLogger().handlers:
        # INFO for this package only (as the training CLI does); TensorFlow's stay quiet.
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("mclcr_keras").setLevel(logging.INFO)
    try:
        settings = settings_from_args(args)
        out = Path(args.out)
        prepare_out(out, args.overwrite)
    except UsageError as error:
        print(f"demo: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    print(f"MC-LCR demo into {out.resolve()} ({'quick' if args.quick else 'default'} settings; "
          "nothing is downloaded)", flush=True)
    try:
        run(out, settings, seed=args.seed, figures=not args.skip_figures, quick=args.quick,
            argv=sys.argv[1:] if argv is None else argv)
    except StageError as error:
        print(f"demo: error: {error}; partial results in {out}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as error:  # a bug or a broken install: one line here, the traceback saved
        first = (str(error).strip().splitlines() or [""])[0]
        print(f"demo: error: {type(error).__name__}: {first} (traceback in {out / MARKER}); "
              f"partial results in {out}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"demo: interrupted; rerun with --overwrite to start again in {out}",
              file=sys.stderr)
        return 130
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
