import math

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mammo_utils import labels


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, 1),
        ("2", 2),
        ("c", 3),
        ("D", 4),
        (4.0, 4),
        (" b ", 2),
        (None, None),
        (float("nan"), None),
        ("", None),
        (pd.NA, None),
    ],
)
def test_density_from_any(value, expected):
    assert labels.density_from_any(value) == expected


@pytest.mark.parametrize("value", [0, 5, "e", 2.5, "dense", object()])
def test_density_from_any_rejects(value):
    with pytest.raises(ValueError, match="BI-RADS density"):
        labels.density_from_any(value)


def test_letters_and_names():
    assert [labels.density_letter(d) for d in (1, 2, 3, 4)] == ["a", "b", "c", "d"]
    assert labels.density_name(3) == "heterogeneously dense"
    assert labels.density_name("a") == "almost entirely fatty"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("BENIGN", "benign"),
        ("BENIGN_WITHOUT_CALLBACK", "benign"),
        ("MALIGNANT", "malignant"),
        ("malignant", "malignant"),
        ("B", "benign"),
        ("M", "malignant"),
        (1, "malignant"),
        (0, "benign"),
        (True, "malignant"),
        (math.nan, None),
        (None, None),
    ],
)
def test_pathology_from_any(value, expected):
    assert labels.pathology_from_any(value) == expected


def test_pathology_rejects_unknown():
    with pytest.raises(ValueError, match="not a pathology"):
        labels.pathology_from_any("maybe")


def test_joint_index_matches_seed_formula():
    assert labels.joint_index(1, 0) == 0
    assert labels.joint_index(1, "malignant") == 1
    assert labels.joint_index(4, 1) == 7
    assert labels.joint_index("c", "BENIGN") == 4


@given(st.integers(min_value=0, max_value=7))
def test_joint_round_trip(index):
    density, malignant = labels.from_joint_index(index)
    assert labels.joint_index(density, malignant) == index


@pytest.mark.parametrize("index", [-1, 8, 2.5])
def test_from_joint_rejects(index):
    with pytest.raises(ValueError):
        labels.from_joint_index(index)


def test_joint_label_table():
    table = labels.joint_label_table()
    assert len(table) == 8
    assert table.loc[5].to_dict() == {
        "joint_index": 5,
        "density": 3,
        "letter": "c",
        "density_name": "heterogeneously dense",
        "pathology": "malignant",
    }
