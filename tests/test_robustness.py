"""The robustness sweep (``evaluate --perturb``, `mclcr_keras.evaluation.perturb` and
`mclcr_keras.evaluation.robustness`).

Each perturbation is checked against an independent implementation written here (JPEG: the same
OpenCV encoder called by hand, and PIL's; blur: scipy.ndimage; resize: a NumPy bilinear; noise:
the documented SHA-256 seed by hand, its determinism and statistics; H.264: a PyAV round trip
when PyAV is installed). The sweep's clean rows are checked against the plain evaluation's
``metrics.json``, a perturbed row against the same records perturbed here and scored with the
scorer directly, and two runs against each other. Bad specs exit 2 with one line and write
nothing.
"""

import hashlib
import io
import json
import math
import os

import cv2
import numpy as np
import pandas as pd
import pytest

from mclcr_keras import evaluate
from mclcr_keras.evaluation import perturb, robustness
from mclcr_keras.evaluation.perturb import Perturbation, PerturbationError, parse_perturbations

SWEEP = ["jpeg:50", "blur:2", "noise:10,20", "resize:0.5"]
BOOTSTRAP = ["--bootstrap", "200", "--bootstrap-seed", "3"]


def _faces(count: int = 3, size: int = 32, seed: int = 0) -> np.ndarray:
    """Smooth colour fields with a little texture, channels distinct (uint8)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    faces = []
    for _ in range(count):
        tint = rng.uniform(20, 60, 3)
        image = np.stack([200 * yy, 180 * xx, 120 * (1 - yy)], -1) + tint
        faces.append(image + rng.normal(0, 6, image.shape))
    return np.clip(np.rint(faces), 0, 255).astype(np.uint8)


def _keys(count: int) -> list[tuple]:
    return [("ffpp", "Deepfakes", f"00{i}_001", 10 * i) for i in range(count)]


# --------------------------------------------------------------------------------- parsing


def test_specs_parse_to_one_perturbation_per_severity():
    assert parse_perturbations(["jpeg:90,70,50,30", "blur:1,2,3", "noise:5,10,20",
                                "resize:0.5,0.25", "h264:23,30"]) == [
        Perturbation("jpeg", 90), Perturbation("jpeg", 70), Perturbation("jpeg", 50),
        Perturbation("jpeg", 30), Perturbation("blur", 1.0), Perturbation("blur", 2.0),
        Perturbation("blur", 3.0), Perturbation("noise", 5.0), Perturbation("noise", 10.0),
        Perturbation("noise", 20.0), Perturbation("resize", 0.5), Perturbation("resize", 0.25),
        Perturbation("h264", 23), Perturbation("h264", 30)]


NAMES = ("jpeg:Q (Q an integer 1-100), blur:SIGMA (pixels, 0 < SIGMA <= 32), noise:SIGMA (0-255 "
         "units, 0 < SIGMA <= 255), resize:F (0 < F < 1), h264:CRF (an integer 0-51)")


@pytest.mark.parametrize("specs, message", [
    (["gamma:2"], f"--perturb 'gamma:2': unknown perturbation 'gamma'; pass one of {NAMES}, "
                  "e.g. --perturb jpeg:90,70 blur:1,2"),
    (["jpeg:101"], "--perturb 'jpeg:101': jpeg takes a JPEG quality, an integer from 1 to 100, "
                   "got 101; e.g. jpeg:90,70,50,30"),
    (["blur:0"], "--perturb 'blur:0': blur takes a Gaussian sigma in pixels, a number > 0 and "
                 "<= 32, got 0; e.g. blur:1,2,3"),
    (["noise:300"], "--perturb 'noise:300': noise takes a Gaussian sigma in 0-255 units, a "
                    "number > 0 and <= 255, got 300; e.g. noise:5,10,20"),
    (["resize:1.5"], "--perturb 'resize:1.5': resize takes a scale factor, a number > 0 and < 1, "
                     "got 1.5; e.g. resize:0.5,0.25"),
    (["h264:60"], "--perturb 'h264:60': h264 takes an H.264 CRF, an integer from 0 to 51, got "
                  "60; e.g. h264:23,30,40"),
    (["jpeg:7.5"], "--perturb 'jpeg:7.5': jpeg takes a JPEG quality, an integer from 1 to 100, "
                   "got 7.5; e.g. jpeg:90,70,50,30"),
    (["blur"], "--perturb 'blur': expected blur:S1,S2,... with each S a number > 0 and <= 32; "
               "e.g. blur:1,2,3"),
    (["noise:5,5"], "--perturb 'noise:5,5': noise severity 5 is listed twice; e.g. noise:5,10,20"),
    (["jpeg:90", "jpeg:70"], "--perturb: jpeg is given twice ('jpeg:90' and 'jpeg:70'); list all "
                             "its severities in one spec, e.g. jpeg:90,70,50,30"),
])
def test_a_bad_spec_is_one_line_naming_it(specs, message):
    with pytest.raises(PerturbationError) as error:
        parse_perturbations(specs)
    assert str(error.value) == message
    assert isinstance(error.value, ValueError)


@pytest.mark.parametrize("spec", ["gamma:2", "jpeg:0", "resize:1"])
def test_the_cli_exits_2_before_any_work_and_writes_nothing(spec, tmp_path, tiny_records,
                                                            tiny_model_path, capsys):
    fresh, existing = tmp_path / "fresh", tmp_path / "existing"
    existing.mkdir()
    for out in (fresh, existing):
        status = evaluate.main(["--model", str(tiny_model_path), "--records", str(tiny_records),
                                "--out", str(out), "--perturb", "blur:1", spec])
        err = capsys.readouterr().err.strip().splitlines()
        assert status == 2
        with pytest.raises(PerturbationError) as error:
            parse_perturbations(["blur:1", spec])
        expected = f"evaluate: error: {error.value}"
        assert err == [expected]
    assert not fresh.exists() and list(existing.iterdir()) == []


def test_h264_without_an_encoder_says_what_to_install(monkeypatch, tmp_path, tiny_records,
                                                      tiny_model_path, capsys):
    monkeypatch.setattr(perturb, "h264_encoder", lambda: None)
    out = tmp_path / "out"
    status = evaluate.main(["--model", str(tiny_model_path), "--records", str(tiny_records),
                            "--out", str(out), "--perturb", "h264:23,30"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and not out.exists()
    assert len(err) == 1 and err[0].startswith("evaluate: error: --perturb h264: cannot encode "
                                               f"H.264 here: this OpenCV ({cv2.__version__})")
    assert "pip install av" in err[0]


# ------------------------------------------------------------------------- the definitions


def test_jpeg_is_opencvs_encoder_at_that_quality():
    faces = _faces()
    for quality in (90, 30):
        out = perturb.apply(faces.astype(np.float32), Perturbation("jpeg", quality))
        params = [cv2.IMWRITE_JPEG_QUALITY, quality,
                  cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420]
        for face, got in zip(faces, out):
            bgr = cv2.cvtColor(face, cv2.COLOR_RGB2BGR)
            ok, blob = cv2.imencode(".jpg", bgr, params)
            assert ok
            by_hand = cv2.cvtColor(cv2.imdecode(blob, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            np.testing.assert_array_equal(got, by_hand.astype(np.float32))
    # Channel order: PIL's JPEG of the RGB image at the same quality decodes to about the same.
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(faces[0]).save(buffer, format="JPEG", quality=50, subsampling=2)
    pil = np.asarray(Image.open(buffer).convert("RGB"), np.float32)
    ours = perturb.apply(faces[:1], Perturbation("jpeg", 50))[0]
    assert np.abs(ours - pil).mean() < 1.5
    assert np.abs(ours[..., ::-1] - pil).mean() > 20  # a swapped order would show
    low, high = (np.abs(perturb.apply(faces, Perturbation("jpeg", q)) - faces).mean()
                 for q in (10, 95))
    assert low > high


@pytest.mark.parametrize("sigma", [1.0, 1.5, 3.0])
def test_blur_is_a_gaussian_of_sigma_pixels(sigma):
    from scipy.ndimage import gaussian_filter

    faces = _faces()
    out = perturb.apply(faces, Perturbation("blur", sigma))
    # scipy's radius int(3 sigma + 0.5) equals ceil(3 sigma) here; 'mirror' is reflect-101.
    for face, got in zip(faces, out):
        reference = gaussian_filter(face.astype(np.float64), sigma=(sigma, sigma, 0),
                                    mode="mirror", truncate=3.0)
        reference = np.clip(np.rint(reference), 0, 255)
        assert np.abs(got - reference).max() <= 1.0
        assert np.mean(got != reference) < 0.01


def _bilinear(image: np.ndarray, size: int) -> np.ndarray:
    """Half-pixel-centre bilinear resize, edge clamped (NumPy, separable)."""

    def axis(n_in: int, n_out: int):
        x = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        lo = np.floor(x).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, x - lo

    lo, hi, w = axis(image.shape[0], size)
    rows = image[lo] * (1 - w)[:, None, None] + image[hi] * w[:, None, None]
    lo, hi, w = axis(image.shape[1], size)
    return rows[:, lo] * (1 - w)[None, :, None] + rows[:, hi] * w[None, :, None]


@pytest.mark.parametrize("factor, small", [(0.5, 16), (0.25, 8), (0.3, 10)])
def test_resize_goes_down_and_back_up_bilinear(factor, small):
    faces = _faces(size=32)
    assert math.floor(factor * 32 + 0.5) == small
    out = perturb.apply(faces, Perturbation("resize", factor))
    for face, got in zip(faces, out):
        down = _bilinear(face.astype(np.float64), small)
        reference = np.clip(np.rint(_bilinear(down, 32)), 0, 255)
        assert np.abs(got - reference).max() <= 1.0
        assert np.mean(got != reference) < 0.01


def test_noise_is_seeded_per_frame_as_documented():
    faces = np.full((4, 16, 16, 3), 128, np.uint8)
    keys = _keys(4)
    out = perturb.apply(faces, Perturbation("noise", 10.0), keys=keys, seed=5)
    # The documented seed, by hand.
    for key, got in zip(keys, out):
        text = "\x1f".join(str(part) for part in (5, *key))
        entropy = int.from_bytes(hashlib.sha256(text.encode()).digest()[:16], "little")
        z = np.random.Generator(np.random.PCG64(entropy)).standard_normal((16, 16, 3))
        np.testing.assert_array_equal(got, np.clip(np.rint(128 + 10 * z), 0, 255))
    # Independent of the batch: one by one, and in reverse order, the same pixels.
    singles = np.concatenate([perturb.apply(faces[i:i + 1], Perturbation("noise", 10.0),
                                            keys=keys[i:i + 1], seed=5) for i in range(4)])
    np.testing.assert_array_equal(out, singles)
    reverse = perturb.apply(faces[::-1], Perturbation("noise", 10.0), keys=keys[::-1], seed=5)
    np.testing.assert_array_equal(out, reverse[::-1])
    # Another base seed or frame gives other noise; the same z for every sigma.
    other = perturb.apply(faces, Perturbation("noise", 10.0), keys=keys, seed=6)
    assert np.mean(other != out) > 0.9 and np.mean(out[0] != out[1]) > 0.9
    half = perturb.apply(faces, Perturbation("noise", 5.0), keys=keys, seed=5)
    assert np.abs((out - 128) - 2 * (half - 128)).max() <= 1.5
    residual = out - 128.0
    assert abs(residual.mean()) < 0.5 and abs(residual.std() - 10.0) < 0.5
    with pytest.raises(ValueError, match="one frame key per image"):
        perturb.apply(faces, Perturbation("noise", 10.0))


def test_outputs_are_8_bit_pixels_as_float32():
    faces = _faces().astype(np.float32) + 0.3
    for spec in ("jpeg:70", "blur:2", "noise:20", "resize:0.25"):
        (p,) = parse_perturbations([spec])
        out = perturb.apply(faces, p, keys=_keys(len(faces)))
        assert out.dtype == np.float32 and out.shape == faces.shape
        assert (out == np.rint(out)).all() and out.min() >= 0 and out.max() <= 255


def _h264_by_hand(frames: np.ndarray, crf: int) -> np.ndarray:
    import av

    buffer = io.BytesIO()
    container = av.open(buffer, mode="w", format="mp4")
    stream = container.add_stream("libx264", rate=25)
    stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
    stream.options = {"crf": str(crf), "preset": "medium", "threads": "1"}
    for frame in frames:
        container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
    container.mux(stream.encode())
    container.close()
    buffer.seek(0)
    container = av.open(buffer)
    decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    container.close()
    return np.stack(decoded)


def test_h264_round_trips_a_video_through_libx264():
    pytest.importorskip("av")
    assert perturb.h264_encoder().startswith("PyAV ")
    frames = _faces(count=5, size=32)
    out = perturb.apply(frames, Perturbation("h264", 23))
    np.testing.assert_array_equal(out, _h264_by_hand(frames, 23).astype(np.float32))
    np.testing.assert_array_equal(out, perturb.apply(frames, Perturbation("h264", 23)))
    # yuv420p halves the chroma resolution, so even CRF 10 is not lossless on these textures.
    errors = [np.abs(perturb.apply(frames, Perturbation("h264", crf)) - frames).mean()
              for crf in (10, 45)]
    assert errors[0] < 6 and errors[1] > 1.5 * errors[0]
    odd = perturb.apply(_faces(count=2, size=31), Perturbation("h264", 23))
    assert odd.shape == (2, 31, 31, 3)


def test_by_video_regroups_batches_into_videos(caplog):
    def batch(keys):
        meta = {"dataset": np.array([k[0].encode() for k in keys], object),
                "method": np.array([k[1].encode() for k in keys], object),
                "video_id": np.array([k[2].encode() for k in keys], object),
                "frame_index": np.array([k[3] for k in keys], np.int64)}
        return np.zeros((len(keys), 2, 2, 3)), np.zeros(len(keys)), meta

    a = [("d", "m", "a", i) for i in range(3)]
    b = [("d", "m", "b", i) for i in range(2)]
    videos = list(robustness.by_video([batch(a[:2]), batch(a[2:] + b[:1]), batch(b[1:])]))
    assert [robustness.frame_keys(meta) for _, _, meta in videos] == [a, b]
    with caplog.at_level("WARNING"):
        videos = list(robustness.by_video([batch(a[:1] + b[:1]), batch(a[1:])]))
    assert len(videos) == 3 and "not contiguous" in caplog.text


# -------------------------------------------------------------------------------- the sweep


@pytest.fixture(scope="module")
def sweep_runs(tmp_path_factory, tiny_records, tiny_model_path):
    """The same sweep twice (determinism), with the default (val-chosen) threshold."""
    outs = []
    for run in ("first", "second"):
        out = tmp_path_factory.mktemp(f"sweep_{run}")
        status = evaluate.main(["--model", str(tiny_model_path), "--records", str(tiny_records),
                                "--name", "tiny", "--out", str(out), *BOOTSTRAP,
                                "--perturb", *SWEEP])
        assert status == 0
        outs.append(out)
    return outs


def _threshold(metrics: dict) -> float:
    value = metrics["threshold"]
    return value["value"] if isinstance(value, dict) else value


def test_the_table_has_a_clean_row_equal_to_the_plain_evaluation(sweep_runs):
    out = sweep_runs[0]
    table = pd.read_csv(out / robustness.ROBUSTNESS_FILE)
    assert list(table.columns) == list(robustness.COLUMNS)
    assert list(table["perturbation"]) == ["clean", "jpeg", "blur", "noise", "noise", "resize"]
    assert table["severity"].isna().tolist() == [True] + [False] * 5
    assert table["severity"].tolist()[1:] == [50, 2, 10, 20, 0.5]
    metrics = json.loads((out / "metrics.json").read_text())
    plain = metrics["records"]["tiny"]
    clean = table.iloc[0]
    assert clean["records"] == "tiny" and clean["n_frames"] == plain["frame"]["n"]
    for column, value in [("frame_auc", plain["frame"]["auc"]), ("acc", plain["frame"]["acc"]),
                          ("video_auc", plain["video"]["auc"]),
                          ("video_acc", plain["video"]["acc"]),
                          ("frame_auc_ci95_low", plain["frame"]["auc_ci95"][0]),
                          ("frame_auc_ci95_high", plain["frame"]["auc_ci95"][1]),
                          ("video_auc_ci95_low", plain["video"]["auc_ci95"][0]),
                          ("video_auc_ci95_high", plain["video"]["auc_ci95"][1]),
                          ("threshold", _threshold(metrics))]:
        assert clean[column] == pytest.approx(value, abs=1e-12), column
    assert (table["threshold"] == _threshold(metrics)).all()
    assert (table["n_frames"] == plain["frame"]["n"]).all()
    assert metrics["robustness"]["perturb"] == SWEEP
    assert metrics["robustness"]["encoders"]["jpeg"] == f"OpenCV {cv2.__version__}, chroma 4:2:0"
    assert (out / robustness.ROBUSTNESS_PLOT).stat().st_size > 10_000


def test_two_runs_write_identical_tables(sweep_runs):
    first, second = (out / robustness.ROBUSTNESS_FILE for out in sweep_runs)
    assert first.read_bytes() == second.read_bytes()


def _hand_perturbed(images: np.ndarray, table: pd.DataFrame, spec: str) -> np.ndarray:
    """The sweep's perturbations written out here with OpenCV/NumPy."""
    name, value = spec.split(":")
    value = float(value)
    out = []
    for image, row in zip(images, table.itertuples()):
        if name == "blur":
            side = 2 * math.ceil(3 * value) + 1
            result = cv2.GaussianBlur(image, (side, side), value, sigmaY=value,
                                      borderType=cv2.BORDER_REFLECT_101)
        elif name == "noise":
            text = "\x1f".join(map(str, (0, row.dataset, row.method, row.video_id,
                                         row.frame_index)))
            entropy = int.from_bytes(hashlib.sha256(text.encode()).digest()[:16], "little")
            rng = np.random.Generator(np.random.PCG64(entropy))
            result = image + value * rng.standard_normal(image.shape)
        out.append(np.clip(np.rint(result), 0, 255))
    return np.stack(out).astype(np.float32)


def _read_split(records_dir, split="test"):
    import tensorflow as tf

    from mclcr_keras.data import schema

    rows, images = [], []
    for path in sorted(tf.io.gfile.glob(os.path.join(str(records_dir), split, "*.tfrecord"))):
        for record in tf.data.TFRecordDataset(path):
            feats = schema.parse_example(record)
            rows.append({key: (feats[key].numpy().decode() if feats[key].dtype == tf.string
                               else int(feats[key]))
                         for key in ("dataset", "method", "video_id", "frame_index", "label")})
            images.append(schema.decode_image(feats["image"]).numpy().astype(np.float32))
    return pd.DataFrame(rows), np.stack(images)


@pytest.mark.parametrize("spec, row", [("blur:2", 2), ("noise:20", 4)])
def test_a_perturbed_row_equals_scoring_perturbed_crops_by_hand(sweep_runs, tiny_records,
                                                                 tiny_model_path, spec, row):
    from mclcr_keras.evaluation.protocol import evaluate_predictions
    from mclcr_keras.inference.scorer import load_scorer

    out = sweep_runs[0]
    metrics = json.loads((out / "metrics.json").read_text())
    frames, images = _read_split(tiny_records)
    probability, _ = load_scorer(tiny_model_path).predict(
        _hand_perturbed(images, frames, spec), batch_size=5)
    frames["probability"] = probability.astype(np.float64)
    result = evaluate_predictions(frames, _threshold(metrics), bootstrap=200, seed=3)
    got = pd.read_csv(out / robustness.ROBUSTNESS_FILE).iloc[row]
    assert f"{got['perturbation']}:{got['severity']:g}" == spec
    expected = robustness.result_row("tiny", parse_perturbations([spec])[0], result,
                                     _threshold(metrics))
    for column in ("frame_auc", "frame_auc_ci95_low", "frame_auc_ci95_high", "video_auc",
                   "video_auc_ci95_low", "video_auc_ci95_high", "acc", "video_acc"):
        assert got[column] == pytest.approx(expected[column], abs=1e-6), column
    assert got["n_frames"] == len(frames)


def test_h264_rows_equal_each_video_encoded_by_hand(tiny_records, tiny_model_path):
    pytest.importorskip("av")
    from mclcr_keras.evaluation.protocol import evaluate_predictions
    from mclcr_keras.evaluation.report import predict_records
    from mclcr_keras.inference.scorer import load_scorer

    scorer = load_scorer(tiny_model_path)
    frames, images = _read_split(tiny_records)
    perturbed = np.empty_like(images)
    for _, group in frames.groupby(["dataset", "method", "video_id"]):
        order = group.sort_values("frame_index").index.to_numpy()
        perturbed[order] = _h264_by_hand(images[order].astype(np.uint8), 30)
    frames["probability"] = scorer.predict(perturbed)[0].astype(np.float64)
    by_hand = evaluate_predictions(frames, 0.5, bootstrap=0)
    table = predict_records(scorer, tiny_records, "test", "tiny", batch_size=3,
                            transform=robustness.perturbed(Perturbation("h264", 30)))
    swept = evaluate_predictions(table, 0.5, bootstrap=0)
    assert swept["frame"]["auc"] == pytest.approx(by_hand["frame"]["auc"], abs=1e-6)
    assert swept["video"]["auc"] == pytest.approx(by_hand["video"]["auc"], abs=1e-6)
    merged = table.merge(frames, on=["dataset", "method", "video_id", "frame_index"])
    np.testing.assert_allclose(merged["probability_x"], merged["probability_y"], atol=1e-6)


def test_the_plot_draws_a_table_read_back(sweep_runs, tmp_path):
    from mclcr_keras.viz import robustness_plot

    table = pd.read_csv(sweep_runs[0] / robustness.ROBUSTNESS_FILE)
    path = robustness_plot(table, tmp_path / "plot.png", reversed_axes=("jpeg",))
    assert path.stat().st_size > 10_000
    with pytest.raises(ValueError, match="at least one perturbed row"):
        robustness_plot(table[table["perturbation"] == "clean"], tmp_path / "none.png")
