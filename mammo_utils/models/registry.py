"""The model registry: every model version ("v1", "v2", ...) with its run, parent, metrics, data hash and status.

The registry is one JSON file, ``paths.models_dir() / "registry.json"``::

    {"schema": 1, "current": "v2",
     "versions": [{"version": "v1", "run_dir": "runs/...", "parent": null, "metrics": {...}, "data_hash": "...",
                   "created": "2026-11-26T00:00:00+00:00", "status": "retired", "gate": null}, ...],
     "events": [{"time": "...", "action": "register" | "promote" | "rollback", "version": "v2", ...}, ...]}

* **Statuses**: exactly one version is ``current`` (the one :func:`current_run_dir` and so the Predictor use);
  a version that was current before is ``retired``; a fine-tuned candidate that the gate refused is
  ``candidate-rejected``. :meth:`Registry.rollback` makes any version current again (also a rejected candidate,
  as a deliberate choice of the person calling it), provided its run directory still holds ``model.keras``.
* **Paths**: a run directory under ``models/`` is stored relative to it, so the folder can be moved (or
  ``MAMMO_HOME`` changed) without breaking the registry; other run directories are stored absolute.
* **Safe writes**: every change runs under an exclusive ``fcntl.flock`` on ``registry.json.lock`` (read,
  modify, write), so concurrent processes never lose a version, and the new JSON is written to a temporary
  file in the same folder, flushed to disk and moved over the old one with ``os.replace``: a reader sees the
  old or the new file, never a partial one, and an exception leaves the old file untouched.
* **Data hash and metrics**: see :mod:`mammo_utils.models.records`.
* **Training runs are versions too**: :func:`mammo_utils.training.train.train` calls :meth:`Registry.adopt` on every
  run it points ``models/runs/LATEST`` at, so a model trained from scratch becomes the current version (its parent is
  the version it replaces); :func:`mammo_utils.evaluation.run.evaluate_run` fills in its metrics with
  :meth:`Registry.record_metrics`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from mammo_utils import paths
from mammo_utils.models.records import headline_metrics, run_data_hash

REGISTRY_FILE = "registry.json"
SCHEMA_VERSION = 1
STATUSES: tuple[str, ...] = ("current", "candidate-rejected", "retired")
VERSION_COLUMNS: tuple[str, ...] = (
    "version",
    "status",
    "parent",
    "created",
    "density_kappa",
    "density_kappa_ci",
    "malignancy_auc",
    "malignancy_auc_ci",
    "gate_promote",
    "data_hash",
    "run_dir",
)


def _metric_value(metrics: Mapping[str, Any], name: str) -> Any:
    """The value of metric ``name``, or None."""
    return (metrics.get(name) or {}).get("value")


def _metric_ci(metrics: Mapping[str, Any], name: str) -> str | None:
    """The confidence interval of metric ``name`` as ``"[low, high]"`` text, or None."""
    entry = metrics.get(name) or {}
    low, high = entry.get("ci_low"), entry.get("ci_high")
    return None if low is None or high is None else f"[{low:.3f}, {high:.3f}]"


class RegistryError(ValueError):
    """An unknown version, a version whose model is gone, an empty registry or a corrupt registry file."""


@dataclass(frozen=True)
class ModelVersion:
    """One registered model version (see the module notes for the fields' meaning)."""

    version: str
    run_dir: Path
    parent: str | None
    metrics: dict[str, Any] | None
    data_hash: str | None
    created: str
    status: str
    gate: dict[str, Any] | None = None

    @property
    def model_path(self) -> Path:
        """``run_dir / "model.keras"``."""
        return self.run_dir / "model.keras"

    def to_record(self, root: Path) -> dict[str, Any]:
        """The JSON record, with ``run_dir`` relative to ``root`` (the models folder) when it lies under it."""
        record = asdict(self)
        record["run_dir"] = _store_path(self.run_dir, root)
        return record


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _store_path(run_dir: Path, root: Path) -> str:
    resolved = Path(run_dir).resolve()
    try:
        return resolved.relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(resolved)


def _version_number(name: str) -> int:
    text = str(name).strip().lower()
    if not (text.startswith("v") and text[1:].isdigit()):
        raise RegistryError(f"model versions are named v1, v2, ...; got {name!r}")
    return int(text[1:])


class Registry:
    """The model registry in a JSON file (default ``paths.models_dir() / "registry.json"``).

    Parameters
    ----------
    path : path, optional
        The registry file; its folder is the root that relative run directories are resolved against.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else paths.models_dir() / REGISTRY_FILE
        self.root = self.path.parent
        self.lock_path = self.path.with_name(self.path.name + ".lock")

    # ------------------------------------------------------------------------------------------ storage
    def _read(self) -> dict[str, Any]:
        if not self.path.is_file():
            return {"schema": SCHEMA_VERSION, "current": None, "versions": [], "events": []}
        try:
            state = json.loads(self.path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise RegistryError(
                f"{self.path} is not valid JSON ({exc}); restore it from a backup or move it "
                "away to start a new registry"
            ) from exc
        if not isinstance(state, dict) or not isinstance(state.get("versions"), list):
            raise RegistryError(f"{self.path} is not a model registry (no 'versions' list)")
        return state

    def _write(self, state: dict[str, Any]) -> None:
        text = json.dumps(state, indent=2, allow_nan=False) + "\n"
        temporary = ""
        try:
            with tempfile.NamedTemporaryFile(
                "w", dir=self.root, prefix=f".{self.path.name}.", suffix=".tmp", delete=False, encoding="utf-8"
            ) as handle:
                temporary = handle.name
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        finally:
            if temporary:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temporary)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        paths.ensure_dir(self.root)
        with open(self.lock_path, "a+") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[dict[str, Any]]:
        """Read the state under the lock, let the caller change it, write it back only if no exception."""
        with self._locked():
            state = self._read()
            yield state
            self._write(state)

    def _version(self, record: Mapping[str, Any]) -> ModelVersion:
        run_dir = Path(record["run_dir"])
        return ModelVersion(
            version=record["version"],
            run_dir=run_dir if run_dir.is_absolute() else self.root / run_dir,
            parent=record.get("parent"),
            metrics=record.get("metrics"),
            data_hash=record.get("data_hash"),
            created=record["created"],
            status=record["status"],
            gate=record.get("gate"),
        )

    # ------------------------------------------------------------------------------------------ reading
    def list_versions(self) -> list[ModelVersion]:
        """All versions, oldest first."""
        with self._locked():
            state = self._read()
        return [self._version(r) for r in state["versions"]]

    def versions(self) -> pd.DataFrame:
        """All versions as a table (:data:`VERSION_COLUMNS`), oldest first; CIs as ``"[low, high]"`` text."""
        rows = []
        for item in self.list_versions():
            metrics = item.metrics or {}
            rows.append(
                {
                    "version": item.version,
                    "status": item.status,
                    "parent": item.parent,
                    "created": item.created,
                    "density_kappa": _metric_value(metrics, "density.kappa_quadratic"),
                    "density_kappa_ci": _metric_ci(metrics, "density.kappa_quadratic"),
                    "malignancy_auc": _metric_value(metrics, "malignancy.roc_auc"),
                    "malignancy_auc_ci": _metric_ci(metrics, "malignancy.roc_auc"),
                    "gate_promote": None if item.gate is None else item.gate.get("promote"),
                    "data_hash": item.data_hash,
                    "run_dir": str(item.run_dir),
                }
            )
        table = pd.DataFrame(rows, columns=list(VERSION_COLUMNS), dtype=object)  # None stays None
        for column in ("density_kappa", "malignancy_auc"):
            table[column] = pd.to_numeric(table[column]).astype(float)
        return table

    def get(self, version: str) -> ModelVersion:
        """The version named ``version`` (e.g. ``"v2"``; ``"2"`` is read as ``"v2"``)."""
        wanted = version if str(version).lower().startswith("v") else f"v{version}"
        _version_number(wanted)
        for item in self.list_versions():
            if item.version == wanted.lower():
                return item
        known = ", ".join(i.version for i in self.list_versions()) or "none yet"
        raise RegistryError(f"unknown model version {version!r}; registered versions: {known}")

    def current(self) -> ModelVersion:
        """The current version.

        Raises
        ------
        RegistryError
            If nothing is registered yet (see :meth:`ensure_initial`).
        """
        for item in self.list_versions():
            if item.status == "current":
                return item
        raise RegistryError(
            f"no current model version in {self.path}; train a model (notebooks/02_train.ipynb) "
            "and call Registry().ensure_initial(), or roll back to a registered version"
        )

    # ------------------------------------------------------------------------------------------ changes
    def register(
        self,
        run_dir: str | os.PathLike[str],
        *,
        parent: str | None,
        metrics: Mapping[str, Any] | None,
        data_hash: str | None,
        promote: bool,
        gate: Mapping[str, Any] | None = None,
    ) -> ModelVersion:
        """Add a version for ``run_dir`` (the next ``vN``); make it current if ``promote``.

        Parameters
        ----------
        run_dir : path
            A run directory holding ``model.keras``.
        parent : str or None
            The version it was fine-tuned from (must be registered), None for a model trained from scratch.
        metrics : mapping or None
            Headline metrics with CIs (see :func:`headline_metrics`; an ``evaluate_predictions`` dict is reduced
            to them).
        data_hash : str or None
            :func:`data_hash` of the training data.
        promote : bool
            True: the new version becomes ``current`` and the previous current one ``retired``. False: it is kept
            as ``candidate-rejected``.
        gate : mapping, optional
            The gate's decision (``GateDecision.to_dict()``), kept as is.
        """
        folder = Path(run_dir)
        if not (folder / "model.keras").is_file():
            raise RegistryError(f"{folder} holds no model.keras; register a finished run directory")
        with self._transaction() as state:
            return self._add(state, folder, parent, metrics, data_hash, promote, gate)

    def _add(
        self,
        state: dict[str, Any],
        folder: Path,
        parent: str | None,
        metrics: Mapping[str, Any] | None,
        data_hash: str | None,
        promote: bool,
        gate: Mapping[str, Any] | None,
    ) -> ModelVersion:
        """Append the next version to ``state`` (inside a transaction)."""
        names = [r["version"] for r in state["versions"]]
        if parent is not None and parent not in names:
            raise RegistryError(f"parent version {parent!r} is not registered; known: {', '.join(names) or 'none'}")
        number = max((_version_number(n) for n in names), default=0) + 1
        item = ModelVersion(
            f"v{number}",
            folder.resolve(),
            parent,
            headline_metrics(metrics),
            data_hash,
            _now(),
            "current" if promote else "candidate-rejected",
            dict(gate) if gate else None,
        )
        if promote:
            self._retire_current(state)
            state["current"] = item.version
        state["versions"].append(item.to_record(self.root))
        state["events"].append(
            {
                "time": item.created,
                "action": "promote" if promote else "register",
                "version": item.version,
                "parent": parent,
            }
        )
        return item

    @staticmethod
    def _retire_current(state: dict[str, Any]) -> None:
        for record in state["versions"]:
            if record["status"] == "current":
                record["status"] = "retired"

    def rollback(self, version: str) -> ModelVersion:
        """Make ``version`` the current one (the previous current version becomes ``retired``).

        Raises
        ------
        RegistryError
            For an unknown version, or one whose run directory or ``model.keras`` no longer exists.
        """
        target = self.get(version)
        with self._transaction() as state:
            record = next(r for r in state["versions"] if r["version"] == target.version)
            item = self._version(record)
            if not item.model_path.is_file():
                raise RegistryError(
                    f"cannot roll back to {item.version}: its model {item.model_path} is gone "
                    "(the run directory was deleted or moved)"
                )
            previous = state.get("current")
            self._retire_current(state)
            record["status"] = "current"
            state["current"] = item.version
            state["events"].append(
                {"time": _now(), "action": "rollback", "version": item.version, "previous": previous}
            )
        return self._version(record)

    def find(self, run_dir: str | os.PathLike[str]) -> ModelVersion | None:
        """The version registered for ``run_dir``, or None."""
        wanted = Path(run_dir).resolve()
        return next((v for v in self.list_versions() if v.run_dir.resolve() == wanted), None)

    def adopt(self, run_dir: str | os.PathLike[str], *, content: bool = True) -> ModelVersion:
        """Make a run trained from scratch the current version (parent: the version it replaces).

        A run that is already registered is returned unchanged (so adopting twice, or after a rollback, does not
        undo anything). Metrics come from the run's ``metrics.json`` when it exists.
        """
        folder = Path(run_dir)
        known = self.find(folder)
        if known is not None:
            return known
        if not (folder / "model.keras").is_file():
            raise RegistryError(f"{folder} holds no model.keras; register a finished run directory")
        metrics_file = folder / "metrics.json"
        metrics = json.loads(metrics_file.read_text(encoding="utf-8")) if metrics_file.is_file() else None
        digest = run_data_hash(folder, content=content)
        with self._transaction() as state:
            for record in state["versions"]:  # another process may have adopted it meanwhile
                item = self._version(record)
                if item.run_dir.resolve() == folder.resolve():
                    return item
            return self._add(state, folder, state.get("current"), metrics, digest, True, None)

    def record_metrics(self, run_dir: str | os.PathLike[str], metrics: Mapping[str, Any]) -> ModelVersion | None:
        """Store (or refresh) the headline metrics of the version of ``run_dir``; None if it is not registered."""
        known = self.find(run_dir)
        if known is None:
            return None
        with self._transaction() as state:
            record = next(r for r in state["versions"] if r["version"] == known.version)
            record["metrics"] = headline_metrics(metrics)
        return self._version(record)

    def ensure_initial(self, *, content: bool = True) -> ModelVersion:
        """Register the latest training run (``models/runs/LATEST``) as ``v1`` when the registry is empty.

        Its metrics come from the run's ``metrics.json`` when it was evaluated (else None), its data hash from
        the run's training rows (``content`` as in :func:`data_hash`). Returns the current version.

        Raises
        ------
        FileNotFoundError
            If the registry is empty and no training run is recorded.
        """
        with self._locked():
            empty = not self._read()["versions"]
        if empty:
            self.adopt(paths.latest_run_dir(), content=content)
        return self.current()


def current_run_dir(registry: Registry | None = None) -> Path:
    """The current version's run directory, else (empty registry) the latest training run.

    Raises
    ------
    FileNotFoundError
        If neither exists, or the current version's run directory is gone.
    """
    registry = registry or Registry()
    try:
        item = registry.current()
    except RegistryError:
        return paths.latest_run_dir()
    if not item.model_path.is_file():
        raise FileNotFoundError(
            f"the current model version {item.version} points at {item.run_dir}, which holds "
            "no model.keras; roll back to another version (mammo rollback VERSION)"
        )
    return item.run_dir
