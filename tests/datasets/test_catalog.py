"""Tests for mammo_utils.datasets.catalog: ``load`` and ``load_findings`` by name for every entry of ``DATASETS``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mammo_utils.datasets import catalog, schema
from mammo_utils.datasets.catalog import DATASETS, load, load_findings
from mammo_utils.datasets.findings import FINDINGS_COLUMNS, FindingsError, findings_from_synthetic
from mammo_utils.datasets.synthetic import generate_synthetic


def _grey_png(path: Path, shape: tuple[int, int] = (64, 48)) -> Path:
    ramp = np.linspace(0, 255, shape[0] * shape[1]).reshape(shape).astype(np.uint8)
    Image.fromarray(ramp).save(path)
    return path


def test_the_catalog_names() -> None:
    assert DATASETS == ("synthetic", "sample", "cbis-ddsm", "mias", "manifest")


def test_load_synthetic_passes_its_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []

    def small_set(**kwargs: Any) -> pd.DataFrame:  # the real generator, on 6 images instead of 200
        calls.append(kwargs)
        return generate_synthetic(n=6, workers=1, **kwargs)

    monkeypatch.setattr(catalog, "generate_synthetic", small_set)
    frame = load("synthetic", data_dir=tmp_path / "set", fast=True, seed=7)
    assert calls == [{"out_dir": tmp_path / "set", "fast": True, "seed": 7}]
    schema.validate_manifest(frame)
    assert len(frame) == 6 and (frame["source"] == "synthetic").all()
    assert all(Path(path).is_file() for path in frame["image_path"])
    monkeypatch.setenv("MAMMO_HOME", str(tmp_path / "home"))
    load("Synthetic", data_dir=None)
    assert calls[-1] == {"out_dir": None, "fast": False, "seed": 42}  # the default folder is the generator's
    assert (tmp_path / "home" / "data" / "synthetic" / "manifest.csv").is_file()


def test_load_sample_reads_the_real_dicoms() -> None:
    frame = schema.validate_manifest(load(" Sample "))
    assert len(frame) == 8 and all(Path(path).suffix == ".dcm" for path in frame["image_path"])


def test_load_manifest_reads_a_csv(tmp_path: Path) -> None:
    _grey_png(tmp_path / "a.png")
    (tmp_path / "list.csv").write_text("image_path,density\na.png,2\n")
    frame = schema.validate_manifest(load("manifest", tmp_path / "list.csv"))
    assert frame["image_path"].tolist() == [str((tmp_path / "a.png").resolve())] and frame["density"].tolist() == [2]


def test_load_mias_reads_the_folder(tmp_path: Path) -> None:
    (tmp_path / "Info.txt").write_text("mdb001 G CIRC B 10 20 5\nmdb002 F NORM\n")
    for name in ("mdb001.pgm", "mdb002.pgm"):
        _grey_png(tmp_path / name)
    frame = schema.validate_manifest(load("MIAS", str(tmp_path)))
    assert len(frame) == 2 and (frame["source"] == "mias").all()


def test_load_cbis_ddsm_reaches_the_loader(tmp_path: Path) -> None:
    """The CBIS-DDSM loader itself is tested on a built tree in test_loaders.py; here: ``load`` gets there."""
    with pytest.raises(FileNotFoundError, match="CBIS-DDSM folder not found"):
        load("cbis_ddsm", tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="mass_case_description_train_set.csv"):
        load("CBIS-DDSM", tmp_path)


@pytest.mark.parametrize("name", ["cbis-ddsm", "mias", "manifest"])
def test_loaders_on_disk_need_data_dir(name: str) -> None:
    with pytest.raises(ValueError, match=f"dataset {name!r} needs data_dir"):
        load(name)


def test_unknown_names_list_the_choices() -> None:
    with pytest.raises(ValueError, match="unknown dataset 'inbreast'; choose one of synthetic, sample, cbis-ddsm"):
        load("inbreast", "/tmp")


def test_load_findings_of_the_synthetic_set_is_its_ground_truth(tmp_path: Path) -> None:
    manifest = generate_synthetic(out_dir=tmp_path / "set", n=4, workers=1)
    findings = load_findings(" Synthetic", manifest, data_dir=tmp_path / "set")
    pd.testing.assert_frame_equal(findings, findings_from_synthetic(manifest))
    assert len(findings) == 4 and set(findings["image_path"]) == set(manifest["image_path"])
    with pytest.raises(FindingsError, match="not a synthetic manifest"):
        load_findings("synthetic", schema.make_manifest(manifest))  # the ground-truth columns dropped


@pytest.mark.parametrize("name", ["sample", "cbis-ddsm", "mias", "manifest"])
def test_load_findings_of_the_other_sets_is_empty_for_now(name: str) -> None:
    manifest = schema.make_manifest([{"image_path": "a.png"}])
    findings = load_findings(name, manifest)
    assert findings.empty and tuple(findings.columns) == FINDINGS_COLUMNS
    with pytest.raises(ValueError, match="unknown dataset 'inbreast'; choose one of synthetic"):
        load_findings("inbreast", manifest)
