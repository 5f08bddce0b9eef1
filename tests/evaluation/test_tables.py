"""Tests for mammo_utils.evaluation.tables: subgroups, confident mistakes, the headline table, strict JSON."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from _predictions import synthetic_predictions

from mammo_utils.datasets.schema import make_manifest
from mammo_utils.evaluation import tables as et
from mammo_utils.evaluation.predictions import predictions_frame


def test_subgroup_table():
    frame = synthetic_predictions(n_patients=12)
    frame.loc[frame["view"] == "MLO", "pathology"] = pd.NA
    frame.loc[frame["view"] == "MLO", "malignant"] = pd.NA
    table = et.subgroup_table(frame, threshold=0.5)
    assert list(table.columns) == list(et.SUBGROUP_COLUMNS)
    assert table[["group", "level"]].values.tolist() == [
        ["view", "CC"],
        ["view", "MLO"],
        ["laterality", "L"],
        ["laterality", "R"],
        ["source", "synthetic"],
    ]
    assert table["n_images"].tolist() == [24, 24, 24, 24, 48]
    mlo = table.iloc[1]
    assert mlo["n_malignancy"] == 0 and math.isnan(mlo["roc_auc"])
    assert table.iloc[4]["n_patients"] == 12


def test_most_confident_mistakes():
    frame = predictions_frame(
        make_manifest(
            [
                {"image_path": f"/{i}.png", "patient_id": f"P{i}", "density": d, "pathology": p}
                for i, (d, p) in enumerate([(1, "benign"), (2, "malignant"), (3, "benign"), (4, "benign")])
            ]
        ),
        np.array([[0.9, 0.05, 0.03, 0.02], [0.6, 0.3, 0.05, 0.05], [0.1, 0.1, 0.8, 0.0], [0.1, 0.1, 0.1, 0.7]]),
        np.array([0.2, 0.1, 0.95, 0.6]),
    )
    mistakes = et.most_confident_mistakes(frame, k=10, threshold=0.5)
    density = mistakes[mistakes["task"] == "density"]
    assert density["image_path"].tolist() == ["/1.png"] and density["predicted"].tolist() == [1]
    malignancy = mistakes[mistakes["task"] == "malignancy"]
    # wrong: /2 (benign, p 0.95), /1 (malignant, p 0.1 -> 0.9 sure it is benign), /3 (benign, p 0.6)
    assert malignancy["image_path"].tolist() == ["/2.png", "/1.png", "/3.png"]
    assert malignancy["confidence"].tolist() == pytest.approx([0.95, 0.9, 0.6])
    assert {"p_malignant", "p_density_1", "true", "predicted"} <= set(mistakes.columns)
    assert len(et.most_confident_mistakes(frame, k=1, task="malignancy")) == 1
    with pytest.raises(ValueError, match="task"):
        et.most_confident_mistakes(frame, task="joint")


def test_metric_entry_and_metrics_table():
    entry = {"value": 0.8, "ci_low": 0.7, "ci_high": 0.9, "n_boot_used": 10, "ci_widened": False}
    metrics = {"data": {"split": "test", "source": "synthetic"}, "joint_accuracy": dict(entry, value=0.5)}
    for name in et.HEADLINE_METRICS:
        section, _, key = name.partition(".")
        if key:
            metrics.setdefault(section, {})[key] = dict(entry, value=len(name) / 100)
    assert et.metric_entry(metrics, "density.kappa_linear")["value"] == len("density.kappa_linear") / 100
    assert et.metric_entry(metrics, "joint_accuracy")["value"] == 0.5
    table = et.metrics_table(metrics)
    assert table["metric"].tolist() == list(et.HEADLINE_METRICS)
    assert list(table.columns) == ["metric", "value", "ci_low", "ci_high", "split", "source"]
    assert table.set_index("metric").loc["malignancy.roc_auc", "value"] == len("malignancy.roc_auc") / 100
    assert (table["source"] == "synthetic").all()


def test_to_jsonable_makes_strict_json():
    value = {
        1: np.float32(0.5),
        "nan": math.nan,
        "inf": np.inf,
        "na": pd.NA,
        "arr": np.eye(2, dtype=int),
        "frame": pd.DataFrame({"a": [1, None]}),
        "path": __import__("pathlib").Path("/x"),
        "t": (True, None),
    }
    assert et.to_jsonable(value) == {
        "1": 0.5,
        "nan": None,
        "inf": None,
        "na": None,
        "arr": [[1, 0], [0, 1]],
        "frame": [{"a": 1.0}, {"a": None}],
        "path": "/x",
        "t": [True, None],
    }
    with pytest.raises(TypeError, match="cannot write set"):
        et.to_jsonable({"s": {1, 2}})


def test_write_metrics_json(tmp_path):
    path = et.write_metrics_json(
        {"a": np.float64("nan"), "b": np.arange(3), "c": {"d": np.int64(4)}}, tmp_path / "run" / "metrics.json"
    )
    text = path.read_text()
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}")) == {
        "a": None,
        "b": [0, 1, 2],
        "c": {"d": 4},
    }
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]  # no temporary file left behind
    with pytest.raises(TypeError, match="object"):
        et.write_metrics_json({"x": object()}, path)
    assert json.loads(path.read_text())["c"] == {"d": 4}  # a failed write leaves the old file intact
