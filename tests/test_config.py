import copy

import pytest
import yaml

from synreal.config import load_config, validate_config
from synreal.errors import ConfigError

from .conftest import REPO


def _with(config: dict, path: str, value) -> dict:
    config = copy.deepcopy(config)
    *parents, last = path.split(".")
    node = config
    for part in parents:
        node = node[part]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return config


_DELETE = object()

BAD = [
    ("study.colour", "blue", "study.colour"),
    ("datasets.afhq.fromat", "afhq", "datasets.afhq.fromat"),
    ("datasets.afhq.format", "coco", "datasets.afhq.format"),
    ("datasets.afhq.on_corrupt", "ignore", "datasets.afhq.on_corrupt"),
    ("study.seed", "zero", "study.seed"),
    ("study.seed", -1, "study.seed"),
    ("toyworld.image_size", 8, "toyworld.image_size"),
    ("toyworld.occlusion_prob", 1.5, "toyworld.occlusion_prob"),
    ("datasets.pets.toyworld.test", 0, "datasets.pets.toyworld.test"),
    ("tables", ["main_table"], "tables.0"),
    ("study.name", _DELETE, "'name'"),
    ("datasets.pets.format", _DELETE, "'format'"),
    ("generators.afhq_syn.params.cfg_scale", "high", "generators.afhq_syn.params.cfg_scale"),
    ("generators.afhq_syn.params.steps_count", 3, "generators.afhq_syn.params.steps_count"),
    ("generators.afhq_syn.like", _DELETE, "'like'"),
    ("resources", {"pretrain": {"gpu": -1}}, "resources.pretrain.gpu"),
]


@pytest.mark.parametrize(("path", "value", "named"), BAD, ids=[b[0] + "-" + str(i)
                                                              for i, b in enumerate(BAD)])
def test_bad_config_names_the_key(micro_config, path, value, named):
    with pytest.raises(ConfigError) as error:
        validate_config(_with(micro_config, path, value))
    message = str(error.value)
    assert named in message
    assert "\n" not in message


def test_path_and_toyworld_together_is_one_clear_error(micro_config):
    bad = _with(micro_config, "datasets.afhq.path", "/data/afhq")
    with pytest.raises(ConfigError, match=r"datasets\.afhq has both 'path' and 'toyworld'"):
        validate_config(bad)


def test_missing_dataset_path_names_key_and_path(micro_config, tmp_path):
    config = copy.deepcopy(micro_config)
    config["datasets"]["pets"] = {"format": "oxford_pet", "path": str(tmp_path / "nowhere")}
    with pytest.raises(ConfigError, match=r"datasets\.pets\.path: folder .*nowhere does not"):
        validate_config(config)


def test_defaults_are_filled(micro_config):
    config = validate_config(micro_config)
    assert config["toyworld"]["occlusion_prob"] == 0.25
    assert micro_config["toyworld"] == {"image_size": 32}  # input not mutated


def test_shipped_configs_are_valid():
    load_config(REPO / "config" / "config.yaml")
    study = yaml.safe_load((REPO / "config" / "studies" / "afhq_pets.yaml").read_text())
    validate_config(study, check_paths=False)


def test_load_config_rejects_non_mapping(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(path)


def test_every_schema_property_is_documented():
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    missing = []

    def walk(node, where):
        for name, sub in node.get("properties", {}).items():
            if "description" not in sub:
                missing.append(f"{where}.{name}")
            walk(sub, f"{where}.{name}")
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], f"{where}.*")

    walk(schema, "")
    assert not missing


def test_schema_parameter_blocks_are_up_to_date():
    from synreal.config import SCHEMA_PATH
    from synreal.schema import render

    current = SCHEMA_PATH.read_text()
    assert render(current) == current, "run: python -m synreal.schema"


def test_generator_like_must_name_a_dataset(micro_config):
    from synreal.plan import build_plan

    micro_config["generators"]["afhq_syn"]["like"] = "imagenet"
    with pytest.raises(ConfigError, match=r"generators\.afhq_syn\.like: no dataset called"):
        build_plan(validate_config(micro_config))
