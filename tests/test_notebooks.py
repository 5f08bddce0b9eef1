"""Every notebook runs top to bottom in fast mode and leaves its artefacts behind.

``pytest`` first re-runs the committed notebooks with ``--nbval-lax`` (``testpaths`` lists ``notebooks`` first; the
root conftest sets ``MAMMO_FAST=1`` and records which notebooks passed), in one shared ``MAMMO_HOME``, in notebook
order, as ``make run`` would. The tests here then check what each run left behind. A notebook nbval did not run
(``pytest tests/``, ``-k``, ``-p no:nbval``) is executed here with papermill instead, so the checks never depend on
the order. Papermill's own parameter injection (``make run FAST=1``) is exercised on every notebook's parameters
and by one real run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import papermill
import pytest

from mammo_utils.evaluation.tables import HEADLINE_METRICS, metric_entry
from mammo_utils.paths import latest_run_dir
from mammo_utils.training.train import RUN_FILES

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

# figures each notebook must write to $MAMMO_HOME/figures
EXPECTED_FIGURES = {
    "01_data": [
        "01_class_balance.png",
        "01_images_by_density.png",
        "01_intensity_histograms.png",
        "01_standardization_sample.png",
    ],
    "02_train": ["02_architecture_seed.png", "02_architecture_default.png", "02_training_curves.png"],
    "03_evaluate": ["03_confusion_matrices.png", "03_roc_pr.png", "03_reliability.png", "03_gradcam_gallery.png"],
    "05_update_model": ["05_label_balance.png", "05_gate.png"],
}


def _home() -> Path:
    return Path(os.environ["MAMMO_HOME"])


def test_notebooks_exist():
    assert [nb.stem for nb in NOTEBOOKS][:1] == ["01_data"]


@pytest.mark.notebook
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_fast_mode(notebook: Path, tmp_path: Path, request: pytest.FixtureRequest):
    key = notebook.relative_to(request.config.rootpath).as_posix()
    if not getattr(request.config, "mammo_nbval_passed", {}).get(key):
        _run_with_papermill(notebook, tmp_path / notebook.name)
    for name in EXPECTED_FIGURES.get(notebook.stem, []):
        figure = _home() / "figures" / name
        assert figure.is_file() and figure.stat().st_size > 5_000, f"{notebook.stem} did not write {name}"
    if notebook.stem == "02_train":
        run_dir = latest_run_dir()
        assert all((run_dir / name).is_file() for name in RUN_FILES)
        assert json.loads((run_dir / "params.json").read_text())["status"] == "finished"
    if notebook.stem == "03_evaluate":
        metrics = json.loads((latest_run_dir() / "metrics.json").read_text())
        for name in HEADLINE_METRICS:
            entry = metric_entry(metrics, name)
            if entry["value"] is not None:
                assert entry["ci_low"] <= entry["value"] <= entry["ci_high"], name


def _run_with_papermill(notebook: Path, out: Path, **parameters: object) -> nbformat.NotebookNode:
    papermill.execute_notebook(
        str(notebook),
        str(out),
        parameters={"fast": True, "seed": 42, **parameters},
        cwd=str(notebook.parent),
        kernel_name="python3",
        progress_bar=False,
    )
    executed = nbformat.read(out, as_version=4)
    errors = [
        o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"
    ]
    assert not errors
    return executed


@pytest.mark.notebook
def test_papermill_injects_parameters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """`make run FAST=1` passes ``-p fast True``: the injected cell follows the tagged one and takes effect."""
    monkeypatch.delenv("MAMMO_FAST")  # so only the injected parameter can switch fast mode on
    executed = _run_with_papermill(NOTEBOOKS[0], tmp_path / NOTEBOOKS[0].name)  # the committed one has fast = False
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "fast = True" in injected[0].source and "seed = 42" in injected[0].source
    assert executed.metadata["papermill"]["parameters"] == {"fast": True, "seed": 42}
    fast_outputs = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    assert "fast=True" in fast_outputs, "the injected fast = True did not reach notebook.setup"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_are_documented_for_papermill(notebook: Path):
    """``papermill --help-notebook`` shows each parameter with its type, default and a help comment."""
    parameters = papermill.inspect_notebook(str(notebook))
    assert {"fast", "seed"} <= parameters.keys()
    for name, spec in parameters.items():
        assert spec["inferred_type_name"] != "None", f"{notebook.stem}: parameter {name} has no type hint"
        assert spec["help"].strip(), f"{notebook.stem}: parameter {name} has no help comment"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_is_executed_small_and_parameterized(notebook: Path):
    raw = notebook.read_text()
    assert len(raw.encode()) < 2 * 1024 * 1024, "committed notebooks stay under 2 MB"
    nb = nbformat.reads(raw, as_version=4)
    tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c.get("execution_count") for c in code), "commit notebooks executed (make run)"
    assert not any(o.get("output_type") == "error" for c in code for o in c.get("outputs", []))
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.lstrip().startswith("# "), "open with a title"
