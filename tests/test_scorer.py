"""mclcr_keras.inference.scorer: decoding equals the records pipeline, model lookup, errors, and
the Keras scorer against the shared tiny model (`tiny_model_path`). The SavedModel scorer is
tested on the export of tests/test_export.py."""

import os

import numpy as np
import pytest
import tensorflow as tf

from mclcr_keras.data import make_dataset, schema
from mclcr_keras.inference import scorer as scoring

SIZE = 64


def test_decode_images_matches_the_records_pipeline(tmp_path):
    """A crop scores the same served as bytes or read from the records: same pixels."""
    rng = np.random.default_rng(3)
    images = {"real": rng.integers(0, 256, (96, 80, 3), dtype=np.uint8),   # resized
              "fake": rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)}  # kept as is
    encoded = {name: schema.encode_image(image) for name, image in images.items()}
    split_dir = tmp_path / "test"
    split_dir.mkdir()
    for label, name in enumerate(schema.LABEL_NAMES):
        with tf.io.TFRecordWriter(str(split_dir / schema.shard_name(name, 0, 1))) as writer:
            writer.write(schema.encode_example(encoded[name], label, "v", "m", "d", 0))
    pipeline_pixels, _ = next(iter(make_dataset(tmp_path, "test", batch_size=2, training=False,
                                                image_size=SIZE)))
    served = scoring.decode_images(tf.constant([encoded["real"], encoded["fake"]]), SIZE)
    assert served.shape == (2, SIZE, SIZE, 3) and served.dtype == tf.float32
    np.testing.assert_array_equal(served.numpy(), pipeline_pixels.numpy())
    np.testing.assert_array_equal(served.numpy()[1], images["fake"].astype(np.float32))
    empty = scoring.decode_images(tf.constant([], tf.string), SIZE)
    assert empty.shape == (0, SIZE, SIZE, 3)


def test_load_errors_are_one_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="model not found: .*missing.keras"):
        scoring.load_scorer(tmp_path / "missing.keras")
    with pytest.raises(ValueError, match="without saved_model.pb"):
        scoring.load_scorer(tmp_path)
    (tmp_path / "weights.txt").write_text("no model")
    with pytest.raises(ValueError, match=r"expected a Keras model file \(.keras\)"):
        scoring.load_scorer(tmp_path / "weights.txt")
    (tmp_path / "broken.keras").write_bytes(os.urandom(64))
    with pytest.raises(ValueError, match="could not load Keras model .*broken.keras") as error:
        scoring.load_scorer(tmp_path / "broken.keras")
    assert "\n" not in str(error.value)


def test_saved_model_versions_ignore_incomplete_and_non_numeric(tmp_path):
    for name, complete in (("1", True), ("2", True), ("10", False), ("latest", True)):
        (tmp_path / name).mkdir()
        if complete:
            (tmp_path / name / "saved_model.pb").write_bytes(b"")
    assert scoring.saved_model_versions(tmp_path) == [1, 2]
    assert scoring.find_saved_model(tmp_path) == tmp_path / "2"
    assert scoring.find_saved_model(tmp_path / "1") == tmp_path / "1"
    assert scoring.find_saved_model(tmp_path / "10") is None


# ------------------------------------------------------------------------ the Keras scorer


@pytest.fixture(scope="module")
def tiny_model(tiny_model_path):
    """The shared tiny model, loaded with Keras itself (the reference of the scorer)."""
    import keras

    import mclcr_keras.models.mclcr  # noqa: F401  (registers the custom classes)

    return keras.models.load_model(tiny_model_path, compile=False)


@pytest.fixture(scope="module")
def keras_scorer(tiny_model_path):
    return scoring.load_scorer(tiny_model_path)


def _keras_outputs(model, pixels):
    outputs = model(tf.constant(pixels, tf.float32), training=False)
    return outputs["probability"].numpy().ravel(), outputs["logit"].numpy().ravel()


def test_keras_scorer_matches_the_model(tiny_model, tiny_model_path, keras_scorer):
    scorer = keras_scorer
    assert isinstance(scorer, scoring.KerasScorer) and scorer.path == str(tiny_model_path)
    assert (scorer.kind, scorer.image_size) == ("keras", SIZE)
    crops = np.random.default_rng(6).integers(0, 256, (7, SIZE, SIZE, 3), dtype=np.uint8)
    probability, logit = scorer.predict(crops, batch_size=3)  # 3 + 3 + 1: one trace for all
    assert probability.shape == logit.shape == (7,) and probability.dtype == np.float32
    expected_probability, expected_logit = _keras_outputs(tiny_model, crops)
    np.testing.assert_allclose(probability, expected_probability, atol=1e-5)
    np.testing.assert_allclose(logit, expected_logit, atol=1e-5)
    np.testing.assert_allclose(probability, 1 / (1 + np.exp(-expected_logit)), atol=1e-6)
    again, _ = scorer.predict(tf.constant(crops.astype(np.float32)))
    np.testing.assert_allclose(again, probability, atol=1e-6)


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


def test_probability_and_logit_of_model_outputs():
    logit = tf.constant([[-2.0], [0.0], [3.0]])
    probability, same = scoring.probability_and_logit({"logit": logit}, "m")  # sigmoid fallback
    np.testing.assert_allclose(probability.numpy().ravel(), 1 / (1 + np.exp([2.0, 0.0, -3.0])),
                               rtol=1e-6)
    np.testing.assert_array_equal(same.numpy(), logit.numpy())
    given = tf.constant([[0.1], [0.2], [0.3]], tf.float64)
    probability, _ = scoring.probability_and_logit({"logit": logit, "probability": given}, "m")
    assert probability.dtype == tf.float32
    np.testing.assert_allclose(probability.numpy(), given.numpy().astype(np.float32))
    with pytest.raises(ValueError, match=r"model x: expected outputs with a 'logit' key, got "
                                         r"\['score'\]"):
        scoring.probability_and_logit({"score": logit}, "model x")
    with pytest.raises(ValueError, match=r"got \w*Tensor$"):
        scoring.probability_and_logit(logit, "m")
