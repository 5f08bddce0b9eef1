"""Shared, session-cached artefacts for test_finetune and test_gate: one small base run and one fine-tuned candidate.

The submissions and the candidate live in a private folder of the session's ``MAMMO_HOME``
(``data/finetune_tests``); fine-tuning never moves ``models/runs/LATEST``, so the shared model stays the latest run.

* base: the session's shared fast-trained default model (tests/_trained.py: one epoch on 64 synthetic images with
  the default density mix), so no extra base model is trained;
* submissions: 32 synthetic images drawn with a different density mix (mostly c and d) and ``source="submission"``;
  three rows lose their density label and three others their pathology, as partial submissions do;
* candidate: :data:`CANDIDATE_SETTINGS` (:class:`~mammo_utils.update.finetune.FinetuneConfig` fields) fine-tuning
  of the base on those submissions (heads, then unfreeze).

:func:`predict_functions` records the predict ``tf.function`` s Keras makes meanwhile, to count their traces.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

SUBMISSION_MIX = (0.05, 0.15, 0.40, 0.40)
CANDIDATE_SETTINGS: dict[str, Any] = {
    "epochs_heads": 1,
    "epochs_unfreeze": 1,
    "unfreeze_top_n": 16,
    "batch_size": 16,
    "fast": True,
    "seed": 5,
}


@contextlib.contextmanager
def no_graph_optimizer() -> Iterator[None]:
    import tensorflow as tf

    options = tf.config.optimizer.get_experimental_options()
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": False, **options})


@contextlib.contextmanager
def predict_functions() -> Iterator[list[Any]]:
    """Record the predict ``tf.function`` s Keras makes inside the block (one per model that predicts).

    Each is traced once per new input signature; ``f.experimental_get_tracing_count()`` after the block says how
    often. Every model makes its own, so loading a model again, or a differently shaped batch, shows up.
    """
    import keras

    made: list[Any] = []
    original = keras.Model.make_predict_function

    def make(self: Any, force: bool = False) -> Any:
        original(self, force)  # returns None when it makes the function: Keras keeps it on the model
        if not any(self.predict_function is seen for seen in made):
            made.append(self.predict_function)
        return self.predict_function

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(keras.Model, "make_predict_function", make)
        yield made


def tracing_counts(functions: list[Any]) -> list[int]:
    """How often each recorded ``tf.function`` was traced."""
    return [int(f.experimental_get_tracing_count()) for f in functions]


@lru_cache(maxsize=1)
def folder() -> Path:
    from mammo_utils import paths

    return paths.ensure_dir(paths.data_dir() / "finetune_tests")


def cache_dir() -> Path:
    return folder() / "cache"


def base_run_dir() -> Path:
    """The session's shared fast-trained default model (tests/_trained.py), used as the base."""
    from _trained import trained_run_dir

    return trained_run_dir()


@lru_cache(maxsize=1)
def submissions() -> pd.DataFrame:
    from mammo_utils.datasets.synthetic import generate_synthetic

    frame = generate_synthetic(
        folder() / "submission_images", n=32, seed=12, workers=1, density_probabilities=SUBMISSION_MIX
    ).assign(source="submission")
    frame.loc[[1, 5, 9], "density"] = pd.NA
    frame.loc[[2, 6, 10], "pathology"] = pd.NA
    return frame


@lru_cache(maxsize=1)
def candidate():
    """The :class:`~mammo_utils.update.finetune.FinetuneResult` of the base on the submissions."""
    from mammo_utils.update.config import FinetuneConfig
    from mammo_utils.update.finetune import finetune

    config = FinetuneConfig(
        base_run=base_run_dir(), run_dir=folder() / "runs" / "candidate", cache_dir=cache_dir(), **CANDIDATE_SETTINGS
    )
    with no_graph_optimizer():
        return finetune(submissions(), config)
