import hashlib

import numpy as np
import pytest

from synreal.data.toyworld import BREEDS, COARSE_CLASSES, WILD, WorldParams, image_rng, render
from synreal.data.toyworld_layouts import pet_class_ids, write_afhq_like, write_pet_like


def _digest(image) -> str:
    return hashlib.sha256(np.asarray(image).tobytes()).hexdigest()


def test_same_seed_same_pixels_different_seed_different_pixels():
    a, draw_a = render(BREEDS[0], 32, image_rng(0, 1, 2))
    b, draw_b = render(BREEDS[0], 32, image_rng(0, 1, 2))
    c, _ = render(BREEDS[0], 32, image_rng(1, 1, 2))
    assert _digest(a) == _digest(b) and draw_a == draw_b
    assert _digest(a) != _digest(c)


def test_classes_cover_the_study_design():
    assert COARSE_CLASSES == ("cat", "dog", "wild")
    assert len(BREEDS) >= 12
    assert {b.coarse for b in BREEDS} == {"cat", "dog"}
    assert {b.coarse for b in WILD} == {"wild"}


def test_natural_variation_within_configured_ranges():
    params = WorldParams()
    draws = [render(BREEDS[i % 12], 32, image_rng(7, i), params)[1] for i in range(120)]
    brightness = np.array([d.brightness for d in draws])
    assert params.brightness[0] <= brightness.min() and brightness.max() <= params.brightness[1]
    assert brightness.std() > 0.2
    occluded = np.mean([d.occluded for d in draws])
    assert 0.1 < occluded < 0.45
    ratios = np.array([d.object_area_ratio for d in draws])
    assert ratios.max() > 3 * ratios.min()


def test_narrow_world_has_narrower_spread():
    wide = [render(BREEDS[0], 32, image_rng(3, i), WorldParams())[1] for i in range(60)]
    narrow_params = WorldParams(scale=(0.6, 0.7), brightness=(0.9, 1.0), occlusion_prob=0.0)
    narrow = [render(BREEDS[0], 32, image_rng(3, i), narrow_params)[1] for i in range(60)]
    assert np.std([d.scale for d in narrow]) < np.std([d.scale for d in wide])
    assert not any(d.occluded for d in narrow)


@pytest.fixture(scope="module")
def pet_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("pet")
    write_pet_like(root, {"trainval": 2, "test": 1}, 24, 0, WorldParams())
    return root


def test_pet_layout_matches_the_official_format(pet_root):
    lines = (pet_root / "annotations" / "trainval.txt").read_text().splitlines()
    assert len(lines) == 2 * len(BREEDS)
    image, class_id, species, breed_id = lines[0].split()
    assert (pet_root / "images" / f"{image}.jpg").is_file()
    ids = pet_class_ids([b.name for b in BREEDS])
    assert int(class_id) == ids[image.rsplit("_", 1)[0]]
    assert species in {"1", "2"} and int(breed_id) >= 1
    assert ids["Abyssinian"] == 1  # alphabetical ignoring case, as in the official list


def test_afhq_layout_and_determinism(tmp_path):
    a = write_afhq_like(tmp_path / "a", {"train": 2, "test": 1}, 24, 5, WorldParams())
    b = write_afhq_like(tmp_path / "b", {"train": 2, "test": 1}, 24, 5, WorldParams())
    assert sorted(p.name for p in (tmp_path / "a" / "train").iterdir()) == ["cat", "dog", "wild"]
    assert len(list((tmp_path / "a").rglob("*.png"))) == 9
    for rel in a["relpath"]:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    assert a.drop(columns=[]).equals(b)
