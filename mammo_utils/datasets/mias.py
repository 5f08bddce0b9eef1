"""mini-MIAS (Mammographic Image Analysis Society MiniMammographic Database) as a manifest.

Layout: ``root/mdbNNN.pgm`` (or ``root/all-mias/mdbNNN.pgm``) and ``root/Info.txt``, one line per finding::

    REFNUM BG CLASS SEVERITY X Y RADIUS
    mdb001 G CIRC B 535 425 197
    mdb003 D NORM
    mdb005 F CIRC B 477 133 30
    mdb005 F CIRC B 500 168 26

Columns (from the database README): reference; background tissue F (fatty), G (fatty-glandular),
D (dense-glandular); abnormality class CALC, CIRC, SPIC, MISC, ARCH, ASYM or NORM (normal); severity
B (benign) / M (malignant); x, y, radius of the finding (absent for NORM and for widely spread
calcifications). Lines that do not start with an ``mdbNNN`` reference (headers, blank lines) are skipped.

Choices, documented:

- One row per image; an image with several findings is malignant if any finding is M ("malignant wins");
  NORM images have pathology NA and ``abnormality="NORM"``.
- The background tissue goes into its own 3-level column ``mias_background`` (ordered F < G < D) and
  ``density`` stays NA: MIAS's three tissue classes predate and do not map onto the four BI-RADS density
  categories (fatty-glandular spans BI-RADS b and c), so forcing them would invent labels.
- Laterality: the README says the films come in pairs per patient, "the left (even filename numbers)
  and right mammograms (odd filename numbers)", so odd → "R", even → "L", and ``patient_id`` is the odd
  member of the pair (mdb001 and mdb002 → "mdb001").
- View: every MIAS film is a medio-lateral oblique view, so ``view="MLO"``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mammo_utils.datasets import schema
from mammo_utils.datasets.manifest import MissingPolicy, drop_or_raise_missing
from mammo_utils.datasets.schema import ManifestError, make_manifest

BACKGROUNDS: dict[str, str] = {"F": "fatty", "G": "fatty-glandular", "D": "dense-glandular"}
ABNORMALITIES: dict[str, str] = {
    "CALC": "calcification",
    "CIRC": "well-defined/circumscribed mass",
    "SPIC": "spiculated mass",
    "MISC": "other, ill-defined mass",
    "ARCH": "architectural distortion",
    "ASYM": "asymmetry",
    "NORM": "normal",
}
SEVERITIES: dict[str, str] = {"B": "benign", "M": "malignant"}
EXTRA_COLUMNS: tuple[str, ...] = ("mias_background", "abnormality")
_REFERENCE = re.compile(r"mdb(\d{3})", re.IGNORECASE)
_SHOWN = 5


@dataclass(frozen=True)
class MiasFinding:
    """One line of ``Info.txt``."""

    reference: str  # "mdb001"
    background: str  # "F" | "G" | "D"
    abnormality: str  # "CALC" … "NORM"
    severity: str | None  # "B" | "M" | None (NORM, or not given)
    x: int | None
    y: int | None
    radius: int | None
    line: int  # 1-based line number in Info.txt


def _number(tokens: list[str], index: int) -> int | None:
    if index >= len(tokens):
        return None
    try:
        return int(float(tokens[index]))
    except ValueError:
        return None  # e.g. "*NOTE" instead of a coordinate


def parse_info(text: str, source: str = "Info.txt") -> list[MiasFinding]:
    """Parse the text of a mini-MIAS ``Info.txt`` into findings (one per data line).

    Raises
    ------
    ManifestError
        Naming the line numbers whose background, class or severity is unknown.
    """
    findings: list[MiasFinding] = []
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        if not tokens or _REFERENCE.fullmatch(tokens[0]) is None:
            continue
        reference = tokens[0].lower()
        background = tokens[1].upper() if len(tokens) > 1 else ""
        abnormality = tokens[2].upper() if len(tokens) > 2 else ""
        severity = tokens[3].upper() if len(tokens) > 3 and abnormality != "NORM" else None
        if background not in BACKGROUNDS:
            problems.append(f"line {number} ({line.strip()!r}): background {background!r} is not F/G/D")
            continue
        if abnormality not in ABNORMALITIES:
            problems.append(f"line {number} ({line.strip()!r}): class {abnormality!r} not in {list(ABNORMALITIES)}")
            continue
        if severity is not None and severity not in SEVERITIES:
            problems.append(f"line {number} ({line.strip()!r}): severity {severity!r} is not B/M")
            continue
        findings.append(
            MiasFinding(
                reference,
                background,
                abnormality,
                severity,
                x=_number(tokens, 4),
                y=_number(tokens, 5),
                radius=_number(tokens, 6),
                line=number,
            )
        )
    if problems:
        raise ManifestError(f"{source}: {len(problems)} unreadable line(s): " + "; ".join(problems[:_SHOWN]))
    return findings


def _find_info(root: Path, image_dir: Path) -> Path:
    for folder in dict.fromkeys((root, image_dir)):
        for path in sorted(folder.glob("*")):
            if path.name.lower() == "info.txt" and path.is_file():
                return path
    raise FileNotFoundError(
        f"mini-MIAS Info.txt not found in {root}: it lists each image's background tissue, abnormality "
        f"class and severity (lines like 'mdb001 G CIRC B 535 425 197'); put it next to the mdbNNN.pgm files"
    )


def _image_row(reference: str, findings: list[MiasFinding], image_dir: Path, info: Path) -> dict[str, object]:
    backgrounds = {finding.background for finding in findings}
    if len(backgrounds) > 1:
        lines = [finding.line for finding in findings]
        raise ManifestError(f"{info.name} lines {lines}: {reference} has conflicting backgrounds {sorted(backgrounds)}")
    severities = {finding.severity for finding in findings}
    pathology = "malignant" if "M" in severities else "benign" if "B" in severities else None
    number = int(reference[3:])
    classes = list(dict.fromkeys(finding.abnormality for finding in findings))
    return {
        "image_path": str(image_dir / f"{reference}.pgm"),
        "patient_id": f"mdb{number if number % 2 else number - 1:03d}",
        "laterality": "R" if number % 2 else "L",
        "view": "MLO",
        "pathology": pathology,
        "source": "mias",
        "mias_background": backgrounds.pop(),
        "abnormality": "+".join(classes),
    }


def mias(root: str | os.PathLike[str], *, missing: MissingPolicy = "raise") -> pd.DataFrame:
    """Load mini-MIAS (``mdbNNN.pgm`` + ``Info.txt``) as a manifest, one row per image.

    Parameters
    ----------
    root
        Folder with ``Info.txt`` and the PGM files (directly, or in ``root/all-mias/``).
    missing
        ``"raise"`` (default) or ``"skip"`` (drop, with a warning) for listed images without a PGM file.

    Returns
    -------
    pandas.DataFrame
        The manifest (``source="mias"``, ``view="MLO"``, ``density`` NA, laterality and patient from the
        odd/even numbering; see the module docstring) plus ``mias_background`` (ordered categorical
        F < G < D) and ``abnormality`` (the classes found, e.g. "NORM", "CIRC", "CALC+CIRC").

    Raises
    ------
    FileNotFoundError
        If ``root`` or ``Info.txt`` is missing.
    ManifestError
        For unreadable ``Info.txt`` lines (with line numbers), or missing PGM files (``missing="raise"``).
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"mini-MIAS folder not found: {root}")
    nested = root / "all-mias"
    image_dir = nested if not any(root.glob("mdb*.pgm")) and nested.is_dir() else root
    info = _find_info(root, image_dir)
    findings = parse_info(info.read_text(encoding="utf-8", errors="replace"), source=str(info))
    if not findings:
        raise ManifestError(f"{info} lists no image (expected lines like 'mdb001 G CIRC B 535 425 197')")
    by_reference: dict[str, list[MiasFinding]] = {}
    for finding in findings:
        by_reference.setdefault(finding.reference, []).append(finding)
    rows = [_image_row(ref, items, image_dir, info) for ref, items in sorted(by_reference.items())]
    frame = make_manifest(rows, extra=EXTRA_COLUMNS)
    frame["mias_background"] = pd.Categorical(frame["mias_background"], categories=list(BACKGROUNDS), ordered=True)
    frame = schema.validate_manifest(frame)
    return drop_or_raise_missing(frame, missing, what=str(info))
