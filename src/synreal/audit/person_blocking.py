"""Person blocking: is the central object covered by a person? (SynBench Fig. 5c).

SynBench selects images with people by YOLOv5 and asks GPT-4o "Is part of {class_name}
occluded by the human body in the image? Please only answer yes or no." (Section 3.2). Here a
person detector with local weights gives person boxes and an overlap rule decides: the image
is blocked when some person box covers more than ``blocking_overlap`` of the central object's
box (the object-scale box). Optionally a local vision-language judge (:mod:`~synreal.audit.vlm`)
is asked SynBench's question about the images with a person (:func:`judge_blocking`), and its
verdict is kept beside the overlap rule's.

Person detectors live in a registry: ``none`` (not measured: NaN, never 0), ``boxes-from-column``
(person boxes in the manifest, e.g. the toy world's truth) and ``owlvit`` ("a photo of a
person", local weights).

Example:
    >>> covered_fraction(np.array([[0.0, 0.0, 1.0, 1.0]]),
    ...                  [np.array([[0.5, 0.0, 1.0, 1.0]])]).tolist()
    [0.5]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
import pandas as pd

from synreal.audit import vlm
from synreal.audit.classes import object_phrases
from synreal.audit.object_scale import boxes_from_column, query_text
from synreal.audit.owlvit import PERSON_QUERY
from synreal.audit.params import AuditParams
from synreal.errors import ConfigError


def covered_fraction(object_boxes: np.ndarray, person_boxes: list[np.ndarray]) -> np.ndarray:
    """Largest share of each object box covered by one of its image's person boxes.

    Args:
        object_boxes: ``(B, 4)`` xyxy boxes (any common unit); NaN rows = no object found.
        person_boxes: B arrays ``(K_i, 4)`` in the same unit (``K_i`` may be 0).

    Returns:
        ``(B,)`` in [0, 1]: ``max_k area(object & person_k) / area(object)``; 0 without
        persons; NaN where the object box is NaN or empty.
    """
    objects = np.asarray(object_boxes, dtype=np.float64).reshape(-1, 4)
    if len(person_boxes) != len(objects):
        raise ValueError(f"{len(objects)} object boxes but {len(person_boxes)} person lists")
    counts = np.array([len(p) for p in person_boxes], dtype=np.int64)
    owner = np.repeat(np.arange(len(objects)), counts)
    persons = (np.concatenate([np.asarray(p, np.float64).reshape(-1, 4) for p in person_boxes])
               if counts.sum() else np.zeros((0, 4)))
    obj = objects[owner]
    inter_w = np.clip(np.minimum(obj[:, 2], persons[:, 2]) - np.maximum(obj[:, 0], persons[:, 0]),
                      0, None)
    inter_h = np.clip(np.minimum(obj[:, 3], persons[:, 3]) - np.maximum(obj[:, 1], persons[:, 1]),
                      0, None)
    area = (objects[:, 2] - objects[:, 0]) * (objects[:, 3] - objects[:, 1])
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.nan_to_num(inter_w * inter_h / area[owner], nan=0.0)
        best = np.zeros(len(objects))
        np.maximum.at(best, owner, share)
        valid = np.isfinite(area) & (area > 0)
    return np.where(valid, np.clip(best, 0.0, 1.0), np.nan)


def is_blocked(fraction: np.ndarray, overlap: float) -> np.ndarray:
    """Blocked flags as a float array: 1.0 / 0.0, NaN where the fraction is NaN (not measured)."""
    fraction = np.asarray(fraction, dtype=np.float64)
    return np.where(np.isnan(fraction), np.nan, (fraction > overlap).astype(np.float64))


def judge_blocking(judge: vlm.YesNoJudge, question: str, images: Sequence[vlm.Image],
                   label_names: Sequence[str], person_boxes: np.ndarray,
                   progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """SynBench's second step: ask the judge about the images where a person was found.

    Args:
        judge: the vision-language judge.
        question: the question template; ``{name}`` is the label name, underscores spaced.
        images: every image (arrays or paths); only those with a person are read.
        label_names: each image's class.
        person_boxes: ``(N,)`` person boxes found per image (a detector's boxes are not
            de-duplicated: one person may give several); NaN = not measured (e.g. corrupt).

    Returns:
        ``answers`` ``(N,)`` object: the raw answer, None where the judge was not asked;
        ``blocked`` ``(N,)`` float: 1.0 (yes), 0.0 (no, or no person found), NaN where the
        answer is unknown or the image was not measured.
    """
    count = np.asarray(person_boxes, dtype=np.float64)
    asked = np.flatnonzero(count > 0)
    answers = np.full(len(count), None, dtype=object)
    blocked = np.where(count == 0, 0.0, np.nan)
    if len(asked):
        raw = judge.answer([images[i] for i in asked],
                           [query_text(question, label_names[i]) for i in asked], progress)
        answers[asked] = raw
        blocked[asked] = vlm.verdicts(raw)
    return answers, blocked


class PersonDetector(Protocol):
    """What the audit needs from a person detector."""

    measured: bool

    def persons(self, images: list[np.ndarray], rows: pd.DataFrame) -> list[np.ndarray]:
        """Normalised person boxes per image, each ``(K_i, 4)``."""


Factory = Callable[[AuditParams], PersonDetector]
_FACTORIES: dict[str, Factory] = {}


def register(name: str) -> Callable[[Factory], Factory]:
    """Decorator: make ``factory(params) -> PersonDetector`` available as ``name``."""
    def wrap(factory: Factory) -> Factory:
        _FACTORIES[name] = factory
        return factory
    return wrap


def known_backends() -> list[str]:
    """Names of every registered person detector."""
    return sorted(_FACTORIES)


def create(name: str, params: AuditParams) -> PersonDetector:
    """Build person detector ``name``; an unknown name lists the known ones."""
    if name not in _FACTORIES:
        raise ConfigError(f"unknown audit person_backend {name!r}; known: {known_backends()}.")
    return _FACTORIES[name](params)


@register("none")
class NoPersons:
    """No detector configured: the measure is *not measured* (NaN), never 0."""

    measured = False

    def __init__(self, params: AuditParams) -> None:
        self.params = params

    def persons(self, images: list[np.ndarray], rows: pd.DataFrame) -> list[np.ndarray]:
        """Empty lists (ignored: ``measured`` is False)."""
        return [np.zeros((0, 4)) for _ in range(len(rows))]


@register("boxes-from-column")
class ColumnPersons(NoPersons):
    """Person boxes read from ``person_box_column`` (pixels; null = no person)."""

    measured = True

    def persons(self, images: list[np.ndarray], rows: pd.DataFrame) -> list[np.ndarray]:
        """Normalised manifest boxes per image."""
        return boxes_from_column(rows, self.params.person_box_column)


@register("owlvit")
class OwlVitPersons(NoPersons):
    """OWL-ViT / OWLv2 asked "a photo of a person" above ``person_threshold``.

    With the object-scale detector's weights, the same forward pass serves both.
    """

    measured = True

    def __init__(self, params: AuditParams) -> None:
        from synreal.audit.owlvit import shared_pass

        super().__init__(params)
        self.owl = shared_pass(params.person_weights, params.person_model_id,
                               "person_weights", params.device)
        self.owl.person = True

    def persons(self, images: list[np.ndarray], rows: pd.DataFrame) -> list[np.ndarray]:
        """Person boxes per image."""
        phrases = ([object_phrases(n, self.params.class_table) for n in rows["label_name"]]
                   if self.params.scale_backend == "owlvit" else [[]] * len(images))
        threshold = min(self.params.detection_threshold, self.params.person_threshold)
        queries, found = self.owl.detect(images, phrases, threshold)
        person = queries.index(PERSON_QUERY)
        return [d.boxes[(d.queries == person) & (d.scores >= self.params.person_threshold)]
                for d in found]
