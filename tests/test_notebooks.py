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
import re
import subprocess
from pathlib import Path

import nbformat
import papermill
import pytest

from mammo_utils.evaluation.tables import HEADLINE_METRICS, metric_entry
from mammo_utils.paths import latest_run_dir
from mammo_utils.training.train import RUN_FILES

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _committed_notebooks() -> list[Path]:
    """The notebooks git tracks in notebooks/ (read from the working tree: what the next commit holds); the
    numbered notebooks when this is not a git checkout."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--", "notebooks/*.ipynb"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return NOTEBOOKS
    return sorted(ROOT / name for name in listed) or NOTEBOOKS


COMMITTED = _committed_notebooks()
# A warning from the warnings module ("UserWarning: ...", "DeprecationWarning: ...") and TensorFlow's retracing one
WARNING = re.compile(r"\b[A-Z]\w*Warning: |retracing")
# tqdm's bar: "  0%|          | 0/2000 [00:00<?, ?img/s]"
PROGRESS = re.compile(r"(\d+)/(\d+) \[")

# figures each notebook must write to $MAMMO_HOME/figures
EXPECTED_FIGURES = {
    "01_data": [
        "01_class_balance.png",
        "01_images_by_density.png",
        "01_intensity_histograms.png",
        "01_standardization_sample.png",
        "01_standardization_steps.png",
    ],
    "02_train": ["02_architecture_seed.png", "02_architecture_lesion.png", "02_training_curves.png"],
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


def _output_text(output: dict) -> str:
    """The text an output shows: a stream's text, an error's traceback, or a display's plain text."""
    if output.get("output_type") == "stream":
        return str(output.get("text", ""))
    if output.get("output_type") == "error":
        return "\n".join(output.get("traceback", []))
    data = output.get("data", {})
    return str(data.get("text/plain", ""))


def _output_problems(nb: nbformat.NotebookNode) -> list[str]:
    """What a committed notebook should not show: stderr, Python warnings, errors and tracebacks, frozen progress
    bars (a tqdm widget saves as a still ``0/2000 [`` text; a text bar stopped before its total)."""
    problems = []
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            text, where = _output_text(output), f"cell {index}"
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                problems.append(f"{where}: stderr output: {_line_at(text.strip(), 0)!r}")
            elif output.get("output_type") == "error" or "Traceback (most recent call last)" in text:
                problems.append(f"{where}: error output: {output.get('ename', text.strip()[:200])!r}")
            elif match := WARNING.search(text):
                problems.append(f"{where}: warning in the output: {_line_at(text, match.start())!r}")
            elif bars := PROGRESS.findall(text):
                widget = "application/vnd.jupyter.widget-view+json" in output.get("data", {})
                done, total = bars[-1]
                if widget or int(done) < int(total):
                    problems.append(f"{where}: frozen progress bar: {_line_at(text, text.rfind(done + '/'))!r}")
    return problems


def _line_at(text: str, position: int) -> str:
    """The line of ``text`` holding ``position``, stripped and cut at 200 characters."""
    start = text.rfind("\n", 0, position) + 1
    end = text.find("\n", position)
    return text[start : end if end >= 0 else len(text)].strip()[:200]


def _title_problems(nb: nbformat.NotebookNode) -> list[str]:
    """The first cell is markdown with exactly one H1 title, and the title is not a doubled ``# # ...``."""
    first = nb.cells[0] if nb.cells else None
    if first is None or first.cell_type != "markdown":
        return ["the first cell is not a markdown cell with the title"]
    lines, in_fence = [], False
    for line in first.source.splitlines():
        in_fence ^= line.lstrip().startswith("```")
        if not in_fence and re.match(r"#(\s|$)", line):
            lines.append(line)
    problems = [] if len(lines) == 1 else [f"the first cell has {len(lines)} H1 titles, not 1: {lines}"]
    problems += [f"doubled heading mark in the title: {line!r}" for line in lines if re.match(r"#\s+#", line)]
    return problems


def _notebook(cells: list[nbformat.NotebookNode]) -> nbformat.NotebookNode:
    return nbformat.v4.new_notebook(cells=cells)


def test_output_problems_are_found():
    out = nbformat.v4.new_output
    clean = nbformat.v4.new_code_cell("x", outputs=[out("stream", name="stdout", text="fast=True\n2000/2000 [00:03]")])
    assert _output_problems(_notebook([clean])) == []
    bar = {"text/plain": "Generating:   0%|          | 0/2000 [00:00<?, ?img/s]"}
    widget = {"application/vnd.jupyter.widget-view+json": {"model_id": "m", "version_major": 2, "version_minor": 0}}
    cells = [
        nbformat.v4.new_markdown_cell("# Title with a UserWarning: in prose"),  # markdown has no outputs
        nbformat.v4.new_code_cell("x", outputs=[out("stream", name="stderr", text="I0000 cpu_feature_guard\n")]),
        nbformat.v4.new_code_cell("x", outputs=[out("stream", name="stdout", text="a.py:3: UserWarning: careful\n")]),
        nbformat.v4.new_code_cell("x", outputs=[out("stream", name="stdout", text="triggered tf.function retracing.")]),
        nbformat.v4.new_code_cell("x", outputs=[out("error", ename="ValueError", evalue="bad", traceback=["..."])]),
        nbformat.v4.new_code_cell("x", outputs=[out("display_data", data={**bar, **widget})]),
        nbformat.v4.new_code_cell("x", outputs=[out("stream", name="stdout", text="  5%| | 100/2000 [00:01<00:19]")]),
        nbformat.v4.new_code_cell("x", outputs=[out("execute_result", data={"text/plain": "DeprecationWarning: old"})]),
    ]
    assert _output_problems(_notebook(cells)) == [
        "cell 1: stderr output: 'I0000 cpu_feature_guard'",
        "cell 2: warning in the output: 'a.py:3: UserWarning: careful'",
        "cell 3: warning in the output: 'triggered tf.function retracing.'",
        "cell 4: error output: 'ValueError'",
        "cell 5: frozen progress bar: 'Generating:   0%|          | 0/2000 [00:00<?, ?img/s]'",
        "cell 6: frozen progress bar: '5%| | 100/2000 [00:01<00:19]'",
        "cell 7: warning in the output: 'DeprecationWarning: old'",
    ]


def test_title_problems_are_found():
    title = nbformat.v4.new_markdown_cell
    assert _title_problems(_notebook([title("# 01 · Data\n\nText\n\n## Part\n```\n# a comment\n```")])) == []
    assert _title_problems(_notebook([title("# # 01 · Data")])) == [
        "doubled heading mark in the title: '# # 01 · Data'"
    ]
    assert _title_problems(_notebook([title("# One\n# Two")])) == [
        "the first cell has 2 H1 titles, not 1: ['# One', '# Two']"
    ]
    assert _title_problems(_notebook([title("## Only a section")])) == ["the first cell has 0 H1 titles, not 1: []"]
    assert _title_problems(_notebook([nbformat.v4.new_code_cell("x")])) == [
        "the first cell is not a markdown cell with the title"
    ]


@pytest.mark.parametrize("notebook", COMMITTED, ids=lambda p: p.stem)
def test_committed_notebook_shows_no_stderr_warning_error_or_frozen_progress_bar(notebook: Path):
    """Re-execute with ``make run`` after fixing the source of each line listed (quiet the logger, catch the warning,
    disable the progress bar in notebooks)."""
    problems = _output_problems(nbformat.read(notebook, as_version=4))
    assert not problems, f"{notebook.name} was committed with:\n" + "\n".join(problems)


@pytest.mark.parametrize("notebook", COMMITTED, ids=lambda p: p.stem)
def test_committed_notebook_has_one_title(notebook: Path):
    problems = _title_problems(nbformat.read(notebook, as_version=4))
    assert not problems, f"{notebook.name}: " + "; ".join(problems)
