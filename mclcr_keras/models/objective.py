"""The MC-LCR training objective on one replica: alpha * SupCon + (1 - alpha) * BCE.

Under `tf.distribute` every replica holds a slice of the global batch. SupCon needs the whole
batch as its contrast set, so each replica contrasts its own anchors against the embeddings and
labels gathered from all replicas (`ReplicaContext.all_gather`, whose gradient all-reduces and
slices back, so every replica's embeddings receive the gradient of every anchor). Each replica's
loss is the *sum* of its per-sample losses divided by the *global* batch size, so the gradients
that the optimizer sums across replicas equal the single-device gradient of the global-batch
mean (Keras divides a replica's mean loss by `num_replicas_in_sync` for the same reason; dividing
the sum by the global batch is the same thing, and stays exact when replicas hold unequal slices).
"""

from __future__ import annotations

import tensorflow as tf

from mclcr_keras.losses import supervised_contrastive_loss


def flat_labels(labels) -> tf.Tensor:
    """Labels given as `(B,)` or `(B, 1)`, int or float, as a float32 `(B,)` vector of 0/1."""
    labels = tf.convert_to_tensor(labels)
    if labels.shape.rank is not None and labels.shape.rank > 2:
        raise ValueError(f"labels must have shape (B,) or (B, 1); got shape {labels.shape}")
    return tf.reshape(tf.cast(labels, tf.float32), (-1,))


def replica_objective(
    labels,
    logits,
    embeddings,
    alpha: float,
    temperature: float = 0.1,
    denominator: str = "all",
) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """The loss to differentiate on this replica, and its per-replica parts for the trackers.

    Args:
        labels: `(b,)` or `(b, 1)` labels of this replica's slice (0 real, 1 fake).
        logits: `(b, 1)` logits.
        embeddings: `(b, E)` L2-normalised embeddings z.
        alpha: SupCon weight in [0, 1].
        temperature: SupCon temperature.
        denominator: `"all"` or `"negatives"` (see `mclcr_keras.losses.SupConLoss`).

    Returns:
        `(objective, parts)`: `objective` = sum over this replica's samples of
        `alpha * supcon_i + (1 - alpha) * bce_i`, divided by the global batch size (equal to the
        batch mean on one device); `parts` = `{"loss", "bce", "supcon"}` means over this
        replica's samples (what Keras' loss tracker sees), plus `"batch"`, the local batch size.

    Example:

    >>> z = tf.math.l2_normalize(tf.random.normal((4, 8), seed=1), axis=1)
    >>> objective, parts = replica_objective([0, 1, 0, 1], tf.zeros((4, 1)), z, alpha=0.5)
    >>> int(parts["batch"]), round(float(parts["bce"]), 4)  # the BCE of a logit of 0 is log 2
    (4, 0.6931)
    >>> bool(abs(float(objective) - float(parts["loss"])) < 1e-6)  # one device: the batch mean
    True
    """
    labels = flat_labels(labels)
    logits = tf.reshape(tf.cast(logits, tf.float32), (-1,))
    embeddings = tf.cast(embeddings, tf.float32)
    bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)

    context = tf.distribute.get_replica_context()
    replicas = context.num_replicas_in_sync if context is not None else 1
    local_batch = tf.shape(labels)[:1]
    if replicas > 1:
        sizes = context.all_gather(local_batch, axis=0)
        offset = tf.reduce_sum(sizes[: context.replica_id_in_sync_group])
        global_batch = tf.reduce_sum(sizes)
        contrast_z = context.all_gather(embeddings, axis=0)
        contrast_labels = context.all_gather(labels, axis=0)
        supcon = supervised_contrastive_loss(
            labels,
            embeddings,
            temperature=temperature,
            denominator=denominator,
            contrast_labels=contrast_labels,
            contrast_z=contrast_z,
            anchor_offset=offset,
        )
    else:
        global_batch = local_batch[0]
        supcon = supervised_contrastive_loss(
            labels, embeddings, temperature=temperature, denominator=denominator
        )

    per_sample = alpha * supcon + (1.0 - alpha) * bce
    objective = tf.reduce_sum(per_sample) / tf.cast(global_batch, tf.float32)
    parts = {
        "loss": tf.reduce_mean(per_sample),
        "bce": tf.reduce_mean(bce),
        "supcon": tf.reduce_mean(supcon),
        "batch": local_batch[0],
    }
    return objective, parts


def scale_for_replicas(value: tf.Tensor) -> tf.Tensor:
    """Divide a per-replica mean (e.g. the sum of `model.losses`) by the number of replicas."""
    context = tf.distribute.get_replica_context()
    replicas = context.num_replicas_in_sync if context is not None else 1
    return value / replicas if replicas > 1 else value
