"""`python -m mclcr_keras.predict` (`mclcr_keras.inference.predict`): real faces, real and
synthetic videos, failures, exit codes.

The shared tiny MC-LCR (`tiny_model_path`: 64 px, random weights) scores the files; the CLI's
probabilities are checked against the Keras model's own outputs on crops computed here (frames
read with `read_frames` or OpenCV, one face followed by `track_faces`, the Keras model called
directly, mean), not through predict's cropper, the scorer or build_records. The export is scored
by predict in tests/test_export.py.
"""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from mclcr_keras import cli, predict
from mclcr_keras.data.crops import track_faces
from mclcr_keras.data.faces import FaceAligner
from mclcr_keras.data.video import read_frames
from mclcr_keras.inference.predict import expand_inputs

SIZE = 64
FFPP_VIDEO = Path("original_sequences/youtube/c23/videos/004.mp4")


def _grace_hopper() -> str:
    import matplotlib.cbook

    return str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


@pytest.fixture(scope="module")
def tiny_model(tiny_model_path):
    """(the shared tiny model loaded by Keras itself, its .keras path)."""
    import keras

    import mclcr_keras.models.mclcr  # noqa: F401  (registers the custom classes)

    return keras.models.load_model(tiny_model_path, compile=False), str(tiny_model_path)


@pytest.fixture(scope="module")
def scorer(tiny_model):
    """The saved model loaded once, for the tests that do not exercise --model loading itself."""
    from mclcr_keras.inference.scorer import load_scorer

    return load_scorer(tiny_model[1])


@pytest.fixture(scope="module")
def media(tmp_path_factory, astronaut) -> dict[str, str]:
    """Real face photos, a synthetic video of one, and three inputs that cannot be scored."""
    root = tmp_path_factory.mktemp("media")
    astronaut_path = root / "astronaut.png"
    cv2.imwrite(str(astronaut_path), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))

    # 9 frames of Grace Hopper drifting right and down, on a larger grey canvas.
    face = cv2.imread(_grace_hopper())
    height, width = face.shape[:2]
    video = root / "synthetic.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0,
                             (width + 64, height + 64))
    assert writer.isOpened()
    for step in range(9):
        canvas = np.full((height + 64, width + 64, 3), 128, np.uint8)
        canvas[4 * step:4 * step + height, 6 * step:6 * step + width] = face
        writer.write(canvas)
    writer.release()

    noise = root / "noise.png"
    cv2.imwrite(str(noise), np.random.default_rng(0).integers(0, 256, (128, 128, 3), np.uint8))
    text = root / "notes.mp4"
    text.write_text("this is not a video\n")
    return {"grace": _grace_hopper(), "astronaut": str(astronaut_path), "video": str(video),
            "noise": str(noise), "text": str(text), "missing": str(root / "missing.jpg")}


def reference(model, path: str, frames: int | None) -> dict:
    """Crops and scores a file independently of predict/build_records (frames=None: an image)."""
    aligner = FaceAligner(size=SIZE, margin=1.3)
    if frames is None:
        sampled = [(0, cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB))]
    else:
        sampled = list(read_frames(path, frames))
    indices, boxes, crops = [], [], []
    for index, face in track_faces(sampled, aligner):
        indices.append(index)
        boxes.append(list(face.box))
        crops.append(face.image)
    assert crops, f"reference found no face in {path}"
    outputs = model(np.stack(crops).astype(np.float32), training=False)
    probabilities = np.asarray(outputs["probability"], np.float64).reshape(-1)
    return {"indices": indices, "boxes": boxes, "probabilities": probabilities,
            "probability": float(probabilities.mean()), "sampled": len(sampled)}


def run(argv, capsys, scorer=None) -> tuple[int, list[str], str]:
    code = predict.main([str(a) for a in argv], scorer=scorer)
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


def row(lines: list[str], path: str) -> str:
    matches = [line for line in lines if line.startswith(path + " ")]
    assert len(matches) == 1, (path, lines)
    return matches[0]


def check_scored(entry: dict, line: str, ref: dict, threshold: float) -> None:
    assert entry["status"] == "ok" and entry["error"] is None
    assert [s["frame_index"] for s in entry["frame_scores"]] == ref["indices"]
    assert [s["box"] for s in entry["frame_scores"]] == ref["boxes"]
    np.testing.assert_allclose([s["probability"] for s in entry["frame_scores"]],
                               ref["probabilities"], atol=1e-5)
    assert entry["probability"] == pytest.approx(ref["probability"], abs=1e-5)
    assert entry["label"] == ("FAKE" if ref["probability"] > threshold else "REAL")
    assert entry["frames_sampled"] == ref["sampled"]
    assert entry["faces_found"] == entry["frames_scored"] == len(ref["indices"])
    cells = line.split()
    assert cells[1] == entry["label"]
    assert float(cells[2]) == pytest.approx(ref["probability"], abs=5e-5)  # printed to 4 decimals
    assert cells[3:6] == [str(len(ref["indices"])), f"{len(ref['indices'])}/{ref['sampled']}",
                          "ok"]


def test_scores_match_the_model_and_failures_are_reported(tiny_model, media, tmp_path, capsys):
    model, model_path = tiny_model
    refs = {"grace": reference(model, media["grace"], None),
            "astronaut": reference(model, media["astronaut"], None),
            "video": reference(model, media["video"], 4)}
    assert refs["video"]["indices"] == [0, 3, 5, 8]  # linspace(0, 8, 4) rounded: even sampling
    # A threshold between the files' scores, so both verdicts are exercised.
    threshold = float(np.median([r["probability"] for r in refs.values()]))
    out = tmp_path / "report.json"
    order = ["grace", "noise", "astronaut", "text", "missing", "video"]
    code, lines, err = run(["--model", model_path, "--frames", 4, "--batch-size", 3,
                            "--threshold", threshold, "--json", out,
                            *[media[k] for k in order]], capsys)

    assert code == cli.EXIT_PARTIAL == 3, err
    assert lines[0].split() == ["FILE", "VERDICT", "P(FAKE)", "SCORED", "FACES/SAMPLED", "STATUS"]
    assert lines[-1] == f"predict: scored 3 of 6 files; 3 failed; JSON report in {out}"
    report = json.loads(out.read_text())
    assert [f["path"] for f in report["files"]] == [media[k] for k in order]
    assert report["summary"] == {"files": 6, "scored": 3, "failed": 3}
    assert report["image_size"] == SIZE and report["threshold"] == threshold
    entries = dict(zip(order, report["files"]))
    for key, ref in refs.items():
        check_scored(entries[key], row(lines, media[key]), ref, threshold)
    assert {entries[k]["label"] for k in refs} == {"REAL", "FAKE"}
    assert entries["video"]["kind"] == "video" and entries["grace"]["kind"] == "image"

    reasons = {"noise": "no face found in any of the 1 sampled frames",
               "text": "not a video", "missing": "file not found"}
    for key, reason in reasons.items():
        entry = entries[key]
        assert entry["status"] == "failed" and reason in entry["error"]
        assert entry["probability"] is None and entry["label"] is None
        assert entry["frame_scores"] == [] and entry["faces_found"] == 0
        assert f"failed: {entry['error']}" in row(lines, media[key])
    assert entries["noise"]["frames_sampled"] == 1


def test_real_ffpp_video(tiny_model, scorer, ffpp_mini, capsys, tmp_path):
    model, model_path = tiny_model
    video = str(ffpp_mini / FFPP_VIDEO)
    ref = reference(model, video, 4)
    assert ref["sampled"] == 4
    out = tmp_path / "ffpp.json"
    code, lines, err = run(["--model", model_path, "--frames", 4, "--json", out, video], capsys,
                           scorer)
    assert code == 0, err
    entry = json.loads(out.read_text())["files"][0]
    check_scored(entry, row(lines, video), ref, 0.5)
    assert entry["kind"] == "video"


def test_directory_input_all_scored_exit_zero(tiny_model, scorer, media, tmp_path, capsys):
    model, model_path = tiny_model
    folder = tmp_path / "photos"
    (folder / "b").mkdir(parents=True)
    first = folder / "a_grace.jpg"
    first.write_bytes(Path(media["grace"]).read_bytes())
    second = folder / "b" / "astronaut.png"
    second.write_bytes(Path(media["astronaut"]).read_bytes())
    (folder / "readme.txt").write_text("not media, ignored inside a directory")
    code, lines, err = run(["--model", model_path, folder], capsys, scorer)
    assert code == cli.EXIT_OK == 0, err
    assert [line.split()[0] for line in lines[1:-1]] == [str(first), str(second)]
    assert lines[-1] == "predict: scored 2 of 2 files"
    expected = reference(model, media["astronaut"], None)["probability"]
    assert float(row(lines, str(second)).split()[2]) == pytest.approx(expected, abs=5e-5)


def test_crop_none_scores_resized_frames(tiny_model, scorer, tmp_path, capsys):
    model, model_path = tiny_model
    rgb = np.random.default_rng(1).integers(0, 256, (96, 80, 3), np.uint8)
    path = tmp_path / "crop.png"
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    out = tmp_path / "none.json"
    code, _, err = run(["--model", model_path, "--crop", "none", "--json", out, path], capsys,
                       scorer)
    assert code == 0, err
    resized = cv2.resize(rgb, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    expected = model(resized[None].astype(np.float32), training=False)["probability"]
    entry = json.loads(out.read_text())["files"][0]
    assert entry["probability"] == pytest.approx(float(np.asarray(expected)[0, 0]), abs=1e-5)
    assert entry["frame_scores"][0]["box"] == [0, 0, 80, 96]


def test_library_predict_returns_the_results_and_prints_the_table(tiny_model, scorer, tmp_path):
    import io

    from mclcr_keras.inference.predict import PredictOptions, summary
    from mclcr_keras.inference.predict import predict as predict_files

    model, model_path = tiny_model
    crop = np.random.default_rng(2).integers(0, 256, (SIZE, SIZE, 3), np.uint8)
    path = tmp_path / "face.png"
    cv2.imwrite(str(path), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
    options = PredictOptions([str(path), str(tmp_path / "gone.png")], model=model_path,
                             crop="none", threshold=0.0)
    stream = io.StringIO()
    results = predict_files(options, scorer, stream)
    expected = model(crop[None].astype(np.float32), training=False)["probability"]
    assert [r.path for r in results] == options.inputs
    assert results[0].probability == pytest.approx(float(np.asarray(expected)[0, 0]), abs=1e-5)
    assert results[0].label == "FAKE" and results[0].error is None  # any p > 0 at threshold 0
    assert results[1].error == "file not found" and results[1].probability is None
    table = stream.getvalue().splitlines()
    assert [line.split()[0] for line in table] == ["FILE", str(path), str(tmp_path / "gone.png")]
    assert summary(results, options) == "predict: scored 1 of 2 files; 1 failed"


def test_json_report_folder_must_exist(tmp_path, capsys):
    (tmp_path / "m.keras").write_text("unused: the report path is checked before loading")
    report = tmp_path / "no" / "report.json"
    code, lines, err = run(["--model", tmp_path / "m.keras", "--json", report, "x.png"], capsys)
    assert code == cli.EXIT_USAGE and lines == []
    assert err == f"predict: error: --json {report}: folder {report.parent} does not exist\n"


def test_bad_model_is_one_line_exit_2(tmp_path, media, capsys):
    not_a_model = tmp_path / "model.keras"
    not_a_model.write_text("not a zip archive")
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    for bad in (tmp_path / "absent.keras", not_a_model, empty_dir):
        code, lines, err = run(["--model", bad, media["grace"]], capsys)
        assert code == cli.EXIT_USAGE == 2
        assert lines == []  # nothing scored, no table
        assert err.count("\n") == 1 and err.startswith("predict: error: ")
        assert str(bad) in err and "Traceback" not in err


@pytest.mark.parametrize("argv, message", [
    (["--frames", "0"], "--frames must be >= 1, got 0"),
    (["--batch-size", "-1"], "--batch-size must be >= 1, got -1"),
    (["--threshold", "1.5"], "--threshold must be in [0, 1], got 1.5"),
    (["--margin", "0.5"], "--margin must be >= 1.0, got 0.5"),
])
def test_bad_arguments(argv, message, tmp_path, capsys):
    model = tmp_path / "m.keras"
    model.write_text("unused")
    code, lines, err = run(["--model", model, *argv, "x.png"], capsys)
    assert code == 2 and lines == []
    assert err == f"predict: error: {message}\n"


@pytest.mark.parametrize("argv, message", [
    (["--model", "m.keras"], "the following arguments are required: INPUT"),
    (["--model", "m.keras", "--crop", "box", "x.png"], "argument --crop: invalid choice: 'box'"),
    (["--model", "m.keras", "--frames", "many", "x.png"],
     "argument --frames: invalid int value: 'many'"),
])
def test_argparse_errors_are_one_line(argv, message, capsys):
    code, lines, err = run(argv, capsys)
    assert code == cli.EXIT_USAGE and lines == []
    assert err.startswith(f"predict: error: {message}") and err.count("\n") == 1, err


def test_expand_inputs(tmp_path):
    (tmp_path / "d" / "z").mkdir(parents=True)
    for name in ("d/b.MP4", "d/a.jpg", "d/z/c.png", "d/notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "empty").mkdir()
    d, empty = str(tmp_path / "d"), str(tmp_path / "empty")
    expanded = expand_inputs([d, "odd.xyz", f"{d}/a.jpg", empty])
    assert expanded == [f"{d}/a.jpg", f"{d}/b.MP4", f"{d}/z/c.png", "odd.xyz", empty]
