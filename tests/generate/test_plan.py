import pandas as pd
import pytest

from synreal.errors import ConfigError
from synreal.generate import create, known_backends
from synreal.generate.params import GenerateParams
from synreal.generate.plan import build_plan, plan_digest, select_shards, shard_bounds
from synreal.generate.seeds import image_seed


def test_image_seed_is_deterministic_and_distinct():
    seeds = {image_seed(0, c, i) for c in ("cat", "dog") for i in range(500)}
    assert len(seeds) == 1000
    assert image_seed(5, "cat", 3) == image_seed(5, "cat", 3)
    assert image_seed(5, "cat", 3) != image_seed(6, "cat", 3)
    assert image_seed(5, "cat", 3, attempt=1) != image_seed(5, "cat", 3)
    assert all(0 <= s < 2**63 for s in seeds)


def test_plan_has_exact_per_class_counts_and_unique_ids():
    jobs = build_plan(GenerateParams(backend="toy", per_class={"cat": 3, "dog": 5, "wild": 0}))
    counts = pd.Series([j.label_name for j in jobs]).value_counts().to_dict()
    assert counts == {"cat": 3, "dog": 5}
    assert len({j.id for j in jobs}) == len(jobs)
    assert [j.label for j in jobs if j.label_name == "dog"] == [1] * 5
    assert jobs[0].seed == image_seed(0, "cat", 0)


def test_growing_a_class_keeps_existing_seeds_and_prompts():
    small = build_plan(GenerateParams(backend="toy", per_class=4))
    large = build_plan(GenerateParams(backend="toy", per_class=9))
    by_id = {j.id: j for j in large}
    assert all(by_id[j.id].seed == j.seed and by_id[j.id].template == j.template for j in small)


def test_per_class_null_matches_the_real_manifest():
    real = pd.DataFrame({"label": [0, 0, 0, 1, 2, 2], "label_name": ["cat"] * 3 + ["dog"]
                         + ["wild"] * 2})
    jobs = build_plan(GenerateParams(backend="toy", per_class=None), real)
    assert pd.Series([j.label_name for j in jobs]).value_counts().to_dict() == {
        "cat": 3, "wild": 2, "dog": 1}
    with pytest.raises(ConfigError, match="manifest"):
        build_plan(GenerateParams(backend="toy", per_class=None))


def test_labels_follow_the_real_manifest_order():
    real = pd.DataFrame({"label": [0, 1], "label_name": ["Bengal", "beagle"]})
    jobs = build_plan(GenerateParams(backend="toy", dataset="custom", per_class=1), real)
    assert [(j.label, j.label_name) for j in jobs] == [(0, "Bengal"), (1, "beagle")]


def test_unknown_per_class_name_is_an_error():
    with pytest.raises(ConfigError, match="horse"):
        build_plan(GenerateParams(backend="toy", per_class={"horse": 2}))


def test_image_variations_need_a_manifest():
    with pytest.raises(ConfigError, match="source_manifest"):
        build_plan(GenerateParams(backend="sd-image-variations"))


def test_shard_bounds_cover_the_plan():
    assert shard_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert shard_bounds(8, 4) == [(0, 4), (4, 8)]


@pytest.mark.parametrize("n_shards", [1, 5, 16])
@pytest.mark.parametrize("world_size", [1, 2, 3, 8])
def test_ranks_partition_the_shards(n_shards, world_size):
    parts = [select_shards(n_shards, rank=r, world_size=world_size) for r in range(world_size)]
    flat = [k for part in parts for k in part]
    assert sorted(flat) == list(range(n_shards))


def test_shard_range_and_bad_rank():
    assert select_shards(10, shard_range=(2, 5)) == [2, 3, 4]
    assert select_shards(3, shard_range=(2, 9)) == [2]
    with pytest.raises(ConfigError):
        select_shards(4, rank=2, world_size=2)


def test_plan_digest_ignores_batch_size_only():
    jobs = build_plan(GenerateParams(backend="toy", per_class=2))
    base = plan_digest(GenerateParams(backend="toy", per_class=2), jobs)
    assert plan_digest(GenerateParams(backend="toy", per_class=2, batch_size=9), jobs) == base
    assert plan_digest(GenerateParams(backend="toy", per_class=2, cfg_scale=3.0), jobs) != base


def test_registry_knows_every_backend_and_lists_them_on_error():
    assert set(known_backends()) >= {"sd", "sdxl", "sd-image-variations", "toy"}
    with pytest.raises(ConfigError, match="known backends: .*sdxl"):
        create("dalle", GenerateParams())


@pytest.mark.parametrize("key,value", [("dtype", "fp8"),
                                       ("image_format", "gif"), ("rare_scenarios", ("fog",))])
def test_params_reject_unknown_options_listing_valid_ones(key, value):
    with pytest.raises(ConfigError, match="choose one of"):
        GenerateParams(**{key: value})
