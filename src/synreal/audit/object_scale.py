"""Object scale: area of the central object's box over the image area (SynBench Fig. 5a).

SynBench finds the central object with YOLO-World and reports the box's share of the image
(Section 3.2); synthetic data lack very small and very large objects. SynBench does not say
how the central object is chosen among several detections; here it is the highest-scoring
box of the image's own class phrases, and an image with none above ``detection_threshold``
counts as not found (its share is in the table, never silently dropped). Box finders live in a
registry (``register`` / ``create``) and return normalised ``[x0, y0, x1, y1]`` boxes:

* ``foreground``: weights-free border-colour model (:mod:`synreal.audit.foreground`).
* ``owlvit``: OWL-ViT or OWLv2 asked for the class's phrases from the class table
  (:mod:`~synreal.audit.classes`: species-qualified breeds, AFHQ's wild as its animals).
* ``yolo-world``: YOLO-World via ultralytics (local ``.pt`` weights; ultralytics optional).
* ``boxes-from-column``: boxes already in the manifest (pixels), e.g. the toy world's truth.
* ``none``: not measured (NaN).

Example:
    >>> area_ratio(np.array([[0.0, 0.0, 0.5, 0.5]])).tolist()
    [0.25]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
import pandas as pd

from synreal.audit.classes import object_phrases
from synreal.audit.foreground import foreground_boxes
from synreal.audit.params import AuditParams
from synreal.audit.weights import require_module, require_weights
from synreal.errors import ConfigError, DataError


class BoxFinder(Protocol):
    """What the audit needs from an object-scale backend."""

    measured: bool

    def boxes(self, images: list[np.ndarray], rows: pd.DataFrame) -> np.ndarray:
        """``(B, 4)`` normalised central-object boxes of ``images``; NaN rows where none."""


Factory = Callable[[AuditParams], BoxFinder]
_FACTORIES: dict[str, Factory] = {}


def register(name: str) -> Callable[[Factory], Factory]:
    """Decorator: make ``factory(params) -> BoxFinder`` available as ``name``."""
    def wrap(factory: Factory) -> Factory:
        _FACTORIES[name] = factory
        return factory
    return wrap


def known_backends() -> list[str]:
    """Names of every registered object-scale backend."""
    return sorted(_FACTORIES)


def create(name: str, params: AuditParams) -> BoxFinder:
    """Build backend ``name``; an unknown name lists the known ones."""
    if name not in _FACTORIES:
        raise ConfigError(f"unknown audit scale_backend {name!r}; known: {known_backends()}.")
    return _FACTORIES[name](params)


def area_ratio(boxes: np.ndarray) -> np.ndarray:
    """Area of normalised boxes ``(B, 4)`` as a share of the image, ``(B,)`` (NaN stays NaN)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, 1) * np.clip(boxes[:, 3] - boxes[:, 1], 0, 1)


def query_text(template: str, label_name: str) -> str:
    """The detector query for one image: ``template`` with its class name, underscores spaced."""
    return template.format(name=str(label_name).replace("_", " "))


def boxes_from_column(rows: pd.DataFrame, column: str) -> list[np.ndarray]:
    """Pixel boxes in ``rows[column]`` normalised by ``width``/``height``: one ``(K, 4)`` each.

    A cell may hold one box ``[x0, y0, x1, y1]``, a list of boxes, or null (no box).
    """
    if column not in rows.columns:
        raise DataError(f"manifest has no column {column!r} for the boxes-from-column "
                        f"backend; columns: {sorted(rows.columns)}.")
    out = []
    for cell, w, h in zip(rows[column], rows["width"], rows["height"], strict=True):
        out.append(_as_boxes(cell) / np.array([w, h, w, h], dtype=np.float64))
    return out


def _as_boxes(cell: object) -> np.ndarray:
    """One manifest cell (null, a box, or a list of boxes) as ``(K, 4)`` float64."""
    if cell is None or (np.ndim(cell) == 0 and pd.isna(cell)):
        return np.zeros((0, 4))
    items = list(cell)  # type: ignore[call-overload]
    if items and np.ndim(items[0]) > 0:  # a list of boxes (Parquet gives an object array)
        return np.asarray([np.asarray(b, dtype=np.float64) for b in items]).reshape(-1, 4)
    return np.asarray(items, dtype=np.float64).reshape(-1, 4)


@register("none")
class NoBoxes:
    """Object scale not measured: every box NaN."""

    measured = False

    def __init__(self, params: AuditParams) -> None:
        self.params = params

    def boxes(self, images: list[np.ndarray], rows: pd.DataFrame) -> np.ndarray:
        """All-NaN ``(B, 4)``."""
        return np.full((len(rows), 4), np.nan)


@register("foreground")
class ForegroundBoxes(NoBoxes):
    """Weights-free largest-foreground-blob box (:mod:`synreal.audit.foreground`)."""

    measured = True

    def boxes(self, images: list[np.ndarray], rows: pd.DataFrame) -> np.ndarray:
        """Foreground boxes, ``(B, 4)``."""
        return foreground_boxes(images, self.params.foreground_size)


@register("boxes-from-column")
class ColumnBoxes(NoBoxes):
    """Boxes read from ``object_box_column`` (the first one when a cell holds several)."""

    measured = True

    def boxes(self, images: list[np.ndarray], rows: pd.DataFrame) -> np.ndarray:
        """Manifest boxes, ``(B, 4)``; NaN where the cell is null."""
        found = boxes_from_column(rows, self.params.object_box_column)
        return np.stack([b[0] if len(b) else np.full(4, np.nan) for b in found])


@register("owlvit")
class OwlVitBoxes(NoBoxes):
    """OWL-ViT / OWLv2 asked for the class's phrases; the central object is its best box.

    One pass is shared with an OWL person detector of the same weights.
    """

    measured = True

    def __init__(self, params: AuditParams) -> None:
        from synreal.audit.owlvit import shared_pass

        super().__init__(params)
        self.owl = shared_pass(params.scale_weights, params.scale_model_id, "scale_weights",
                               params.device)

    def boxes(self, images: list[np.ndarray], rows: pd.DataFrame) -> np.ndarray:
        """Best box of each image's class phrases above ``detection_threshold``, ``(B, 4)``."""
        phrases = [object_phrases(n, self.params.class_table) for n in rows["label_name"]]
        threshold = min(self.params.detection_threshold, self.params.person_threshold)
        queries, found = self.owl.detect(images, phrases, threshold)
        out = np.full((len(images), 4), np.nan)
        for i, (wanted, d) in enumerate(zip(phrases, found, strict=True)):
            asked = np.array([queries[q] in wanted for q in d.queries.astype(int)], dtype=bool)
            ok = asked & (d.scores >= self.params.detection_threshold)
            if ok.any():
                out[i] = d.boxes[ok][int(np.argmax(d.scores[ok]))]
        return out


@register("yolo-world")
class YoloWorldBoxes(NoBoxes):
    """YOLO-World (SynBench's detector) through ultralytics, asked for each class's phrases."""

    measured = True

    def __init__(self, params: AuditParams) -> None:
        super().__init__(params)
        weights = require_weights(params.scale_weights, "scale_weights",
                                  "yolov8s-worldv2.pt (ultralytics YOLO-World)", expect="file")
        ultralytics = require_module("ultralytics", "ultralytics", "yolo-world")
        self.model = ultralytics.YOLOWorld(str(weights))

    def boxes(self, images: list[np.ndarray], rows: pd.DataFrame) -> np.ndarray:
        """Best box per image above ``detection_threshold``, grouped by class."""
        out = np.full((len(images), 4), np.nan)
        names = [str(n) for n in rows["label_name"]]
        for name in sorted(set(names)):
            index = [i for i, n in enumerate(names) if n == name]
            self.model.set_classes(object_phrases(name, self.params.class_table))
            results = self.model.predict([images[i][..., ::-1] for i in index],  # BGR
                                         conf=self.params.detection_threshold,
                                         device=self.params.device, verbose=False)
            for i, result in zip(index, results, strict=True):
                if len(result.boxes):
                    best = int(result.boxes.conf.argmax())
                    out[i] = result.boxes.xyxyn[best].cpu().numpy()
        return out
