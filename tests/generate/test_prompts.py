from collections import Counter

import pytest

from synreal.errors import ConfigError
from synreal.generate.params import GenerateParams
from synreal.generate.prompts import (
    AFHQ_WILD_SPECIES,
    OXFORD_PET_BREEDS,
    class_prompts,
    compose,
    prompt_set,
    scenario_assignment,
)


def test_afhq_prompt_set_has_three_classes_and_several_templates():
    prompts = prompt_set("afhq")
    assert prompts.classes == ("cat", "dog", "wild")
    assert len(prompts.templates) >= 3
    assert prompts.subjects["wild"] == AFHQ_WILD_SPECIES


def test_oxford_pet_has_37_breeds_in_official_label_order():
    assert len(OXFORD_PET_BREEDS) == 37
    assert OXFORD_PET_BREEDS[0] == "Abyssinian"
    # official CLASS-IDs (annotations/list.txt): 6 Bengal, 9 boxer, 10 British_Shorthair
    assert OXFORD_PET_BREEDS[5] == "Bengal" and OXFORD_PET_BREEDS[8] == "boxer"
    assert OXFORD_PET_BREEDS[9] == "British_Shorthair"
    assert OXFORD_PET_BREEDS[-1] == "yorkshire_terrier"
    prompts = prompt_set("oxford_pet")
    assert prompts.subjects["Persian"] == ("Persian cat",)
    assert prompts.subjects["shiba_inu"] == ("shiba inu dog",)
    cats = [b for b in OXFORD_PET_BREEDS if prompts.subjects[b][0].endswith(" cat")]
    assert len(cats) == 12


def test_custom_needs_classes_and_unknown_dataset_lists_options():
    with pytest.raises(ConfigError, match="class list"):
        prompt_set("custom")
    assert prompt_set("custom", ("sea_lion",)).subjects["sea_lion"] == ("sea lion",)
    with pytest.raises(ConfigError, match="oxford_pet"):
        prompt_set("imagenet")


def test_templates_cycle_over_images_of_a_class():
    prompts = prompt_set("custom", ("fox",), ("a {name}", "two {name}", "red {name}"))
    texts = [p for _, p in class_prompts(prompts, "fox", 6, seed=0)]
    assert texts == ["a fox", "two fox", "red fox"] * 2


def test_template_without_slot_is_rejected():
    with pytest.raises(ConfigError, match="name"):
        GenerateParams(templates=("a photo",))


def test_compose_follows_synbench_phrasing():
    assert compose("{name}, a man holding a fish", "tench", scale="large") == (
        "large tench, a man holding a fish")
    assert compose("{name}, a man holding a fish", "tench", brightness="in a bright environment",
                   person=True) == (
        "tench occluded by human body, a man holding a fish in a bright environment")


@pytest.mark.parametrize("n", [30, 31, 32, 7])
def test_rare_scenarios_split_in_exact_thirds_per_class(n):
    prompts = prompt_set("afhq")
    texts = [p for _, p in class_prompts(prompts, "dog", n, seed=3,
                                         rare_scenarios=("scale", "brightness", "person"))]
    scale = Counter("large" if " large " in t else "small" if " small " in t else "-"
                    for t in texts)
    light = Counter("bright" if "bright environment" in t else
                    "dark" if "dark environment" in t else "-" for t in texts)
    for counts in (scale, light):
        assert sum(counts.values()) == n
        assert max(counts.values()) - min(counts.values()) <= 1
        assert len(counts) == 3 or n < 3
    assert all("occluded by human body" in t for t in texts)


def test_scenario_thirds_are_independent_of_the_template_cycle():
    prompts = prompt_set("afhq")
    pairs = class_prompts(prompts, "cat", 120, seed=0, rare_scenarios=("scale",))
    per_template = Counter((t, " large " in p) for t, p in pairs)
    # every template gets some large prompts and some not (no lock-step with i mod T)
    for template in prompts.templates:
        assert per_template[(template, True)] > 0
        assert per_template[(template, False)] > 0


def test_scenario_assignment_is_seeded():
    assert scenario_assignment(30, 1, "cat", "scale") == scenario_assignment(30, 1, "cat", "scale")
    assert scenario_assignment(30, 1, "cat", "scale") != scenario_assignment(30, 2, "cat", "scale")


def test_no_rare_scenarios_leaves_prompts_plain():
    prompts = prompt_set("afhq")
    texts = [p for _, p in class_prompts(prompts, "cat", 9, seed=0)]
    assert not any(w in t for t in texts for w in (" large ", " small ", "environment",
                                                    "occluded"))
