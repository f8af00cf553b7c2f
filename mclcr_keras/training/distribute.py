"""Devices and strategies: `tf.distribute` set-up, the cluster, the chief, mixed precision, and
how batches reach the replicas.

Example:

```python
strategy, description = make_strategy("mirrored")
policy = set_precision(True)     # 'mixed_bfloat16' on a CPU, 'mixed_float16' on a GPU
```

`--distribute multiworker` finds its cluster in ``TF_CONFIG`` or, without it, in the Slurm job
step (`cluster_source`, `cluster_resolver`); the training stream reaches the replicas through
`distribute_global_batches`: replica r of R takes rows ``[r B/R, (r+1) B/R)`` of every global
batch of B, on one machine or many.
"""

from __future__ import annotations

import json
import logging
import math
import os

from mclcr_keras.errors import UsageError

logger = logging.getLogger(__name__)

# The Slurm variables that `srun` sets in every task of a job step (not in the batch script).
SLURM_STEP_VARIABLES = ("SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_STEP_NODELIST",
                        "SLURM_STEP_TASKS_PER_NODE")
# Overrides the first port of the Slurm workers (the next tasks on a node take the next ports).
SLURM_PORT_VARIABLE = "MCLCR_SLURM_PORT"
# Default first port: SLURM_PORT_BASE + SLURM_JOB_ID mod SLURM_PORT_SPAN, so that two jobs
# sharing a node rarely collide.
SLURM_PORT_BASE = 15000
SLURM_PORT_SPAN = 10000


def cluster_source() -> str:
    """Where ``--distribute multiworker`` finds its cluster: ``"TF_CONFIG"`` or ``"slurm"``.

    ``TF_CONFIG`` wins when it is set; otherwise a Slurm job step (``srun``: `SLURM_PROCID`,
    `SLURM_STEP_NODELIST`, ...) is used. Reads the environment only (no TensorFlow).

    Raises:
        UsageError: neither (one line naming both), an unreadable ``TF_CONFIG``, a Slurm job
            outside ``srun``, or a bad `SLURM_PORT_VARIABLE`.

    Example:

    ```python
    cluster_source()  # 'slurm' in a task started by srun, when TF_CONFIG is not set
    ```
    """
    environ = os.environ
    if environ.get("TF_CONFIG"):
        try:
            spec = json.loads(environ["TF_CONFIG"])
        except ValueError as error:
            raise UsageError(f"TF_CONFIG is not JSON ({error}); see docs/training.md") from None
        if not isinstance(spec, dict) or not spec.get("cluster") or "task" not in spec:
            raise UsageError('TF_CONFIG needs "cluster" and "task" (e.g. {"cluster": {"worker": '
                             '["h1:2222", "h2:2222"]}, "task": {"type": "worker", "index": 0}}); '
                             "see docs/training.md")
        return "TF_CONFIG"
    if environ.get("SLURM_JOB_ID") or environ.get("SLURM_PROCID"):
        missing = [name for name in SLURM_STEP_VARIABLES if not environ.get(name)]
        if missing:
            raise UsageError(
                f"--distribute multiworker in Slurm job {environ.get('SLURM_JOB_ID', '?')} needs "
                f"a job step: start it with srun (no {', '.join(missing)} here); see "
                "docs/training.md"
            )
        slurm_port(1)
        return "slurm"
    raise UsageError(
        "--distribute multiworker needs the TF_CONFIG environment variable (the cluster and this "
        "worker's task) or a Slurm job step started with srun (SLURM_PROCID, "
        "SLURM_STEP_NODELIST, ...); see docs/training.md"
    )


def slurm_port(tasks_per_node: int) -> int:
    """The first port of the Slurm workers: `SLURM_PORT_VARIABLE`, or derived from the job id.

    Raises:
        UsageError: `SLURM_PORT_VARIABLE` is not a port that leaves room for the node's tasks.
    """
    text = os.environ.get(SLURM_PORT_VARIABLE)
    if text is None:
        job = os.environ.get("SLURM_JOB_ID", "0")
        return SLURM_PORT_BASE + (int(job) if job.isdigit() else 0) % SLURM_PORT_SPAN
    if not text.isdigit() or not 1024 <= int(text) <= 65536 - tasks_per_node:
        raise UsageError(f"{SLURM_PORT_VARIABLE} must be a port number in 1024-"
                         f"{65536 - tasks_per_node}, got {text!r}")
    return int(text)


def cluster_resolver():
    """The `tf.distribute` cluster resolver of this worker (`cluster_source` decides which).

    ``TF_CONFIG``: `TFConfigClusterResolver`. Slurm: `SlurmClusterResolver` reads the job step
    (rank `SLURM_PROCID`, the hosts of `SLURM_STEP_NODELIST`, `SLURM_STEP_TASKS_PER_NODE`) and
    gives task k of a node the port `slurm_port` + k; all tasks are ``worker`` tasks, rank 0 is
    the chief. The GPUs are left as Slurm assigned them (`CUDA_VISIBLE_DEVICES` is not touched):
    each task uses the GPUs it sees, none on a CPU node. (SlurmClusterResolver alone would hand
    out GPUs itself, and on a node without ``nvidia-smi`` and `CUDA_VISIBLE_DEVICES` it fails.)

    Raises:
        UsageError: see `cluster_source`, or a Slurm step TensorFlow cannot read.
    """
    import tensorflow as tf

    resolvers = tf.distribute.cluster_resolver
    if cluster_source() == "TF_CONFIG":
        return resolvers.TFConfigClusterResolver()
    from tensorflow.python.distribute.cluster_resolver.slurm_cluster_resolver import (
        expand_tasks_per_node,
    )

    try:
        per_node = max(expand_tasks_per_node(os.environ["SLURM_STEP_TASKS_PER_NODE"]))
        # Asked for the cluster only: one pseudo-GPU per task, nothing assigned.
        slurm = resolvers.SlurmClusterResolver(port_base=slurm_port(per_node),
                                               gpus_per_node=per_node, gpus_per_task=1,
                                               auto_set_gpu=False)
        spec = slurm.cluster_spec()
    except (RuntimeError, ValueError) as error:
        raise UsageError(f"cannot read the Slurm job step: {' '.join(str(error).split())}"
                         ) from None
    gpus = len(tf.config.list_physical_devices("GPU"))
    return resolvers.SimpleClusterResolver(spec, task_type=slurm.task_type,
                                           task_id=slurm.task_id, rpc_layer="grpc",
                                           num_accelerators={"GPU": gpus} if gpus else {})


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
    source = cluster_source()
    strategy = tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=cluster_resolver())
    resolver = strategy.cluster_resolver
    cluster = resolver.cluster_spec().as_dict()
    workers = len(cluster.get("worker", [])) + len(cluster.get("chief", []))
    return strategy, (f"MultiWorkerMirroredStrategy, {strategy.num_replicas_in_sync} replicas "
                      f"on {workers} workers (cluster from {source}); this is "
                      f"{resolver.task_type} {resolver.task_id}")


def replica_slices(dataset, batch_size: int, replicas: int, first: int, count: int):
    """Slices ``first .. first + count - 1`` of each batch of `dataset`, in order, one an element.

    Every batch of `batch_size` rows (a multiple of `replicas`) is cut into `replicas` contiguous
    slices of ``batch_size // replicas`` rows; slice r is rows ``[r B/R, (r+1) B/R)``.

    Example:

    >>> import tensorflow as tf
    >>> batches = tf.data.Dataset.range(16).batch(8).map(lambda x: (x, -x))
    >>> [x.numpy().tolist() for x, _ in replica_slices(batches, 8, 4, first=2, count=2)]
    [[4, 5], [6, 7], [12, 13], [14, 15]]
    """
    import tensorflow as tf

    per_replica = batch_size // replicas

    def split(*batch):
        def part(tensor):
            tensor = tf.reshape(tensor, [replicas, per_replica, *tensor.shape[1:]])
            return tensor[first:first + count]

        return tf.data.Dataset.from_tensor_slices(tuple(part(t) for t in batch))

    return dataset.flat_map(split)


def distribute_global_batches(strategy, make_batches, batch_size: int):
    """A stream of global batches as `tf.distribute` input, each replica getting its own slice.

    Every worker builds the same global batches with `make_batches()` (with a seed, the same
    frames in the same order) and keeps its replicas' slices: replica r of R (workers in
    cluster order, then each worker's devices in order) gets rows ``[r B/R, (r+1) B/R)`` of
    every batch, through `strategy.distribute_datasets_from_function` (no auto-sharding by
    tf.data). So a replica sees the same rows under MirroredStrategy on one machine and under
    MultiWorkerMirroredStrategy on several, and, since the pipeline alternates real and fake
    records, every slice of an even number of rows at an even offset is balanced.

    Args:
        strategy: a `tf.distribute` strategy.
        make_batches: builds a `tf.data.Dataset` of global batches ``(images, labels)``.
        batch_size: the global batch, a multiple of the strategy's replicas.
    """
    import tensorflow as tf

    def per_worker(context: tf.distribute.InputContext):
        local = context.num_replicas_in_sync // context.num_input_pipelines
        return replica_slices(make_batches(), batch_size, context.num_replicas_in_sync,
                              first=context.input_pipeline_id * local,
                              count=local).prefetch(tf.data.AUTOTUNE)

    return strategy.distribute_datasets_from_function(per_worker)


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
