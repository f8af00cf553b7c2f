"""Every notebook in notebooks/ runs top to bottom on tiny data (MCLCR_NOTEBOOK_TINY=1).

Each notebook runs with nbclient in a python3 kernel of this interpreter, in a temporary working
directory, and must produce its artifacts there. A separate cheap test checks that the committed
notebooks carry no outputs.
"""

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
    names = {path.name for path in _notebook_paths()}
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


@pytest.mark.slow
@pytest.mark.parametrize("path", _notebook_paths(), ids=lambda p: p.name)
def test_notebook_runs_on_tiny_data(path, tmp_path, monkeypatch):
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
                            resources={"metadata": {"path": str(tmp_path)}})
    try:
        client.execute()
    except CellExecutionError as error:
        pytest.fail(f"{path.name} failed in tiny mode:\n{str(error)[-3000:]}")

    errors = [output for cell in notebook.cells if cell.cell_type == "code"
              for output in cell.outputs if output.output_type == "error"]
    assert errors == []
    for relative in EXPECTED[path.name]:
        artifact = tmp_path / relative
        assert artifact.is_file(), f"{path.name} did not write {relative}"
        assert artifact.stat().st_size > 0
        if artifact.suffix == ".png":
            assert artifact.read_bytes()[:8] == PNG_MAGIC, f"{relative} is not a PNG"
    # Inline figures were displayed (the notebook is meant to be read with its plots).
    images = [output for cell in notebook.cells if cell.cell_type == "code"
              for output in cell.outputs if "image/png" in output.get("data", {})]
    assert len(images) >= 3, f"{path.name} displayed {len(images)} images"
