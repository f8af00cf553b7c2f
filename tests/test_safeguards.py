"""Nothing lost, nothing silently wrong: locked run folders, outputs checked before work, balanced
validation subsets, contradictory labels and one-class splits refused or reported, inputs
identified by their content, unreadable model files named as such."""

import csv
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from mclcr_keras import build_records, cli, export, train

REPO = Path(__file__).resolve().parents[1]


def one_line(err: str, tool: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"{tool}: error: "), lines
    return lines[0]


def noise_png(path: Path, seed: int, size: int = 64) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    ok, png = cv2.imencode(".png", rgb)  # PNG bytes whatever the file's name
    assert ok
    path.write_bytes(png.tobytes())


# ------------------------------------------------------------------------ run folder lock


def test_a_second_training_in_a_held_run_folder_is_refused_naming_the_holder(tmp_path, capsys,
                                                                              tiny_records):
    from mclcr_keras.training.run_dir import RunLock

    run = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom mclcr_keras.training.run_dir import RunLock"
         f"\nlock = RunLock({str(run)!r}); lock.acquire(); print('held', flush=True)"
         "\ntime.sleep(120)"], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "held"
        status = train.main(["--records", str(tiny_records), "--out", str(run), "--weights",
                             "none", "--image-size", "64", "--batch-size", "4", "--epochs", "1"])
        line = one_line(capsys.readouterr().err, "train")
        assert status == cli.EXIT_USAGE
        assert f"is in use by another training (PID {holder.pid})" in line
        assert sorted(p.name for p in run.iterdir()) == [".lock"]  # nothing else written
    finally:
        holder.kill()  # kill -9: the kernel releases the lock
        holder.wait()
    with RunLock(str(run)):
        assert (run / ".lock").read_text().strip() != str(holder.pid)


def test_the_lock_file_does_not_make_a_new_run_folder_look_foreign(tmp_path):
    from mclcr_keras.training.run_dir import RunLock, read_run_config

    with RunLock(str(tmp_path / "run")):
        assert read_run_config(str(tmp_path / "run")) is None


# ------------------------------------------------------------------- validation subsets


def test_balanced_evaluation_pass_alternates_classes_the_same_way_every_time(tiny_records):
    from mclcr_keras.data.pipeline import make_dataset
    from mclcr_keras.data.records import count_records

    def labels():
        dataset = make_dataset(tiny_records, "val", batch_size=4, training=False,
                               balanced=True, image_size=64, with_metadata=True)
        return [(batch[1].numpy().tolist(), batch[2]["video_id"].numpy().tolist())
                for batch in dataset]

    first, again = labels(), labels()
    assert first == again
    counts = count_records(tiny_records, "val")
    flat = [label for batch, _ in first for label in batch]
    assert flat == [0.0, 1.0] * min(counts.values())
    assert all(batch[:2] == [0.0, 1.0] for batch, _ in first)


def test_validation_steps_validate_on_both_classes(tiny_records, tmp_path):
    import tensorflow as tf

    from mclcr_keras.training.datasets import make_datasets
    from mclcr_keras.training.options import TrainConfig

    options = TrainConfig(records=str(tiny_records), out=str(tmp_path), batch_size=4,
                          image_size=64, validation_steps=2).record()
    _, val, resolved = make_datasets(options, tf.distribute.get_strategy(), 0)
    batches = [labels.numpy().tolist() for _, labels in val.balanced]
    assert resolved["validation_steps"] == len(batches) == 2
    assert all(sorted(batch) == [0.0, 0.0, 1.0, 1.0] for batch in batches)
    # The subset also gives the AUC: its labels, known in advance, are those read.
    scored = [y for _, labels in val.full for y in labels.numpy().astype(int).tolist()]
    assert scored == val.full_labels.tolist() == [0, 1] * 4


def test_the_auc_pass_scores_every_val_frame_once_with_known_labels(tiny_records, tmp_path):
    import tensorflow as tf

    from mclcr_keras.data.records import count_records
    from mclcr_keras.training.datasets import make_datasets
    from mclcr_keras.training.options import TrainConfig

    options = TrainConfig(records=str(tiny_records), out=str(tmp_path), batch_size=4,
                          image_size=64).record()
    _, val, resolved = make_datasets(options, tf.distribute.get_strategy(), 0)
    counts = count_records(tiny_records, "val")
    scored = [y for _, labels in val.full for y in labels.numpy().astype(int).tolist()]
    assert len(scored) == resolved["val_pass_frames"] == counts["real"] + counts["fake"]
    assert scored == val.full_labels.tolist()
    assert sorted(scored) == [0] * counts["real"] + [1] * counts["fake"]
    balanced = [labels.numpy().tolist() for _, labels in val.balanced]
    assert len(balanced) == resolved["validation_steps"]
    assert all(sorted(batch) == [0.0, 0.0, 1.0, 1.0] for batch in balanced)


# ---------------------------------------------------------------- outputs checked first


@pytest.mark.parametrize("tool", ["build_records", "train", "evaluate", "export", "predict",
                                  "demo", "demo_data", "viz"])
def test_an_output_under_a_file_is_refused_before_any_work(tool, tmp_path, capsys,
                                                           tiny_records, tiny_model_path):
    from test_cli import entry_point

    blocker = tmp_path / "file.txt"
    blocker.write_text("in the way")
    image = tmp_path / "face.png"
    noise_png(image, 0)
    out = blocker / "sub"
    argv = {
        "build_records": ["folder", "--root", tiny_records.parent / "faces", "--out", out],
        "train": ["--records", tiny_records, "--out", out, "--weights", "none"],
        "evaluate": ["--model", tiny_model_path, "--records", tiny_records, "--out", out],
        "export": ["--model", tiny_model_path, "--out", out],
        "predict": ["--model", tiny_model_path, image, "--json", blocker / "p.json"],
        "demo": ["--out", out],
        "demo_data": [out],
        "viz": ["spectra", "--real", image, "--fake", image, "--out", out / "fig.png"],
    }[tool]
    started = time.perf_counter()
    status = entry_point(tool)([str(a) for a in argv])
    captured = capsys.readouterr()
    line = one_line(captured.err, "viz spectra" if tool == "viz" else tool)
    assert status == cli.EXIT_USAGE
    assert f"{blocker} is not a directory" in line or f"{blocker} exists and is not a" in line
    assert time.perf_counter() - started < 10  # refused before scoring or training
    assert sorted(p.name for p in tmp_path.iterdir()) == ["face.png", "file.txt"]


# ------------------------------------------------------------------ converter safeguards


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_same_content_under_both_labels_fails_both_and_repeats_convert_once(tmp_path, capsys):
    root = tmp_path / "faces"
    for split in ("train", "val", "test"):
        for label, seed in (("real", 1), ("fake", 2)):
            noise_png(root / split / label / f"{split}-{label}.png", seed + 10 * len(split))
    noise_png(root / "train" / "real" / "other.png", 77)
    # a contradiction: one image as real (train) and as fake (train)
    noise_png(root / "train" / "real" / "both.png", 99)
    shutil.copy(root / "train" / "real" / "both.png", root / "train" / "fake" / "both_copy.png")
    # a repeat under one label, across splits: converted once, as the first in listing order
    # (sorted by dataset/method/video id: "again" before "train-real")
    shutil.copy(root / "train" / "real" / "train-real.png", root / "test" / "real" / "again.png")
    out = tmp_path / "records"
    status = build_records.main(["folder", "--root", str(root), "--out", str(out), "--crop",
                                 "none", "--size", "64", "--workers", "1", "--quiet"])
    assert status == cli.EXIT_PARTIAL
    assert "1 duplicate inputs converted once" in capsys.readouterr().out
    failures = _rows(out / "failures.csv")
    assert sorted(Path(r["input"]).name for r in failures) == ["both.png", "both_copy.png"]
    assert all("labelled real and fake" in r["reason"] for r in failures)
    info = json.loads((out / "dataset.json").read_text())
    assert [(Path(d["input"]).name, Path(d["same_as"]).name, d["label"], d["split"])
            for d in info["duplicates"]] == [("train-real.png", "again.png", "real", "train")]
    converted = {Path(r["input"]).name for r in _rows(out / "videos.csv") if r["status"] == "ok"}
    expected = {f"{s}-{c}.png" for s in ("train", "val", "test") for c in ("real", "fake")}
    assert converted == expected - {"train-real.png"} | {"again.png", "other.png"}
    assert info["missing_classes"] == {}


def test_a_split_missing_a_class_is_reported(tmp_path, capsys):
    root = tmp_path / "faces"
    for index, (split, label) in enumerate([("train", "real"), ("train", "fake"),
                                            ("val", "real"), ("test", "fake")]):
        noise_png(root / split / label / f"{index}.png", index)
    out = tmp_path / "records"
    status = build_records.main(["folder", "--root", str(root), "--out", str(out), "--crop",
                                 "none", "--size", "64", "--workers", "1", "--quiet"])
    assert status == cli.EXIT_OK
    summary = capsys.readouterr().out
    assert "no fake in val" in summary and "no real in test" in summary
    info = json.loads((out / "dataset.json").read_text())
    assert info["missing_classes"] == {"test": ["real"], "val": ["fake"]}


# --------------------------------------------------------------- inputs by their content


def test_inputs_are_identified_by_content_both_ways(tmp_path, ffpp_mini):
    from mclcr_keras.data.media import sniff_kind
    from mclcr_keras.inference.predict import PredictOptions, crop_file, make_cropper

    video = sorted(ffpp_mini.rglob("*.mp4"))[0]
    disguised_video = tmp_path / "looks_like.jpg"
    shutil.copy(video, disguised_video)
    disguised_image = tmp_path / "looks_like.mp4"
    noise_png(disguised_image, 3)
    assert sniff_kind(disguised_video) == "video" and sniff_kind(disguised_image) == "image"
    cropper = make_cropper(PredictOptions([], model="m", frames=2, crop="none"), 64)
    as_video, frames = crop_file(str(disguised_video), cropper)
    assert (as_video.kind, as_video.error, as_video.frames_sampled) == ("video", None, 2)
    as_image, frames = crop_file(str(disguised_image), cropper)
    assert (as_image.kind, as_image.error, len(frames.kept)) == ("image", None, 1)


def test_a_truncated_keras_file_is_named_not_readable(tmp_path, tiny_model_path):
    from mclcr_keras.models.saving import load_model

    truncated = tmp_path / "cut.keras"
    data = tiny_model_path.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut\.keras: not a readable Keras model file"):
        load_model(truncated)


def test_a_bad_export_version_is_one_line(tmp_path, capsys, tiny_model_path):
    status = export.main(["--model", str(tiny_model_path), "--out", str(tmp_path / "s"),
                          "--version", "abc"])
    line = one_line(capsys.readouterr().err, "export")
    assert status == cli.EXIT_USAGE and "--version: invalid int value: 'abc'" in line

