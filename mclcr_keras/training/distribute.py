"""Devices and strategies: `tf.distribute` set-up, the chief, mixed precision, replica-safe batches.

Example:

```python
strategy, description = make_strategy("mirrored")
policy = set_precision(True)     # 'mixed_bfloat16' on a CPU, 'mixed_float16' on a GPU
```
"""

from __future__ import annotations

import logging
import math

logger = logging.getLogger(__name__)


def make_strategy(name: str):
    """The `tf.distribute` strategy for `--distribute`, and a line describing it."""
    import tensorflow as tf

    if name == "none":
        strategy = tf.distribute.get_strategy()
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return strategy, f"default strategy, one device ({devices[0].name})"
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        names = [d.name for d in devices]
        strategy = tf.distribute.MirroredStrategy(names)
        if len(names) == 1:
            logger.warning("--distribute mirrored found a single device (%s): no speed-up",
                           names[0])
        return strategy, (f"MirroredStrategy, {strategy.num_replicas_in_sync} replicas: "
                          f"{', '.join(names)}")
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    resolver = strategy.cluster_resolver
    workers = len(resolver.cluster_spec().as_dict().get("worker", [])) + len(
        resolver.cluster_spec().as_dict().get("chief", [])
    )
    return strategy, (f"MultiWorkerMirroredStrategy, {strategy.num_replicas_in_sync} replicas "
                      f"on {workers} workers; this is {resolver.task_type} {resolver.task_id}")


def is_chief(strategy) -> bool:
    """Whether this process writes the run directory (always, except multi-worker non-chiefs)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    cluster = resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in cluster


def set_precision(enabled: bool) -> str:
    """Sets the global Keras dtype policy; returns its name."""
    import keras
    import tensorflow as tf

    if not enabled:
        policy = "float32"
    else:
        policy = "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"
    keras.mixed_precision.set_global_policy(policy)
    return policy


def replica_safe_batches(batched, total: int, batch: int, replicas: int):
    """Re-batches an evaluation pass so that no replica ever receives an empty slice.

    `tf.distribute` gives each replica `ceil(n / replicas)` rows of an n-row batch and the last
    replica the rest, which is empty for e.g. a final batch of 1 on 2 replicas, and Xception's
    BatchNormalization fails on an empty slice. Every batch is therefore made a multiple of
    `replicas` rows, except one final batch of `(replicas - s) * replicas + s` rows
    (s = total mod replicas), whose last replica gets exactly one row. If the split is smaller
    than that batch, its last `s` (< replicas) frames are left out, with a warning.

    Returns:
        `(dataset, steps, frames)`: the re-batched dataset, its number of batches, and the number
        of frames it holds.

    Example:

    >>> import tensorflow as tf
    >>> val = tf.data.Dataset.range(9).batch(8)
    >>> ds, steps, frames = replica_safe_batches(val, total=9, batch=8, replicas=2)
    >>> steps, frames, [len(b) for b in ds]  # slices 3 + 3, then 2 + 1
    (2, 9, [6, 3])
    """
    if replicas == 1:
        return batched, math.ceil(total / batch), total
    remainder = total % replicas
    tail = (replicas - remainder) * replicas + remainder if remainder else 0
    if tail > total:
        logger.warning("the last %d of the %d validation frames are left out: %d replicas "
                       "cannot share them without an empty slice", remainder, total, replicas)
        total, tail = total - remainder, 0
    head = total - tail
    frames = batched.unbatch()
    dataset = frames.take(head).batch(batch)
    if tail:
        dataset = dataset.concatenate(frames.skip(head).take(tail).batch(tail))
    return dataset, math.ceil(head / batch) + (1 if tail else 0), total


def device_summary() -> str:
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return (f"TensorFlow {tf.__version__}, Keras {keras.__version__}; "
            f"{len(gpus)} GPU(s), {len(tf.config.list_logical_devices('CPU'))} CPU device(s)")
