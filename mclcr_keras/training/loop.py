"""A training run: datasets, model, callbacks and `fit`, resumable after any interruption.

`train(config)` runs (or resumes) one `TrainConfig` into its run folder
(`mclcr_keras.training.run_dir`) and returns a `TrainOutcome`. Training batches come from the
``train`` split (class-balanced, endless); validation is one deterministic pass over the ``val``
split after every epoch. ``best.keras`` is the epoch with the highest validation AUC: the ``test``
split is never read. Killed at any point (even ``kill -9``) and started again with the same
config, the run resumes after the last completed epoch. See ``docs/training.md``.

Example:

```python
outcome = train(TrainConfig.smoke("records/demo", "runs/demo"))
outcome.state.epochs_done        # 1: the smoke preset trains one epoch
```
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import logging
import os
import shutil
import sys
import tempfile
from typing import Any

from mclcr_keras.errors import UsageError, op_error_summary
from mclcr_keras.files import write_json
from mclcr_keras.training import callbacks as cb
from mclcr_keras.training.datasets import make_datasets
from mclcr_keras.training.distribute import (
    device_summary,
    is_chief,
    make_strategy,
    set_precision,
)
from mclcr_keras.training.keras_compat import (
    build_from_local_slice,
    patch_multi_worker_log_reduction,
)
from mclcr_keras.training.options import REDUCE_LR, TrainConfig
from mclcr_keras.training.run_dir import (
    CONFIG_FILE,
    HISTORY_FILE,
    LOG_DIR,
    RunLock,
    RunState,
    resume_point,
    tidy_run_dir,
    truncate_history,
)
from mclcr_keras.training.validation import EpochValidation

logger = logging.getLogger(__name__)


class TrainingFailed(RuntimeError):
    """Training started and failed (e.g. a corrupt shard); the run resumes after its last epoch."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN/inf; the run folder keeps the last completed epoch."""


@dataclasses.dataclass
class TrainOutcome:
    """What a finished `train` call leaves behind.

    Attributes:
        run_dir: the run folder.
        state: its committed state (`None` only on a non-chief worker).
        epochs: the epochs asked for.
        already_done: the run folder had completed every epoch before this call.
        chief: this process wrote the run folder (always, except multi-worker non-chiefs).
        model: the trained model, in memory (`None` when nothing was trained); on every worker
            of a multi-worker run, e.g. to compare the workers' weights.
    """

    run_dir: str
    state: RunState | None
    epochs: int
    already_done: bool = False
    chief: bool = True
    model: Any = dataclasses.field(default=None, repr=False, compare=False)


def build_model(config_values: dict[str, Any], run_dir: str, state, strategy,
                jit_compile: bool = False):
    """A compiled MC-LCR model: new, or restored with its optimizer state from a checkpoint.

    `jit_compile` turns XLA on for its train, test and predict steps (`False`: Keras' "auto").
    It is set on the model after `compile`, so the compile config saved in the checkpoints is a
    default run's: a model file does not carry ``--jit-compile`` into `predict` or `evaluate`.
    """
    from mclcr_keras.models import MCLCR, MCLCRConfig, build_mclcr

    config = MCLCRConfig.from_dict(config_values)
    with strategy.scope():
        if state is None:
            model = build_mclcr(config)
        else:
            # The checkpoint holds every weight: no need to fetch the backbone weights again.
            model = MCLCR(config, load_backbone_weights=False)
            model.compile()
            model.optimizer.build(model.trainable_variables)
            model.load_weights(os.path.join(run_dir, state.checkpoint))
    if jit_compile:
        model.jit_compile = True  # Keras warns and keeps False if a layer cannot be compiled
    return model


def worker_scratch(run_dir: str, strategy) -> str:
    """The folder a non-chief worker saves into instead of RUN_DIR: emptied now, deleted after.

    One fixed name per run folder and task (in the temporary folder, never in RUN_DIR), so a
    worker restarted after ``kill -9`` on the same machine removes what the killed one left.
    """
    resolver = strategy.cluster_resolver
    digest = hashlib.sha1(os.path.abspath(run_dir).encode()).hexdigest()[:12]
    folder = os.path.join(tempfile.gettempdir(), f"mclcr-worker-{digest}-{resolver.task_type}-"
                                                 f"{resolver.task_id}")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    return folder


def write_config(run_dir: str, saved, model_values, options, resolved, command: str) -> None:
    """config.json: model config, options, resolved values, schedule, command, versions."""
    import keras
    import tensorflow as tf

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
    write_json(os.path.join(run_dir, CONFIG_FILE), record, sort_keys=True)


def make_callbacks(write_dir: str, state, chief: bool, validation: EpochValidation) -> list:
    """Validation, NaN guard, paper schedule, CSV history, TensorBoard, checkpoints: in this
    order."""
    import keras

    plateau = cb.ResumableReduceLROnPlateau(
        initial_state=state.reduce_lr if state else None, verbose=1, **REDUCE_LR
    )
    callbacks = [
        validation,
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


def train(config: TrainConfig, command: str = "") -> TrainOutcome:
    """Runs (or resumes) one training run.

    Args:
        config: the run (validated here).
        command: the command line recorded in ``config.json``.

    Raises:
        UsageError: bad options, a run folder of other options, unusable records or weights
            (nothing trained).
        TrainingDiverged: the loss became NaN/inf.
        TrainingFailed: a runtime error while training (rerun to resume).
    """
    config.validate()
    import keras

    previous_policy = keras.mixed_precision.global_policy()
    try:
        return _train(config, command)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


def _train(config: TrainConfig, command: str) -> TrainOutcome:
    # One process per run folder. Multi-worker: the chief locks it, once it knows it is chief.
    if config.distribute == "multiworker":
        return _train_locked(config, command)
    with RunLock(config.out):
        return _train_locked(config, command)


def _train_locked(config: TrainConfig, command: str) -> TrainOutcome:
    options = config.record()
    run_dir = config.out
    saved, state = resume_point(run_dir, options, config.epochs)
    epochs_done = state.epochs_done if state else 0
    if state is not None and epochs_done == config.epochs:
        return TrainOutcome(run_dir, state, config.epochs, already_done=True)

    import keras
    import tensorflow as tf

    from mclcr_keras.models import BackboneWeightsError, MCLCRConfig

    strategy, description = make_strategy(config.distribute)
    chief = is_chief(strategy)
    if chief and config.distribute == "multiworker":
        lock = RunLock(run_dir)
        lock.acquire()  # released when this process ends
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % (2 * replicas):
        raise UsageError(
            f"--batch-size {config.batch_size} cannot give each of the {replicas} replicas a "
            f"slice with as many real as fake faces; use a multiple of {2 * replicas}"
        )
    policy = set_precision(config.mixed_precision)
    logger.info("%s", device_summary())
    logger.info("strategy: %s; dtype policy: %s", description, policy)

    if saved is not None:  # rebuild exactly the saved architecture
        model_values = {**saved["model"], **config.model_values()}
    else:
        model_values = MCLCRConfig(**config.model_values()).to_dict()
    if config.seed is not None:
        keras.utils.set_random_seed(config.seed + 1000 * epochs_done)
    try:
        train_data, validation, resolved = make_datasets(options, strategy, epochs_done)
    except (FileNotFoundError, OSError, ValueError) as error:
        raise UsageError(" ".join(str(error).split())) from None
    resolved.update(dtype_policy=policy, strategy=description)
    try:
        model = build_model(model_values, run_dir, state, strategy, config.jit_compile)
    except BackboneWeightsError as error:
        raise UsageError(str(error)) from None
    except (OSError, ValueError) as error:
        what = f"the checkpoint of {run_dir}" if state else "the model"
        raise UsageError(f"cannot build {what}: {' '.join(str(error).split())[:400]}") from None
    resolved["jit_compile"] = bool(model.jit_compile)  # what ran: Keras resolves "auto"
    if config.distribute == "multiworker":
        build_from_local_slice(model)
        patch_multi_worker_log_reduction()

    # Only the chief writes RUN_DIR; other workers save into a scratch folder (saving may run
    # collective ops that every worker must join) that is deleted at the end.
    write_dir = run_dir if chief else worker_scratch(run_dir, strategy)
    os.makedirs(write_dir, exist_ok=True)
    if chief:
        write_config(run_dir, saved, model_values, options, resolved, command)
        tidy_run_dir(run_dir, state)
        truncate_history(os.path.join(run_dir, HISTORY_FILE), epochs_done)
    callbacks = make_callbacks(write_dir, state, chief, validation)
    if state is not None:
        logger.info("resuming %s after epoch %d of %d (learning rate %g)", run_dir, epochs_done,
                    config.epochs, state.learning_rate)
    logger.info("%d steps of %d per epoch; validation: %d balanced batches, %d frames scored; "
                "writing %s", resolved["steps_per_epoch"], config.batch_size,
                resolved["validation_steps"], resolved["val_pass_frames"], run_dir)
    try:
        model.fit(
            train_data,
            epochs=config.epochs,
            initial_epoch=epochs_done,
            steps_per_epoch=resolved["steps_per_epoch"],
            callbacks=callbacks,
            verbose=1 if sys.stdout.isatty() else 2,
            shuffle=False,
        )
    except cb.NonFiniteLossError as error:
        kept = callbacks[-1].state
        raise TrainingDiverged(
            f"{error}: training stopped; {run_dir} keeps the last completed epoch "
            f"({kept.epochs_done if kept else 0} of {config.epochs}); lower --learning-rate (now "
            f"{config.learning_rate:g}) or check the records"
        ) from None
    except tf.errors.OpError as error:
        raise TrainingFailed(
            f"{type(error).__name__}: {op_error_summary(error.message)} (rerun the same command "
            "to resume after the last completed epoch)"
        ) from None
    finally:
        if not chief:
            shutil.rmtree(write_dir, ignore_errors=True)
    return TrainOutcome(run_dir, callbacks[-1].state if chief else None, config.epochs,
                        chief=chief, model=model)
