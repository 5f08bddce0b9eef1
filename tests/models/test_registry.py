"""Tests for mammo_utils.models.registry: versions, statuses, rollback, safe writes, concurrency, adoption,
ensure_initial."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from mammo_utils.models import registry as reg
from mammo_utils.models.records import data_hash
from mammo_utils.models.registry import Registry, RegistryError

METRICS = {
    "density": {"kappa_quadratic": {"value": 0.61, "ci_low": 0.5, "ci_high": 0.7, "n_boot_used": 10}},
    "malignancy": {"roc_auc": {"value": 0.8, "ci_low": 0.7, "ci_high": 0.9}},
}


def make_run(folder: Path, name: str) -> Path:
    """A stand-in run directory: the registry only needs model.keras to exist."""
    run_dir = folder / "runs" / name
    run_dir.mkdir(parents=True)
    (run_dir / "model.keras").write_bytes(b"stand-in model for registry tests")
    return run_dir


@pytest.fixture()
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "models" / "registry.json")


def test_register_current_versions(registry: Registry) -> None:
    root = registry.root
    v1 = registry.register(make_run(root, "a"), parent=None, metrics=METRICS, data_hash="h1", promote=True)
    v2 = registry.register(
        make_run(root, "b"),
        parent="v1",
        metrics=None,
        data_hash="h2",
        promote=True,
        gate={"promote": True, "reasons": ["ok"]},
    )
    v3 = registry.register(
        make_run(root, "c"),
        parent="v2",
        metrics={"malignancy.roc_auc": 0.5},
        data_hash="h3",
        promote=False,
        gate={"promote": False},
    )
    assert (v1.version, v2.version, v3.version) == ("v1", "v2", "v3")
    assert registry.current().version == "v2"
    table = registry.versions()
    assert list(table.columns) == list(reg.VERSION_COLUMNS)
    assert table["status"].tolist() == ["retired", "current", "candidate-rejected"]
    assert table["parent"].tolist() == [None, "v1", "v2"]
    assert table["density_kappa"].iloc[0] == 0.61 and table["density_kappa_ci"].iloc[0] == "[0.500, 0.700]"
    assert table["malignancy_auc"].iloc[2] == 0.5 and table["gate_promote"].tolist() == [None, True, False]
    created = pd.to_datetime(table["created"])
    assert all(stamp.utcoffset().total_seconds() == 0 for stamp in created)
    stored = json.loads(registry.path.read_text())
    assert stored["current"] == "v2" and stored["versions"][0]["run_dir"] == "runs/a"  # relative to models/
    assert [e["action"] for e in stored["events"]] == ["promote", "promote", "register"]
    assert registry.get("3").gate == {"promote": False} and registry.get("v1").run_dir == root / "runs" / "a"


def test_rollback_and_back(registry: Registry) -> None:
    root = registry.root
    registry.register(make_run(root, "a"), parent=None, metrics=None, data_hash=None, promote=True)
    registry.register(make_run(root, "b"), parent="v1", metrics=None, data_hash=None, promote=True)
    assert registry.rollback("v1").status == "current"
    assert registry.versions()["status"].tolist() == ["current", "retired"]
    assert reg.current_run_dir(registry) == root / "runs" / "a"
    registry.rollback("v2")
    assert registry.current().version == "v2"
    assert reg.current_run_dir(registry) == root / "runs" / "b"
    events = json.loads(registry.path.read_text())["events"]
    assert [(e["action"], e["version"]) for e in events][-2:] == [("rollback", "v1"), ("rollback", "v2")]
    assert events[-1]["previous"] == "v1"


def test_bad_versions_are_clear_errors(registry: Registry) -> None:
    with pytest.raises(RegistryError, match="no current model version"):
        registry.current()
    run_a = make_run(registry.root, "a")
    registry.register(run_a, parent=None, metrics=None, data_hash=None, promote=True)
    registry.register(make_run(registry.root, "b"), parent="v1", metrics=None, data_hash=None, promote=True)
    with pytest.raises(RegistryError, match=r"unknown model version 'v9'; registered versions: v1, v2"):
        registry.rollback("v9")
    with pytest.raises(RegistryError, match="named v1, v2"):
        registry.get("latest")
    with pytest.raises(RegistryError, match="parent version 'v7' is not registered"):
        registry.register(make_run(registry.root, "c"), parent="v7", metrics=None, data_hash=None, promote=True)
    with pytest.raises(RegistryError, match="holds no model.keras"):
        registry.register(registry.root / "nowhere", parent=None, metrics=None, data_hash=None, promote=True)
    (run_a / "model.keras").unlink()
    before = registry.path.read_bytes()
    with pytest.raises(RegistryError, match="cannot roll back to v1: its model .* is gone"):
        registry.rollback("v1")
    assert registry.path.read_bytes() == before and registry.current().version == "v2"


def test_corrupt_registry_file_is_reported(registry: Registry) -> None:
    registry.root.mkdir(parents=True)
    registry.path.write_text("{not json")
    with pytest.raises(RegistryError, match="not valid JSON"):
        registry.versions()


def test_failed_write_leaves_the_old_file(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    registry.register(make_run(registry.root, "a"), parent=None, metrics=None, data_hash=None, promote=True)
    before = registry.path.read_bytes()

    def no_space(fd: int) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(reg.os, "fsync", no_space)
        with pytest.raises(OSError, match="No space left"):
            registry.register(make_run(registry.root, "b"), parent="v1", metrics=None, data_hash=None, promote=True)
    assert registry.path.read_bytes() == before
    assert sorted(p.name for p in registry.root.iterdir()) == ["registry.json", "registry.json.lock", "runs"]
    # the lock was released and the failed attempt took no number
    assert (
        registry.register(registry.root / "runs" / "b", parent="v1", metrics=None, data_hash=None, promote=True).version
        == "v2"
    )


_WORKER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from mammo_utils.models.registry import Registry
    registry, run_dir, worker = Registry(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    for i in range(int(sys.argv[4])):
        registry.register(run_dir, parent=None, metrics=None, data_hash=f"{worker}-{i}", promote=i % 2 == 0)
""")


def test_concurrent_registration_loses_nothing(registry: Registry) -> None:
    run_dir = make_run(registry.root, "shared")
    n_workers, n_each = 4, 6
    procs = [
        subprocess.Popen([sys.executable, "-c", _WORKER, str(registry.path), str(run_dir), f"w{w}", str(n_each)])
        for w in range(n_workers)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0] * n_workers
    table = registry.versions()
    assert len(table) == n_workers * n_each
    assert sorted(table["version"], key=lambda v: int(v[1:])) == [f"v{i}" for i in range(1, n_workers * n_each + 1)]
    assert sorted(table["data_hash"]) == sorted(f"w{w}-{i}" for w in range(n_workers) for i in range(n_each))
    assert (table["status"] == "current").sum() == 1


def test_ensure_initial_and_current_run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAMMO_HOME", str(tmp_path))
    registry = Registry()
    assert registry.path == tmp_path / "models" / "registry.json"
    with pytest.raises(FileNotFoundError, match="no training run recorded"):
        registry.ensure_initial()
    run_dir = make_run(tmp_path / "models", "first")
    image = tmp_path / "one.png"
    image.write_bytes(b"pixels")
    split = pd.DataFrame(
        {
            "image_path": [str(image), str(image)],
            "density": [2, 3],
            "pathology": ["benign", "benign"],
            "split": ["train", "test"],
        }
    )
    split.to_csv(run_dir / "split.csv", index=False)
    (run_dir / "metrics.json").write_text(json.dumps(METRICS))
    (tmp_path / "models" / "runs" / "LATEST").write_text("first\n")
    assert reg.current_run_dir(registry) == run_dir  # empty registry: the latest run
    first = registry.ensure_initial()
    assert (first.version, first.status, first.parent) == ("v1", "current", None)
    assert first.metrics["density.kappa_quadratic"]["value"] == 0.61
    assert first.data_hash == data_hash(split[split["split"] == "train"])
    assert registry.ensure_initial().version == "v1" and len(registry.versions()) == 1
    other = make_run(tmp_path / "models", "second")
    registry.register(other, parent="v1", metrics=None, data_hash=None, promote=True)
    assert reg.current_run_dir(registry) == other  # the registry wins over LATEST
    from mammo_utils.training.train import ensure_run

    assert ensure_run(None, train_if_missing=False) == (other, False)  # what Predictor.from_run(None) loads
    registry.rollback("v1")
    assert ensure_run(None, train_if_missing=False) == (run_dir, False)
    registry.rollback("v2")
    (other / "model.keras").unlink()
    with pytest.raises(FileNotFoundError, match="roll back"):
        reg.current_run_dir(registry)


def test_adopt_makes_a_new_training_run_current_once(registry: Registry, tmp_path: Path) -> None:
    root = registry.root
    first = make_run(root, "a")
    pd.DataFrame({"image_path": ["x.png"], "density": [2], "pathology": ["benign"], "split": ["train"]}).to_csv(
        first / "split.csv", index=False
    )
    (first / "metrics.json").write_text(json.dumps(METRICS))
    v1 = registry.adopt(first, content=False)
    assert (v1.version, v1.parent, v1.status) == ("v1", None, "current")
    assert v1.metrics["density.kappa_quadratic"]["value"] == 0.61 and v1.data_hash
    assert registry.adopt(first, content=False) == v1 and len(registry.list_versions()) == 1, "adopting is idempotent"

    second = make_run(root, "b")
    (second / "split.csv").write_text((first / "split.csv").read_text())
    v2 = registry.adopt(second, content=False)
    assert (v2.version, v2.parent, registry.current().version) == ("v2", "v1", "v2")
    registry.rollback("v1")
    assert registry.adopt(second, content=False).version == "v2" and registry.current().version == "v1", (
        "re-adopting a registered run does not undo a rollback"
    )
    with pytest.raises(RegistryError, match="model.keras"):
        registry.adopt(tmp_path / "empty", content=False)


def test_record_metrics_updates_only_registered_runs(registry: Registry) -> None:
    run = make_run(registry.root, "a")
    assert registry.record_metrics(run, METRICS) is None
    registry.register(run, parent=None, metrics=None, data_hash=None, promote=True)
    updated = registry.record_metrics(run, METRICS)
    assert updated.metrics["malignancy.roc_auc"] == {"value": 0.8, "ci_low": 0.7, "ci_high": 0.9}
    assert registry.get("v1").metrics == updated.metrics
