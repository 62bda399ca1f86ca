import numpy as np
import pytest

from synreal.data.toyworld import ALL_BREEDS, WorldParams, image_rng, render
from synreal.errors import ConfigError
from synreal.generate.params import GenerateParams
from synreal.generate.plan import build_plan
from synreal.generate.toy_backend import ToyBackend, pick_breed

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


def test_toy_variations_make_one_counterpart_per_real_image(tmp_path):
    import pandas as pd

    from synreal.generate.run import generate_dataset

    real = pd.DataFrame({
        "id": [f"train/cat/{i}" for i in range(3)] + ["train/wild/0"],
        "path": ["unused"] * 4, "label": [0, 0, 0, 2],
        "label_name": ["cat", "cat", "cat", "wild"], "split": ["train"] * 4,
    })
    params = GenerateParams(backend="toy-variations", image_size=24, shard_size=2)
    manifest = generate_dataset(params, tmp_path, source_manifest=real, progress=False)
    assert sorted(manifest["source_id"]) == sorted(real["id"])
    pairs = manifest.set_index("source_id")
    assert (pairs.loc[real["id"], "label"].to_numpy() == real["label"].to_numpy()).all()
    assert set(manifest.set_index("source_id").loc["train/wild/0", ["coarse"]]) == {"wild"}
    assert not manifest["occluded"].any()
