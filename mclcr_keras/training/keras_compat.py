"""Workarounds for Keras 3.15 `fit` under `MultiWorkerMirroredStrategy` with several workers.

Each is applied only by a multi-worker training process, checks that the Keras internals it
replaces exist (another Keras: nothing to work around), and is described with how it was checked
in ``docs/training.md``.
"""

from __future__ import annotations


def build_from_local_slice(model) -> None:
    """Works around Keras 3.15 `fit` under MultiWorkerMirroredStrategy with several workers.

    Before training, `fit` builds the model from one batch, which it gets by MEAN-reducing the
    distributed batch across replicas with `strategy.reduce`; that call does not accept a nest
    of per-replica values under MultiWorkerMirroredStrategy ("Attempt to convert a value
    (PerReplica ...) to a Tensor"), so every `fit` fails before its first step. Only the batch's
    shapes matter for that build, so this model instance builds from this worker's first local
    slice instead, without any collective op. No effect on other strategies (not applied).
    """
    import types

    import keras
    import tensorflow as tf

    if not hasattr(model, "_maybe_symbolic_build") or not hasattr(model, "_symbolic_build"):
        return  # another Keras: nothing to work around
    strategy = model.distribute_strategy

    def local(value):
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = keras.tree.map_structure(local, next(batches))
                break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = types.MethodType(maybe_symbolic_build, model)


def patch_multi_worker_log_reduction() -> None:
    """Works around Keras 3.15 `fit` under MultiWorkerMirroredStrategy with several workers.

    After each step Keras averages the logs over replicas with `strategy.reduce("MEAN", v,
    axis=0)`, which fails for the scalar logs every model returns ("Invalid reduction dimension
    0 for input with 0 dimensions"). This reduces them with `axis=None` (a plain mean over the
    replicas) instead. Only the multi-worker CLI process is patched.
    """
    import keras

    try:
        from keras.src.backend.tensorflow import trainer as tf_trainer
    except ImportError:
        return
    original = getattr(tf_trainer, "reduce_per_replica", None)
    multi_worker = getattr(tf_trainer, "_collective_all_reduce_multi_worker", None)
    if original is None or multi_worker is None or getattr(original, "patched", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and multi_worker(strategy):
            return keras.tree.map_structure(
                lambda value: strategy.reduce("MEAN", value, axis=None), values
            )
        return original(values, strategy, reduction)

    reduce_per_replica.patched = True
    tf_trainer.reduce_per_replica = reduce_per_replica
