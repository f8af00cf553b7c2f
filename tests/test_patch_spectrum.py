"""PatchSpectrum: basics, bad input, check against numpy.fft.fft2, float32 FFT under bfloat16."""


import keras
import numpy as np
import pytest
import tensorflow as tf
from references import patch_spectra

from mclcr_keras.layers import PatchSpectrum


def _images(seed: int, shape) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 255.0, size=shape).astype(np.float32)


def test_output_shapes():
    layer = PatchSpectrum(patch_size=8)
    amplitude, phase = layer(_images(0, (2, 32, 48, 3)))
    assert tuple(amplitude.shape) == (2, 24, 64)
    assert tuple(phase.shape) == (2, 24, 64)
    assert layer.compute_output_shape((None, 32, 48, 3)) == ((None, 24, 64), (None, 24, 64))
    symbolic = PatchSpectrum(patch_size=16)(keras.Input((256, 256, 3)))
    assert [tuple(t.shape) for t in symbolic] == [(None, 256, 256), (None, 256, 256)]
    dynamic = PatchSpectrum(patch_size=16)(keras.Input((None, None, 3)))
    assert [tuple(t.shape) for t in dynamic] == [(None, None, 256), (None, None, 256)]


def test_config_round_trip_gives_identical_outputs():
    layer = PatchSpectrum(patch_size=4, name="spectrum")
    x = _images(1, (2, 8, 12, 3))
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, PatchSpectrum)
    assert restored.patch_size == 4
    assert restored.get_config() == layer.get_config()
    for got, want in zip(restored(x), layer(x)):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_keras_file_round_trip_and_gradient_step(tmp_path):
    inputs = keras.Input((32, 32, 3))
    amplitude, phase = PatchSpectrum(patch_size=8)(inputs)
    merged = keras.layers.Concatenate()(
        [keras.layers.Dense(4)(amplitude), keras.layers.Dense(4)(phase)]
    )
    outputs = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling1D()(merged))
    model = keras.Model(inputs, outputs)
    x = _images(2, (4, 32, 32, 3))
    y = np.array([[0.0], [1.0], [0.0], [1.0]], np.float32)

    before = [np.array(w) for w in model.trainable_weights]
    with tf.GradientTape() as tape:
        loss = keras.ops.mean((model(x) - y) ** 2)
    grads = tape.gradient(loss, model.trainable_weights)
    assert all(np.all(np.isfinite(g)) for g in grads)
    keras.optimizers.SGD(0.1).apply_gradients(zip(grads, model.trainable_weights))
    for old, new in zip(before, model.trainable_weights):
        assert not np.allclose(old, np.asarray(new))

    path = tmp_path / "spectrum.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_array_equal(np.asarray(reloaded(x)), np.asarray(model(x)))


@pytest.mark.parametrize("patch_size", [0, -4, 2.5, "16", True, None])
def test_rejects_bad_patch_size(patch_size):
    with pytest.raises(ValueError, match=rf"received patch_size={patch_size!r}"):
        PatchSpectrum(patch_size=patch_size)


@pytest.mark.parametrize("shape", [(30, 32), (32, 40)])
def test_rejects_image_size_not_divisible_by_patch_size(shape):
    message = rf"multiples of patch_size=16; received shape \(None, {shape[0]}, {shape[1]}, 3\)"
    with pytest.raises(ValueError, match=message):
        PatchSpectrum(patch_size=16)(keras.Input((*shape, 3)))
    with pytest.raises(ValueError, match="multiples of patch_size=16"):
        PatchSpectrum(patch_size=16)(_images(0, (1, *shape, 3)))


def test_rejects_non_rgb_input():
    with pytest.raises(ValueError, match=r"RGB .*received shape \(None, 32, 32, 1\)"):
        PatchSpectrum(patch_size=16)(keras.Input((32, 32, 1)))


def test_matches_numpy_fft2_on_looped_patches():
    # Non-square image so that a row/column mix-up in the patch order cannot pass.
    x = _images(3, (2, 32, 48, 3))
    amplitude, phase = (np.asarray(t) for t in PatchSpectrum(patch_size=16)(x))
    expected = patch_spectra(x, 16)
    assert amplitude.dtype == np.float32 and phase.dtype == np.float32
    np.testing.assert_allclose(amplitude, np.abs(expected), atol=2e-6)
    np.testing.assert_allclose(amplitude * np.exp(1j * phase), expected, atol=2e-6)
    # Phase of a near-zero coefficient is ill-defined; compare on the others, modulo 2 pi.
    reliable = np.abs(expected) > 1e-3
    wrapped = np.angle(np.exp(1j * (phase - np.angle(expected))))
    assert reliable.mean() > 0.5
    np.testing.assert_allclose(wrapped[reliable], 0.0, atol=1e-3)
    # DC term = patch mean of the grayscale image, phase 0 for a positive mean.
    np.testing.assert_allclose(amplitude[..., 0], expected[..., 0].real, atol=1e-6)
    np.testing.assert_array_equal(phase[..., 0], 0.0)


def test_patch_order_is_row_major():
    x = np.zeros((1, 32, 48, 3), np.float32)
    x[0, 16:32, 16:32, :] = 255.0  # block row 1, column 1 of a 2 x 3 grid -> patch 1 * 3 + 1
    amplitude, _ = PatchSpectrum(patch_size=16)(x)
    np.testing.assert_allclose(np.asarray(amplitude)[0, :, 0], [0, 0, 0, 0, 1, 0], atol=1e-6)


def test_mixed_bfloat16_keeps_the_fft_in_float32(mixed_bfloat16):
    x = _images(4, (2, 32, 32, 3))
    layer = PatchSpectrum(patch_size=16)
    amplitude, phase = layer(x)
    assert amplitude.dtype == tf.bfloat16 and phase.dtype == tf.bfloat16

    float32_amplitude, _ = PatchSpectrum(patch_size=16, dtype="float32")(x)
    np.testing.assert_allclose(
        np.asarray(float32_amplitude), np.abs(patch_spectra(x, 16)), atol=2e-6
    )
    # The mixed result is exactly the float32 spectrum rounded once to bfloat16 ...
    rounded = tf.cast(tf.cast(float32_amplitude, tf.bfloat16), tf.float32)
    np.testing.assert_array_equal(np.asarray(tf.cast(amplitude, tf.float32)), np.asarray(rounded))
    # ... which a bfloat16 grayscale image (what input autocasting would feed) does not give.
    gray_bf16 = tf.cast(tf.cast(x, tf.bfloat16), tf.float32).numpy()
    naive = np.abs(patch_spectra(gray_bf16, 16)).astype(np.float32)
    naive = tf.cast(tf.cast(naive, tf.bfloat16), tf.float32).numpy()
    assert np.mean(naive != np.asarray(rounded)) > 0.1


def test_flat_patches_give_zero_phase_and_finite_input_gradients():
    # Every AC coefficient of a flat patch is exactly 0, where atan2's gradient is 0/0.
    x = tf.Variable(np.full((1, 32, 32, 3), 128.0, np.float32))
    with tf.GradientTape() as tape:
        amplitude, phase = PatchSpectrum(patch_size=16)(x)
        total = tf.reduce_sum(amplitude) + tf.reduce_sum(phase)
    grad = tape.gradient(total, x)
    np.testing.assert_array_equal(np.asarray(amplitude)[..., 1:], 0.0)
    np.testing.assert_array_equal(np.asarray(phase), 0.0)
    assert np.all(np.isfinite(np.asarray(grad)))
