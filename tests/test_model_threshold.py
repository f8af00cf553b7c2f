"""The validation threshold a model carries: the ``.keras`` sidecar training writes, read by the
scorer, used by `predict` by default and copied into an export's metadata.

The sidecar is written here by hand, as the documented JSON (`docs/training.md`), so these tests
do not depend on the code that writes it in training (checked in tests/test_train_cli.py).
"""

import hashlib
import json
import logging
import shutil

import cv2
import numpy as np
import pytest

from mclcr_keras import cli, predict

SIZE = 64


def _sidecar(model_path, value, content=None):
    digest = hashlib.sha256(content or model_path.read_bytes()).hexdigest()
    record = {"value": value, "criterion": "eer", "split": "val", "checkpoint":
              "checkpoints/epoch-0002.keras", "epoch": 2, "val_auc": 0.9, "model": "best.keras",
              "sha256": digest}
    path = model_path.with_name("best.threshold.json")
    path.write_text(json.dumps(record))
    return record


@pytest.fixture(scope="module")
def run_model(tiny_model_path, tmp_path_factory):
    """A run folder's best.keras (the shared tiny model) and the model's probability of a crop."""
    import keras

    import mclcr_keras.models.mclcr  # noqa: F401  (registers the classes)

    run = tmp_path_factory.mktemp("run")
    best = run / "best.keras"
    shutil.copy(tiny_model_path, best)
    crop = np.random.default_rng(4).integers(0, 256, (SIZE, SIZE, 3), np.uint8)
    path = run / "crop.png"
    cv2.imwrite(str(path), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
    model = keras.models.load_model(best, compile=False)
    probability = float(np.asarray(model(crop[None].astype(np.float32),
                                          training=False)["probability"])[0, 0])
    return best, path, probability


def _predict(argv, capsys):
    status = predict.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured


def test_predict_calls_files_with_the_models_validation_threshold(run_model, tmp_path, capsys):
    best, crop, probability = run_model
    # Thresholds just above and just below the crop's probability flip the verdict.
    for value, verdict in ((probability + 1e-4, "REAL"), (probability - 1e-4, "FAKE")):
        record = _sidecar(best, value)
        out = tmp_path / f"{verdict}.json"
        status, captured = _predict(["--model", best, "--crop", "none", "--json", out, crop],
                                    capsys)
        assert status == cli.EXIT_OK, captured.err
        report = json.loads(out.read_text())
        assert report["threshold"] == pytest.approx(value)
        assert report["threshold_source"] == {"from": "model", "criterion": "eer",
                                              "split": "val", "checkpoint": record["checkpoint"],
                                              "epoch": 2}
        assert report["files"][0]["label"] == verdict
    # --threshold overrides the model's.
    out = tmp_path / "override.json"
    status, captured = _predict(["--model", best, "--crop", "none", "--threshold", "0.0",
                                 "--json", out, crop], capsys)
    report = json.loads(out.read_text())
    assert (report["threshold"], report["threshold_source"]) == (0.0, {"from": "--threshold"})
    assert report["files"][0]["label"] == "FAKE"


def test_a_sidecar_of_other_model_bytes_is_ignored(run_model, tmp_path, capsys, caplog):
    best, crop, _ = run_model
    _sidecar(best, 0.01, content=b"the weights of another epoch")
    out = tmp_path / "stale.json"
    with caplog.at_level(logging.WARNING, logger="mclcr_keras"):
        status, captured = _predict(["--model", best, "--crop", "none", "--json", out, crop],
                                    capsys)
    assert status == cli.EXIT_OK, captured.err
    report = json.loads(out.read_text())
    assert (report["threshold"], report["threshold_source"]) == (0.5, {"from": "default"})
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "belongs to other model bytes" in messages
    assert "carries no validation threshold" in messages


def test_export_carries_the_threshold_and_predict_uses_it(run_model, tmp_path, capsys):
    from mclcr_keras.inference.export import export_model
    from mclcr_keras.inference.scorer import METADATA_FILE, load_scorer

    best, crop, probability = run_model
    record = _sidecar(best, probability - 1e-4)
    target = export_model(best, tmp_path / "serving")
    metadata = json.loads((target / METADATA_FILE).read_text())
    assert metadata["threshold"] == record
    assert load_scorer(tmp_path / "serving").threshold == record
    out = tmp_path / "served.json"
    status, captured = _predict(["--model", tmp_path / "serving", "--crop", "none", "--json",
                                 out, crop], capsys)
    assert status == cli.EXIT_OK, captured.err
    report = json.loads(out.read_text())
    assert report["threshold"] == pytest.approx(record["value"])
    assert report["threshold_source"]["from"] == "model"
    assert report["files"][0]["label"] == "FAKE"
    assert report["files"][0]["probability"] == pytest.approx(probability, abs=1e-5)
