"""train_step / test_step: the logged loss equals alpha * SupCon + (1 - alpha) * BCE recomputed
with NumPy, the gradient of the logit bias matches its closed form, labels in any shape work.

These tests run eagerly (`run_eagerly=True`): the graph path is exercised by test_distribute.py
and test_learning.py, and tracing Xception's training graph costs ~20 s per model on 2 cores.
"""

import keras
import numpy as np
import pytest

from mclcr_keras.models import MCLCRConfig, build_mclcr, recompute_batchnorm_statistics
from mclcr_keras.models.batchnorm import batchnorm_layers

LOG_KEYS = {"loss", "bce", "supcon", "accuracy", "auc"}


def numpy_supcon(labels, z, temperature):
    """Khosla et al. SupCon, one view: mean over anchors, anchors without positives give 0."""
    labels = np.asarray(labels).reshape(-1)
    z = np.asarray(z, np.float64)
    sim = z @ z.T / temperature
    losses = []
    for i in range(len(labels)):
        others = np.arange(len(labels)) != i
        log_denominator = np.log(np.sum(np.exp(sim[i, others])))
        positives = others & (labels == labels[i])
        if not positives.any():
            losses.append(0.0)
            continue
        losses.append(-np.mean(sim[i, positives] - log_denominator))
    return float(np.mean(losses))


def numpy_bce(labels, logits):
    y = np.asarray(labels, np.float64).reshape(-1)
    x = np.asarray(logits, np.float64).reshape(-1)
    return float(np.mean(np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))))


def _batch(seed=0, batch=8, size=64):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (batch, size, size, 3)).astype("float32")
    labels = np.array([0, 1] * (batch // 2), "int64")
    return images, labels


def _model(optimizer=None, **changes):
    model = build_mclcr(MCLCRConfig.smoke(dropout=0.0, **changes), compile=False)
    model.compile(optimizer=optimizer, run_eagerly=True)
    return model


def _np(x):
    return keras.ops.convert_to_numpy(x)


def test_train_step_loss_matches_numpy_and_bias_gradient_closed_form():
    alpha, lr = 0.3, 0.5
    model = _model(keras.optimizers.SGD(learning_rate=lr), alpha=alpha, temperature=0.2)
    images, labels = _batch()
    # Training-mode outputs depend on batch statistics and weights only (not the moving BN
    # statistics this call updates), so they are exactly what the step below sees.
    outputs = model(images, training=True)
    bce = numpy_bce(labels, _np(outputs["logit"]))
    supcon = numpy_supcon(labels, _np(outputs["embedding"]), temperature=0.2)
    probability = _np(outputs["probability"]).reshape(-1)

    bias = model.get_layer("logit").bias
    kernel_before = _np(model.get_layer("encoder").kernel).copy()
    bias_before = float(_np(bias)[0])
    logs = model.train_on_batch(images, labels, return_dict=True)

    assert set(logs) == LOG_KEYS
    assert all(np.isfinite(v) for v in logs.values())
    assert logs["bce"] == pytest.approx(bce, rel=1e-4)
    assert logs["supcon"] == pytest.approx(supcon, rel=1e-4)
    assert logs["loss"] == pytest.approx(alpha * supcon + (1 - alpha) * bce, rel=1e-4)
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


def test_test_step_matches_numpy_for_every_label_format():
    model = _model(alpha=0.5)
    images, labels = _batch(seed=2)
    outputs = model.predict(images, verbose=0)
    bce = numpy_bce(labels, outputs["logit"])
    supcon = numpy_supcon(labels, outputs["embedding"], temperature=0.1)
    for y in (labels, labels.reshape(-1, 1), labels.astype("float32"),
              labels.reshape(-1, 1).astype("int32")):
        logs = model.evaluate(images, y, batch_size=8, verbose=0, return_dict=True)
        assert set(logs) == LOG_KEYS
        assert logs["bce"] == pytest.approx(bce, rel=1e-4)
        assert logs["supcon"] == pytest.approx(supcon, rel=1e-4)
        assert logs["loss"] == pytest.approx(0.5 * supcon + 0.5 * bce, rel=1e-4)
        predicted = (outputs["probability"].reshape(-1) > 0.5).astype(int)
        assert logs["accuracy"] == pytest.approx(np.mean(predicted == labels))


def test_metrics_accumulate_over_batches():
    model = _model()
    images, labels = _batch(seed=3, batch=16)
    outputs = model.predict(images, verbose=0)
    whole = numpy_bce(labels, outputs["logit"])
    logs = model.evaluate(images, labels, batch_size=8, verbose=0, return_dict=True)
    assert logs["bce"] == pytest.approx(whole, rel=1e-4)  # mean over both batches
    halves = [numpy_supcon(labels[i:i + 8], outputs["embedding"][i:i + 8], 0.1) for i in (0, 8)]
    assert logs["supcon"] == pytest.approx(np.mean(halves), rel=1e-4)


def test_fit_reports_validation_metrics():
    model = _model(keras.optimizers.SGD(learning_rate=0.01))
    images, labels = _batch(seed=4)
    history = model.fit(images, labels, batch_size=8, epochs=1, verbose=0,
                        validation_data=(images, labels))
    assert set(history.history) == LOG_KEYS | {f"val_{k}" for k in LOG_KEYS}


def test_misuse_raises_clear_errors():
    model = _model()
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


def test_bn_momentum_option_reaches_every_backbone_batchnorm():
    model = build_mclcr(MCLCRConfig.smoke(bn_momentum=0.9), compile=False)
    momenta = {layer.momentum for layer in batchnorm_layers(model)}
    assert momenta == {0.9} and len(batchnorm_layers(model)) == 40
    default = build_mclcr(MCLCRConfig.smoke(variant="baseline"), compile=False)
    assert {layer.momentum for layer in batchnorm_layers(default)} == {0.99}
