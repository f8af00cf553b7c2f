"""The run folder of a training: what is in it, what state it is in, and how it is kept consistent.

``RUN_DIR`` holds ``config.json`` (the options, resolved values, command and versions),
``history.csv``, ``logs/`` (TensorBoard), ``checkpoints/epoch-NNNN.keras``, ``state.json`` (the
commit point of the last completed epoch: `RunState`), ``last.keras`` / ``best.keras`` (hard
links to committed checkpoints) and ``best.threshold.json`` (the validation threshold of
``best.keras``, `mclcr_keras.models.saving.stored_threshold`). `resume_point` decides whether a
folder is new or a run to resume with the same options; `tidy_run_dir` removes what a crash left
behind.

Example:

```python
saved, state = resume_point("runs/ffpp", config.record(), epochs=50)
epochs_done = state.epochs_done if state else 0   # e.g. 12 after a run killed in epoch 13
```
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from typing import Any

from mclcr_keras.errors import UsageError
from mclcr_keras.files import link_atomic, write_json
from mclcr_keras.models.saving import threshold_sidecar, write_threshold_sidecar
from mclcr_keras.training.options import ADDED_OPTIONS, RESUMABLE_CHANGES

CONFIG_FILE = "config.json"
HISTORY_FILE = "history.csv"
LOG_DIR = "logs"
STATE_FILE = "state.json"
CHECKPOINT_DIR = "checkpoints"
LAST_MODEL = "last.keras"
BEST_MODEL = "best.keras"
STATE_FORMAT = 1
LOCK_FILE = ".lock"


class RunLock:
    """An exclusive OS lock on a run folder (``RUN_DIR/.lock``, `fcntl.flock`).

    Two trainings in one run folder would interleave their logs and overwrite each other's
    checkpoints; the second one is refused with `UsageError` naming the holder's PID. The kernel
    releases the lock when its process ends, however it ends (``kill -9`` included), so a killed
    run resumes with the same command. Creates the run folder; a start that fails before writing
    anything else leaves no folder behind.

    Example:

    ```python
    with RunLock("runs/ffpp"):
        ...  # this process is the only one writing runs/ffpp
    ```
    """

    def __init__(self, run_dir: str):
        self.path = os.path.join(run_dir, LOCK_FILE)
        self._handle = None
        self._created = False

    def acquire(self) -> None:
        import fcntl

        folder = os.path.dirname(self.path)
        self._created = not os.path.isdir(folder)
        os.makedirs(folder, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise UsageError(f"--out {os.path.dirname(self.path)} is in use by another training "
                             f"(PID {holder}); wait for it, or choose another --out") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is None:
            return
        folder = os.path.dirname(self.path)
        if self._created and os.listdir(folder) == [LOCK_FILE]:  # nothing was written
            os.remove(self.path)
            os.rmdir(folder)
        self._handle.close()  # closing the file releases the lock
        self._handle = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


@dataclasses.dataclass
class RunState:
    """What `state.json` records after each completed epoch.

    Attributes:
        epochs_done: completed epochs (= `initial_epoch` of the next `fit`).
        checkpoint: path of the latest checkpoint, relative to the run directory.
        best_epoch: 1-based epoch of the best validation AUC so far (`None`: none finite yet).
        best_val_auc: that AUC.
        best_checkpoint: its checkpoint, relative to the run directory.
        best_threshold: the decision threshold chosen on the val split for that checkpoint,
            ``{"value", "criterion"}`` (`None`: runs of earlier versions).
        reduce_lr: `ResumableReduceLROnPlateau.get_state()`.
        learning_rate: the learning rate for the next epoch.
        updated: UTC time of the commit (ISO 8601).
    """

    epochs_done: int
    checkpoint: str
    best_epoch: int | None = None
    best_val_auc: float | None = None
    best_checkpoint: str | None = None
    best_threshold: dict | None = None
    reduce_lr: dict = dataclasses.field(default_factory=dict)
    learning_rate: float | None = None
    updated: str = ""
    format: int = STATE_FORMAT

    @classmethod
    def load(cls, run_dir: str) -> RunState | None:
        """The committed state of `run_dir`, or `None` if no epoch was completed yet.

        Raises:
            ValueError: unreadable `state.json`, or it names a checkpoint that does not exist.
        """
        path = os.path.join(run_dir, STATE_FILE)
        if not os.path.exists(path):
            return None
        try:
            with open(path, encoding="utf-8") as f:
                values = json.load(f)
            names = {field.name for field in dataclasses.fields(cls)}
            state = cls(**{k: v for k, v in values.items() if k in names})
        except (OSError, ValueError, TypeError) as error:
            raise ValueError(f"unreadable run state {path}: {error}") from None
        for relative in (state.checkpoint, state.best_checkpoint):
            if relative and not os.path.isfile(os.path.join(run_dir, relative)):
                raise ValueError(f"{path} names a missing checkpoint: {relative}")
        return state

    def save(self, run_dir: str) -> None:
        write_json(os.path.join(run_dir, STATE_FILE), dataclasses.asdict(self), sort_keys=True)


def checkpoint_name(epochs_done: int) -> str:
    """Relative path of the checkpoint taken after `epochs_done` epochs."""
    return os.path.join(CHECKPOINT_DIR, f"epoch-{epochs_done:04d}.keras")


def tidy_run_dir(run_dir: str, state: RunState | None) -> None:
    """Removes checkpoints `state` does not name and half-written files; relinks last/best.

    Called on start (after a crash) and after each commit.
    """
    keep = set()
    if state is not None:
        keep = {os.path.normpath(p) for p in (state.checkpoint, state.best_checkpoint) if p}
    folder = os.path.join(run_dir, CHECKPOINT_DIR)
    if os.path.isdir(folder):
        for name in os.listdir(folder):
            relative = os.path.normpath(os.path.join(CHECKPOINT_DIR, name))
            if relative not in keep:
                os.remove(os.path.join(run_dir, relative))
    for name in (LAST_MODEL, BEST_MODEL, STATE_FILE, threshold_sidecar(BEST_MODEL).name):
        tmp = os.path.join(run_dir, f"{name}.tmp")
        if os.path.lexists(tmp):
            os.remove(tmp)
    if state is None:
        return
    links = {LAST_MODEL: state.checkpoint, BEST_MODEL: state.best_checkpoint}
    for name, relative in links.items():
        target = os.path.join(run_dir, name)
        if relative is None:
            continue
        source = os.path.join(run_dir, relative)
        if not (os.path.exists(target) and os.path.samefile(source, target)):
            link_atomic(source, target)
    write_best_threshold(run_dir, state)


def write_best_threshold(run_dir: str, state: RunState) -> None:
    """``best.threshold.json`` for the state's best checkpoint (rewritten when it changed)."""
    if state.best_checkpoint is None or not state.best_threshold:
        return
    sidecar = threshold_sidecar(os.path.join(run_dir, BEST_MODEL))
    try:
        with open(sidecar, encoding="utf-8") as f:
            if json.load(f).get("checkpoint") == state.best_checkpoint:
                return
    except (OSError, ValueError):
        pass
    write_threshold_sidecar(os.path.join(run_dir, BEST_MODEL), {
        **state.best_threshold, "split": "val", "checkpoint": state.best_checkpoint,
        "epoch": state.best_epoch, "val_auc": state.best_val_auc})


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
        if [name for name in os.listdir(run_dir)
                if not name.endswith(".tmp") and name != LOCK_FILE]:
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
    from the config.json it saved. An option missing from an older config.json
    (`ADDED_OPTIONS`) counts as the value that run used.
    """
    saved_options = {**ADDED_OPTIONS, **saved.get("training", {})}
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


def resume_point(run_dir: str, options: dict[str, Any], epochs: int):
    """The saved config and committed state of RUN_DIR (`None`, `None` for a new run).

    Raises:
        UsageError: RUN_DIR holds a run with other options, an unreadable state, or more
            completed epochs than `epochs`.
    """
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
