"""`python -m mclcr_keras.train`, as a user runs it, on the records of conftest's `tiny_records`.

What a user sees: ``--help``, one-line errors with exit 2 for bad input (nothing created), exit 4
when the loss becomes NaN, exit 130 on Ctrl-C, resume after ``kill -9`` with every artifact of
the finished run, and MirroredStrategy with mixed precision on two logical CPUs. The library under
the command line (`mclcr_keras.training`) is tested in test_training_loop.py.

Tracing the training step of Xception dominates the runtime, so there are four trainings (NaN
stop; resume: the killed process and the resumption; mirrored), all of the baseline variant, whose
step traces about a third faster than the full model's (the full model trains through
`training.loop` in test_demo.py's quick run). Errors that need no training are checked without
one.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_FRAMES, TINY_VIDEOS
from sklearn.metrics import roc_auc_score

from mclcr_keras import cli
from mclcr_keras.train import main

TINY = ["--image-size", "64", "--weights", "none", "--batch-size", "4", "--precise-bn-batches", "2"]
VAL_FRAMES = 2 * TINY_VIDEOS["val"] * TINY_FRAMES  # both classes
LOOP_LOGGER = "mclcr_keras.training.loop"
# TensorFlow's native start-up lines that a CPU user must not see (mclcr_keras.cli filters them).
NATIVE_NOISE = ("absl::InitializeLog", "cuInit", "cudart_stub", "cpu_feature_guard")


def _history(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def _optimizer_iterations(path: Path) -> int:
    """The AdamW step counter stored in a .keras file (read with h5py, no model needed)."""
    import h5py

    with zipfile.ZipFile(path) as archive:
        data = archive.read("model.weights.h5")
    with h5py.File(io.BytesIO(data), "r") as weights:
        return int(weights["optimizer/vars/0"][()])


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("train: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def _loop_messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOOP_LOGGER]


# ------------------------------------------------------------------------------ bad input


def test_help_shows_the_papers_defaults_and_the_exit_codes(capsys):
    assert main(["--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert out.startswith("usage: python -m mclcr_keras.train [-h] [--verbose] --records DIR")
    assert "total number of epochs (default: 50, as in the paper)" in out
    assert "(default: 16 = 8 real + 8 fake, as in the paper)" in out
    assert "AdamW learning rate (default: 0.001)" in out
    assert "AdamW weight decay (default: 0.0001)" in out
    assert "--no-flip do not mirror training images left-right at random" in out
    assert "1/sqrt(D) ('model', 1/16, Eq. 5 as printed) (default: head)" in out
    assert ("Exit status: 0 done; 1 the work started and failed (e.g. a corrupt shard, a failed "
            "demo stage); 2 nothing done: bad arguments, a missing input, or an output in the "
            "way; 4 training stopped: the loss became NaN/inf (the last good epoch is kept); 130 "
            "interrupted (Ctrl-C).") in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--out", "run"], "the following arguments are required: --records"),
        (["--records", "r", "--out", "run", "--bogus"], "unrecognized arguments: --bogus"),
        (["--records", "r", "--out", "run", "--epochs", "0"],
         "argument --epochs: expected a positive integer, got '0'"),
        (["--records", "r", "--out", "run", "--learning-rate", "nan"],
         "argument --learning-rate: expected a finite number, got 'nan'"),
        (["--records", "r", "--out", "run", "--variant", "tiny"],
         "argument --variant: invalid choice: 'tiny'"),
        (["--records", "r", "--out", "run", "--attention-scale", "paper"],
         "argument --attention-scale: invalid choice: 'paper'"),
    ],
)
def test_bad_flags_give_one_line_and_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == cli.EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    line = _one_error_line(captured.err)
    assert line.startswith(f"train: error: {message}") and line.endswith("(see --help)")
    assert captured.err == line + "\n"
    assert not (tmp_path / "run").exists()


def test_bad_arguments_give_one_line(tiny_records, tmp_path, capsys, monkeypatch):
    records = tiny_records
    no_val = tmp_path / "no_val"
    no_val.mkdir()
    (no_val / "train").symlink_to(records / "train")
    no_train = tmp_path / "no_train"
    no_train.mkdir()
    (no_train / "val").symlink_to(records / "val")
    cluttered = tmp_path / "cluttered"
    cluttered.mkdir()
    (cluttered / "notes.txt").write_text("not a run")
    truncated = tmp_path / "truncated"
    (truncated / "train").mkdir(parents=True)
    (truncated / "val").symlink_to(records / "val")
    for shard in (records / "train").iterdir():
        data = shard.read_bytes()
        (truncated / "train" / shard.name).write_bytes(data[:-7] if "fake" in shard.name
                                                       else data)
    out = str(tmp_path / "run")
    cases = [
        (["--records", str(tmp_path / "missing"), "--out", out],
         f"--records {tmp_path / 'missing'} is not a directory"),
        (["--records", str(no_train), "--out", out], "no training split"),
        (["--records", str(no_val), "--out", out], "no validation split"),
        (["--records", str(records), "--out", out, "--batch-size", "6"],
         "--batch-size must be a multiple of 4 (half real, half fake, each half of the batch "
         "balanced); got 6"),
        (["--records", str(records), "--out", out, "--image-size", "72"],
         "--image-size must be a multiple of 16"),
        (["--records", str(records), "--out", out, "--weights", str(tmp_path / "x.h5")],
         f"--weights file not found: {tmp_path / 'x.h5'}"),
        (["--records", str(records), "--out", str(cluttered)],
         "is not empty and holds no config.json"),
        (["--records", str(records), "--out", out, "--distribute", "multiworker"],
         "needs the TF_CONFIG environment variable"),
        # A shard cut short is found by the header scan, before any training.
        (["--records", str(truncated), "--out", out, *TINY],
         f"corrupt TFRecord shard {truncated / 'train'}/fake-"),
    ]
    monkeypatch.delenv("TF_CONFIG", raising=False)
    for argv, expected in cases:
        status = main(argv)
        captured = capsys.readouterr()
        assert status == cli.EXIT_USAGE, (argv, captured.err)
        assert expected in _one_error_line(captured.err), (argv, captured.err)
    assert not os.path.exists(out)  # nothing was created by a failed start


def test_imagenet_weights_offline_is_one_line(tiny_records, tmp_path, capsys, monkeypatch):
    """No network and no cached weights: one line naming the remedies, exit 2, no run folder."""
    from keras.src.applications import xception as keras_xception

    real_get_file = keras_xception.file_utils.get_file

    def unreachable(fname, origin, **kwargs):
        # Keras' own download code, pointed at a closed local port and an empty cache.
        kwargs["cache_dir"] = str(tmp_path / "keras_home")
        return real_get_file(fname, "http://127.0.0.1:9/" + fname, **kwargs)

    monkeypatch.setattr(keras_xception.file_utils, "get_file", unreachable)
    run_dir = tmp_path / "run"
    status = main(["--records", str(tiny_records), "--out", str(run_dir), "--image-size", "64",
                   "--weights", "imagenet"])
    captured = capsys.readouterr()
    assert status == cli.EXIT_USAGE, captured.err
    line = _one_error_line(captured.err)
    assert line.startswith("train: error: Could not download the ImageNet weights of Xception")
    assert "--weights none" in line
    assert not (run_dir / "config.json").exists()


@pytest.mark.parametrize(
    "error, status, message",
    [
        ("TrainingFailed", cli.EXIT_FAILED, "train: error: DataLossError: corrupt record"),
        ("KeyboardInterrupt", cli.EXIT_INTERRUPTED,
         "train: interrupted; rerun the same command to resume after the last completed epoch"),
    ],
)
def test_failures_while_training_map_to_their_exit_status(error, status, message, capsys,
                                                          monkeypatch, tiny_records, tmp_path):
    """What `loop.train` raises once training started: one line, the documented status."""
    from mclcr_keras.training import loop

    def failing(config, command):
        assert command.startswith("python -m mclcr_keras.train --records ")
        if error == "KeyboardInterrupt":
            raise KeyboardInterrupt
        raise loop.TrainingFailed("DataLossError: corrupt record")

    monkeypatch.setattr(loop, "train", failing)
    assert main(["--records", str(tiny_records), "--out", str(tmp_path / "run")]) == status
    captured = capsys.readouterr()
    assert captured.err == message + "\n" and captured.out == ""


# ------------------------------------------------------------------------------ training runs


@pytest.mark.slow
def test_nan_loss_stops_with_exit_4(tiny_records, tmp_path, capsys):
    """An absurd learning rate overflows AdamW's first update: the next loss is NaN/inf."""
    run_dir = tmp_path / "run"
    argv = ["--records", str(tiny_records), "--out", str(run_dir), *TINY, "--epochs", "2",
            "--steps-per-epoch", "4", "--learning-rate", "1e38", "--variant", "baseline"]
    status = main(argv)
    captured = capsys.readouterr()
    assert status == cli.EXIT_DIVERGED == 4, captured.err
    line = _one_error_line(captured.err)
    assert line.startswith("train: error: loss is "), line
    assert "at epoch 1, batch" in line and ("nan" in line or "inf" in line), line
    assert line.endswith(f"training stopped; {run_dir} keeps the last completed epoch (0 of 2); "
                         "lower --learning-rate (now 1e+38) or check the records"), line
    assert "done:" not in captured.out  # no artifact list
    # No epoch completed: nothing was committed or logged as an epoch.
    assert not (run_dir / "state.json").exists()
    assert not (run_dir / "last.keras").exists()
    assert not (run_dir / "best.keras").exists()
    assert os.listdir(run_dir / "checkpoints") == []
    assert _history(run_dir) == []
    assert json.loads((run_dir / "config.json").read_text())["training"]["learning_rate"] == 1e38


@pytest.mark.slow
def test_killed_run_resumes_after_last_completed_epoch(tiny_records, tmp_path, capsys, caplog):
    """kill -9 during epoch 2, same command again: epochs 2 and 3 only, then every artifact."""
    import tensorflow as tf

    from mclcr_keras.data import make_dataset
    from mclcr_keras.models import MCLCRConfig, load_model

    caplog.set_level(logging.INFO, logger="mclcr_keras")
    records = tiny_records
    run_dir = tmp_path / "run"
    steps, epochs = 4, 3
    argv = ["--records", str(records), "--out", str(run_dir), *TINY, "--epochs", str(epochs),
            "--steps-per-epoch", str(steps), "--seed", "3", "--variant", "baseline"]
    log_path = tmp_path / "first_run.log"
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a user has it
    with open(log_path, "w") as log:
        first = subprocess.Popen([sys.executable, "-m", "mclcr_keras.train", *argv],
                                 stdout=log, stderr=subprocess.STDOUT, env=env)
        state_path = run_dir / "state.json"
        deadline = time.monotonic() + 900
        try:
            while not state_path.exists():
                assert first.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "no epoch completed in time"
                time.sleep(0.1)
            os.kill(first.pid, signal.SIGKILL)
        finally:
            first.kill()
            first.wait()
    killed_at = json.loads(state_path.read_text())["epochs_done"]
    assert killed_at == 1
    first_log = log_path.read_text()
    # Progress goes to stderr as log lines; TensorFlow's native start-up noise does not.
    assert (f"INFO {LOOP_LOGGER}: {steps} steps of 4 per epoch; validation: "
            f"{math.ceil(VAL_FRAMES / 4)} balanced batches, {VAL_FRAMES} frames scored; "
            f"writing {run_dir}") in first_log
    assert not [noise for noise in NATIVE_NOISE if noise in first_log], first_log

    status = main(argv)
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert f"resuming {run_dir} after epoch 1 of 3 (learning rate 0.001)" in _loop_messages(
        caplog)
    assert "resuming" not in captured.out  # progress is logged, not printed

    # history.csv: one row per epoch, none repeated, none lost.
    history = _history(run_dir)
    assert [int(row["epoch"]) for row in history] == [0, 1, 2]
    assert all(math.isfinite(float(row["loss"])) for row in history)
    # The optimizer state was restored: AdamW counted every step of all three epochs.
    assert _optimizer_iterations(run_dir / "last.keras") == epochs * steps
    state = json.loads(state_path.read_text())
    assert state["epochs_done"] == epochs
    assert state["checkpoint"] == os.path.join("checkpoints", "epoch-0003.keras")
    assert os.path.samefile(run_dir / "last.keras", run_dir / state["checkpoint"])
    assert os.path.samefile(run_dir / "best.keras", run_dir / state["best_checkpoint"])
    assert sorted(os.listdir(run_dir / "checkpoints")) == sorted(
        {os.path.basename(state["checkpoint"]), os.path.basename(state["best_checkpoint"])})
    assert (run_dir / "logs").is_dir() and any((run_dir / "logs").rglob("events.out.*"))

    # config.json: the model config and the command-line options.
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model"] == MCLCRConfig(image_size=64, weights=None,
                                          variant="baseline").to_dict()
    training = config["training"]
    assert training["records"] == str(records.resolve())
    assert (training["batch_size"], training["epochs"], training["steps_per_epoch"],
            training["seed"], training["variant"], training["weights"]) == (
        4, 3, steps, 3, "baseline", "none")
    assert (training["learning_rate"], training["weight_decay"]) == (1e-3, 1e-4)
    assert config["resolved"]["validation_steps"] == math.ceil(VAL_FRAMES / 4)
    assert config["resolved"]["train_frames"] == {"real": TINY_VIDEOS["train"] * TINY_FRAMES,
                                                  "fake": TINY_VIDEOS["train"] * TINY_FRAMES}
    assert config["schedule"]["reduce_lr_on_plateau"] == {
        "monitor": "val_loss", "factor": 0.5, "patience": 5}
    assert config["command"] == cli.PROG_PREFIX + "train " + " ".join(argv)

    # best.keras is the epoch with the highest val_auc, and re-scoring it on the val split
    # gives that epoch's logged numbers: the exact AUC of every frame, the objective on the
    # balanced batches, and the EER threshold in best.threshold.json.
    aucs = [float(row["val_auc"]) for row in history]
    best_epoch = int(np.argmax(aucs)) + 1
    assert state["best_epoch"] == best_epoch
    assert state["best_val_auc"] == pytest.approx(aucs[best_epoch - 1])
    best = load_model(run_dir / "best.keras")
    best.compile(run_eagerly=True)  # eager: no trace of another test step
    probabilities, labels = [], []
    for images, batch_labels in make_dataset(records, "val", batch_size=4, training=False,
                                             image_size=64):
        probabilities += best(images, training=False)["probability"].numpy().ravel().tolist()
        labels += batch_labels.numpy().astype(int).tolist()
    assert len(labels) == VAL_FRAMES
    assert roc_auc_score(labels, probabilities) == pytest.approx(aucs[best_epoch - 1], abs=1e-6)
    balanced = make_dataset(records, "val", batch_size=4, training=False, balanced=True,
                            image_size=64).apply(
        tf.data.experimental.assert_cardinality(math.ceil(VAL_FRAMES / 4)))
    scores = best.evaluate(balanced, return_dict=True, verbose=0)
    assert scores["loss"] == pytest.approx(float(history[best_epoch - 1]["val_loss"]), rel=1e-4)
    assert scores["supcon"] == pytest.approx(float(history[best_epoch - 1]["val_supcon"]),
                                             rel=1e-4)
    sidecar = json.loads((run_dir / "best.threshold.json").read_text())
    assert (sidecar["criterion"], sidecar["split"], sidecar["checkpoint"], sidecar["epoch"]) == (
        "eer", "val", state["best_checkpoint"], best_epoch)
    assert sidecar["sha256"] == hashlib.sha256((run_dir / "best.keras").read_bytes()).hexdigest()
    y, p = np.array(labels), np.array(probabilities)
    gap = [abs(np.mean(p[y == 0] > t) - np.mean(p[y == 1] <= t)) for t in np.linspace(0, 1, 2001)]
    t = sidecar["value"]
    assert abs(np.mean(p[y == 0] > t) - np.mean(p[y == 1] <= t)) <= min(gap) + 1e-12
    assert sidecar["value"] == pytest.approx(float(history[best_epoch - 1]["val_threshold"]))

    # The artifact list ends stdout (after Keras' epoch lines).
    done = captured.out.splitlines()
    done = done[done.index(f"train: done: 3 epochs in {run_dir}"):]
    assert done == [
        f"train: done: 3 epochs in {run_dir}",
        f"  best.keras    {run_dir}/best.keras (epoch {best_epoch}, val_auc "
        f"{aucs[best_epoch - 1]:.4f})",
        f"  last.keras    {run_dir}/last.keras (epoch 3)",
        f"  history.csv   {run_dir}/history.csv",
        f"  config.json   {run_dir}/config.json",
        f"  TensorBoard   tensorboard --logdir {run_dir}/logs",
    ]

    # Other options in the same RUN_DIR: refused. The same command again: nothing to do.
    assert main([*argv, "--learning-rate", "0.01"]) == cli.EXIT_USAGE
    assert "learning_rate: 0.001 -> 0.01" in _one_error_line(capsys.readouterr().err)
    assert main(argv) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"train: {run_dir} already completed 3 of 3 epochs; nothing to do", *done]


_MIRRORED = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from mclcr_keras.train import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_mirrored_two_replicas(tiny_records, tmp_path):
    """MirroredStrategy over two logical CPUs (each replica gets 2 real + 2 fake faces), with
    mixed precision (bfloat16 on CPU).

    The val split has 9 frames: in batches of 8, the last one (1 frame) would leave a replica
    with nothing, which TensorFlow's BatchNormalization cannot evaluate.
    """
    import tensorflow as tf

    from mclcr_keras.data import schema

    odd = tmp_path / "records"
    (odd / "val").mkdir(parents=True)
    (odd / "train").symlink_to(tiny_records / "train")
    rng = np.random.default_rng(5)
    for label, count in ((0, 5), (1, 4)):
        name = schema.shard_name(schema.LABEL_NAMES[label], 0, 1)
        with tf.io.TFRecordWriter(str(odd / "val" / name)) as writer:
            for index in range(count):
                pixels = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
                writer.write(schema.encode_example(schema.encode_image(pixels), label,
                                                   f"odd-{label}-{index}", "odd", "test", index))
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-c", _MIRRORED, "--records", str(odd), "--out", str(run_dir),
         "--image-size", "64", "--weights", "none", "--batch-size", "8", "--epochs", "1",
         "--steps-per-epoch", "2", "--variant", "baseline", "--distribute", "mirrored",
         "--mixed-precision"],
        capture_output=True, text=True, timeout=1200,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES=""),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    strategy = [line for line in result.stderr.splitlines()
                if line.startswith(f"INFO {LOOP_LOGGER}: strategy: ")]
    assert strategy == [f"INFO {LOOP_LOGGER}: strategy: MirroredStrategy, 2 replicas: "
                        "/device:CPU:0, /device:CPU:1; dtype policy: mixed_bfloat16"], result.stderr
    assert [row["epoch"] for row in _history(run_dir)] == ["0"]
    assert (run_dir / "best.keras").is_file() and (run_dir / "last.keras").is_file()
    resolved = json.loads((run_dir / "config.json").read_text())["resolved"]
    # The objective on one balanced batch of 8 (4 + 4); the AUC on all 9 frames, 8 + 1.
    assert (resolved["replicas"], resolved["validation_steps"], resolved["validation_auc_steps"],
            resolved["val_pass_frames"], resolved["val_balanced_frames"]) == (2, 1, 2, 9, 8)
    assert resolved["dtype_policy"] == "mixed_bfloat16"
    done = result.stdout.splitlines()
    done = done[done.index(f"train: done: 1 epochs in {run_dir}"):]  # after Keras' epoch line
    assert done[1].startswith(f"  best.keras    {run_dir}/best.keras (epoch 1, val_auc "), done
    assert done[2] == f"  last.keras    {run_dir}/last.keras (epoch 1)", done
