"""The main job: `python -m mclcr_keras.demo --quick` runs every stage and leaves valid artifacts.

One quick run (in-process, module fixture) feeds every artifact test; the checks re-open each
artifact with the library's own readers (records pipeline, Keras, tf.saved_model) and compare the
export with the Keras model independently of the demo's own reload check.
"""

import csv
import json
import math
import re

import numpy as np
import pytest

from mclcr_keras import demo

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """Runs the quick demo once; returns (output folder, captured stdout, exit status)."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("demo") / "mclcr_demo"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        status = demo.main(["--out", str(out), "--quick"])
    return out, stdout.getvalue(), status


@pytest.mark.slow
def test_exit_status_stage_headers_and_summary(quick_run):
    out, text, status = quick_run
    assert status == 0, text[-3000:]
    for number in range(1, demo.STAGES + 1):
        assert re.search(rf"=== \[\d+:\d\d elapsed\] stage {number}/{demo.STAGES}: ", text), number
    # Every tool is shown as the command a user would type.
    for module in ("build_records", "train", "evaluate", "export", "predict", "viz"):
        assert f"$ python -m mclcr_keras.{module} " in text, module
    assert ">>> make_demo_folder(" in text
    assert "--weights none" in text and "ImageNet weights would be downloaded" in text
    assert re.search(r"=== demo finished in \d+:\d\d \(wall\), \d+ s CPU ===", text)
    assert f"SavedModel (TF Serving)  {out / 'serving' / 'mclcr' / '1'}" in text


@pytest.mark.slow
def test_demo_json_records_every_stage(quick_run):
    out, _, _ = quick_run
    summary = json.loads((out / "demo.json").read_text())
    assert summary["status"] == "ok"
    assert summary["quick"] is True
    assert summary["settings"]["image_size"] == demo.QUICK.image_size
    assert [s["stage"] for s in summary["stages"]] == list(range(1, demo.STAGES + 1))
    for stage in summary["stages"]:
        assert stage["wall_s"] >= 0 and stage["cpu_s"] >= 0
    assert summary["wall_s"] >= sum(s["wall_s"] for s in summary["stages"]) - 1.0
    assert summary["cpu_s"] > 0


@pytest.mark.slow
def test_records_shards_and_manifest(quick_run):
    from mclcr_keras.data import count_records, list_shards

    out, _, _ = quick_run
    records = out / "records"
    frames = demo.QUICK.videos_per_class * demo.QUICK.frames_per_video
    for split in ("train", "val", "test"):
        assert list_shards(records, split)
        # Every demo frame holds exactly one face (docs/demo_data.md): nothing may be lost.
        assert count_records(records, split) == {"real": frames, "fake": frames}
    with open(records / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 * 2 * frames
    assert {row["split"] for row in rows} == {"train", "val", "test"}
    info = json.loads((records / "dataset.json").read_text())
    assert info["arguments"]["size"] == demo.QUICK.image_size
    assert info["arguments"]["image_format"] == "png"
    assert info["counts"]["totals"]["failed"] == 0


@pytest.mark.slow
def test_training_run_and_best_model(quick_run):
    from mclcr_keras.serving import load_keras_model

    out, _, _ = quick_run
    run = out / "run"
    with open(run / "history.csv", newline="") as handle:
        history = list(csv.DictReader(handle))
    assert len(history) == demo.QUICK.epochs
    assert 0.0 <= float(history[-1]["val_auc"]) <= 1.0
    assert math.isfinite(float(history[-1]["loss"]))
    config = json.loads((run / "config.json").read_text())
    assert config["training"]["weights"] == "none"
    assert config["training"]["image_size"] == demo.QUICK.image_size
    model = load_keras_model(run / "best.keras")
    assert tuple(model.input_shape) == (None, demo.QUICK.image_size, demo.QUICK.image_size, 3)
    size = demo.QUICK.image_size
    probability = model(np.zeros((2, size, size, 3), np.float32))["probability"].numpy()
    assert probability.shape == (2, 1) and np.all((probability >= 0) & (probability <= 1))


@pytest.mark.slow
def test_evaluation_report(quick_run):
    out, _, _ = quick_run
    report = json.loads((out / "eval" / "metrics.json").read_text())
    assert report["split"] == "test"
    result = report["records"]["demo"]
    frames = 2 * demo.QUICK.videos_per_class * demo.QUICK.frames_per_video
    assert result["frame"]["n"] == frames
    assert result["video"]["n_videos"] == 2 * demo.QUICK.videos_per_class
    for level, keys in (("frame", ("acc", "auc", "eer", "ap")), ("video", ("acc", "auc"))):
        for key in keys:
            value = result[level][key]
            assert isinstance(value, float) and 0.0 <= value <= 1.0, (level, key, value)
    with open(out / "eval" / "predictions.csv", newline="") as handle:
        predictions = list(csv.DictReader(handle))
    assert len(predictions) == frames
    # The report's frame AUC is the AUC of the written predictions.
    from sklearn.metrics import roc_auc_score

    labels = [int(row["label"]) for row in predictions]
    scores = [float(row["probability"]) for row in predictions]
    assert roc_auc_score(labels, scores) == pytest.approx(result["frame"]["auc"], abs=1e-9)
    assert (out / "eval" / "roc.png").read_bytes()[:8] == PNG_MAGIC


@pytest.mark.slow
def test_saved_model_has_both_signatures_matching_keras(quick_run):
    import tensorflow as tf

    from mclcr_keras.data import encode_image
    from mclcr_keras.serving import load_keras_model

    out, _, _ = quick_run
    loaded = tf.saved_model.load(str(out / "serving" / "mclcr" / "1"))
    assert {"serving_default", "serving_bytes"} <= set(loaded.signatures)
    rng = np.random.default_rng(0)
    size = demo.QUICK.image_size
    faces = rng.integers(0, 256, (3, size, size, 3), dtype=np.uint8)
    expected = load_keras_model(out / "run" / "best.keras")(
        faces.astype(np.float32))["probability"].numpy().reshape(-1)
    pixels = loaded.signatures["serving_default"](images=tf.constant(faces, tf.float32))
    as_bytes = loaded.signatures["serving_bytes"](
        images_bytes=tf.constant([encode_image(face) for face in faces]))
    for outputs in (pixels, as_bytes):
        assert set(outputs) == {"probability", "logit"}
        np.testing.assert_allclose(outputs["probability"].numpy(), expected, atol=1e-5)


@pytest.mark.slow
def test_predict_report_scores_full_frames(quick_run):
    out, _, _ = quick_run
    report = json.loads((out / "predict" / "predictions.json").read_text())
    expected = [str(p) for p in demo._first_frames(demo.Paths(out), demo.QUICK.predict_per_class)]
    assert [entry["path"] for entry in report["files"]] == expected
    assert report["summary"] == {"files": len(expected), "scored": len(expected), "failed": 0}
    for entry in report["files"]:
        assert entry["status"] == "ok" and entry["faces_found"] == 1
        assert entry["frames_scored"] == 1
        assert 0.0 <= entry["probability"] <= 1.0
        assert entry["label"] == ("FAKE" if entry["probability"] > 0.5 else "REAL")
    assert report["image_size"] == demo.QUICK.image_size


@pytest.mark.slow
def test_figures_written(quick_run):
    out, _, _ = quick_run
    for name in ("fig3_patch_spectra.png", "fig6_feature_maps.png", "fig7_tsne.png"):
        path = out / "figures" / name
        assert path.read_bytes()[:8] == PNG_MAGIC, name
        assert path.stat().st_size > 5000, name


@pytest.mark.slow
def test_second_run_refused_without_overwrite(quick_run, capsys):
    out, _, _ = quick_run
    before = sorted(p.name for p in out.iterdir())
    assert demo.main(["--out", str(out), "--quick"]) == demo.EXIT_ERROR
    error = capsys.readouterr().err
    assert error.startswith("demo: error: ") and "--overwrite" in error and str(out) in error
    assert sorted(p.name for p in out.iterdir()) == before


# --- fast checks of the command line (no stage runs) -----------------------------------------


def test_refuses_a_non_empty_folder_that_is_not_a_demo_run(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    assert demo.main(["--out", str(out), "--quick"]) == demo.EXIT_ERROR
    assert "--overwrite" in capsys.readouterr().err
    assert demo.main(["--out", str(out), "--quick", "--overwrite"]) == demo.EXIT_ERROR
    error = capsys.readouterr().err
    assert f"holds no {demo.MARKER} of a demo run" in error and error.count("\n") == 1
    assert (out / "precious.txt").read_text() == "keep me"


def test_overwrite_replaces_an_earlier_demo_run(tmp_path):
    out = tmp_path / "demo"
    out.mkdir()
    (out / demo.MARKER).write_text("{}")
    (out / "records").mkdir()
    demo.prepare_out(out, overwrite=True)
    assert out.is_dir() and list(out.iterdir()) == []


def test_out_must_not_be_a_file(tmp_path, capsys):
    target = tmp_path / "file.txt"
    target.write_text("x")
    assert demo.main(["--out", str(target)]) == demo.EXIT_ERROR
    assert "is not a directory" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--epochs", "--steps-per-epoch"])
def test_bad_training_length_is_one_line(flag, tmp_path, capsys):
    assert demo.main(["--out", str(tmp_path / "x"), flag, "0"]) == demo.EXIT_ERROR
    error = capsys.readouterr().err
    assert error == f"demo: error: {flag} must be >= 1, got 0\n"
    assert not (tmp_path / "x").exists()


def test_settings_overrides_keep_the_preset():
    args = demo.build_parser().parse_args(["--quick", "--epochs", "3"])
    settings = demo.settings_from_args(args)
    assert settings.epochs == 3
    assert settings.image_size == demo.QUICK.image_size
    assert settings.steps_per_epoch == demo.QUICK.steps_per_epoch
    default = demo.settings_from_args(demo.build_parser().parse_args([]))
    assert default == demo.DEFAULT
    assert default.batch_size % 4 == 0 and default.image_size % 16 == 0


def test_a_failing_stage_is_one_line_and_recorded(tmp_path, monkeypatch, capsys):
    import dataclasses

    # Frames of 100 px are refused by make_demo_folder (>= 128): stage 1 fails at once.
    monkeypatch.setattr(demo, "QUICK", dataclasses.replace(demo.QUICK, frame_size=100))
    out = tmp_path / "demo"
    assert demo.main(["--out", str(out), "--quick"]) == demo.EXIT_FAILED
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert error.startswith("demo: error: ValueError: image_size must be >= 128, got 100")
    assert f"traceback in {out / demo.MARKER}" in error
    summary = json.loads((out / demo.MARKER).read_text())
    assert summary["status"] == "failed"
    assert summary["command"] == f"{demo.PROG} --out {out} --quick"
    assert [s["stage"] for s in summary["stages"]] == [1]
    assert "make_demo_folder" in summary["traceback"]
