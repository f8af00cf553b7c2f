"""The model card (`mclcr_keras.evaluation.model_card`): ``evaluate`` writes ``model_card.json``
with the Model Card Toolkit's field names and ``model_card.md``; ``export --model-card`` copies
the JSON into the SavedModel's ``assets.extra/`` (`mclcr_keras.inference.card_asset`).

One evaluation of the shared tiny model, from a run folder whose ``config.json`` names FF++ c40
training records (the tiny records relabelled), and one export with the card (the costly part).
"""

import json
import shutil

import pytest

from mclcr_keras.evaluation import model_card as cards
from mclcr_keras.inference.card_asset import MODEL_CARD_ASSET, read_model_card

# The Model Card Toolkit's schema v0.0.2 (model_card_toolkit/schema/v0.0.2/model_card.schema.json),
# the part the card fills, transcribed: field names and types. Only these top-level keys exist.
TOP_LEVEL = {"schema_version", "model_details", "model_parameters", "quantitative_analysis",
             "considerations"}
STRINGS = {"model_details": ("name", "overview", "documentation", "path"),
           "model_parameters": ("model_architecture", "input_format", "output_format")}
LISTS = {"model_details": {"licenses": ("identifier",), "references": ("reference",),
                           "citations": ("style", "citation")},
         "model_parameters": {"data": ("name", "description")},
         "considerations": {"users": ("description",), "use_cases": ("description",),
                            "limitations": ("description",), "tradeoffs": ("description",),
                            "ethical_considerations": ("name", "mitigation_strategy")}}
METRIC_FIELDS = {"type", "value", "slice", "confidence_interval"}


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, tiny_records, tiny_model_path):
    """evaluate on the tiny records of a run folder whose training records are FF++ c40."""
    from mclcr_keras import evaluate

    root = tmp_path_factory.mktemp("card")
    records = root / "ffpp_c40"
    shutil.copytree(tiny_records, records)
    info = json.loads((records / "dataset.json").read_text())
    info["arguments"].update(source="ffpp", compression="c40")
    (records / "dataset.json").write_text(json.dumps(info))
    run = root / "run"
    run.mkdir()
    shutil.copy(tiny_model_path, run / "best.keras")
    (run / "config.json").write_text(json.dumps({"training": {"records": str(records)},
                                                 "model": {}}))
    out = root / "eval"
    status = evaluate.main(["--model", str(run / "best.keras"), "--records", str(records),
                            "--name", "FF++", "--out", str(out), "--bootstrap", "50"])
    assert status == 0
    return {"out": out, "records": records, "metrics": json.loads((out / "metrics.json")
                                                                  .read_text()),
            "card": json.loads((out / cards.CARD_JSON).read_text())}


def test_the_card_has_the_toolkits_fields(evaluated):
    card = evaluated["card"]
    assert set(card) == TOP_LEVEL and card["schema_version"] == "0.0.2"
    for section, keys in STRINGS.items():
        for key in keys:
            assert isinstance(card[section][key], str) and card[section][key], (section, key)
    for section, lists in LISTS.items():
        for key, fields in lists.items():
            items = card[section][key]
            assert items and all(isinstance(item[f], str) and item[f] for item in items
                                 for f in fields), (section, key)
    assert set(card["model_details"]["version"]) == {"name", "date"}
    assert card["model_details"]["licenses"] == [{"identifier": "Apache-2.0"}]
    for metric in card["quantitative_analysis"]["performance_metrics"]:
        assert set(metric) <= METRIC_FIELDS and {"type", "value", "slice"} <= set(metric)
        assert all(isinstance(metric[k], str) for k in ("type", "value", "slice"))
        float(metric["value"])
        if "confidence_interval" in metric:
            assert set(metric["confidence_interval"]) == {"lower_bound", "upper_bound"}


def test_the_card_validates_against_a_json_schema_of_those_fields(evaluated):
    jsonschema = pytest.importorskip("jsonschema")
    text = {"type": "string"}
    listed = {"type": "array", "items": {"type": "object"}}
    metric = {"type": "object", "properties": {
        "type": text, "value": text, "slice": text,
        "confidence_interval": {"type": "object", "properties": {"lower_bound": text,
                                                                 "upper_bound": text}}}}
    schema = {"type": "object", "additionalProperties": False, "properties": {
        "schema_version": text,
        "model_details": {"type": "object", "properties": {
            **{k: text for k in STRINGS["model_details"]}, "licenses": listed,
            "references": listed, "citations": listed,
            "version": {"type": "object", "properties": {"name": text, "date": text}}}},
        "model_parameters": {"type": "object", "properties": {
            **{k: text for k in STRINGS["model_parameters"]}, "data": listed}},
        "quantitative_analysis": {"type": "object", "properties": {
            "performance_metrics": {"type": "array", "items": metric}}},
        "considerations": {"type": "object", "properties": {
            k: listed for k in LISTS["considerations"]}}}}
    jsonschema.validate(evaluated["card"], schema)


def test_the_metrics_and_intervals_are_those_of_metrics_json(evaluated):
    result = evaluated["metrics"]["records"]["FF++"]
    metrics = {(m["type"], m["slice"]): m
               for m in evaluated["card"]["quantitative_analysis"]["performance_metrics"]}
    auc = metrics[("frame AUC", "FF++ (test split)")]
    assert auc["value"] == f"{result['frame']['auc']:.4f}"
    low, high = result["frame"]["auc_ci95"]
    assert auc["confidence_interval"] == {"lower_bound": f"{low:.4f}", "upper_bound": f"{high:.4f}"}
    threshold = evaluated["metrics"]["threshold"]
    value = threshold["value"] if isinstance(threshold, dict) else threshold
    acc = metrics[(f"frame ACC at {value:.4f}", "FF++ (test split)")]
    assert acc["value"] == f"{result['frame']['acc']:.4f}" and "confidence_interval" not in acc
    video = metrics[("video AUC", "FF++ (test split)")]
    assert video["value"] == f"{result['video']['auc']:.4f}"
    assert f"{value:.4f}" in evaluated["card"]["model_parameters"]["output_format"]
    for method, row in result["per_method"].items():
        assert any(m["slice"].startswith(f"FF++ (test split), {method}") and
                   m["value"] == f"{row['frame_auc']:.4f}" for m in metrics.values())


def test_the_card_says_what_the_model_is_and_was_trained_on(evaluated):
    card = evaluated["card"]
    provenance = evaluated["metrics"]["provenance"]
    assert "variant mclcr" in card["model_details"]["name"]
    assert provenance["package"]["version"] in card["model_details"]["version"]["name"]
    assert "64x64" in card["model_parameters"]["model_architecture"]
    assert "(None, 64, 64, 3)" in card["model_parameters"]["input_format"]
    data = card["model_parameters"]["data"]
    assert data[0]["name"] == "training: ffpp_c40" and "compression c40" in data[0]["description"]
    assert data[1]["name"] == "evaluation: FF++" and str(evaluated["records"]) in data[1][
        "description"]
    limitations = " ".join(x["description"] for x in card["considerations"]["limitations"])
    for needed in ("aligned face crops only", "One face per crop", "FaceForensics++ c40",
                   "generators absent from training"):
        assert needed in limitations


def test_the_markdown_is_the_same_card(evaluated):
    text = (evaluated["out"] / cards.CARD_MARKDOWN).read_text()
    card = evaluated["card"]
    assert text == cards.render_markdown(card)
    assert text.startswith(f"# Model card: {card['model_details']['name']}\n")
    for heading in ("## Model details", "## Model parameters", "## Quantitative analysis",
                    "### Limitations", "### Ethical considerations"):
        assert f"\n{heading}\n" in text
    for metric in card["quantitative_analysis"]["performance_metrics"]:
        assert f"| {metric['type']} | {metric['value']} |" in text


def test_written_files_lists_the_card(evaluated):
    from mclcr_keras.evaluation.report import written_files

    written = written_files(evaluated["out"], 1)
    assert {evaluated["out"] / cards.CARD_JSON, evaluated["out"] / cards.CARD_MARKDOWN} <= set(
        written)


def test_the_training_records_are_found_through_an_export(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"training": {"records": str(tmp_path / "r")}}))
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "dataset.json").write_text(json.dumps(
        {"arguments": {"source": "celebdf"}}))
    version = tmp_path / "serving" / "1"
    (version / "assets.extra").mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"")
    (version / "assets.extra" / "mclcr_keras.json").write_text(json.dumps(
        {"source_model": str(run / "checkpoints" / "epoch-0003.keras")}))
    for model in (tmp_path / "serving", version, run / "checkpoints" / "epoch-0003.keras"):
        assert cards.training_data(model)["source"] == "celebdf"
    assert cards.training_data(tmp_path / "elsewhere.keras") is None


# ------------------------------------------------------------------------------- export


@pytest.mark.slow
def test_export_copies_the_card_into_assets_extra(evaluated, tiny_model_path, tmp_path, capsys):
    import tensorflow as tf

    from mclcr_keras import export

    card = evaluated["out"] / cards.CARD_JSON
    base = tmp_path / "serving" / "mclcr"
    status = export.main(["--model", str(tiny_model_path), "--out", str(base),
                          "--model-card", str(card)])
    assert status == 0
    target = base / "1"
    assert (target / MODEL_CARD_ASSET).read_bytes() == card.read_bytes()
    assert str(target / MODEL_CARD_ASSET) in capsys.readouterr().out
    assert sorted(p.name for p in base.iterdir()) == ["1"]  # no staging directory left
    loaded = tf.saved_model.load(str(target))
    assert {"serving_default", "serving_bytes"} <= set(loaded.signatures)
    outputs = loaded.signatures["serving_default"](images=tf.zeros((2, 64, 64, 3)))
    assert outputs["probability"].shape == (2,)


@pytest.mark.parametrize("content, message", [
    (None, "not found"),
    ("{not json", "is not JSON"),
    ('{"name": "no model_details"}', "is not a model card"),
])
def test_a_bad_model_card_is_one_line_before_anything_is_exported(content, message, tmp_path,
                                                                  capsys, tiny_model_path):
    from mclcr_keras import export

    path = tmp_path / "card.json"
    if content is not None:
        path.write_text(content)
    base = tmp_path / "serving" / "mclcr"
    status = export.main(["--model", str(tiny_model_path), "--out", str(base),
                          "--model-card", str(path)])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("export: error: --model-card ") and message in err, err
    assert len(err.strip().splitlines()) == 1
    assert not base.exists()


def test_the_library_checks_the_card_before_loading_the_model(tmp_path, tiny_model_path,
                                                              monkeypatch):
    from mclcr_keras.inference import export as exporting

    def no_loading(path):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(exporting, "load_model", no_loading)
    (tmp_path / "card.json").write_text("[]")
    with pytest.raises(ValueError, match="is not a model card"):
        exporting.export_model(tiny_model_path, tmp_path / "base", model_card=tmp_path /
                               "card.json")
    assert not (tmp_path / "base").exists()
    good = tmp_path / "ok.json"
    good.write_text(json.dumps({"model_details": {}}))
    assert read_model_card(good) == good.read_bytes()
