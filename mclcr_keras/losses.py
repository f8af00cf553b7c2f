"""Supervised contrastive loss (Khosla et al. 2020) and the MC-LCR paper's Eq. 13 variant."""

import keras
from keras import ops

from mclcr_keras.models.config import SUPCON_DENOMINATORS


def _check_args(temperature, denominator) -> None:
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, (int, float))
        or not temperature > 0
    ):
        raise ValueError(
            f"`temperature` must be a positive number; received temperature={temperature!r}"
        )
    if denominator not in SUPCON_DENOMINATORS:
        raise ValueError(
            f"`denominator` must be one of {SUPCON_DENOMINATORS}; "
            f"received denominator={denominator!r}"
        )


def supervised_contrastive_loss(
    labels,
    z,
    temperature: float = 0.1,
    denominator: str = "all",
    contrast_labels=None,
    contrast_z=None,
    anchor_offset=0,
):
    """Per-anchor supervised contrastive loss; the caller chooses the reduction.

    Anchor `i` (row `i` of `z`) is contrasted against the contrast set (`contrast_z`, default
    `z` itself), in which it appears at index `anchor_offset + i`; that entry is excluded as
    "self". Positives are the other contrast samples with the anchor's label.

    - `denominator="all"` (Khosla et al., SupContrast reference code with
      base_temperature = temperature):
      `loss_i = -mean_{p in P(i)} log( exp(s_ip) / sum_{a != i} exp(s_ia) )`, `s = z z_c^T / T`.
    - `denominator="negatives"` (MC-LCR Eq. 13 as printed): the sum runs over the samples of
      the other classes only, `sum_{n: y_n != y_i} exp(s_in)`.

    An anchor without a positive, or (for "negatives") without a negative, has loss 0. The
    reference SupCon averages over *all* anchors, so `mean(loss)` reproduces it; under
    `tf.distribute`, pass this replica's anchors with the globally gathered contrast set and
    `anchor_offset = replica_id * local_batch`, then sum and divide by the global batch size.
    Computed in float32 with the row maximum subtracted before `exp`.

    Args:
        labels: `(A,)` or `(A, 1)` anchor labels (ints or floats compared for equality).
        z: `(A, E)` anchor embeddings, L2-normalised.
        temperature: positive float T.
        denominator: `"all"` or `"negatives"`.
        contrast_labels: `(C,)` or `(C, 1)` labels of the contrast set; default `labels`.
        contrast_z: `(C, E)` contrast embeddings; default `z`.
        anchor_offset: int or scalar int tensor, index of anchor 0 in the contrast set.

    Returns:
        float32 tensor `(A,)`, the loss of each anchor.

    Example:
        >>> import numpy as np
        >>> z = keras.ops.normalize(np.random.randn(8, 128).astype("float32"), axis=-1)
        >>> per_anchor = supervised_contrastive_loss(np.array([0, 1] * 4), z)
        >>> tuple(per_anchor.shape)  # keras.ops.mean(per_anchor) equals SupContrast's loss
        (8,)
    """
    _check_args(temperature, denominator)
    if (contrast_labels is None) != (contrast_z is None):
        raise ValueError(
            "Pass both `contrast_labels` and `contrast_z` or neither; received "
            f"contrast_labels={'None' if contrast_labels is None else 'a tensor'}, "
            f"contrast_z={'None' if contrast_z is None else 'a tensor'}"
        )
    anchor_z = ops.cast(ops.convert_to_tensor(z), "float32")
    anchor_labels = ops.reshape(ops.cast(ops.convert_to_tensor(labels), "float32"), (-1,))
    if contrast_z is None:
        contrast_z, contrast_labels = anchor_z, anchor_labels
    else:
        contrast_z = ops.cast(ops.convert_to_tensor(contrast_z), "float32")
        contrast_labels = ops.reshape(
            ops.cast(ops.convert_to_tensor(contrast_labels), "float32"), (-1,)
        )
    if len(anchor_z.shape) != 2 or len(contrast_z.shape) != 2:
        raise ValueError(
            "Embeddings must be rank 2 (batch, dim); received shapes "
            f"{tuple(anchor_z.shape)} and {tuple(contrast_z.shape)}"
        )

    logits = ops.matmul(anchor_z, ops.transpose(contrast_z)) / temperature  # (A, C)
    num_anchors = ops.shape(logits)[0]
    num_contrast = ops.shape(logits)[1]
    anchor_index = ops.arange(num_anchors, dtype="int32") + ops.cast(anchor_offset, "int32")
    is_self = ops.equal(
        ops.expand_dims(anchor_index, 1),
        ops.expand_dims(ops.arange(num_contrast, dtype="int32"), 0),
    )
    same_label = ops.equal(ops.expand_dims(anchor_labels, 1), ops.expand_dims(contrast_labels, 0))
    positive = ops.logical_and(same_label, ops.logical_not(is_self))
    if denominator == "all":
        in_denominator = ops.logical_not(is_self)
    else:
        in_denominator = ops.logical_not(same_label)

    # Shift each row by the max over its denominator set, so the sum of exps is >= 1.
    lowest = ops.convert_to_tensor(-3.0e38, "float32")
    row_max = ops.max(ops.where(in_denominator, logits, lowest), axis=1, keepdims=True)
    has_denominator = ops.any(in_denominator, axis=1)
    row_max = ops.stop_gradient(
        ops.where(ops.expand_dims(has_denominator, 1), row_max, ops.zeros_like(row_max))
    )
    shifted = logits - row_max
    exp_shifted = ops.exp(ops.where(in_denominator, shifted, ops.full_like(shifted, -1.0e30)))
    denominator_sum = ops.sum(exp_shifted, axis=1, keepdims=True)
    log_denominator = ops.log(
        ops.where(denominator_sum > 0, denominator_sum, ops.ones_like(denominator_sum))
    )
    log_prob = shifted - log_denominator

    positive_f = ops.cast(positive, "float32")
    num_positives = ops.sum(positive_f, axis=1)
    sum_log_prob = ops.sum(ops.where(positive, log_prob, ops.zeros_like(log_prob)), axis=1)
    per_anchor = -sum_log_prob / ops.maximum(num_positives, 1.0)
    valid = ops.logical_and(num_positives > 0, has_denominator)
    return ops.where(valid, per_anchor, ops.zeros_like(per_anchor))


@keras.saving.register_keras_serializable(package="mclcr_keras")
class SupConLoss(keras.losses.Loss):
    """Supervised contrastive loss, called as `loss(labels, z)` on L2-normalised embeddings.

    The default (`denominator="all"`) equals `SupConLoss` of the SupContrast reference code
    (Khosla et al., "Supervised Contrastive Learning", NeurIPS 2020) with one view per sample
    and `base_temperature = temperature`: the mean over all anchors, anchors without a positive
    contributing 0. `denominator="negatives"` is Eq. 13 of MC-LCR (Wang et al., KBS 2022,
    arXiv:2110.03290) as printed: the softmax denominator runs over the other class only.
    See `supervised_contrastive_loss` for the per-anchor form used under `tf.distribute`.

    Args:
        temperature: positive float, the softmax temperature T.
        denominator: `"all"` or `"negatives"`.
        name: loss name.
        **kwargs: `keras.losses.Loss` arguments (`reduction`, `dtype`).

    Example:
        >>> import numpy as np
        >>> loss = SupConLoss(temperature=0.1)
        >>> z = keras.ops.normalize(np.random.randn(16, 128).astype("float32"), axis=-1)
        >>> value = loss(np.array([0, 1] * 8), z)  # scalar float32 tensor
        >>> bool(value > 0)
        True
    """

    def __init__(
        self,
        temperature: float = 0.1,
        denominator: str = "all",
        name: str = "supcon",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        _check_args(temperature, denominator)
        self.temperature = temperature
        self.denominator = denominator

    def call(self, y_true, y_pred):
        return supervised_contrastive_loss(
            y_true, y_pred, temperature=self.temperature, denominator=self.denominator
        )

    def get_config(self):
        config = super().get_config()
        config.update({"temperature": self.temperature, "denominator": self.denominator})
        return config
