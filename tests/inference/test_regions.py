"""The lesion map's top regions: highest cells first, neighbours suppressed, boxes mapped back to the original."""

from __future__ import annotations

import numpy as np
import pytest

from mammo_utils.imaging.standardize import standardize
from mammo_utils.inference.regions import LesionRegion, top_regions, upsample_grid


@pytest.fixture(scope="module")
def disc_image():
    """A 200 x 120 'breast' on the RIGHT of a 240 x 300 image (so it is flipped), a bright disc at (100, 230)."""
    image = np.zeros((240, 300), dtype=np.float32)
    image[20:220, 180:300] = 0.4
    yy, xx = np.mgrid[:240, :300]
    image[np.hypot(yy - 100, xx - 230) <= 8] = 1.0
    return image, standardize(image, size=(64, 64))


def test_the_peak_cell_maps_back_onto_the_finding(disc_image) -> None:
    image, std = disc_image
    assert std.flipped
    row, col = std.to_model_coordinates(100.0, 230.0)
    grid = np.zeros((4, 4), dtype=np.float32)
    grid[int(row // 16), int(col // 16)] = 0.9
    (region,) = top_regions(grid, std, image.shape)
    top, left, bottom, right = region.box_original
    assert region.probability == pytest.approx(0.9)
    assert top <= 100 < bottom and left <= 230 < right  # the finding's centre lies in the mapped box
    assert 0 <= top < bottom <= image.shape[0] and 0 <= left < right <= image.shape[1]


def test_neighbours_are_suppressed_and_low_cells_skipped(disc_image) -> None:
    _, std = disc_image
    grid = np.full((4, 4), 0.05, dtype=np.float32)
    grid[1, 1], grid[1, 2], grid[3, 0] = 0.8, 0.7, 0.3  # (1, 2) touches (1, 1): suppressed
    regions = top_regions(grid, std, (240, 300), k=3)
    assert [round(r.probability, 2) for r in regions] == [0.8, 0.3]
    assert regions[0].box_model == (16.0, 16.0, 32.0, 32.0)
    assert top_regions(np.full((4, 4), 0.01, np.float32), std, (240, 300)) == []


def test_padding_cells_are_never_reported(disc_image) -> None:
    _, std = disc_image
    assert std.content_shape[1] < 48  # the right-most column of cells is padding
    grid = np.zeros((4, 4), dtype=np.float32)
    grid[:, 3] = 0.99
    assert all(r.box_model[1] < std.content_shape[1] for r in top_regions(grid, std, (240, 300)))


def test_record_and_upsampling() -> None:
    region = LesionRegion(0.123456789, (0.0, 0.0, 16.0, 16.0), (1.04, 2.0, 3.0, 4.0))
    assert region.to_record() == {
        "probability": 0.123457,
        "box_model": [0.0, 0.0, 16.0, 16.0],
        "box_original": [1.0, 2.0, 3.0, 4.0],
    }
    up = upsample_grid(np.array([[0.0, 1.0], [1.0, 0.0]], np.float32), (32, 32))
    assert up.shape == (32, 32) and up.min() >= 0.0 and up.max() <= 1.0 and up[0, -1] > 0.9
    with pytest.raises(ValueError, match="k must be"):
        top_regions(np.zeros((2, 2)), None, (1, 1), k=0)  # type: ignore[arg-type]
