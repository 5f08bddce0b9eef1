"""The fine-tuning data mix: accepted submissions split by patient, a replay sample, the base run's val/test rows."""

from __future__ import annotations

import warnings

import pandas as pd

from mammo_utils.datasets.schema import MANIFEST_COLUMNS, ManifestError, make_manifest
from mammo_utils.datasets.splits import split_by_patient
from mammo_utils.update.gate import ORIGIN_COLUMN

SUBMISSION_PREFIX = "submission:"  # prefixed to submission patient IDs in the fine-tuning manifest


# ------------------------------------------------------------------------------------------- the data
def _labelled_submissions(submissions: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(submissions, pd.DataFrame):
        raise TypeError(f"submissions must be a manifest DataFrame, got {type(submissions).__name__}")
    if "image_path" not in submissions.columns:
        raise ValueError(
            "submissions need an 'image_path' column (a manifest, e.g. Store().manifest(status='accepted'))"
        )
    frame = make_manifest(submissions)
    has_label = frame["density"].notna() | frame["pathology"].notna()
    if not has_label.any():
        raise ValueError(
            f"none of the {len(frame)} submission(s) has a density or pathology label; "
            "fine-tuning needs labelled submissions"
        )
    if not has_label.all():
        warnings.warn(f"{int((~has_label).sum())} submission(s) without any label are left out", stacklevel=3)
    frame = frame[has_label].reset_index(drop=True)
    frame["source"] = frame["source"].fillna("submission")
    return frame


def _replay_rows(
    pool: pd.DataFrame, n_sub_train: int, replay_fraction: float, n_replay: int | None, seed: int
) -> pd.DataFrame:
    if n_replay is None:
        if not 0 <= replay_fraction < 1:
            raise ValueError(f"replay_fraction must be in [0, 1), got {replay_fraction!r}")
        n_replay = round(n_sub_train * replay_fraction / (1 - replay_fraction))
    if n_replay < 0:
        raise ValueError(f"n_replay must be >= 0, got {n_replay!r}")
    if n_replay > len(pool):
        warnings.warn(f"asked for {n_replay} replay images but only {len(pool)} are available; using all", stacklevel=3)
        n_replay = len(pool)
    return pool.sample(n=int(n_replay), random_state=seed).sort_index() if n_replay else pool.iloc[:0]


def finetune_manifest(
    submissions: pd.DataFrame,
    base_split: pd.DataFrame,
    replay: pd.DataFrame | None = None,
    *,
    replay_fraction: float = 0.5,
    n_replay: int | None = None,
    held_out_fraction: float = 0.25,
    val_fraction: float = 0.15,
    seed: int = 42,
) -> pd.DataFrame:
    """The fine-tuning manifest: submissions split by patient, a replay sample, the base val/test rows.

    Parameters
    ----------
    submissions : pandas.DataFrame
        Labelled manifest rows; any ``split`` they carry is replaced.
    base_split : pandas.DataFrame
        The base run's ``split.csv`` (its ``val`` and ``test`` rows are kept as they are).
    replay : pandas.DataFrame, optional
        Replay pool (default: the base split's ``train`` rows).
    replay_fraction : float
        Share of replay images in the training mix, in [0, 1): 0.5 = as many replay as submission images.
    n_replay : int, optional
        Number of replay images (overrides ``replay_fraction``).
    held_out_fraction, val_fraction : float
        Fractions of submission *patients* held out for the gate, and for validation.
    seed : int

    Returns
    -------
    pandas.DataFrame
        Manifest columns plus :data:`~mammo_utils.update.gate.ORIGIN_COLUMN`.
    """
    frame = _labelled_submissions(submissions)
    try:
        frame = split_by_patient(frame, val_fraction=val_fraction, test_fraction=held_out_fraction, seed=seed)
    except ManifestError as exc:
        raise ManifestError(
            f"cannot split the {frame['patient_id'].nunique()} submission patient(s) with "
            f"held_out_fraction={held_out_fraction} and val_fraction={val_fraction}: {exc}"
        ) from exc
    n_train = int((frame["split"] == "train").sum())  # >= 1: split_by_patient never empties the training split
    frame[ORIGIN_COLUMN] = "submission"
    frame["patient_id"] = [f"{SUBMISSION_PREFIX}{p}" for p in frame["patient_id"]]  # never merged with base patients
    base = make_manifest(base_split)
    pool = base[base["split"] == "train"] if replay is None else make_manifest(replay)
    replayed = _replay_rows(pool, n_train, replay_fraction, n_replay, seed).assign(split="train")
    replayed[ORIGIN_COLUMN] = "replay"
    kept = base[base["split"].isin(["val", "test"])].copy()
    kept[ORIGIN_COLUMN] = "base"
    columns = [*MANIFEST_COLUMNS, ORIGIN_COLUMN]
    return pd.concat([frame[columns], replayed[columns], kept[columns]], ignore_index=True)
