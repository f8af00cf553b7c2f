"""What `export` writes for TensorFlow Serving besides the graph: variables stored once, the
warm-up file (`mclcr_keras.inference.warmup`), ``batching_parameters.txt`` and ``models.config``
(`mclcr_keras.inference.serving_config`), the threshold and the model card in ``assets.extra/``.

The warm-up records are read back with ``tf.data.TFRecordDataset`` and TF Serving's own
``PredictionLog`` proto, every one is replayed against the loaded SavedModel and compared with
the Keras model; the config files are parsed into TF Serving's protos. One export of the shared
tiny model, with non-default serving options, into a base that already holds a version.
"""

import json
import logging
import re

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    text_format,
    wrappers_pb2,
)
from tensorflow_serving.apis import prediction_log_pb2
from tensorflow_serving.config import model_server_config_pb2

from mclcr_keras import export
from mclcr_keras.inference import export as exporting
from mclcr_keras.inference import serving_config, warmup
from mclcr_keras.inference.scorer import METADATA_FILE
from mclcr_keras.inference.serving_config import ServingOptions

SIZE = 64
WARMUP_SIZES = (1, 3, 8)
ARGS = ["--warmup-batch-sizes", "1,3,8", "--max-batch-size", "8", "--allowed-batch-sizes",
        "1,2,4,8", "--batch-threads", "3", "--batch-timeout-micros", "500",
        "--serving-base-path", "/models/mclcr"]

# BatchingParameters as tensorflow/serving declares it
# (tensorflow_serving/servables/tensorflow/session_bundle_config.proto at 9d981c5c, comments
# dropped). The tensorflow-serving-api wheel ships no session_bundle_config_pb2, so the test
# builds the message class from this declaration with protobuf's descriptor API.
BATCHING_PARAMETERS_PROTO = """
message BatchingParameters {
  google.protobuf.Int64Value max_batch_size = 1;
  google.protobuf.Int64Value batch_timeout_micros = 2;
  google.protobuf.Int64Value max_enqueued_batches = 3;
  google.protobuf.Int64Value num_batch_threads = 4;
  google.protobuf.StringValue thread_pool_name = 5;
  google.protobuf.BoolValue enable_large_batch_splitting = 8;
  google.protobuf.Int64Value max_execution_batch_size = 9;
  repeated int64 allowed_batch_sizes = 6;
  bool pad_variable_length_inputs = 7;
}
"""


def batching_parameters_class():
    """``tensorflow.serving.BatchingParameters`` from `BATCHING_PARAMETERS_PROTO`."""
    field = descriptor_pb2.FieldDescriptorProto
    scalars = {"int64": field.TYPE_INT64, "bool": field.TYPE_BOOL}
    file = descriptor_pb2.FileDescriptorProto(
        name="tensorflow_serving/servables/tensorflow/session_bundle_config.proto",
        package="tensorflow.serving", syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"])
    message = file.message_type.add(name="BatchingParameters")
    for repeated, kind, name, number in re.findall(
            r"^\s*(repeated )?([\w.]+) (\w+) = (\d+);", BATCHING_PARAMETERS_PROTO, re.M):
        entry = message.field.add(name=name, number=int(number),
                                  label=field.LABEL_REPEATED if repeated else field.LABEL_OPTIONAL)
        if kind in scalars:
            entry.type = scalars[kind]
        else:
            entry.type, entry.type_name = field.TYPE_MESSAGE, "." + kind
    assert len(message.field) == 9
    pool = descriptor_pool.DescriptorPool()
    pool.Add(descriptor_pb2.FileDescriptorProto.FromString(wrappers_pb2.DESCRIPTOR.serialized_pb))
    pool.Add(file)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))


def _load_keras(path):
    import keras

    import mclcr_keras.models.mclcr  # noqa: F401  (registers the custom classes)

    return keras.models.load_model(path, compile=False)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_model_path):
    """Version 4 of base ``mclcr``, whose 3/ holds a SavedModel (a stub: only its file counts)."""
    root = tmp_path_factory.mktemp("serving_files")
    base = root / "mclcr"
    (base / "3").mkdir(parents=True)
    (base / "3" / "saved_model.pb").write_bytes(b"")
    card = root / "model_card.json"
    card.write_text(json.dumps({"model_details": {"name": "MC-LCR tiny"}}))
    status = export.main(["--model", str(tiny_model_path), "--out", str(base), "--model-card",
                          str(card), *ARGS])
    assert status == 0
    return {"model": _load_keras(tiny_model_path), "base": base, "target": base / "4",
            "card": card}


@pytest.fixture(scope="module")
def loaded(exported):
    return tf.saved_model.load(str(exported["target"]))


def _keras(model, pixels):
    outputs = model(tf.constant(pixels, tf.float32), training=False)
    return {key: outputs[key].numpy().ravel() for key in ("probability", "logit")}


@pytest.mark.slow
def test_variables_are_stored_once(exported, loaded):
    """``variables/`` on disk against the weights' bytes: 2.0x when `track(model)` wrote each
    weight under two checkpoint keys; now 1.0x, and the loaded object still lists them."""
    model = exported["model"]
    weights = sum(np.asarray(weight).nbytes for weight in model.weights)
    on_disk = sum(path.stat().st_size for path in (exported["target"] / "variables").rglob("*")
                  if path.is_file())
    assert weights < on_disk <= 1.1 * weights, (on_disk, weights)
    reader = tf.train.load_checkpoint(str(exported["target"] / "variables" / "variables"))
    values = [key for key in reader.get_variable_to_shape_map() if key.endswith("VARIABLE_VALUE")]
    assert len(values) == len(model.weights)
    assert len(loaded.variables) == len(model.weights)
    assert len(loaded.trainable_variables) == len(model.trainable_weights)
    for restored, weight in zip(loaded.variables, model.weights):
        np.testing.assert_array_equal(restored.numpy(), np.asarray(weight))


def _warmup_records(target):
    path = target / "assets.extra" / "tf_serving_warmup_requests"
    assert path.is_file()
    return [prediction_log_pb2.PredictionLog.FromString(record.numpy())
            for record in tf.data.TFRecordDataset(str(path))]


@pytest.mark.slow
def test_every_warmup_record_replays_like_keras(exported, loaded):
    records = _warmup_records(exported["target"])
    assert len(records) == 2 * len(WARMUP_SIZES) <= warmup.MAX_WARMUP_RECORDS
    seen = set()
    for log in records:
        assert log.WhichOneof("log_type") == "predict_log"
        request = log.predict_log.request
        assert request.model_spec.name == "mclcr"
        signature = loaded.signatures[request.model_spec.signature_name]
        expected_inputs = set(signature.structured_input_signature[1])
        assert set(request.inputs) == expected_inputs  # what TF Serving's Predict checks
        (name,) = expected_inputs
        value = tf.make_ndarray(request.inputs[name])
        batch = value.shape[0]
        seen.add((request.model_spec.signature_name, batch))
        if name == "images":
            assert value.dtype == np.float32 and value.shape == (batch, SIZE, SIZE, 3)
            pixels = value
        else:
            assert value.dtype == object and value.shape == (batch,)
            pixels = np.stack([tf.io.decode_png(item).numpy() for item in value])
            assert pixels.shape == (batch, SIZE, SIZE, 3)
        assert len({item.tobytes() for item in pixels}) == batch  # distinct crops
        answer = signature(**{name: tf.constant(value)})
        reference = _keras(exported["model"], pixels.astype(np.float32))
        for key in ("probability", "logit"):
            assert answer[key].shape == (batch,)
            np.testing.assert_allclose(answer[key].numpy(), reference[key], atol=1e-5)
    assert seen == {(signature, size) for signature in ("serving_default", "serving_bytes")
                    for size in WARMUP_SIZES}


@pytest.mark.slow
def test_batching_parameters_parse_into_tf_serving_proto(exported):
    text = (exported["target"] / "assets.extra" / "batching_parameters.txt").read_text()
    params = text_format.Parse(text, batching_parameters_class()())
    assert params.max_batch_size.value == 8
    assert params.batch_timeout_micros.value == 500
    assert params.num_batch_threads.value == params.max_enqueued_batches.value == 3
    assert list(params.allowed_batch_sizes) == [1, 2, 4, 8]
    # TF Serving's own checks (bundle_factory_util.cc WrapSessionForBatching): the last allowed
    # size is max_batch_size; a warm-up request larger than max_batch_size would be refused.
    assert params.allowed_batch_sizes[-1] == params.max_batch_size.value
    assert max(WARMUP_SIZES) <= params.max_batch_size.value
    assert not params.HasField("enable_large_batch_splitting")


@pytest.mark.slow
def test_models_config_parses_into_model_server_config(exported):
    text = (exported["target"] / "assets.extra" / "models.config").read_text()
    config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    (model,) = config.model_config_list.config
    assert (model.name, model.base_path, model.model_platform) == ("mclcr", "/models/mclcr",
                                                                   "tensorflow")
    assert list(model.model_version_policy.specific.versions) == [3, 4]
    assert dict(model.version_labels) == {"stable": 3, "canary": 4}


@pytest.mark.slow
def test_threshold_model_card_and_serving_files_are_recorded(exported):
    target = exported["target"]
    metadata = json.loads((target / METADATA_FILE).read_text())
    assert "threshold" in metadata and metadata["threshold"] is None  # the tiny model has none
    assert (target / "assets.extra" / "model_card.json").read_bytes() == \
        exported["card"].read_bytes()
    assert metadata["tf_serving"] == {
        "warmup_requests": "assets.extra/tf_serving_warmup_requests",
        "warmup_batch_sizes": list(WARMUP_SIZES),
        "batching_parameters": "assets.extra/batching_parameters.txt",
        "models_config": "assets.extra/models.config",
        "model_name": "mclcr", "serving_base_path": "/models/mclcr", "stable_version": 3,
    }


def test_a_first_version_is_its_own_stable_and_the_warmup_needs_the_serving_api(
        tmp_path, monkeypatch, caplog):
    """Without tensorflow-serving-api no warm-up file (a warning); the configs are written."""
    monkeypatch.setattr(warmup, "serving_api_available", lambda: False)
    with caplog.at_level(logging.WARNING, logger="mclcr_keras.inference.export"):
        record = exporting._write_serving_files(tmp_path, tmp_path / "mclcr", 1, 1, SIZE,
                                                ServingOptions(num_batch_threads=2))
    assert record["warmup_requests"] is None and record["warmup_batch_sizes"] == []
    assert "tensorflow-serving-api" in caplog.text
    assert not (tmp_path / warmup.WARMUP_FILE).exists()
    config = text_format.Parse((tmp_path / serving_config.MODELS_CONFIG_FILE).read_text(),
                               model_server_config_pb2.ModelServerConfig())
    (model,) = config.model_config_list.config
    assert model.base_path == str((tmp_path / "mclcr").resolve())
    assert list(model.model_version_policy.specific.versions) == [1]
    assert dict(model.version_labels) == {"stable": 1}
    params = text_format.Parse((tmp_path / serving_config.BATCHING_FILE).read_text(),
                               batching_parameters_class()())
    assert (params.max_batch_size.value, params.batch_timeout_micros.value) == (32, 0)
    assert list(params.allowed_batch_sizes) == []


def test_warmup_file_without_the_model(tmp_path):
    """`write_warmup` alone: records in order (pixels then bytes per size), inputs decodable."""
    path = warmup.write_warmup(tmp_path, "m", 16, (2, 1))
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy())
            for r in tf.data.TFRecordDataset(str(path))]
    shapes = [(log.predict_log.request.model_spec.signature_name,
               tf.make_ndarray(next(iter(log.predict_log.request.inputs.values()))).shape)
              for log in logs]
    assert shapes == [("serving_default", (2, 16, 16, 3)), ("serving_bytes", (2,)),
                      ("serving_default", (1, 16, 16, 3)), ("serving_bytes", (1,))]
    pixels = tf.make_ndarray(logs[0].predict_log.request.inputs["images"])
    encoded = tf.make_ndarray(logs[1].predict_log.request.inputs["images_bytes"])
    np.testing.assert_array_equal(pixels[1], tf.io.decode_png(encoded[1]).numpy())


@pytest.mark.parametrize("argv, message", [
    (["--allowed-batch-sizes", "1,2,4", "--max-batch-size", "8"],
     "--allowed-batch-sizes must increase and end with --max-batch-size 8"),
    (["--allowed-batch-sizes", "4,2,8", "--max-batch-size", "8"],
     "--allowed-batch-sizes must increase"),
    (["--warmup-batch-sizes", "1,64"], "--warmup-batch-sizes must lie in 1..--max-batch-size 32"),
    (["--warmup-batch-sizes", "1,x"], "--warmup-batch-sizes expects e.g. 1,8 or none"),
    (["--max-batch-size", "0"], "--max-batch-size must be >= 1, got 0"),
    (["--batch-threads", "0"], "--batch-threads must be >= 1, got 0"),
])
def test_bad_serving_options_are_one_line_errors(argv, message, tmp_path, capsys):
    (tmp_path / "model.keras").write_text("never loaded: the options are checked first")
    status = export.main(["--model", str(tmp_path / "model.keras"), "--out",
                          str(tmp_path / "mclcr"), *argv])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith(f"export: error: {message}"), err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "mclcr").exists()


def test_stable_version_must_hold_a_saved_model(tmp_path, capsys):
    (tmp_path / "model.keras").write_text("never loaded: the stable version is checked first")
    status = export.main(["--model", str(tmp_path / "model.keras"), "--out",
                          str(tmp_path / "mclcr"), "--stable-version", "2"])
    err = capsys.readouterr().err
    assert status == 2
    assert err == (f"export: error: --stable-version 2: {tmp_path / 'mclcr' / '2'} holds no "
                   "SavedModel\n")
