"""`python -m mclcr_keras.train` on real records built by `build_records folder --crop none`.

The records are 64 px crops of generated images (3 + 2 + 1 videos of 4 frames per class for
train/val/test); models are built at 64 px with random Xception weights. Tracing the training
step of Xception dominates the runtime, so each test builds as few models as possible: the full
MC-LCR model runs in the NaN test; the resume test (which checks every artifact of a run) and
the mirrored test use the baseline variant, whose step traces about a third faster.
"""

from __future__ import annotations

import csv
import io
import json
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

from mclcr_keras import build_records
from mclcr_keras.train import main

REPO = Path(__file__).resolve().parents[1]
FRAMES = 4
VIDEOS = {"train": 3, "val": 2, "test": 1}
TINY = ["--image-size", "64", "--weights", "none", "--batch-size", "4"]


def _write_faces(root: Path) -> None:
    """Real: smooth shaded images; fake: the same with a noisy square blended in the centre."""
    import cv2

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:64] / 64.0
    for split, videos in VIDEOS.items():
        for label in ("real", "fake"):
            for video in range(videos):
                folder = root / split / label / f"{split}-{label}-{video}"
                folder.mkdir(parents=True)
                tint = rng.uniform(0, 40, 3)
                for frame in range(FRAMES):
                    image = np.stack([yy, xx, (yy + xx) / 2], -1) * 200 + tint
                    if label == "fake":
                        image[16:48, 16:48] += rng.normal(0, 30, (32, 32, 3))
                    image += rng.normal(0, 3, image.shape)
                    rgb = np.clip(image, 0, 255).astype(np.uint8)
                    cv2.imwrite(str(folder / f"{frame:03d}.png"), rgb[..., ::-1])


@pytest.fixture(scope="session")
def records(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("train_records")
    _write_faces(root / "faces")
    out = root / "records"
    status = build_records.main(["folder", "--root", str(root / "faces"), "--out", str(out),
                                 "--crop", "none", "--size", "64", "--workers", "1", "--quiet"])
    assert status == 0
    return out


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


# ------------------------------------------------------------------------------ bad input


def test_bad_arguments_give_one_line(records, tmp_path, capsys):
    no_val = tmp_path / "no_val"
    no_val.mkdir()
    (no_val / "train").symlink_to(records / "train")
    no_train = tmp_path / "no_train"
    no_train.mkdir()
    (no_train / "val").symlink_to(records / "val")
    cluttered = tmp_path / "cluttered"
    cluttered.mkdir()
    (cluttered / "notes.txt").write_text("not a run")
    out = str(tmp_path / "run")
    cases = [
        (["--records", str(tmp_path / "missing"), "--out", out],
         "is not a directory"),
        (["--records", str(no_train), "--out", out], "no training split"),
        (["--records", str(no_val), "--out", out], "no validation split"),
        (["--records", str(records), "--out", out, "--batch-size", "6"],
         "--batch-size must be a multiple of 4 (half real, half fake, each half of the batch "
         "balanced); got 6"),
        (["--records", str(records), "--out", out, "--image-size", "72"],
         "--image-size must be a multiple of 16"),
        (["--records", str(records), "--out", out, "--weights", str(tmp_path / "x.h5")],
         "--weights file not found"),
        (["--records", str(records), "--out", str(cluttered)],
         "is not empty and holds no config.json"),
        (["--records", str(records), "--out", out, "--distribute", "multiworker"],
         "needs the TF_CONFIG environment variable"),
        (["--records", str(records), "--out", out, "--epochs", "0"],
         "expected a positive integer, got '0'"),
    ]
    for argv, expected in cases:
        env_config = os.environ.pop("TF_CONFIG", None)
        try:
            status = main(argv)
        finally:
            if env_config is not None:
                os.environ["TF_CONFIG"] = env_config
        captured = capsys.readouterr()
        assert status == 2, (argv, captured.err)
        assert expected in _one_error_line(captured.err), (argv, captured.err)
    assert not os.path.exists(out)  # nothing was created by a failed start


def test_imagenet_weights_offline_is_one_line(records, tmp_path):
    """No network (a proxy nobody listens on) and no cached weights: one line, exit 2."""
    env = dict(os.environ, KERAS_HOME=str(tmp_path / "keras_home"),
               https_proxy="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9",
               TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("no_proxy", None)
    env.pop("NO_PROXY", None)
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "mclcr_keras.train", "--records", str(records), "--out",
         str(run_dir), "--image-size", "64", "--weights", "imagenet"],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 2, result.stderr
    line = _one_error_line(result.stderr)
    assert "Could not download the ImageNet weights of Xception" in line
    assert "--weights none" in line
    assert not (run_dir / "config.json").exists()


# ------------------------------------------------------------------------------ training runs


@pytest.mark.slow
def test_nan_loss_stops_with_message(records, tmp_path, capsys):
    """An absurd learning rate overflows AdamW's first update: the next loss is NaN/inf."""
    run_dir = tmp_path / "run"
    argv = ["--records", str(records), "--out", str(run_dir), *TINY,
            "--epochs", "2", "--steps-per-epoch", "4", "--learning-rate", "1e38"]
    status = main(argv)
    captured = capsys.readouterr()
    assert status == 3, captured.err
    line = _one_error_line(captured.err)
    assert "at epoch 1, batch" in line and ("nan" in line or "inf" in line), line
    assert "training stopped" in line and "(0 of 2)" in line
    # No epoch completed: nothing was committed or logged as an epoch.
    assert not (run_dir / "state.json").exists()
    assert not (run_dir / "last.keras").exists()
    assert not (run_dir / "best.keras").exists()
    assert _history(run_dir) == []
    assert json.loads((run_dir / "config.json").read_text())["training"]["learning_rate"] == 1e38


@pytest.mark.slow
def test_killed_run_resumes_after_last_completed_epoch(records, tmp_path, capsys):
    """kill -9 during epoch 2, same command again: epochs 2 and 3 only, then every artifact."""
    import keras
    import tensorflow as tf

    from mclcr_keras.data import make_dataset
    from mclcr_keras.models import MCLCRConfig

    run_dir = tmp_path / "run"
    steps, epochs = 6, 3
    argv = ["--records", str(records), "--out", str(run_dir), *TINY, "--epochs", str(epochs),
            "--steps-per-epoch", str(steps), "--seed", "3", "--variant", "baseline"]
    log = open(tmp_path / "first_run.log", "w")
    first = subprocess.Popen([sys.executable, "-m", "mclcr_keras.train", *argv],
                             stdout=log, stderr=subprocess.STDOUT,
                             env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    state_path = run_dir / "state.json"
    deadline = time.monotonic() + 900
    try:
        while not state_path.exists():
            assert first.poll() is None, (tmp_path / "first_run.log").read_text()
            assert time.monotonic() < deadline, "no epoch completed in time"
            time.sleep(0.2)
        os.kill(first.pid, signal.SIGKILL)
    finally:
        first.kill()
        first.wait()
        log.close()
    killed_at = json.loads(state_path.read_text())["epochs_done"]
    assert killed_at == 1

    status = main(argv)
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "resuming" in captured.out and "after epoch 1 of 3" in captured.out

    # history.csv: one row per epoch, none repeated, none lost.
    history = _history(run_dir)
    assert [int(row["epoch"]) for row in history] == [0, 1, 2]
    assert all(math.isfinite(float(row["loss"])) for row in history)
    # The optimizer state was restored: AdamW counted every step of all three epochs.
    assert _optimizer_iterations(run_dir / "last.keras") == epochs * steps
    state = json.loads(state_path.read_text())
    assert state["epochs_done"] == epochs
    assert len(os.listdir(run_dir / "checkpoints")) <= 2
    assert (run_dir / "logs").is_dir() and any((run_dir / "logs").rglob("events.out.*"))

    # config.json: the model config and the command-line options.
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model"] == MCLCRConfig(image_size=64, weights=None,
                                          variant="baseline").to_dict()
    training = config["training"]
    assert training["records"] == str(records.resolve())
    assert (training["batch_size"], training["epochs"], training["steps_per_epoch"],
            training["seed"], training["variant"], training["weights"]) == (
        4, 3, 6, 3, "baseline", "none")
    assert (training["learning_rate"], training["weight_decay"]) == (1e-3, 1e-4)
    assert config["resolved"]["validation_steps"] == math.ceil(2 * VIDEOS["val"] * FRAMES / 4)
    assert config["schedule"]["reduce_lr_on_plateau"] == {
        "monitor": "val_loss", "factor": 0.5, "patience": 5}

    # best.keras is the epoch with the highest val_auc, and re-evaluating it on the val split
    # gives that epoch's logged numbers.
    aucs = [float(row["val_auc"]) for row in history]
    best_epoch = int(np.argmax(aucs)) + 1
    assert state["best_epoch"] == best_epoch
    assert state["best_val_auc"] == pytest.approx(aucs[best_epoch - 1])
    best = keras.models.load_model(run_dir / "best.keras")
    best.compile()
    val_batches = math.ceil(2 * VIDEOS["val"] * FRAMES / 4)
    val = make_dataset(records, "val", batch_size=4, training=False, image_size=64).apply(
        tf.data.experimental.assert_cardinality(val_batches))
    scores = best.evaluate(val, return_dict=True, verbose=0)
    assert scores["auc"] == pytest.approx(aucs[best_epoch - 1], abs=1e-5)
    assert scores["loss"] == pytest.approx(float(history[best_epoch - 1]["val_loss"]), rel=1e-4)
    last = keras.models.load_model(run_dir / "last.keras")
    images = next(iter(val))[0]
    probabilities = np.asarray(last.predict(images, verbose=0)["probability"])
    assert probabilities.shape == (4, 1) and np.all(np.isfinite(probabilities))

    # Other options in the same RUN_DIR: refused. The same command again: nothing to do.
    assert main([*argv, "--learning-rate", "0.01"]) == 2
    assert "learning_rate: 0.001 -> 0.01" in _one_error_line(capsys.readouterr().err)
    assert main(argv) == 0
    assert "already completed 3 of 3 epochs" in capsys.readouterr().out


_SPLITS = """
import json
import sys

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 4)
from mclcr_keras.train import replica_safe_batches

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


_MIRRORED = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from mclcr_keras.train import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_mirrored_two_replicas(records, tmp_path):
    """MirroredStrategy over two logical CPUs (each replica gets 2 real + 2 fake faces), with
    mixed precision (bfloat16 on CPU).

    The val split has 9 frames: in batches of 8, the last one (1 frame) would leave a replica
    with nothing, which TensorFlow's BatchNormalization cannot evaluate.
    """
    import tensorflow as tf

    from mclcr_keras.data import schema

    odd = tmp_path / "records"
    (odd / "val").mkdir(parents=True)
    (odd / "train").symlink_to(records / "train")
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
    assert "MirroredStrategy, 2 replicas" in result.stderr
    assert "dtype policy: mixed_bfloat16" in result.stderr
    assert [row["epoch"] for row in _history(run_dir)] == ["0"]
    assert (run_dir / "best.keras").is_file() and (run_dir / "last.keras").is_file()
    resolved = json.loads((run_dir / "config.json").read_text())["resolved"]
    assert (resolved["replicas"], resolved["validation_steps"], resolved["val_pass_frames"]) == (
        2, 2, 9)
    assert "best.keras" in result.stdout and str(run_dir) in result.stdout
