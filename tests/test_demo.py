"""The main job: `python -m mclcr_keras.demo --quick` runs every stage and leaves valid artifacts.

One quick run (in-process, module fixture) feeds every artifact test. Each number the demo
reports is recomputed here from the artifacts it wrote, with independent readers (OpenCV, pandas,
scikit-learn, tf.data, Keras, tf.saved_model): frame counts from the files on disk, metrics from
predictions.csv, stage times against the run's total, the export and the predict scores against
the Keras model.
"""

import csv
import json
import math
import re
import time

import cv2
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from mclcr_keras import cli
from mclcr_keras.demo import runner, settings, stages
from mclcr_keras.demo.__main__ import build_parser, main
from mclcr_keras.demo.paths import MARKER, Paths
from mclcr_keras.demo.settings import DEFAULT, QUICK, choose_settings

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FRAMES_PER_SPLIT_CLASS = QUICK.videos_per_class * QUICK.frames_per_video


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """Runs the quick demo once: (output folder, stdout, exit status, wall seconds of main)."""
    import contextlib
    import io

    import tensorflow  # noqa: F401  (imported before the clock starts, as in a long session)

    out = tmp_path_factory.mktemp("demo") / "mclcr_demo"
    stdout = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(stdout):
        status = main(["--out", str(out), "--quick"])
    return out, stdout.getvalue(), status, time.perf_counter() - start


@pytest.fixture(scope="module")
def summary(quick_run):
    out, text, status, _ = quick_run
    assert status == 0, text[-3000:]
    return json.loads((out / MARKER).read_text())


@pytest.fixture(scope="module")
def best_model(quick_run):
    import keras

    import mclcr_keras.models.mclcr  # noqa: F401  (registers the custom classes)

    return keras.models.load_model(quick_run[0] / "run" / "best.keras", compile=False)


def _eer(labels, scores) -> float:
    """FPR where FPR = FNR, by interpolation along scikit-learn's ROC."""
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    return float(np.interp(0.0, fpr - (1.0 - tpr), fpr))


@pytest.mark.slow
def test_exit_status_stage_headers_and_summary(quick_run):
    out, text, status, _ = quick_run
    assert status == 0, text[-3000:]
    headers = re.findall(rf"=== \[\d+:\d\d elapsed\] stage (\d+)/{runner.STAGES}: ", text)
    assert headers == [str(n) for n in range(1, runner.STAGES + 1)]
    # Every tool is shown as the command a user would type.
    for module in ("build_records", "train", "evaluate", "export", "predict", "viz"):
        assert f"$ python -m mclcr_keras.{module} " in text, module
    assert ">>> make_demo_folder(" in text
    assert "--weights none" in text and "ImageNet weights would be downloaded" in text
    assert re.search(r"=== demo finished in \d+:\d\d \(wall\), \d+ s CPU ===", text)
    assert f"SavedModel (TF Serving)  {out / 'serving' / 'mclcr' / '1'}" in text


@pytest.mark.slow
def test_stage_times_add_up_to_the_run(quick_run, summary):
    *_, measured = quick_run
    assert summary["status"] == "ok" and summary["quick"] is True
    assert summary["settings"]["image_size"] == QUICK.image_size
    stages_ = summary["stages"]
    assert [s["stage"] for s in stages_] == list(range(1, runner.STAGES + 1))
    # Stages 1-7 each do work; 8 (the summary) is closed at once, before it is printed.
    assert all(s["wall_s"] > 0.05 for s in stages_[:7]), stages_
    assert stages_[7]["wall_s"] < 0.5
    # Back to back: the stage times make up the run, which is main() less its set-up.
    assert sum(s["wall_s"] for s in stages_) == pytest.approx(summary["wall_s"], abs=0.5)
    # demo.json rounds to 0.1 s
    assert -0.1 <= measured - summary["wall_s"] < 2.0, (measured, summary["wall_s"])
    assert sum(s["cpu_s"] for s in stages_) == pytest.approx(summary["cpu_s"], abs=1.0)
    assert summary["command"] == f"{runner.PROG} --out {quick_run[0]} --quick"


@pytest.mark.slow
def test_frames_records_and_manifest_count_the_same_faces(quick_run, summary):
    from mclcr_keras.data import count_records, list_shards

    out = quick_run[0]
    frames = sorted((out / "faces").glob("*/*/*/*.png"))
    assert len(frames) == 3 * 2 * FRAMES_PER_SPLIT_CLASS
    assert summary["results"]["data"]["frames"] == len(frames)
    records = out / "records"
    for split in ("train", "val", "test"):
        assert list_shards(records, split)
        on_disk = {label: len(list((out / "faces" / split / label).glob("*/*.png")))
                   for label in ("real", "fake")}
        # Every demo frame holds exactly one face (docs/demo_data.md): nothing may be lost.
        assert count_records(records, split) == on_disk == {"real": FRAMES_PER_SPLIT_CLASS,
                                                            "fake": FRAMES_PER_SPLIT_CLASS}
    with open(records / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(frames)
    assert {row["split"] for row in rows} == {"train", "val", "test"}
    info = json.loads((records / "dataset.json").read_text())
    assert info["arguments"]["size"] == QUICK.image_size
    assert info["arguments"]["image_format"] == "png"
    assert info["counts"]["totals"]["failed"] == 0
    assert summary["results"]["records"]["failed_inputs"] == 0
    assert summary["results"]["records"]["counts"] == info["counts"]


@pytest.mark.slow
def test_training_run_and_its_summary(quick_run, summary, best_model):
    run = quick_run[0] / "run"
    history = pd.read_csv(run / "history.csv")
    assert len(history) == QUICK.epochs
    assert math.isfinite(float(history["loss"].iloc[-1]))
    train = summary["results"]["train"]
    best = int(history["val_auc"].idxmax())
    assert train["epochs"] == len(history)
    assert train["best_epoch"] == int(history["epoch"].iloc[best]) + 1
    assert train["best_val_auc"] == pytest.approx(float(history["val_auc"].iloc[best]))
    assert train["final_train_auc"] == pytest.approx(float(history["auc"].iloc[-1]))
    config = json.loads((run / "config.json").read_text())
    assert config["training"]["weights"] == "none"
    assert config["training"]["image_size"] == QUICK.image_size
    size = QUICK.image_size
    assert tuple(best_model.input_shape) == (None, size, size, 3)


@pytest.mark.slow
def test_evaluation_metrics_are_those_of_the_predictions(quick_run, summary, best_model):
    import tensorflow as tf

    from mclcr_keras.data import decode_image, list_shards, parse_example

    out = quick_run[0]
    report = json.loads((out / "eval" / "metrics.json").read_text())
    assert report["split"] == "test"
    result = report["records"]["demo"]
    predictions = pd.read_csv(out / "eval" / "predictions.csv", dtype={"video_id": str})
    assert len(predictions) == result["frame"]["n"] == 2 * FRAMES_PER_SPLIT_CLASS
    assert not predictions.duplicated(["label", "video_id", "frame_index"]).any()
    y, p = predictions["label"].to_numpy(), predictions["probability"].to_numpy()
    frame = result["frame"]
    assert frame["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert frame["ap"] == pytest.approx(average_precision_score(y, p), abs=1e-12)
    threshold = report["threshold"]["value"]  # chosen on the demo's val split
    assert report["threshold"]["split"] == "val"
    assert frame["acc"] == pytest.approx(np.mean((p > threshold) == y), abs=1e-12)
    assert frame["acc_at_0.5"] == pytest.approx(np.mean((p > 0.5) == y), abs=1e-12)
    assert frame["eer"] == pytest.approx(_eer(y, p), abs=1e-9)
    videos = predictions.groupby(["dataset", "method", "video_id"]).agg(
        label=("label", "first"), probability=("probability", "mean"))
    assert result["video"]["n_videos"] == len(videos) == 2 * QUICK.videos_per_class
    assert result["video"]["auc"] == pytest.approx(
        roc_auc_score(videos["label"], videos["probability"]), abs=1e-12)
    # demo.json and the printed summary carry the very numbers of metrics.json.
    assert summary["results"]["evaluate"] == {"frame": frame, "video": result["video"]}
    assert f"frame: AUC {frame['auc']:.3f}  ACC {frame['acc']:.3f}" in quick_run[1]

    # predictions.csv holds best.keras's scores of the test records (read without the pipeline).
    scores = {}
    for path in list_shards(out / "records", "test"):
        for raw in tf.data.TFRecordDataset(path):
            feats = parse_example(raw)
            image = decode_image(feats["image"]).numpy().astype(np.float32)[None]
            key = (int(feats["label"]), feats["video_id"].numpy().decode(),
                   int(feats["frame_index"]))
            scores[key] = float(best_model(image, training=False)["probability"].numpy().ravel()[0])
    for row in predictions.itertuples():
        key = (row.label, row.video_id, row.frame_index)
        assert row.probability == pytest.approx(scores[key], abs=1e-5)
    assert (out / "eval" / "roc.png").read_bytes()[:8] == PNG_MAGIC


@pytest.mark.slow
def test_saved_model_has_both_signatures_matching_keras(quick_run, summary, best_model):
    import tensorflow as tf

    from mclcr_keras.data import encode_image

    out = quick_run[0]
    loaded = tf.saved_model.load(str(out / "serving" / "mclcr" / "1"))
    assert {"serving_default", "serving_bytes"} <= set(loaded.signatures)
    rng = np.random.default_rng(0)
    size = QUICK.image_size
    faces = rng.integers(0, 256, (3, size, size, 3), dtype=np.uint8)
    expected = best_model(faces.astype(np.float32))["probability"].numpy().reshape(-1)
    pixels = loaded.signatures["serving_default"](images=tf.constant(faces, tf.float32))
    as_bytes = loaded.signatures["serving_bytes"](
        images_bytes=tf.constant([encode_image(face) for face in faces]))
    for outputs in (pixels, as_bytes):
        assert set(outputs) == {"probability", "logit"}
        np.testing.assert_allclose(outputs["probability"].numpy(), expected, atol=1e-5)
    export = summary["results"]["export"]
    assert export["signatures"] == ["serving_bytes", "serving_default"]
    assert sorted(export["max_abs_difference"]) == export["signatures"]
    assert all(d <= stages.EXPORT_TOLERANCE for d in export["max_abs_difference"].values())


@pytest.mark.slow
def test_predict_scores_the_faces_of_full_frames(quick_run, summary, best_model):
    from mclcr_keras.data.faces import FaceAligner

    out = quick_run[0]
    report = json.loads((out / "predict" / "predictions.json").read_text())
    files = sorted((out / "faces" / "test" / "real").glob("*/*.png"))[:1] + \
        sorted((out / "faces" / "test" / "fake").glob("*/*.png"))[:1]
    assert QUICK.predict_per_class == 1  # the first frame of the first test video per class
    assert [entry["path"] for entry in report["files"]] == [str(f) for f in files]
    assert report["summary"] == {"files": 2, "scored": 2, "failed": 0}
    assert report["image_size"] == QUICK.image_size
    # The export carries the EER threshold training chose on val for best.keras.
    sidecar = json.loads((out / "run" / "best.threshold.json").read_text())
    threshold = report["threshold"]
    assert threshold == pytest.approx(sidecar["value"])
    assert (report["threshold_source"]["from"], report["threshold_source"]["split"]) == (
        "model", "val")
    aligner = FaceAligner(size=QUICK.image_size)
    for entry, path in zip(report["files"], files):
        face = aligner(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB))
        expected = best_model(face.image[None].astype(np.float32))["probability"].numpy()
        assert entry["status"] == "ok" and entry["faces_found"] == entry["frames_scored"] == 1
        assert entry["frame_scores"][0]["box"] == [int(v) for v in face.box]
        assert entry["probability"] == pytest.approx(float(expected.ravel()[0]), abs=1e-5)
        # Called at the validation threshold training stored beside best.keras.
        assert entry["label"] == ("FAKE" if entry["probability"] > threshold else "REAL")
    results = summary["results"]["predict"]
    truths = ["REAL", "FAKE"]
    assert [f["truth"] for f in results["files"]] == truths
    assert results["failed"] == 0
    assert results["correct"] == sum(e["label"] == t for e, t in zip(report["files"], truths))


@pytest.mark.slow
def test_figures_written(quick_run, summary):
    out = quick_run[0]
    figures = summary["results"]["figures"]
    assert figures == {"spectra": str(out / "figures" / "fig3_patch_spectra.png"),
                       "features": str(out / "figures" / "fig6_feature_maps.png"),
                       "tsne": str(out / "figures" / "fig7_tsne.png")}
    shapes = {}
    for name, path in figures.items():
        assert open(path, "rb").read(8) == PNG_MAGIC, name
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        assert 0.01 < np.mean(image.min(axis=2) < 200) < 0.95, name  # drawn, not blank
        shapes[name] = image.shape[:2]
    assert shapes["tsne"] == (round(6.4 * 150), round(8.2 * 150))  # the figure's size at 150 dpi


@pytest.mark.slow
def test_second_run_refused_without_overwrite(quick_run, capsys):
    out = quick_run[0]
    before = sorted(p.name for p in out.iterdir())
    assert main(["--out", str(out), "--quick"]) == cli.EXIT_USAGE
    error = capsys.readouterr().err
    assert error.startswith("demo: error: ") and "--overwrite" in error and str(out) in error
    assert sorted(p.name for p in out.iterdir()) == before


# --- fast checks of the command line (no stage runs) -----------------------------------------


def test_refuses_a_non_empty_folder_that_is_not_a_demo_run(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    assert main(["--out", str(out), "--quick"]) == cli.EXIT_USAGE
    assert "--overwrite" in capsys.readouterr().err
    assert main(["--out", str(out), "--quick", "--overwrite"]) == cli.EXIT_USAGE
    error = capsys.readouterr().err
    assert f"holds no {MARKER} of a demo run" in error and error.count("\n") == 1
    assert (out / "precious.txt").read_text() == "keep me"


def test_overwrite_replaces_an_earlier_demo_run(tmp_path):
    out = tmp_path / "demo"
    out.mkdir()
    (out / MARKER).write_text("{}")
    (out / "records").mkdir()
    runner.prepare_out(out, overwrite=True)
    assert out.is_dir() and list(out.iterdir()) == []


def test_out_must_not_be_a_file(tmp_path, capsys):
    target = tmp_path / "file.txt"
    target.write_text("x")
    assert main(["--out", str(target)]) == cli.EXIT_USAGE
    assert capsys.readouterr().err == f"demo: error: --out {target} exists and is not a directory\n"


@pytest.mark.parametrize("flag", ["--epochs", "--steps-per-epoch"])
def test_bad_training_length_is_one_line(flag, tmp_path, capsys):
    assert main(["--out", str(tmp_path / "x"), flag, "0"]) == cli.EXIT_USAGE
    error = capsys.readouterr().err
    assert error == f"demo: error: {flag} must be >= 1, got 0\n"
    assert not (tmp_path / "x").exists()


def test_settings_overrides_keep_the_preset():
    args = build_parser().parse_args(["--quick", "--epochs", "3"])
    chosen = choose_settings(args.quick, args.epochs, args.steps_per_epoch)
    assert chosen.epochs == 3
    assert chosen.image_size == QUICK.image_size == 64
    assert chosen.steps_per_epoch == QUICK.steps_per_epoch
    default = choose_settings()
    assert default == DEFAULT and choose_settings(steps_per_epoch=4).steps_per_epoch == 4
    assert default.batch_size % 4 == 0 and default.image_size % 16 == 0


def test_paths_of_a_demo_run(tmp_path):
    paths = Paths(tmp_path)
    assert paths.best_model == tmp_path / "run" / "best.keras"
    assert paths.saved_model == tmp_path / "serving" / "mclcr" / "1"
    assert paths.predict_json == tmp_path / "predict" / "predictions.json"


def test_a_failing_stage_is_one_line_and_recorded(tmp_path, monkeypatch, capsys):
    import dataclasses

    # Frames of 100 px are refused by make_demo_folder (>= 128): stage 1 fails at once.
    monkeypatch.setattr(settings, "QUICK", dataclasses.replace(QUICK, frame_size=100))
    out = tmp_path / "demo"
    assert main(["--out", str(out), "--quick"]) == cli.EXIT_FAILED
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert error.startswith("demo: error: ValueError: image_size must be >= 128, got 100")
    assert f"traceback in {out / MARKER}" in error
    recorded = json.loads((out / MARKER).read_text())
    assert recorded["status"] == "failed"
    assert recorded["command"] == f"{runner.PROG} --out {out} --quick"
    assert [s["stage"] for s in recorded["stages"]] == [1]
    assert "make_demo_folder" in recorded["traceback"]
