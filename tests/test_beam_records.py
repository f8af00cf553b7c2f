"""``build_records --engine beam`` on Beam's local multi-process runner: the same files as the
local engine (shards byte for byte), bad inputs through the dead-letter output into failures.csv,
a rerun byte-identical, a resume after ``kill -9`` without a duplicate frame, and one-line errors
for what the Beam engine refuses."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
from conftest import make_video

from mclcr_keras import build_records, cli
from mclcr_keras.data import make_dataset

pytest.importorskip("apache_beam", reason="the beam extra is not installed")

PROJECT = Path(__file__).resolve().parents[1]
OPTIONS = ["--frames", "4", "--size", "64", "--shard-mb", "0.01", "--workers", "2", "--quiet"]
# What only the local engine's dataset.json records (its wall time) or only Beam's (its name).
ENGINE_FIELDS = ("seconds",)


def run(argv) -> int:
    return build_records.main([str(a) for a in argv])


def files_of(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file()}


def comparable(info: dict) -> dict:
    info = {k: v for k, v in info.items() if k not in ENGINE_FIELDS}
    info["arguments"] = {k: v for k, v in info["arguments"].items() if k != "engine"}
    return info


@pytest.fixture(scope="module")
def root(tmp_path_factory, heads) -> Path:
    """A folder layout of real face videos, an image, a frame folder, and bad inputs: empty,
    not a video, truncated, faceless, a broken JPEG, one image under both labels."""
    root = tmp_path_factory.mktemp("beam_inputs")
    for i in range(5):
        make_video(root / "real" / f"r{i}.mp4", heads[0], frames=5, seed=i)
        make_video(root / "fake" / f"f{i}.mp4", heads[1], frames=5, seed=50 + i)
    frames = root / "real" / "seq"
    frames.mkdir()
    for i in range(4):
        cv2.imwrite(str(frames / f"{i:03d}.png"), cv2.resize(heads[0], (180, 210))[..., ::-1])
    cv2.imwrite(str(root / "fake" / "still.jpg"), cv2.resize(heads[1], (200, 200))[..., ::-1])
    shutil.copy(root / "fake" / "still.jpg", root / "real" / "still_too.jpg")  # contradiction
    (root / "fake" / "zero.mp4").write_bytes(b"")
    (root / "fake" / "text.mp4").write_text("this is not a video\n")
    whole = (root / "fake" / "f0.mp4").read_bytes()
    (root / "fake" / "truncated.mp4").write_bytes(whole[: len(whole) // 3])
    make_video(root / "real" / "noise.mp4", None, frames=5, seed=7)
    (root / "real" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return root


@pytest.fixture(scope="module")
def local_out(root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "out"
    assert run(["folder", "--root", root, "--out", out, *OPTIONS]) == cli.EXIT_PARTIAL
    return out


@pytest.fixture(scope="module")
def beam_out(root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("beam") / "out"
    assert run(["folder", "--root", root, "--out", out, "--engine", "beam", *OPTIONS]) \
        == cli.EXIT_PARTIAL
    return out


def test_beam_writes_the_local_engines_files(local_out, beam_out):
    local, beam = files_of(local_out), files_of(beam_out)
    assert sorted(local) == sorted(beam)
    shards = [name for name in local if name.endswith(".tfrecord")]
    assert len(shards) > 6  # several shards per stream: the size rule is exercised
    for name in local:
        if name != "dataset.json":
            assert beam[name] == local[name], name
    local_info = json.loads(local["dataset.json"])
    beam_info = json.loads(beam["dataset.json"])
    assert beam_info["arguments"]["engine"] == "beam" and "seconds" not in beam_info
    assert comparable(beam_info) == comparable(local_info)


def test_bad_inputs_reach_failures_csv(beam_out, capsys):
    import csv

    with open(beam_out / "failures.csv", newline="") as handle:
        failures = {os.path.basename(r["input"]): r["reason"] for r in csv.DictReader(handle)}
    assert set(failures) == {"zero.mp4", "text.mp4", "truncated.mp4", "noise.mp4", "broken.jpg",
                             "still.jpg", "still_too.jpg"}
    assert failures["zero.mp4"] == "empty file (0 bytes)"
    assert failures["noise.mp4"] == "no face found in any of the 4 sampled frames"
    assert failures["truncated.mp4"].startswith("truncated or corrupt video")
    assert "labelled real and fake" in failures["still.jpg"]
    info = json.loads((beam_out / "dataset.json").read_text())
    assert info["counts"]["totals"]["failed"] == 7 and info["counts"]["totals"]["videos"] == 11
    assert not (beam_out / ".work").exists()
    assert not [p for p in beam_out.rglob("*") if ".tmp" in p.name]


def test_beam_records_read_by_make_dataset(beam_out):
    import csv

    with open(beam_out / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    seen = 0
    for split in {r["split"] for r in rows}:
        dataset = make_dataset(str(beam_out), split, training=False, with_metadata=True,
                               image_size=64, batch_size=16)
        for images, _, meta in dataset:
            assert images.shape[1:] == (64, 64, 3)
            seen += int(images.shape[0])
    assert seen == len(rows) > 0


def test_rerun_into_the_same_output_is_byte_identical(root, beam_out, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(beam_out, out)
    before = files_of(out)
    assert run(["folder", "--root", root, "--out", out, "--engine", "beam", "--overwrite",
                *OPTIONS]) == cli.EXIT_PARTIAL
    assert files_of(out) == before
    # A finished output is left as it is by --resume.
    assert run(["folder", "--root", root, "--out", out, "--engine", "beam", "--resume",
                *OPTIONS]) == cli.EXIT_PARTIAL
    assert files_of(out) == before


@pytest.mark.slow
def test_resume_after_kill_has_no_duplicate(root, beam_out, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "mclcr_keras.build_records", "folder", "--root", str(root),
               "--out", str(out), "--engine", "beam", *OPTIONS]
    process = subprocess.Popen(command, cwd=PROJECT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    done = out / ".work" / "videos"
    deadline = time.time() + 300
    try:
        while time.time() < deadline and process.poll() is None:
            if done.is_dir() and len(list(done.glob("*.json"))) >= 4:
                break
            time.sleep(0.05)
        assert process.poll() is None, "the build finished before it could be killed"
        os.killpg(process.pid, signal.SIGKILL)  # the launcher and its Beam workers
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert not (out / "dataset.json").exists()
    kept = {p.name: p.read_bytes() for p in done.glob("*.json")}
    assert len(kept) >= 4
    assert run(["folder", "--root", root, "--out", out, "--engine", "beam", "--resume",
                *OPTIONS]) == cli.EXIT_PARTIAL
    assert files_of(out) == files_of(beam_out)


@pytest.mark.parametrize("extra, message", [
    (["--", "--no_such_beam_option=1"], "unknown Beam pipeline option 'no_such_beam_option'"),
    (["--num-partitions", "2", "--partition", "0"], "--engine beam distributes the conversion"),
])
def test_beam_refusals_are_one_line(root, tmp_path, capsys, extra, message):
    status = run(["folder", "--root", root, "--out", tmp_path / "out", "--engine", "beam",
                  *OPTIONS[:-1], *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == cli.EXIT_USAGE
    assert err[-1].startswith("build_records: error: ") and message in err[-1]
    assert not (tmp_path / "out" / "dataset.json").exists()


def test_pipeline_options_need_the_beam_engine(root, tmp_path, capsys):
    status = run(["folder", "--root", root, "--out", tmp_path / "out", "--",
                  "--runner=DirectRunner"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == cli.EXIT_USAGE and len(err) == 1
    assert "they need --engine beam" in err[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@pytest.mark.shared_data
def test_official_ffpp_layout_equals_local_engine(ffpp_mini, tmp_path):
    argv = ["ffpp", "--root", ffpp_mini, "--splits-dir", ffpp_mini / "splits",
            "--frames", "3", "--size", "64", "--workers", "2", "--quiet"]
    assert run([*argv, "--out", tmp_path / "local"]) == cli.EXIT_OK
    assert run([*argv, "--out", tmp_path / "beam", "--engine", "beam"]) == cli.EXIT_OK
    local, beam = files_of(tmp_path / "local"), files_of(tmp_path / "beam")
    assert sorted(local) == sorted(beam)
    assert {name.split("/")[0] for name in local if "/" in name} == {"train", "val", "test"}
    for name in local:
        if name != "dataset.json":
            assert beam[name] == local[name], name
    assert comparable(json.loads(beam["dataset.json"])) == \
        comparable(json.loads(local["dataset.json"]))


@pytest.fixture
def bucket(tmp_path, monkeypatch):
    """``testfs://bucket/...`` (tests/beam_testfs.py: object-store semantics in a local
    folder), for Beam's in-process runner (the stand-in filesystem is registered here only)."""
    import beam_testfs

    monkeypatch.setattr(beam_testfs, "ROOT", str(tmp_path / "store"))
    return beam_testfs


def test_inputs_and_outputs_on_another_filesystem(root, beam_out, bucket, capsys):
    import csv

    shutil.copytree(root, bucket.local("testfs://bucket/in"))
    status = run(["folder", "--root", "testfs://bucket/in", "--out", "testfs://bucket/out",
                  "--engine", "beam", *OPTIONS, "--", "--direct_running_mode=in_memory"])
    assert status == cli.EXIT_PARTIAL, capsys.readouterr().err[-2000:]
    out = Path(bucket.local("testfs://bucket/out"))
    remote, local = files_of(out), files_of(beam_out)
    assert sorted(remote) == sorted(local)
    for name in local:
        if name.endswith(".tfrecord") or name == "manifest.csv":
            assert remote[name] == local[name], name

    def inputs(folder: Path, prefix: str) -> list[dict]:
        with open(folder / "videos.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        for row in rows:
            assert row["input"].startswith(prefix)
            row["input"] = row["input"][len(prefix):]
        return rows

    assert inputs(out, "testfs://bucket/in") == inputs(beam_out, str(root))
    info = json.loads(remote["dataset.json"])
    assert info["arguments"]["root"] == "testfs://bucket/in"


def test_other_filesystems_need_the_beam_engine(bucket, tmp_path, capsys):
    status = run(["folder", "--root", "testfs://bucket/in", "--out", tmp_path / "out"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == cli.EXIT_USAGE and len(err) == 1
    assert err[0] == ("build_records: error: --root testfs://bucket/in: paths on other "
                      "filesystems need --engine beam")


def doc_commands(name: str) -> list[list[str]]:
    """The ``python -m mclcr_keras.<tool> ... --engine beam -- ...`` commands of a docs page."""
    import re
    import shlex

    text = (PROJECT / "docs" / name).read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    commands = []
    for block in blocks:
        for command in block.replace("\\\n", " ").splitlines():
            if "--engine beam" in command and " -- " in command:
                commands.append(shlex.split(command))
    return commands


def test_the_cluster_commands_of_the_docs_parse():
    from mclcr_keras.beam.options import pipeline_options

    commands = doc_commands("beam.md")
    runners = set()
    for words in commands:
        assert words[:3] == ["python", "-m", "mclcr_keras.build_records"]
        own, beam_args = cli.split_passthrough(words[3:])
        build_records.build_parser().parse_args(own)  # exits on a flag of ours that is wrong
        options = pipeline_options(beam_args, workers=2).get_all_options()
        runners.add(options["runner"])
    assert runners == {"DataflowRunner", "FlinkRunner", "SparkRunner"}


def test_dfdc_part_with_an_unreadable_and_a_faceless_video(heads, tmp_path):
    part = tmp_path / "dfdc" / "dfdc_train_part_0"
    metadata = {}
    for i in range(2):
        make_video(part / f"real{i}.mp4", heads[0], frames=5, seed=i)
        make_video(part / f"fake{i}.mp4", heads[1], frames=5, seed=20 + i)
        metadata[f"real{i}.mp4"] = {"label": "REAL", "split": "train", "original": None}
        metadata[f"fake{i}.mp4"] = {"label": "FAKE", "split": "train", "original": f"real{i}.mp4"}
    (part / "unreadable.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    make_video(part / "faceless.mp4", None, frames=5, seed=3)
    metadata["unreadable.mp4"] = {"label": "REAL", "split": "train", "original": None}
    metadata["faceless.mp4"] = {"label": "FAKE", "split": "train", "original": "real0.mp4"}
    (part / "metadata.json").write_text(json.dumps(metadata))
    argv = ["dfdc", "--root", tmp_path / "dfdc", *OPTIONS]
    assert run([*argv, "--out", tmp_path / "local"]) == cli.EXIT_PARTIAL
    assert run([*argv, "--out", tmp_path / "beam", "--engine", "beam"]) == cli.EXIT_PARTIAL
    local, beam = files_of(tmp_path / "local"), files_of(tmp_path / "beam")
    assert sorted(local) == sorted(beam)
    for name in local:
        if name != "dataset.json":
            assert beam[name] == local[name], name
    failures = beam["failures.csv"].decode().splitlines()
    assert len(failures) == 3  # header + the two
    assert any("faceless.mp4" in row and "no face found" in row for row in failures)
    assert any("unreadable.mp4" in row for row in failures)
