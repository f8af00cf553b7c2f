"""python -m mclcr_keras.export (`mclcr_keras.inference.export`): TF Serving layout, both
signatures against the Keras model, saved_model_cli, the documented REST request run through the
SavedModel by saved_model_cli, versions and errors, `compare_export`; the SavedModel scorer of
`load_scorer`, and the export used by `evaluate` and `predict`.

One export (of the shared `tiny_model_path`) per module: it is the costly part. The reference is
always the Keras model loaded from that `.keras` file by Keras itself.
"""

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from mclcr_keras import evaluate, export, predict
from mclcr_keras.data import schema
from mclcr_keras.inference import scorer as scoring
from mclcr_keras.inference.export import METADATA_FILE, compare_export, next_version

SIZE = 64
DOCS = Path(__file__).resolve().parents[1] / "docs" / "serving.md"
SAVED_MODEL_CLI = Path(sys.executable).with_name("saved_model_cli")


def _load_keras(path):
    import keras

    import mclcr_keras.models.mclcr  # noqa: F401  (registers the custom classes)

    return keras.models.load_model(path, compile=False)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_model_path):
    """One export of the tiny model into a base that already holds version 3 and a non-version."""
    base = tmp_path_factory.mktemp("serving") / "mclcr"
    (base / "3").mkdir(parents=True)  # an incomplete older version still takes its number
    (base / "notes").mkdir()
    status = export.main(["--model", str(tiny_model_path), "--out", str(base)])
    assert status == 0
    return {"model": _load_keras(tiny_model_path), "model_path": tiny_model_path, "base": base,
            "target": base / "4"}


@pytest.fixture(scope="module")
def loaded(exported):
    return tf.saved_model.load(str(exported["target"]))


@pytest.fixture(scope="module")
def shown(exported) -> str:
    """``saved_model_cli show --all`` of the export: TensorFlow's own listing of the signatures."""
    return _saved_model_cli("show", "--dir", exported["target"], "--all")


def _signature_blocks(shown: str) -> dict[str, str]:
    return dict(re.findall(r"signature_def\['(\w+)'\]:\n(.*?)Method name is", shown, re.S))


def _keras_outputs(model, pixels):
    outputs = model(tf.constant(pixels, tf.float32), training=False)
    return outputs["probability"].numpy().ravel(), outputs["logit"].numpy().ravel()


def _saved_model_cli(*args: str) -> str:
    return subprocess.run([str(SAVED_MODEL_CLI), *map(str, args)], capture_output=True, text=True,
                          check=True, timeout=300).stdout


@pytest.mark.slow
def test_layout_is_model_base_slash_next_version(exported):
    base, target = exported["base"], exported["target"]
    assert (target / "saved_model.pb").is_file() and (target / "variables").is_dir()
    assert sorted(p.name for p in base.iterdir()) == ["3", "4", "notes"]  # no staging left over
    metadata = json.loads((target / METADATA_FILE).read_text())
    assert metadata["image_size"] == SIZE and metadata["version"] == 4
    assert metadata["model_config"]["image_size"] == SIZE
    assert metadata["source_model"] == os.path.abspath(exported["model_path"])
    assert scoring.saved_model_versions(base) == [4]  # 3/ holds no SavedModel


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
def test_saved_model_cli_lists_both_signatures(shown):
    blocks = _signature_blocks(shown)
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


@pytest.mark.slow
def test_documented_rest_request_runs_through_the_saved_model(exported, shown, tmp_path):
    """The request docs/serving.md writes, read with TF Serving's documented rules, then run
    through the exported signature by ``saved_model_cli run`` (TensorFlow's own loader and
    session, as TF Serving's SavedModelBundle): the answer is the Keras model's.

    The rules are those of TF Serving's REST API page (``g3doc/api_rest.md``: "Request format",
    "Specifying input tensors in row format", "Encoding binary values"), which its parser
    (``tensorflow_serving/util/json_tensor.cc``) enforces: the body is an object with an optional
    string ``signature_name`` and one of ``instances``/``inputs``; in row format ``instances`` is
    a non-empty list whose objects have exactly the signature's input names as keys; a binary
    value is an object with the single key ``b64``; the instances are stacked on a new axis 0.
    """
    rng = np.random.default_rng(3)
    crops = rng.integers(0, 256, (2, SIZE, SIZE, 3), dtype=np.uint8)
    paths = []
    for index, crop in enumerate(crops):
        path = tmp_path / f"face{index}.png"
        path.write_bytes(schema.encode_image(crop))
        paths.append(path)
    script = tmp_path / "make_request.py"
    script.write_text(_documented_snippet())
    subprocess.run([sys.executable, str(script), *map(str, paths)], cwd=tmp_path, check=True,
                   timeout=60)
    body = json.loads((tmp_path / "request.json").read_text())

    assert set(body) == {"signature_name", "instances"}
    name = body["signature_name"]
    assert isinstance(name, str)
    block = _signature_blocks(shown)[name]
    inputs = re.findall(r"inputs\['(\w+)'\] tensor_info:\s+dtype: (\w+)", block)
    outputs = re.findall(r"outputs\['(\w+)'\] tensor_info", block)
    assert inputs == [("images_bytes", "DT_STRING")]  # one string input: the encoded images
    instances = body["instances"]
    assert isinstance(instances, list) and len(instances) == len(paths)
    column = []
    for instance in instances:
        assert isinstance(instance, dict) and set(instance) == {n for n, _ in inputs}
        value = instance[inputs[0][0]]
        assert isinstance(value, dict) and set(value) == {"b64"}
        column.append(base64.b64decode(value["b64"], validate=True))
    assert column == [path.read_bytes() for path in paths]  # the files' bytes, in order

    request = tmp_path / "request.npy"
    np.save(request, np.array(column, dtype=object), allow_pickle=True)
    out = tmp_path / "answer"
    _saved_model_cli("run", "--dir", exported["target"], "--tag_set", "serve",
                     "--signature_def", name, "--inputs", f"{inputs[0][0]}={request}",
                     "--outdir", out)
    answer = {key: np.load(out / f"{key}.npy") for key in outputs}
    assert sorted(answer) == ["logit", "probability"]  # several outputs: one object per instance
    probability, logit = _keras_outputs(exported["model"], crops.astype(np.float32))
    assert answer["probability"].shape == answer["logit"].shape == (len(paths),)
    np.testing.assert_allclose(answer["probability"], probability, atol=1e-5)
    np.testing.assert_allclose(answer["logit"], logit, atol=1e-5)


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
        (["--model", "{tmp}/model.txt", "--version", "0"],
         "export: error: version must be a positive integer, got 0"),
        (["--model", "{tmp}/model.txt"], "export: error: expected a Keras model file (.keras)"),
        (["--model", "{tmp}/model.txt", "--version", "x"],
         "export: error: argument --version: invalid int value: 'x'"),
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


def test_out_that_is_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "model.keras").write_text("never loaded: --out is checked first")
    (tmp_path / "base").write_text("a file")
    status = export.main(["--model", str(tmp_path / "model.keras"), "--out",
                          str(tmp_path / "base")])
    err = capsys.readouterr().err
    assert status == 2
    assert err == f"export: error: --out {tmp_path / 'base'} exists and is not a directory\n"
    assert (tmp_path / "base").read_text() == "a file"


def test_next_version(tmp_path):
    base = tmp_path / "mclcr"
    assert next_version(base) == 1  # missing base
    for name in ("1", "2", "10", "latest", "007x"):
        (base / name).mkdir(parents=True)
    (base / "99").write_text("a file, not a version")
    assert next_version(base) == 11
    os.rmdir(base / "10")
    assert next_version(base) == 3


@pytest.mark.slow
def test_compare_export_measures_the_difference_to_a_keras_model(exported, tmp_path):
    """Against another model (the export's weights with the logit bias + 1) it reports that
    model's distance, through both signatures. (Against its own model: the demo's stage 5.)"""
    crops = np.random.default_rng(7).integers(0, 256, (4, SIZE, SIZE, 3), dtype=np.uint8)
    other = _load_keras(exported["model_path"])
    layer = other.get_layer("logit")
    layer.bias.assign(layer.bias.numpy() + 1.0)
    other.save(tmp_path / "shifted.keras")
    names, differences = compare_export(exported["target"], tmp_path / "shifted.keras", crops)
    assert names == ["serving_bytes", "serving_default"] and sorted(differences) == names
    probability, logit = _keras_outputs(exported["model"], crops)
    expected = float(np.max(np.abs(1 / (1 + np.exp(-(logit + 1.0))) - probability)))
    assert expected > 0.01
    for value in differences.values():
        assert value == pytest.approx(expected, abs=1e-5)


@pytest.mark.slow
def test_load_scorer_serves_the_export_like_the_keras_model(exported):
    """The scorer evaluate/predict use, on the model base: the highest complete version."""
    scorer = scoring.load_scorer(exported["base"])
    assert isinstance(scorer, scoring.SavedModelScorer)
    assert scorer.path == str(exported["target"])  # 3/ holds no SavedModel
    assert scoring.find_saved_model(exported["target"]) == exported["target"]
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
                            str(tmp_path / "records"), "--out", str(tmp_path / "eval"),
                            "--threshold", "0.5"])  # a test split only: no val threshold
    assert status == 0
    predictions = pd.read_csv(tmp_path / "eval" / "predictions.csv")
    expected, _ = _keras_outputs(exported["model"], crops)  # order: real shard, fake shard
    np.testing.assert_allclose(predictions["probability"], expected, atol=1e-5)
    assert predictions["label"].tolist() == [0] * 4 + [1] * 4
    report = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert report["model_format"] == "saved_model" and report["image_size"] == SIZE
    assert report["records"]["records"]["video"]["n_videos"] == 4


@pytest.mark.slow
def test_predict_scores_files_with_the_exported_saved_model(exported, tmp_path, capsys):
    """``predict --model <base>`` scores through the SavedModel (face crops: ``--crop none``)."""
    crops = np.random.default_rng(6).integers(0, 256, (3, SIZE, SIZE, 3), dtype=np.uint8)
    paths = []
    for index, crop in enumerate(crops):
        paths.append(tmp_path / f"crop{index}.png")
        paths[-1].write_bytes(schema.encode_image(crop))
    out = tmp_path / "predict.json"
    status = predict.main(["--model", str(exported["base"]), "--crop", "none", "--json", str(out),
                           *map(str, paths)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert captured.out.splitlines()[-1] == f"predict: scored 3 of 3 files; JSON report in {out}"
    report = json.loads(out.read_text())
    expected, logit = _keras_outputs(exported["model"], crops)
    assert [entry["path"] for entry in report["files"]] == list(map(str, paths))
    np.testing.assert_allclose([entry["probability"] for entry in report["files"]], expected,
                               atol=1e-5)
    np.testing.assert_allclose([entry["frame_scores"][0]["logit"] for entry in report["files"]],
                               logit, atol=1e-5)
    assert report["image_size"] == SIZE
