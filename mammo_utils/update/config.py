"""The settings of a fine-tuning run (:class:`FinetuneConfig`), saved with the candidate run's parameters."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any

DEFAULT_UNFREEZE_TOP_N = 16  # default model: the last stage (two separable units, 13 layers) + the 1x1 conv block


# ------------------------------------------------------------------------------------------- training
@dataclass(frozen=True)
class FinetuneConfig:
    """How :func:`finetune` updates a base run's model (checked when it is made; see the module notes).

    Attributes
    ----------
    base_run : path, optional
        Default :func:`~mammo_utils.models.registry.current_run_dir` (the registry's current version, else the
        latest run). :func:`update` sets it to the current version's run.
    replay_fraction, n_replay, held_out_fraction, val_fraction
        See :func:`finetune_manifest`: ``replay_fraction`` in [0, 1), ``n_replay`` >= 0 (overrides it), the two
        fractions of submission patients in [0, 1) with a sum below 1.
    epochs_heads, epochs_unfreeze : int
        Epochs of each phase (``epochs_heads`` >= 1; ``epochs_unfreeze=0`` skips the second). Fast mode caps each at 2.
    unfreeze_top_n : int or None
        Backbone layers trained in the unfreeze phase (None = all).
    lr_heads, lr_unfreeze : float
        Learning rates (positive; the second should be lower).
    batch_size, patience, fast, seed, cache_dir, verbose
        As in :class:`~mammo_utils.training.config.TrainConfig`; the same seed gives the same candidate.
    run_dir : path, optional
        Default ``models/runs/<timestamp>_finetune_<model>``.
    parent_version : str, optional
        The registry version of the base run, recorded in ``params.json`` (:func:`update` sets it).

    Raises
    ------
    ValueError
        On a number out of range.
    """

    base_run: str | os.PathLike[str] | None = None
    replay_fraction: float = 0.5
    n_replay: int | None = None
    held_out_fraction: float = 0.25
    val_fraction: float = 0.15
    epochs_heads: int = 5
    epochs_unfreeze: int = 0
    unfreeze_top_n: int | None = DEFAULT_UNFREEZE_TOP_N
    lr_heads: float = 1e-3
    lr_unfreeze: float = 1e-4
    batch_size: int = 16
    patience: int = 3
    fast: bool = False
    seed: int = 42
    run_dir: str | os.PathLike[str] | None = None
    cache_dir: str | os.PathLike[str] | None = None
    verbose: int = 0
    parent_version: str | None = None

    def __post_init__(self) -> None:
        if self.epochs_heads < 1 or self.epochs_unfreeze < 0:
            raise ValueError(
                f"epochs_heads must be >= 1 and epochs_unfreeze >= 0; got {self.epochs_heads}, {self.epochs_unfreeze}"
            )
        if not (self.lr_heads > 0 and self.lr_unfreeze > 0):
            raise ValueError(
                f"learning rates must be positive; got lr_heads={self.lr_heads}, lr_unfreeze={self.lr_unfreeze}"
            )
        if not 0 <= self.replay_fraction < 1:
            raise ValueError(f"replay_fraction must be in [0, 1), got {self.replay_fraction!r}")
        if self.n_replay is not None and self.n_replay < 0:
            raise ValueError(f"n_replay must be >= 0 or None, got {self.n_replay!r}")
        if not (0 <= self.held_out_fraction < 1 and 0 <= self.val_fraction < 1):
            raise ValueError(
                "held_out_fraction and val_fraction must be in [0, 1); "
                f"got {self.held_out_fraction}, {self.val_fraction}"
            )
        if self.held_out_fraction + self.val_fraction >= 1:
            raise ValueError("held_out_fraction + val_fraction must be below 1 (some submissions must train)")
        if self.unfreeze_top_n is not None and self.unfreeze_top_n < 0:
            raise ValueError(f"unfreeze_top_n must be >= 0 or None, got {self.unfreeze_top_n!r}")
        if self.batch_size < 1 or self.patience < 0:
            raise ValueError(f"batch_size must be >= 1 and patience >= 0; got {self.batch_size}, {self.patience}")

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain JSON values (paths as strings)."""
        out = {field.name: getattr(self, field.name) for field in fields(self)}
        for key in ("base_run", "run_dir", "cache_dir"):
            out[key] = None if out[key] is None else str(out[key])
        return out

    def phase_plan(self) -> list[tuple[str, int, float]]:
        """``(phase, epochs, learning rate)`` per phase to run: heads, then unfreeze if it has epochs."""
        plan = [("heads", self.epochs_heads, self.lr_heads)]
        return plan + ([("unfreeze", self.epochs_unfreeze, self.lr_unfreeze)] if self.epochs_unfreeze else [])
