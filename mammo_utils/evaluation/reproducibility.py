"""Did two ``make run``\\ s give the same numbers? Compare two project folders after each ran the notebooks.

Each folder is a project root (a clone, or a ``MAMMO_HOME``) holding ``notebooks/*.ipynb`` executed by
``make run`` and ``models/runs/`` with the run ``LATEST`` points at. :func:`compare_projects` checks that

* the latest runs' ``history.csv`` are identical (every loss and metric of every epoch),
* their ``metrics.json`` hold the same numbers (durations aside),
* the notebooks print the same text, once what must differ between two runs is masked: dates and times, run
  folder names, durations, absolute paths, memory addresses, TensorFlow's start-up log lines and progress bars.

``mammo compare-runs A B`` prints the report and exits with 1 when something differs.
"""

from __future__ import annotations

import difflib
import itertools
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pandas as pd

_MASKS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:?\d{2}|Z)?"), "<time>"),
    (re.compile(r"\d{8}-\d{6}"), "<run>"),
    (re.compile(r"0x[0-9a-f]{6,}"), "<address>"),
    (re.compile(r"(?<![\w.])/[\w.~+-]+(/[\w.~+-]+)+"), "<path>"),
    (re.compile(r"\b\d+(\.\d+)?\s?(ms|s|sec|seconds|min|minutes)\b"), "<duration>"),
    (re.compile(r"\b\d+:\d{2}(:\d{2})?\b"), "<clock>"),
)
_DROPPED = re.compile(r"^[IWE]\d{4} |cpu_feature_guard|oneDNN custom operations|%\|| it/s\]| s/it\]")
_DURATION_KEYS = ("duration", "seconds", "elapsed", "time_s", "per_s")


def mask_volatile(line: str) -> str:
    """``line`` with dates, run names, durations, paths and addresses replaced by tokens such as ``<time>``."""
    for pattern, token in _MASKS:
        line = pattern.sub(token, line)
    return line.rstrip()


def notebook_lines(path: str | os.PathLike[str]) -> list[str]:
    """The text a notebook's code cells printed (stream and plain-text results), masked, start-up noise dropped."""
    notebook = nbformat.read(Path(path), as_version=4)
    lines: list[str] = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            text = output.get("text") or output.get("data", {}).get("text/plain", "")
            if isinstance(text, list):
                text = "".join(text)
            lines += [mask_volatile(line) for line in text.splitlines() if not _DROPPED.search(line)]
    return lines


def _numbers(value: object, prefix: str = "") -> dict[str, float]:
    if isinstance(value, dict):
        out: dict[str, float] = {}
        for key, item in value.items():
            out.update(_numbers(item, f"{prefix}{key}."))
        return out
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in _numbers(item, f"{prefix}{i}.").items()}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {prefix.rstrip("."): float(value)}
    return {}


def _same(a: float | None, b: float | None) -> bool:
    return a == b or (a is not None and b is not None and math.isnan(a) and math.isnan(b))


def latest_run(root: str | os.PathLike[str]) -> Path:
    """The run directory ``<root>/models/runs/LATEST`` names (a folder name or an absolute path)."""
    pointer = Path(root) / "models" / "runs" / "LATEST"
    if not pointer.is_file():
        raise FileNotFoundError(f"{pointer} not found: run `make run` (or notebooks/02_train) in {root} first")
    name = Path(pointer.read_text(encoding="utf-8").strip())
    return name if name.is_absolute() else pointer.parent / name


@dataclass
class ReproducibilityReport:
    """What differs between two project folders' runs; empty lists mean the same numbers."""

    runs: tuple[Path, Path]
    history_identical: bool
    metric_differences: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    notebook_differences: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    notebooks_compared: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        """True when histories, metrics and every compared notebook's masked output agree."""
        return self.history_identical and not self.metric_differences and not any(self.notebook_differences.values())

    def summary(self, max_lines: int = 5) -> str:
        """A plain-text report: one line per check, then up to ``max_lines`` differing lines per notebook."""
        lines = [
            f"runs: {self.runs[0]}  vs  {self.runs[1]}",
            f"history.csv: {'identical' if self.history_identical else 'DIFFERENT'}",
            f"metrics.json: {len(self.metric_differences)} number(s) differ",
        ]
        lines += [f"  {key}: {a} vs {b}" for key, (a, b) in list(self.metric_differences.items())[:max_lines]]
        for name in self.notebooks_compared:
            diff = self.notebook_differences.get(name, [])
            lines.append(f"{name}: {len(diff)} printed line(s) differ")
            lines += [f"  A: {a}\n  B: {b}" for a, b in diff[:max_lines]]
        lines.append("SAME NUMBERS" if self.identical else "DIFFERENT NUMBERS")
        return "\n".join(lines)


def compare_notebooks(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """Pairs of differing masked output lines of two executions of a notebook, aligned with :mod:`difflib` so that
    one extra block does not shift every later line; a line without a counterpart pairs with ``""``."""
    lines_a, lines_b = notebook_lines(a), notebook_lines(b)
    pairs: list[tuple[str, str]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, lines_a, lines_b, autojunk=False).get_opcodes():
        if tag != "equal":
            pairs += list(itertools.zip_longest(lines_a[i1:i2], lines_b[j1:j2], fillvalue=""))
    return pairs


def compare_projects(root_a: str | os.PathLike[str], root_b: str | os.PathLike[str]) -> ReproducibilityReport:
    """Compare the latest runs and the executed notebooks of two project folders (see the module docstring)."""
    run_a, run_b = latest_run(root_a), latest_run(root_b)
    history_a, history_b = pd.read_csv(run_a / "history.csv"), pd.read_csv(run_b / "history.csv")
    report = ReproducibilityReport((run_a, run_b), history_a.equals(history_b))
    metrics = []
    for run in (run_a, run_b):
        path = run / "metrics.json"
        metrics.append(_numbers(json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else {})
    for key in sorted(metrics[0].keys() | metrics[1].keys()):
        if any(word in key for word in _DURATION_KEYS):
            continue
        a, b = metrics[0].get(key), metrics[1].get(key)
        if not _same(a, b):
            report.metric_differences[key] = (a, b)
    names_b = {p.name for p in (Path(root_b) / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    for path in sorted((Path(root_a) / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        if path.name in names_b:
            report.notebooks_compared.append(path.stem)
            report.notebook_differences[path.stem] = compare_notebooks(path, Path(root_b) / "notebooks" / path.name)
    return report
