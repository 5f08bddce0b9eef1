"""Tests for mammo_utils.update.gate: the pure rule (decide) and the gate on real models over a shared held-out split.

End to end, a *deliberately better* model (the shared base with heads refitted by logistic regression on the
held-out rows' backbone features, so it is near-perfect there) is compared with a *deliberately worse* one (every
weight zeroed: constant outputs, kappa 0 and AUC 0.5), both ways round.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import _finetune_data as data
import keras
import numpy as np
import pandas as pd
import pytest
from _trained import whole_image_run_dir
from sklearn.linear_model import LogisticRegression

from mammo_utils.models.networks import load_model
from mammo_utils.models.registry import Registry
from mammo_utils.training.cache import build_cache
from mammo_utils.update import gate
from mammo_utils.update.gate import GateDecision, decide

GOOD = {"density.kappa_quadratic": 0.60, "malignancy.roc_auc": 0.80}


# --------------------------------------------------------------------------------------------- decide()
@pytest.mark.parametrize("head", ["density.kappa_quadratic", "malignancy.roc_auc"])
def test_decide_rejects_a_candidate_worse_on_one_head(head: str) -> None:
    candidate = {**GOOD, head: GOOD[head] - 0.10}
    decision = decide(GOOD, candidate, tolerance=0.02)
    assert decision.promote is False
    worse = [r for r in decision.reasons if r.startswith("WORSE")]
    assert len(worse) == 1 and ("kappa" in worse[0]) == (head.startswith("density"))
    assert "-0.100" in worse[0] and "beyond the allowed drop of 0.020" in worse[0]


def test_decide_accepts_better_or_equal() -> None:
    assert decide(GOOD, GOOD).promote is True
    better = decide(GOOD, {"density.kappa_quadratic": 0.7, "malignancy.roc_auc": 0.81})
    assert better.promote and all(r.startswith("ok") for r in better.reasons) and len(better.reasons) == 2
    assert better.current["malignancy.roc_auc"]["value"] == 0.80 and better.tolerance == gate.DEFAULT_TOLERANCE


def test_decide_tolerance_edge() -> None:
    current = {"density.kappa_quadratic": 0.5, "malignancy.roc_auc": 0.75}
    at_edge = {"density.kappa_quadratic": 0.45, "malignancy.roc_auc": 0.70}
    assert decide(current, at_edge, tolerance=0.05).promote is True  # exactly the tolerance worse: not "beyond"
    assert decide(current, at_edge, tolerance=0.049).promote is False
    assert decide(current, at_edge, tolerance=0.0).promote is False
    with pytest.raises(ValueError, match="tolerance must be"):
        decide(current, at_edge, tolerance=-0.01)
    with pytest.raises(ValueError, match="tolerance must be"):
        decide(current, at_edge, tolerance=float("nan"))


@pytest.mark.parametrize("who", ["current", "candidate", "both"])
def test_decide_refuses_undefined_metrics(who: str) -> None:
    undefined = {"density.kappa_quadratic": 0.6, "malignancy.roc_auc": float("nan")}
    current = undefined if who in ("current", "both") else GOOD
    candidate = undefined if who in ("candidate", "both") else {**GOOD, "malignancy.roc_auc": 0.99}
    decision = decide(current, candidate)
    assert decision.promote is False
    refused = [r for r in decision.reasons if r.startswith("REFUSED")]
    assert len(refused) == 1 and "malignancy ROC AUC" in refused[0]
    assert ("current and candidate" in refused[0]) == (who == "both")
    missing_key = decide(GOOD, {"malignancy.roc_auc": 0.9})  # no density metric at all
    assert missing_key.promote is False and missing_key.reasons[0].startswith("REFUSED density")


def test_decide_reads_evaluate_metrics_and_serializes() -> None:
    nested = {
        "density": {"kappa_quadratic": {"value": 0.5, "ci_low": 0.4, "ci_high": 0.6}},
        "malignancy": {"roc_auc": {"value": None, "ci_low": None, "ci_high": None}},
    }
    decision = decide(nested, nested)
    assert decision.promote is False and decision.current["density.kappa_quadratic"]["ci_low"] == 0.4
    payload = decision.to_dict()
    assert json.loads(json.dumps(payload, allow_nan=False)) == payload
    assert payload["promote"] is False and payload["decided_on"] == "given metrics"
    table = decision.table()
    assert table["metric"].tolist() == ["density.kappa_quadratic", "malignancy.roc_auc"]
    assert table["difference"].iloc[0] == 0 and pd.isna(table["difference"].iloc[1])
    assert "KEEP the current model" in gate.gate_summary(decision)


# ------------------------------------------------------------------------------------------ end to end
def _copy_run(source: Path, target: Path, model: keras.Model) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for name in ("params.json", "history.csv", "split.csv"):
        shutil.copyfile(source / name, target / name)
    model.save(target / "model.keras")
    return target


def _zeroed(run_dir: Path, target: Path) -> Path:
    model = load_model(run_dir / "model.keras", compile=False)
    model.set_weights([np.zeros_like(w) for w in model.get_weights()])
    return _copy_run(run_dir, target, model)


def _fit_dense(features: np.ndarray, target: np.ndarray, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Dense-layer kernel and bias of a logistic regression on standardized features (scaling folded in).

    ``n_out`` = 4 (softmax over density classes 1-4; absent classes get a very low bias) or 1 (sigmoid)."""
    mean, std = features.mean(axis=0), features.std(axis=0) + 1e-6
    fit = LogisticRegression(C=1e4, max_iter=10000).fit((features - mean) / std, target)
    if n_out == 1:
        coef, intercept = fit.coef_.T, fit.intercept_
    else:
        binary = len(fit.classes_) == 2
        rows = np.vstack([-fit.coef_[0] / 2, fit.coef_[0] / 2]) if binary else fit.coef_
        icpt = np.array([-fit.intercept_[0] / 2, fit.intercept_[0] / 2]) if binary else fit.intercept_
        coef, intercept = np.zeros((features.shape[1], 4)), np.full(4, -50.0)
        for k, cls in enumerate(fit.classes_):
            coef[:, cls - 1], intercept[cls - 1] = rows[k], icpt[k]
    kernel = coef / std[:, None]
    return kernel.astype(np.float32), (intercept - mean @ kernel).astype(np.float32)


def _refitted(run_dir: Path, held_out: pd.DataFrame, target: Path) -> Path:
    """The run's model with both heads refitted on ``held_out``'s test rows (deliberately better there)."""
    model = load_model(run_dir / "model.keras", compile=False)
    params = json.loads((run_dir / "params.json").read_text())
    rows = held_out[held_out["split"] == "test"].reset_index(drop=True)
    size = int(params["image_size"])
    images = build_cache(rows, params["cache_dir"], size=(size, size), progress=False).images(rows)
    features = keras.Model(model.input, [model.get_layer("gap").output, model.get_layer("gap_gmp").output])
    average, both = (np.asarray(f, dtype=np.float64) for f in features.predict(images, verbose=0))
    density = pd.to_numeric(rows["density"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    has = np.isfinite(density)
    model.get_layer("density").set_weights(list(_fit_dense(average[has], density[has].astype(int), 4)))
    malignant = rows["pathology"].map({"malignant": 1.0, "benign": 0.0}).to_numpy(dtype=float, na_value=np.nan)
    has = np.isfinite(malignant)
    model.get_layer("malignancy").set_weights(list(_fit_dense(both[has], malignant[has].astype(int), 1)))
    return _copy_run(run_dir, target, model)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    candidate = data.candidate()
    folder = tmp_path_factory.mktemp("gate_models")
    return {
        "held_out": candidate.split,
        "candidate": candidate.run_dir,
        # refitting Dense heads needs the whole-image model (the lesion model's malignancy is a map's maximum)
        "better": _refitted(whole_image_run_dir(), candidate.split, folder / "better"),
        "worse": _zeroed(whole_image_run_dir(), folder / "worse"),
    }


def test_gate_rejects_a_worse_candidate_and_keeps_the_current(models: dict, tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry.json")
    registry.register(models["better"], parent=None, metrics=None, data_hash=None, promote=True)
    decision = gate.evaluate_gate(models["worse"], models["better"], models["held_out"], n_boot=20)
    assert isinstance(decision, GateDecision) and decision.promote is False
    assert sum(r.startswith("WORSE") for r in decision.reasons) == 2
    assert decision.candidate["malignancy.roc_auc"]["value"] == pytest.approx(0.5)
    assert decision.candidate["density.kappa_quadratic"]["value"] == pytest.approx(0.0)
    version = registry.register(
        models["worse"],
        parent="v1",
        metrics=decision.candidate,
        data_hash=None,
        promote=decision.promote,
        gate=decision.to_dict(),
    )
    assert version.status == "candidate-rejected" and registry.current().version == "v1"
    written = json.loads((models["worse"] / gate.GATE_FILE).read_text())
    assert written["promote"] is False and written["decided_on"] == "combined"


def test_gate_accepts_a_better_candidate_on_every_part(models: dict) -> None:
    decision = gate.evaluate_gate(models["better"], models["worse"], models["held_out"], n_boot=20, write=False)
    assert decision.promote is True, decision.reasons
    parts = decision.parts
    assert set(parts) == set(gate.PARTS)
    assert parts["base_test"]["n_images"] + parts["submissions"]["n_images"] == parts["combined"]["n_images"] > 0
    assert parts["submissions"]["n_images"] == int(
        ((models["held_out"]["split"] == "test") & (models["held_out"][gate.ORIGIN_COLUMN] == "submission")).sum()
    )
    table = decision.table()
    assert len(table) == 6 and (table.dropna(subset=["difference"])["difference"] >= 0).all()
    assert not (models["better"] / gate.GATE_FILE).exists()  # write=False


def test_gate_refuses_a_held_out_set_with_one_class(models: dict) -> None:
    held_out = models["held_out"]
    benign_only = held_out[(held_out["split"] == "val") | (held_out["pathology"] == "benign")]
    decision = gate.evaluate_gate(models["better"], models["worse"], benign_only, n_boot=10, write=False)
    assert decision.promote is False
    assert any(r.startswith("REFUSED malignancy ROC AUC") for r in decision.reasons)
    assert decision.candidate["malignancy.roc_auc"]["value"] is None
    assert decision.parts["combined"]["n_images"] == int((benign_only["split"] == "test").sum())


def test_gate_needs_val_and_test_rows(models: dict) -> None:
    held_out = models["held_out"]
    with pytest.raises(ValueError, match="0 test"):
        gate.evaluate_gate(models["better"], models["worse"], held_out[held_out["split"] == "val"], write=False)
    with pytest.raises(ValueError, match="'split' column"):
        gate.evaluate_gate(models["better"], models["worse"], held_out.drop(columns="split"), write=False)


def test_gate_traces_each_models_predict_step_once(models: dict) -> None:
    """One load and one predict call per model, in batches of one shape: no tf.function retracing."""
    held_out = models["held_out"]
    n_rows = int(held_out["split"].isin(["val", "test"]).sum())
    batch_size = 7 if n_rows % 7 else 6  # a partial last batch, which is padded
    assert n_rows % batch_size and n_rows > batch_size
    with data.predict_functions() as made:
        first = gate.evaluate_gate(
            models["better"], models["worse"], held_out, n_boot=10, batch_size=batch_size, write=False
        )
    assert data.tracing_counts(made) == [1, 1]
    again = gate.evaluate_gate(models["better"], models["worse"], held_out, n_boot=10, write=False)
    for who in ("current", "candidate"):  # the padding does not change the predictions
        for name, entry in getattr(first, who).items():
            value = getattr(again, who)[name]["value"]
            assert value == (None if entry["value"] is None else pytest.approx(entry["value"], abs=1e-6)), (who, name)


def test_gate_in_a_fresh_process_logs_no_retracing_warning(models: dict) -> None:
    """What notebook 05 printed: TensorFlow warns after 5 traces of Keras' predict step within ~10 calls.

    The warning's counter is process-wide (earlier tests' models count too), so the gate runs in a fresh process,
    with batches of 7 so that every split would end in a partial batch.
    """
    script = textwrap.dedent(f"""
        from mammo_utils.update.gate import evaluate_gate
        decision = evaluate_gate({str(models["candidate"])!r}, {str(data.base_run_dir())!r}, n_boot=5, batch_size=7,
                                 cache_dir={str(data.cache_dir())!r}, write=False)
        print("promote", decision.promote)
    """)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "promote" in done.stdout
    assert "retracing" not in done.stderr + done.stdout, done.stderr[-3000:]
