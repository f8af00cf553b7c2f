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
    assert entry["frames_scored"] == len(ref["indices"]) <= entry["faces_found"]
    # one face: one kept track, the converter's (other detections are dropped tracks)
    assert entry["tracks_kept"] == 1 <= entry["tracks_found"]
    track = entry["tracks"][0]
    assert (track["frames"], track["boxes"]) == (ref["indices"], ref["boxes"])
    np.testing.assert_allclose(track["probabilities"], ref["probabilities"], atol=1e-5)
    assert track["probability"] == pytest.approx(ref["probability"], abs=1e-5)
    assert entry["top_track"] == track["track_id"]
    cells = line.split()
    assert cells[1] == entry["label"]
    assert float(cells[2]) == pytest.approx(ref["probability"], abs=5e-5)  # printed to 4 decimals
    assert cells[3:7] == [str(entry["faces_found"]), f"1/{entry['tracks_found']}",
                          str(ref["sampled"]), "ok"]


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
    assert lines[0].split() == ["FILE", "VERDICT", "P(FAKE)", "FACES", "TRACKS", "SAMPLED",
                                "STATUS"]
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
    # the astronaut's mission patch is a weak second dlib detection: found, not kept
    assert (entries["astronaut"]["tracks_found"], entries["astronaut"]["faces_found"]) == (2, 2)
    assert report["min_track_frames"] == 5 and report["aggregate"] == "max"

    reasons = {"noise": "no face found in any of the 1 sampled frames",
               "text": "not a video", "missing": "file not found"}
    for key, reason in reasons.items():
        entry = entries[key]
        assert entry["status"] == "failed" and reason in entry["error"]
        assert entry["probability"] is None and entry["label"] is None
        assert entry["frame_scores"] == [] and entry["faces_found"] == 0
        assert entry["tracks"] == [] and entry["tracks_kept"] == entry["tracks_found"] == 0
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
    (["--min-track-frames", "0"], "--min-track-frames must be >= 1, got 0"),
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
    (["--model", "m.keras", "--aggregate", "median", "x.png"],
     "argument --aggregate: invalid choice: 'median'"),
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


# --------------------------------------------------------------------------- several faces


def dlib_face(rgb) -> tuple:
    """The one face dlib's detector (called directly, upsample 0) finds in a photo."""
    import dlib

    rects = dlib.get_frontal_face_detector()(rgb, 0)
    assert len(rects) == 1
    return (rects[0].left(), rects[0].top(), rects[0].right() + 1, rects[0].bottom() + 1)


def iou(a, b) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
    return ix * iy / (area - ix * iy)


@pytest.fixture(scope="module")
def two_faces(tmp_path_factory, astronaut, grace) -> dict:
    """10 frames (1200 x 640 MJPG): the astronaut moving right in all of them, Grace Hopper
    moving left in frames 0-6; and the first frame as a PNG. Where each face is, per frame, from
    dlib's box in the photo plus the paste offset."""
    root = tmp_path_factory.mktemp("two_faces")
    faces = {"astronaut": dlib_face(astronaut), "grace": dlib_face(grace)}
    where = {}
    video = root / "two.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (1200, 640))
    for step in range(10):
        frame = np.full((640, 1200, 3), 128, np.uint8)
        offsets = {"astronaut": (20 + 8 * step, 10 + 3 * step)}
        if step < 7:
            offsets["grace"] = (640 - 6 * step, 20)
        for name, (dx, dy) in offsets.items():
            photo = astronaut if name == "astronaut" else grace
            frame[dy:dy + photo.shape[0], dx:dx + photo.shape[1]] = photo
            box = faces[name]
            where[name, step] = (box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy)
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        if step == 0:
            cv2.imwrite(str(root / "two.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return {"video": str(video), "image": str(root / "two.png"), "where": where}


def decoded(path: str) -> list[np.ndarray]:
    """Every frame of a video by a plain OpenCV read loop, RGB."""
    capture, frames = cv2.VideoCapture(path), []
    while True:
        ok, bgr = capture.read()
        if not ok:
            return frames
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def check_tracks(entry: dict, model, frames: list[np.ndarray], how: str, threshold: float):
    """Each track's probabilities = the Keras model on crops aligned here, at its boxes, from
    frames decoded here; the track's = their mean; the file's = max / mean of the tracks'."""
    aligner = FaceAligner(size=SIZE, margin=1.3)
    means = []
    for track in entry["tracks"]:
        crops = np.stack([aligner.align(frames[i], box).image
                          for i, box in zip(track["frames"], track["boxes"])])
        expected = np.asarray(model(crops.astype(np.float32), training=False)["probability"],
                              np.float64).reshape(-1)
        np.testing.assert_allclose(track["probabilities"], expected, atol=1e-5)
        assert track["probability"] == pytest.approx(expected.mean(), abs=1e-5)
        assert track["best_frame"] == track["frames"][int(np.argmax(expected))]
        means.append(expected.mean())
    expected = max(means) if how == "max" else float(np.mean(means))
    assert entry["probability"] == pytest.approx(expected, abs=1e-5)
    assert entry["label"] == ("FAKE" if entry["probability"] > threshold else "REAL")
    assert entry["top_track"] == entry["tracks"][int(np.argmax(means))]["track_id"]
    rows = entry["frame_scores"]
    assert len(rows) == entry["frames_scored"] == sum(len(t["frames"]) for t in entry["tracks"])
    assert rows == sorted(rows, key=lambda r: (r["frame_index"], r["track_id"]))
    return means


def name_of(track: dict, where: dict) -> str:
    """The photo a track follows: its box overlaps that face's place in every frame."""
    names = [name for name in ("astronaut", "grace")
             if all(iou(box, where.get((name, f), (0, 0, 1, 1))) > 0.6
                    for f, box in zip(track["frames"], track["boxes"]))]
    assert len(names) == 1, track
    return names[0]


def test_every_face_is_a_track_scored_on_its_own(tiny_model, scorer, two_faces, tmp_path,
                                                  capsys):
    model, model_path = tiny_model
    frames = decoded(two_faces["video"])
    out = tmp_path / "max.json"
    code, lines, err = run(["--model", model_path, "--frames", 10, "--json", out,
                            two_faces["video"]], capsys, scorer)
    assert code == 0, err
    entry = json.loads(out.read_text())["files"][0]
    assert entry["frames_sampled"] == 10 and entry["min_track_frames"] == 5
    assert entry["tracks_kept"] == 2 and entry["tracks_found"] >= 2
    tracks = {name_of(t, two_faces["where"]): t for t in entry["tracks"]}
    assert tracks["astronaut"]["frames"] == list(range(10))
    assert tracks["grace"]["frames"] == list(range(7))
    ids = [t["track_id"] for t in entry["tracks"]]
    assert ids == sorted(t["track_id"] for t in tracks.values())
    means = check_tracks(entry, model, frames, "max", 0.5)
    assert abs(means[0] - means[1]) > 1e-4  # max and mean differ: the two runs below tell apart
    cells = row(lines, two_faces["video"]).split()
    assert cells[3:7] == [str(entry["faces_found"]), f"2/{entry['tracks_found']}", "10", "ok"]

    out = tmp_path / "mean.json"
    code, _, err = run(["--model", model_path, "--frames", 10, "--aggregate", "mean",
                        "--json", out, two_faces["video"]], capsys, scorer)
    assert code == 0, err
    report = json.loads(out.read_text())
    assert report["aggregate"] == "mean"
    check_tracks(report["files"][0], model, frames, "mean", 0.5)

    # Grace is in 7 of the 10 frames: --min-track-frames 8 drops her track.
    out = tmp_path / "long.json"
    code, lines, err = run(["--model", model_path, "--frames", 10, "--min-track-frames", 8,
                            "--json", out, two_faces["video"]], capsys, scorer)
    assert code == 0, err
    entry = json.loads(out.read_text())["files"][0]
    assert [name_of(t, two_faces["where"]) for t in entry["tracks"]] == ["astronaut"]
    assert entry["probability"] == pytest.approx(tracks["astronaut"]["probability"], abs=1e-6)
    assert row(lines, two_faces["video"]).split()[4] == f"1/{entry['tracks_found']}"

    # --min-track-frames 10 with 9 frames sampled: capped at 9; the astronaut is in all of them
    code, lines, _ = run(["--model", model_path, "--frames", 9, "--min-track-frames", 10,
                          two_faces["video"]], capsys, scorer)
    cells = row(lines, two_faces["video"]).split()
    assert code == 0 and cells[4].startswith("1/") and cells[5] == "9"


def test_an_image_with_two_faces(tiny_model, scorer, two_faces, tmp_path, capsys):
    model, model_path = tiny_model
    out = tmp_path / "image.json"
    code, _, err = run(["--model", model_path, "--json", out, two_faces["image"]], capsys, scorer)
    assert code == 0, err
    entry = json.loads(out.read_text())["files"][0]
    assert entry["kind"] == "image" and entry["min_track_frames"] == 1
    assert sorted(name_of(t, two_faces["where"]) for t in entry["tracks"]) == ["astronaut",
                                                                              "grace"]
    assert all(t["frames"] == [0] for t in entry["tracks"])
    check_tracks(entry, model, [cv2.cvtColor(cv2.imread(two_faces["image"]), cv2.COLOR_BGR2RGB)],
                 "max", 0.5)


def test_a_video_without_a_long_enough_track_is_reported(scorer, tiny_model, tmp_path, grace,
                                                         capsys):
    video = tmp_path / "flash.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (512, 600))
    for step in range(6):  # Grace Hopper in the first 2 of 6 frames
        frame = grace if step < 2 else np.full_like(grace, 128)
        writer.write(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR))
    writer.release()
    code, lines, _ = run(["--model", tiny_model[1], "--frames", 6, "--min-track-frames", 3,
                          video], capsys, scorer)
    assert code == cli.EXIT_PARTIAL
    assert row(lines, str(video)).split()[3:7] == ["2", "0/1", "6", "failed:"]
    assert row(lines, str(video)).endswith(
        "failed: no face tracked in >= 3 of the 6 sampled frames (1 tracks of <= 2 frames)")


def test_score_path_is_one_report_entry(tiny_model, scorer, two_faces, tmp_path, capsys):
    from mclcr_keras.inference.predict import PredictOptions, score_path

    model_path = tiny_model[1]
    options = PredictOptions([], model=model_path, threshold=0.3)
    result = score_path(two_faces["image"], scorer, options)
    out = tmp_path / "one.json"
    run(["--model", model_path, "--threshold", 0.3, "--json", out, two_faces["image"]], capsys,
        scorer)
    assert result.to_json() == json.loads(out.read_text())["files"][0]
    for track in result.tracks:   # what an explanation needs, kept on the result
        assert track.best_crop.shape == (SIZE, SIZE, 3) and track.best_frame == 0
        assert track.best_rgb is None  # the full frame only with options.explain
    missing = score_path(str(tmp_path / "gone.mp4"), scorer, options)
    assert missing.error == "file not found" and missing.to_json()["status"] == "failed"


def test_real_ffpp_two_people_one_swapped(tiny_model, scorer, ffpp_mini, tmp_path, capsys):
    model, model_path = tiny_model
    halves = []
    for clip in (FFPP_VIDEO, Path("manipulated_sequences/FaceSwap/c23/videos/634_660.mp4")):
        halves.append([cv2.resize(rgb, (640, 360), interpolation=cv2.INTER_AREA)
                       for _, rgb in read_frames(str(ffpp_mini / clip), 6)])
    video = tmp_path / "two_people.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (1280, 360))
    for left, right in zip(*halves):
        writer.write(cv2.cvtColor(np.hstack([left, right]), cv2.COLOR_RGB2BGR))
    writer.release()
    out = tmp_path / "two_people.json"
    code, _, err = run(["--model", model_path, "--frames", 6, "--json", out, video], capsys,
                       scorer)
    assert code == 0, err
    entry = json.loads(out.read_text())["files"][0]
    assert entry["tracks_kept"] == 2
    sides = sorted(entry["tracks"], key=lambda t: t["boxes"][0][0])
    assert sides[0]["boxes"][0][2] <= 640 <= sides[1]["boxes"][0][0]  # the real left, fake right
    assert all(t["frames"] == list(range(6)) for t in sides)
    check_tracks(entry, model, decoded(str(video)), "max", 0.5)


def test_explain_writes_one_figure_per_scored_file(tiny_model, scorer, two_faces, media,
                                                   tmp_path, capsys):
    model_path = tiny_model[1]
    folder = tmp_path / "explain"
    out = tmp_path / "explained.json"
    code, _, err = run(["--model", model_path, "--explain", folder, "--json", out,
                        two_faces["image"], media["missing"]], capsys, scorer)
    assert code == cli.EXIT_PARTIAL, err
    scored, missing = json.loads(out.read_text())["files"]
    assert scored["explanation"] == str(folder / "two.png.png") and missing["explanation"] is None
    figure = cv2.imread(scored["explanation"])
    assert figure is not None and figure.shape[0] > 200 and figure.shape[1] > 200
    assert sorted(p.name for p in folder.iterdir()) == ["two.png.png"]


def test_explain_folder_is_checked_first(tmp_path, capsys):
    (tmp_path / "m.keras").write_text("unused: --explain is checked before loading")
    (tmp_path / "taken").write_text("a file")
    code, lines, err = run(["--model", tmp_path / "m.keras", "--explain", tmp_path / "taken",
                            "x.png"], capsys)
    assert code == cli.EXIT_USAGE and lines == []
    assert err == f"predict: error: --explain {tmp_path / 'taken'} exists and is not a directory\n"
