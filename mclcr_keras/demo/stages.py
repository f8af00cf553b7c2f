"""The demo's stages, each one library call of the tool a user runs by hand.

Every stage prints the equivalent command line (``$ python -m mclcr_keras.<tool> ...``) and then
calls the library behind that tool in this process (TensorFlow loads once). A stage returns what
``demo.json`` records of it, or raises `StageError`.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from pathlib import Path

from mclcr_keras.demo.paths import Paths
from mclcr_keras.demo.settings import DemoSettings

# Max |difference| of probabilities between the exported SavedModel and the Keras model.
EXPORT_TOLERANCE = 1e-4


class StageError(Exception):
    """A stage of the chain failed; the message says which and why (exit status 1)."""


def announce(tool: str, argv: Sequence[object]) -> str:
    """Prints and returns the command line a user would type for this stage."""
    command = " ".join(["python -m mclcr_keras." + tool, *(shlex.quote(str(a)) for a in argv)])
    print("$ " + command, flush=True)
    return command


def stage_data(paths: Paths, settings: DemoSettings, seed: int) -> dict:
    """Stage 1: the demo frames (real videos from two public-domain photos, SBI fakes)."""
    from mclcr_keras.demo.data import make_demo_folder
    from mclcr_keras.demo.sbi import SelfBlendConfig

    sbi_config = SelfBlendConfig()
    if settings.blend_ratios is not None:
        sbi_config = SelfBlendConfig(blend_ratios=tuple(settings.blend_ratios))
    print(f">>> make_demo_folder({str(paths.faces)!r}, videos_per_class="
          f"{settings.videos_per_class}, frames_per_video={settings.frames_per_video}, "
          f"image_size={settings.frame_size}, seed={seed}, "
          f"sbi_config=SelfBlendConfig(blend_ratios={sbi_config.blend_ratios}))", flush=True)
    make_demo_folder(paths.faces, videos_per_class=settings.videos_per_class,
                     frames_per_video=settings.frames_per_video,
                     image_size=settings.frame_size, seed=seed, sbi_config=sbi_config)
    frames = sorted(paths.faces.glob("*/*/*/*.png"))
    print(f"demo data: {len(frames)} frames of {settings.frame_size} px in {paths.faces}")
    return {"frames": len(frames)}


def stage_records(paths: Paths, settings: DemoSettings) -> dict:
    """Stage 2: dlib detection + alignment of every frame into PNG TFRecords."""
    from mclcr_keras.data.writer import build
    from mclcr_keras.data.writer.options import BuildOptions

    options = BuildOptions("folder", root=str(paths.faces), out=str(paths.records),
                           dataset_name="demo", size=settings.image_size,
                           frames=settings.frames_per_video, image_format="png", quiet=True)
    announce("build_records", ["folder", "--root", options.root, "--out", options.out,
                               "--dataset-name", "demo", "--size", options.size, "--frames",
                               options.frames, "--image-format", "png", "--quiet"])
    info = build.build(options)
    print(build.summary(info, options.out), flush=True)
    if build.failed_inputs(info):
        print(f"warning: some demo videos had no face; see {paths.records / 'failures.csv'}")
    return {"failed_inputs": build.failed_inputs(info), "counts": info.get("counts")}


def stage_train(paths: Paths, settings: DemoSettings, seed: int) -> dict:
    """Stage 3: a short training at reduced size from random weights."""
    import pandas as pd

    from mclcr_keras.training.loop import train
    from mclcr_keras.training.options import TrainConfig

    print("Xception starts from random weights (--weights none): ImageNet weights would be "
          "downloaded by Keras, and this demo runs offline. On your own data use the default "
          "--weights imagenet (or a local .h5 file) and the paper's 256 px, 50 epochs.")
    config = TrainConfig(records=str(paths.records), out=str(paths.run),
                         image_size=settings.image_size, weights="none", epochs=settings.epochs,
                         steps_per_epoch=settings.steps_per_epoch,
                         batch_size=settings.batch_size, learning_rate=settings.learning_rate,
                         seed=seed)
    command = announce("train", [
        "--records", config.records, "--out", config.out, "--image-size", config.image_size,
        "--weights", "none", "--epochs", config.epochs, "--steps-per-epoch",
        config.steps_per_epoch, "--batch-size", config.batch_size, "--learning-rate",
        config.learning_rate, "--seed", seed,
    ])
    train(config, command)
    if not paths.best_model.is_file():
        raise StageError(f"training wrote no {paths.best_model} (validation AUC never finite?)")
    history = pd.read_csv(paths.run / "history.csv")
    best = history.loc[history["val_auc"].idxmax()]
    return {"epochs": len(history), "best_epoch": int(best["epoch"]) + 1,
            "best_val_auc": float(best["val_auc"]),
            "final_train_auc": float(history["auc"].iloc[-1])}


def stage_evaluate(paths: Paths) -> dict:
    """Stage 4: frame and video metrics on the test split with best.keras."""
    from mclcr_keras.evaluation.report import evaluate

    announce("evaluate", ["--model", paths.best_model, "--records", paths.records, "--name",
                          "demo", "--split", "test", "--out", paths.eval])
    report = evaluate(paths.best_model, [paths.records], paths.eval, split="test",
                      names=["demo"])
    (result,) = report["records"].values()
    return {"frame": result["frame"], "video": result["video"]}


def _test_crops(paths: Paths, image_size: int, count: int):
    """The first ``count`` test face crops (uint8), from the records."""
    import numpy as np

    from mclcr_keras.data.pipeline import make_dataset

    images = []
    for images_batch, _ in make_dataset(paths.records, "test", batch_size=count, training=False,
                                        image_size=image_size).take(1):
        images = images_batch.numpy()
    if len(images) == 0:
        raise StageError(f"no test faces in {paths.records}")
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)


def stage_export(paths: Paths, settings: DemoSettings) -> dict:
    """Stage 5: SavedModel for TF Serving, reloaded and compared with the Keras model."""
    from mclcr_keras.inference.export import compare_export, export_model

    announce("export", ["--model", paths.best_model, "--out", paths.serving_base,
                        "--version", 1])
    export_model(paths.best_model, paths.serving_base, 1)
    crops = _test_crops(paths, settings.image_size, 8)
    signatures, differences = compare_export(paths.saved_model, paths.best_model, crops)
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
    from mclcr_keras.inference.predict import PredictOptions, predict, summary

    files = [str(path) for path in _first_frames(paths, settings.predict_per_class)]
    paths.predict_json.parent.mkdir(parents=True, exist_ok=True)
    options = PredictOptions(files, model=str(paths.serving_base), json=str(paths.predict_json))
    announce("predict", ["--model", options.model, "--json", options.json, *files])
    results = predict(options)
    print(summary(results, options), flush=True)
    scored = []
    for result in results:
        truth = "FAKE" if f"{os.sep}fake{os.sep}" in result.path else "REAL"
        scored.append({"file": result.path, "truth": truth, "verdict": result.label,
                       "probability": result.probability})
    correct = sum(s["verdict"] == s["truth"] for s in scored)
    print(f"predict: {correct} of {len(scored)} frames called correctly (truth from the folder)")
    return {"failed": sum(r.error is not None for r in results), "files": scored,
            "correct": correct}


def _spectra_pair(paths: Paths, seed: int) -> tuple[Path, Path]:
    """A real test frame and its self-blended fake (same pixels outside the blend mask)."""
    import cv2
    import numpy as np

    from mclcr_keras.data.faces import FaceAligner
    from mclcr_keras.data.video import read_image
    from mclcr_keras.demo.sbi import SelfBlendConfig, self_blend

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
    from mclcr_keras.models.saving import model_image_size
    from mclcr_keras.viz import (
        align_faces,
        load_model,
        plot_feature_maps,
        plot_patch_spectra,
        plot_tsne,
        read_rgb,
    )

    paths.figures.mkdir(parents=True, exist_ok=True)
    real, fake = _spectra_pair(paths, seed)
    figures = {
        "spectra": paths.figures / "fig3_patch_spectra.png",
        "features": paths.figures / "fig6_feature_maps.png",
        "tsne": paths.figures / "fig7_tsne.png",
    }
    announce("viz", ["spectra", "--real", real, "--fake", fake, "--align", "--image-size",
                     settings.spectra_size, "--names", "real", "self-blended", "--out",
                     figures["spectra"]])
    plot_patch_spectra(read_rgb(real), read_rgb(fake), figures["spectra"], align=True,
                       image_size=settings.spectra_size, names=("real", "self-blended"))
    faces = _first_frames(paths, settings.figure_faces_per_class)
    titles = ["real"] * settings.figure_faces_per_class + ["fake"] * settings.figure_faces_per_class
    announce("viz", ["features", "--model", paths.best_model, "--images", *faces, "--titles",
                     *titles, "--align", "--out", figures["features"]])
    model = load_model(paths.best_model)
    crops = align_faces([read_rgb(face) for face in faces], [str(f) for f in faces],
                        model_image_size(model))
    plot_feature_maps(model, crops, figures["features"], titles=titles)
    announce("viz", ["tsne", "--model", paths.best_model, "--records", paths.records, "--split",
                     "test", "--max-points", settings.tsne_points, "--seed", seed, "--out",
                     figures["tsne"]])
    plot_tsne(model, paths.records, figures["tsne"], split="test",
              max_points=settings.tsne_points, random_state=seed)
    return {name: str(path) for name, path in figures.items()}
