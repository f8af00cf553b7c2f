"""`.keras` round trip after a training step: same config, weights, predictions, optimizer state."""

import keras
import numpy as np

import mclcr_keras.models  # noqa: F401  (registers MCLCR and the layers with Keras)
from mclcr_keras.models import MCLCR, MCLCRConfig, build_mclcr


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
    expected = model.predict(images, verbose=0)

    path = tmp_path / "model.keras"
    model.save(path)
    weights_file.unlink()
    loaded = keras.models.load_model(path)  # no custom_objects: the classes are registered

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
    predicted = loaded.predict(images, verbose=0)
    assert set(predicted) == {"logit", "probability", "embedding"}
    for key in expected:
        np.testing.assert_allclose(predicted[key], expected[key], rtol=1e-6, atol=1e-6)
    # Intermediate features are available on the loaded model too.
    features = loaded.feature_extractor(images[:2])
    assert features["AF"].shape == (2, 256) and features["SSF_b3"].shape == (2, 256)
