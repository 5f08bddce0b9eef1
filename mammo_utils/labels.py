"""Label vocabularies: BI-RADS density, pathology, and the seed model's joint 8-way index.

BI-RADS breast density (5th edition) has four categories, written 1–4 or a–d.
CBIS-DDSM pathology has three values that collapse to two classes.
The seed web app predicted one softmax over 8 joint classes,
``joint = (density - 1) * 2 + malignant``.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

DENSITY_CLASSES: tuple[int, ...] = (1, 2, 3, 4)
DENSITY_LETTERS: dict[int, str] = {1: "a", 2: "b", 3: "c", 4: "d"}
DENSITY_NAMES: dict[int, str] = {
    1: "almost entirely fatty",
    2: "scattered fibroglandular",
    3: "heterogeneously dense",
    4: "extremely dense",
}
PATHOLOGY_CLASSES: tuple[str, ...] = ("benign", "malignant")
CBIS_PATHOLOGY: dict[str, str] = {
    "BENIGN": "benign",
    "BENIGN_WITHOUT_CALLBACK": "benign",
    "MALIGNANT": "malignant",
}
N_JOINT = len(DENSITY_CLASSES) * len(PATHOLOGY_CLASSES)


def is_missing(value: Any) -> bool:
    """True for None, NaN, ``pd.NA`` and blank strings."""
    if value is None or value is pd.NA:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""


def density_from_any(value: Any) -> int | None:
    """Parse a BI-RADS density given as 1–4, "1"–"4", "a"–"d" or "A"–"D".

    Returns ``None`` for a missing value (None, NaN, NA, empty string).

    Raises
    ------
    ValueError
        If the value is present but is not a BI-RADS density.
    """
    if is_missing(value):
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        for density, letter in DENSITY_LETTERS.items():
            if text == letter:
                return density
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"not a BI-RADS density: {value!r} (expected 1-4 or a-d)") from None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"not a BI-RADS density: {value!r} (expected 1-4 or a-d)") from None
    if number.is_integer() and int(number) in DENSITY_CLASSES:
        return int(number)
    raise ValueError(f"not a BI-RADS density: {value!r} (expected 1-4 or a-d)")


def density_letter(density: int) -> str:
    """Return the BI-RADS letter ("a"–"d") of a density 1–4."""
    return DENSITY_LETTERS[_check_density(density)]


def density_name(density: int) -> str:
    """Return the BI-RADS wording of a density 1–4, e.g. "heterogeneously dense"."""
    return DENSITY_NAMES[_check_density(density)]


def _check_density(density: Any) -> int:
    parsed = density_from_any(density)
    if parsed is None:
        raise ValueError("density is missing")
    return parsed


def pathology_from_any(value: Any) -> str | None:
    """Map a pathology label to "benign" or "malignant".

    Accepts the CBIS-DDSM values (BENIGN, BENIGN_WITHOUT_CALLBACK, MALIGNANT), the mini-MIAS severities
    (B, M), the words benign/malignant in any case, and 0/1 (1 = malignant). Returns ``None`` if missing.

    Raises
    ------
    ValueError
        If the value is present but unknown.
    """
    if is_missing(value):
        return None
    if isinstance(value, bool):
        return "malignant" if value else "benign"
    if isinstance(value, (int, float)) and value in (0, 1):
        return "malignant" if value == 1 else "benign"
    text = str(value).strip().upper().replace(" ", "_")
    if text in CBIS_PATHOLOGY:
        return CBIS_PATHOLOGY[text]
    if text in {"B", "0"}:
        return "benign"
    if text in {"M", "1"}:
        return "malignant"
    raise ValueError(f"not a pathology: {value!r} (expected BENIGN, BENIGN_WITHOUT_CALLBACK, MALIGNANT, B/M or 0/1)")


def is_malignant(pathology: str) -> int:
    """Return 1 for a malignant pathology and 0 for a benign one."""
    parsed = pathology_from_any(pathology)
    if parsed is None:
        raise ValueError("pathology is missing")
    return int(parsed == "malignant")


def joint_index(density: int, malignant: int | bool | str) -> int:
    """The seed model's 8-way class: ``(density - 1) * 2 + malignant``."""
    if isinstance(malignant, str):
        malignant = is_malignant(malignant)
    if int(malignant) not in (0, 1):
        raise ValueError(f"malignant must be 0 or 1, got {malignant!r}")
    return (_check_density(density) - 1) * 2 + int(malignant)


def from_joint_index(index: int) -> tuple[int, int]:
    """Inverse of :func:`joint_index`: return ``(density, malignant)``."""
    if int(index) != index or not 0 <= int(index) < N_JOINT:
        raise ValueError(f"joint index must be an integer in 0..{N_JOINT - 1}, got {index!r}")
    density, malignant = divmod(int(index), 2)
    return density + 1, malignant


def joint_label_table() -> pd.DataFrame:
    """The 8 joint classes as a table: index, density, letter, density name, pathology."""
    rows = []
    for index in range(N_JOINT):
        density, malignant = from_joint_index(index)
        rows.append(
            {
                "joint_index": index,
                "density": density,
                "letter": density_letter(density),
                "density_name": density_name(density),
                "pathology": PATHOLOGY_CLASSES[malignant],
            }
        )
    return pd.DataFrame(rows)
