"""`train --distribute multiworker` as a cluster runs it: two worker processes on loopback ports.

1. Two workers (TF_CONFIG, one CPU each) train one epoch of the real training loop
   (`mclcr_keras.training.loop.train`, options parsed by `mclcr_keras.train`) on the tiny records
   of conftest; a third process trains the same options with MirroredStrategy over two logical
   CPUs. Every replica gets the same slice of the same seeded global batches in both set-ups
   (`distribute_global_batches`). Both workers must end with the same weights, equal to the
   single process's within float32 summation error, and the two run folders must log the same
   figures.
2. The same run continued to 2 epochs with the command line (`python -m mclcr_keras.train`):
   worker 1 is killed (SIGKILL) as epoch 2 starts, the chief is stopped as a scheduler would,
   both are started again, and the run resumes after the chief's last committed epoch and
   finishes. Only the chief wrote the run folder; no worker scratch is left.
3. The Slurm path of the cluster resolution: a resolver from realistic SLURM_* variables, and
   two processes that form a cluster from them and all-reduce a tensor.

This file doubles as the worker script (``python test_multiworker.py OUT [CPUS] -- ARGV``).
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

HERE = Path(__file__).resolve()
OPTIONS = ["--image-size", "64", "--weights", "none", "--batch-size", "8", "--steps-per-epoch",
           "2", "--validation-steps", "1", "--precise-bn-batches", "2", "--variant", "baseline",
           "--seed", "1"]
STEPS = 2
BASE_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}
RUN_FILES = {".lock", "config.json", "history.csv", "logs", "checkpoints", "last.keras",
             "best.keras", "best.threshold.json", "state.json"}
TIMEOUT = 600


def _worker(out: str, logical_cpus: int, argv: list[str]) -> None:
    """One training process: the real loop, then its weights (and, if asked, the start's)."""
    import tensorflow as tf

    if logical_cpus > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * logical_cpus)
    import keras
    import numpy as np

    from mclcr_keras import train
    from mclcr_keras.models import MCLCRConfig, build_mclcr
    from mclcr_keras.training import loop

    config = train.config_from_args(train.build_parser().parse_args(argv))
    if logical_cpus > 1:  # the reference also records the start: the loop seeds it the same way
        keras.utils.set_random_seed(config.seed)
        start = build_mclcr(MCLCRConfig(**config.model_values()), compile=False)
        np.savez(f"{out}.start.npz", *start.get_weights())
        del start
    outcome = loop.train(config, train.command_line(argv))
    np.savez(f"{out}.npz", *outcome.model.get_weights())
    trainable = [i for i, w in enumerate(outcome.model.weights) if w.trainable]
    Path(f"{out}.json").write_text(json.dumps({"chief": outcome.chief, "pid": os.getpid(),
                                               "trainable": trainable}))


# ------------------------------------------------------------------------------ helpers


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _tf_config(ports: list[int], index: int) -> str:
    return json.dumps({"cluster": {"worker": [f"localhost:{p}" for p in ports]},
                       "task": {"type": "worker", "index": index}})


def _env(tmp: Path, **extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "TF_CONFIG"))}
    tmp.mkdir(parents=True, exist_ok=True)
    return {**env, **BASE_ENV, "TMPDIR": str(tmp), **extra}


def _start(argv: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    with open(log, "w") as handle:
        return subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, env=env)


def _finish(processes: list[subprocess.Popen], logs: list[Path]) -> list[int]:
    try:
        return [p.wait(timeout=TIMEOUT) for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait()
        for log in logs:
            print(f"--- {log.name}\n{log.read_text()[-3000:]}")


def _history(run: Path) -> list[dict[str, str]]:
    with open(run / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def _weights(path: Path) -> list:
    import numpy as np

    with np.load(path) as data:
        return [data[f"arr_{i}"] for i in range(len(data.files))]


def _event_pids(run: Path) -> set[int]:
    """PIDs of the writers of the TensorBoard event files (events.out.tfevents.T.HOST.PID.N.v2)."""
    return {int(p.name.split(".")[-3]) for p in (run / "logs").rglob("events.out.tfevents.*")}


def _optimizer_iterations(path: Path) -> int:
    import h5py

    with zipfile.ZipFile(path) as archive:
        data = archive.read("model.weights.h5")
    with h5py.File(io.BytesIO(data), "r") as weights:
        return int(weights["optimizer/vars/0"][()])


def _scratch(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.glob("mclcr-worker-*")) if tmp.is_dir() else []


# ----------------------------------------------------------------- two workers and one process


@pytest.fixture(scope="module")
def first_epoch(tiny_records, tmp_path_factory):
    """One epoch on two workers, and the same epoch on one process with two logical CPUs."""
    root = tmp_path_factory.mktemp("multiworker")
    run, reference = root / "run", root / "reference"
    ports = _free_ports(2)
    argv = ["--records", str(tiny_records), *OPTIONS, "--epochs", "1"]
    logs = [root / "worker0.log", root / "worker1.log", root / "mirrored.log"]
    # One after the other: three TensorFlow processes on two cores take longer than in turn.
    started = time.monotonic()
    workers = [_start([sys.executable, str(HERE), str(root / f"worker{i}"), "1", "--", *argv,
                       "--out", str(run), "--distribute", "multiworker"], logs[i],
                      _env(root / f"tmp{i}", TF_CONFIG=_tf_config(ports, i)))
               for i in (0, 1)]
    assert _finish(workers, logs[:2]) == [0, 0]
    middle = time.monotonic()
    mirrored = _start([sys.executable, str(HERE), str(root / "mirrored"), "2", "--", *argv,
                       "--out", str(reference), "--distribute", "mirrored"], logs[2],
                      _env(root / "tmp2"))
    assert _finish([mirrored], logs[2:]) == [0]
    print(f"two workers: {middle - started:.0f} s; the mirrored reference: "
          f"{time.monotonic() - middle:.0f} s")
    return {"root": root, "run": run, "reference": reference, "argv": argv,
            "chief_pids": {json.loads((root / "worker0.json").read_text())["pid"]}}


@pytest.mark.slow
def test_two_workers_end_equal_to_one_process_with_two_replicas(first_epoch):
    import numpy as np

    root, run, reference = first_epoch["root"], first_epoch["run"], first_epoch["reference"]
    roles = [json.loads((root / f"worker{i}.json").read_text())["chief"] for i in (0, 1)]
    assert roles == [True, False]
    chief, other = _weights(root / "worker0.npz"), _weights(root / "worker1.npz")
    mirrored, start = _weights(root / "mirrored.npz"), _weights(root / "mirrored.start.npz")
    assert len(chief) == len(other) == len(mirrored) == len(start) > 100

    # The two workers hold the same model: every update was all-reduced.
    between_workers = max(float(np.max(np.abs(a - b))) for a, b in zip(chief, other))
    assert between_workers <= 1e-6, between_workers

    # ... which is the single process's, up to float32 summation order. Trainable weights:
    # two AdamW steps from the start; the others are BatchNorm statistics (precise BN).
    trainable = json.loads((root / "mirrored.json").read_text())["trainable"]
    assert trainable == json.loads((root / "worker0.json").read_text())["trainable"]
    assert 0.4 * len(start) < len(trainable) < len(start)

    def norm(pairs) -> float:
        return float(np.sqrt(sum(np.sum((a - b) ** 2) for a, b in pairs)))

    update = norm((mirrored[i], start[i]) for i in trainable)
    diff = norm((chief[i], mirrored[i]) for i in trainable)
    size = norm((start[i], 0) for i in trainable)
    max_abs = max(float(np.max(np.abs(c - m))) for c, m in zip(chief, mirrored))
    statistics = max(float(np.max(np.abs(c - m) / (np.abs(m) + 1e-3)))
                     for i, (c, m) in enumerate(zip(chief, mirrored)) if i not in trainable)
    print(f"max |worker0 - worker1| = {between_workers:.3g}; max |worker0 - mirrored| = "
          f"{max_abs:.3g} (trainable: |diff| / |update| = {diff / update:.3g}; BatchNorm "
          f"statistics: max relative diff {statistics:.3g})")
    # The start is the loop's: 2 steps of AdamW (lr 1e-3) move the weights a little, a wrong
    # start would make the "update" as large as the weights.
    assert 0 < update < 0.05 * size, (update, size)
    moved = sum(float(np.max(np.abs(mirrored[i] - start[i]))) > 0 for i in trainable)
    assert moved > 0.9 * len(trainable)
    # Data sliced differently (a worker reading the other's rows, or every worker the first
    # rows) or a gradient off by the replica count would give diff ~ update.
    assert diff < 1e-3 * update, (diff, update)
    assert statistics < 1e-4, statistics

    # Both run folders logged the same epoch: training figures and validation.
    multi_rows, mirrored_rows = _history(run), _history(reference)
    assert len(multi_rows) == len(mirrored_rows) == 1
    for key in ("loss", "bce", "supcon", "accuracy", "val_loss", "val_auc", "val_threshold"):
        expected = pytest.approx(float(mirrored_rows[0][key]), rel=1e-4, abs=1e-5)
        assert float(multi_rows[0][key]) == expected, key

    # Only the chief wrote the run folder; the other worker's scratch folder is gone.
    assert {p.name for p in run.iterdir()} == RUN_FILES
    assert _event_pids(run) == first_epoch["chief_pids"]
    assert int((run / ".lock").read_text()) in first_epoch["chief_pids"]
    assert _scratch(root / "tmp1") == []
    resolved = json.loads((run / "config.json").read_text())["resolved"]
    assert resolved["replicas"] == 2 and resolved["jit_compile"] is False
    assert resolved["strategy"].startswith("MultiWorkerMirroredStrategy, 2 replicas on 2 workers "
                                           "(cluster from TF_CONFIG); this is worker 0")


@pytest.mark.slow
def test_a_killed_worker_resumes_from_the_chiefs_last_checkpoint(first_epoch):
    """Worker 1 dies as epoch 2 of 2 starts; both restarted, the run continues after epoch 1."""
    root, run = first_epoch["root"], first_epoch["run"]
    argv = [*first_epoch["argv"][:-1], "2", "--out", str(run), "--distribute", "multiworker"]
    assert argv[-6:-4] == ["--epochs", "2"]
    ports = _free_ports(2)
    logs = [root / "killed0.log", root / "killed1.log"]
    command = [sys.executable, "-m", "mclcr_keras.train", *argv]
    workers = [_start(command, logs[i], _env(root / f"tmp{i}", TF_CONFIG=_tf_config(ports, i)))
               for i in (0, 1)]
    started = time.monotonic()
    try:
        while "Epoch 2/2" not in logs[1].read_text():
            assert all(w.poll() is None for w in workers), [log.read_text() for log in logs]
            assert time.monotonic() - started < TIMEOUT, "epoch 2 never started"
            time.sleep(0.05)
        os.kill(workers[1].pid, signal.SIGKILL)
        workers[1].wait()
        killed = time.monotonic()
        # The chief cannot finish a step without its peer: TensorFlow's coordination service
        # misses the peer's heartbeats, aborts the collectives, and the chief exits 1 ("rerun
        # the same command to resume"), which a scheduler restarts.
        chief_status = workers[0].wait(timeout=180)
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()
    print(f"worker 1 killed at epoch 2, {killed - started:.0f} s after the start; the chief "
          f"exited with {chief_status} {time.monotonic() - killed:.1f} s later")
    assert chief_status == 1, logs[0].read_text()[-3000:]
    chief_error = [line for line in logs[0].read_text().splitlines()
                   if line.startswith("train: error:")]
    assert len(chief_error) == 1 and "UnavailableError" in chief_error[0], chief_error
    assert chief_error[0].endswith("(rerun the same command to resume after the last completed "
                                   "epoch)")
    state = json.loads((run / "state.json").read_text())
    assert state["epochs_done"] == 1  # epoch 2 was never committed
    assert _scratch(root / "tmp1")  # the killed worker left its scratch folder behind
    first_epoch["chief_pids"].add(workers[0].pid)

    logs = [root / "resumed0.log", root / "resumed1.log"]
    ports = _free_ports(2)
    workers = [_start(command, logs[i], _env(root / f"tmp{i}", TF_CONFIG=_tf_config(ports, i)))
               for i in (0, 1)]
    first_epoch["chief_pids"].add(workers[0].pid)
    assert _finish(workers, logs) == [0, 0]
    chief_log, other_log = (log.read_text() for log in logs)
    assert f"resuming {run} after epoch 1 of 2" in chief_log
    assert f"resuming {run} after epoch 1 of 2" in other_log  # every worker resumes the same
    assert f"train: done: 2 epochs in {run}" in chief_log
    assert f"train: done on this worker; the chief wrote {run}" in other_log

    state = json.loads((run / "state.json").read_text())
    assert state["epochs_done"] == 2
    assert [int(row["epoch"]) for row in _history(run)] == [0, 1]
    assert _optimizer_iterations(run / "last.keras") == 2 * STEPS
    assert {p.name for p in run.iterdir()} == RUN_FILES
    assert sorted(os.listdir(run / "checkpoints")) == sorted(
        {os.path.basename(state["checkpoint"]), os.path.basename(state["best_checkpoint"])})
    assert _event_pids(run) <= first_epoch["chief_pids"]
    assert _scratch(root / "tmp0") == _scratch(root / "tmp1") == []


# ------------------------------------------------------------------------------------ Slurm

SLURM_STEP = {
    "SLURM_JOB_ID": "4242", "SLURM_JOB_NODELIST": "gpu[07-08]", "SLURM_NNODES": "2",
    "SLURM_NTASKS": "2", "SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "2",
    "SLURM_STEP_NUM_NODES": "2", "SLURM_STEP_NODELIST": "gpu[07-08]",
    "SLURM_STEP_TASKS_PER_NODE": "1(x2)", "SLURM_TASKS_PER_NODE": "1(x2)",
    "SLURM_NODEID": "1", "SLURM_PROCID": "1", "SLURM_LOCALID": "0", "SLURMD_NODENAME": "gpu08",
}


def _slurm(monkeypatch, values: dict[str, str]) -> None:
    for name in [n for n in os.environ if n.startswith("SLURM_")] + ["TF_CONFIG"]:
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def test_the_cluster_comes_from_tf_config_else_from_the_slurm_step(monkeypatch):
    from mclcr_keras.errors import UsageError
    from mclcr_keras.training import distribute

    _slurm(monkeypatch, {})
    monkeypatch.delenv(distribute.SLURM_PORT_VARIABLE, raising=False)
    with pytest.raises(UsageError) as info:
        distribute.cluster_source()
    assert str(info.value) == (
        "--distribute multiworker needs the TF_CONFIG environment variable (the cluster and this "
        "worker's task) or a Slurm job step started with srun (SLURM_PROCID, "
        "SLURM_STEP_NODELIST, ...); see docs/training.md")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(UsageError, match=r"^TF_CONFIG is not JSON \(Expecting"):
        distribute.cluster_source()
    monkeypatch.setenv("TF_CONFIG", '{"task": {"type": "worker", "index": 0}}')
    with pytest.raises(UsageError, match=r'^TF_CONFIG needs "cluster" and "task"'):
        distribute.cluster_source()

    # An sbatch script without srun: the job is there, its step variables are not.
    _slurm(monkeypatch, {"SLURM_JOB_ID": "4242", "SLURM_PROCID": "0",
                         "SLURM_JOB_NODELIST": "gpu[07-08]"})
    with pytest.raises(UsageError) as info:
        distribute.cluster_source()
    assert str(info.value) == (
        "--distribute multiworker in Slurm job 4242 needs a job step: start it with srun (no "
        "SLURM_STEP_NUM_TASKS, SLURM_STEP_NODELIST, SLURM_STEP_TASKS_PER_NODE here); see "
        "docs/training.md")

    _slurm(monkeypatch, SLURM_STEP)
    assert distribute.cluster_source() == "slurm"
    assert distribute.slurm_port(1) == 15000 + 4242
    monkeypatch.setenv(distribute.SLURM_PORT_VARIABLE, "23456")
    assert distribute.slurm_port(1) == 23456
    monkeypatch.setenv(distribute.SLURM_PORT_VARIABLE, "65536")
    with pytest.raises(UsageError, match=r"^MCLCR_SLURM_PORT must be a port number in "
                                         r"1024-65535, got '65536'$"):
        distribute.cluster_source()
    monkeypatch.setenv("TF_CONFIG", _tf_config([2222, 2223], 1))  # TF_CONFIG wins
    assert distribute.cluster_source() == "TF_CONFIG"


def test_the_slurm_resolver_reads_the_job_step(monkeypatch):
    from mclcr_keras.training import distribute

    _slurm(monkeypatch, SLURM_STEP)
    monkeypatch.delenv(distribute.SLURM_PORT_VARIABLE, raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    resolver = distribute.cluster_resolver()
    assert resolver.cluster_spec().as_dict() == {"worker": ["gpu07:19242", "gpu08:19242"]}
    assert (resolver.task_type, resolver.task_id) == ("worker", 1)
    assert resolver.num_accelerators() == {}  # a CPU node: no GPU, no nvidia-smi needed
    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""  # GPUs stay as Slurm assigned them

    # Two tasks on each of three nodes: ranks fill a node, then the next; ports count up.
    _slurm(monkeypatch, {**SLURM_STEP, "SLURM_STEP_NODELIST": "cn[1-2],gpu3",
                         "SLURM_STEP_NUM_TASKS": "6", "SLURM_STEP_TASKS_PER_NODE": "2(x3)",
                         "SLURM_PROCID": "3"})
    monkeypatch.setenv(distribute.SLURM_PORT_VARIABLE, "30000")
    resolver = distribute.cluster_resolver()
    assert resolver.cluster_spec().as_dict() == {"worker": [
        "cn1:30000", "cn1:30001", "cn2:30000", "cn2:30001", "gpu3:30000", "gpu3:30001"]}
    assert (resolver.task_type, resolver.task_id) == ("worker", 3)


_SLURM_ALL_REDUCE = """
import json, os, sys
import tensorflow as tf
from mclcr_keras.training.distribute import is_chief, make_strategy
strategy, description = make_strategy("multiworker")
rank = int(os.environ["SLURM_PROCID"])
total = strategy.reduce("SUM", strategy.run(lambda: tf.constant(rank + 1.0)), axis=None)
print(json.dumps({"description": description, "chief": is_chief(strategy),
                  "sum": float(total)}))
"""


@pytest.mark.slow
def test_two_slurm_tasks_form_a_cluster(tmp_path):
    """Two tasks of one job step on one node (localhost): ranks, ports, an all-reduce."""
    from mclcr_keras.training import distribute

    port = _free_ports(1)[0]
    step = {**SLURM_STEP, "SLURM_STEP_NODELIST": "localhost", "SLURM_STEP_NUM_NODES": "1",
            "SLURM_STEP_TASKS_PER_NODE": "2", distribute.SLURM_PORT_VARIABLE: str(port)}
    processes = [subprocess.Popen([sys.executable, "-c", _SLURM_ALL_REDUCE], text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env=_env(tmp_path, **{**step, "SLURM_PROCID": str(rank)}))
                 for rank in (0, 1)]
    results = []
    for p in processes:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert [r["sum"] for r in results] == [3.0, 3.0]
    assert [r["chief"] for r in results] == [True, False]
    assert results[1]["description"] == ("MultiWorkerMirroredStrategy, 2 replicas on 2 workers "
                                         "(cluster from slurm); this is worker 1")


if __name__ == "__main__":
    split = sys.argv.index("--")
    _worker(sys.argv[1], int(sys.argv[2]), sys.argv[split + 1:])
