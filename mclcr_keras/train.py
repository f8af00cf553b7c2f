"""Train MC-LCR on TFRecords: ``python -m mclcr_keras.train --records DIR --out RUN_DIR``.

    python -m mclcr_keras.train --records records/ffpp --out runs/ffpp_mclcr
    python -m mclcr_keras.train --records records/ffpp --out runs/ffpp_no_ssrb --variant no_ssrb
    python -m mclcr_keras.train --records records/demo --out runs/demo --image-size 64 \\
        --weights none --epochs 2 --batch-size 8

Paper defaults (Wang et al. 2022, arXiv 2110.03290, Section 4.1): AdamW (learning rate 1e-3,
weight decay 1e-4), 50 epochs, batches of 8 real + 8 fake faces, ReduceLROnPlateau(val_loss,
factor 0.5, patience 5), loss 0.5 * SupCon (temperature 0.1) + 0.5 * BCE.

Training batches come from the ``train`` split (class-balanced, endless); validation is one
deterministic pass over the ``val`` split after every epoch. ``best.keras`` is the epoch with the
highest validation AUC: the ``test`` split is never read. RUN_DIR receives ``config.json``,
``history.csv``, ``logs/`` (TensorBoard), ``last.keras``, ``best.keras``, ``state.json`` and
``checkpoints/``. Killed at any point (even ``kill -9``) and started again with the same command,
the run resumes after the last completed epoch. See ``docs/training.md``.

Exit status: 0 done; 1 training failed (e.g. a corrupt shard); 2 bad arguments or setup (nothing
trained); 3 the loss became NaN/inf (RUN_DIR keeps the last good epoch); 130 interrupted.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import logging
import math
import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

# Named for the module also when run as `python -m` (where __name__ is "__main__").
logger = logging.getLogger("mclcr_keras.train")

PROG = "python -m mclcr_keras.train"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_ERROR = 2
EXIT_NONFINITE = 3
EXIT_INTERRUPTED = 130

VARIANTS = ("mclcr", "no_ssrb", "no_papda", "no_supcon", "baseline")
DISTRIBUTE = ("none", "mirrored", "multiworker")
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.csv"
LOG_DIR = "logs"
TRAIN_SPLIT = "train"
VAL_SPLIT = "val"
# The paper's schedule (Section 4.1).
REDUCE_LR = {"monitor": "val_loss", "factor": 0.5, "patience": 5}
# Options that may change between the runs of one RUN_DIR: train longer, or on other hardware.
RESUMABLE_CHANGES = ("epochs", "distribute")


class UsageError(Exception):
    """A problem the user must fix before anything is trained; one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block), exit status 2."""

    def error(self, message: str):
        self.exit(EXIT_ERROR, f"train: error: {message} (see --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description=(
            "Train an MC-LCR face-forgery detector on records written by "
            "`python -m mclcr_keras.build_records`. Uses the 'train' split for training and the "
            "'val' split for the learning-rate schedule and for choosing best.keras (highest "
            "validation AUC); never the 'test' split. Rerun the same command to resume an "
            "interrupted run."
        ),
        epilog=(
            "Writes to RUN_DIR: config.json, history.csv, logs/ (tensorboard --logdir "
            "RUN_DIR/logs), last.keras, best.keras, state.json, checkpoints/. Exit status: 0 "
            "done; 1 training failed; 2 bad arguments or setup; 3 the loss became NaN/inf; "
            "130 interrupted. Details: docs/training.md."
        ),
    )
    parser.add_argument("--records", required=True, metavar="DIR",
                        help="records folder holding train/ and val/ (build_records --out)")
    parser.add_argument("--out", required=True, metavar="RUN_DIR",
                        help="run folder: new, empty, or an earlier run to resume")
    parser.add_argument("--variant", default="mclcr", choices=VARIANTS,
                        help="model variant (paper Table 5 ablations; default: %(default)s)")
    parser.add_argument("--epochs", type=_positive_int, default=50,
                        help="total number of epochs (default: %(default)s, as in the paper)")
    parser.add_argument("--batch-size", type=_positive_int, default=16,
                        help="global batch size, half real and half fake; a multiple of 4 "
                             "(default: %(default)s = 8 real + 8 fake, as in the paper)")
    parser.add_argument("--image-size", type=_positive_int, default=256,
                        help="face crop side in pixels, a multiple of 16 (default: %(default)s)")
    parser.add_argument("--weights", default="imagenet", metavar="imagenet|none|PATH",
                        help="Xception initialisation: 'imagenet' (Keras download), 'none' "
                             "(random) or a local Xception notop .h5 file (default: imagenet)")
    parser.add_argument("--distribute", default="none", choices=DISTRIBUTE,
                        help="none: one device; mirrored: all local GPUs (or CPUs) with "
                             "tf.distribute.MirroredStrategy; multiworker: "
                             "MultiWorkerMirroredStrategy configured by TF_CONFIG "
                             "(default: none)")
    parser.add_argument("--mixed-precision", action="store_true",
                        help="mixed_float16 on GPU, mixed_bfloat16 on CPU")
    parser.add_argument("--learning-rate", type=_finite_float, default=1e-3,
                        help="AdamW learning rate (default: %(default)s)")
    parser.add_argument("--weight-decay", type=_finite_float, default=1e-4,
                        help="AdamW weight decay (default: %(default)s)")
    parser.add_argument("--steps-per-epoch", type=_positive_int, default=None,
                        help="training batches per epoch (default: 2 x the frames of the "
                             "smaller class // batch size, i.e. one pass over that class)")
    parser.add_argument("--validation-steps", type=_positive_int, default=None,
                        help="validate on the first N batches of the val split (the same ones "
                             "every epoch; default: the whole split)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed for weights, dropout and the data order (default: random)")
    return parser


# ------------------------------------------------------------------------------ checks


def _has_shards(split_dir: str, label_name: str) -> bool:
    import glob

    return bool(glob.glob(os.path.join(split_dir, f"{label_name}-*-of-*.tfrecord")))


def check_records(records: str) -> None:
    """The records folder has the training and the validation split (local folders only).

    Raises:
        UsageError: a missing folder, split or class, as one line.
    """
    if "://" in records:
        return  # remote storage: the pipeline reports what is missing
    if not os.path.isdir(records):
        raise UsageError(f"--records {records} is not a directory")
    split_dir = os.path.join(records, TRAIN_SPLIT)
    if not os.path.isdir(split_dir):
        raise UsageError(
            f"no training split in --records {records} (expected {split_dir}/ with real-* and "
            "fake-*.tfrecord shards, as written by python -m mclcr_keras.build_records)"
        )
    val_dir = os.path.join(records, VAL_SPLIT)
    if not os.path.isdir(val_dir):
        raise UsageError(
            f"no validation split in --records {records} (expected {val_dir}/): training "
            "chooses best.keras and lowers the learning rate on the validation split only, "
            "never on test; build records with a val split (build_records writes "
            "train/val/test)"
        )
    for split in (TRAIN_SPLIT, VAL_SPLIT):
        for label_name in ("real", "fake"):
            if not _has_shards(os.path.join(records, split), label_name):
                raise UsageError(
                    f"no {label_name} shards ({label_name}-NNNNN-of-NNNNN.tfrecord) in "
                    f"{os.path.join(records, split)}: both classes are needed in the "
                    f"{split} split"
                )


def check_arguments(args: argparse.Namespace) -> None:
    """Checks that need no TensorFlow: fast one-line errors."""
    if args.batch_size % 4:
        raise UsageError(
            f"--batch-size must be a multiple of 4 (half real, half fake, each half of the "
            f"batch balanced); got {args.batch_size}"
        )
    if args.image_size % 16 or args.image_size < 32:
        raise UsageError(
            f"--image-size must be a multiple of 16 (the patch size) and >= 32; "
            f"got {args.image_size}"
        )
    if args.learning_rate <= 0:
        raise UsageError(f"--learning-rate must be > 0; got {args.learning_rate}")
    if args.weight_decay < 0:
        raise UsageError(f"--weight-decay must be >= 0; got {args.weight_decay}")
    weights = args.weights
    if weights.lower() not in ("imagenet", "none"):
        if not weights.endswith((".h5", ".hdf5")):
            raise UsageError(
                f"--weights must be 'imagenet', 'none' or the path of an Xception .h5 weights "
                f"file; got {weights!r}"
            )
        if not os.path.isfile(weights):
            raise UsageError(f"--weights file not found: {weights}")
    if args.distribute == "multiworker" and not os.environ.get("TF_CONFIG"):
        raise UsageError(
            "--distribute multiworker needs the TF_CONFIG environment variable (the cluster "
            "and this worker's task); see docs/training.md"
        )
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UsageError(f"--out {args.out} exists and is not a directory")
    check_records(args.records)


def training_options(args: argparse.Namespace) -> dict[str, Any]:
    """The command-line options as stored in config.json and compared on resume."""
    weights = args.weights
    if weights.lower() in ("imagenet", "none"):
        weights = weights.lower()
    else:
        weights = os.path.abspath(weights)
    records = args.records if "://" in args.records else os.path.abspath(args.records)
    return {
        "records": records,
        "variant": args.variant,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "image_size": args.image_size,
        "weights": weights,
        "distribute": args.distribute,
        "mixed_precision": bool(args.mixed_precision),
        "learning_rate": args.learning_rate,
        "weight_decay": args.weight_decay,
        "steps_per_epoch": args.steps_per_epoch,
        "validation_steps": args.validation_steps,
        "seed": args.seed,
    }


def model_config_dict(options: dict[str, Any]) -> dict[str, Any]:
    """`MCLCRConfig` fields set from the command line (the rest keep the paper's defaults)."""
    return {
        "image_size": options["image_size"],
        "variant": options["variant"],
        "weights": None if options["weights"] == "none" else options["weights"],
        "learning_rate": options["learning_rate"],
        "weight_decay": options["weight_decay"],
    }


def read_run_config(run_dir: str) -> dict[str, Any] | None:
    """config.json of an existing run, `None` for a new (missing or empty) run directory.

    Raises:
        UsageError: RUN_DIR holds other files but no readable training config.
    """
    if not os.path.isdir(run_dir):
        return None
    path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.exists(path):
        # *.tmp: config.json being written by the chief of a multi-worker run right now.
        if [name for name in os.listdir(run_dir) if not name.endswith(".tmp")]:
            raise UsageError(
                f"--out {run_dir} is not empty and holds no {CONFIG_FILE} of a training run; "
                "choose a new or empty folder"
            )
        return None
    try:
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
    except (OSError, ValueError) as error:
        raise UsageError(f"cannot read {path}: {error}") from None
    if not isinstance(saved, dict) or "training" not in saved or "model" not in saved:
        raise UsageError(f"{path} is not the config of a training run (no 'training'/'model')")
    return saved


def config_differences(saved: dict[str, Any], options: dict[str, Any]) -> list[str]:
    """'name: saved -> now' for every option that differs and may not change on resume.

    The model's other `MCLCRConfig` fields are not compared: a resumed run rebuilds the model
    from the config.json it saved.
    """
    saved_options = saved.get("training", {})
    return [
        f"{key}: {saved_options.get(key)!r} -> {options.get(key)!r}"
        for key in sorted(set(saved_options) | set(options))
        if key not in RESUMABLE_CHANGES and saved_options.get(key) != options.get(key)
    ]


def truncate_history(path: str, epochs_done: int) -> int:
    """Keeps the header and the rows of the first `epochs_done` epochs of a CSVLogger file.

    A row written for an epoch whose checkpoint was never committed (killed in between) would
    otherwise appear twice once that epoch is trained again. Returns the rows kept.
    """
    if not os.path.exists(path):
        return 0
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows:
        return 0
    header, body = rows[0], rows[1:]
    kept = [row for row in body if row and row[0].isdigit() and int(row[0]) < epochs_done]
    if len(kept) != len(body):
        tmp = f"{path}.tmp"
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([header, *kept])
        os.replace(tmp, path)
    return len(kept)


# ------------------------------------------------------------------------------ TensorFlow side


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

    >>> ds, steps, frames = replica_safe_batches(val, total=9, batch=8, replicas=2)
    >>> steps, frames  # batches of 6 and 3: slices 3 + 3, then 2 + 1
    (2, 9)
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


def make_datasets(options: dict[str, Any], strategy, epochs_done: int):
    """Training stream, validation pass and their step counts."""
    import tensorflow as tf

    from mclcr_keras.data import count_records, make_dataset

    records = options["records"]
    batch = options["batch_size"]
    size = options["image_size"]
    train_counts = count_records(records, TRAIN_SPLIT)
    val_counts = count_records(records, VAL_SPLIT)
    smaller = min(train_counts.values())
    steps = options["steps_per_epoch"] or max(1, 2 * smaller // batch)
    replicas = strategy.num_replicas_in_sync
    # A resumed run draws a fresh training stream, not the one its first epochs saw.
    seed = None if options["seed"] is None else options["seed"] + 1000 * epochs_done

    val = make_dataset(records, VAL_SPLIT, batch_size=batch, training=False, image_size=size)
    val, val_steps, val_frames = replica_safe_batches(val, sum(val_counts.values()), batch,
                                                      replicas)
    if options["validation_steps"]:
        if options["validation_steps"] > val_steps:
            logger.warning("--validation-steps %d exceeds the %d batches of the val split; "
                           "using all of them", options["validation_steps"], val_steps)
        val_steps = min(val_steps, options["validation_steps"])
    val = val.take(val_steps).apply(tf.data.experimental.assert_cardinality(val_steps))
    train = make_dataset(records, TRAIN_SPLIT, batch_size=batch, training=True, image_size=size,
                         seed=seed)
    if options["distribute"] == "multiworker":
        # Every worker runs the whole pipeline and keeps its replicas' contiguous slices of each
        # global batch (checked: worker 0 of 2 gets rows 0-3 of a batch of 8, worker 1 rows
        # 4-7), so every replica's slice is balanced, as under MirroredStrategy.
        sharding = tf.data.Options()
        sharding.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA
        )
        train = train.with_options(sharding)
        val = val.with_options(sharding)
    resolved = {
        "steps_per_epoch": steps,
        "validation_steps": val_steps,
        "train_frames": train_counts,
        "val_frames": val_counts,
        "val_pass_frames": val_frames,
        "replicas": replicas,
    }
    return train, val, resolved


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


def build_model(config_values: dict[str, Any], run_dir: str, state, strategy):
    """A compiled MC-LCR model: new, or restored with its optimizer state from a checkpoint."""
    from mclcr_keras.models import MCLCR, MCLCRConfig, build_mclcr

    config = MCLCRConfig.from_dict(config_values)
    with strategy.scope():
        if state is None:
            return build_mclcr(config)
        # The checkpoint holds every weight: no need to fetch the backbone weights again.
        model = MCLCR(config, load_backbone_weights=False)
        model.compile()
        model.optimizer.build(model.trainable_variables)
        model.load_weights(os.path.join(run_dir, state.checkpoint))
        return model


def _device_summary() -> str:
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return (f"TensorFlow {tf.__version__}, Keras {keras.__version__}; "
            f"{len(gpus)} GPU(s), {len(tf.config.list_logical_devices('CPU'))} CPU device(s)")


def resume_point(run_dir: str, options: dict[str, Any], epochs: int):
    """The saved config and committed state of RUN_DIR (`None`, `None` for a new run).

    Raises:
        UsageError: RUN_DIR holds a run with other options, an unreadable state, or more
            completed epochs than `epochs`.
    """
    from mclcr_keras.callbacks import RunState

    saved = read_run_config(run_dir)
    if saved is None:
        return None, None
    differences = config_differences(saved, options)
    if differences:
        shown = "; ".join(differences[:4]) + ("; ..." if len(differences) > 4 else "")
        raise UsageError(
            f"--out {run_dir} holds a run with other options ({shown}); rerun with the same "
            "options to resume it, or choose a new --out"
        )
    try:
        state = RunState.load(run_dir)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if state is not None and state.epochs_done > epochs:
        raise UsageError(f"--epochs {epochs} is fewer than the {state.epochs_done} epochs "
                         f"{run_dir} already completed")
    return saved, state


def write_config(run_dir: str, saved, model_values, options, resolved, argv) -> None:
    """config.json: model config, options, resolved values, schedule, command, versions."""
    import keras
    import tensorflow as tf

    from mclcr_keras.callbacks import write_json_atomic

    command = " ".join([PROG, *(shlex.quote(a) for a in argv)])
    record = {
        "model": model_values,
        "training": options,
        "resolved": resolved,
        "schedule": {
            "optimizer": "AdamW",
            "reduce_lr_on_plateau": REDUCE_LR,
            "best_model": "highest val_auc on the val split",
        },
        "command": command,
        "created_with": (saved.get("created_with") or saved.get("command")) if saved else command,
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
    }
    write_json_atomic(os.path.join(run_dir, CONFIG_FILE), record)


def make_callbacks(write_dir: str, state, chief: bool) -> list:
    """NaN guard, paper schedule, CSV history, TensorBoard, checkpoints: in this order."""
    import keras

    from mclcr_keras import callbacks as cb

    plateau = cb.ResumableReduceLROnPlateau(
        initial_state=state.reduce_lr if state else None, verbose=1, **REDUCE_LR
    )
    callbacks = [
        cb.NonFiniteLossGuard(),
        plateau,
        keras.callbacks.CSVLogger(os.path.join(write_dir, HISTORY_FILE),
                                  append=state is not None),
    ]
    if importlib.util.find_spec("tensorboard") is not None:
        callbacks.append(keras.callbacks.TensorBoard(os.path.join(write_dir, LOG_DIR),
                                                     write_graph=False))
    else:
        logger.warning("TensorBoard logs are not written: the tensorboard package is not "
                       "installed (pip install tensorboard)")
    callbacks.append(cb.RunCheckpoint(write_dir, plateau, state=state, write=chief))
    return callbacks


def train(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Runs (or resumes) one training run; returns the exit status."""
    from mclcr_keras.callbacks import NonFiniteLossError, tidy_run_dir

    options = training_options(args)
    run_dir = args.out
    saved, state = resume_point(run_dir, options, args.epochs)
    epochs_done = state.epochs_done if state else 0
    if state is not None and epochs_done == args.epochs:
        print(f"train: {run_dir} already completed {epochs_done} of {args.epochs} epochs; "
              "nothing to do")
        _print_artifacts(run_dir, state)
        return EXIT_OK

    import keras
    import tensorflow as tf

    from mclcr_keras.models import BackboneWeightsError, MCLCRConfig

    strategy, description = make_strategy(args.distribute)
    chief = is_chief(strategy)
    replicas = strategy.num_replicas_in_sync
    if args.batch_size % (2 * replicas):
        raise UsageError(
            f"--batch-size {args.batch_size} cannot give each of the {replicas} replicas a "
            f"slice with as many real as fake faces; use a multiple of {2 * replicas}"
        )
    policy = set_precision(args.mixed_precision)
    logger.info("%s", _device_summary())
    logger.info("strategy: %s; dtype policy: %s", description, policy)

    if saved is not None:  # rebuild exactly the saved architecture
        model_values = {**saved["model"], **model_config_dict(options)}
    else:
        model_values = MCLCRConfig(**model_config_dict(options)).to_dict()
    if args.seed is not None:
        keras.utils.set_random_seed(args.seed + 1000 * epochs_done)
    try:
        train_data, val_data, resolved = make_datasets(options, strategy, epochs_done)
    except (FileNotFoundError, OSError, ValueError) as error:
        raise UsageError(" ".join(str(error).split())) from None
    resolved.update(dtype_policy=policy, strategy=description)
    try:
        model = build_model(model_values, run_dir, state, strategy)
    except BackboneWeightsError as error:
        raise UsageError(str(error)) from None
    except (OSError, ValueError) as error:
        what = f"the checkpoint of {run_dir}" if state else "the model"
        raise UsageError(f"cannot build {what}: {' '.join(str(error).split())[:400]}") from None
    if args.distribute == "multiworker":
        build_from_local_slice(model)
        patch_multi_worker_log_reduction()

    # Only the chief writes RUN_DIR; other workers save into a scratch folder (saving may run
    # collective ops that every worker must join) that is deleted at the end.
    write_dir = run_dir if chief else tempfile.mkdtemp(prefix="mclcr_worker_")
    os.makedirs(write_dir, exist_ok=True)
    if chief:
        write_config(run_dir, saved, model_values, options, resolved, argv)
        tidy_run_dir(run_dir, state)
        truncate_history(os.path.join(run_dir, HISTORY_FILE), epochs_done)
    callbacks = make_callbacks(write_dir, state, chief)
    if state is not None:
        print(f"train: resuming {run_dir} after epoch {epochs_done} of {args.epochs} "
              f"(learning rate {state.learning_rate:g})")
    print(f"train: {resolved['steps_per_epoch']} steps of {args.batch_size} per epoch, "
          f"{resolved['validation_steps']} validation steps; writing {run_dir}")
    sys.stdout.flush()
    try:
        model.fit(
            train_data,
            epochs=args.epochs,
            initial_epoch=epochs_done,
            steps_per_epoch=resolved["steps_per_epoch"],
            validation_data=val_data,
            callbacks=callbacks,
            verbose=1 if sys.stdout.isatty() else 2,
            shuffle=False,
        )
    except NonFiniteLossError as error:
        kept = callbacks[-1].state
        print(
            f"train: error: {error}: training stopped; {run_dir} keeps the last completed epoch "
            f"({kept.epochs_done if kept else 0} of {args.epochs}); lower --learning-rate (now "
            f"{args.learning_rate:g}) or check the records",
            file=sys.stderr,
        )
        return EXIT_NONFINITE
    except tf.errors.OpError as error:
        print(f"train: error: {type(error).__name__}: {op_error_summary(error.message)} (rerun "
              "the same command to resume after the last completed epoch)", file=sys.stderr)
        return EXIT_FAILED
    finally:
        if not chief:
            shutil.rmtree(write_dir, ignore_errors=True)
    if chief:
        _print_artifacts(run_dir, callbacks[-1].state)
    else:
        print(f"train: done on this worker; the chief wrote {run_dir}")
    return EXIT_OK


def op_error_summary(message: str, limit: int = 400) -> str:
    """The informative line of a TensorFlow runtime error, without its Python stack.

    Graph errors read "Graph execution error:", "Detected at node ... defined at", an indented
    stack, and only then the description (e.g. "assertion failed: [corrupt TFRecord shard] ...").
    """
    lines = [line.strip() for line in (message or "").splitlines()
             if line.strip() and not line.startswith((" ", "\t"))]
    skip = ("Graph execution error", "Detected at node", "Detected unsupported operations")
    useful = [line for line in lines if not line.startswith(skip)]
    text = (useful or lines or ["(no message)"])[0]
    return " ".join(text.split())[:limit]


def _print_artifacts(run_dir: str, state) -> None:
    from mclcr_keras.callbacks import BEST_MODEL, LAST_MODEL

    lines = [f"train: done: {state.epochs_done} epochs in {run_dir}"]
    if state.best_checkpoint:
        lines.append(f"  best.keras    {os.path.join(run_dir, BEST_MODEL)} "
                     f"(epoch {state.best_epoch}, val_auc {state.best_val_auc:.4f})")
    else:
        lines.append("  best.keras    not written: the validation AUC was never finite")
    lines += [
        f"  last.keras    {os.path.join(run_dir, LAST_MODEL)} (epoch {state.epochs_done})",
        f"  history.csv   {os.path.join(run_dir, HISTORY_FILE)}",
        f"  config.json   {os.path.join(run_dir, CONFIG_FILE)}",
        f"  TensorBoard   tensorboard --logdir {os.path.join(run_dir, LOG_DIR)}",
    ]
    print("\n".join(lines))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m mclcr_keras.train``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, or a one-line argparse error
        return int(exit_.code or 0)
    if not logging.getLogger().handlers:
        # INFO for this package only: TensorFlow's INFO lines (one per all-reduce) would drown it.
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("mclcr_keras").setLevel(logging.INFO)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    previous_policy = None
    try:
        check_arguments(args)
        import keras

        previous_policy = keras.mixed_precision.global_policy()
        return train(args, argv)
    except UsageError as error:
        print(f"train: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("train: interrupted; rerun the same command to resume after the last completed "
              "epoch", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if previous_policy is not None:
            keras.mixed_precision.set_global_policy(previous_policy)


if __name__ == "__main__":
    sys.exit(main())
