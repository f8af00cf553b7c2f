"""MirroredStrategy on two logical CPUs gives the single-device step (loss, logs, new weights),
SupCon contrasts every replica's anchors with the whole global batch (NumPy reference), and
`distribute_global_batches` gives replica r rows [r B/R, (r+1) B/R) of every global batch (the
two-worker run of tests/test_multiworker.py relies on the same slicing).

Logical devices must be configured before TensorFlow initialises its devices, so the comparison
runs in a fresh interpreter: this file doubles as the worker script (`python test_distribute.py
OUT.json`), and the test reads the figures it writes.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BATCH = 8
LOG_KEYS = ("loss", "bce", "supcon", "accuracy", "auc")


def _worker(out_path: str) -> None:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )
    import keras
    import numpy as np
    from references import supcon  # tests/ is sys.path[0]: this file runs as a script

    from mclcr_keras.models import MCLCRConfig, build_mclcr

    keras.utils.set_random_seed(7)
    config = MCLCRConfig.smoke(dropout=0.0)
    rng = np.random.default_rng(7)
    images = rng.uniform(0, 255, (BATCH, 64, 64, 3)).astype("float32")
    # Each replica's half (4 + 4) holds both classes, and the halves differ, so a SupCon that
    # contrasted only within a replica would give another value.
    labels = np.array([0, 1, 1, 0, 1, 0, 0, 1], "int32")

    def one_step(model):
        before = model.get_weights()
        history = model.fit(images, labels, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
        after = model.get_weights()
        return {k: float(history.history[k][0]) for k in LOG_KEYS}, before, after

    single = build_mclcr(config, compile=False)
    # The single-device reference step runs eagerly (no trace of a second training graph); the
    # mirrored step below runs as a tf.function, the graph that distributed training uses.
    single.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05), run_eagerly=True)
    initial = single.get_weights()
    # What SupCon would be if each replica only contrasted its own half (training-mode forward;
    # it moves the BatchNorm statistics, hence the reset).
    z = keras.ops.convert_to_numpy(single(images, training=True)["embedding"])
    per_half = [supcon(z[h : h + 4], labels[h : h + 4], config.temperature) for h in (0, 4)]
    whole = supcon(z, labels, config.temperature)
    single.set_weights(initial)

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        mirrored = build_mclcr(config, compile=False)
        mirrored.set_weights(initial)
        mirrored.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05))

    from mclcr_keras.training.distribute import distribute_global_batches

    def global_batches():
        return tf.data.Dataset.range(24).batch(BATCH).map(lambda x: (x, -x))

    slices = [[t.numpy().tolist() for t in strategy.experimental_local_results(x)]
              for x, _ in distribute_global_batches(strategy, global_batches, BATCH)]

    logs_single, before, after_single = one_step(single)
    logs_mirrored, before_m, after_mirrored = one_step(mirrored)
    names = [w.path for w in single.weights]
    trainable = {w.path for w in single.trainable_weights}
    rows = []
    for name, w0, w0m, ws, wm in zip(names, before, before_m, after_single, after_mirrored):
        rows.append(
            {
                "name": name,
                "trainable": name in trainable,
                "same_start": float(np.max(np.abs(w0 - w0m))),
                "update_norm": float(np.linalg.norm(ws - w0)),
                "diff_norm": float(np.linalg.norm(ws - wm)),
            }
        )
    Path(out_path).write_text(
        json.dumps(
            {
                "replicas": strategy.num_replicas_in_sync,
                "supcon_whole_batch": whole,
                "supcon_mean_of_halves": sum(per_half) / 2,
                "single": logs_single,
                "mirrored": logs_mirrored,
                "weights": rows,
                "slices": slices,
            }
        )
    )


@pytest.mark.slow
def test_mirrored_two_replicas_match_single_device(tmp_path):
    out = tmp_path / "figures.json"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(
        [sys.executable, __file__, str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["replicas"] == 2
    assert figures["slices"] == [[[0, 1, 2, 3], [4, 5, 6, 7]], [[8, 9, 10, 11], [12, 13, 14, 15]],
                                 [[16, 17, 18, 19], [20, 21, 22, 23]]]

    for key in LOG_KEYS:
        expected = pytest.approx(figures["single"][key], rel=1e-4, abs=1e-5)
        assert figures["mirrored"][key] == expected, key
    # SupCon of the whole batch differs from the mean of per-half SupCons for this batch, so the
    # match above means each replica contrasted its anchors against the gathered global batch.
    assert figures["single"]["supcon"] == pytest.approx(figures["supcon_whole_batch"], rel=1e-4)
    assert abs(figures["supcon_mean_of_halves"] - figures["supcon_whole_batch"]) > 0.05

    rows = figures["weights"]
    assert all(row["same_start"] == 0.0 for row in rows)
    trainable = [row for row in rows if row["trainable"]]
    moved = [row for row in trainable if row["update_norm"] > 0]
    assert len(moved) > 0.9 * len(trainable)
    total_update = sum(row["update_norm"] ** 2 for row in trainable) ** 0.5
    total_diff = sum(row["diff_norm"] ** 2 for row in trainable) ** 0.5
    # A gradient off by the replica count would make total_diff ~ total_update.
    assert total_diff < 1e-3 * total_update, (total_diff, total_update)
    for row in rows:
        # Per variable, moving BN statistics included (synchronised across replicas): small
        # against its own update; float32 summation order differs, and synchronised BatchNorm
        # computes the variance as E[x^2] - E[x]^2.
        assert row["diff_norm"] <= 1e-2 * row["update_norm"] + 1e-6, row


if __name__ == "__main__":
    _worker(sys.argv[1])
