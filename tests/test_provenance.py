"""Provenance in every result: metrics.json names the package (and commit), the model and the
records; dataset.json holds the digests of the files that decided splits and labels."""

import hashlib
import json
import subprocess
from pathlib import Path

import mclcr_keras
from mclcr_keras import evaluate

REPO = Path(__file__).resolve().parents[1]


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_ffpp_split_files_are_digested(ffpp_mini):
    from mclcr_keras.data.writer.build import source_files
    from mclcr_keras.data.writer.options import BuildOptions

    splits = ffpp_mini / "splits"
    digests = source_files(BuildOptions("ffpp", root=str(ffpp_mini), splits_dir=str(splits)))
    assert digests == {f"{s}.json": sha256(splits / f"{s}.json") for s in ("train", "val", "test")}
    assert source_files(BuildOptions("ffpp", root=str(ffpp_mini))) == {}  # hash split: no file


def test_metrics_json_records_package_model_and_records(tiny_model_path, tiny_records, tmp_path):
    out = tmp_path / "eval"
    assert evaluate.main(["--model", str(tiny_model_path), "--records", str(tiny_records),
                          "--out", str(out), "--bootstrap", "0"]) == 0
    provenance = json.loads((out / "metrics.json").read_text())["provenance"]
    package = provenance["package"]
    assert package["version"] == mclcr_keras.__version__
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                          text=True)
    assert package["git_commit"] == (head.stdout.strip() if head.returncode == 0 else None)
    model = provenance["model"]
    assert (model["format"], model["variant"], model["image_size"]) == ("keras", "mclcr", 64)
    assert model["config"]["image_size"] == 64 and model["config"]["variant"] == "mclcr"
    (name, records), = provenance["records"].items()
    dataset_json = tiny_records / "dataset.json"
    assert records["dataset_json_sha256"] == sha256(dataset_json)
    arguments = json.loads(dataset_json.read_text())["arguments"]
    assert records["build"] == {key: arguments[key] for key in
                                ("frames", "size", "margin", "image_format", "crop",
                                 "jpeg_quality")}
    assert records["build"]["size"] == 64 and records["build"]["crop"] == "none"
    assert records["source"] == "folder" and records["source_files"] == {}
