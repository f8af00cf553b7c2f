"""The data of a training run: the training stream, the per-epoch validation and their sizes.

`make_datasets` builds, from the run's options, the class-balanced endless training stream of the
``train`` split and an `EpochValidation` callback over the ``val`` split (balanced batches for the
objective, every frame once for the AUC and the threshold, fixed training batches for precise BN).
"""

from __future__ import annotations

import logging
from typing import Any

from mclcr_keras.data.splits import TRAIN, VAL
from mclcr_keras.errors import UsageError
from mclcr_keras.training.distribute import distribute_global_batches, replica_safe_batches
from mclcr_keras.training.validation import EpochValidation

logger = logging.getLogger(__name__)

# Seed of the fixed training batches that precise BN recomputes the statistics on.
PRECISE_BN_SEED = 7919

__all__ = ["PRECISE_BN_SEED", "make_datasets"]


def make_datasets(options: dict[str, Any], strategy, epochs_done: int):
    """Training stream, the per-epoch validation (`EpochValidation`) and the step counts."""
    import numpy as np
    import tensorflow as tf

    from mclcr_keras.data.pipeline import make_dataset
    from mclcr_keras.data.records import count_records

    records = options["records"]
    batch = options["batch_size"]
    size = options["image_size"]
    train_counts = count_records(records, TRAIN)
    val_counts = count_records(records, VAL)
    smaller = min(train_counts.values())
    steps = options["steps_per_epoch"] or max(1, 2 * smaller // batch)
    replicas = strategy.num_replicas_in_sync
    # A resumed run draws a fresh training stream, not the one its first epochs saw.
    seed = None if options["seed"] is None else options["seed"] + 1000 * epochs_done

    missing = [name for name, count in val_counts.items() if count == 0]
    if missing:
        raise UsageError(f"the val split of {records} holds no {' or '.join(missing)} frames: "
                         "best.keras and the learning-rate schedule need both classes")
    sharding = tf.data.Options()
    if options["distribute"] == "multiworker":
        # Validation: every worker runs the whole pipeline and tf.data keeps its replicas'
        # contiguous slices of each batch (checked: worker 0 of 2 gets rows 0-3 of a batch of 8,
        # worker 1 rows 4-7); the training stream is sliced explicitly (below).
        sharding.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA
        )

    def fixed(dataset, total):
        dataset, n_steps, frames = replica_safe_batches(dataset, total, batch, replicas)
        return dataset.with_options(sharding), n_steps, frames

    # The objective on B/2 real + B/2 fake batches (real and fake alternate), the same frames
    # every epoch; the AUC on every frame once (real shards, then fake shards: labels known).
    balanced, balanced_steps, balanced_frames = fixed(
        make_dataset(records, VAL, batch_size=batch, training=False, balanced=True,
                     image_size=size), 2 * min(val_counts.values()))
    if options["validation_steps"]:
        if options["validation_steps"] > balanced_steps:
            logger.warning("--validation-steps %d exceeds the %d balanced batches of the val "
                           "split; using all of them", options["validation_steps"],
                           balanced_steps)
        balanced_steps = min(balanced_steps, options["validation_steps"])
        balanced = balanced.take(balanced_steps)
        full, full_steps = balanced, balanced_steps
        full_frames = min(balanced_frames, balanced_steps * batch)
        full_labels = np.arange(full_frames) % 2  # real, fake, real, ...
    else:
        full, full_steps, full_frames = fixed(
            make_dataset(records, VAL, batch_size=batch, training=False, image_size=size),
            sum(val_counts.values()))
        full_labels = np.repeat([0, 1], [val_counts["real"], val_counts["fake"]])[:full_frames]
    bn_batches = None
    if options["precise_bn_batches"]:
        # Fixed training batches (seeded, unflipped): the same on every worker and every epoch.
        bn_batches = make_dataset(records, TRAIN, batch_size=batch, training=True,
                                  image_size=size, seed=PRECISE_BN_SEED, flip=False
                                  ).take(options["precise_bn_batches"])
    validation = EpochValidation(balanced, balanced_steps, full, full_steps, full_labels,
                                 bn_batches=bn_batches)

    def training_batches():
        return make_dataset(records, TRAIN, batch_size=batch, training=True, image_size=size,
                            seed=seed, flip=options["flip"])

    if options["distribute"] == "none":
        train = training_batches()
    else:
        # Replica r of R gets rows [r B/R, (r+1) B/R) of every global batch, on one machine or
        # several (each worker builds the same seeded stream and keeps its replicas' slices).
        train = distribute_global_batches(strategy, training_batches, batch)
    resolved = {
        "steps_per_epoch": steps,
        "validation_steps": balanced_steps,
        "validation_auc_steps": full_steps,
        "train_frames": train_counts,
        "val_frames": val_counts,
        "val_pass_frames": full_frames,
        "val_balanced_frames": min(balanced_frames, balanced_steps * batch),
        "replicas": replicas,
    }
    return train, validation, resolved
