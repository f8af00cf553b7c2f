"""Every notebook in notebooks/ runs top to bottom on tiny data (MCLCR_NOTEBOOK_TINY=1).

Each notebook runs with nbclient in a python3 kernel of this interpreter, in a temporary working
directory, and must write its artifacts there; what it prints and displays is checked against
those files (metrics recomputed from its predictions.csv, displayed PNGs equal to the files). A
separate cheap test checks that the committed notebooks carry no outputs.
"""

import ast
import base64
import os
import sys
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CELL_TIMEOUT = 600  # seconds per cell; a tiny run takes well under a minute per notebook

# Files each notebook must leave in its WORK_DIR (relative to the working directory).
EXPECTED = {
    "walkthrough.ipynb": (
        "walkthrough_output/run/best.keras",
        "walkthrough_output/run/history.csv",
        "walkthrough_output/eval/predictions.csv",
        "walkthrough_output/eval/roc.png",
        "walkthrough_output/serving/mclcr/1/saved_model.pb",
    ),
    "figures.ipynb": (
        "figures_output/figures/fig3_patch_spectra.png",
        "figures_output/figures/fig6_feature_maps.png",
        "figures_output/figures/fig7_tsne.png",
    ),
}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _notebook_paths() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def test_every_notebook_has_expectations():
    """Each notebook has its run test below (and its artifacts in EXPECTED)."""
    names = {path.name for path in _notebook_paths()}
    tested = {"walkthrough.ipynb": test_walkthrough_runs_on_tiny_data,
              "figures.ipynb": test_figures_notebook_runs_on_tiny_data}
    assert names == set(tested), f"notebooks {sorted(names)} vs tests {sorted(tested)}"
    assert names == set(EXPECTED), f"notebooks {sorted(names)} vs expectations {sorted(EXPECTED)}"


@pytest.mark.parametrize("path", _notebook_paths(), ids=lambda p: p.name)
def test_notebook_is_stripped_and_starts_with_parameters(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code, f"{path.name} has no code cell"
    for cell in code:
        assert cell.outputs == [], f"{path.name}: committed outputs in cell {cell.get('id')}"
        assert cell.execution_count is None, f"{path.name}: execution count in {cell.get('id')}"
    first = code[0].source
    assert "MCLCR_NOTEBOOK_TINY" in first and "RECORDS_DIR" in first, first[:200]
    assert notebook.cells[0].cell_type == "markdown"


def _run(path: Path, work: Path, monkeypatch) -> nbformat.NotebookNode:
    """Executes the notebook in tiny mode in ``work``; fails with the cell's error."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    # The kernel must be this interpreter: the python3 kernelspec launches `python` from PATH.
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep
                       + os.environ.get("PATH", ""))
    monkeypatch.setenv("MCLCR_NOTEBOOK_TINY", "1")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    for name in ("RECORDS_DIR", "MODEL_PATH", "REAL_IMAGE", "FAKE_IMAGE", "MCLCR_WORK_DIR"):
        monkeypatch.delenv(name, raising=False)
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(work)}})
    try:
        client.execute()
    except CellExecutionError as error:
        pytest.fail(f"{path.name} failed in tiny mode:\n{str(error)[-3000:]}")
    return notebook


def _printed(notebook) -> list[str]:
    """The stdout lines the notebook printed, in order."""
    return "".join(output.text for cell in notebook.cells if cell.cell_type == "code"
                   for output in cell.outputs
                   if output.output_type == "stream" and output.name == "stdout").splitlines()


def _line(lines: list[str], prefix: str) -> str:
    matches = [line for line in lines if line.startswith(prefix)]
    assert len(matches) == 1, (prefix, lines)
    return matches[0][len(prefix):].strip()


def _displayed_pngs(notebook) -> list[bytes]:
    return [base64.b64decode(output["data"]["image/png"]) for cell in notebook.cells
            if cell.cell_type == "code" for output in cell.outputs
            if "image/png" in output.get("data", {})]


def _check_artifacts(name: str, work: Path) -> None:
    for relative in EXPECTED[name]:
        artifact = work / relative
        assert artifact.is_file(), f"{name} did not write {relative}"
        assert artifact.stat().st_size > 0
        if artifact.suffix == ".png":
            assert artifact.read_bytes()[:8] == PNG_MAGIC, f"{relative} is not a PNG"


@pytest.mark.slow
def test_walkthrough_runs_on_tiny_data(tmp_path, monkeypatch):
    """The walkthrough trains, evaluates and exports; what it prints is what it wrote."""
    import pandas as pd
    from sklearn.metrics import average_precision_score, roc_auc_score

    notebook = _run(NOTEBOOKS / "walkthrough.ipynb", tmp_path, monkeypatch)
    _check_artifacts("walkthrough.ipynb", tmp_path)
    out = tmp_path / "walkthrough_output"
    lines = _printed(notebook)
    assert _line(lines, "tiny=") == ("True records=walkthrough_output/records image_size=64 "
                                     "epochs=1")
    listed = [line for line in lines if line.startswith("['")]
    assert len(listed) == 1, lines
    shards = ast.literal_eval(listed[0])  # the records cell lists the shards it wrote
    assert shards == sorted(p.relative_to(out / "records").as_posix()
                            for p in (out / "records").glob("*/*.tfrecord"))
    assert {shard.split("/")[0] for shard in shards} == {"train", "val", "test"}
    assert _line(lines, "batch:").startswith("(8, 64, 64, 3) <dtype: 'float32'> labels:")

    history = pd.read_csv(out / "run" / "history.csv")
    assert len(history) == 1 and {"loss", "val_loss", "auc", "val_auc"} <= set(history)

    # The metrics it printed are those of the predictions.csv it wrote.
    predictions = pd.read_csv(out / "eval" / "predictions.csv", dtype={"video_id": str})
    assert len(predictions) == 8  # 2 test videos per class x 2 frames
    y, p = predictions["label"], predictions["probability"]
    frame = ast.literal_eval(_line(lines, "frame:"))
    assert frame["n"] == len(predictions) and frame["n_fake"] == int(y.sum())
    assert frame["auc"] == pytest.approx(round(roc_auc_score(y, p), 4), abs=1e-9)
    assert frame["ap"] == pytest.approx(round(average_precision_score(y, p), 4), abs=1e-9)
    assert frame["acc"] == pytest.approx(round(((p > 0.5) == y).mean(), 4), abs=1e-9)
    video = ast.literal_eval(_line(lines, "video:"))
    assert video["n_videos"] == predictions.groupby(["dataset", "method", "video_id"]).ngroups

    # Export: both signatures, within the notebook's tolerance of best.keras.
    assert _line(lines, "exported to") == "walkthrough_output/serving/mclcr/1"
    assert ast.literal_eval(_line(lines, "signatures:")) == ["serving_bytes", "serving_default"]
    differences = ast.literal_eval(_line(lines, "max |probability difference| against "
                                            "best.keras:"))
    assert sorted(differences) == ["serving_bytes", "serving_default"]
    assert all(0.0 <= d <= 1e-4 for d in differences.values())

    # Inline figures: the batch, the training curves, and the roc.png it wrote.
    images = _displayed_pngs(notebook)
    assert len(images) == 3, len(images)
    assert images[2] == (out / "eval" / "roc.png").read_bytes()


@pytest.mark.slow
def test_figures_notebook_runs_on_tiny_data(tmp_path, monkeypatch):
    """The figures notebook draws Fig. 3, 6, 7 to files and shows exactly those files."""
    import cv2

    notebook = _run(NOTEBOOKS / "figures.ipynb", tmp_path, monkeypatch)
    _check_artifacts("figures.ipynb", tmp_path)
    lines = _printed(notebook)
    assert _line(lines, "tiny=") == ("True model=figures_output/untrained.keras "
                                     "records=figures_output/records")
    assert lines[-1] == "figures in figures_output/figures"
    figures = [tmp_path / relative for relative in EXPECTED["figures.ipynb"]]
    assert _displayed_pngs(notebook) == [path.read_bytes() for path in figures]
    for path in figures:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        assert 0.01 < (image.min(axis=2) < 200).mean() < 0.95, path.name  # drawn, not blank
    tsne = cv2.imread(str(figures[2]), cv2.IMREAD_COLOR)
    assert tsne.shape[:2] == (round(6.4 * 150), round(8.2 * 150))  # Fig. 7 at 150 dpi
    # The pair of Fig. 3: a real frame and its self-blend, equal outside the blended face.
    real = cv2.imread(str(tmp_path / "figures_output" / "pair_real.png"))
    fake = cv2.imread(str(tmp_path / "figures_output" / "pair_fake.png"))
    changed = (real != fake).any(axis=2)
    assert real.shape == fake.shape and 0.01 < changed.mean() < 0.5
