"""The MC-LCR objective (`mclcr_keras.models.objective`) and the model's train_step / test_step:
the logged loss equals alpha * SupCon + (1 - alpha) * BCE recomputed with NumPy (tests/references),
the gradient of the logit bias matches its closed form, labels in any shape work.

These tests run eagerly (`run_eagerly=True`): the graph path is exercised by test_distribute.py
and test_learning.py, and tracing Xception's training graph costs ~20 s per model on 2 cores.
The tests of the default configuration share one model (`default_model`); each computes its
expected values from that model's outputs at the time, so the order they run in is irrelevant.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from references import binary_cross_entropy, supcon, supcon_eq13

from mclcr_keras.models import MCLCRConfig, build_mclcr, recompute_batchnorm_statistics
from mclcr_keras.models.batchnorm import batchnorm_layers
from mclcr_keras.models.objective import flat_labels, replica_objective, scale_for_replicas

LOG_KEYS = {"loss", "bce", "supcon", "accuracy", "auc"}


@pytest.mark.parametrize("denominator", ["all", "negatives"])
def test_replica_objective_on_one_device_matches_numpy(denominator):
    rng = np.random.default_rng(9)
    labels = np.array([0, 1, 1, 0, 1, 0])
    logits = rng.normal(size=(6, 1)).astype("float32")
    z = rng.normal(size=(6, 8))
    z = (z / np.linalg.norm(z, axis=1, keepdims=True)).astype("float32")
    objective, parts = replica_objective(labels.reshape(-1, 1), logits, z, alpha=0.3,
                                         temperature=0.2, denominator=denominator)
    bce = binary_cross_entropy(labels, logits)
    contrast = supcon(z, labels, 0.2) if denominator == "all" else supcon_eq13(z, labels, 0.2)
    assert float(parts["bce"]) == pytest.approx(bce, rel=1e-5)
    assert float(parts["supcon"]) == pytest.approx(contrast, rel=1e-5)
    assert float(parts["loss"]) == pytest.approx(0.3 * contrast + 0.7 * bce, rel=1e-5)
    # One device: the sum over the batch divided by the global batch is the batch mean.
    assert float(objective) == pytest.approx(0.3 * contrast + 0.7 * bce, rel=1e-5)
    assert int(parts["batch"]) == 6


def test_flat_labels_and_replica_scale():
    for labels in ([0, 1, 1], [[0], [1], [1]], np.array([0.0, 1.0, 1.0], "float32")):
        flat = flat_labels(labels)
        assert flat.dtype == tf.float32 and flat.numpy().tolist() == [0.0, 1.0, 1.0]
    with pytest.raises(ValueError, match=r"\(B,\) or \(B, 1\); got shape \(2, 1, 1\)"):
        flat_labels(np.zeros((2, 1, 1)))
    assert float(scale_for_replicas(tf.constant(3.0))) == 3.0  # one replica: unchanged


def _batch(seed=0, batch=8, size=64):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (batch, size, size, 3)).astype("float32")
    labels = np.array([0, 1] * (batch // 2), "int64")
    return images, labels


def _model(optimizer=None, **changes):
    model = build_mclcr(MCLCRConfig.smoke(dropout=0.0, **changes), compile=False)
    model.compile(optimizer=optimizer, run_eagerly=True)
    return model


@pytest.fixture(scope="module")
def default_model():
    """`MCLCRConfig.smoke(dropout=0.0)` (alpha 0.5, temperature 0.1), AdamW, eager."""
    return _model()


def _np(x):
    return keras.ops.convert_to_numpy(x)


def test_train_step_loss_matches_numpy_and_bias_gradient_closed_form():
    alpha, lr = 0.3, 0.5
    model = _model(keras.optimizers.SGD(learning_rate=lr), alpha=alpha, temperature=0.2)
    images, labels = _batch()
    # Training-mode outputs depend on batch statistics and weights only (not the moving BN
    # statistics this call updates), so they are exactly what the step below sees.
    outputs = model(images, training=True)
    bce = binary_cross_entropy(labels, _np(outputs["logit"]))
    contrast = supcon(_np(outputs["embedding"]), labels, 0.2)
    probability = _np(outputs["probability"]).reshape(-1)

    bias = model.get_layer("logit").bias
    kernel_before = _np(model.get_layer("encoder").kernel).copy()
    bias_before = float(_np(bias)[0])
    logs = model.train_on_batch(images, labels, return_dict=True)

    assert set(logs) == LOG_KEYS
    assert all(np.isfinite(v) for v in logs.values())
    assert logs["bce"] == pytest.approx(bce, rel=1e-4)
    assert logs["supcon"] == pytest.approx(contrast, rel=1e-4)
    assert logs["loss"] == pytest.approx(alpha * contrast + (1 - alpha) * bce, rel=1e-4)
    # dL/db for the logit bias only comes from BCE: (1 - alpha) * mean(p - y).
    expected_step = -lr * (1 - alpha) * np.mean(probability - labels)
    assert float(_np(bias)[0]) - bias_before == pytest.approx(expected_step, rel=1e-3, abs=1e-7)
    assert not np.allclose(_np(model.get_layer("encoder").kernel), kernel_before)


def test_no_supcon_variant_leaves_projection_untrained_but_logs_supcon():
    model = _model(keras.optimizers.SGD(learning_rate=0.5), variant="no_supcon")
    images, labels = _batch(seed=1)
    projection_before = _np(model.get_layer("projection").kernel).copy()
    logit_before = _np(model.get_layer("logit").kernel).copy()
    logs = model.train_on_batch(images, labels, return_dict=True)
    assert logs["loss"] == pytest.approx(logs["bce"], rel=1e-6)
    assert logs["supcon"] > 0
    np.testing.assert_array_equal(_np(model.get_layer("projection").kernel), projection_before)
    assert not np.allclose(_np(model.get_layer("logit").kernel), logit_before)


def test_test_step_matches_numpy_for_every_label_format(default_model):
    model = default_model
    assert model.config.alpha == 0.5 and model.config.temperature == 0.1
    images, labels = _batch(seed=2)
    outputs = model.predict(images, verbose=0)
    bce = binary_cross_entropy(labels, outputs["logit"])
    contrast = supcon(outputs["embedding"], labels, 0.1)
    for y in (labels, labels.reshape(-1, 1), labels.astype("float32"),
              labels.reshape(-1, 1).astype("int32")):
        logs = model.evaluate(images, y, batch_size=8, verbose=0, return_dict=True)
        assert set(logs) == LOG_KEYS
        assert logs["bce"] == pytest.approx(bce, rel=1e-4)
        assert logs["supcon"] == pytest.approx(contrast, rel=1e-4)
        assert logs["loss"] == pytest.approx(0.5 * contrast + 0.5 * bce, rel=1e-4)
        predicted = (outputs["probability"].reshape(-1) > 0.5).astype(int)
        assert logs["accuracy"] == pytest.approx(np.mean(predicted == labels))


def test_metrics_accumulate_over_batches(default_model):
    model = default_model
    images, labels = _batch(seed=3, batch=16)
    outputs = model.predict(images, verbose=0)
    whole = binary_cross_entropy(labels, outputs["logit"])
    logs = model.evaluate(images, labels, batch_size=8, verbose=0, return_dict=True)
    assert logs["bce"] == pytest.approx(whole, rel=1e-4)  # mean over both batches
    halves = [supcon(outputs["embedding"][i:i + 8], labels[i:i + 8], 0.1) for i in (0, 8)]
    assert logs["supcon"] == pytest.approx(np.mean(halves), rel=1e-4)


def test_fit_reports_validation_metrics(default_model):
    images, labels = _batch(seed=4)
    history = default_model.fit(images, labels, batch_size=8, epochs=1, verbose=0,
                                validation_data=(images, labels))
    assert set(history.history) == LOG_KEYS | {f"val_{k}" for k in LOG_KEYS}
    assert all(np.isfinite(values[0]) for values in history.history.values())


def test_misuse_raises_clear_errors(default_model):
    model = default_model
    images, labels = _batch(seed=5)
    with pytest.raises(ValueError, match="sample_weight"):
        model.train_on_batch(images, labels, sample_weight=np.ones(8))
    with pytest.raises(ValueError, match="no labels"):
        model.evaluate(images, verbose=0)
    with pytest.raises(ValueError, match="computes its own loss"):
        model.compile(loss="binary_crossentropy")


def test_recompute_batchnorm_statistics_gives_mean_of_batch_statistics():
    inputs = keras.Input((4,))
    bn = keras.layers.BatchNormalization(momentum=0.99)
    model = keras.Model(inputs, bn(keras.layers.Dense(3, name="dense")(inputs)))
    rng = np.random.default_rng(0)
    batches = [rng.normal(loc=i, size=(8, 4)).astype("float32") for i in range(3)]
    assert recompute_batchnorm_statistics(model, iter(batches)) == 3
    kernel, bias = (_np(w) for w in model.get_layer("dense").weights)
    hidden = [b @ kernel + bias for b in batches]
    np.testing.assert_allclose(_np(bn.moving_mean), np.mean([h.mean(0) for h in hidden], 0),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(_np(bn.moving_variance), np.mean([h.var(0) for h in hidden], 0),
                               rtol=1e-4, atol=1e-5)
    assert bn.momentum == 0.99
    with pytest.raises(ValueError, match="at least one batch"):
        recompute_batchnorm_statistics(model, [])


def test_bn_momentum_option_reaches_every_backbone_batchnorm(default_model):
    model = build_mclcr(MCLCRConfig.smoke(bn_momentum=0.9), compile=False)
    momenta = {layer.momentum for layer in batchnorm_layers(model)}
    assert momenta == {0.9} and len(batchnorm_layers(model)) == 40
    assert {layer.momentum for layer in batchnorm_layers(default_model)} == {0.99}
