"""Tests for mammo_utils.imaging.standardize: synthetic phantoms, the 8 real CBIS-DDSM DICOMs, property tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _phantoms import REAL_LABEL_BOXES, synthetic_phantom
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mammo_utils.imaging.io import read_mammogram
from mammo_utils.imaging.segmentation import Segmentation, as_float01, breast_mask
from mammo_utils.imaging.standardize import (
    STANDARDIZATION_COLUMNS,
    BreastCrop,
    Standardized,
    blank_outside_breast,
    crop_to_breast,
    find_breast,
    resize_and_pad,
    standardize,
)


def _contains(outer: tuple[int, int, int, int], inner: tuple[int, int, int, int]) -> bool:
    return outer[0] <= inner[0] and outer[1] <= inner[1] and outer[2] >= inner[2] and outer[3] >= inner[3]


def _to_output(res: Standardized, ys: np.ndarray, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map original pixel coordinates inside the crop box to output pixel coordinates."""
    t, left, b, r = res.crop_box
    ch, cw = res.content_shape
    yo = (res.image.shape[0] - ch) // 2 + (ys - t) * ch // (b - t)
    xo = (xs - left) * cw // (r - left)
    return yo, (cw - 1 - xo if res.flipped else xo)


def _check_output(res: Standardized, size: tuple[int, int]) -> None:
    assert res.image.shape == size
    assert res.image.dtype == np.float32
    assert np.isfinite(res.image).all()
    assert res.image.min() >= 0.0 and res.image.max() <= 1.0
    assert res.mask.dtype == bool
    ch, cw = res.content_shape
    assert 1 <= ch <= size[0] and 1 <= cw <= size[1]
    assert ch == size[0] or cw == size[1]  # aspect-preserving fit touches one side


# --------------------------------------------------------------------------- synthetic phantoms


def test_phantom_breast_kept_label_removed_flipped() -> None:
    img, boxes = synthetic_phantom()
    res = standardize(img, normalize=False)
    _check_output(res, (224, 224))
    assert res.found_breast
    assert res.flipped  # breast came from the right edge
    assert res.labels_removed >= 1
    assert _contains(res.crop_box, boxes["breast"])
    t, left, b, r = res.crop_box
    assert r == img.shape[1]  # chest wall edge kept
    # the label lies outside the crop box, and nothing as bright as the label or the strip survives
    lt, ll, lb, lr = boxes["label"]
    assert lr <= left or lb <= t
    assert res.image.max() < 0.9
    # breast on the left of the output, padding on the right
    ch, cw = res.content_shape
    assert res.image[:, : cw // 4].mean() > 3 * res.image[:, cw:].mean() + 0.05


def test_phantom_marker_inside_crop_box_is_blanked() -> None:
    """A bright marker in the breast's bounding box but off the breast is set to 0, not cropped away."""
    img, boxes = synthetic_phantom(seed=8, label=False)
    t, left, b, r = boxes["breast"]
    img[t + 4 : t + 24, left + 4 : left + 40] = 0.99  # top-left corner of the ellipse's box, ~90 px off the skin
    res = standardize(img, normalize=False)
    assert _contains(res.crop_box, (t + 4, left + 4, t + 24, left + 40))
    assert res.labels_removed == 1
    ys, xs = np.mgrid[t + 4 : t + 24, left + 4 : left + 40]
    yo, xo = _to_output(res, ys.ravel(), xs.ravel())
    assert not res.image[yo, xo].any()
    assert res.image.max() < 0.9


def test_phantom_film_frame_and_edge_label() -> None:
    """A bright film-holder frame on all four edges and a label touching the far edge (as in CBIS-DDSM).

    The breast also runs off the top edge (as in MLO views): the top frame must not be kept either.
    """
    img, boxes = synthetic_phantom(h=1000, w=640, seed=9, label=False, strip=False, cy_frac=0.3)
    fr = 15
    img[:fr], img[-fr:], img[:, :fr], img[:, -fr:] = 0.97, 0.97, 0.97, 0.97
    img[700:800, fr : fr + 90] = 0.96  # label glued to the left (non chest wall) frame
    res = standardize(img, normalize=False)
    assert res.found_breast and res.flipped
    bt, bl, bb, br = boxes["breast"]
    t, left, b, r = res.crop_box
    assert t <= fr + 6 and left <= bl and b >= bb and r == img.shape[1]  # visible breast kept (frame blurs ~3 px)
    assert left > fr + 90 and b < 0.8 * img.shape[0]  # neither the frame nor the label widen the box
    ch, cw = res.content_shape
    assert res.image[:, int(0.04 * cw) :].max() < 0.9  # only a sliver of frame at the chest wall may remain
    assert res.labels_removed >= 1


def test_phantom_thin_edge_strip_is_not_the_breast() -> None:
    """A ruler-like strip along an edge must not win over a breast that does not reach the edge itself."""
    img = np.zeros((900, 600), np.float32)
    yy, xx = np.mgrid[0:900, 0:600]
    img[((yy - 450) / 250.0) ** 2 + ((xx - 420) / 150.0) ** 2 <= 1] = 0.5
    for top in range(100, 500, 50):  # a ruler 16-20 px wide on the edge (not a solid rectangle)
        img[top : top + 25, 0:16] = 0.9
        img[top + 25 : top + 50, 0:20] = 0.9
    res = standardize(img)
    assert res.found_breast and res.flipped  # the breast mass lies on the right
    assert _contains(res.crop_box, (200, 270, 701, 571))
    assert res.crop_box[1] > 20 and res.labels_removed >= 1


def test_phantom_sticker_is_not_the_breast() -> None:
    """A solid rectangular sticker on the edge must not win over a breast that does not reach the edge."""
    img = np.zeros((900, 600), np.float32)
    yy, xx = np.mgrid[0:900, 0:600]
    img[((yy - 450) / 250.0) ** 2 + ((xx - 420) / 150.0) ** 2 <= 1] = 0.5
    img[60:200, 0:100] = 0.95
    res = standardize(img)
    assert res.found_breast and res.flipped
    assert _contains(res.crop_box, (200, 270, 701, 571))
    assert res.crop_box[1] > 100 and res.labels_removed == 1


@pytest.mark.parametrize("size", [(224, 224), (256, 192), (64, 300), (300, 64)])
def test_output_shape_dtype_range(size: tuple[int, int]) -> None:
    img, _ = synthetic_phantom(seed=2)
    res = standardize(img, size=size)
    _check_output(res, size)
    # content is left-aligned (chest wall on the left edge) and vertically centred
    ch, cw = res.content_shape
    y0 = (size[0] - ch) // 2
    assert not res.image[:y0].any() and not res.image[y0 + ch :].any() and not res.image[:, cw:].any()
    assert res.image[y0 : y0 + ch, 0].max() > 0.2


def test_flip_symmetry_phantom() -> None:
    img, _ = synthetic_phantom(seed=3, h=800, w=520)
    a, b = standardize(img), standardize(np.fliplr(img))
    assert a.flipped != b.flipped
    assert np.abs(a.image - b.image).mean() < 0.01
    w = img.shape[1]
    assert a.crop_box[0] == b.crop_box[0] and a.crop_box[2] == b.crop_box[2]
    assert abs(a.crop_box[1] - (w - b.crop_box[3])) <= 8 and abs(a.crop_box[3] - (w - b.crop_box[1])) <= 8
    np.testing.assert_array_equal(a.mask.shape, b.mask.shape)


def test_dtype_inputs_agree() -> None:
    img, _ = synthetic_phantom(seed=4, h=500, w=400)
    u16 = np.round(img * 65535).astype(np.uint16)
    u8 = np.round(img * 255).astype(np.uint8)
    rgb = np.repeat(u8[..., None], 3, axis=2)
    ref = standardize(img).image
    for variant in (u16, u8, rgb, img.astype(np.float64) * 4000 - 7):  # last one: min-max scaled floats
        assert np.abs(standardize(variant).image - ref).mean() < 0.01


def test_normalize_is_a_linear_gain() -> None:
    img, _ = synthetic_phantom(seed=10, h=600, w=400, label=False, strip=False)
    ref = standardize(img)
    dim = standardize(img * 0.4)
    assert 0.99 <= ref.image.max() <= 1.0
    assert np.abs(dim.image - ref.image).mean() < 0.005  # exposure differences are normalized away
    raw = standardize(img * 0.4, normalize=False)
    assert 0.2 < raw.image.max() <= 0.4 * img.max() + 1e-6


def test_blank_and_constant_images_fall_back_to_whole_image() -> None:
    for img in (np.zeros((300, 200), np.float32), np.full((300, 200), 0.6, np.float32)):
        res = standardize(img)
        _check_output(res, (224, 224))
        assert not res.found_breast
        assert res.crop_box == (0, 0, 300, 200)
        assert res.labels_removed == 0 and not res.mask.any()
    assert not standardize(np.zeros((300, 200))).image.any()


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (7, 5), (12, 900), (900, 12), (40, 40)])
def test_tiny_and_elongated_images(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    res = standardize(rng.random(shape, dtype=np.float32))
    _check_output(res, (224, 224))
    t, left, b, r = res.crop_box
    assert 0 <= t < b <= shape[0] and 0 <= left < r <= shape[1]


def test_breast_filling_the_frame() -> None:
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:400, 0:300]
    dense = 0.55 + 0.25 * np.sin(yy / 17.0) * np.cos(xx / 23.0) + rng.normal(0, 0.03, (400, 300))
    res = standardize(np.clip(dense, 0, 1).astype(np.float32))
    _check_output(res, (224, 224))
    assert res.found_breast
    assert res.crop_box == (0, 0, 400, 300)


def test_mias_like_large_breast_with_background() -> None:
    """Synthetic MIAS-like frame: a breast from the left edge filling most of the image, dark margin."""
    rng = np.random.default_rng(6)
    h = w = 512
    yy, xx = np.mgrid[0:h, 0:w]
    r2 = ((yy - h / 2) / (0.49 * h)) ** 2 + (xx / (0.85 * w)) ** 2
    img = rng.normal(0.04, 0.01, (h, w))
    img[r2 <= 1] = 0.5 + 0.3 * rng.random(int((r2 <= 1).sum()))
    img[470:500, 440:500] = 1.0  # marker in the lower right corner
    res = standardize(np.clip(img, 0, 1).astype(np.float32))
    assert res.found_breast and not res.flipped
    t, left, b, r = res.crop_box
    assert left == 0 and t <= 8 and b >= h - 8 and r >= int(0.85 * w) and r < 470
    assert res.labels_removed >= 1


def test_laterality_only_breaks_ties() -> None:
    img, _ = synthetic_phantom(seed=7, label=False, strip=False)
    assert standardize(img, laterality="L").flipped  # the pixels say right: the hint is ignored
    sym = np.zeros((300, 301), np.float32)
    yy, xx = np.mgrid[0:300, 0:301]
    sym[((yy - 150) / 100.0) ** 2 + ((xx - 150) / 80.0) ** 2 <= 1] = 0.5
    assert standardize(sym, laterality="R").flipped
    assert not standardize(sym, laterality="L").flipped


def test_bad_input_shapes() -> None:
    with pytest.raises(ValueError):
        standardize(np.zeros((0, 10)))
    with pytest.raises(ValueError):
        standardize(np.zeros((4, 4, 4, 4)))
    with pytest.raises(ValueError):
        standardize(np.zeros((10, 10)), size=(0, 10))


_KINDS = ("uniform", "constant", "blobs", "gradient", "binary", "spikes", "wild")


@st.composite
def _random_images(draw: st.DrawFn) -> np.ndarray:
    h, w = draw(st.integers(64, 300)), draw(st.integers(64, 300))
    kind = draw(st.sampled_from(_KINDS))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "uniform":
        return rng.random((h, w), dtype=np.float32)
    if kind == "constant":
        return np.full((h, w), draw(st.floats(0, 1)), np.float32)
    if kind == "gradient":
        return np.linspace(0, 1, h * w, dtype=np.float32).reshape(h, w)
    if kind == "binary":
        return rng.random((h, w)) > draw(st.floats(0.01, 0.99))
    if kind == "spikes":
        img = np.zeros((h, w), np.uint16)
        img[rng.integers(0, h, 20), rng.integers(0, w, 20)] = 65535
        return img
    if kind == "wild":
        img = rng.normal(0, 1e6, (h, w))
        img[rng.random((h, w)) < 0.01] = np.nan
        img[0, 0] = np.inf
        return img
    img = np.zeros((h, w), np.float32)  # blobs: random bright ellipses and rectangles
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(int(rng.integers(1, 6))):
        cy, cx, ry, rx = rng.random(4) * [h, w, h / 2, w / 2] + 2
        img[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1] = rng.random()
    return img


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(img=_random_images(), size=st.sampled_from([(224, 224), (256, 192), (96, 128)]))
def test_random_images_never_raise(img: np.ndarray, size: tuple[int, int]) -> None:
    res = standardize(img, size=size)
    _check_output(res, size)
    t, left, b, r = res.crop_box
    assert 0 <= t < b <= img.shape[0] and 0 <= left < r <= img.shape[1]
    assert res.scale > 0 and res.labels_removed >= 0
    assert breast_mask(img).shape == img.shape


# --------------------------------------------------------------------------- the 8 real DICOMs


@pytest.fixture(scope="module")
def real(sample_dicom_paths: list[Path]) -> list[tuple[str, object, Standardized]]:
    """(file stem, Mammogram, Standardized) for the 8 real CBIS-DDSM DICOMs, read once."""
    out = []
    for path in sample_dicom_paths:
        mammo = read_mammogram(path)
        out.append((path.stem, mammo, standardize(mammo)))
    return out


def test_real_shapes_and_breast_found(real) -> None:
    assert len(real) == 8
    for _, _, res in real:
        _check_output(res, (224, 224))
        assert res.found_breast
        assert res.labels_removed >= 1


def test_real_crop_area_is_sensible(real) -> None:
    for stem, mammo, res in real:
        t, left, b, r = res.crop_box
        frac = (b - t) * (r - left) / mammo.pixels.size
        assert 0.25 < frac < 0.75, (stem, frac)


def test_real_flip_matches_laterality(real) -> None:
    # CBIS-DDSM: left breasts are stored with the chest wall on the left, right breasts on the right
    lateralities = {m.laterality for _, m, _ in real}
    assert lateralities == {"L", "R"}
    for stem, mammo, res in real:
        assert res.flipped == (mammo.laterality == "R"), stem
        ch, cw = res.content_shape
        y0 = (224 - ch) // 2
        content = res.image[y0 : y0 + ch, :cw]
        assert content[:, : cw // 3].mean() > content[:, -(cw // 3) :].mean() + 0.2, stem


def test_real_whole_breast_kept(real) -> None:
    """Tissue (> 0.15, away from the film border and the labels) lies inside the crop box."""
    for stem, mammo, res in real:
        img = mammo.pixels
        h, w = img.shape
        tissue = img > 0.15
        bh, bw = int(0.03 * h), int(0.03 * w)
        tissue[:bh], tissue[-bh:], tissue[:, :bw], tissue[:, -bw:] = False, False, False, False
        for lt, ll, lb, lr in REAL_LABEL_BOXES[stem]:
            tissue[lt:lb, ll:lr] = False
        t, left, b, r = res.crop_box
        assert tissue[t:b, left:r].sum() / tissue.sum() > 0.99, stem
        chest = (res.crop_box[1] == 0) if not res.flipped else (res.crop_box[3] == w)
        assert chest, stem  # the chest wall edge is kept


def _nipple_column(img: np.ndarray, chest_left: bool) -> int:
    """Farthest column from the chest wall still reached by non-background (> 0.005) pixels, middle rows."""
    h, w = img.shape
    f = 8
    d = img[: h // f * f, : w // f * f].reshape(h // f, f, w // f, f).mean(axis=(1, 3))
    d = d if chest_left else d[:, ::-1]
    below = d[int(0.2 * d.shape[0]) : int(0.8 * d.shape[0])] < 0.005
    reach = int(np.where(below.any(axis=1), below.argmax(axis=1), d.shape[1]).max()) * f
    return reach if chest_left else w - reach


def test_real_nipple_inside_crop(real) -> None:
    """The faint skin line and nipple (film values ~0.01) are inside the crop box and not blanked."""
    for stem, mammo, res in real:
        col = _nipple_column(mammo.pixels, chest_left=mammo.laterality == "L")
        t, left, b, r = res.crop_box
        assert left <= col < r, (stem, col, res.crop_box)
        rows = np.arange(t, b, 8)
        yo, xo = _to_output(res, rows, np.full(rows.shape, col))
        assert res.image[yo, xo].max() > 0, stem


def test_real_mlo_pectoral_reaches_top(real) -> None:
    """In MLO views the pectoral muscle runs off the top edge: the crop starts at the first row below the frame."""
    mlo = [(stem, m, res) for stem, m, res in real if m.view == "MLO"]
    assert len(mlo) == 4
    for stem, mammo, res in mlo:
        frame_rows = np.flatnonzero((mammo.pixels[:200] > 0.3).mean(axis=1) > 0.45)  # film-holder frame lines
        first = int(frame_rows.max()) + 1 if frame_rows.size else 0
        assert res.crop_box[0] <= first + 0.003 * mammo.pixels.shape[0], (stem, first, res.crop_box)


def test_real_labels_dropped(real) -> None:
    for stem, mammo, res in real:
        for lt, ll, lb, lr in REAL_LABEL_BOXES[stem]:
            ys, xs = np.nonzero(mammo.pixels[lt:lb, ll:lr] > 0.3)
            assert ys.size > 2000, stem  # the box does hold a label
            ys, xs = ys + lt, xs + ll
            t, left, b, r = res.crop_box
            inside = (ys >= t) & (ys < b) & (xs >= left) & (xs < r)
            yo, xo = _to_output(res, ys[inside], xs[inside])
            assert not res.image[yo, xo].any(), stem  # outside the crop, or blanked


def test_real_flip_symmetry(real) -> None:
    stem, mammo, res = real[2]
    mirrored = standardize(np.fliplr(mammo.pixels))
    assert mirrored.flipped != res.flipped
    assert np.abs(mirrored.image - res.image).mean() < 0.01
    w = mammo.pixels.shape[1]
    t, left, b, r = res.crop_box
    assert abs(mirrored.crop_box[1] - (w - r)) <= 20 and abs(mirrored.crop_box[3] - (w - left)) <= 20


# --------------------------------------------------------------------------- the four steps


@pytest.mark.parametrize(
    ("seed", "mirror", "size", "normalize"),
    [(0, False, (224, 224), True), (1, True, (256, 192), True), (5, False, (64, 300), False)],
)
def test_steps_composed_by_hand_give_standardize(
    seed: int, mirror: bool, size: tuple[int, int], normalize: bool
) -> None:
    img, _ = synthetic_phantom(h=1400, w=900, seed=seed)  # large enough for the block-mean decimation
    img = np.ascontiguousarray(img[:, ::-1]) if mirror else img
    pixels = as_float01(img)
    segmentation = find_breast(pixels)
    crop = crop_to_breast(pixels, segmentation)
    by_hand = resize_and_pad(crop, segmentation, size, normalize=normalize)
    res = standardize(img, size=size, normalize=normalize)
    np.testing.assert_array_equal(by_hand.image, res.image)
    np.testing.assert_array_equal(by_hand.mask, res.mask)
    assert (by_hand.crop_box, by_hand.flipped, by_hand.scale, by_hand.content_shape) == (
        res.crop_box,
        res.flipped,
        res.scale,
        res.content_shape,
    )
    assert by_hand.labels_removed == res.labels_removed == segmentation.labels


def test_find_breast_is_the_segmentation_of_standardize() -> None:
    img, boxes = synthetic_phantom(seed=2)
    segmentation = find_breast(as_float01(img), working_size=300)
    assert isinstance(segmentation, Segmentation)
    assert segmentation.found and not segmentation.breast_left and segmentation.labels >= 1
    assert max(segmentation.mask.shape) <= 300


def test_blank_outside_breast_full_resolution() -> None:
    img, boxes = synthetic_phantom(seed=3)
    segmentation = find_breast(img)
    blanked = blank_outside_breast(img, segmentation)
    assert blanked.shape == img.shape and blanked.dtype == img.dtype
    lt, ll, lb, lr = boxes["label"]
    assert not blanked[lt:lb, ll:lr].any()  # the label is gone
    assert not blanked[-3:].any()  # and so is the bright strip
    inside = breast_mask(img)
    np.testing.assert_array_equal(blanked[inside], img[inside])  # the breast is untouched
    nothing = find_breast(np.zeros((50, 40), np.float32))
    np.testing.assert_array_equal(blank_outside_breast(img[:50, :40], nothing), img[:50, :40])  # no breast: kept


def test_crop_to_breast_flips_the_breast_to_the_left() -> None:
    img, boxes = synthetic_phantom(seed=4)
    segmentation = find_breast(img)
    crop = crop_to_breast(img, segmentation)
    assert isinstance(crop, BreastCrop) and crop.flipped
    t, left, b, r = crop.box
    assert _contains(crop.box, boxes["breast"]) and r == img.shape[1]
    np.testing.assert_array_equal(crop.original, img[t:b, left:r])
    np.testing.assert_array_equal(crop.pixels, img[t:b, left:r][:, ::-1])
    assert crop.pixels[:, :20].mean() > crop.pixels[:, -20:].mean()  # chest wall (bright) on the left
    same = crop_to_breast(np.ascontiguousarray(img[:, ::-1]), find_breast(np.ascontiguousarray(img[:, ::-1])))
    assert not same.flipped and same.pixels is same.original


def test_resize_and_pad_rejects_bad_sizes() -> None:
    img, _ = synthetic_phantom(seed=5)
    segmentation = find_breast(img)
    with pytest.raises(ValueError, match="size must be positive"):
        resize_and_pad(crop_to_breast(img, segmentation), segmentation, (10, 0))


@pytest.mark.parametrize(("h", "w", "mirror"), [(900, 600, False), (1800, 1100, True), (300, 200, False)])
def test_to_model_coordinates_finds_the_finding(h: int, w: int, mirror: bool) -> None:
    """A small bright finding of known centre lands where ``to_model_coordinates`` says."""
    img, boxes = synthetic_phantom(h=h, w=w, seed=11, label=False, strip=False)
    if mirror:
        img = np.ascontiguousarray(img[:, ::-1])
    centre = (int(0.45 * h), int(0.25 * w) if mirror else int(0.75 * w))  # inside the breast ellipse
    radius = max(3, h // 120)
    yy, xx = np.mgrid[0:h, 0:w]
    with_finding = img.copy()
    with_finding[(yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2] = 1.0
    res = standardize(with_finding, normalize=False)
    assert res.flipped != mirror
    row, col = res.to_model_coordinates(*centre)
    excess = np.clip(res.image - standardize(img, normalize=False).image, 0, None)  # the finding alone
    assert excess.max() > 0.1
    rows, cols = np.mgrid[0 : excess.shape[0], 0 : excess.shape[1]]
    found_row, found_col = (rows * excess).sum() / excess.sum(), (cols * excess).sum() / excess.sum()
    assert abs(found_row - row) < 1.0 and abs(found_col - col) < 1.0, (row, col, found_row, found_col)


def test_to_model_coordinates_maps_the_crop_box_onto_the_content() -> None:
    img, _ = synthetic_phantom(h=1200, w=800, seed=12)
    res = standardize(img, size=(200, 300))
    t, left, b, r = res.crop_box
    ch, cw = res.content_shape
    pad = (200 - ch) // 2
    rows, cols = res.to_model_coordinates(np.array([t, b - 1]), np.array([left, r - 1]))
    assert np.all(np.abs(rows - [pad, pad + ch - 1]) < 1.0)
    assert res.flipped and np.all(np.abs(cols - [cw - 1, 0]) < 1.0)  # flipped: the right edge goes to column 0
    assert isinstance(res.to_model_coordinates(t, left)[0], float)


@st.composite
def _geometries(draw: st.DrawFn) -> Standardized:
    """A standardization geometry as :func:`resize_and_pad` makes it: crop box in an image, flip, model size."""
    height, width = draw(st.integers(1, 5000)), draw(st.integers(1, 5000))
    top, left = draw(st.integers(0, height - 1)), draw(st.integers(0, width - 1))
    bottom, right = draw(st.integers(top + 1, height)), draw(st.integers(left + 1, width))
    out_h, out_w = draw(st.integers(1, 512)), draw(st.integers(1, 512))
    scale = min(out_h / (bottom - top), out_w / (right - left))
    content = (min(out_h, max(1, round((bottom - top) * scale))), min(out_w, max(1, round((right - left) * scale))))
    record = {"crop_top": top, "crop_left": left, "crop_bottom": bottom, "crop_right": right, "scale": scale}
    record |= {"flipped": draw(st.booleans()), "content_height": content[0], "content_width": content[1]}
    return Standardized.from_record(record, (out_h, out_w))


@settings(max_examples=200, deadline=None)
@given(std=_geometries(), data=st.data())
def test_original_to_model_to_original_is_the_identity(std: Standardized, data: st.DataObject) -> None:
    top, left, bottom, right = std.crop_box
    points = st.floats(-0.5, 1.5, allow_nan=False)
    fy, fx = data.draw(st.lists(points, min_size=1, max_size=5)), data.draw(st.lists(points, min_size=1, max_size=5))
    n = min(len(fy), len(fx))
    ys = top - 0.5 + np.array(fy[:n]) * (bottom - top)  # around and inside the crop box
    xs = left - 0.5 + np.array(fx[:n]) * (right - left)
    back_y, back_x = std.to_original_coordinates(*std.to_model_coordinates(ys, xs))
    assert np.abs(back_y - ys).max() <= 1e-6 and np.abs(back_x - xs).max() <= 1e-6
    rows, cols = std.to_model_coordinates(*std.to_original_coordinates(ys, xs))  # any point: the map is affine
    assert np.abs(rows - ys).max() <= 1e-6 and np.abs(cols - xs).max() <= 1e-6
    y, x = std.to_original_coordinates(float(ys[0]), float(xs[0]))
    assert isinstance(y, float) and isinstance(x, float)  # scalars in, scalars out


@pytest.mark.parametrize("mirror", [False, True])
def test_from_record_rebuilds_the_geometry_of_a_standardization(mirror: bool) -> None:
    img, _ = synthetic_phantom(h=1400, w=900, seed=4)
    if mirror:
        img = np.ascontiguousarray(img[:, ::-1])
    res = standardize(img, size=(256, 192))
    top, left, bottom, right = res.crop_box
    record = {"crop_top": top, "crop_left": left, "crop_bottom": bottom, "crop_right": right}
    record |= {"flipped": res.flipped, "content_height": res.content_shape[0], "content_width": res.content_shape[1]}
    record |= {"scale": res.scale, "labels_removed": res.labels_removed, "found_breast": res.found_breast}
    rebuilt = Standardized.from_record(record, (256, 192, 1))
    assert (rebuilt.crop_box, rebuilt.flipped, rebuilt.content_shape) == (res.crop_box, res.flipped, res.content_shape)
    assert (rebuilt.scale, rebuilt.labels_removed, rebuilt.found_breast) == (res.scale, res.labels_removed, True)
    assert rebuilt.image.shape == (256, 192) and not rebuilt.image.any() and rebuilt.mask.size == 0
    ys, xs = np.array([top, 700.0, bottom - 1]), np.array([left, 450.0, right - 1])
    assert np.array_equal(np.stack(rebuilt.to_model_coordinates(ys, xs)), np.stack(res.to_model_coordinates(ys, xs)))
    rows, cols = res.to_model_coordinates(ys, xs)
    back_y, back_x = res.to_original_coordinates(rows, cols)
    assert np.allclose(back_y, ys, atol=1e-9) and np.allclose(back_x, xs, atol=1e-9)
    minimal = Standardized.from_record({c: record[c] for c in STANDARDIZATION_COLUMNS}, (256, 192))
    assert np.isnan(minimal.scale) and minimal.labels_removed == 0 and minimal.found_breast
    with pytest.raises(KeyError, match=r"lacks \['content_width'\]"):
        Standardized.from_record({c: record[c] for c in STANDARDIZATION_COLUMNS[:-1]}, (256, 192))
