"""`.keras` round trip after a training step: same config, weights, predictions, optimizer state;
`mclcr_keras.models.saving`: the package's one loader and the image size of a model."""

import keras
import numpy as np
import pytest

from mclcr_keras.models import MCLCR, MCLCRConfig, build_mclcr, load_model, model_image_size


def _outputs(model, images):
    # An eager inference call: cheaper than `predict`, which traces a function per model.
    return {k: keras.ops.convert_to_numpy(v) for k, v in model(images, training=False).items()}


def test_keras_file_round_trip_after_a_training_step(tmp_path):
    # The backbone starts from a local weights file that is gone when the model is loaded:
    # loading must take the weights from the .keras file, not from config.weights.
    xception = keras.applications.Xception(
        include_top=False, weights=None, input_shape=(None, None, 3)
    )
    weights_file = tmp_path / "xception.weights.h5"
    xception.save_weights(weights_file)
    config = MCLCRConfig.smoke(weights=str(weights_file), variant="mclcr", alpha=0.4)
    model = build_mclcr(config, compile=False)
    model.compile(run_eagerly=True)  # default AdamW

    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (8, 64, 64, 3)).astype("float32")
    labels = np.array([0, 1] * 4)
    model.train_on_batch(images, labels)
    expected = _outputs(model, images)

    path = tmp_path / "model.keras"
    model.save(path)
    weights_file.unlink()
    # No custom_objects: importing mclcr_keras.models.mclcr registered the classes.
    loaded = keras.models.load_model(path)

    assert type(loaded) is MCLCR
    assert loaded.config == config
    assert loaded.name == model.name
    assert isinstance(loaded.optimizer, keras.optimizers.AdamW)
    assert int(loaded.optimizer.iterations) == 1
    assert len(loaded.weights) == len(model.weights)
    for mine, theirs in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(mine), keras.ops.convert_to_numpy(theirs), err_msg=mine.path
        )
    predicted = _outputs(loaded, images)
    assert set(predicted) == {"logit", "probability", "embedding"}
    for key in expected:
        np.testing.assert_allclose(predicted[key], expected[key], rtol=1e-6, atol=1e-6)
    # Intermediate features are available on the loaded model too.
    features = loaded.feature_extractor(images[:2])
    assert features["AF"].shape == (2, 256) and features["SSF_b3"].shape == (2, 256)

    # The package's loader: the same model, without the optimizer state (it never trains).
    served = load_model(path)
    assert type(served) is MCLCR and served.config == config and not served.compiled
    assert model_image_size(served) == 64
    for key, value in _outputs(served, images).items():
        np.testing.assert_allclose(value, expected[key], rtol=1e-6, atol=1e-6)


def test_load_model_failures_name_the_file(tmp_path):
    def error(path, kind=ValueError) -> str:
        with pytest.raises(kind) as info:
            load_model(path)
        return str(info.value)

    assert error(tmp_path / "x.keras", FileNotFoundError) == f"model not found: {tmp_path}/x.keras"
    assert error(tmp_path) == f"expected a Keras model file (.keras), got {tmp_path}"
    (tmp_path / "model.json").write_text("{}")
    assert error(tmp_path / "model.json") == (
        f"expected a Keras model file (.keras), got {tmp_path}/model.json")
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(b"not a zip archive")
    with pytest.raises(ValueError) as info:
        load_model(corrupt)
    message = str(info.value)
    assert message.startswith(f"could not load Keras model {corrupt}: ") and "\n" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_model_image_size_of_shapes():
    assert model_image_size((None, 256, 256, 3)) == 256
    assert model_image_size([None, 64, 64, 3]) == 64
    for shape in [(None, 64, 32, 3), (None, None, None, 3), (None, 64, 64, 1), (64, 64, 3), None]:
        with pytest.raises(ValueError) as info:
            model_image_size(shape, where="scorer.keras")
        assert str(info.value) == (
            f"scorer.keras: expected an image input of shape (None, S, S, 3), "
            f"got {tuple(shape or ())}")
