"""The synthetic findings: masses and calcification clusters drawn as patches, placed in the breast, with subtlety."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import expit

BENIGN_FINDINGS: tuple[str, ...] = ("circumscribed_mass", "coarse_calcifications")
MALIGNANT_FINDINGS: tuple[str, ...] = ("spiculated_mass", "irregular_mass", "fine_pleomorphic_calcifications")
SUBTLETY_CNR: tuple[float, ...] = (0.7, 1.1, 1.6, 2.5)  # contrast-to-noise limits of subtlety 1|2|3|4|5


def sample_finding(rng: np.random.Generator, malignant: bool) -> dict[str, Any]:
    """Draw the kind, size and strength of one finding (shared by the CC and MLO views of a breast)."""
    if malignant:
        kind = str(rng.choice(MALIGNANT_FINDINGS, p=[0.4, 0.25, 0.35]))
    else:
        kind = str(rng.choice(BENIGN_FINDINGS, p=[0.6, 0.4]))
    if kind.endswith("mass"):
        radius = rng.uniform(15.0, 28.0) if kind == "spiculated_mass" else rng.uniform(15.0, 32.0)
        strength = rng.uniform(0.8, 1.5)
    elif kind == "fine_pleomorphic_calcifications":
        radius, strength = rng.uniform(12.0, 26.0), rng.uniform(0.5, 0.8)
    else:
        radius, strength = rng.uniform(8.0, 40.0), rng.uniform(0.45, 0.85)
    return {
        "kind": kind,
        "radius": float(radius),
        "strength": float(strength),
        "depth": float(rng.uniform(0.3, 0.8)),
        "shape_seed": int(rng.integers(2**31)),
    }


def _polar(size: int, angle: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    c = np.arange(-size, size + 1, dtype=np.float32)
    dy, dx = np.meshgrid(c, c, indexing="ij")
    return np.hypot(dx, dy), np.arctan2(dy, dx) - np.float32(angle), dx, dy


def _mass_patch(spec: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """Additive density profile (peak ~1) of a circumscribed, irregular or spiculated mass."""
    kind, r0 = spec["kind"], spec["radius"]
    size = int(np.ceil(r0 * (3.4 if kind == "spiculated_mass" else 1.6))) + 3
    r, theta, dx, dy = _polar(size, rng.uniform(0, 2 * np.pi))
    if kind == "circumscribed_mass":
        ratio, harmonics, amp, edge = rng.uniform(0.7, 1.0), range(2, 5), 0.03, rng.uniform(0.7, 1.2)
    elif kind == "irregular_mass":
        ratio, harmonics, amp, edge = rng.uniform(0.55, 0.9), range(2, 9), 0.22, rng.uniform(2.5, 4.5)
    else:
        ratio, harmonics, amp, edge = rng.uniform(0.7, 1.0), range(2, 8), 0.09, rng.uniform(1.2, 2.5)
    boundary = r0 * ratio / np.sqrt((ratio * np.cos(theta)) ** 2 + np.sin(theta) ** 2)
    for k in harmonics:
        wave = np.cos(k * theta + rng.uniform(0, 2 * np.pi))
        boundary = boundary * (1 + amp * rng.uniform(0.3, 1.0) / np.sqrt(k - 1) * wave)
    dome = 0.75 + 0.25 * np.sqrt(np.clip(1 - (r / boundary) ** 2, 0, 1))
    patch = dome * expit((boundary - r) / edge)
    if kind == "spiculated_mass":
        n = int(rng.integers(14, 30))
        angles = rng.uniform(0, 2 * np.pi, n).astype(np.float32)[:, None, None]
        length = (r0 * rng.uniform(1.0, 2.6, n)).astype(np.float32)[:, None, None]
        width = rng.uniform(2.5, 4.0, n).astype(np.float32)[:, None, None]
        bend = rng.uniform(-0.012, 0.012, n).astype(np.float32)[:, None, None]
        along = dx * np.cos(angles) + dy * np.sin(angles) - 0.7 * r0
        across = -dx * np.sin(angles) + dy * np.cos(angles) - bend * along**2
        taper = width * np.clip(1 - along / length, 0.05, 1)
        lines = np.exp(-0.5 * (across / taper) ** 2) * ((along > 0) & (along < length))
        strength = rng.uniform(0.7, 1.0, n).astype(np.float32)[:, None, None]
        patch = np.maximum(patch, (lines * strength).max(axis=0))
    return patch.astype(np.float32)


def _calc_patch(spec: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """Additive patch of calcification specks: many fine pleomorphic ones, or a few coarse/popcorn ones."""
    if spec["kind"] == "fine_pleomorphic_calcifications":
        n = int(rng.integers(25, 51))
        centres = rng.normal(0, spec["radius"] / 2.0, (n, 2))
        major = np.where(rng.random(n) < 0.35, rng.uniform(3.4, 5.2, n), rng.uniform(2.4, 3.4, n))
        minor = rng.uniform(2.2, 2.7, n)
        amp = rng.uniform(0.6, 1.0, n)
    else:
        popcorn = rng.random() < 0.5
        clumps = int(rng.integers(1, 4)) if popcorn else int(rng.integers(2, 6))
        base = rng.uniform(-1, 1, (clumps, 2)) * spec["radius"]
        parts = [int(rng.integers(3, 7)) if popcorn else 1 for _ in range(clumps)]
        centres = np.repeat(base, parts, axis=0) + (rng.normal(0, 2.5, (sum(parts), 2)) if popcorn else 0)
        n = len(centres)
        major = rng.uniform(2.5, 5.0, n) if popcorn else rng.uniform(4.0, 6.5, n)
        minor = major * rng.uniform(0.7, 1.0, n)
        amp = rng.uniform(0.85, 1.0, n)
    size = int(np.ceil(np.abs(centres).max() + major.max())) + 3
    c = np.arange(-size, size + 1, dtype=np.float32)
    dy, dx = np.meshgrid(c, c, indexing="ij")
    angle = rng.uniform(0, np.pi, n)
    patch = np.zeros_like(dx)
    for (cy, cx), a, b, phi, v in zip(centres, major, minor, angle, amp, strict=True):
        u = (dx - cx) * np.cos(phi) + (dy - cy) * np.sin(phi)
        w = -(dx - cx) * np.sin(phi) + (dy - cy) * np.cos(phi)
        speck = v * expit(4.0 * (1 - np.sqrt((u / a) ** 2 + (w / b) ** 2)))
        np.maximum(patch, speck, out=patch)
    return patch


def _place(
    rng: np.random.Generator,
    allowed: np.ndarray,
    dist: np.ndarray,
    rho: np.ndarray,
    soft: np.ndarray,
    extent: float,
    depth: float,
) -> tuple[int, int]:
    """Choose a finding centre inside the breast, near the requested depth; sometimes inside dense tissue."""
    tiers = [
        allowed & (dist >= extent + 4) & (np.abs(rho - depth) < 0.15),
        allowed & (dist >= extent + 4),
        allowed & (dist >= 0.5 * extent),
    ]
    if rng.random() < 0.35:
        tiers.insert(0, tiers[0] & (soft > 0.5))
    for candidates in tiers:
        index = np.flatnonzero(candidates)
        if index.size:
            return divmod(int(index[rng.integers(index.size)]), allowed.shape[1])
    return np.unravel_index(int(np.argmax(dist * allowed)), allowed.shape)  # type: ignore[return-value]


def _add_patch(image: np.ndarray, patch: np.ndarray, centre: tuple[int, int]) -> tuple[slice, slice, np.ndarray]:
    half = patch.shape[0] // 2
    y0, x0 = centre[0] - half, centre[1] - half
    ys = slice(max(y0, 0), min(y0 + patch.shape[0], image.shape[0]))
    xs = slice(max(x0, 0), min(x0 + patch.shape[1], image.shape[1]))
    return ys, xs, patch[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]


def _subtlety(region: np.ndarray, piece: np.ndarray, inside: np.ndarray) -> int:
    """Subtlety 1 (subtle) to 5 (obvious) from the finding's contrast-to-noise ratio in the displayed image."""
    core, ring = (piece > 0.5) & inside, (piece < 0.02) & inside
    if not core.any() or ring.sum() < 8:
        return 1
    cnr = (region[core].mean() - region[ring].mean()) / (region[ring].std() + 0.01)
    return 1 + int(np.searchsorted(SUBTLETY_CNR, cnr))
