"""AmpPhaseCrossAttention: basics, bad arguments, NumPy multi-head attention with its weights
and either logit scale."""


import keras
import numpy as np
import pytest
import tensorflow as tf
from references import cross_attention

from mclcr_keras.layers import AmpPhaseCrossAttention


def _randomise_weights(layer, seed: int) -> None:
    """Non-trivial LayerNorm scales/offsets and biases, so that none of them can be ignored."""
    rng = np.random.default_rng(seed)
    layer.set_weights(
        [rng.normal(scale=0.5, size=w.shape).astype(np.float32) for w in layer.get_weights()]
    )


def _inputs(seed: int, shape=(2, 6, 16)):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=shape).astype(np.float32) for _ in range(2)]


def test_output_shapes_and_default_key_dim():
    layer = AmpPhaseCrossAttention(num_heads=4)
    at, pt = layer(_inputs(0))
    assert tuple(at.shape) == (2, 6, 16) and tuple(pt.shape) == (2, 6, 16)
    assert layer.amplitude_attention.key_dense.kernel.shape == (16, 4, 4)  # key_dim = D / heads
    assert layer.compute_output_shape([(None, 6, 16), (None, 6, 16)]) == (
        (None, 6, 16),
        (None, 6, 16),
    )
    explicit = AmpPhaseCrossAttention(num_heads=3, key_dim=5)
    explicit(_inputs(0, (1, 4, 10)))
    assert explicit.phase_attention.query_dense.kernel.shape == (10, 3, 5)


def test_config_round_trip_gives_identical_outputs():
    layer = AmpPhaseCrossAttention(num_heads=2, key_dim=6, dropout=0.1, name="papda")
    inputs = _inputs(1)
    layer(inputs)
    _randomise_weights(layer, 1)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert restored.get_config() == layer.get_config()
    assert (restored.num_heads, restored.key_dim, restored.dropout) == (2, 6, 0.1)
    assert restored.scale is None
    # A config saved before `scale` existed loads with Keras' 1/sqrt(key_dim).
    old_config = {k: v for k, v in layer.get_config().items() if k != "scale"}
    assert AmpPhaseCrossAttention.from_config(old_config).scale is None
    scaled = AmpPhaseCrossAttention.from_config({**layer.get_config(), "scale": 0.25})
    assert scaled.get_config()["scale"] == 0.25
    restored(inputs)
    restored.set_weights(layer.get_weights())
    for got, want in zip(restored(inputs), layer(inputs)):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_keras_file_round_trip_and_gradient_step(tmp_path):
    amplitude_in = keras.Input((6, 16))
    phase_in = keras.Input((6, 16))
    layer = AmpPhaseCrossAttention(num_heads=4)
    at, pt = layer([amplitude_in, phase_in])
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Concatenate()([at, pt]))
    model = keras.Model([amplitude_in, phase_in], keras.layers.Dense(1)(pooled))
    x = _inputs(2, (4, 6, 16))
    y = np.array([[0.0], [1.0], [0.0], [1.0]], np.float32)

    before = [np.array(w) for w in layer.trainable_weights]
    assert len(before) == 20  # 2 LayerNorms x 2 + 2 attentions x (4 kernels + 4 biases)
    with tf.GradientTape() as tape:
        loss = keras.ops.mean((model(x) - y) ** 2)
    grads = tape.gradient(loss, model.trainable_weights)
    keras.optimizers.SGD(0.1).apply_gradients(zip(grads, model.trainable_weights))
    for old, new in zip(before, layer.trainable_weights):
        # The key bias adds q . b_k to every score of a query row, which softmax cancels:
        # its gradient is zero in exact arithmetic, so it is the one weight expected not to move.
        if new.path.endswith("key/bias"):
            np.testing.assert_allclose(np.asarray(new), old, atol=1e-6)
        else:
            assert not np.allclose(old, np.asarray(new)), new.path

    path = tmp_path / "papda.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_array_equal(np.asarray(reloaded(x)), np.asarray(model(x)))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_heads": 0}, "received num_heads=0"),
        ({"num_heads": 2.0}, "received num_heads=2.0"),
        ({"key_dim": -1}, "received key_dim=-1"),
        ({"dropout": 1.0}, "received dropout=1.0"),
        ({"dropout": -0.1}, "received dropout=-0.1"),
        ({"layer_norm_epsilon": 0}, "received layer_norm_epsilon=0"),
        ({"scale": 0}, "received scale=0"),
        ({"scale": "model"}, "received scale='model'"),
        ({"scale": float("inf")}, "received scale=inf"),
    ],
)
def test_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AmpPhaseCrossAttention(**kwargs)


def test_rejects_dim_not_divisible_by_heads():
    with pytest.raises(ValueError, match=r"divisible by num_heads=4 .*received dim 10"):
        AmpPhaseCrossAttention(num_heads=4)(_inputs(0, (2, 6, 10)))


def test_rejects_mismatched_or_single_inputs():
    amplitude = keras.Input((6, 16))
    with pytest.raises(ValueError, match=r"received shapes \(None, 6, 16\) and \(None, 5, 16\)"):
        AmpPhaseCrossAttention()([amplitude, keras.Input((5, 16))])
    with pytest.raises(ValueError, match=r"list of two tensors \[E_as, E_ps\]"):
        AmpPhaseCrossAttention()(amplitude)


@pytest.mark.parametrize("num_heads, key_dim", [(4, None), (2, 3)])
def test_matches_numpy_cross_attention(num_heads, key_dim):
    amplitude, phase = _inputs(3, (3, 7, 16))
    layer = AmpPhaseCrossAttention(num_heads=num_heads, key_dim=key_dim)
    layer([amplitude, phase])
    _randomise_weights(layer, 3)
    at, pt = layer([amplitude, phase])
    expected_at, expected_pt = cross_attention(amplitude, phase, layer)
    np.testing.assert_allclose(np.asarray(at), expected_at, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(pt), expected_pt, rtol=1e-5, atol=1e-5)
    # The two streams really attend across modalities: swapping the inputs changes both outputs.
    swapped_at, _ = layer([phase, amplitude])
    assert not np.allclose(np.asarray(swapped_at), np.asarray(pt))


@pytest.mark.parametrize("dropout", [0.0, 0.1])  # Keras' fused path, and its explicit one
@pytest.mark.parametrize("scale", [None, 16 ** -0.5])  # 1/sqrt(key_dim) = 1/2; 1/sqrt(D) = 1/4
def test_logit_scale_matches_numpy(scale, dropout):
    amplitude, phase = _inputs(4, (2, 7, 16))
    layer = AmpPhaseCrossAttention(num_heads=4, scale=scale, dropout=dropout)
    layer([amplitude, phase])
    _randomise_weights(layer, 4)
    at, pt = layer([amplitude, phase], training=False)
    expected_at, expected_pt = cross_attention(amplitude, phase, layer, scale=scale)
    np.testing.assert_allclose(np.asarray(at), expected_at, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(pt), expected_pt, rtol=1e-5, atol=1e-5)
    # The two scales give different outputs on these weights: the test tells them apart.
    other = 16 ** -0.5 if scale is None else None
    wrong_at, _ = cross_attention(amplitude, phase, layer, scale=other)
    assert np.abs(np.asarray(at) - wrong_at).max() > 1e-2


def test_mixed_bfloat16_policy_reaches_the_sublayers(mixed_bfloat16):
    amplitude, phase = _inputs(5)
    layer = AmpPhaseCrossAttention(num_heads=4)
    at, pt = layer([amplitude, phase])
    assert at.dtype == tf.bfloat16 and pt.dtype == tf.bfloat16
    assert layer.amplitude_attention.compute_dtype == "bfloat16"
    assert all(w.dtype == "float32" for w in layer.weights)
    # bfloat16 keeps 8 bits of mantissa: about 2 significant digits of outputs of order 1-3.
    expected_at, expected_pt = cross_attention(amplitude, phase, layer)
    for got, expected in ((at, expected_at), (pt, expected_pt)):
        got = np.asarray(tf.cast(got, tf.float32))
        np.testing.assert_allclose(got, expected, rtol=2e-2, atol=5e-2)
