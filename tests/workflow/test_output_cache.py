"""Snakemake's between-workflow output cache shares generated datasets and checkpoints.

Two checkouts (working directories) on one machine point ``SNAKEMAKE_OUTPUT_CACHE`` at one
folder and run with ``--cache``: the second takes every generate and pretrain artifact from the
cache instead of recomputing it, and downstream stages read them as if made locally.
"""

import pytest
import yaml

from synreal.config import validate_config
from synreal.plan import build_plan

from ..conftest import MICRO_CONFIG, run_snakemake, why_snakemake_failed

pytestmark = pytest.mark.slow


def _cached_artifacts() -> list[str]:
    plan = build_plan(validate_config(yaml.safe_load(MICRO_CONFIG.read_text())))
    return sorted(job.target for job in [*plan.generators.values(), *plan.pretrain.values()])


def test_second_checkout_takes_datasets_and_checkpoints_from_the_cache(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    env = {"SNAKEMAKE_OUTPUT_CACHE": str(cache)}
    targets = _cached_artifacts()
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()

    made = run_snakemake(first, "--cores", "2", "--cache", "--", *targets, env=env)
    assert made.returncode == 0, why_snakemake_failed(made)
    for target in targets:
        assert f"Moving output file {target} to cache" in made.stderr, target

    taken = run_snakemake(second, "--cores", "2", "--cache", "--", *targets, env=env)
    assert taken.returncode == 0, why_snakemake_failed(taken)
    for target in targets:
        # restored from the cache, never run: the stage's own log line is absent
        assert f"Symlinking output file {target}/spec.json from cache" in taken.stderr, target
        stage = target.split("/")[1]
        log = second / "results" / "logs" / stage / f"{target.rsplit('/', 1)[1]}.log"
        assert "wrote" not in (log.read_text() if log.exists() else "")
    weights = [t for t in targets if t.startswith("results/pretrain/")]
    assert weights
    for target in weights:
        ours = (second / target / "teacher_backbone.safetensors").read_bytes()
        assert ours == (first / target / "teacher_backbone.safetensors").read_bytes()

    # downstream stages read the restored artifacts like local ones
    evaluated = run_snakemake(second, "--cores", "2", "--cache", "--", "table_main",
                              env=env)
    assert evaluated.returncode == 0, why_snakemake_failed(evaluated)
    assert (second / "results" / "tables" / "main.md").stat().st_size > 0
