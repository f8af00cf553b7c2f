"""mixed_bfloat16: the model builds and trains a step; FFT, Gram sums and the heads stay float32."""

import keras
import numpy as np
import tensorflow as tf
from references import patch_spectra

from mclcr_keras.models import MCLCRConfig, build_mclcr


def _graph_ops(model, size):
    function = tf.function(lambda x: model.feature_extractor(x, training=False))
    graph = function.get_concrete_function(tf.TensorSpec((2, size, size, 3), tf.float32)).graph
    return graph.get_operations()


def test_mixed_bfloat16_builds_and_trains(mixed_bfloat16):
    model = build_mclcr(MCLCRConfig.smoke(dropout=0.0), compile=False)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), run_eagerly=True)
    assert model.get_layer("encoder").compute_dtype == "bfloat16"
    assert all(w.dtype == "float32" for w in model.weights)  # variables stay float32

    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (8, 64, 64, 3)).astype("float32")
    labels = np.array([0, 1] * 4)
    outputs = model(images)
    assert {key: value.dtype for key, value in outputs.items()} == {
        "logit": "float32", "probability": "float32", "embedding": "float32"
    }
    features = model.feature_extractor(images)
    assert features["F_E"].dtype == "bfloat16" and features["GF"].dtype == "bfloat16"
    # The spectrum is taken of the float32 pixels: only its final cast to bfloat16 (8 bits of
    # mantissa) rounds it.
    assert features["amplitude"].dtype == "bfloat16"
    amplitude = keras.ops.convert_to_numpy(keras.ops.cast(features["amplitude"], "float32"))
    np.testing.assert_allclose(amplitude, np.abs(patch_spectra(images, 16)), rtol=1e-2,
                               atol=1e-4)

    before = keras.ops.convert_to_numpy(model.get_layer("encoder").kernel).copy()
    logs = model.train_on_batch(images, labels, return_dict=True)
    assert set(logs) == {"loss", "bce", "supcon", "accuracy", "auc"}
    assert all(np.isfinite(value) for value in logs.values())
    assert not np.allclose(keras.ops.convert_to_numpy(model.get_layer("encoder").kernel), before)

    ops = _graph_ops(model, 64)
    ffts = [op for op in ops if op.type == "FFT2D"]
    assert ffts and all(op.inputs[0].dtype == tf.complex64 for op in ffts)
    gram_sums = [op for op in ops if "gram_style" in op.name and op.type in ("Mean", "Mul")]
    assert gram_sums and all(op.outputs[0].dtype == tf.float32 for op in gram_sums)
    # ... while the backbone around them does run in bfloat16.
    convs = [op for op in ops if op.type in ("Conv2D", "DepthwiseConv2dNative")]
    assert convs and all(op.outputs[0].dtype == tf.bfloat16 for op in convs)
