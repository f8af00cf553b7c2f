"""The threshold `evaluate` chooses on the val split (`mclcr_keras.evaluation.val_threshold`).

The threshold is recomputed here from val_predictions.csv by a brute-force search over the
documented candidates (0, the midpoints of consecutive distinct val scores, 1; ties to the one
closest to 0.5, then the lower), never by calling `choose_threshold`, and ACC at it and at 0.5
from predictions.csv with NumPy. The record sets and the centred tiny model are those of
tests/test_evaluate.py (FF++ style with a val split, Celeb-DF style without).
"""

import contextlib
import io
import json
import os

import numpy as np
import pandas as pd
import pytest
import test_evaluate
from test_evaluate import FFPP, PREDICTIONS_CSV_COLUMNS, write_records

from mclcr_keras import evaluate

# The module fixtures of tests/test_evaluate.py, built again for this module.
records = test_evaluate.records
tiny_model = test_evaluate.tiny_model
model_path = test_evaluate.model_path

VAL_FRAMES = sum(len(videos) for _, _, videos in FFPP) * 2  # the val split of `records`


def run(out, *argv) -> str:
    """evaluate.main(argv + --out out, --bootstrap 0) in-process; returns what it printed."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = evaluate.main([*map(str, argv), "--out", str(out), "--bootstrap", "0"])
    assert status == 0
    return printed.getvalue()


def read(out, name="predictions.csv") -> pd.DataFrame:
    return pd.read_csv(out / name, dtype={"video_id": str})


def reference_threshold(labels, scores, criterion: str) -> float:
    """Brute force: every candidate, its FPR and FNR counted frame by frame."""
    y, p = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    distinct = sorted(set(p.tolist()))
    candidates = [0.0] + [(a + b) / 2 for a, b in zip(distinct, distinct[1:])] + [1.0]
    costs = []
    for t in candidates:
        fpr = sum(1 for yi, pi in zip(y, p) if yi == 0 and pi > t) / sum(y == 0)
        fnr = sum(1 for yi, pi in zip(y, p) if yi == 1 and pi <= t) / sum(y == 1)
        costs.append(abs(fpr - fnr) if criterion == "eer" else (fpr + fnr) / 2)
    best = min(costs)
    tied = [t for t, c in zip(candidates, costs) if c <= best + 1e-12]
    return min(tied, key=lambda t: (abs(t - 0.5), t))


def video_table(group: pd.DataFrame) -> pd.DataFrame:
    return group.groupby(["dataset", "method", "video_id"]).agg(
        label=("label", "first"), probability=("probability", "mean"))


def check_accuracies(result: dict, group: pd.DataFrame, threshold: float) -> None:
    """ACC at the threshold and at 0.5, frame and video, and the frame operating point."""
    y, p = group["label"].to_numpy(), group["probability"].to_numpy()
    frame = result["frame"]
    assert frame["acc"] == pytest.approx(np.mean((p > threshold) == y), abs=1e-12)
    assert frame["acc_at_0.5"] == pytest.approx(np.mean((p > 0.5) == y), abs=1e-12)
    fpr, fnr = np.mean(p[y == 0] > threshold), np.mean(p[y == 1] <= threshold)
    assert frame["fpr"] == pytest.approx(fpr) and frame["fnr"] == pytest.approx(fnr)
    assert frame["balanced_acc"] == pytest.approx(1 - (fpr + fnr) / 2)
    videos = video_table(group)
    vy, vp = videos["label"].to_numpy(), videos["probability"].to_numpy()
    assert result["video"]["acc"] == pytest.approx(np.mean((vp > threshold) == vy), abs=1e-12)
    assert result["video"]["acc_at_0.5"] == pytest.approx(np.mean((vp > 0.5) == vy), abs=1e-12)


@pytest.fixture(scope="module")
def default_run(tmp_path_factory, model_path, records):
    out = tmp_path_factory.mktemp("val_default")
    printed = run(out, "--model", model_path, "--records", records["ffpp"], "--batch-size", 8)
    return out, printed


@pytest.mark.slow
def test_the_default_threshold_is_the_eer_point_of_val_predictions(default_run, records):
    out, printed = default_run
    val = read(out, "val_predictions.csv")
    assert list(val.columns) == PREDICTIONS_CSV_COLUMNS
    assert len(val) == VAL_FRAMES and set(val["records"]) == {"ffpp"}
    assert val["label"].sum() == VAL_FRAMES * 4 // 7  # 4 of the 7 val videos are fake
    report = json.loads((out / "metrics.json").read_text())
    threshold = reference_threshold(val["label"], val["probability"], "eer")
    assert report["threshold"] == {
        "value": pytest.approx(threshold, abs=1e-15), "criterion": "eer", "split": "val",
        "records": "ffpp", "path": records["ffpp"], "n_frames": VAL_FRAMES,
        "n_real": VAL_FRAMES * 3 // 7, "n_fake": VAL_FRAMES * 4 // 7,
    }
    assert threshold != 0.5  # so that ACC at it and at 0.5 are two different numbers
    predictions = read(out)
    assert len(predictions) == 21  # the test split is what is evaluated
    check_accuracies(report["records"]["ffpp"], predictions, threshold)
    row = report["cross_dataset"]["ffpp"]
    assert row["acc"] == report["records"]["ffpp"]["frame"]["acc"]
    assert row["acc_at_0.5"] == report["records"]["ffpp"]["frame"]["acc_at_0.5"]
    described = f"threshold {threshold:.4f} (eer on the val split of ffpp, {VAL_FRAMES} frames)"
    assert described in printed
    assert "acc_at_0.5" in printed and str(out / "val_predictions.csv") in printed


@pytest.mark.slow
def test_balanced_accuracy_on_another_record_set_applies_to_every_set(tmp_path, model_path,
                                                                      records):
    """Celeb-DF first (no val split): --threshold-records names the set the threshold comes
    from; the one value is used for both record sets, at frame and video level."""
    run(tmp_path, "--model", model_path, "--records", records["celebdf"], records["ffpp"],
        "--threshold-records", records["ffpp"], "--threshold-criterion", "balanced_acc")
    val = read(tmp_path, "val_predictions.csv")
    assert len(val) == VAL_FRAMES and set(val["records"]) == {"ffpp"}
    threshold = reference_threshold(val["label"], val["probability"], "balanced_acc")
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert report["threshold"]["value"] == pytest.approx(threshold, abs=1e-15)
    assert report["threshold"]["criterion"] == "balanced_acc"
    assert (report["threshold"]["split"], report["threshold"]["records"]) == ("val", "ffpp")
    predictions = read(tmp_path)
    for name, group in predictions.groupby("records"):
        check_accuracies(report["records"][name], group, threshold)
    table = pd.read_csv(tmp_path / "cross_dataset.csv", index_col="name")
    for name in ("celebdf", "ffpp"):
        assert table.loc[name, "acc"] == pytest.approx(report["records"][name]["frame"]["acc"])
        assert table.loc[name, "acc_at_0.5"] == pytest.approx(
            report["records"][name]["frame"]["acc_at_0.5"])


@pytest.mark.slow
def test_a_fixed_threshold_scores_no_val_split(tmp_path, model_path, records):
    printed = run(tmp_path, "--model", model_path, "--records", records["ffpp"],
                  "--threshold", "0.3")
    assert not (tmp_path / "val_predictions.csv").exists()
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert report["threshold"] == {"value": 0.3, "criterion": "fixed", "split": None,
                                   "records": None, "path": None, "n_frames": None,
                                   "n_real": None, "n_fake": None}
    check_accuracies(report["records"]["ffpp"], read(tmp_path), 0.3)
    assert "threshold 0.3000 (fixed by --threshold)" in printed
    assert "val_predictions.csv" not in printed


@pytest.mark.slow
def test_evaluating_val_chooses_on_the_same_frames(tmp_path, model_path, records,
                                                   caplog):
    run(tmp_path, "--model", model_path, "--records", records["ffpp"], "--split", "val")
    predictions, val = read(tmp_path), read(tmp_path, "val_predictions.csv")
    pd.testing.assert_frame_equal(predictions, val)
    report = json.loads((tmp_path / "metrics.json").read_text())
    threshold = reference_threshold(val["label"], val["probability"], "eer")
    assert report["threshold"]["value"] == pytest.approx(threshold, abs=1e-15)
    check_accuracies(report["records"]["ffpp"], predictions, threshold)
    assert "chosen on the evaluated frames themselves" in caplog.text


@pytest.mark.parametrize("case", ["no_val", "one_class", "other_no_val"])
def test_a_missing_val_split_is_one_line_before_the_model_loads(case, tmp_path, records,
                                                                capsys):
    # A file that is no model: loading it would be another error, so the check comes first.
    model = tmp_path / "never_loaded.keras"
    model.write_text("not a model")
    one_class = write_records(tmp_path / "one_class", "ffpp", FFPP, frames=1)
    write_records(one_class, "ffpp", FFPP[:1], split="val", frames=1)  # real frames only
    argv, message = {
        "no_val": (["--records", records["celebdf"]],
                   f"no val split in {records['celebdf']} to choose the threshold on"),
        "one_class": (["--records", one_class],
                      f"the val split of {one_class} has no fake frames to choose the threshold "
                      "on"),
        "other_no_val": (["--records", records["ffpp"], "--threshold-records",
                          records["celebdf"]],
                         f"no val split in {records['celebdf']} to choose the threshold on"),
    }[case]
    out = tmp_path / "out"
    status = evaluate.main(["--model", str(model), *argv, "--out", str(out)])
    err = capsys.readouterr().err
    assert status == 2
    assert err == (f"evaluate: error: {message}: pass --threshold-records DIR (a record set with "
                   "a val split) or --threshold 0.5\n")
    assert not out.exists() or not os.listdir(out)


@pytest.mark.parametrize("extra, message", [
    (["--threshold-criterion", "youden"],
     "--threshold-criterion must be one of eer, balanced_acc, got 'youden'"),
    (["--threshold", "0.5", "--threshold-records", "{ffpp}"],
     "--threshold-records chooses the threshold on its val split: leave out the fixed "
     "--threshold"),
    (["--threshold-records", "{missing}"], "--threshold-records directory not found: "),
])
def test_bad_threshold_options_are_one_line(extra, message, tmp_path, records,
                                            capsys):
    model = tmp_path / "never_loaded.keras"
    model.write_text("not a model")
    extra = [e.format(ffpp=records["ffpp"], missing=tmp_path / "none") for e in extra]
    status = evaluate.main(["--model", str(model), "--records", records["ffpp"], *extra,
                            "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith(f"evaluate: error: {message}") and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out").exists()
