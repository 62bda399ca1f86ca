"""The study plan for the paper tables: what each table reads, and what it shares."""

import copy

import pytest
import yaml

from synreal.config import validate_config
from synreal.errors import ConfigError
from synreal.plan import build_plan

from .conftest import REPO

MICRO_TABLES = REPO / "tests" / "configs" / "micro_tables.yaml"


@pytest.fixture
def config() -> dict:
    return yaml.safe_load(MICRO_TABLES.read_text())


def _plan(config):
    return build_plan(validate_config(copy.deepcopy(config)))


def test_the_configured_guidance_scale_is_the_generator_itself(config):
    plan = _plan(config)
    generator, audit, pretrain = plan.cfg[7.5]
    assert generator.key == plan.generators["afhq_syn"].key
    assert audit.key == plan.audits["afhq_syn"].key
    assert pretrain.key == plan.pretrain["synthetic"].key
    other = plan.cfg[2.5][0]
    assert other.key != generator.key and other.params["cfg_scale"] == 2.5


def test_realtune_jobs_continue_from_their_pretraining_runs(config):
    plan = _plan(config)
    assert len(plan.tuned) == 4 + 6  # ssl: 2 runs x 2 data; supervised: 3 runs x 2 data
    ssl = plan.tuned[("synthetic", "ssl", "real")]
    assert ssl.upstream["checkpoint"] == plan.pretrain["synthetic"].ref
    assert ssl.upstream["data"] == plan.datasets["afhq"].ref
    assert ssl.params["dino"]["epochs"] == 1 and ssl.params["tune"]["mode"] == "ssl"
    supervised = plan.tuned[("mix50", "supervised", "synthetic")]
    assert supervised.upstream["data"] == plan.generators["pets_syn"].ref
    assert supervised.upstream["dataset"] == plan.datasets["pets"].ref


def test_mix_ratio_rows_are_ordered_by_real_share(config):
    table = _plan(config).tables["mix_ratio"]
    labels = [table.params["runs"][name]["labels"]["real %"]
              for name in table.params["order"]]
    assert labels == [0, 50, 100]


def test_every_table_reads_only_artifacts_it_names_as_inputs(config):
    plan = _plan(config)
    for table in plan.tables.values():
        for row in table.params.get("runs", {}).values():
            for key, path in row.items():
                if key not in ("labels", "paper"):
                    assert path in table.needs, (table.name, key)


@pytest.mark.parametrize(("drop", "table", "message"), [
    ("realtune", "realtune", "realtune.ssl section"),
    ("cfg_sweep", "cfg", "cfg_sweep section"),
])
def test_a_table_without_its_section_names_the_section(config, drop, table, message):
    del config[drop]
    config["tables"] = ["datasets", table]
    with pytest.raises(ConfigError, match=message):
        _plan(config)


def test_pretrain_finetune_needs_a_mixed_run(config):
    del config["pretrain"]["runs"]["mix50"]
    config["tables"] = ["datasets", "pretrain_finetune"]
    with pytest.raises(ConfigError, match="mixed-data pretraining run"):
        _plan(config)
