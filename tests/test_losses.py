"""SupConLoss against a NumPy port of the SupContrast reference and the paper's Eq. 13."""


import keras
import numpy as np
import pytest
import tensorflow as tf
from references import supcon, supcon_eq13, supcon_eq13_per_anchor, supcon_per_anchor

from mclcr_keras.losses import SupConLoss, supervised_contrastive_loss


def _embeddings(seed: int, batch: int, dim: int = 16) -> np.ndarray:
    z = np.random.default_rng(seed).normal(size=(batch, dim))
    return (z / np.linalg.norm(z, axis=1, keepdims=True)).astype(np.float32)


LABEL_MIXES = {
    "balanced": np.array([0, 1] * 8),
    "three_classes": np.random.default_rng(7).integers(0, 3, size=12),
    "some_without_positive": np.array([0, 1, 1, 2, 3, 3, 3, 0, 4]),
    "single_class": np.zeros(10, np.int64),
    "all_distinct": np.arange(6),
}


@pytest.mark.parametrize("mix", sorted(LABEL_MIXES))
@pytest.mark.parametrize("temperature", [0.1, 0.07, 0.5])
def test_default_matches_supcontrast_reference(mix, temperature):
    labels = LABEL_MIXES[mix]
    z = _embeddings(len(mix), len(labels))
    expected = supcon(z, labels, temperature)
    got = SupConLoss(temperature=temperature)(labels, z)
    assert got.dtype == tf.float32 and got.shape == ()
    np.testing.assert_allclose(float(got), expected, rtol=1e-5, atol=1e-5)


def test_reference_values_are_not_trivial():
    # Guards the parametrised check above against both sides degenerating to the same constant.
    labels = LABEL_MIXES["balanced"]
    values = {round(supcon(_embeddings(s, 16), labels, 0.1), 4)
              for s in range(3)}
    assert len(values) == 3 and all(v > 0 for v in values)
    assert supcon(_embeddings(0, 6), LABEL_MIXES["all_distinct"], 0.1) == 0


def test_label_shapes_and_dtypes_are_equivalent():
    labels = np.array([0, 1, 1, 0, 2, 2, 1, 0])
    z = _embeddings(11, 8)
    loss = SupConLoss()
    expected = supcon(z, labels, 0.1)
    for variant in (labels, labels[:, None], labels.astype(np.float32),
                    tf.constant(labels, tf.int32)):
        np.testing.assert_allclose(float(loss(variant, z)), expected, rtol=1e-5)


def test_two_views_equal_the_reference_multi_view_loss():
    # SupContrast stacks the views as extra anchors; feeding them as a 2B batch is the same loss.
    labels = np.array([0, 1, 0, 1, 2, 0])
    views = np.stack([_embeddings(12, 6), _embeddings(13, 6)], axis=1)
    expected = supcon(views, labels, 0.1)
    got = SupConLoss()(np.concatenate([labels, labels]), np.concatenate([views[:, 0], views[:, 1]]))
    np.testing.assert_allclose(float(got), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mix", sorted(LABEL_MIXES))
def test_negatives_denominator_matches_eq13(mix):
    labels = LABEL_MIXES[mix]
    z = _embeddings(20 + len(mix), len(labels))
    got = SupConLoss(temperature=0.1, denominator="negatives")(labels, z)
    np.testing.assert_allclose(float(got), supcon_eq13(z, labels, 0.1), rtol=1e-5, atol=1e-5)


def test_negatives_differs_from_default():
    labels, z = LABEL_MIXES["balanced"], _embeddings(30, 16)
    assert abs(float(SupConLoss()(labels, z))
               - float(SupConLoss(denominator="negatives")(labels, z))) > 1e-2


@pytest.mark.parametrize("denominator", ["all", "negatives"])
@pytest.mark.parametrize("mix", ["single_class", "all_distinct", "some_without_positive"])
def test_degenerate_batches_give_finite_loss_and_gradients(denominator, mix):
    labels = LABEL_MIXES[mix]
    z = tf.Variable(_embeddings(40, len(labels)))
    with tf.GradientTape() as tape:
        loss = SupConLoss(denominator=denominator)(labels, tf.math.l2_normalize(z, axis=1))
    grad = tape.gradient(loss, z)
    assert np.isfinite(float(loss))
    assert np.all(np.isfinite(np.asarray(grad)))
    if mix == "all_distinct" or (mix == "single_class" and denominator == "negatives"):
        assert float(loss) == 0.0  # no anchor has both a positive and a denominator


def test_low_temperature_is_stable():
    labels = LABEL_MIXES["three_classes"]
    z = _embeddings(50, len(labels))
    for temperature in (0.01, 0.005):
        expected = supcon(z, labels, temperature)
        got = float(SupConLoss(temperature=temperature)(labels, z))
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)
        got = float(SupConLoss(temperature=temperature, denominator="negatives")(labels, z))
        np.testing.assert_allclose(got, supcon_eq13(z, labels, temperature), rtol=1e-5)


@pytest.mark.parametrize("denominator", ["all", "negatives"])
def test_replica_slices_against_the_global_batch_reproduce_the_full_loss(denominator):
    labels = np.array([0, 1] * 8)
    z = _embeddings(60, 16)
    if denominator == "all":
        expected = supcon_per_anchor(z, labels, 0.1)
    else:
        expected = supcon_eq13_per_anchor(z, labels, 0.1)
    full = supervised_contrastive_loss(labels, z, 0.1, denominator)
    assert tuple(full.shape) == (16,)
    np.testing.assert_allclose(np.asarray(full), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        float(SupConLoss(denominator=denominator)(labels, z)), np.mean(expected), rtol=1e-5
    )

    @tf.function
    def replica_loss(offset):
        anchors = tf.slice(z, [offset, 0], [4, -1])
        anchor_labels = tf.slice(labels, [offset], [4])
        return supervised_contrastive_loss(
            anchor_labels, anchors, 0.1, denominator,
            contrast_labels=labels, contrast_z=z, anchor_offset=offset,
        )

    parts = [np.asarray(replica_loss(tf.constant(r * 4))) for r in range(4)]
    np.testing.assert_allclose(np.concatenate(parts), expected, rtol=1e-5, atol=1e-6)
    # A wrong offset treats a different sample as "self": the loss changes.
    wrong = supervised_contrastive_loss(
        labels[4:8], z[4:8], 0.1, denominator, contrast_labels=labels, contrast_z=z
    )
    assert not np.allclose(np.asarray(wrong), expected[4:8])


def test_bfloat16_embeddings_are_computed_in_float32():
    labels, z = LABEL_MIXES["balanced"], _embeddings(70, 16)
    z_bf16 = tf.cast(z, tf.bfloat16)
    got = supervised_contrastive_loss(labels, z_bf16)
    assert got.dtype == tf.float32
    rounded = np.asarray(tf.cast(z_bf16, tf.float32))
    expected = supcon(rounded, labels, 0.1)
    np.testing.assert_allclose(float(np.mean(got)), expected, rtol=1e-5, atol=1e-5)


def test_config_round_trip():
    loss = SupConLoss(temperature=0.2, denominator="negatives", name="contrast")
    config = loss.get_config()
    assert config["temperature"] == 0.2 and config["denominator"] == "negatives"
    assert config["name"] == "contrast"
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert isinstance(restored, SupConLoss)
    assert restored.get_config() == config
    assert SupConLoss.from_config(config).get_config() == config
    labels, z = LABEL_MIXES["three_classes"], _embeddings(80, 12)
    assert float(restored(labels, z)) == float(loss(labels, z))
    np.testing.assert_allclose(float(restored(labels, z)), supcon_eq13(z, labels, 0.2),
                               rtol=1e-5, atol=1e-6)
    assert SupConLoss().name == "supcon"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"temperature": 0.0}, "received temperature=0.0"),
        ({"temperature": -0.1}, "received temperature=-0.1"),
        ({"temperature": "0.1"}, "received temperature='0.1'"),
        ({"denominator": "other"}, "received denominator='other'"),
    ],
)
def test_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SupConLoss(**kwargs)
    with pytest.raises(ValueError, match=message):
        supervised_contrastive_loss(np.zeros(2), _embeddings(0, 2), **kwargs)


def test_rejects_half_a_contrast_set_and_bad_ranks():
    z = _embeddings(0, 4)
    with pytest.raises(ValueError, match="contrast_labels=None, contrast_z=a tensor"):
        supervised_contrastive_loss(np.zeros(4), z, contrast_z=z)
    with pytest.raises(ValueError, match=r"rank 2 .*received shapes \(4, 2, 8\)"):
        supervised_contrastive_loss(np.zeros(4), z.reshape(4, 2, 8))
