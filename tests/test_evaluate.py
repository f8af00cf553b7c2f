"""python -m mclcr_keras.evaluate (`mclcr_keras.evaluation`) on tiny records written with the
schema and the shared tiny MC-LCR (`tiny_model_path`, its logit bias centred on these records).

Every number in metrics.json is recomputed here from predictions.csv with scikit-learn, NumPy and
pandas (the bootstrap intervals from the same video draws, `video_resample_counts`, with a
pairwise AUC on the explicitly resampled frames; ACC at the threshold metrics.json reports, which
tests/test_val_threshold.py recomputes from val_predictions.csv), and predictions.csv is checked
against the model's own predictions on the images read back from the records.
"""

import contextlib
import io
import json
import os

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score, roc_curve

from mclcr_keras import evaluate
from mclcr_keras.data import schema
from mclcr_keras.metrics import video_resample_counts

SIZE = 64
FRAMES = 3
# dataset -> list of (method, label, video ids); fake ids repeat across methods on purpose.
FFPP = [
    ("original", 0, ["000", "001", "002"]),
    ("Deepfakes", 1, ["000_001", "001_000"]),
    ("FaceSwap", 1, ["000_001", "002_000"]),
]
CELEBDF = [
    ("Celeb-real", 0, ["id0_0000", "id1_0001"]),
    ("YouTube-real", 0, ["00003"]),
    ("Celeb-synthesis", 1, ["id0_id1_0000", "id1_id0_0001", "id2_id0_0002"]),
]
KEY = ["dataset", "method", "video_id", "frame_index"]
# predictions.csv, as docs/evaluation.md lists it.
PREDICTIONS_CSV_COLUMNS = ["records", "dataset", "method", "video_id", "frame_index", "label",
                           "probability", "logit"]


def _face(rng: np.random.Generator, label: int) -> np.ndarray:
    """Smooth random colour field; fakes get extra high-frequency noise (a random model then
    scores the frames differently, so misaligned rows would show)."""
    coarse = rng.uniform(40, 215, (8, 8, 3)).astype(np.float32)
    image = tf.image.resize(coarse[None], (SIZE, SIZE), method="bicubic")[0].numpy()
    if label:
        image += rng.normal(0, 25, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_records(root, dataset: str, layout, split: str = "test", frames: int = FRAMES,
                  seed: int = 0, real_shards: int = 2) -> str:
    """Writes <root>/<split>/{real,fake}-*.tfrecord; real frames spread over `real_shards`."""
    rng = np.random.default_rng(seed)
    examples = {"real": [], "fake": []}
    for method, label, videos in layout:
        for video_id in videos:
            for frame_index in range(0, frames * 10, 10):
                png = schema.encode_image(_face(rng, label))
                examples[schema.LABEL_NAMES[label]].append(
                    schema.encode_example(png, label, video_id, method, dataset, frame_index)
                )
    split_dir = os.path.join(root, split)
    os.makedirs(split_dir, exist_ok=True)
    for name, blobs in examples.items():
        count = real_shards if name == "real" else 1
        for index in range(count):
            path = os.path.join(split_dir, schema.shard_name(name, index, count))
            with tf.io.TFRecordWriter(path) as writer:
                for blob in blobs[index::count]:
                    writer.write(blob)
    return str(root)


def read_records(root, split: str = "test") -> tuple[pd.DataFrame, np.ndarray]:
    """Metadata table and the decoded pixels of every record, read without the pipeline."""
    rows, images = [], []
    for path in sorted(tf.io.gfile.glob(os.path.join(root, split, "*.tfrecord"))):
        for record in tf.data.TFRecordDataset(path):
            feats = schema.parse_example(record)
            rows.append({
                "dataset": feats["dataset"].numpy().decode(),
                "method": feats["method"].numpy().decode(),
                "video_id": feats["video_id"].numpy().decode(),
                "frame_index": int(feats["frame_index"]),
                "label": int(feats["label"]),
            })
            images.append(schema.decode_image(feats["image"]).numpy())
    return pd.DataFrame(rows), np.stack(images).astype(np.float32)


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    root = tmp_path_factory.mktemp("records")
    ffpp = write_records(root / "ffpp", "ffpp", FFPP, seed=1)
    # The val split the threshold is chosen on (tests/test_val_threshold.py); Celeb-DF has none.
    write_records(root / "ffpp", "ffpp", FFPP, split="val", frames=2, seed=2)
    celebdf = write_records(root / "celebdf", "celebdf", CELEBDF, frames=2, seed=3, real_shards=1)
    return {"ffpp": ffpp, "celebdf": celebdf}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, records, tiny_model_path):
    """The shared random 64 px MC-LCR with its logit bias centred on the test frames, so that
    both classes of decision occur and ACC is informative."""
    import keras

    import mclcr_keras.models.mclcr  # noqa: F401  (registers the custom classes)

    model = keras.models.load_model(tiny_model_path, compile=False)
    _, images = read_records(records["ffpp"])
    logits = model.predict(images, verbose=0)["logit"].ravel()
    layer = model.get_layer("logit")
    layer.bias.assign(layer.bias.numpy() - np.median(logits))
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    model.save(path)
    return str(path), model


@pytest.fixture(scope="module")
def model_path(tiny_model):
    return tiny_model[0]


@pytest.fixture(scope="module")
def single_run(tmp_path_factory, model_path, records):
    out = tmp_path_factory.mktemp("eval_single")
    status = evaluate.main(["--model", model_path, "--records", records["ffpp"], "--out",
                            str(out), "--batch-size", "4", "--bootstrap", "400",
                            "--bootstrap-seed", "7"])
    assert status == 0
    return out


@pytest.fixture(scope="module")
def cross_run(tmp_path_factory, model_path, records):
    out = tmp_path_factory.mktemp("eval_cross")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = evaluate.main(["--model", model_path, "--records", records["ffpp"], "--records",
                                records["celebdf"], "--name", "FF++", "Celeb-DF", "--out",
                                str(out), "--split", "test"])
    assert status == 0
    return out, printed.getvalue()


def _eer(labels, scores) -> float:
    """FPR where FPR = FNR, by interpolation along the ROC (independent of mclcr_keras.metrics)."""
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    gap = fpr - (1.0 - tpr)
    return float(np.interp(0.0, gap, fpr))


@pytest.mark.slow
def test_predictions_csv_matches_the_model_on_the_records(single_run, tiny_model, records):
    predictions = pd.read_csv(single_run / "predictions.csv", dtype={"video_id": str})
    assert list(predictions.columns) == PREDICTIONS_CSV_COLUMNS
    expected_frames = sum(len(videos) for _, _, videos in FFPP) * FRAMES
    assert len(predictions) == expected_frames  # the test split only, every frame once
    assert not predictions.duplicated(KEY).any()
    assert set(predictions["records"]) == {"ffpp"}

    meta, images = read_records(records["ffpp"])
    model = tiny_model[1]  # the very model saved to the .keras file
    outputs = model.predict(images, verbose=0)
    meta["probability_ref"] = outputs["probability"].ravel()
    meta["logit_ref"] = outputs["logit"].ravel()
    merged = predictions.merge(meta, on=KEY, validate="one_to_one", suffixes=("", "_meta"))
    assert len(merged) == expected_frames
    np.testing.assert_array_equal(merged["label"], merged["label_meta"])
    np.testing.assert_allclose(merged["probability"], merged["probability_ref"], atol=1e-5)
    np.testing.assert_allclose(merged["logit"], merged["logit_ref"], atol=1e-5)
    # The centred bias puts frames on both sides of 0.5.
    assert 0 < (predictions["probability"] > 0.5).sum() < len(predictions)


@pytest.mark.slow
def test_frame_metrics_match_scikit_learn(single_run):
    predictions = pd.read_csv(single_run / "predictions.csv", dtype={"video_id": str})
    report = json.loads((single_run / "metrics.json").read_text())
    assert report["split"] == "test" and report["image_size"] == SIZE
    assert report["model_format"] == "keras"
    frame = report["records"]["ffpp"]["frame"]
    y, p = predictions["label"].to_numpy(), predictions["probability"].to_numpy()
    assert frame["n"] == len(y) and frame["n_fake"] == int(y.sum())
    assert frame["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert frame["ap"] == pytest.approx(average_precision_score(y, p), abs=1e-12)
    threshold = report["threshold"]["value"]
    assert frame["acc"] == pytest.approx(np.mean((p > threshold) == y), abs=1e-12)
    assert frame["acc_at_0.5"] == pytest.approx(np.mean((p > 0.5) == y), abs=1e-12)
    assert frame["eer"] == pytest.approx(_eer(y, p), abs=1e-9)


@pytest.mark.slow
def test_video_metrics_match_a_pandas_groupby(single_run):
    predictions = pd.read_csv(single_run / "predictions.csv", dtype={"video_id": str})
    report = json.loads((single_run / "metrics.json").read_text())
    videos = predictions.groupby(["dataset", "method", "video_id"]).agg(
        label=("label", "first"), probability=("probability", "mean"), frames=("label", "size")
    )
    assert len(videos) == 7  # 3 real + 2 Deepfakes + 2 FaceSwap ("000_001" exists in both)
    assert (videos["frames"] == FRAMES).all()
    video = report["records"]["ffpp"]["video"]
    assert video["n_videos"] == 7 and video["n_fake"] == 4
    assert video["auc"] == pytest.approx(roc_auc_score(videos["label"], videos["probability"]))
    accuracy = np.mean((videos["probability"] > report["threshold"]["value"]) == videos["label"])
    assert video["acc"] == pytest.approx(accuracy)
    accuracy = np.mean((videos["probability"] > 0.5) == videos["label"])
    assert video["acc_at_0.5"] == pytest.approx(accuracy)


@pytest.mark.slow
def test_per_method_auc_against_the_real_frames(single_run):
    predictions = pd.read_csv(single_run / "predictions.csv", dtype={"video_id": str})
    per_method = json.loads((single_run / "metrics.json").read_text())["records"]["ffpp"][
        "per_method"
    ]
    assert sorted(per_method) == ["Deepfakes", "FaceSwap"]
    real = predictions[predictions["label"] == 0]
    for method, entry in per_method.items():
        subset = pd.concat([real, predictions[predictions["method"] == method]])
        assert entry["frame_auc"] == pytest.approx(
            roc_auc_score(subset["label"], subset["probability"])
        )
        assert entry["n_frames"] == 2 * FRAMES and entry["n_videos"] == 2
        videos = subset.groupby(["method", "video_id"]).agg(
            label=("label", "first"), probability=("probability", "mean")
        )
        assert entry["video_auc"] == pytest.approx(
            roc_auc_score(videos["label"], videos["probability"])
        )


@pytest.mark.slow
def test_roc_png_is_written(single_run):
    png = (single_run / "roc.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert not (single_run / "cross_dataset.csv").exists()  # one record set: no cross table


@pytest.mark.slow
def test_two_record_sets_give_a_cross_dataset_table(cross_run):
    cross_run, printed = cross_run
    predictions = pd.read_csv(cross_run / "predictions.csv", dtype={"video_id": str})
    assert predictions["records"].value_counts().to_dict() == {"FF++": 21, "Celeb-DF": 12}
    report = json.loads((cross_run / "metrics.json").read_text())
    assert list(report["records"]) == ["FF++", "Celeb-DF"]
    table = pd.read_csv(cross_run / "cross_dataset.csv", index_col="name")
    assert list(table.index) == ["FF++", "Celeb-DF"]
    for name, group in predictions.groupby("records"):
        y, p = group["label"], group["probability"]
        assert table.loc[name, "frame_auc"] == pytest.approx(roc_auc_score(y, p))
        assert table.loc[name, "ap"] == pytest.approx(average_precision_score(y, p))
        videos = group.groupby(["dataset", "method", "video_id"]).agg(
            label=("label", "first"), probability=("probability", "mean")
        )
        assert table.loc[name, "video_auc"] == pytest.approx(
            roc_auc_score(videos["label"], videos["probability"])
        )
        assert table.loc[name, "n_videos"] == len(videos)
        assert report["cross_dataset"][name]["frame_auc"] == pytest.approx(
            table.loc[name, "frame_auc"]
        )
    # Celeb-DF's two real folders are both negatives for the one fake method.
    celeb = report["records"]["Celeb-DF"]
    assert list(celeb["per_method"]) == ["Celeb-synthesis"]
    assert celeb["frame"]["n_real"] == 6
    assert "FF++" in printed and "Celeb-DF" in printed and "frame_auc" in printed
    # The 95% intervals (default 1000 resamples, seed 0) in metrics.json, the CSV and the print.
    assert report["bootstrap"]["resamples"] == 1000 and report["bootstrap"]["seed"] == 0
    for name, group in predictions.groupby("records"):
        reference = _bootstrap_reference(group, 1000, 0)
        for level in ("frame", "video"):
            interval = report["records"][name][level]["auc_ci95"]
            np.testing.assert_allclose(interval, reference[level], atol=1e-12)
            assert table.loc[name, f"{level}_auc_ci95_low"] == pytest.approx(interval[0])
            assert table.loc[name, f"{level}_auc_ci95_high"] == pytest.approx(interval[1])
            assert f"[{interval[0]:.4f}, {interval[1]:.4f}]" in printed
        assert table.loc[name, "brier"] == pytest.approx(
            brier_score_loss(group["label"], group["probability"]))
        assert table.loc[name, "ece"] == pytest.approx(
            _histogram_ece(group["label"], group["probability"]))
    assert "frame_auc_ci95" in printed and "video_auc_ci95" in printed
    png = (cross_run / "reliability.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def _bootstrap_reference(group: pd.DataFrame, resamples: int, seed: int) -> dict:
    """Percentile intervals recomputed from predictions.csv: the videos in order of first
    appearance, the replicates' draw counts, and a pairwise AUC on the repeated rows."""
    code, _ = pd.factorize(group["dataset"] + "/" + group["method"] + "/" + group["video_id"])
    y, p = group["label"].to_numpy(), group["probability"].to_numpy()
    videos = pd.DataFrame({"code": code, "y": y, "p": p}).groupby("code").agg(
        y=("y", "first"), p=("p", "mean"))
    counts = video_resample_counts(videos["y"].to_numpy(), resamples, seed)
    frame, video = [], []
    for row in counts:
        frame.append(_pairwise_auc(np.repeat(y, row[code]), np.repeat(p, row[code])))
        video.append(_pairwise_auc(np.repeat(videos["y"], row), np.repeat(videos["p"], row)))
    return {"frame": np.percentile(frame, [2.5, 97.5]), "video": np.percentile(video, [2.5, 97.5])}


def _pairwise_auc(y, p) -> float:
    """P(fake > real) + P(tie) / 2 over every real x fake pair (roc_auc_score, but 50x faster on
    these few rows; tests/test_intervals.py checks the replicates against roc_auc_score)."""
    y, p = np.asarray(y), np.asarray(p)
    fake, real = p[y == 1][:, None], p[y == 0][None, :]
    return float(np.mean((fake > real) + 0.5 * (fake == real)))


def _histogram_ece(y, p) -> float:
    fakes, _ = np.histogram(p, bins=15, range=(0, 1), weights=np.asarray(y, float))
    mass, _ = np.histogram(p, bins=15, range=(0, 1), weights=p)
    return float(np.abs(fakes - mass).sum() / len(p))


@pytest.mark.slow
def test_intervals_and_calibration_match_the_predictions(single_run):
    predictions = pd.read_csv(single_run / "predictions.csv", dtype={"video_id": str})
    report = json.loads((single_run / "metrics.json").read_text())
    assert report["bootstrap"] == {"resamples": 400, "seed": 7, "confidence": 0.95,
                                   "unit": "video", "stratified": True, "interval": "percentile"}
    assert report["calibration"] == {"ece_bins": 15}
    result = report["records"]["ffpp"]
    reference = _bootstrap_reference(predictions, 400, 7)
    for level in ("frame", "video"):
        np.testing.assert_allclose(result[level]["auc_ci95"], reference[level], atol=1e-12)
        low, high = result[level]["auc_ci95"]
        assert 0.0 <= low <= high <= 1.0
    y, p = predictions["label"].to_numpy(), predictions["probability"].to_numpy()
    assert result["frame"]["brier"] == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    assert result["frame"]["ece"] == pytest.approx(_histogram_ece(y, p), abs=1e-12)
    count, edges = np.histogram(p, bins=15, range=(0, 1))
    assert result["reliability"]["count"] == count.tolist()
    np.testing.assert_allclose(result["reliability"]["edges"], edges)
    png = (single_run / "reliability.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_without_bootstrap_the_table_and_json_say_so():
    """--bootstrap 0: evaluate_predictions gives None intervals (tests/test_metrics.py), JSON
    writes null, the cross-dataset table NaN bounds and the printed table "-"."""
    from mclcr_keras.evaluation import protocol, report

    rows = [("ffpp", m, f"{v}", 0, int(m != "original"), p)
            for m, v, p in [("original", 0, 0.2), ("original", 1, 0.6), ("Deepfakes", 2, 0.7),
                            ("Deepfakes", 3, 0.4)]]
    df = pd.DataFrame(rows, columns=KEY + ["label", "probability"])
    result = protocol.evaluate_predictions(df, bootstrap=0)
    assert report._json_ready(result)["frame"]["auc_ci95"] is None
    table = protocol.cross_dataset_table({"off": result, "on": protocol.evaluate_predictions(df)})
    assert table.loc["off", ["frame_auc_ci95_low", "video_auc_ci95_high"]].isna().all()
    lines = report.format_table(table).splitlines()
    off, on = (next(line for line in lines if line.startswith(name)) for name in ("off", "on"))
    assert off.split()[1:4] == ["0.7500", "-", "0.7500"]
    assert "[" in on and "-" not in on.split()[2]


@pytest.mark.parametrize(
    "case, message",
    [
        ("bootstrap", "evaluate: error: --bootstrap must be an integer >= 0 (0 turns it off), "
                      "got -5"),
        ("missing_model", "evaluate: error: model not found: "),
        ("missing_split", "evaluate: error: split directory not found: "),
        ("missing_records", "evaluate: error: records directory not found: "),
        ("names", "evaluate: error: got 2 --name for 1 --records"),
    ],
)
def test_errors_are_one_line(case, message, tmp_path, records, capsys):
    # Arguments, records and split are checked before the model is loaded: a file that is no
    # model would be reported as such ("could not load Keras model") if it were loaded first.
    model_path = str(tmp_path / "never_loaded.keras")
    (tmp_path / "never_loaded.keras").write_text("not a model")
    argv = {
        "bootstrap": ["--model", model_path, "--records", records["ffpp"], "--bootstrap", "-5"],
        "missing_model": ["--model", str(tmp_path / "nope.keras"), "--records", records["ffpp"]],
        "missing_split": ["--model", model_path, "--records", records["ffpp"], "--split", "train"],
        "missing_records": ["--model", model_path, "--records", str(tmp_path / "none")],
        "names": ["--model", model_path, "--records", records["ffpp"], "--name", "a", "b"],
    }[case]
    status = evaluate.main(argv + ["--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith(message), err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_a_directory_that_is_no_model_is_refused(tmp_path, records, capsys):
    status = evaluate.main(["--model", str(tmp_path), "--records", records["ffpp"],
                            "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert status == 2
    assert "without saved_model.pb" in err and len(err.strip().splitlines()) == 1


def test_a_corrupt_shard_is_a_runtime_failure(tmp_path, tiny_model_path, capsys):
    """Found while scoring (arguments were fine): one line and exit 1, no report."""
    root = write_records(tmp_path / "records", "ffpp", FFPP[:2], frames=1)
    shard = os.path.join(root, "test", schema.shard_name("fake", 0, 1))
    with open(shard, "r+b") as handle:  # damage the first record's data: its CRC fails
        handle.seek(20)
        handle.write(b"\x00" * 64)
    status = evaluate.main(["--model", str(tiny_model_path), "--records", root, "--out",
                            str(tmp_path / "out"), "--threshold", "0.5"])  # no val split
    err = capsys.readouterr().err
    assert status == 1, err
    assert err.startswith("evaluate: error: ") and len(err.strip().splitlines()) == 1, err
    assert "corrupt TFRecord shard" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "metrics.json").exists()
