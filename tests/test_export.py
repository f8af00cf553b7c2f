"""python -m mclcr_keras.export: TF Serving layout, both signatures against the Keras model,
saved_model_cli, the documented REST request, versions and errors; both scorers of
`serving.load_scorer` (the .keras file and the export) against the model, and the export
evaluated by `python -m mclcr_keras.evaluate`. One export per module: it is the costly part."""

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from mclcr_keras import evaluate, export, serving
from mclcr_keras.data import schema
from mclcr_keras.models import build_mclcr

SIZE = 64
DOCS = Path(__file__).resolve().parents[1] / "docs" / "serving.md"
SAVED_MODEL_CLI = Path(sys.executable).with_name("saved_model_cli")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One export of a tiny model into a base that already holds version 3 and a non-version."""
    keras.utils.set_random_seed(1)
    model = build_mclcr(image_size=SIZE, weights=None, compile=False)
    model_path = tmp_path_factory.mktemp("model") / "tiny.keras"
    model.save(model_path)
    base = tmp_path_factory.mktemp("serving") / "mclcr"
    (base / "3").mkdir(parents=True)  # an incomplete older version still takes its number
    (base / "notes").mkdir()
    status = export.main(["--model", str(model_path), "--out", str(base)])
    assert status == 0
    return {"model": model, "model_path": model_path, "base": base, "target": base / "4"}


@pytest.fixture(scope="module")
def loaded(exported):
    return tf.saved_model.load(str(exported["target"]))


def _keras_outputs(model, pixels):
    outputs = model(tf.constant(pixels, tf.float32), training=False)
    return outputs["probability"].numpy().ravel(), outputs["logit"].numpy().ravel()


@pytest.mark.slow
def test_layout_is_model_base_slash_next_version(exported):
    base, target = exported["base"], exported["target"]
    assert (target / "saved_model.pb").is_file() and (target / "variables").is_dir()
    assert sorted(p.name for p in base.iterdir()) == ["3", "4", "notes"]  # no staging left over
    metadata = json.loads((target / export.METADATA_FILE).read_text())
    assert metadata["image_size"] == SIZE and metadata["version"] == 4
    assert metadata["model_config"]["image_size"] == SIZE
    assert serving.saved_model_versions(base) == [4]  # 3/ holds no SavedModel


@pytest.mark.slow
def test_pixel_signature_matches_keras(exported, loaded):
    signature = loaded.signatures["serving_default"]
    images = np.random.default_rng(0).uniform(0, 255, (5, SIZE, SIZE, 3)).astype(np.float32)
    outputs = signature(images=tf.constant(images))
    assert sorted(outputs) == ["logit", "probability"]
    for value in outputs.values():
        assert value.dtype == tf.float32 and value.shape == (5,)
    probability, logit = _keras_outputs(exported["model"], images)
    np.testing.assert_allclose(outputs["probability"].numpy(), probability, atol=1e-5)
    np.testing.assert_allclose(outputs["logit"].numpy(), logit, atol=1e-5)
    np.testing.assert_allclose(outputs["probability"].numpy(), 1 / (1 + np.exp(-logit)),
                               atol=1e-6)
    # The endpoint is also a method of the loaded object (what Keras' ExportArchive documents).
    again = loaded.serving_default(tf.constant(images[:2]))
    np.testing.assert_allclose(again["logit"].numpy(), logit[:2], atol=1e-5)


@pytest.mark.slow
def test_bytes_signature_matches_keras_on_the_decoded_pixels(exported, loaded):
    rng = np.random.default_rng(1)
    crops = rng.integers(0, 256, (4, SIZE, SIZE, 3), dtype=np.uint8)
    encoded = [schema.encode_image(crop) for crop in crops]
    outputs = loaded.signatures["serving_bytes"](images_bytes=tf.constant(encoded))
    assert outputs["probability"].shape == (4,) and outputs["logit"].dtype == tf.float32
    probability, logit = _keras_outputs(exported["model"], crops.astype(np.float32))
    np.testing.assert_allclose(outputs["probability"].numpy(), probability, atol=1e-5)
    np.testing.assert_allclose(outputs["logit"].numpy(), logit, atol=1e-5)


@pytest.mark.slow
def test_bytes_signature_decodes_jpeg_and_resizes_other_sizes(exported, loaded):
    rng = np.random.default_rng(2)
    big = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    jpeg = schema.encode_image(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8), "jpeg")
    png = schema.encode_image(big)
    outputs = loaded.signatures["serving_bytes"](images_bytes=tf.constant([png, jpeg]))
    resized = tf.clip_by_value(tf.image.resize(big, (SIZE, SIZE), antialias=True), 0, 255)
    reference = np.stack([resized.numpy(), tf.io.decode_jpeg(jpeg).numpy().astype(np.float32)])
    probability, logit = _keras_outputs(exported["model"], reference)
    np.testing.assert_allclose(outputs["logit"].numpy(), logit, atol=1e-5)
    np.testing.assert_allclose(outputs["probability"].numpy(), probability, atol=1e-5)


@pytest.mark.slow
def test_bytes_signature_rejects_non_images(loaded):
    with pytest.raises(tf.errors.InvalidArgumentError, match="(?i)unknown image file format"):
        loaded.signatures["serving_bytes"](images_bytes=tf.constant([b"not an image"]))


@pytest.mark.slow
def test_saved_model_cli_lists_both_signatures(exported):
    shown = subprocess.run(
        [str(SAVED_MODEL_CLI), "show", "--dir", str(exported["target"]), "--all"],
        capture_output=True, text=True, check=True, timeout=300,
    ).stdout
    blocks = dict(re.findall(r"signature_def\['(\w+)'\]:\n(.*?)Method name is", shown, re.S))
    assert {"serving_default", "serving_bytes"} <= set(blocks)
    pixels, encoded = blocks["serving_default"], blocks["serving_bytes"]
    assert re.search(r"inputs\['images'\] tensor_info:\s+dtype: DT_FLOAT\s+shape: "
                     rf"\(-1, {SIZE}, {SIZE}, 3\)", pixels)
    assert re.search(r"inputs\['images_bytes'\] tensor_info:\s+dtype: DT_STRING\s+shape: \(-1\)",
                     encoded)
    for block in (pixels, encoded):
        for name in ("probability", "logit"):
            assert re.search(rf"outputs\['{name}'\] tensor_info:\s+dtype: DT_FLOAT\s+"
                             r"shape: \(-1\)", block)


def _documented_snippet() -> str:
    """The Python block of docs/serving.md that writes the REST request (kept runnable)."""
    text = DOCS.read_text()
    match = re.search(r"<!-- make_request.py -->\s*```python\n(.*?)```", text, re.S)
    assert match, "docs/serving.md lacks the make_request.py snippet"
    return match.group(1)


def _tf_serving_predict(loaded, body: dict) -> dict:
    """TF Serving's REST predict, row ("instances") format, as documented for
    /v1/models/<name>:predict: a {"b64": ...} value becomes the decoded bytes, instances are
    stacked on a new batch axis, each instance names every input of the signature, and a
    signature with several outputs answers one object per instance."""
    signature = loaded.signatures[body.get("signature_name", "serving_default")]
    specs = signature.structured_input_signature[1]
    columns = {name: [] for name in specs}
    for instance in body["instances"]:
        assert set(instance) == set(specs), (sorted(instance), sorted(specs))
        for name, value in instance.items():
            if isinstance(value, dict):
                assert list(value) == ["b64"] and name.endswith("_bytes")
                value = base64.b64decode(value["b64"])
            columns[name].append(value)
    inputs = {name: tf.constant(values, dtype=specs[name].dtype)
              for name, values in columns.items()}
    outputs = {k: v.numpy().tolist() for k, v in signature(**inputs).items()}
    return {"predictions": [dict(zip(outputs, row)) for row in zip(*outputs.values())]}


@pytest.mark.slow
def test_documented_rest_request_works_against_the_export(exported, loaded, tmp_path):
    rng = np.random.default_rng(3)
    crops = rng.integers(0, 256, (2, SIZE, SIZE, 3), dtype=np.uint8)
    paths = []
    for index, crop in enumerate(crops):
        path = tmp_path / f"face{index}.png"
        path.write_bytes(schema.encode_image(crop))
        paths.append(str(path))
    script = tmp_path / "make_request.py"
    script.write_text(_documented_snippet())
    subprocess.run([sys.executable, str(script), *paths], cwd=tmp_path, check=True, timeout=60)
    body = json.loads((tmp_path / "request.json").read_text())
    assert body["signature_name"] == serving.BYTES_SIGNATURE
    assert all(list(instance) == [serving.BYTES_INPUT] for instance in body["instances"])

    response = _tf_serving_predict(loaded, body)
    probability, logit = _keras_outputs(exported["model"], crops.astype(np.float32))
    assert [sorted(row) for row in response["predictions"]] == [["logit", "probability"]] * 2
    np.testing.assert_allclose([r["probability"] for r in response["predictions"]], probability,
                               atol=1e-5)
    np.testing.assert_allclose([r["logit"] for r in response["predictions"]], logit, atol=1e-5)


@pytest.mark.slow
def test_existing_version_is_never_overwritten(exported, capsys):
    before = sorted(p.name for p in exported["target"].iterdir())
    status = export.main(["--model", str(exported["model_path"]), "--out", str(exported["base"]),
                          "--version", "4"])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("export: error: ") and "exists" in err and str(exported["target"]) in err
    assert len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in exported["target"].iterdir()) == before


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "{tmp}/missing.keras"], "export: error: model not found: {tmp}/missing.keras"),
        (["--model", "{tmp}/missing.keras", "--version", "0"],
         "export: error: version must be a positive integer, got 0"),
        (["--model", "{tmp}/model.txt"], "export: error: expected a Keras model file (.keras)"),
    ],
)
def test_errors_are_one_line(argv, message, tmp_path, capsys):
    (tmp_path / "model.txt").write_text("not a model")
    argv = [arg.format(tmp=tmp_path) for arg in argv]
    status = export.main(argv + ["--out", str(tmp_path / "serving" / "mclcr")])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith(message.format(tmp=tmp_path)), err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "serving" / "mclcr" / "1").exists()


def test_next_version(tmp_path):
    base = tmp_path / "mclcr"
    assert export.next_version(base) == 1  # missing base
    for name in ("1", "2", "10", "latest", "007x"):
        (base / name).mkdir(parents=True)
    (base / "99").write_text("a file, not a version")
    assert export.next_version(base) == 11
    os.rmdir(base / "10")
    assert export.next_version(base) == 3


@pytest.mark.slow
def test_load_scorer_serves_the_export_like_the_keras_model(exported):
    """The scorer evaluate/predict use, on the model base: the highest complete version."""
    scorer = serving.load_scorer(exported["base"])
    assert isinstance(scorer, serving.SavedModelScorer)
    assert scorer.path == str(exported["target"])  # 3/ holds no SavedModel
    assert serving.find_saved_model(exported["target"]) == exported["target"]
    assert (scorer.kind, scorer.image_size) == ("saved_model", SIZE)
    crops = np.random.default_rng(4).integers(0, 256, (5, SIZE, SIZE, 3), dtype=np.uint8)
    probability, logit = scorer.predict(crops, batch_size=2)
    assert probability.shape == (5,) and logit.dtype == np.float32
    expected_probability, expected_logit = _keras_outputs(exported["model"], crops)
    np.testing.assert_allclose(probability, expected_probability, atol=1e-5)
    np.testing.assert_allclose(logit, expected_logit, atol=1e-5)


@pytest.mark.slow
def test_evaluate_accepts_the_exported_saved_model(exported, tmp_path):
    crops = np.random.default_rng(5).integers(0, 256, (8, SIZE, SIZE, 3), dtype=np.uint8)
    split_dir = tmp_path / "records" / "test"
    split_dir.mkdir(parents=True)
    for label, name in enumerate(schema.LABEL_NAMES):
        with tf.io.TFRecordWriter(str(split_dir / schema.shard_name(name, 0, 1))) as writer:
            for index in range(4):
                writer.write(schema.encode_example(
                    schema.encode_image(crops[4 * label + index]), label, f"{name}{index // 2}",
                    "original" if label == 0 else "SBI", "demo", index % 2,
                ))
    status = evaluate.main(["--model", str(exported["target"]), "--records",
                            str(tmp_path / "records"), "--out", str(tmp_path / "eval")])
    assert status == 0
    predictions = pd.read_csv(tmp_path / "eval" / "predictions.csv")
    expected, _ = _keras_outputs(exported["model"], crops)  # order: real shard, fake shard
    np.testing.assert_allclose(predictions["probability"], expected, atol=1e-5)
    assert predictions["label"].tolist() == [0] * 4 + [1] * 4
    report = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert report["model_format"] == "saved_model" and report["image_size"] == SIZE
    assert report["records"]["records"]["video"]["n_videos"] == 4


@pytest.fixture(scope="module")
def keras_scorer(exported):
    return serving.load_scorer(exported["model_path"])


@pytest.mark.slow
def test_keras_scorer_matches_the_model(exported, keras_scorer):
    scorer = keras_scorer
    assert isinstance(scorer, serving.KerasScorer)
    assert (scorer.kind, scorer.image_size) == ("keras", SIZE)
    crops = np.random.default_rng(6).integers(0, 256, (7, SIZE, SIZE, 3), dtype=np.uint8)
    probability, logit = scorer.predict(crops, batch_size=3)  # 3 + 3 + 1: one trace for all
    assert probability.shape == logit.shape == (7,) and probability.dtype == np.float32
    expected_probability, expected_logit = _keras_outputs(exported["model"], crops)
    np.testing.assert_allclose(probability, expected_probability, atol=1e-5)
    np.testing.assert_allclose(logit, expected_logit, atol=1e-5)
    again, _ = scorer.predict(tf.constant(crops.astype(np.float32)))
    np.testing.assert_allclose(again, probability, atol=1e-6)


@pytest.mark.slow
def test_predict_checks_shapes_and_batch_size(keras_scorer):
    scorer = keras_scorer
    with pytest.raises(ValueError, match=r"\(B, 64, 64, 3\), got \(2, 32, 32, 3\)"):
        scorer.predict(np.zeros((2, 32, 32, 3), np.float32))
    with pytest.raises(ValueError, match=r"got \(64, 64, 3\)"):
        scorer.predict(np.zeros((SIZE, SIZE, 3), np.float32))
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        scorer.predict(np.zeros((1, SIZE, SIZE, 3), np.float32), batch_size=0)
    probability, logit = scorer.predict(np.zeros((0, SIZE, SIZE, 3), np.float32))
    assert probability.shape == logit.shape == (0,)
