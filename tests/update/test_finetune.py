"""Tests for mammo_utils.update.finetune: the data mix, freezing, the candidate run directory, determinism and update().

The trained artefacts (a 64×64 base run and one candidate) are built once per session by tests/_finetune_data.py.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import _finetune_data as data
import keras
import numpy as np
import pandas as pd
import pytest

from mammo_utils.models.lesion import build_lesion_model
from mammo_utils.models.networks import build_transfer_model, build_whole_image_model, load_model
from mammo_utils.models.records import data_hash
from mammo_utils.models.registry import Registry
from mammo_utils.paths import latest_run_dir
from mammo_utils.training.config import TrainConfig
from mammo_utils.training.train import RUN_FILES, train
from mammo_utils.update import config as update_config
from mammo_utils.update import data_mix
from mammo_utils.update import finetune as ft
from mammo_utils.update.gate import ORIGIN_COLUMN


def _split(n_patients: int, images_each: int = 2, source: str = "synthetic") -> pd.DataFrame:
    rows = []
    for p in range(n_patients):
        for i in range(images_each):
            rows.append(
                {
                    "image_path": f"/data/{source}/P{p}_{i}.png",
                    "patient_id": f"P{p}",
                    "density": 1 + (p % 4),
                    "pathology": "malignant" if p % 3 == 0 else "benign",
                    "source": source,
                }
            )
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------- the data mix
def test_manifest_mix_splits_submissions_by_patient_and_samples_replay() -> None:
    base = _split(30).assign(split=["train"] * 40 + ["val"] * 10 + ["test"] * 10)
    subs = _split(20, source="submission").assign(split="test")  # a given split is replaced
    mix = data_mix.finetune_manifest(subs, base, held_out_fraction=0.25, val_fraction=0.15, seed=3)
    sub_rows = mix[mix[ORIGIN_COLUMN] == "submission"]
    assert len(sub_rows) == 40 and set(sub_rows["split"]) == {"train", "val", "test"}
    assert sub_rows.groupby("patient_id")["split"].nunique().max() == 1  # patient-level
    assert sub_rows[sub_rows["split"] == "test"]["patient_id"].nunique() == 5  # 25 % of 20 patients
    n_sub_train = int((sub_rows["split"] == "train").sum())
    replay = mix[mix[ORIGIN_COLUMN] == "replay"]
    assert len(replay) == n_sub_train and set(replay["split"]) == {"train"}  # replay_fraction 0.5: as many
    assert set(replay["image_path"]) <= set(base.loc[base["split"] == "train", "image_path"])
    kept = mix[mix[ORIGIN_COLUMN] == "base"]
    assert kept["split"].value_counts().to_dict() == {"val": 10, "test": 10}
    again = data_mix.finetune_manifest(subs, base, held_out_fraction=0.25, val_fraction=0.15, seed=3)
    pd.testing.assert_frame_equal(mix, again)
    quarter = data_mix.finetune_manifest(subs, base, replay_fraction=0.2, seed=3)
    n_train = int(((quarter[ORIGIN_COLUMN] == "submission") & (quarter["split"] == "train")).sum())
    assert int((quarter[ORIGIN_COLUMN] == "replay").sum()) == round(n_train * 0.25)
    assert int((data_mix.finetune_manifest(subs, base, n_replay=7, seed=3)[ORIGIN_COLUMN] == "replay").sum()) == 7
    with pytest.warns(UserWarning, match="only 40 are available"):
        capped = data_mix.finetune_manifest(subs, base, n_replay=500, seed=3)
    assert int((capped[ORIGIN_COLUMN] == "replay").sum()) == 40
    other_pool = _split(5, source="other")
    mixed = data_mix.finetune_manifest(subs, base, replay=other_pool, n_replay=4, seed=3)
    assert set(mixed.loc[mixed[ORIGIN_COLUMN] == "replay", "source"]) == {"other"}


def test_manifest_mix_refuses_bad_input() -> None:
    base = _split(10).assign(split="train")
    subs = _split(12, source="submission")
    unlabelled = subs.assign(density=pd.NA, pathology=pd.NA)
    with pytest.raises(ValueError, match="none of the 24 submission"):
        data_mix.finetune_manifest(unlabelled, base)
    partly = subs.copy()
    partly.loc[[0, 1], ["density", "pathology"]] = pd.NA
    with pytest.warns(UserWarning, match="2 submission"):
        mix = data_mix.finetune_manifest(partly, base, seed=1)
    assert len(mix[mix[ORIGIN_COLUMN] == "submission"]) == 22
    with pytest.raises(ValueError, match="'image_path'"):
        data_mix.finetune_manifest(subs.drop(columns="image_path"), base)
    with pytest.raises(TypeError, match="manifest DataFrame"):
        data_mix.finetune_manifest(subs.to_dict("records"), base)
    with pytest.raises(ValueError, match="replay_fraction"):
        data_mix.finetune_manifest(subs, base, replay_fraction=1.0)
    with pytest.raises(ValueError, match="cannot split the 2 submission patient"):
        data_mix.finetune_manifest(_split(2, source="submission"), base, held_out_fraction=0.5, val_fraction=0.4)


# ------------------------------------------------------------------------------------------- freezing
def _trainable_names(model: keras.Model) -> set[str]:
    return {w.path.split("/")[0] for w in model.trainable_weights}


def test_trainable_flags_per_phase() -> None:
    model = build_whole_image_model((32, 32, 1), width=4)
    ft.set_finetune_trainable(model, "heads")
    assert _trainable_names(model) == {"density", "malignancy"}
    backbone = ft.backbone_layers(model)
    assert backbone[-1].name == "last_conv" and backbone[0].name == "stem_conv"
    ft.set_finetune_trainable(model, "unfreeze", top_n=16)
    names = _trainable_names(model)
    assert {"density", "malignancy", "last_conv_conv", "stage4_res_pw", "stage4_down_dw"} <= names
    assert not any("bn" in n for n in names) and "stage3_res_pw" not in names and "stem_conv" not in names
    ft.set_finetune_trainable(model, "unfreeze", top_n=None)
    assert "stem_conv" in _trainable_names(model)
    ft.set_finetune_trainable(model, "heads")
    assert _trainable_names(model) == {"density", "malignancy"}
    transfer = build_transfer_model("mobilenetv3small", input_shape=(32, 32, 1))
    ft.set_finetune_trainable(transfer, "heads")
    assert _trainable_names(transfer) == {"density", "malignancy"}
    ft.set_finetune_trainable(transfer, "unfreeze", top_n=5)
    assert len(_trainable_names(transfer)) > 2
    lesion = build_lesion_model((64, 64, 1), width=4, density_width=4)
    ft.set_finetune_trainable(lesion, "heads")
    heads = _trainable_names(lesion)
    assert {"finding_logit", "cell_malignancy", "density"} <= heads and not any(n.startswith("lesion_s") for n in heads)
    assert ft.backbone_layers(lesion)[-1].name == "lesion_top_act"
    ft.set_finetune_trainable(lesion, "unfreeze", top_n=None)
    assert "lesion_stem_conv" in _trainable_names(lesion)
    with pytest.raises(ValueError, match="phase must be"):
        ft.set_finetune_trainable(model, "all")
    with pytest.raises(ValueError, match="top_n must be"):
        ft.set_finetune_trainable(model, "unfreeze", top_n=-1)
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="not a model of mammo_utils.models.networks"):
        ft.backbone_layers(plain)


def test_train_refuses_a_mismatched_initial_model(tmp_path: Path) -> None:
    model = build_whole_image_model((32, 32, 1), width=4)
    frame = _split(4)
    with pytest.raises(ValueError, match="image_size=64"):
        train(frame, TrainConfig(model="whole_image", image_size=64, run_dir=tmp_path), initial_model=model)
    with pytest.raises(ValueError, match="model='seed'"):
        train(frame, TrainConfig(model="seed", image_size=32, run_dir=tmp_path), initial_model=model)
    with pytest.raises(ValueError, match="distribution strategy"):
        train(
            frame,
            TrainConfig(model="whole_image", image_size=32, strategy="mirrored", run_dir=tmp_path),
            initial_model=model,
        )


# ------------------------------------------------------------------------------------------- the config
def test_finetune_config_defaults_and_json_form(tmp_path: Path) -> None:
    config = update_config.FinetuneConfig()
    assert (config.epochs_heads, config.epochs_unfreeze, config.unfreeze_top_n) == (
        5,
        0,
        update_config.DEFAULT_UNFREEZE_TOP_N,
    )
    assert config.phase_plan() == [("heads", 5, 1e-3)]
    both = update_config.FinetuneConfig(
        epochs_unfreeze=2, lr_unfreeze=1e-5, base_run=tmp_path, cache_dir=tmp_path / "c"
    )
    assert both.phase_plan() == [("heads", 5, 1e-3), ("unfreeze", 2, 1e-5)]
    payload = both.to_dict()
    assert list(payload) == [f.name for f in dataclasses.fields(update_config.FinetuneConfig)]
    assert payload["base_run"] == str(tmp_path) and payload["cache_dir"] == str(tmp_path / "c")
    assert json.loads(json.dumps(payload)) == payload
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seed = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"epochs_heads": 0}, "epochs_heads must be >= 1 and epochs_unfreeze >= 0; got 0, 0"),
        ({"epochs_unfreeze": -1}, "epochs_unfreeze >= 0; got 5, -1"),
        ({"lr_unfreeze": 0.0}, "learning rates must be positive"),
        ({"replay_fraction": 1.0}, r"replay_fraction must be in \[0, 1\), got 1.0"),
        ({"n_replay": -2}, "n_replay must be >= 0 or None, got -2"),
        ({"held_out_fraction": 1.2}, r"must be in \[0, 1\); got 1.2, 0.15"),
        ({"held_out_fraction": 0.6, "val_fraction": 0.4}, "held_out_fraction \\+ val_fraction must be below 1"),
        ({"unfreeze_top_n": -1}, "unfreeze_top_n must be >= 0 or None"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
    ],
)
def test_finetune_config_refuses_bad_values(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        update_config.FinetuneConfig(**changes)


def _weights(model: keras.Model, layer_names: list[str]) -> dict[str, list[np.ndarray]]:
    """Weights by layer name, also of the layers inside a nested backbone (a lesion model's trunk)."""
    layers = {layer.name: layer for layer in ft.backbone_layers(model)}
    found = {name: layers.get(name) or model.get_layer(name) for name in layer_names}
    return {name: [np.array(w) for w in layer.get_weights()] for name, layer in found.items()}


def test_heads_phase_leaves_the_backbone_bit_identical() -> None:
    result = data.candidate()
    base = load_model(data.base_run_dir() / "model.keras", compile=False)
    heads = load_model(result.run_dir / "model_heads.keras", compile=False)
    backbone = [layer.name for layer in ft.backbone_layers(base) if layer.weights]
    assert len(backbone) > 20
    before, after = _weights(base, backbone), _weights(heads, backbone)
    for name in backbone:  # kernels and BatchNorm moving statistics alike
        assert all(np.array_equal(a, b) for a, b in zip(before[name], after[name], strict=True)), name
    for name in ("density", "finding_logit", "cell_malignancy"):  # the lesion model's heads: 1x1 convolutions
        assert not np.array_equal(base.get_layer(name).get_weights()[0], heads.get_layer(name).get_weights()[0])
    unfrozen = load_model(result.run_dir / "model_unfreeze.keras", compile=False)
    changed = {
        name
        for name in backbone
        if not all(np.array_equal(a, b) for a, b in zip(after[name], _weights(unfrozen, [name])[name], strict=True))
    }
    top = {layer.name for layer in ft.backbone_layers(base)[-data.CANDIDATE_SETTINGS.get("unfreeze_top_n", 16) :]}
    assert changed and changed <= top


# ------------------------------------------------------------------------------------------- the candidate
def config_of(result: ft.FinetuneResult) -> update_config.FinetuneConfig:
    """The config the shared candidate was made with (tests/_finetune_data.py)."""
    return update_config.FinetuneConfig(run_dir=result.run_dir, cache_dir=data.cache_dir(), **data.CANDIDATE_SETTINGS)


def test_candidate_run_directory_is_a_normal_run(tmp_path: Path) -> None:
    from mammo_utils.evaluation.run import evaluate_run
    from mammo_utils.inference.predictor import Predictor

    result = data.candidate()
    for name in RUN_FILES:
        assert (result.run_dir / name).is_file(), name
    params = json.loads((result.run_dir / "params.json").read_text())
    base_params = json.loads((data.base_run_dir() / "params.json").read_text())
    assert params["base_run"] == str(data.base_run_dir().resolve())
    assert params["image_size"] == base_params["image_size"] and params["model"] == "lesion"
    info = params["finetune"]
    assert info["config"] == dataclasses.replace(config_of(result), base_run=data.base_run_dir()).to_dict()
    assert [p["phase"] for p in info["phases"]] == ["heads", "unfreeze"]
    assert info["phases"][0]["trainable_params"] < info["phases"][1]["trainable_params"]
    assert info["kept_phase"] in ("heads", "unfreeze")
    # a lesion model has no single validation loss: its phases are ranked by validation malignancy AUC
    aucs = {p["phase"]: p["best_val_malignancy_auc"] for p in info["phases"]}
    if all(v is not None for v in aucs.values()):
        assert aucs[info["kept_phase"]] == max(aucs.values()) == params["best_val_malignancy_auc"]
    kept = load_model(result.run_dir / f"model_{info['kept_phase']}.keras", compile=False)
    assert all(np.array_equal(a, b) for a, b in zip(kept.get_weights(), result.model.get_weights(), strict=True))
    history = pd.read_csv(result.run_dir / "history.csv")
    assert history["phase"].tolist() == ["heads", "unfreeze"] and history["epoch"].tolist() == [0, 1]
    split = result.split
    assert set(split[ORIGIN_COLUMN]) == {"submission", "replay", "base"}
    subs = split[split[ORIGIN_COLUMN] == "submission"]
    assert len(subs) == 32 and subs.groupby("patient_id")["split"].nunique().max() == 1
    assert subs["patient_id"].str.startswith(data_mix.SUBMISSION_PREFIX).all()
    assert (subs["split"] == "test").any() and subs["density"].isna().any()  # partial labels are kept
    assert latest_run_dir() == data.base_run_dir()  # a candidate never moves LATEST
    evaluation = evaluate_run(result.run_dir, n_boot=20)
    assert evaluation.metrics["data"]["n_images"] == int((split["split"] == "test").sum())
    prediction = Predictor.from_run(result.run_dir, warmup=False).predict(subs["image_path"].iloc[0])
    assert 1 <= prediction.density <= 4 and 0 <= prediction.malignancy_prob <= 1


def test_update_is_deterministic_and_registers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """update() on a fresh registry: v1 = the latest run, v2 = the same candidate as finetune() with that seed.

    The gate traces one predict step per model (loading each once, batches of one shape)."""
    expected = data.candidate()
    monkeypatch.setenv("MAMMO_HOME", str(tmp_path))
    (tmp_path / "models" / "runs").mkdir(parents=True)
    (tmp_path / "models" / "runs" / "LATEST").write_text(str(data.base_run_dir().resolve()) + "\n")
    with pytest.raises(ValueError, match="roll back first"):
        ft.update(data.submissions(), update_config.FinetuneConfig(base_run=data.base_run_dir()))
    config = update_config.FinetuneConfig(cache_dir=data.cache_dir(), **data.CANDIDATE_SETTINGS)
    with data.no_graph_optimizer(), warnings.catch_warnings(), data.predict_functions() as made:
        warnings.simplefilter("ignore", UserWarning)
        result = ft.update(data.submissions(), config, n_boot=20)
    assert data.tracing_counts(made) == [1, 1]  # the gate: current and candidate model, one trace each
    assert result.base.version == "v1" and result.base.run_dir == data.base_run_dir().resolve()
    assert all(
        np.array_equal(a, b)
        for a, b in zip(result.finetune.model.get_weights(), expected.model.get_weights(), strict=True)
    )
    pd.testing.assert_frame_equal(
        result.finetune.history.drop(columns=[c for c in result.finetune.history if "time" in c]),
        expected.history.drop(columns=[c for c in expected.history if "time" in c]),
    )
    registry = Registry()
    versions = registry.versions()
    assert versions["version"].tolist() == ["v1", "v2"] and versions["parent"].tolist() == [None, "v1"]
    assert result.version.status == ("current" if result.gate.promote else "candidate-rejected")
    assert result.promoted == result.gate.promote
    assert registry.current().version == ("v2" if result.gate.promote else "v1")
    assert result.version.gate["promote"] == result.gate.promote and result.version.gate["reasons"]
    assert result.version.metrics == result.gate.candidate
    train_rows = result.finetune.split[result.finetune.split["split"] == "train"]
    assert result.version.data_hash == data_hash(train_rows)
    gate_file = json.loads((result.finetune.run_dir / "gate.json").read_text())
    assert gate_file["promote"] == result.gate.promote
    assert json.loads((result.finetune.run_dir / "params.json").read_text())["finetune"]["parent_version"] == "v1"
