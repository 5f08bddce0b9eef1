"""The evaluation gate: promote a fine-tuned candidate only if it is not worse than the current model.

Both models are evaluated on the **same** held-out rows: the base run's test split plus the slice of the
submissions that fine-tuning kept out of training (``split == "test"`` in the candidate's ``split.csv``; the
:data:`ORIGIN_COLUMN` says which part a row came from). Metrics are reported for each part (``base_test``,
``submissions``) and for both together (``combined``); the decision is taken on ``combined``.

The rule (:func:`decide`), for each head's threshold-free headline metric, density quadratic-weighted kappa
and malignancy ROC AUC (:data:`~mammo_utils.models.registry.GATE_METRICS`)::

    candidate >= current - tolerance      (default tolerance 0.02)

on **both** heads. A metric that is undefined (NaN / None) for either model — e.g. a held-out set with only
benign cases has no ROC AUC, one density class gives no kappa — is a **refusal**, never a pass: the gate
cannot show the candidate is not worse, so it is not promoted, and the reason says what is missing.

Patient IDs are namespaced by part (``"submission:P1"``) for the patient-level bootstrap, so a submission
patient that happens to share an ID with a patient of the original data set is not merged with it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mammo_utils import labels
from mammo_utils.evaluation.predictions import predictions_frame
from mammo_utils.evaluation.report import evaluate_predictions
from mammo_utils.evaluation.run import predict_cached, read_split
from mammo_utils.evaluation.tables import to_jsonable
from mammo_utils.models.records import GATE_METRICS, headline_metrics
from mammo_utils.training.cache import build_cache
from mammo_utils.training.runs import load_run

DEFAULT_TOLERANCE = 0.02
ORIGIN_COLUMN = "origin"  # "base" (the base run's val/test rows), "replay" or "submission"
PARTS: tuple[str, ...] = ("base_test", "submissions", "combined")
DECIDED_ON = "combined"
GATE_FILE = "gate.json"
_LABELS = {"density.kappa_quadratic": "density quadratic kappa", "malignancy.roc_auc": "malignancy ROC AUC"}
_EPS = 1e-12  # floating-point slack at the tolerance edge


@dataclass
class GateDecision:
    """The gate's verdict.

    Attributes
    ----------
    promote : bool
        True only if the candidate is not worse than the current model beyond ``tolerance`` on both heads.
    reasons : list of str
        One line per gate metric saying why it passed or failed (plus notes, e.g. a missing part).
    current, candidate : dict
        The gate metrics ``{name: {"value", "ci_low", "ci_high"}}`` the decision was taken on.
    tolerance : float
    parts : dict
        Per part (:data:`PARTS`): ``{"n_images", "n_patients", "current", "candidate"}`` with the gate metrics
        (None for an empty part). Empty when :func:`decide` was called directly.
    """

    promote: bool
    reasons: list[str]
    current: dict[str, Any]
    candidate: dict[str, Any]
    tolerance: float
    parts: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (NaN → None)."""
        return to_jsonable(
            {
                "promote": self.promote,
                "reasons": self.reasons,
                "tolerance": self.tolerance,
                "metrics": list(GATE_METRICS),
                "decided_on": DECIDED_ON if self.parts else "given metrics",
                "current": self.current,
                "candidate": self.candidate,
                "parts": self.parts,
            }
        )

    def table(self) -> pd.DataFrame:
        """One row per part and gate metric: current and candidate values with CIs, and the difference."""
        sources = self.parts or {DECIDED_ON: {"current": self.current, "candidate": self.candidate}}
        rows = []
        for part, entry in sources.items():
            for name in GATE_METRICS:
                cur = ((entry.get("current") or {}).get(name)) or {}
                cand = ((entry.get("candidate") or {}).get(name)) or {}
                diff = (
                    None if _missing(cur.get("value")) or _missing(cand.get("value")) else cand["value"] - cur["value"]
                )
                rows.append(
                    {
                        "part": part,
                        "metric": name,
                        "n_images": entry.get("n_images"),
                        "current": cur.get("value"),
                        "current_ci_low": cur.get("ci_low"),
                        "current_ci_high": cur.get("ci_high"),
                        "candidate": cand.get("value"),
                        "candidate_ci_low": cand.get("ci_low"),
                        "candidate_ci_high": cand.get("ci_high"),
                        "difference": diff,
                    }
                )
        return pd.DataFrame(rows)


def _missing(value: Any) -> bool:
    return value is None or labels.is_missing(value) or (isinstance(value, float) and not math.isfinite(value))


def decide(
    current_metrics: Mapping[str, Any], candidate_metrics: Mapping[str, Any], tolerance: float = DEFAULT_TOLERANCE
) -> GateDecision:
    """The gate rule on two sets of metrics (pure; see the module notes).

    Parameters
    ----------
    current_metrics, candidate_metrics : mapping
        ``evaluate_predictions`` output, or flat ``{"density.kappa_quadratic": x, "malignancy.roc_auc": y}``
        (numbers or ``{"value", "ci_low", "ci_high"}`` entries). A missing key counts as undefined.
    tolerance : float
        How much worse (absolute) the candidate may be on each metric; >= 0.

    Returns
    -------
    GateDecision
        ``promote`` is True only if every gate metric is defined for both models and passes.
    """
    tolerance = float(tolerance)
    if not math.isfinite(tolerance) or tolerance < 0:
        raise ValueError(f"tolerance must be a finite number >= 0, got {tolerance!r}")
    current = headline_metrics(current_metrics) or {}
    candidate = headline_metrics(candidate_metrics) or {}
    empty = {"value": None, "ci_low": None, "ci_high": None}
    current = {name: current.get(name, empty) for name in GATE_METRICS}
    candidate = {name: candidate.get(name, empty) for name in GATE_METRICS}
    reasons, passed = [], []
    for name in GATE_METRICS:
        label, cur, cand = _LABELS.get(name, name), current[name]["value"], candidate[name]["value"]
        undefined = [who for who, v in (("current", cur), ("candidate", cand)) if _missing(v)]
        if undefined:
            passed.append(False)
            reasons.append(
                f"REFUSED {label}: undefined for the {' and '.join(undefined)} model (e.g. the held-out "
                "set is empty or has one class only), so the candidate cannot be shown to be not worse; "
                "add held-out cases of every class"
            )
            continue
        cur, cand = float(cur), float(cand)
        ok = cand >= cur - tolerance - _EPS
        passed.append(ok)
        verdict, relation = ("ok", "within") if ok else ("WORSE", "beyond")
        reasons.append(
            f"{verdict} {label}: candidate {cand:.3f} vs current {cur:.3f} (difference {cand - cur:+.3f}; "
            f"{relation} the allowed drop of {tolerance:.3f})"
        )
    return GateDecision(all(passed), reasons, current, candidate, tolerance)


def _predict_held_out(
    run_dir: Path, rows: pd.DataFrame, cache_dir: str | os.PathLike[str] | None, batch_size: int
) -> pd.DataFrame:
    """The run's model's predictions table for ``rows`` (unreadable images raise), in one ``predict`` call.

    The model is loaded once and predicts every row in batches of one shape (the last batch is padded with
    blank images, whose outputs are dropped), so Keras traces its predict function once per model instead of
    once per loaded model, split and partial last batch (which set off TensorFlow's retracing warnings).
    """
    run = load_run(run_dir, compile=False)
    size = int(run.params["image_size"])
    cached = build_cache(
        rows, cache_dir if cache_dir is not None else run.params.get("cache_dir"), size=(size, size), progress=False
    )
    images = cached.images(rows)
    batch = max(1, min(batch_size, len(images)))
    padding = -len(images) % batch
    if padding:
        images = np.concatenate([images, np.zeros((padding, *images.shape[1:]), dtype=images.dtype)])
    out = {
        key: None if value is None else value[: len(rows)]
        for key, value in predict_cached(run.model, images, batch).items()
    }
    return predictions_frame(rows, out["density"], out["malignancy"], out["joint"])


def held_out_rows(split: pd.DataFrame) -> pd.DataFrame:
    """The ``val`` and ``test`` rows of a run's split, with :data:`ORIGIN_COLUMN` filled ("base" where absent)
    and patient IDs namespaced by origin."""
    if "split" not in split.columns:
        raise ValueError("the held-out manifest needs a 'split' column (val rows and test rows)")
    rows = split[split["split"].isin(["val", "test"])].copy().reset_index(drop=True)
    origin = rows[ORIGIN_COLUMN] if ORIGIN_COLUMN in rows.columns else pd.Series(pd.NA, index=rows.index)
    rows[ORIGIN_COLUMN] = [("base" if labels.is_missing(o) else str(o)) for o in origin]
    patients = rows["patient_id"].where(rows["patient_id"].notna(), rows["image_path"])
    rows["patient_id"] = [
        p if str(p).startswith(f"{o}:") else f"{o}:{p}" for o, p in zip(rows[ORIGIN_COLUMN], patients, strict=True)
    ]
    return rows


def _part_rows(test: pd.DataFrame, part: str) -> pd.DataFrame:
    if part == "submissions":
        return test[test[ORIGIN_COLUMN] == "submission"]
    if part == "base_test":
        return test[test[ORIGIN_COLUMN] != "submission"]
    return test


def _gate_rows(held_out: pd.DataFrame) -> pd.DataFrame:
    """The held-out rows (:func:`held_out_rows`), refusing a set without validation or test rows."""
    rows = held_out_rows(held_out)
    n_val, n_test = int((rows["split"] == "val").sum()), int((rows["split"] == "test").sum())
    if not n_val or not n_test:
        raise ValueError(f"the gate needs validation and held-out test rows; got {n_val} val, {n_test} test")
    return rows


def _evaluate_parts(
    predictions: pd.DataFrame, n_boot: int, seed: int
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """One model's metrics per part (:data:`PARTS`) of the test rows, and per part its size and headline metrics."""
    val = predictions[predictions["split"] == "val"].drop(columns=ORIGIN_COLUMN).reset_index(drop=True)
    test = predictions[predictions["split"] == "test"].reset_index(drop=True)
    metrics: dict[str, dict[str, Any]] = {}
    parts: dict[str, dict[str, Any]] = {}
    for part in PARTS:
        rows = _part_rows(test, part).reset_index(drop=True)
        parts[part] = {"n_images": len(rows), "n_patients": int(rows["patient_id"].nunique()), "metrics": None}
        if not rows.empty:
            metrics[part] = evaluate_predictions(rows, val, n_boot=n_boot, seed=seed, split=f"held-out {part}")
            parts[part]["metrics"] = headline_metrics(metrics[part])
    return metrics, parts


def _write_decision(decision: GateDecision, run_dir: Path) -> None:
    """Write the decision to ``gate.json`` in ``run_dir`` (atomically)."""
    text = json.dumps(decision.to_dict(), indent=2, allow_nan=False) + "\n"
    tmp = run_dir / f".{GATE_FILE}.tmp"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, run_dir / GATE_FILE)


def evaluate_gate(
    candidate_run: str | os.PathLike[str],
    current_run: str | os.PathLike[str],
    held_out: pd.DataFrame | None = None,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    n_boot: int = 200,
    seed: int = 0,
    batch_size: int = 64,
    cache_dir: str | os.PathLike[str] | None = None,
    write: bool = True,
) -> GateDecision:
    """Evaluate the candidate and the current model on the same held-out rows and decide (see module notes).

    Parameters
    ----------
    candidate_run, current_run : path
        Run directories (``model.keras`` + ``params.json``); each model predicts at its own image size.
    held_out : pandas.DataFrame, optional
        Rows with ``split`` ``"val"`` (threshold and calibration, as in
        :func:`~mammo_utils.evaluation.report.evaluate_predictions`) and ``"test"`` (the gate's held-out set), and
        optionally :data:`ORIGIN_COLUMN`. Default: the candidate's ``split.csv``.
    tolerance : float
    n_boot, seed : int
        Patient-level bootstrap replicates for the CIs, and their seed.
    batch_size : int
    cache_dir : path, optional
        Image cache (default: the one recorded in each run's ``params.json``).
    write : bool
        Write the decision to ``gate.json`` in the candidate's run directory.

    Raises
    ------
    ValueError
        If there are no validation rows or no test rows.
    """
    candidate_run, current_run = Path(candidate_run), Path(current_run)
    rows = _gate_rows(read_split(candidate_run) if held_out is None else held_out)
    metrics: dict[str, dict[str, Any]] = {}
    parts: dict[str, Any] = {}
    for who, run_dir in (("current", current_run), ("candidate", candidate_run)):
        predictions = _predict_held_out(run_dir, rows, cache_dir, batch_size)
        predictions[ORIGIN_COLUMN] = rows[ORIGIN_COLUMN].to_numpy()
        metrics[who], model_parts = _evaluate_parts(predictions, n_boot, seed)
        for part, entry in model_parts.items():
            sizes = {"n_images": entry["n_images"], "n_patients": entry["n_patients"]}
            parts.setdefault(part, sizes)[who] = entry["metrics"]
    decision = decide(metrics["current"][DECIDED_ON], metrics["candidate"][DECIDED_ON], tolerance)
    decision.parts = parts
    for part in PARTS[:-1]:
        if not parts[part]["n_images"]:
            decision.reasons.append(f"note: no held-out {part.replace('_', ' ')} rows; the gate used the others only")
    if write:
        _write_decision(decision, candidate_run)
    return decision


def gate_summary(decision: GateDecision) -> str:
    """A few lines for people: the verdict and the reasons."""
    verdict = "PROMOTE the candidate" if decision.promote else "KEEP the current model (candidate not promoted)"
    return "\n".join([f"Gate: {verdict}", *(f"  - {r}" for r in decision.reasons)])


__all__ = [
    "DEFAULT_TOLERANCE",
    "GateDecision",
    "ORIGIN_COLUMN",
    "PARTS",
    "decide",
    "evaluate_gate",
    "gate_summary",
    "held_out_rows",
]
