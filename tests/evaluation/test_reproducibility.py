"""Tests for mammo_utils.evaluation.reproducibility and ``mammo compare-runs``."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from mammo_utils.app.cli import main
from mammo_utils.evaluation.reproducibility import compare_projects, latest_run, mask_volatile, notebook_lines


def _project(
    root: Path,
    printed: list[str],
    auc: float = 0.61,
    run: str = "20261126-015816_default_synthetic",
    loss: float = 1.25,
) -> Path:
    """A project folder after `make run`: one executed notebook, a run with history and metrics, LATEST."""
    cell = nbformat.v4.new_code_cell("print(...)")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="\n".join(printed) + "\n"),
        nbformat.v4.new_output("execute_result", data={"text/plain": f"auc {auc:.3f}"}),
    ]
    (root / "notebooks").mkdir(parents=True)
    nbformat.write(
        nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# t"), cell]),
        root / "notebooks" / "03_evaluate.ipynb",
    )
    folder = root / "models" / "runs" / run
    folder.mkdir(parents=True)
    pd.DataFrame({"epoch": [0, 1], "loss": [2.0, loss]}).to_csv(folder / "history.csv", index=False)
    metrics = {
        "malignancy": {"roc_auc": {"value": auc, "ci": [auc - 0.1, auc + 0.1]}},
        "duration_s": 12.5,
        "n_boot": 1000,
    }
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (root / "models" / "runs" / "LATEST").write_text(run + "\n")
    return root


def test_mask_volatile_hides_what_two_runs_cannot_share() -> None:
    line = (
        "run 20261126-015816_default at 2026-11-26 05:01:20.543359+00:00 took 3.2 s in /tmp/x/y.png "
        "object at 0x7f3a2b1c9d00, 00:12 elapsed, auc 0.536"
    )
    assert mask_volatile(line) == (
        "run <run>_default at <time> took <duration> in <path> object at <address>, <clock> elapsed, auc 0.536"
    )


def test_notebook_lines_drop_tensorflow_start_up_and_progress_bars(tmp_path: Path) -> None:
    root = _project(
        tmp_path / "a",
        [
            "I0000 00:00:1795658241.640187 cpu_feature_guard.cc:227] optimized",
            "caching: 100%|##########| 20/20 [00:01<00:00, 15.2 it/s]",
            "kappa 0.825",
        ],
    )
    assert notebook_lines(root / "notebooks" / "03_evaluate.ipynb") == ["kappa 0.825", "auc 0.610"]


def test_two_runs_with_the_same_numbers_are_the_same(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    a = _project(tmp_path / "a", ["kappa 0.825 at 2026-11-26 04:00:00", "took 81 s"])
    b = _project(
        tmp_path / "b", ["kappa 0.825 at 2026-11-26 05:30:00", "took 77 s"], run="20261126-044805_default_synthetic"
    )
    report = compare_projects(a, b)
    assert report.identical and report.notebooks_compared == ["03_evaluate"]
    assert report.runs == (latest_run(a), latest_run(b))
    assert main(["compare-runs", str(a), str(b)]) == 0
    assert "SAME NUMBERS" in capsys.readouterr().out


def test_a_different_number_anywhere_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    a = _project(tmp_path / "a", ["kappa 0.825"])
    b = _project(tmp_path / "b", ["kappa 0.826"], auc=0.62, loss=1.26)
    report = compare_projects(a, b)
    assert not report.identical and not report.history_identical
    assert report.metric_differences == {
        "malignancy.roc_auc.value": (0.61, 0.62),
        "malignancy.roc_auc.ci.0": pytest.approx((0.51, 0.52)),
        "malignancy.roc_auc.ci.1": pytest.approx((0.71, 0.72)),
    }
    assert report.notebook_differences["03_evaluate"] == [("kappa 0.825", "kappa 0.826"), ("auc 0.610", "auc 0.620")]
    assert main(["compare-runs", str(a), str(b), "--lines", "1"]) == 1
    out = capsys.readouterr().out
    assert "history.csv: DIFFERENT" in out and "A: kappa 0.825" in out and "A: auc 0.610" not in out


def test_an_extra_block_does_not_shift_the_lines_after_it(tmp_path: Path) -> None:
    a = _project(tmp_path / "a", ["kappa 0.825", "benchmark: seed 0.48", "benchmark: default 0.52", "ece 0.08"])
    b = _project(tmp_path / "b", ["kappa 0.825", "no benchmark yet", "ece 0.08"])
    assert compare_projects(a, b).notebook_differences["03_evaluate"] == [
        ("benchmark: seed 0.48", "no benchmark yet"),
        ("benchmark: default 0.52", ""),
    ]


def test_a_folder_without_a_run_gets_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    a = _project(tmp_path / "a", ["kappa 0.825"])
    with pytest.raises(FileNotFoundError, match="run `make run`"):
        compare_projects(a, tmp_path)
    assert main(["compare-runs", str(a), str(tmp_path)]) == 2
    assert "LATEST not found" in capsys.readouterr().err
