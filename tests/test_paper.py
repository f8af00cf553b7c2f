"""The paper's Tables 3-6 beside a run (`mclcr_keras.evaluation.paper`, ``evaluate
--compare-paper``): the shipped table against ../shared/paper and the paper's text, the rules
that match a record set's dataset.json and the model's variant to paper rows, the run values,
and the command's output and one-line errors."""

import json
import re
import shutil
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from mclcr_keras.errors import UsageError
from mclcr_keras.evaluation import paper
from mclcr_keras.evaluation.provenance import stored_config
from mclcr_keras.models.config import VARIANTS

SHARED_PAPER = Path(__file__).resolve().parents[2] / "shared" / "paper"
PACKAGE_COPY = Path(paper.__file__).with_name(paper.PAPER_FILE)
FOUR = "Deepfakes,Face2Face,FaceSwap,NeuralTextures"
# Read off the paper's text (Tables 3-6 of mclcr_wang2022.txt), independently of the CSV.
FROM_THE_TEXT = [
    (3, "FF++ c40 Deepfakes", "Xception", "frame_acc", 95.13),
    (3, "FF++ c40 NeuralTextures", "SPSL", "frame_auc", 80.49),
    (3, "FF++ c40 Face2Face", "MC-LCR", "frame_acc", 91.08),
    (3, "FF++ c40 NeuralTextures", "MC-LCR", "frame_auc", 87.39),
    (4, "FF++ (4 methods)", "MC-LCR", "frame_auc", 99.84),   # FF++ (DeepFakes) column
    (4, "FF++ (4 methods)", "SPSL", "frame_auc", 76.88),     # Celeb-DF column
    (5, "FF++ c23 (4 methods)", "mclcr", "frame_auc", 99.62),
    (5, "FF++ c40 (4 methods)", "no_papda", "frame_acc", 86.05),
    (5, "FF++ c40 (4 methods)", "baseline", "frame_auc", 89.38),
    (6, "FF++ (4 methods)", "no_ssrb", "frame_auc", 65.41),
    (6, "FF++ (4 methods)", "mclcr", "frame_auc", 71.61),
]


def _rows(**where):
    return [r for r in paper.paper_rows() if all(r[k] == v for k, v in where.items())]


def write_dataset_json(root: Path, source: str, compression: str = "c23",
                       methods: str = FOUR) -> Path:
    """A record set root holding only a dataset.json, as build_records writes its arguments."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset.json").write_text(json.dumps(
        {"schema_version": 1, "arguments": {"source": source, "compression": compression,
                                            "methods": methods, "frames": 30, "size": 256}}))
    return root


def fake_keras(path: Path, variant: str | None) -> Path:
    """A .keras-shaped zip whose config.json names a variant (all `stored_config` reads)."""
    config = {"class_name": "MCLCR", "config": {"config": {"variant": variant}, "name": "m"}}
    if variant is None:
        config = {"class_name": "Functional", "config": {"layers": []}}
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(config))
    return path


# ------------------------------------------------------------------------------ the table


def test_the_shipped_table_is_the_shared_results_csv():
    shared = SHARED_PAPER / "results.csv"
    if not shared.is_file():
        pytest.skip(f"{shared} not found: the package copy is checked against the text below")
    assert PACKAGE_COPY.read_bytes() == shared.read_bytes()


@pytest.mark.parametrize("table, train, model, metric, value", FROM_THE_TEXT)
def test_the_shipped_table_holds_the_papers_numbers(table, train, model, metric, value):
    found = [r["value"] for r in _rows(table=table, train=train, model=model, metric=metric)]
    assert value in found


def test_the_shipped_table_has_every_row_of_tables_3_to_6():
    counts = pd.DataFrame(paper.paper_rows()).groupby("table").size().to_dict()
    # Table 3: 3 models x 4 methods x ACC/AUC; 4: 10 models x (FF++, Celeb-DF);
    # 5: 5 variants x (c23, c40) x ACC/AUC; 6: 5 variants.
    assert counts == {3: 24, 4: 20, 5: 20, 6: 5}


def test_the_rows_of_tables_3_and_5_are_lines_of_the_papers_text():
    text_file = SHARED_PAPER / "mclcr_wang2022.txt"
    if not text_file.is_file():
        pytest.skip(f"{text_file} not found")
    lines = text_file.read_text().splitlines()
    table3 = {"Xception": "Xception[16]", "SPSL": "SPSL[28]", "MC-LCR": "Ours"}
    for model, label in table3.items():
        values = [f"{r['value']:.2f}" for method in FOUR.split(",")
                  for r in _rows(table=3, train=f"FF++ c40 {method}", model=model)]
        assert any(line.strip().startswith(label) and "\t".join(values) in line
                   for line in lines), model
    table5 = {"baseline": "Baseline", "no_ssrb": "w/o SSRB", "no_papda": "w/o PAPDA",
              "no_supcon": "w/o SC loss", "mclcr": "Ours(MC-LCR)"}
    for model, label in table5.items():
        values = [f"{r['value']:.2f}" for c in ("c23", "c40")
                  for r in _rows(table=5, train=f"FF++ {c} (4 methods)", model=model)]
        assert any(label in line and "\t".join(values) in line for line in lines), model


def test_the_papers_model_names_map_onto_the_variants():
    assert set(paper.PAPER_MODELS.values()) == set(VARIANTS)
    for variant in VARIANTS:  # every ablation of Table 5 (two settings) and Table 6
        assert {r["table"] for r in paper.paper_rows()
                if paper.PAPER_MODELS.get(r["model"]) == variant} >= {5, 6}
    assert "Xception" not in paper.PAPER_MODELS  # Rossler et al.'s, not the package baseline


# --------------------------------------------------------------------------- matching rules


def _match(tmp_path, variant, source, compression="c23", methods=FOUR):
    root = write_dataset_json(tmp_path / "records", source, compression, methods)
    return paper.match_rows(paper.records_protocol(root), variant)


def test_ffpp_c40_of_one_method_is_table_3(tmp_path):
    rows = _match(tmp_path, "mclcr", "ffpp", "c40", "FaceSwap")
    assert [(r["table"], r["model"], r["metric"], r["value"]) for r in rows] == [
        (3, "MC-LCR", "frame_acc", 94.44), (3, "MC-LCR", "frame_auc", 98.6)]


@pytest.mark.parametrize("compression, acc, auc", [("c23", 97.21, 99.62), ("c40", 88.07, 90.28)])
def test_ffpp_of_the_four_methods_is_table_5_and_table_4s_deepfakes(tmp_path, compression, acc,
                                                                    auc):
    rows = _match(tmp_path, "mclcr", "ffpp", compression, "NeuralTextures,Deepfakes,FaceSwap,"
                                                            "Face2Face")
    assert [(r["table"], r["test"], r["metric"], r["value"]) for r in rows] == [
        (4, "FF++ Deepfakes", "frame_auc", 99.84),
        (5, f"FF++ {compression} (4 methods)", "frame_acc", acc),
        (5, f"FF++ {compression} (4 methods)", "frame_auc", auc)]


def test_celebdf_is_tables_4_and_6(tmp_path):
    rows = _match(tmp_path, "mclcr", "celebdf")
    assert [(r["table"], r["model"], r["value"]) for r in rows] == [(4, "MC-LCR", 71.61),
                                                                  (6, "mclcr", 71.61)]


@pytest.mark.parametrize("variant, table6", [("baseline", 65.29), ("no_ssrb", 65.41),
                                             ("no_papda", 69.27), ("no_supcon", 66.76)])
def test_the_variant_picks_the_ablation_rows(tmp_path, variant, table6):
    assert [(r["table"], r["value"]) for r in _match(tmp_path, variant, "celebdf")] == [
        (6, table6)]
    rows = _match(tmp_path, variant, "ffpp", "c23")
    assert {r["table"] for r in rows} == {5} and {r["model"] for r in rows} == {variant}


@pytest.mark.parametrize("variant, source, compression, methods, reason", [
    ("mclcr", "folder", "c23", FOUR, "source folder: the paper tests FF++ and Celeb-DF v2 only"),
    ("mclcr", "dfdc", "c23", FOUR, "source dfdc"),
    ("mclcr", "ffpp", "c23", "Deepfakes", "Table 3 (one method) is c40 only"),
    ("mclcr", "ffpp", "raw", FOUR, "Table 5 is c23 and c40 only"),
    ("mclcr", "ffpp", "c40", "Deepfakes,FaceSwap", "the paper uses one of, or all of"),
    ("mclcr", "ffpp", "c40", FOUR + ",FaceShifter", "the paper uses one of, or all of"),
    ("baseline", "ffpp", "c40", "Deepfakes", "Table 3 has no row of variant baseline"),
])
def test_records_that_match_no_table_say_why(tmp_path, variant, source, compression, methods,
                                             reason):
    with pytest.raises(ValueError, match=re.escape(reason)):
        _match(tmp_path, variant, source, compression, methods)


def test_records_without_dataset_json_match_nothing(tmp_path):
    (tmp_path / "bare").mkdir()
    assert paper.records_protocol(tmp_path / "bare") == {}
    with pytest.raises(ValueError, match="no readable dataset.json"):
        paper.match_rows({}, "mclcr")


def test_the_variant_is_read_from_the_model_without_loading_it(tmp_path, tiny_model_path):
    assert stored_config(tiny_model_path)["variant"] == "mclcr"
    assert stored_config(fake_keras(tmp_path / "a.keras", "no_ssrb"))["variant"] == "no_ssrb"
    assert stored_config(fake_keras(tmp_path / "b.keras", None)) is None
    (tmp_path / "text.keras").write_text("not a zip")
    assert stored_config(tmp_path / "text.keras") is None
    version = tmp_path / "serving" / "2"  # a TF Serving base: its highest version's metadata
    (version / "assets.extra").mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"")
    (version / "assets.extra" / "mclcr_keras.json").write_text(
        json.dumps({"model_config": {"variant": "no_papda"}}))
    assert stored_config(tmp_path / "serving")["variant"] == "no_papda"


def test_plan_matches_each_record_set_and_warns_about_the_others(tmp_path, caplog):
    model = fake_keras(tmp_path / "m.keras", "no_supcon")
    ffpp = write_dataset_json(tmp_path / "ffpp", "ffpp", "c40")
    folder = write_dataset_json(tmp_path / "mine", "folder")
    celebdf = write_dataset_json(tmp_path / "celebdf", "celebdf")
    planned = paper.plan([ffpp, folder, celebdf], model, "test")
    assert [[(r["table"], r["metric"], r["value"]) for r in rows] for rows in planned] == [
        [(5, "frame_acc", 87.53), (5, "frame_auc", 89.65)], [], [(6, "frame_auc", 66.76)]]
    assert "no paper row for" in caplog.text and "mine" in caplog.text


@pytest.mark.parametrize("case, message", [
    ("no_table", "no table of the paper matches"),
    ("split", "--compare-paper compares test numbers"),
    ("no_variant", "records no MC-LCR variant"),
])
def test_plan_errors_are_one_line(tmp_path, case, message):
    model = fake_keras(tmp_path / "m.keras", None if case == "no_variant" else "mclcr")
    records = [write_dataset_json(tmp_path / "r", "ffpp" if case != "no_table" else "folder")]
    with pytest.raises(UsageError, match=message) as error:
        paper.plan(records, model, "val" if case == "split" else "test")
    assert "\n" not in str(error.value)
    if case == "no_table":
        assert "build_records ffpp --compression c40 --methods" in str(error.value)


# ------------------------------------------------------------------------------ run values


def test_run_values_are_percent_and_acc_is_at_one_half():
    rows = paper.match_rows({"source": "ffpp", "compression": "c23",
                             "methods": FOUR.split(",")}, "mclcr")
    result = {"frame": {"acc": 0.5, "acc_at_0.5": 0.9, "auc": 0.95},
              "per_method": {"Deepfakes": {"frame_auc": 0.99}, "FaceSwap": {"frame_auc": 0.2}}}
    out = paper.compare([rows], ["ffpp"], {"ffpp": result})
    got = {(r["table"], r["metric"]): (r["run"], r["difference"]) for r in out}
    assert got[(4, "frame_auc")] == pytest.approx((99.0, 99.0 - 99.84))
    assert got[(5, "frame_acc")] == pytest.approx((90.0, 90.0 - 97.21))
    assert got[(5, "frame_auc")] == pytest.approx((95.0, 95.0 - 99.62))
    assert all(tuple(r) == paper.COLUMNS for r in out)
    # No number of the run (no Deepfakes fakes, an undefined AUC): no difference either.
    out = paper.compare([rows], ["x"], {"x": {"frame": {"acc": 0.9, "auc": float("nan")}}})
    assert [(r["run"], r["difference"]) for r in out] == [(None, None), (90.0, 90.0 - 97.21),
                                                          (None, None)]
    assert "-" in paper.format_comparison(out).splitlines()[1].split()


# ------------------------------------------------------------------------- the command


@pytest.fixture(scope="module")
def table3_records(tmp_path_factory, tiny_records):
    """The tiny records, relabelled in dataset.json as FF++ c40 Deepfakes (Table 3)."""
    root = tmp_path_factory.mktemp("paper") / "ffpp_c40_df"
    shutil.copytree(tiny_records, root)
    info = json.loads((root / "dataset.json").read_text())
    info["arguments"].update(source="ffpp", compression="c40", methods="Deepfakes")
    (root / "dataset.json").write_text(json.dumps(info))
    return root


@pytest.mark.slow
def test_compare_paper_prints_and_writes_the_comparison(table3_records, tiny_model_path,
                                                         tmp_path, capsys):
    from mclcr_keras import evaluate

    out = tmp_path / "eval"
    status = evaluate.main(["--model", str(tiny_model_path), "--records", str(table3_records),
                            "--out", str(out), "--threshold", "0.5", "--bootstrap", "0",
                            "--compare-paper"])
    printed = capsys.readouterr().out
    assert status == 0
    metrics = json.loads((out / "metrics.json").read_text())
    frame = metrics["records"]["ffpp_c40_df"]["frame"]
    table = pd.read_csv(out / paper.COMPARISON_FILE)
    assert list(table.columns) == list(paper.COLUMNS)
    assert table[["table", "model", "metric", "paper"]].values.tolist() == [
        [3, "MC-LCR", "frame_acc", 97.23], [3, "MC-LCR", "frame_auc", 99.53]]
    assert table["run"].tolist() == pytest.approx([100 * frame.get("acc_at_0.5", frame["acc"]),
                                                   100 * frame["auc"]])
    assert (table["difference"] == table["run"] - table["paper"]).all()
    section = metrics["paper"]
    assert section["variant"] == "mclcr" and section["unit"] == "percent"
    assert section["unmatched"] == []
    assert pd.DataFrame(section["rows"])[list(paper.COLUMNS)].equals(table)
    assert "beside the paper" in printed and "FF++ c40 Deepfakes" in printed
    assert str(out / paper.COMPARISON_FILE) in printed


def test_compare_paper_on_records_of_no_table_exits_2_before_the_model_loads(
        tiny_records, tiny_model_path, tmp_path, capsys, monkeypatch):
    from mclcr_keras import evaluate
    from mclcr_keras.evaluation import report

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(report, "load_scorer", no_loading)
    out = tmp_path / "eval"
    status = evaluate.main(["--model", str(tiny_model_path), "--records", str(tiny_records),
                            "--out", str(out), "--threshold", "0.5", "--compare-paper"])
    err = capsys.readouterr().err
    assert status == 2
    lines = [line for line in err.splitlines() if line.startswith("evaluate: error:")]
    assert len(lines) == 1, err
    assert "source folder" in lines[0] and "--compare-paper" in lines[0]
    assert "build_records ffpp --compression c40" in lines[0]
    assert not out.exists()


def test_the_readme_quotes_the_papers_own_numbers():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("**Numbers to compare against")[1].split("\n## ")[0]
    quoted = {float(x) for x in re.findall(r"\b\d{2,3}\.\d{2}\b", section)}
    values = {r["value"] for r in paper.paper_rows()}
    assert quoted and quoted <= values, sorted(quoted - values)
    assert {r["value"] for r in paper.paper_rows() if r["table"] in (3, 4, 5, 6)} <= quoted
