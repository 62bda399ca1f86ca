"""What a table caption says about the DINO recipe: the settings unlike main_dino.py's."""

from dataclasses import asdict

import yaml

from synreal.dino.params import DinoParams, recipe_changes
from synreal.stages.pretrain import resolve

from ..conftest import REPO


def _recipe(path: str) -> dict:
    config = yaml.safe_load((REPO / path).read_text())
    return resolve(config["pretrain"]["params"], {"source": "real", "real": "afhq"}, "real")["dino"]


def test_the_official_defaults_change_nothing():
    assert recipe_changes(asdict(DinoParams())) == []
    # what the caption states anyway, or how a run is computed, is not a recipe change
    assert recipe_changes(asdict(DinoParams(arch="vit_base_patch16_224", epochs=3, seed=4,
                                            num_workers=0, augment="batched"))) == []


def test_the_full_study_names_its_two_departures():
    assert recipe_changes(_recipe("config/studies/afhq_pets.yaml")) == [
        "norm_last_layer False", "momentum_teacher 0.978"]


def test_the_demo_names_its_small_data_settings():
    changes = recipe_changes(_recipe("config/config.yaml"))
    for expected in ("out_dim 256", "head_hidden_dim 512", "teacher_temp 0.02",
                     "momentum_teacher 0.98", "global_crop_size 32", "local_crops_number 2"):
        assert expected in changes, changes
    assert recipe_changes({**asdict(DinoParams()), "global_crops_scale": [0.3, 1.0]}) == [
        "global_crops_scale [0.3, 1.0]"]
