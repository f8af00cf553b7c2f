"""GramStyle: basics, bad input, NumPy explicit-Gram check, float32 math under mixed precision."""


import keras
import numpy as np
import pytest
import tensorflow as tf
from references import gram_style

from mclcr_keras.layers import GramStyle
from mclcr_keras.layers.gram_style import explicit_gram_style


def test_output_shape_and_compute_output_shape():
    layer = GramStyle()
    x = np.random.default_rng(0).random((3, 8, 6, 5), dtype=np.float32)
    assert tuple(layer(x).shape) == (3, 5)
    assert layer.compute_output_shape((None, 8, 6, 5)) == (None, 5)
    symbolic = layer(keras.Input((None, None, 7)))
    assert tuple(symbolic.shape) == (None, 7)


def test_config_round_trip_gives_identical_outputs():
    layer = GramStyle(name="ssrb")
    x = np.random.default_rng(1).normal(size=(2, 4, 4, 6)).astype(np.float32)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, GramStyle)
    assert restored.name == "ssrb"
    assert restored.get_config() == layer.get_config()
    np.testing.assert_array_equal(np.asarray(restored(x)), np.asarray(layer(x)))


def test_keras_file_round_trip_and_gradient_step(tmp_path):
    rng = np.random.default_rng(2)
    inputs = keras.Input((8, 8, 3))
    features = keras.layers.Conv2D(6, 3, padding="same", activation="relu")(inputs)
    outputs = keras.layers.Dense(1)(GramStyle()(features))
    model = keras.Model(inputs, outputs)
    x = rng.normal(size=(4, 8, 8, 3)).astype(np.float32)
    y = rng.normal(size=(4, 1)).astype(np.float32)

    before = [np.array(w) for w in model.trainable_weights]
    optimizer = keras.optimizers.SGD(0.1)
    with tf.GradientTape() as tape:
        loss = keras.ops.mean((model(x) - y) ** 2)
    grads = tape.gradient(loss, model.trainable_weights)
    assert all(np.all(np.isfinite(g)) for g in grads)
    optimizer.apply_gradients(zip(grads, model.trainable_weights))
    # The conv kernel sits before GramStyle: it only moves if gradients flow through the layer.
    for old, new in zip(before, model.trainable_weights):
        assert not np.allclose(old, np.asarray(new))

    path = tmp_path / "gram.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_array_equal(np.asarray(reloaded(x)), np.asarray(model(x)))


@pytest.mark.parametrize("shape", [(2, 8), (2, 4, 4), (2, 4, 4, 3, 1)])
def test_rejects_inputs_that_are_not_rank_4(shape):
    with pytest.raises(ValueError, match=r"rank-4 .*received shape \(2, "):
        GramStyle()(np.zeros(shape, np.float32))
    with pytest.raises(ValueError, match="rank-4"):
        explicit_gram_style(np.zeros(shape, np.float32))


def test_matches_explicit_gram_in_numpy():
    rng = np.random.default_rng(3)
    # Non-square map, channels > positions, mixed signs: nothing cancels by symmetry.
    x = rng.normal(loc=0.3, size=(3, 5, 7, 11)).astype(np.float32)
    expected = gram_style(x)
    np.testing.assert_allclose(np.asarray(GramStyle()(x)), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(explicit_gram_style(x)), expected, rtol=1e-5, atol=1e-6
    )


def test_mixed_bfloat16_rounds_a_float32_computation_once(mixed_bfloat16):
    rng = np.random.default_rng(4)
    # Few positions: averaging cannot hide input rounding, so bfloat16 maths would show.
    x = rng.uniform(1.0, 2.0, size=(64, 2, 2, 8)).astype(np.float32)
    layer = GramStyle()
    assert layer.compute_dtype == "bfloat16"
    out = layer(x)
    assert out.dtype == tf.bfloat16

    float32_result = GramStyle(dtype="float32")(x)
    assert float32_result.dtype == tf.float32
    np.testing.assert_allclose(np.asarray(float32_result), gram_style(x), rtol=1e-6)
    np.testing.assert_array_equal(
        np.asarray(tf.cast(out, tf.float32)),
        np.asarray(tf.cast(tf.cast(float32_result, tf.bfloat16), tf.float32)),
    )
    # The same formula evaluated in bfloat16 gives different values: the check above can fail.
    x_bf16 = tf.cast(x, tf.bfloat16)
    naive = tf.reduce_mean(x_bf16 * tf.reduce_mean(x_bf16, axis=-1, keepdims=True), axis=(1, 2))
    assert np.any(np.asarray(tf.cast(naive, tf.float32)) != np.asarray(tf.cast(out, tf.float32)))
