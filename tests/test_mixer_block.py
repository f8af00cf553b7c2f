"""MixerBlock: basics, bad arguments, NumPy MLP-Mixer layer with the block's own weights."""


import keras
import numpy as np
import pytest
import tensorflow as tf
from references import mixer_block, tanh_gelu

from mclcr_keras.layers import MixerBlock


def _randomise_weights(layer, seed: int) -> None:
    rng = np.random.default_rng(seed)
    layer.set_weights(
        [rng.normal(scale=0.5, size=w.shape).astype(np.float32) for w in layer.get_weights()]
    )


def _tokens(seed: int, shape=(2, 6, 10)) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def test_output_shape_and_sublayer_widths():
    block = MixerBlock(tokens_mlp_dim=12, channels_mlp_dim=20)
    out = block(_tokens(0))
    assert tuple(out.shape) == (2, 6, 10)
    assert block.token_dense_1.kernel.shape == (6, 12)
    assert block.token_dense_2.kernel.shape == (12, 6)
    assert block.channel_dense_1.kernel.shape == (10, 20)
    assert block.channel_dense_2.kernel.shape == (20, 10)
    assert block.token_norm is not block.channel_norm
    assert block.compute_output_shape((None, 6, 10)) == (None, 6, 10)


def test_config_round_trip_gives_identical_outputs():
    block = MixerBlock(tokens_mlp_dim=8, channels_mlp_dim=4, dropout=0.2, name="mixer")
    x = _tokens(1)
    block(x)
    _randomise_weights(block, 1)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(block))
    assert restored.get_config() == block.get_config()
    assert (restored.tokens_mlp_dim, restored.channels_mlp_dim, restored.dropout) == (8, 4, 0.2)
    restored(x)
    restored.set_weights(block.get_weights())
    np.testing.assert_array_equal(np.asarray(restored(x)), np.asarray(block(x)))


def test_dropout_is_active_only_in_training():
    block = MixerBlock(tokens_mlp_dim=8, channels_mlp_dim=8, dropout=0.5)
    x = _tokens(2)
    np.testing.assert_array_equal(np.asarray(block(x)), np.asarray(block(x, training=False)))
    assert not np.allclose(np.asarray(block(x, training=True)), np.asarray(block(x)))


def test_keras_file_round_trip_and_gradient_step(tmp_path):
    inputs = keras.Input((6, 10))
    block = MixerBlock(tokens_mlp_dim=8, channels_mlp_dim=16)
    pooled = keras.layers.GlobalAveragePooling1D()(block(inputs))
    model = keras.Model(inputs, keras.layers.Dense(1)(pooled))
    x = _tokens(3, (4, 6, 10))
    y = np.array([[0.0], [1.0], [0.0], [1.0]], np.float32)

    before = [np.array(w) for w in block.trainable_weights]
    assert len(before) == 12  # 2 LayerNorms x 2 + 4 Dense x 2
    with tf.GradientTape() as tape:
        loss = keras.ops.mean((model(x) - y) ** 2)
    grads = tape.gradient(loss, model.trainable_weights)
    keras.optimizers.SGD(0.1).apply_gradients(zip(grads, model.trainable_weights))
    for old, new in zip(before, block.trainable_weights):
        assert not np.allclose(old, np.asarray(new)), new.path

    path = tmp_path / "mixer.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_array_equal(np.asarray(reloaded(x)), np.asarray(model(x)))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"tokens_mlp_dim": 0}, "received tokens_mlp_dim=0"),
        ({"channels_mlp_dim": 3.5}, "received channels_mlp_dim=3.5"),
        ({"dropout": 1.5}, "received dropout=1.5"),
        ({"layer_norm_epsilon": -1.0}, "received layer_norm_epsilon=-1.0"),
    ],
)
def test_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MixerBlock(**kwargs)


@pytest.mark.parametrize("shape", [(None, 10), (6, None), (4, 6, 10)])
def test_rejects_unknown_token_count_or_wrong_rank(shape):
    with pytest.raises(ValueError, match=r"\(batch, tokens, channels\).*received shape"):
        MixerBlock()(keras.Input(shape))


def test_matches_numpy_mixer_layer():
    x = _tokens(4, (3, 7, 5))
    block = MixerBlock(tokens_mlp_dim=9, channels_mlp_dim=11)
    block(x)
    _randomise_weights(block, 4)
    expected = mixer_block(x, block)
    np.testing.assert_allclose(np.asarray(block(x)), expected, rtol=1e-5, atol=1e-5)
    # The block uses the exact (erf) GELU: the tanh approximation misses by far more.
    approximate = mixer_block(x, block, activation=tanh_gelu)
    assert np.max(np.abs(np.asarray(block(x)) - approximate)) > 1e-4


def test_mixed_bfloat16_policy_reaches_the_sublayers(mixed_bfloat16):
    x = _tokens(5)
    block = MixerBlock(tokens_mlp_dim=8, channels_mlp_dim=8)
    out = block(x)
    assert out.dtype == tf.bfloat16
    assert block.token_dense_2.compute_dtype == "bfloat16"
    assert all(w.dtype == "float32" for w in block.weights)
    # bfloat16 keeps 8 bits of mantissa: about 2 significant digits.
    np.testing.assert_allclose(np.asarray(tf.cast(out, tf.float32)), mixer_block(x, block),
                               rtol=2e-2, atol=5e-2)
