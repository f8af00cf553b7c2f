"""``predict --engine beam`` (`mclcr_keras.beam.scoring`) against ``predict --json`` on the same
files: real videos (FF++ when ../shared/data is there, and a video of a real face written here),
real face photos, a glob, a faceless image, an unreadable and a missing file.

One Beam run (the local runner, 2 worker processes) and one local predict run of the shared
tiny model's export are made once for the module; every line of the Beam output must be the
local report's entry for that file, every field, floats to 1e-5.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from mclcr_keras import cli, export, predict

pytest.importorskip("apache_beam")

FRAMES = 4
FFPP = Path(__file__).resolve().parents[2] / "shared" / "data" / "ffpp_mini"
FFPP_VIDEOS = ["original_sequences/youtube/c23/videos/004.mp4",
               "manipulated_sequences/FaceSwap/c23/videos/634_660.mp4"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_model_path) -> Path:
    base = tmp_path_factory.mktemp("beam_serving") / "mclcr"
    assert export.main(["--model", str(tiny_model_path), "--out", str(base)]) == 0
    return base


def drifting_video(path: Path, photo: np.ndarray, steps: int = 9) -> None:
    """A real face photo drifting right and down over a grey canvas, mp4v."""
    height, width = photo.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0,
                             (width + 64, height + 64))
    assert writer.isOpened()
    for step in range(steps):
        canvas = np.full((height + 64, width + 64, 3), 128, np.uint8)
        canvas[4 * step:4 * step + height, 6 * step:6 * step + width] = photo[..., ::-1]
        writer.write(canvas)
    writer.release()


@pytest.fixture(scope="module")
def media(tmp_path_factory, grace, astronaut) -> dict:
    """The inputs as given to Beam (with a glob) and as expanded for predict."""
    root = tmp_path_factory.mktemp("beam_media")
    (root / "faces").mkdir()
    cv2.imwrite(str(root / "grace.jpg"), cv2.cvtColor(grace, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(root / "faces" / "b_astronaut.png"), cv2.cvtColor(astronaut,
                                                                       cv2.COLOR_RGB2BGR))
    noise = np.random.default_rng(0).integers(0, 256, (128, 128, 3), np.uint8)
    cv2.imwrite(str(root / "faces" / "a_noise.png"), noise)  # no face
    (root / "faces" / "readme.txt").write_text("not matched by the glob")
    drifting_video(root / "drifting.mp4", grace)
    (root / "notes.mp4").write_text("this is not a video\n")
    ffpp = [str(FFPP / v) for v in FFPP_VIDEOS if (FFPP / v).is_file()]
    glob = str(root / "faces" / "*.png")
    head = [str(root / "drifting.mp4"), str(root / "grace.jpg")]
    tail = [str(root / "notes.mp4"), str(root / "missing.jpg"), *ffpp]
    return {"root": root, "glob": glob, "ffpp": ffpp, "beam": [*head, glob, *tail],
            "local": [*head, str(root / "faces" / "a_noise.png"),
                      str(root / "faces" / "b_astronaut.png"), *tail]}


def run(argv, capsys) -> tuple[int, str, str]:
    code = predict.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def runs(exported, media, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("beam_out")
    common = ["--model", exported, "--frames", FRAMES, "--batch-size", 3]
    local = predict.main([str(a) for a in [*common, "--json", out / "local.json", "--json-lines",
                                           out / "local.jsonl", *media["local"]]])
    beam = predict.main([str(a) for a in [*common, "--engine", "beam", "--workers", 2,
                                          "--json-lines", out / "beam.jsonl", *media["beam"]]])
    return {"codes": (local, beam), "report": json.loads((out / "local.json").read_text()),
            "local_lines": read(out / "local.jsonl"),
            "local_failures": read(out / "local.failures.jsonl"),
            "beam": read(out / "beam.jsonl"), "beam_failures": read(out / "beam.failures.jsonl"),
            "out": out}


def read(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def assert_same(beam, local, where: str = "") -> None:
    """Equal structures; floats to 1e-5."""
    if isinstance(local, dict):
        assert isinstance(beam, dict) and beam.keys() == local.keys(), where
        for key in local:
            assert_same(beam[key], local[key], f"{where}.{key}")
    elif isinstance(local, list):
        assert isinstance(beam, list) and len(beam) == len(local), where
        for i, (b, v) in enumerate(zip(beam, local)):
            assert_same(b, v, f"{where}[{i}]")
    elif isinstance(local, float):
        assert isinstance(beam, float) and beam == pytest.approx(local, abs=1e-5), where
    else:
        assert beam == local and type(beam) is type(local), where


def test_every_line_is_the_files_entry_of_predict_json(runs, media):
    assert runs["codes"] == (cli.EXIT_PARTIAL, cli.EXIT_PARTIAL)
    entries = runs["report"]["files"]
    assert [e["path"] for e in entries] == media["local"]
    # one line per input, in input order (the glob expanded in place, sorted, .txt not matched)
    assert [line["path"] for line in runs["beam"]] == media["local"]
    for line, entry in zip(runs["beam"], entries):
        assert_same(line, entry, entry["path"])
    status = {e["path"]: (e["status"], e["error"]) for e in runs["beam"]}
    root = media["root"]
    assert status[str(root / "notes.mp4")] == ("failed", "not a video: text file")
    assert status[str(root / "missing.jpg")] == ("failed", "file not found")
    assert status[str(root / "faces" / "a_noise.png")] == (
        "failed", "no face found in any of the 1 sampled frames")
    scored = [e for e in runs["beam"] if e["status"] == "ok"]
    assert len(scored) == 3 + len(media["ffpp"])
    video = runs["beam"][0]
    assert (video["kind"], video["frames_sampled"], video["tracks_kept"]) == ("video", FRAMES, 1)
    assert len(video["frame_scores"]) == video["frames_scored"] == FRAMES
    assert all(0.0 < s["probability"] < 1.0 for e in scored for s in e["frame_scores"])
    # the astronaut's mission patch: a second track found, not kept (as predict)
    astronaut = runs["beam"][3]
    assert (astronaut["tracks_found"], astronaut["tracks_kept"]) == (2, 1)


def test_local_json_lines_are_the_report_entries(runs):
    assert runs["local_lines"] == runs["report"]["files"]
    failed = [e for e in runs["report"]["files"] if e["error"]]
    assert runs["local_failures"] == [{"path": e["path"], "kind": e["kind"], "error": e["error"]}
                                      for e in failed]


def test_dead_letter_output_lists_the_failed_files(runs):
    assert runs["beam_failures"] == runs["local_failures"]
    assert [row["kind"] for row in runs["beam_failures"]] == ["image", "video", None]
    assert (runs["out"] / "beam.failures.jsonl").read_text().count("\n") == 3


def test_real_videos(runs, media):
    if not media["ffpp"]:
        pytest.skip(f"FaceForensics++ sample not found at {FFPP}")
    lines = {line["path"]: line for line in runs["beam"]}
    entries = {entry["path"]: entry for entry in runs["report"]["files"]}
    for video in media["ffpp"]:
        line = lines[video]
        assert line["status"] == "ok" and line["frames_sampled"] == FRAMES
        assert line["tracks_kept"] >= 1 and line["frames_scored"] >= FRAMES
        np.testing.assert_allclose([s["logit"] for s in line["frame_scores"]],
                                   [s["logit"] for s in entries[video]["frame_scores"]],
                                   atol=1e-5)
        assert line["label"] == entries[video]["label"]


def test_a_keras_model_and_the_summary_line(tiny_model_path, media, runs, tmp_path, capsys):
    """The .keras file the export was made from scores as the export does (one worker)."""
    out = tmp_path / "one.jsonl"
    code, stdout, _ = run(["--engine", "beam", "--workers", 1, "--model", tiny_model_path,
                           "--frames", FRAMES, "--json-lines", out, media["glob"]], capsys)
    assert code == cli.EXIT_PARTIAL
    assert stdout.splitlines()[-1] == (f"predict: scored 1 of 2 files; 1 failed; JSON lines in "
                                       f"{out} (failures in {tmp_path / 'one.failures.jsonl'})")
    assert_same([json.loads(line) for line in out.read_text().splitlines()], runs["beam"][2:4])


@pytest.fixture
def bucket(tmp_path, monkeypatch):
    """``testfs://bucket/...`` (tests/beam_testfs.py: object-store semantics in a local folder,
    a stand-in for gs://), for Beam's in-process runner (registered in this process only)."""
    import beam_testfs

    monkeypatch.setattr(beam_testfs, "ROOT", str(tmp_path / "store"))
    return beam_testfs


def test_inputs_model_and_output_in_a_bucket(bucket, exported, media, runs, capsys):
    store = Path(bucket.local("testfs://bucket/media")).parent
    shutil.copytree(media["root"], store / "media")
    shutil.copytree(exported, store / "serving" / "mclcr")
    out = "testfs://bucket/out/scores.jsonl"
    inputs = ["drifting.mp4", "grace.jpg", "faces", "missing.jpg"]  # a folder: its media files
    code, _, err = run(["--engine", "beam", "--model", "testfs://bucket/serving/mclcr",
                        "--frames", FRAMES, "--batch-size", 3, "--json-lines", out,
                        *[f"testfs://bucket/media/{name}" for name in inputs],
                        "--", "--direct_running_mode=in_memory"], capsys)
    assert code == cli.EXIT_PARTIAL, err[-2000:]
    expected = [runs["beam"][i] for i in (0, 1, 2, 3, 5)]
    lines = read(bucket.local(out))
    assert [line["path"] for line in lines] == [
        e["path"].replace(str(media["root"]), "testfs://bucket/media") for e in expected]
    for line, entry in zip(lines, expected):
        assert_same({**line, "path": entry["path"]}, entry, entry["path"])
    failures = read(bucket.local("testfs://bucket/out/scores.failures.jsonl"))
    assert [(row["path"], row["error"]) for row in failures] == [
        ("testfs://bucket/media/faces/a_noise.png", "no face found in any of the 1 sampled frames"),
        ("testfs://bucket/media/missing.jpg", "file not found")]


def test_a_model_that_is_not_there_is_one_line_exit_2(bucket, tmp_path, capsys):
    code, stdout, err = run(["--engine", "beam", "--model", "testfs://bucket/serving/none",
                             "--json-lines", tmp_path / "out.jsonl", "x.png"], capsys)
    assert (code, stdout) == (cli.EXIT_USAGE, "")
    assert err == ("predict: error: cannot load --model testfs://bucket/serving/none: model not "
                   "found: testfs://bucket/serving/none\n")
    assert not (tmp_path / "out.jsonl").exists()


def test_bad_pipeline_option_is_one_line_exit_2(exported, tmp_path):
    command = [sys.executable, "-m", "mclcr_keras.predict", "--engine", "beam", "--model",
               str(exported), "--json-lines", str(tmp_path / "out.jsonl"), "x.png", "--",
               "--no_such_option=1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == cli.EXIT_USAGE, done.stderr
    assert done.stdout == ""
    assert done.stderr == ("predict: error: unknown Beam pipeline option 'no_such_option' "
                           "after --\n")
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize("argv, message", [
    (["--json-lines", "{out}", "x.png", "--", "--runner=DirectRunner"],
     "arguments after -- (--runner=DirectRunner) are Beam pipeline options: they need "
     "--engine beam"),
    (["--workers", "2", "x.png"], "--workers is for --engine beam"),
    (["--engine", "beam", "x.png"], "--engine beam needs --json-lines OUT (where the results go)"),
    (["--engine", "beam", "--json-lines", "{out}", "--explain", "{tmp}", "x.png"],
     "--explain is not supported with --engine beam (use the local engine)"),
    (["--engine", "beam", "--json-lines", "{out}", "--json", "{tmp}/r.json", "x.png"],
     "--json is the local engine's report; with --engine beam use --json-lines (the same "
     "per-file entries, one per line)"),
    (["--engine", "beam", "--json-lines", "{out}", "--workers", "0", "x.png"],
     "--workers must be >= 1, got 0"),
    (["--json-lines", "gs://bucket/out.jsonl", "x.png"],
     "--json-lines gs://bucket/out.jsonl: a local file only (--json-lines with --engine beam "
     "may be on gs:// or s3://)"),
    (["--engine", "beam", "--json-lines", "{tmp}/no/out.jsonl", "x.png"],
     "--json-lines {tmp}/no/out.jsonl: folder {tmp}/no does not exist"),
])
def test_usage_errors(argv, message, tmp_path, capsys):
    (tmp_path / "m.keras").write_text("unused: the arguments are checked before loading")
    fill = {"out": str(tmp_path / "out.jsonl"), "tmp": str(tmp_path)}
    argv = ["--model", tmp_path / "m.keras", *[a.format(**fill) for a in argv]]
    code, stdout, err = run(argv, capsys)
    assert (code, stdout) == (cli.EXIT_USAGE, "")
    assert err == f"predict: error: {message.format(**fill)}\n"
