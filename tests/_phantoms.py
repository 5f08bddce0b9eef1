"""Synthetic film-like phantoms and the label boxes of the 8 real DICOMs, for test_standardize and test_segmentation."""

from __future__ import annotations

import numpy as np

# Burned-in view labels of the 8 real DICOMs, found by looking at the images:
# file stem -> list of (top, left, bottom, right) boxes in original pixels (label pixels are > 0.3 there).
REAL_LABEL_BOXES: dict[str, list[tuple[int, int, int, int]]] = {
    "1-130": [(400, 1950, 920, 2430)],  # "LCC"
    "1-131": [(460, 2040, 1150, 2650)],  # "LMLO"
    "1-132": [(40, 0, 250, 170), (390, 0, 800, 490)],  # "5", "RCC"
    "1-133": [(90, 0, 290, 110), (180, 0, 800, 680)],  # "3", "RMLO"
    "1-280": [(250, 2250, 900, 2624)],  # "LCC" cut by the right edge
    "1-281": [(180, 2300, 620, 2576)],  # "LM" cut by the right edge
    "1-282": [(540, 0, 1000, 300)],  # "RCC" cut by the left edge
    "1-283": [(300, 0, 1080, 720)],  # "RMLO"
}


def synthetic_phantom(
    h: int = 900, w: int = 600, *, seed: int = 0, label: bool = True, strip: bool = True, cy_frac: float = 0.5
) -> tuple[np.ndarray, dict[str, tuple[int, int, int, int]]]:
    """A synthetic film-like mammogram: breast ellipse on the RIGHT edge, corner label, bright bottom strip.

    Returns the float32 image in [0, 1] and boxes (top, left, bottom, right) of the breast and the label.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, ry, rx = cy_frac * h, 0.36 * h, 0.55 * w
    r2 = ((yy - cy) / ry) ** 2 + ((xx - w) / rx) ** 2
    breast = r2 <= 1
    img = rng.normal(0.01, 0.004, (h, w)).astype(np.float32)
    img[breast] = 0.35 + 0.25 * np.sqrt(1 - r2[breast]) + rng.normal(0, 0.03, int(breast.sum()))
    boxes = {"breast": (max(0, int(cy - ry)), int(w - rx), min(h, int(cy + ry) + 1), w)}
    if label:
        t, left, b, r = int(0.05 * h), int(0.06 * w), int(0.11 * h), int(0.3 * w)
        img[t:b, left:r] = 0.98
        boxes["label"] = (t, left, b, r)
    if strip:
        img[h - max(3, h // 100) :, :] = 0.95
    return np.clip(img, 0, 1), boxes
