"""mclcr_keras.serving without a model: decoding equals the records pipeline, model lookup,
errors. The scorers themselves are tested on the model and export of tests/test_export.py."""

import os

import numpy as np
import pytest
import tensorflow as tf

from mclcr_keras import serving
from mclcr_keras.data import make_dataset, schema

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
    served = serving.decode_images(tf.constant([encoded["real"], encoded["fake"]]), SIZE)
    assert served.shape == (2, SIZE, SIZE, 3) and served.dtype == tf.float32
    np.testing.assert_array_equal(served.numpy(), pipeline_pixels.numpy())
    np.testing.assert_array_equal(served.numpy()[1], images["fake"].astype(np.float32))
    empty = serving.decode_images(tf.constant([], tf.string), SIZE)
    assert empty.shape == (0, SIZE, SIZE, 3)


def test_load_errors_are_one_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="model not found: .*missing.keras"):
        serving.load_scorer(tmp_path / "missing.keras")
    with pytest.raises(ValueError, match="without saved_model.pb"):
        serving.load_scorer(tmp_path)
    (tmp_path / "weights.txt").write_text("no model")
    with pytest.raises(ValueError, match=r"expected a Keras model file \(.keras\)"):
        serving.load_scorer(tmp_path / "weights.txt")
    (tmp_path / "broken.keras").write_bytes(os.urandom(64))
    with pytest.raises(ValueError, match="could not load Keras model .*broken.keras") as error:
        serving.load_scorer(tmp_path / "broken.keras")
    assert "\n" not in str(error.value)


def test_saved_model_versions_ignore_incomplete_and_non_numeric(tmp_path):
    for name, complete in (("1", True), ("2", True), ("10", False), ("latest", True)):
        (tmp_path / name).mkdir()
        if complete:
            (tmp_path / name / "saved_model.pb").write_bytes(b"")
    assert serving.saved_model_versions(tmp_path) == [1, 2]
    assert serving.find_saved_model(tmp_path) == tmp_path / "2"
    assert serving.find_saved_model(tmp_path / "1") == tmp_path / "1"
    assert serving.find_saved_model(tmp_path / "10") is None
