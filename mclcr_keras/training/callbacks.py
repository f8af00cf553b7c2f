"""Training callbacks: NaN stop, resumable schedule, and the per-epoch commit of the run folder.

- `NonFiniteLossGuard` raises `NonFiniteLossError` on the first NaN/inf training loss (batch
  logs) or epoch loss / val_loss, *before* any later callback sees the epoch, so a diverged
  epoch is never checkpointed, logged to history.csv or chosen as best.
- `ResumableReduceLROnPlateau` is Keras' `ReduceLROnPlateau` whose counters (`best`, `wait`,
  `cooldown_counter`) can be saved and restored, so a resumed run reduces the learning rate at
  the same epochs as an uninterrupted one.
- `RunCheckpoint` writes, after every epoch, a full `.keras` checkpoint (weights + optimizer
  state) and then `state.json` (the commit point, `mclcr_keras.training.run_dir`), and points
  `last.keras` / `best.keras` (best validation AUC) at the committed checkpoints. A `kill -9` at
  any moment leaves a run directory whose `state.json` names complete files; see
  `docs/training.md`.

Example:

```python
state = RunState.load(run_dir)             # None for a new run
guard = NonFiniteLossGuard()
plateau = ResumableReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=5,
                                     initial_state=state.reduce_lr if state else None)
checkpoint = RunCheckpoint(run_dir, plateau, state=state)
model.fit(..., initial_epoch=state.epochs_done if state else 0,
          callbacks=[guard, plateau, csv_logger, checkpoint])
```
"""

from __future__ import annotations

import datetime
import logging
import math
import os
from typing import Any

import keras

from mclcr_keras.training.run_dir import CHECKPOINT_DIR, RunState, checkpoint_name, tidy_run_dir
from mclcr_keras.training.validation import THRESHOLD_CRITERION, THRESHOLD_KEY

logger = logging.getLogger(__name__)

BEST_MONITOR = "val_auc"


class NonFiniteLossError(RuntimeError):
    """The training (or validation) loss became NaN or infinite.

    Attributes:
        epoch: 0-based epoch index (Keras' numbering).
        batch: 0-based batch index within the epoch, or `None` for an end-of-epoch value.
        key: the log entry that was not finite (`"loss"` or `"val_loss"`).
        value: its value.
    """

    def __init__(self, epoch: int, batch: int | None, key: str, value: float):
        self.epoch, self.batch, self.key, self.value = epoch, batch, key, value
        where = f"epoch {epoch + 1}" + (f", batch {batch + 1}" if batch is not None else "")
        super().__init__(f"{key} is {value} at {where}")


def _is_finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return True  # not a number: nothing to judge


class NonFiniteLossGuard(keras.callbacks.Callback):
    """Stops `fit` by raising `NonFiniteLossError` at the first non-finite loss.

    Keras' `TerminateOnNaN` only sets `stop_training`, after which the epoch still ends and every
    `on_epoch_end` callback (checkpoints, CSV, learning-rate schedule) sees the NaN epoch.
    Raising instead aborts `fit` immediately; the caller turns the error into a message and an
    exit status. Place it first in the callback list.

    Example:

    >>> guard = NonFiniteLossGuard()
    >>> guard.on_train_batch_end(0, {"loss": 0.7})
    >>> guard.on_train_batch_end(1, {"loss": float("nan")})
    Traceback (most recent call last):
      ...
    mclcr_keras.training.callbacks.NonFiniteLossError: loss is nan at epoch 1, batch 2
    """

    def __init__(self, keys: tuple[str, ...] = ("loss", "val_loss")):
        super().__init__()
        self.keys = keys
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        value = (logs or {}).get("loss")
        if value is not None and not _is_finite(value):
            raise NonFiniteLossError(self._epoch, batch, "loss", float(value))

    def on_epoch_end(self, epoch, logs=None):
        for key in self.keys:
            value = (logs or {}).get(key)
            if value is not None and not _is_finite(value):
                raise NonFiniteLossError(epoch, None, key, float(value))


class ResumableReduceLROnPlateau(keras.callbacks.ReduceLROnPlateau):
    """`keras.callbacks.ReduceLROnPlateau` whose plateau counters survive a restart.

    Args:
        initial_state: a dict from `get_state()` of an earlier run, applied at the start of
            training (`on_train_begin` would otherwise reset the counters).
        **kwargs: `ReduceLROnPlateau` arguments (`monitor`, `factor`, `patience`, ...).

    Example:

    >>> plateau = ResumableReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=5)
    >>> plateau.get_state()
    {'best': None, 'wait': 0, 'cooldown_counter': 0}
    """

    def __init__(self, initial_state: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        self.initial_state = initial_state
        self._reset()

    def get_state(self) -> dict[str, Any]:
        best = None if self.best is None else float(self.best)
        return {"best": best, "wait": int(self.wait),
                "cooldown_counter": int(self.cooldown_counter)}

    def set_state(self, state: dict[str, Any]) -> None:
        self.best = state.get("best")
        self.wait = int(state.get("wait", 0))
        self.cooldown_counter = int(state.get("cooldown_counter", 0))

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.initial_state:
            self.set_state(self.initial_state)


class RunCheckpoint(keras.callbacks.Callback):
    """After each epoch: save a `.keras` checkpoint, commit `state.json`, update last/best.

    Order per epoch N (1-based): the model (with optimizer state) is saved to
    `checkpoints/epoch-N.tmp.keras` and renamed to `checkpoints/epoch-N.keras`; `state.json` is
    replaced atomically (the commit); `last.keras` and, if `val_auc` improved, `best.keras`
    become hard links to that file; checkpoints no longer named are deleted. Place this callback
    last, after the CSV logger and the learning-rate schedule.

    Args:
        run_dir: the run directory.
        plateau: the learning-rate schedule whose counters go into the state.
        state: the state the run resumed from (`None` for a new run).
        monitor: the validation metric that selects `best.keras` (maximised).
        write: `False` on non-chief workers of a multi-worker run: they save to a scratch
            directory (saving may need collective ops on every worker) and never commit.

    Example:

    ```python
    checkpoint = RunCheckpoint("runs/ffpp", plateau, state=None)   # a new run
    ```
    """

    def __init__(
        self,
        run_dir: str,
        plateau: ResumableReduceLROnPlateau,
        state: RunState | None = None,
        monitor: str = BEST_MONITOR,
        write: bool = True,
    ):
        super().__init__()
        self.run_dir = run_dir
        self.plateau = plateau
        self.state = state
        self.monitor = monitor
        self.write = write
        os.makedirs(os.path.join(run_dir, CHECKPOINT_DIR), exist_ok=True)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        epochs_done = epoch + 1
        relative = checkpoint_name(epochs_done)
        final = os.path.join(self.run_dir, relative)
        tmp = final[: -len(".keras")] + ".tmp.keras"
        self.model.save(tmp, overwrite=True)
        if not self.write:
            os.remove(tmp)
            return
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)

        previous = self.state
        best = {
            "best_epoch": previous.best_epoch if previous else None,
            "best_val_auc": previous.best_val_auc if previous else None,
            "best_checkpoint": previous.best_checkpoint if previous else None,
            "best_threshold": previous.best_threshold if previous else None,
        }
        value = logs.get(self.monitor)
        if value is None:
            logger.warning("no %s in the epoch logs: best.keras is not updated", self.monitor)
        elif _is_finite(value) and (
            best["best_val_auc"] is None or float(value) > best["best_val_auc"]
        ):
            threshold = logs.get(THRESHOLD_KEY)
            best = {"best_epoch": epochs_done, "best_val_auc": float(value),
                    "best_checkpoint": relative,
                    "best_threshold": None if threshold is None else {
                        "value": float(threshold), "criterion": THRESHOLD_CRITERION}}
            logger.info("epoch %d: %s improved to %.4f, best.keras updated", epochs_done,
                        self.monitor, float(value))

        learning_rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        self.state = RunState(
            epochs_done=epochs_done,
            checkpoint=relative,
            reduce_lr=self.plateau.get_state(),
            learning_rate=learning_rate,
            updated=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            **best,
        )
        self.state.save(self.run_dir)
        tidy_run_dir(self.run_dir, self.state)
