import numpy as np
import pytest

from synreal.data.toyworld import ALL_BREEDS, WorldParams, image_rng, render
from synreal.errors import ConfigError
from synreal.generate.params import GenerateParams
from synreal.generate.plan import build_plan
from synreal.generate.toy_backend import ToyBackend, pick_breed
from synreal.generate.toy_guidance import toy_world

N = 240


@pytest.fixture(scope="module")
def toy_rows():
    params = GenerateParams(backend="toy", dataset="custom", classes=("Bengal", "beagle"),
                            per_class=N // 2, image_size=24, confusion_rate=0.25)
    jobs = build_plan(params)
    made = ToyBackend(params).generate(jobs, [j.seed for j in jobs])
    return params, jobs, [m.extra for m in made]


def _real_draws(n):
    return [render(ALL_BREEDS["Bengal"], 24, image_rng(1, i), WorldParams())[1]
            for i in range(n)]


def test_toy_brightness_stays_in_its_narrow_range(toy_rows):
    params, _, rows = toy_rows
    brightness = np.array([r["brightness"] for r in rows])
    lo, hi = params.toy_brightness
    assert brightness.min() >= lo and brightness.max() <= hi
    real = np.array([d.brightness for d in _real_draws(N)])
    assert real.min() < lo and real.max() > hi  # the real world is wider on both sides


def test_toy_object_scale_is_narrower_than_the_real_world(toy_rows):
    _, _, rows = toy_rows
    toy = np.array([r["scale"] for r in rows])
    real = np.array([d.scale for d in _real_draws(N)])
    assert toy.std() < 0.7 * real.std()
    assert np.percentile(toy, 5) > np.percentile(real, 5)
    assert np.percentile(toy, 95) < np.percentile(real, 95)


def test_toy_never_occludes(toy_rows):
    _, _, rows = toy_rows
    assert not any(r["occluded"] for r in rows)
    assert all(r["person_bbox"] is None for r in rows)


def test_confusion_rate_is_honoured_and_stays_in_the_coarse_class(toy_rows):
    params, jobs, rows = toy_rows
    confused = np.array([r["breed"] != job.label_name for r, job in zip(rows, jobs, strict=True)])
    assert confused.tolist() == [r["confused"] for r in rows]
    sigma = np.sqrt(params.confusion_rate * (1 - params.confusion_rate) / len(rows))
    assert abs(confused.mean() - params.confusion_rate) < 4 * sigma
    for r, job in zip(rows, jobs, strict=True):
        assert r["coarse"] == ALL_BREEDS[job.label_name].coarse


@pytest.mark.parametrize("rate,expected", [(0.0, 0.0), (1.0, 1.0)])
def test_confusion_extremes(rate, expected):
    rng = np.random.default_rng(0)
    picks = [pick_breed("Siamese", rng, rate) for _ in range(50)]
    assert np.mean([c for _, c in picks]) == expected
    assert all((b != "Siamese") == c for b, c in picks)


def test_coarse_classes_draw_any_breed_without_confusion():
    rng = np.random.default_rng(0)
    picks = [pick_breed("dog", rng, 1.0) for _ in range(200)]
    assert not any(c for _, c in picks)
    assert {ALL_BREEDS[b].coarse for b, _ in picks} == {"dog"}
    assert len({b for b, _ in picks}) > 3


def test_unknown_toy_class_lists_known_ones():
    with pytest.raises(ConfigError, match="Bengal"):
        pick_breed("Sphynx", np.random.default_rng(0), 0.1)


def test_toy_variations_redraw_each_real_images_scene(tmp_path):
    import pandas as pd
    from PIL import Image

    from synreal.data.toyworld_layouts import write_toyworld
    from synreal.generate.run import generate_dataset

    draws = write_toyworld(tmp_path / "afhq", "afhq", {"train": 3}, 24, 0, WorldParams())
    real = pd.DataFrame({"id": draws["relpath"], "label_name": draws["coarse"],
                         "path": [str(tmp_path / "afhq" / "data" / r) for r in draws["relpath"]],
                         "split": "train"})
    real["label"] = real["label_name"].map({"cat": 0, "dog": 1, "wild": 2})
    params = GenerateParams(backend="toy-variations", image_size=24, shard_size=2)
    manifest = generate_dataset(params, tmp_path / "var", source_manifest=real, progress=False)
    assert sorted(manifest["source_id"]) == sorted(real["id"])
    pairs = manifest.merge(draws, left_on="source_id", right_on="relpath",
                           suffixes=("", "_real"))
    assert (pairs["label"].to_numpy() == real.set_index("id").loc[pairs["source_id"],
                                                                  "label"].to_numpy()).all()
    # kept: the breed and the background gradient; redrawn: pose, scale, brightness, clutter,
    # in the generator's narrow world, never occluded
    assert (pairs["breed"] == pairs["breed_real"]).all() and not pairs["confused"].any()
    for end in ("background_top", "background_bottom"):
        assert [list(v) for v in pairs[end]] == [list(v) for v in pairs[f"{end}_real"]]
    world = toy_world(params)
    assert pairs["brightness"].between(*world.brightness).all()
    assert (pairs["brightness"] != pairs["brightness_real"]).all()
    assert not manifest["occluded"].any()
    for row in pairs.itertuples():
        variation = np.asarray(Image.open(tmp_path / "var" / row.relpath), dtype=float)
        source = np.asarray(Image.open(tmp_path / "afhq" / "data" / row.relpath_real),
                            dtype=float)
        assert np.abs(variation - source).mean() > 5


def test_toy_variations_of_breed_labels_confuse_like_the_toy_backend(tmp_path):
    import pandas as pd

    from synreal.data.toyworld_layouts import write_toyworld
    from synreal.generate.run import generate_dataset

    draws = write_toyworld(tmp_path / "pets", "oxford_pet", {"trainval": 4}, 24, 0,
                           WorldParams())
    names = sorted(draws["breed"].unique())
    real = pd.DataFrame({"id": draws["relpath"], "label_name": draws["breed"],
                         "label": draws["breed"].map(names.index),
                         "path": [str(tmp_path / "pets" / "data" / r) for r in draws["relpath"]],
                         "split": "trainval"})
    params = GenerateParams(backend="toy-variations", image_size=24, confusion_rate=0.5)
    manifest = generate_dataset(params, tmp_path / "var", source_manifest=real, progress=False)
    pairs = manifest.merge(real, left_on="source_id", right_on="id", suffixes=("", "_real"))
    assert (pairs["label_name"] == pairs["label_name_real"]).all()
    assert ((pairs["breed"] != pairs["label_name"]) == pairs["confused"]).all()
    assert 0 < pairs["confused"].sum() < len(pairs)


def test_toy_variations_refuse_images_outside_the_toy_world(tmp_path):
    import pandas as pd
    from PIL import Image

    from synreal.errors import DataError
    from synreal.generate.run import generate_dataset

    (tmp_path / "photos" / "cat").mkdir(parents=True)
    Image.new("RGB", (24, 24)).save(tmp_path / "photos" / "cat" / "a.png")
    real = pd.DataFrame({"id": ["cat/a"], "path": [str(tmp_path / "photos" / "cat" / "a.png")],
                         "label": [0], "label_name": ["cat"], "split": ["train"]})
    params = GenerateParams(backend="toy-variations", image_size=24)
    with pytest.raises(DataError, match="a.png is not a toy-world image.*sd-image-variations"):
        generate_dataset(params, tmp_path / "var", source_manifest=real, progress=False)


def test_toy_variations_name_a_draws_table_without_backgrounds(tmp_path):
    from synreal.data.toyworld_layouts import DRAWS_FILE, SourceDraws, write_toyworld
    from synreal.errors import DataError

    draws = write_toyworld(tmp_path / "afhq", "afhq", {"train": 1}, 24, 0, WorldParams())
    draws.drop(columns=["background_top", "background_bottom"]).to_parquet(
        tmp_path / "afhq" / DRAWS_FILE)
    image = tmp_path / "afhq" / "data" / draws["relpath"][0]
    with pytest.raises(DataError, match="draws.parquet predates recorded backgrounds"):
        SourceDraws()(image)
    draws.to_parquet(tmp_path / "afhq" / DRAWS_FILE)
    assert SourceDraws()(image)["breed"] == draws["breed"][0]
    with pytest.raises(DataError, match="is not recorded in"):
        SourceDraws()(image.with_name("missing.png"))


def test_the_toy_scale_range_follows_guidance_above_the_default_worlds_scales():
    """A study whose real animals are close-ups (the demo's 1.0-1.5) sets toy_scale above the
    default world's 0.3-0.95: guidance still narrows or widens it around its centre, clipped
    only to the scales the renderer can draw, not squashed to 0.95."""
    close_ups = {"backend": "toy", "toy_scale": (1.05, 1.35)}
    assert toy_world(GenerateParams(**close_ups)).scale == pytest.approx((1.05, 1.35))
    assert toy_world(GenerateParams(**close_ups, cfg_scale=15.0)).scale == pytest.approx(
        (1.125, 1.275))
    low, high = toy_world(GenerateParams(**close_ups, cfg_scale=2.5)).scale
    assert low == pytest.approx(0.75) and high == pytest.approx(1.65)
    image, draw = render(ALL_BREEDS["Bengal"], 32, image_rng(0, 0), WorldParams(scale=(1.8, 1.8)))
    assert image.size == (32, 32) and draw.object_area_ratio > 0.3
