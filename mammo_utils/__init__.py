"""Mammography for teaching and research: read and standardize mammograms, train and evaluate BI-RADS density and
malignancy models, predict with them, and update them on reviewed submissions.

The code lives in subpackages by job (``imaging``, ``datasets``, ``models``, ``submissions``, ``training``,
``inference``, ``evaluation``, ``update``, ``app``); this package root holds no names of its own.

Importing any part of the package first imports this file, so it is the one place that quiets TensorFlow before
TensorFlow can be imported: ``TF_CPP_MIN_LOG_LEVEL=2`` keeps TensorFlow's C++ start-up lines (absl's "All log
messages before absl::InitializeLog() ...", ``cpu_feature_guard``'s "optimized to use available CPU instructions",
oneDNN's notices) off stderr. Only logging is changed, never numerics, and C++ errors still show. The variable is
set only if it is unset, so ``TF_CPP_MIN_LOG_LEVEL=0`` in the environment brings the lines back. The two notices
that level cannot reach on some CPUs are kept off stderr during TensorFlow's import by
:mod:`mammo_utils.models.quiet_import`.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mammo_utils.models import quiet_import  # after the variable: TensorFlow must not load first

quiet_import.install()
