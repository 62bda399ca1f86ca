"""Class prompts: templates per dataset and the SynBench rare-scenario phrases.

A :class:`PromptSet` names the classes of a dataset in label order, the words that describe
each class in a prompt (a class can have several, e.g. AFHQ ``wild`` covers six species), and
several templates with a ``{name}`` slot. Image ``i`` of a class uses template ``i mod T`` and
subject ``i mod S``, so every template and subject is used equally often.

Rare scenarios follow SynBench (Appendix A.1): "large" is inserted before the class name in
one third of a class's prompts and "small" in another third; "in a bright environment" is
appended to one third and "in a dark environment" to another; "occluded by human body"
follows the class name in every prompt. The thirds are exact per class and assigned by a
seeded shuffle, independent of the template cycle.

With a captioner (SynBench's default, after SynRep), prompts are "class name, caption" of
a real training image of the class (:func:`class_caption_prompts`); the templates are then
not used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from synreal.errors import ConfigError, DataError
from synreal.generate.seeds import class_key

#: Generic templates for any class list (CLIP-style photo prompts).
GENERIC_TEMPLATES: tuple[str, ...] = (
    "a photo of a {name}",
    "a high-quality photo of a {name}",
    "a close-up photo of a {name}",
    "a bright photo of a {name}",
    "a good photo of a {name}",
)

#: AFHQ holds animal faces, cropped and centred: the prompts ask for the same framing.
AFHQ_TEMPLATES: tuple[str, ...] = (
    "a close-up photo of the face of a {name}",
    "a high-quality portrait photo of a {name}'s face, looking at the camera",
    "a centered headshot photo of a {name}",
    "a detailed close-up of a {name}'s head, animal face photography",
)

#: Oxford-IIIT Pet: whole pets in everyday scenes (CLIP's pet prompt first).
PET_TEMPLATES: tuple[str, ...] = (
    "a photo of a {name}, a type of pet",
    "a photo of a {name} at home",
    "a high-quality photo of a {name}",
    "a photo of a {name} outdoors",
)

#: AFHQ's "wild" class: the species in its wild split.
AFHQ_WILD_SPECIES = ("lion", "tiger", "fox", "wolf", "leopard", "cheetah")

#: The 37 Oxford-IIIT Pet breeds as spelled in its file names, in label order (official
#: CLASS-ID order: alphabetical ignoring case; capitalised names are cats).
OXFORD_PET_BREEDS: tuple[str, ...] = tuple(sorted((
    "Abyssinian", "Bengal", "Birman", "Bombay", "British_Shorthair", "Egyptian_Mau",
    "Maine_Coon", "Persian", "Ragdoll", "Russian_Blue", "Siamese", "Sphynx",
    "american_bulldog", "american_pit_bull_terrier", "basset_hound", "beagle", "boxer",
    "chihuahua", "english_cocker_spaniel", "english_setter", "german_shorthaired",
    "great_pyrenees", "havanese", "japanese_chin", "keeshond", "leonberger",
    "miniature_pinscher", "newfoundland", "pomeranian", "pug", "saint_bernard", "samoyed",
    "scottish_terrier", "shiba_inu", "staffordshire_bull_terrier", "wheaten_terrier",
    "yorkshire_terrier",
), key=str.lower))

_PET_NAME_FIXES = {"german_shorthaired": "german shorthaired pointer"}

SCALE_PHRASES = ("large", "small", None)
BRIGHTNESS_PHRASES = ("in a bright environment", "in a dark environment", None)
PERSON_PHRASE = "occluded by human body"


def readable(class_name: str) -> str:
    """A class folder name as words: ``British_Shorthair`` -> ``British Shorthair``."""
    return class_name.replace("_", " ").replace("-", " ").strip()


def pet_subject(breed: str) -> str:
    """Prompt words for an Oxford-IIIT Pet breed, naming the species (cat or dog)."""
    words = _PET_NAME_FIXES.get(breed, readable(breed))
    return f"{words} cat" if breed[:1].isupper() else f"{words} dog"


@dataclass(frozen=True)
class PromptSet:
    """Classes in label order, their prompt subjects and the templates."""

    classes: tuple[str, ...]
    subjects: dict[str, tuple[str, ...]]
    templates: tuple[str, ...]


def prompt_set(dataset: str, classes: tuple[str, ...] | None = None,
               templates: tuple[str, ...] | None = None) -> PromptSet:
    """The prompt set of ``dataset`` (afhq, oxford_pet or custom), optionally overridden.

    Args:
        classes: class names in label order; default the dataset's own (custom needs them).
        templates: replace the dataset's templates (each needs a ``{name}`` slot).
    """
    if dataset == "afhq":
        default, base_templates = ("cat", "dog", "wild"), AFHQ_TEMPLATES
    elif dataset == "oxford_pet":
        default, base_templates = OXFORD_PET_BREEDS, PET_TEMPLATES
    elif dataset == "custom":
        default, base_templates = None, GENERIC_TEMPLATES
    else:
        raise ConfigError(f"unknown generate dataset {dataset!r}; choose one of "
                          "['afhq', 'custom', 'oxford_pet'].")
    names = tuple(classes) if classes else default
    if not names:
        raise ConfigError("generate dataset 'custom' needs a class list (generate classes).")
    subjects = {name: _subjects(dataset, name) for name in names}
    return PromptSet(names, subjects, tuple(templates) if templates else base_templates)


def _subjects(dataset: str, name: str) -> tuple[str, ...]:
    if dataset == "afhq" and name == "wild":
        return AFHQ_WILD_SPECIES
    if dataset == "oxford_pet" and name in OXFORD_PET_BREEDS:
        return (pet_subject(name),)
    return (readable(name),)


def scenario_assignment(n: int, seed: int, class_name: str, scenario: str) -> list[int]:
    """Which third each of ``n`` images falls in (0, 1 or 2): exact thirds, seeded shuffle.

    The first ``n mod 3`` leftover images go to thirds 0, 1 in order, so the counts of two
    thirds never differ by more than one.
    """
    thirds = np.arange(n) % 3
    rng = np.random.default_rng([int(seed), class_key(class_name), class_key(scenario)])
    return [int(v) for v in rng.permutation(thirds)]


def compose(template: str, subject: str, scale: str | None = None,
            brightness: str | None = None, person: bool = False) -> str:
    """Fill ``template`` with ``subject`` plus the rare-scenario phrases (SynBench A.1).

    Example:
        >>> compose("a photo of a {name}", "cat", "large", "in a dark environment", True)
        'a photo of a large cat occluded by human body in a dark environment'
    """
    words = f"{scale} {subject}" if scale else subject
    if person:
        words = f"{words} {PERSON_PHRASE}"
    prompt = template.format(name=words)
    if brightness:
        prompt = f"{prompt.rstrip('. ')} {brightness}"
    return prompt


def class_prompts(prompts: PromptSet, class_name: str, n: int, seed: int,
                  rare_scenarios: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """``(template, prompt)`` for images ``0..n-1`` of ``class_name``."""
    subjects = prompts.subjects[class_name]
    scale = (scenario_assignment(n, seed, class_name, "scale") if "scale" in rare_scenarios
             else [2] * n)
    light = (scenario_assignment(n, seed, class_name, "brightness")
             if "brightness" in rare_scenarios else [2] * n)
    person = "person" in rare_scenarios
    out = []
    for i in range(n):
        template = prompts.templates[i % len(prompts.templates)]
        subject = subjects[i % len(subjects)]
        out.append((template, compose(template, subject, SCALE_PHRASES[scale[i]],
                                      BRIGHTNESS_PHRASES[light[i]], person)))
    return out


def caption_subject(subjects: tuple[str, ...], caption: str, index: int) -> str:
    """The class words for a captioned prompt: the subject the caption names, else cycled.

    A class with several subjects (AFHQ ``wild``: lion, tiger, ...) names the species its
    real image's caption already mentions, so a prompt never says "fox, a lion in the grass".

    Example:
        >>> caption_subject(("lion", "tiger"), "a tiger lying in the grass", 0)
        'tiger'
    """
    for subject in subjects:
        if re.search(rf"\b{re.escape(subject)}s?\b", caption, flags=re.IGNORECASE):
            return subject
    return subjects[index % len(subjects)]


def class_caption_prompts(prompts: PromptSet, class_name: str, n: int, seed: int,
                          captions: list[tuple[str, str]], caption_template: str,
                          rare_scenarios: tuple[str, ...] = ()
                          ) -> list[tuple[str, str, str, str]]:
    """``(template, prompt, caption, real image id)`` for images ``0..n-1`` of a class.

    SynBench's "class name, caption" prompts: image ``i`` takes the caption of the class's
    real image ``i mod len(captions)`` (ids in order) and fills ``caption_template``; the
    rare-scenario phrases are added as :func:`compose` adds them to a template.
    """
    if n and not captions:
        raise DataError(f"class {class_name!r} has no captioned real training image to "
                        "prompt with; set its per_class to 0 or remove captioner_path.")
    subjects = prompts.subjects[class_name]
    scale = (scenario_assignment(n, seed, class_name, "scale") if "scale" in rare_scenarios
             else [2] * n)
    light = (scenario_assignment(n, seed, class_name, "brightness")
             if "brightness" in rare_scenarios else [2] * n)
    out = []
    for i in range(n):
        source_id, caption = captions[i % len(captions)]
        filled = caption_template.replace("{caption}", caption)
        prompt = compose(filled, caption_subject(subjects, caption, i), SCALE_PHRASES[scale[i]],
                         BRIGHTNESS_PHRASES[light[i]], "person" in rare_scenarios)
        out.append((caption_template, prompt, caption, source_id))
    return out
