"""The plan prints each DINO run's teacher averaging window in epochs of its data (issue 20)."""

import yaml

from synreal import cost
from synreal.config import validate_config
from synreal.dino.params import momentum_for_window, teacher_window_epochs
from synreal.dino.teacher_window import training_images, window_lines

from ..conftest import REPO

#: AFHQ's and Oxford-IIIT Pet's training images as the released folders hold them.
COUNTS = {"afhq": 14_630, "pets": 3_680}


def _study_lines(monkeypatch) -> dict[str, str]:
    monkeypatch.setattr(cost, "_training_images", lambda config, base: COUNTS)
    study = yaml.safe_load((REPO / "config" / "studies" / "afhq_pets.yaml").read_text())
    config = validate_config(study, check_paths=False)
    lines = window_lines(config, training_images(config, REPO))
    return {line.split(":")[0]: line for line in lines}


def test_the_study_pretrains_with_the_official_window_of_0_2_epochs(monkeypatch):
    lines = _study_lines(monkeypatch)
    # official: 0.996 at batch 1024 on ImageNet's 1,281,167 images
    assert round(teacher_window_epochs(0.996, 1024, 1_281_167), 2) == 0.2
    assert round(momentum_for_window(0.2, 64, COUNTS["afhq"]), 3) == 0.978
    for run in ("real", "synthetic", "mix50", "mixdiff_1g6l_1g2l"):
        assert "= 0.20 epochs of 14,630 images at batch 64" in lines[f"pretrain {run}"], lines


def test_realtune_window_is_a_share_of_its_short_schedule(monkeypatch):
    line = next(v for k, v in _study_lines(monkeypatch).items() if k.startswith("realtune"))
    assert "momentum 0.99 averages ~100 steps = 4.55 epochs of 1,463 images" in line, line


def test_unknown_image_counts_leave_the_window_in_steps(monkeypatch):
    monkeypatch.setattr(cost, "_training_images", lambda config, base: {})
    study = yaml.safe_load((REPO / "config" / "studies" / "afhq_pets.yaml").read_text())
    config = validate_config(study, check_paths=False)
    lines = window_lines(config, training_images(config, REPO))
    assert all("image count known once the data is ingested" in line for line in lines)


def test_a_realtune_subset_smaller_than_a_batch_is_refused_before_any_job(monkeypatch):
    import pytest

    from synreal.dino.teacher_window import check_realtune_schedule
    from synreal.errors import ConfigError

    study = yaml.safe_load((REPO / "config" / "studies" / "afhq_pets.yaml").read_text())
    config = validate_config(study, check_paths=False)
    check_realtune_schedule(config, COUNTS)  # 1,463 images at batch 64
    with pytest.raises(ConfigError, match=r"realtune.ssl.params.fraction 0.1 of afhq's 500 "
                                          r"training images is 50 images, fewer than one batch"):
        check_realtune_schedule(config, {"afhq": 500})
