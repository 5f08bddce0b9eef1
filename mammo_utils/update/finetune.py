"""Update a trained model on new labelled images (e.g. accepted submissions) by transfer learning.

:func:`finetune` starts from a base run's model (default: the registry's current version) and trains on the
submissions plus a *replay* sample of the base run's own training rows, so the model learns the new data without
forgetting the old:

1. **Heads phase** — the backbone (every layer up to :data:`~mammo_utils.models.networks.LAST_CONV_LAYER`, or the
   ``"backbone"`` sub-model of a transfer model) is frozen, BatchNorm statistics included; only the density and
   malignancy heads train, at ``lr_heads``.
2. **Unfreeze phase** (optional, ``epochs_unfreeze > 0``) — the top ``unfreeze_top_n`` backbone layers train too,
   at the lower ``lr_unfreeze``; BatchNorm layers stay frozen (small fine-tuning batches would wreck their
   statistics). The candidate is the checkpoint with the lowest validation loss over both phases.

Data: the submissions are split **by patient** into train / val / held-out (``held_out_fraction``, kept out of
training for the gate); validation = the base run's validation rows + the submissions' val slice; the held-out
``test`` rows = the base run's test split + the held-out submissions. Rows missing one label still train the other
head (the pipeline masks it, see :func:`~mammo_utils.training.pipeline.targets_and_weights`); rows with no label at
all are left out. Every row carries :data:`~mammo_utils.update.gate.ORIGIN_COLUMN` (``submission`` / ``replay`` /
``base``), and submission patient IDs get the prefix ``"submission:"``, so a submitter's ``P1`` is never taken for
the original data set's ``P1`` (e.g. in the patient-level bootstrap, or the val/test overlap check).

The candidate's run directory is a normal run directory (``model.keras``, ``history.csv`` with a ``phase`` column,
``params.json`` with ``base_run`` and a ``finetune`` section, ``split.csv`` ...), so ``evaluate_run`` and the
Predictor work on it; ``models/runs/LATEST`` is *not* moved (the registry decides which model is current).
:func:`update` chains it all: register the existing model as v1 if needed, fine-tune, gate, register.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd

from mammo_utils.evaluation.run import read_split
from mammo_utils.models.lesion import LESION_TRUNK, is_lesion_model
from mammo_utils.models.networks import BACKBONE_LAYER, LAST_CONV_LAYER, load_model, set_backbone_trainable
from mammo_utils.models.records import data_hash
from mammo_utils.models.registry import ModelVersion, Registry, current_run_dir
from mammo_utils.paths import runs_dir
from mammo_utils.training.config import TrainConfig
from mammo_utils.training.runs import load_run
from mammo_utils.training.steps import unique_run_dir, write_json
from mammo_utils.training.train import train
from mammo_utils.update.config import DEFAULT_UNFREEZE_TOP_N, FinetuneConfig
from mammo_utils.update.data_mix import finetune_manifest
from mammo_utils.update.gate import DEFAULT_TOLERANCE, ORIGIN_COLUMN, GateDecision, evaluate_gate

PHASES: tuple[str, ...] = ("heads", "unfreeze")


@dataclass
class FinetuneResult:
    """A fine-tuned candidate.

    Attributes
    ----------
    run_dir : Path
        The candidate's run directory.
    model : keras.Model
        The candidate (best validation loss over the phases).
    history : pandas.DataFrame
        Both phases, with ``phase`` and a running ``epoch``.
    params : dict
        ``params.json``.
    base_run_dir : Path
        The run it was fine-tuned from.
    split : pandas.DataFrame
        Every row used, with ``split`` and :data:`~mammo_utils.update.gate.ORIGIN_COLUMN`.
    """

    run_dir: Path
    model: keras.Model
    history: pd.DataFrame
    params: dict[str, Any]
    base_run_dir: Path
    split: pd.DataFrame


# ------------------------------------------------------------------------------------------- freezing
def backbone_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The feature-extractor layers of a model of :mod:`mammo_utils.models.networks`, input to top.

    A transfer model's ``"backbone"`` sub-model's layers; a lesion model's lesion trunk (its nested sub-model,
    without the input); otherwise every layer up to and including
    :data:`~mammo_utils.models.networks.LAST_CONV_LAYER` (the whole-image and the seed model).
    """
    try:
        return list(model.get_layer(BACKBONE_LAYER).layers)
    except ValueError:
        pass
    if is_lesion_model(model):
        trunk = model.get_layer(LESION_TRUNK)
        return [layer for layer in trunk.layers if not isinstance(layer, keras.layers.InputLayer)]
    names = [layer.name for layer in model.layers]
    if LAST_CONV_LAYER not in names:
        raise ValueError(
            f"model {model.name!r} has neither a {BACKBONE_LAYER!r} sub-model nor a "
            f"{LAST_CONV_LAYER!r} layer; it is not a model of mammo_utils.models.networks"
        )
    return [
        layer
        for layer in model.layers[: names.index(LAST_CONV_LAYER) + 1]
        if not isinstance(layer, keras.layers.InputLayer)
    ]


def set_finetune_trainable(model: keras.Model, phase: str, top_n: int | None = DEFAULT_UNFREEZE_TOP_N) -> keras.Model:
    """Set the ``trainable`` flags for a fine-tuning phase (in place; compile afterwards).

    ``"heads"``: the backbone is frozen, everything else trains. ``"unfreeze"``: also the top ``top_n`` backbone
    layers (None = all), except BatchNormalization layers, which stay frozen.
    """
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
    if top_n is not None and top_n < 0:
        raise ValueError(f"top_n must be >= 0 or None, got {top_n!r}")
    model.trainable = True
    for layer in model.layers:
        layer.trainable = True
    backbone = backbone_layers(model)
    try:
        model.get_layer(BACKBONE_LAYER)
        set_backbone_trainable(model, phase == "unfreeze", top_n)
        return model
    except ValueError:
        pass
    first = len(backbone) if phase == "heads" else 0 if top_n is None else max(0, len(backbone) - top_n)
    for index, layer in enumerate(backbone):
        layer.trainable = index >= first and not isinstance(layer, keras.layers.BatchNormalization)
    return model


def _phase_config(
    config: FinetuneConfig, base_params: dict[str, Any], folder: Path, epochs: int, lr: float
) -> TrainConfig:
    """The :class:`TrainConfig` of one phase: the base run's model and image size, the candidate's folder."""
    return TrainConfig(
        model=str(base_params["model"]),
        epochs=epochs,
        batch_size=config.batch_size,
        image_size=int(base_params["image_size"]),
        seed=config.seed,
        run_dir=folder,
        learning_rate=lr,
        patience=config.patience,
        fast=config.fast,
        cache_dir=config.cache_dir,
        verbose=config.verbose,
        point_latest=False,
    )


def _mix(
    submissions: pd.DataFrame, base_dir: Path, replay: pd.DataFrame | None, config: FinetuneConfig
) -> pd.DataFrame:
    """:func:`finetune_manifest` with the config's fractions and seed."""
    return finetune_manifest(
        submissions,
        read_split(base_dir),
        replay,
        replay_fraction=config.replay_fraction,
        n_replay=config.n_replay,
        held_out_fraction=config.held_out_fraction,
        val_fraction=config.val_fraction,
        seed=config.seed,
    )


def _finetune_info(config: FinetuneConfig, base_dir: Path, manifest: pd.DataFrame) -> dict[str, Any]:
    """The ``finetune`` section of ``params.json`` before training: base run, rows per split and origin, config."""
    counts = manifest.groupby(["split", ORIGIN_COLUMN]).size()
    settings = [*("replay_fraction", "n_replay", "held_out_fraction", "val_fraction", "epochs_heads")]
    settings += ["epochs_unfreeze", "unfreeze_top_n", "lr_heads", "lr_unfreeze"]
    return {
        "base_run": str(base_dir.resolve()),
        "parent_version": config.parent_version,
        "phases": [],
        "rows": {f"{s}/{o}": int(n) for (s, o), n in zip(counts.index, counts, strict=True)},
        "settings": {key: getattr(config, key) for key in settings},
        "config": config.to_dict(),
    }


def _train_phases(
    manifest: pd.DataFrame, network: keras.Model, config: FinetuneConfig, base_params: dict[str, Any], folder: Path
) -> tuple[list[pd.DataFrame], list[dict[str, Any]]]:
    """Run each phase from the previous phase's best model; each phase's best is kept as ``model_<phase>.keras``."""
    histories, phases = [], []
    base_run = str(Path(config.base_run).resolve()) if config.base_run is not None else None
    for phase, epochs, lr in config.phase_plan():
        set_finetune_trainable(network, phase, config.unfreeze_top_n)
        result = train(
            manifest,
            _phase_config(config, base_params, folder, epochs, lr),
            initial_model=network,
            extra_params={"base_run": base_run, "finetune_phase": phase},
        )
        shutil.copyfile(folder / "model.keras", folder / f"model_{phase}.keras")
        keras.utils.set_random_seed(config.seed)
        network = load_model(folder / "model.keras", compile=False)  # the phase's best weights, not its last ones
        histories.append(result.history.assign(phase=phase))
        phases.append(
            {
                "phase": phase,
                "epochs_trained": result.params["epochs_trained"],
                "learning_rate": lr,
                "best_val_loss": _number(result.params.get("best_val_loss")),
                "best_val_malignancy_auc": _number(result.params.get("best_val_malignancy_auc")),
                "trainable_params": result.params["n_params"]["trainable"],
            }
        )
    return histories, phases


def _number(value: Any) -> float | None:
    """A finite float, or None (a missing or NaN score)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def _phase_loss(entry: dict[str, Any]) -> float:
    """Lower is better: minus the validation malignancy AUC (lesion models), else the validation loss, else +inf."""
    if entry.get("best_val_malignancy_auc") is not None:
        return -float(entry["best_val_malignancy_auc"])
    if entry.get("best_val_loss") is not None:
        return float(entry["best_val_loss"])
    return float("inf")


def _keep_best_phase(
    folder: Path, histories: list[pd.DataFrame], phases: list[dict[str, Any]], info: dict[str, Any], model: str
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Make the phase with the best validation score the candidate; write the joint history and ``params.json``.

    The score is the lowest validation loss, or for a lesion model (which trains to it) the
    highest validation malignancy AUC.
    """
    best = {entry["phase"]: _phase_loss(entry) for entry in phases}
    kept = min(best, key=lambda phase: (best[phase], PHASES.index(phase)))
    chosen = next(entry for entry in phases if entry["phase"] == kept)
    shutil.copyfile(folder / f"model_{kept}.keras", folder / "model.keras")
    history = pd.concat(histories, ignore_index=True)
    history["epoch"] = range(len(history))
    history.to_csv(folder / "history.csv", index=False)
    params = json.loads((folder / "params.json").read_text(encoding="utf-8"))
    params.update(
        {
            "model": model,
            "epochs_trained": len(history),
            "best_val_loss": chosen["best_val_loss"],
            "best_val_malignancy_auc": chosen["best_val_malignancy_auc"],
            "finetune_phase": kept,
            "finetune": info | {"phases": phases, "kept_phase": kept},
        }
    )
    write_json(folder / "params.json", params)
    return params, history


def finetune(
    submissions: pd.DataFrame, config: FinetuneConfig | None = None, *, replay: pd.DataFrame | None = None
) -> FinetuneResult:
    """Fine-tune the base run's model on ``submissions`` + replay (see the module notes).

    Parameters
    ----------
    submissions : pandas.DataFrame
        Labelled manifest rows (e.g. ``Store().manifest(status="accepted")``, or a synthetic manifest).
    config : FinetuneConfig, optional
        Default ``FinetuneConfig()``: the registry's current version, heads phase only. It is saved in the
        candidate's ``params.json`` (``finetune.config``).
    replay : pandas.DataFrame, optional
        Replay pool (default: the base run's training rows; see :func:`finetune_manifest`).

    Returns
    -------
    FinetuneResult
    """
    config = config if config is not None else FinetuneConfig()
    base_dir = Path(config.base_run) if config.base_run is not None else current_run_dir()
    config = replace(config, base_run=base_dir)
    keras.utils.set_random_seed(config.seed)  # dropout layers draw their seeds when the model is built (loaded)
    base = load_run(base_dir, compile=False)
    manifest = _mix(submissions, base_dir, replay, config)
    model = str(base.params["model"])
    folder = Path(config.run_dir) if config.run_dir is not None else unique_run_dir(runs_dir(), f"finetune_{model}")
    info = _finetune_info(config, base_dir, manifest)
    histories, phases = _train_phases(manifest, base.model, config, base.params, folder)
    params, history = _keep_best_phase(folder, histories, phases, info, model)
    candidate = load_model(folder / "model.keras", compile=False)
    return FinetuneResult(folder, candidate, history, params, base_dir, read_split(folder))


# --------------------------------------------------------------------------------------------- update
@dataclass
class UpdateResult:
    """What :func:`update` did: the base version, the candidate run, the gate's decision, the new version."""

    base: ModelVersion
    finetune: FinetuneResult
    gate: GateDecision
    version: ModelVersion

    @property
    def promoted(self) -> bool:
        """Whether the new version became current."""
        return self.version.status == "current"


def _current_version(registry: Registry, config: FinetuneConfig, hash_content: bool) -> ModelVersion:
    """The registry's current version (v1 = the latest run if the registry is empty), with its model on disk."""
    if config.base_run is not None or config.parent_version is not None:
        raise ValueError(
            "update() fine-tunes the registry's current version and sets base_run and parent_version itself; "
            "leave them None (roll back first to fine-tune another version)"
        )
    base = registry.ensure_initial(content=hash_content)
    if not base.model_path.is_file():
        raise FileNotFoundError(
            f"the current version {base.version} has no model at {base.model_path}; roll back to another version first"
        )
    return base


def update(
    submissions: pd.DataFrame,
    config: FinetuneConfig | None = None,
    *,
    registry: Registry | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    n_boot: int = 200,
    hash_content: bool = True,
    replay: pd.DataFrame | None = None,
) -> UpdateResult:
    """Fine-tune the current version on ``submissions``, gate it and register it (promoted or rejected).

    The registry is first seeded with the latest training run as v1 if it is empty
    (:meth:`Registry.ensure_initial`). ``config`` and ``replay`` go to :func:`finetune`, with ``base_run`` and
    ``parent_version`` set to the current version (so the config must leave them None). The new version's
    metrics are the candidate's gate metrics on the combined held-out rows; its data hash covers the
    candidate's training rows (submissions + replay).

    Parameters
    ----------
    submissions : pandas.DataFrame
        Labelled manifest rows (e.g. ``Store().manifest(status="accepted")``).
    config : FinetuneConfig, optional
        Default ``FinetuneConfig()``.
    registry : Registry, optional
        Default ``Registry()``.
    tolerance, n_boot
        The gate's allowed drop per metric and its bootstrap replicates
        (see :func:`~mammo_utils.update.gate.evaluate_gate`).
    hash_content : bool
        Hash the training images' bytes (not only their paths) in the data hash.
    replay : pandas.DataFrame, optional
        Replay pool (default: the base run's training rows).

    Raises
    ------
    ValueError
        If ``config`` names a ``base_run`` or ``parent_version``.
    FileNotFoundError
        If the current version's model file is missing.
    """
    config = config if config is not None else FinetuneConfig()
    registry = registry or Registry()
    base = _current_version(registry, config, hash_content)
    config = replace(config, base_run=base.run_dir, parent_version=base.version)
    result = finetune(submissions, config, replay=replay)
    decision = evaluate_gate(
        result.run_dir, base.run_dir, tolerance=tolerance, n_boot=n_boot, seed=config.seed, cache_dir=config.cache_dir
    )
    train_rows = result.split[result.split["split"] == "train"]
    version = registry.register(
        result.run_dir,
        parent=base.version,
        metrics=decision.candidate,
        data_hash=data_hash(train_rows, content=hash_content),
        promote=decision.promote,
        gate=decision.to_dict(),
    )
    return UpdateResult(base, result, decision, version)


__all__ = [
    "FinetuneResult",
    "UpdateResult",
    "backbone_layers",
    "finetune",
    "set_finetune_trainable",
    "update",
]
