"""`mclcr_keras.training` as a library: `TrainConfig`, the run folder, the callbacks, replica-safe
validation batches, `train` on a run that is already complete, and XLA (`--jit-compile`) against
the default train step.

The training runs themselves (resume after ``kill -9``, NaN stop, MirroredStrategy) go through
the command line, as a user runs them: tests/test_train_cli.py.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mclcr_keras.errors import UsageError
from mclcr_keras.training import run_dir as rd
from mclcr_keras.training.callbacks import (
    NonFiniteLossError,
    NonFiniteLossGuard,
    ResumableReduceLROnPlateau,
)
from mclcr_keras.training.options import REDUCE_LR, TrainConfig

# ------------------------------------------------------------------------------ TrainConfig


@pytest.fixture
def shard_layout(tmp_path) -> Path:
    """A records folder with (empty) real and fake shards in train/ and val/: what
    `TrainConfig.validate` checks without reading a record."""
    root = tmp_path / "records"
    for split in ("train", "val"):
        (root / split).mkdir(parents=True)
        for label in ("real", "fake"):
            (root / split / f"{label}-00000-of-00001.tfrecord").write_bytes(b"")
    return root


def test_defaults_are_the_papers():
    config = TrainConfig(records="r", out="o")
    assert (config.epochs, config.batch_size, config.image_size) == (50, 16, 256)
    assert (config.learning_rate, config.weight_decay) == (1e-3, 1e-4)
    assert (config.variant, config.weights, config.distribute) == ("mclcr", "imagenet", "none")
    assert not config.mixed_precision
    assert (config.steps_per_epoch, config.validation_steps, config.seed) == (None, None, None)
    # Not the paper's, but the behaviour of runs from before these options existed.
    assert (config.flip, config.attention_scale) == (True, "head")
    assert REDUCE_LR == {"monitor": "val_loss", "factor": 0.5, "patience": 5}


def test_smoke_preset_and_its_overrides():
    smoke = TrainConfig.smoke("records/demo", "runs/demo")
    assert (smoke.records, smoke.out) == ("records/demo", "runs/demo")
    assert (smoke.image_size, smoke.weights, smoke.epochs, smoke.batch_size) == (64, "none", 1, 8)
    assert (smoke.steps_per_epoch, smoke.validation_steps, smoke.seed) == (2, 1, 0)
    assert smoke.variant == "mclcr" and smoke.learning_rate == 1e-3
    changed = TrainConfig.smoke("r", "o", epochs=3, variant="baseline")
    assert (changed.epochs, changed.variant, changed.image_size) == (3, "baseline", 64)


def test_validate_accepts_good_options(shard_layout, tmp_path):
    TrainConfig(records=str(shard_layout), out=str(tmp_path / "run")).validate()
    weights = tmp_path / "xception_notop.h5"
    weights.write_bytes(b"")
    TrainConfig.smoke(str(shard_layout), str(tmp_path / "run"), weights=str(weights)).validate()
    assert not (tmp_path / "run").exists()  # validating creates nothing


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"epochs": 0}, "--epochs must be a positive integer, got 0"),
        ({"steps_per_epoch": 2.5}, "--steps-per-epoch must be a positive integer, got 2.5"),
        ({"validation_steps": -1}, "--validation-steps must be a positive integer, got -1"),
        ({"variant": "tiny"}, "--variant must be one of ('mclcr', 'no_ssrb', 'no_papda', "
                              "'no_supcon', 'baseline'), got 'tiny'"),
        ({"distribute": "tpu"}, "--distribute must be one of ('none', 'mirrored', "
                                "'multiworker'), got 'tpu'"),
        ({"batch_size": 6}, "--batch-size must be a multiple of 4 (half real, half fake, each "
                            "half of the batch balanced); got 6"),
        ({"image_size": 72}, "--image-size must be a multiple of 16 (the patch size) and >= 32; "
                             "got 72"),
        ({"image_size": 16}, "--image-size must be a multiple of 16 (the patch size) and >= 32; "
                             "got 16"),
        ({"learning_rate": 0.0}, "--learning-rate must be > 0; got 0.0"),
        ({"weight_decay": -1e-4}, "--weight-decay must be >= 0; got -0.0001"),
        ({"weights": "xception.ckpt"}, "--weights must be 'imagenet', 'none' or the path of an "
                                       "Xception .h5 weights file; got 'xception.ckpt'"),
        ({"weights": "missing.h5"}, "--weights file not found: missing.h5"),
        ({"flip": "no"}, "flip must be True or False (--no-flip turns it off), got 'no'"),
        ({"attention_scale": "d"}, "--attention-scale must be one of ('head', 'model'), got 'd'"),
        ({"jit_compile": 1}, "jit_compile must be True or False, got 1"),
        ({"jit_compile": True, "distribute": "mirrored"},
         "--jit-compile needs --distribute none, got mirrored: XLA cannot compile the "
         "distributed train step (the cross-replica all-gather of the SupCon batch, variables "
         "on several devices); see docs/training.md"),
    ],
)
def test_validate_rejects_bad_options_with_one_line(shard_layout, tmp_path, changes, message):
    config = TrainConfig(records=str(shard_layout), out=str(tmp_path / "run"), **changes)
    with pytest.raises(UsageError) as info:
        config.validate()
    assert str(info.value) == message


def test_validate_checks_the_records_and_the_run_folder(shard_layout, tmp_path, monkeypatch):
    def message(**changes) -> str:
        values = {"records": str(shard_layout), "out": str(tmp_path / "run"), **changes}
        with pytest.raises(UsageError) as info:
            TrainConfig(**values).validate()
        assert "\n" not in str(info.value)
        return str(info.value)

    for name in [n for n in os.environ if n.startswith("SLURM_")] + ["TF_CONFIG"]:
        monkeypatch.delenv(name, raising=False)
    assert message(distribute="multiworker").startswith(
        "--distribute multiworker needs the TF_CONFIG environment variable (the cluster and "
        "this worker's task) or a Slurm job step started with srun")
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    assert message(out=str(a_file)) == f"--out {a_file} exists and is not a directory"
    assert message(records=str(tmp_path / "none")) == (
        f"--records {tmp_path / 'none'} is not a directory")
    (shard_layout / "val" / "fake-00000-of-00001.tfrecord").unlink()
    assert message().startswith(f"no fake shards (fake-NNNNN-of-NNNNN.tfrecord) in "
                                f"{shard_layout / 'val'}: both classes are needed")
    shutil.rmtree(shard_layout / "val")
    assert message().startswith(f"no validation split in --records {shard_layout}")
    shutil.rmtree(shard_layout / "train")
    assert message().startswith(f"no training split in --records {shard_layout}")
    # Remote records are checked by the pipeline when it opens them.
    TrainConfig(records="gs://bucket/records", out=str(tmp_path / "run")).validate()


def test_record_is_what_config_json_stores(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = TrainConfig(records="records", out="run", weights="NONE", seed=3,
                         mixed_precision=1, variant="no_ssrb", learning_rate=0.01)
    record = config.record()
    assert record == {
        "records": str(tmp_path / "records"), "variant": "no_ssrb", "epochs": 50,
        "batch_size": 16, "image_size": 256, "weights": "none", "distribute": "none",
        "mixed_precision": True, "learning_rate": 0.01, "weight_decay": 1e-4,
        "steps_per_epoch": None, "validation_steps": None, "seed": 3, "flip": True,
        "attention_scale": "head", "precise_bn_batches": 32, "bn_momentum": None,
        "jit_compile": False,
    }
    json.dumps(record)  # config.json stores it as it is
    assert TrainConfig(records="gs://b/r", out="o", weights="w.h5").record()["records"] == (
        "gs://b/r")
    assert TrainConfig(records="r", out="o", weights="w.h5").record()["weights"] == str(
        tmp_path / "w.h5")
    assert TrainConfig(records="r", out="o", weights="ImageNet").record()["weights"] == (
        "imagenet")
    assert config.model_values() == {"image_size": 256, "variant": "no_ssrb", "weights": None,
                                     "learning_rate": 0.01, "weight_decay": 1e-4,
                                     "attention_scale": "head", "bn_momentum": None}
    no_flip = TrainConfig(records="r", out="o", flip=False, attention_scale="model")
    assert (no_flip.record()["flip"], no_flip.record()["attention_scale"]) == (False, "model")
    assert no_flip.model_values()["attention_scale"] == "model"


def test_options_and_run_folder_import_no_tensorflow(shard_layout):
    """The option checks run before TensorFlow is imported (a usage error costs no TF start)."""
    code = (
        "import sys\n"
        "from mclcr_keras.training.options import TrainConfig\n"
        "from mclcr_keras.training import run_dir\n"
        f"TrainConfig.smoke({str(shard_layout)!r}, 'run').validate()\n"
        "heavy = sorted(m for m in ('tensorflow', 'keras') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr


# ------------------------------------------------------------------------------ run folder


def _state(**changes) -> rd.RunState:
    values = dict(epochs_done=2, checkpoint=rd.checkpoint_name(2), best_epoch=1,
                  best_val_auc=0.75, best_checkpoint=rd.checkpoint_name(1),
                  reduce_lr={"best": 0.5, "wait": 1, "cooldown_counter": 0}, learning_rate=1e-3,
                  updated="2026-01-01T00:00:00+00:00")
    values.update(changes)
    return rd.RunState(**values)


def _checkpoints(run: Path, *epochs: int) -> None:
    (run / rd.CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
    for epoch in epochs:
        (run / rd.checkpoint_name(epoch)).write_text(f"weights of epoch {epoch}")


def test_file_names():
    assert (rd.CONFIG_FILE, rd.HISTORY_FILE, rd.LOG_DIR, rd.STATE_FILE) == (
        "config.json", "history.csv", "logs", "state.json")
    assert (rd.CHECKPOINT_DIR, rd.LAST_MODEL, rd.BEST_MODEL) == (
        "checkpoints", "last.keras", "best.keras")
    assert rd.checkpoint_name(3) == os.path.join("checkpoints", "epoch-0003.keras")
    assert rd.checkpoint_name(12345) == os.path.join("checkpoints", "epoch-12345.keras")


def test_run_state_round_trip_and_unreadable_states(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    assert rd.RunState.load(str(run)) is None
    _checkpoints(run, 1, 2)
    state = _state()
    state.save(str(run))
    stored = json.loads((run / "state.json").read_text())
    assert stored["epochs_done"] == 2 and stored["format"] == 1
    assert list(stored) == sorted(stored)  # sort_keys: diffs of state.json stay readable
    assert rd.RunState.load(str(run)) == state

    (run / rd.checkpoint_name(1)).unlink()
    with pytest.raises(ValueError, match=r"names a missing checkpoint: checkpoints.epoch-0001"):
        rd.RunState.load(str(run))
    (run / "state.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"^unreadable run state .*state\.json: "):
        rd.RunState.load(str(run))


def test_tidy_run_dir_keeps_what_the_state_names(tmp_path):
    run = tmp_path / "run"
    _checkpoints(run, 1, 2, 3)
    (run / rd.CHECKPOINT_DIR / "epoch-0004.tmp.keras").write_text("half written")
    (run / "state.json.tmp").write_text("half written")
    (run / "last.keras.tmp").write_text("half written")
    state = _state()
    rd.tidy_run_dir(str(run), state)
    assert sorted(os.listdir(run / rd.CHECKPOINT_DIR)) == ["epoch-0001.keras",
                                                         "epoch-0002.keras"]
    assert not (run / "state.json.tmp").exists() and not (run / "last.keras.tmp").exists()
    assert os.path.samefile(run / "last.keras", run / rd.checkpoint_name(2))
    assert os.path.samefile(run / "best.keras", run / rd.checkpoint_name(1))
    # The next commit moves last.keras and keeps best.keras.
    _checkpoints(run, 3)
    rd.tidy_run_dir(str(run), _state(epochs_done=3, checkpoint=rd.checkpoint_name(3)))
    assert sorted(os.listdir(run / rd.CHECKPOINT_DIR)) == ["epoch-0001.keras",
                                                         "epoch-0003.keras"]
    assert (run / "last.keras").read_text() == "weights of epoch 3"
    assert (run / "best.keras").read_text() == "weights of epoch 1"
    # A crash before the first commit: no state, every checkpoint goes.
    rd.tidy_run_dir(str(run), None)
    assert os.listdir(run / rd.CHECKPOINT_DIR) == []


def test_truncate_history_drops_rows_of_uncommitted_epochs(tmp_path):
    path = tmp_path / "history.csv"
    assert rd.truncate_history(str(path), 2) == 0
    rows = [["epoch", "loss", "val_auc"], ["0", "0.9", "0.6"], ["1", "0.8", "0.7"],
            ["2", "0.7", "0.8"]]
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    assert rd.truncate_history(str(path), 3) == 3
    assert rd.truncate_history(str(path), 2) == 2
    with open(path, newline="") as f:
        assert list(csv.reader(f)) == rows[:3]
    assert rd.truncate_history(str(path), 0) == 0
    with open(path, newline="") as f:
        assert list(csv.reader(f)) == rows[:1]


def test_read_run_config(tmp_path):
    run = tmp_path / "run"
    assert rd.read_run_config(str(run)) is None
    run.mkdir()
    (run / "config.json.tmp").write_text("{}")  # the chief of a multi-worker run writing it
    assert rd.read_run_config(str(run)) is None
    (run / "notes.txt").write_text("")
    with pytest.raises(UsageError, match=f"^--out {run} is not empty and holds no config.json"):
        rd.read_run_config(str(run))
    (run / "config.json").write_text("{")
    with pytest.raises(UsageError, match=r"^cannot read .*config\.json: "):
        rd.read_run_config(str(run))
    (run / "config.json").write_text('{"model": {}}')
    with pytest.raises(UsageError, match=r"is not the config of a training run"):
        rd.read_run_config(str(run))
    (run / "config.json").write_text('{"model": {}, "training": {"epochs": 3}}')
    assert rd.read_run_config(str(run)) == {"model": {}, "training": {"epochs": 3}}


def test_resume_point_allows_only_more_epochs_or_other_hardware(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    options = TrainConfig(records="r", out=str(run), epochs=3).record()
    (run / "config.json").write_text(json.dumps({"model": {}, "training": options}))
    assert rd.resume_point(str(run), options, 3) == ({"model": {}, "training": options}, None)
    _checkpoints(run, 1, 2)
    _state().save(str(run))
    more = {**options, "epochs": 5, "distribute": "mirrored"}
    assert rd.config_differences({"training": options}, more) == []
    # XLA compiles the same step: turning it on or off resumes, even a run from before it.
    assert rd.config_differences({"training": options}, {**options, "jit_compile": True}) == []
    older = {k: v for k, v in options.items() if k != "jit_compile"}
    assert rd.config_differences({"training": older}, {**options, "jit_compile": True}) == []
    saved, state = rd.resume_point(str(run), more, 5)
    assert state == _state() and saved["training"] == options

    other = {**options, "learning_rate": 0.01, "seed": 4}
    assert rd.config_differences({"training": options}, other) == [
        "learning_rate: 0.001 -> 0.01", "seed: None -> 4"]
    with pytest.raises(UsageError) as info:
        rd.resume_point(str(run), other, 3)
    assert str(info.value) == (
        f"--out {run} holds a run with other options (learning_rate: 0.001 -> 0.01; seed: None "
        "-> 4); rerun with the same options to resume it, or choose a new --out")
    # flip and attention_scale are compared like the other options; a config.json written
    # before they existed holds the values its run used (flip on, per-head scale).
    assert rd.config_differences({"training": options}, {**options, "flip": False}) == [
        "flip: True -> False"]
    assert rd.config_differences({"training": options}, {**options, "attention_scale": "model"}
                                 ) == ["attention_scale: 'head' -> 'model'"]
    older = {k: v for k, v in options.items() if k not in ("flip", "attention_scale")}
    assert rd.config_differences({"training": older}, options) == []
    assert rd.config_differences({"training": older}, {**options, "flip": False}) == [
        "flip: True -> False"]
    with pytest.raises(UsageError, match=f"^--epochs 1 is fewer than the 2 epochs {run} "):
        rd.resume_point(str(run), options, 1)
    (run / rd.checkpoint_name(2)).unlink()
    with pytest.raises(UsageError, match="names a missing checkpoint"):
        rd.resume_point(str(run), options, 3)


# ------------------------------------------------------------------------------ callbacks


def test_non_finite_loss_guard_stops_before_later_callbacks():
    guard = NonFiniteLossGuard()
    guard.on_epoch_begin(2)
    guard.on_train_batch_end(0, {"loss": 0.5, "note": "not a number"})
    guard.on_train_batch_end(1, {})
    with pytest.raises(NonFiniteLossError) as info:
        guard.on_train_batch_end(6, {"loss": float("inf")})
    error = info.value
    assert (error.epoch, error.batch, error.key, error.value) == (2, 6, "loss", math.inf)
    assert str(error) == "loss is inf at epoch 3, batch 7"
    guard.on_epoch_end(0, {"loss": 0.4, "val_loss": 0.6})
    with pytest.raises(NonFiniteLossError) as info:
        guard.on_epoch_end(4, {"loss": 0.4, "val_loss": float("nan")})
    assert str(info.value) == "val_loss is nan at epoch 5"


def test_plateau_counters_survive_a_restart():
    plateau = ResumableReduceLROnPlateau(**REDUCE_LR)
    assert plateau.get_state() == {"best": None, "wait": 0, "cooldown_counter": 0}
    assert (plateau.monitor, plateau.factor, plateau.patience) == ("val_loss", 0.5, 5)
    saved = {"best": 0.25, "wait": 3, "cooldown_counter": 1}
    resumed = ResumableReduceLROnPlateau(initial_state=saved, **REDUCE_LR)
    resumed.on_train_begin()  # Keras' own on_train_begin resets the counters ...
    assert resumed.get_state() == saved  # ... and the saved ones are applied after it
    assert json.loads(json.dumps(resumed.get_state())) == saved  # state.json stores them


# ------------------------------------------------------------------------------ devices

_SPLITS = """
import json
import sys

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 4)
from mclcr_keras.training.distribute import replica_safe_batches

devices = [d.name for d in tf.config.list_logical_devices("CPU")]
rows = []
for replicas in (2, 3, 4):
    strategy = tf.distribute.MirroredStrategy(devices[:replicas])
    batch = 2 * replicas
    # One distributed pass over all cases (each batch is split on its own).
    cases, datasets = [], []
    for total in range(1, replicas * replicas + batch + 1):
        batched = tf.data.Dataset.range(total).batch(batch)
        dataset, steps, frames = replica_safe_batches(batched, total, batch, replicas)
        cases.append({"replicas": replicas, "batch": batch, "total": total, "steps": steps,
                      "frames": frames})
        datasets.append(dataset)
    combined = datasets[0]
    for dataset in datasets[1:]:
        combined = combined.concatenate(dataset)
    slices = [[t.numpy().tolist() for t in strategy.experimental_local_results(x)]
              for x in strategy.experimental_distribute_dataset(combined)]
    for case in cases:
        case["slices"], slices = slices[: case["steps"]], slices[case["steps"]:]
        rows.append(case)
    assert not slices
json.dump(rows, sys.stdout)
"""


@pytest.mark.slow
def test_validation_batches_never_give_a_replica_an_empty_slice():
    """Checked against tf.distribute itself on 2, 3 and 4 logical CPUs."""
    result = subprocess.run([sys.executable, "-c", _SPLITS], capture_output=True, text=True,
                            timeout=600, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(result.stdout)
    assert len(rows) == sum(r * r + 2 * r for r in (2, 3, 4))
    for row in rows:
        replicas, total = row["replicas"], row["total"]
        slices = row["slices"]
        assert len(slices) == row["steps"], row
        assert all(len(batch) == replicas and all(batch) for batch in slices), row
        seen = [frame for batch in slices for part in batch for frame in part]
        assert sorted(seen) == list(range(row["frames"])), row
        # Only a split too small to share fairly loses frames, fewer than one per replica.
        dropped = total - row["frames"]
        assert 0 <= dropped < replicas, row
        if total >= replicas * replicas:
            assert dropped == 0, row


@pytest.mark.parametrize("flip", [True, False])
def test_the_flip_option_reaches_the_training_stream_only(flip, monkeypatch):
    import tensorflow as tf

    from mclcr_keras.data import pipeline, records
    from mclcr_keras.training import datasets

    calls = []

    def fake_make_dataset(*args, **kwargs):
        calls.append(kwargs)
        return tf.data.Dataset.range(8).batch(4)

    monkeypatch.setattr(pipeline, "make_dataset", fake_make_dataset)
    monkeypatch.setattr(records, "count_records", lambda *_: {"real": 4, "fake": 4})
    options = TrainConfig(records="r", out="o", batch_size=4, seed=1, flip=flip).record()
    datasets.make_datasets(options, tf.distribute.get_strategy(), epochs_done=0)
    balanced, full, precise_bn, train = calls  # validation first, the training stream last
    assert (train["training"], train["flip"], train["seed"]) == (True, flip, 1)
    assert (balanced["training"], balanced["balanced"]) == (False, True)
    assert not full["training"] and "balanced" not in full
    assert not any("flip" in kwargs for kwargs in (balanced, full))
    # Precise BN: fixed, unflipped training batches, whatever the run's seed and flip.
    assert (precise_bn["training"], precise_bn["flip"], precise_bn["seed"]) == (
        True, False, datasets.PRECISE_BN_SEED)


def test_one_replica_keeps_the_batches():
    import tensorflow as tf

    from mclcr_keras.training.distribute import replica_safe_batches

    batched = tf.data.Dataset.range(9).batch(4)
    dataset, steps, frames = replica_safe_batches(batched, 9, 4, 1)
    assert dataset is batched and (steps, frames) == (3, 9)


# ------------------------------------------------------------------------------ train()


def test_train_on_a_complete_run_does_nothing(shard_layout, tmp_path):
    """`train` returns the committed state of a finished run without building a model."""
    from mclcr_keras.training.loop import train

    run = tmp_path / "run"
    config = TrainConfig.smoke(str(shard_layout), str(run), epochs=2)
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"model": {}, "training": config.record()}))
    _checkpoints(run, 1, 2)
    _state().save(str(run))  # 2 epochs done
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*")}
    outcome = train(config, "python -m mclcr_keras.train ...")
    assert outcome.already_done and outcome.chief and outcome.epochs == 2
    assert outcome.run_dir == str(run)
    assert outcome.state == _state()
    after = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.name != ".lock"}
    assert after == before  # nothing rewritten (only the run folder's lock was taken)

    with pytest.raises(UsageError, match=r"holds a run with other options \(batch_size: 8 -> 4"):
        train(TrainConfig.smoke(str(shard_layout), str(run), epochs=2, batch_size=4))
    with pytest.raises(UsageError, match="--epochs 1 is fewer than the 2 epochs"):
        train(TrainConfig.smoke(str(shard_layout), str(run), epochs=1))


def test_set_precision_sets_the_global_policy():
    import keras
    import tensorflow as tf

    from mclcr_keras.training.distribute import set_precision

    mixed = "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"
    previous = keras.mixed_precision.global_policy()
    try:
        assert set_precision(True) == mixed
        assert keras.mixed_precision.global_policy().name == mixed
        assert set_precision(False) == "float32"
        assert keras.mixed_precision.global_policy().name == "float32"
    finally:
        keras.mixed_precision.set_global_policy(previous)


# ------------------------------------------------------------------------------ XLA


def test_the_jit_compile_flag_reaches_the_config():
    from mclcr_keras import train

    argv = ["--records", "r", "--out", "o"]
    assert train.config_from_args(train.build_parser().parse_args(argv)).jit_compile is False
    config = train.config_from_args(train.build_parser().parse_args([*argv, "--jit-compile"]))
    assert config.jit_compile is True and config.record()["jit_compile"] is True


@pytest.mark.slow
def test_jit_compile_gives_the_default_train_steps(tiny_records):
    """Three steps of the full model (FFT, Gram, attention, SupCon) with and without XLA.

    Dropout is off: under XLA TensorFlow's stateless RNG draws other numbers for the same seed
    (other dropout masks), so with dropout the two runs are different samples, not the same
    computation. Without it the steps agree to float32 rounding: XLA fuses and reorders sums, so
    the first loss (no update yet) agrees to ~1e-7 relative (measured 0 and 8.9e-8), and each
    AdamW update from random weights amplifies the difference (measured 3.4e-5 and 6.4e-5 at
    step 2, 1.9e-4 and 2.3e-3 at step 3, in two sessions with other starting weights). The
    tolerances, 1e-5, 1e-3 and 1e-2 for steps 1-3, are above that and below the change of the
    loss from one step to the next (> 1%; ~400% from step 1 to 2), which a wrong step would show.
    """
    import keras
    import numpy as np
    import tensorflow as tf

    from mclcr_keras.data import make_dataset
    from mclcr_keras.models import MCLCRConfig
    from mclcr_keras.training.loop import build_model

    values = MCLCRConfig.smoke(dropout=0.0).to_dict()
    # Three batches of the training stream, fixed (a new iterator of the stream reshuffles).
    stream = make_dataset(tiny_records, "train", batch_size=8, training=True, image_size=64,
                          seed=3)
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in stream.take(3)])
    batches = tf.data.Dataset.from_tensor_slices((np.stack(images), np.stack(labels)))
    losses, weights, starts = {}, {}, {}
    for jit in (False, True):
        keras.utils.set_random_seed(5)
        model = build_model(values, "", None, tf.distribute.get_strategy(), jit_compile=jit)
        starts[jit] = [w.numpy() for w in model.trainable_weights]
        assert model.jit_compile is jit
        # A checkpoint's compile config is a default run's (Keras' "auto": False on a CPU), so
        # a model file does not carry --jit-compile to predict or evaluate.
        assert model.get_compile_config()["jit_compile"] is False
        history = model.fit(batches, epochs=3, steps_per_epoch=1, verbose=0)
        losses[jit] = np.array(history.history["loss"])
        weights[jit] = [w.numpy() for w in model.trainable_weights]
    relative = np.abs(losses[True] - losses[False]) / losses[False]
    print(f"losses {losses[False]} vs XLA {losses[True]}: relative diff {relative}")
    assert np.all(relative < [1e-5, 1e-3, 1e-2]), (losses, relative)
    assert np.min(np.abs(np.diff(losses[False])) / losses[False][1:]) > 1e-2  # steps move it

    def norm(pairs) -> float:
        return float(np.sqrt(sum(np.sum((a - b) ** 2) for a, b in pairs)))

    assert norm(zip(starts[False], starts[True])) == 0.0
    update = norm(zip(weights[False], starts[False]))
    diff = norm(zip(weights[True], weights[False]))
    max_abs = max(float(np.max(np.abs(a - b))) for a, b in zip(weights[False], weights[True]))
    # AdamW normalises each gradient element, so rounding noise in a near-zero gradient becomes
    # a step of up to the learning rate (1e-3) either way: measured |diff| / |update| = 0.08
    # and 0.13 after three steps (max abs diff 4.4e-3, 4.7e-3); the losses are the sharper check.
    print(f"trainable weights: |XLA - default| / |update| = {diff / update:.3g}, max abs diff "
          f"{max_abs:.3g}")
    assert diff < 0.25 * update, (diff, update)
