"""OWL-ViT and OWLv2 open-vocabulary detection from local weights (transformers), batched.

The open-vocabulary detector behind the ``owlvit`` object-scale and person backends
(SynBench uses YOLO-World for the central object and YOLOv5 for people, Section 3.2).
Weights are a ``save_pretrained`` folder (model + processor), e.g.
``hf download google/owlv2-base-patch16-ensemble --local-dir weights/owlv2-base-patch16-ensemble``
(OWLv2, Minderer et al. 2023) or ``google/owlvit-base-patch32`` (OWL-ViT, Minderer et al.
2022); the folder's ``config.json`` ``model_type`` picks the model class (:data:`MODEL_TYPES`).

Boxes go through the processor's own post-processing with each image's ``(height, width)``,
which knows each version's geometry: OWL-ViT resizes the image to the square input without
padding, so box fractions hold along each axis; OWLv2 pads the image at the bottom and right to
a square of side ``max(height, width)`` before resizing, so fractions are of that side. The
pixel boxes are then clipped to the image (an OWLv2 box may reach into the padding) and
normalised by its width and height.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synreal.audit.weights import require_weights
from synreal.errors import ConfigError

#: ``config.json`` model_type -> (transformers model class, processor class).
MODEL_TYPES = {
    "owlvit": ("OwlViTForObjectDetection", "OwlViTProcessor"),
    "owlv2": ("Owlv2ForObjectDetection", "Owlv2Processor"),
}


@dataclass
class Detections:
    """One image's detections: boxes ``(K, 4)`` normalised xyxy, scores and query ``(K,)``."""

    boxes: np.ndarray
    scores: np.ndarray
    queries: np.ndarray

    def nonempty(self) -> Detections:
        """The detections whose box has an area once clipped to the image.

        OWLv2 predicts boxes over its square-padded input; one inside the padding clips to a
        zero-area box on the border, which must never win as the object or count as a person.
        """
        keep = (self.boxes[:, 2] > self.boxes[:, 0]) & (self.boxes[:, 3] > self.boxes[:, 1])
        return Detections(self.boxes[keep], self.scores[keep], self.queries[keep])


def model_type(folder: Path) -> str:
    """The ``model_type`` of the weights in ``folder``; a ConfigError unless it is supported."""
    config = Path(folder) / "config.json"
    if not config.is_file():
        raise ConfigError(f"detector weights folder {folder} has no config.json; it should be "
                          f"a save_pretrained folder of one of {sorted(MODEL_TYPES)}.")
    found = json.loads(config.read_text()).get("model_type")
    if found not in MODEL_TYPES:
        raise ConfigError(f"detector weights folder {folder} holds model_type {found!r}; the "
                          f"owlvit backend supports {sorted(MODEL_TYPES)}.")
    return found


class OwlVitDetector:
    """OWL-ViT or OWLv2 (chosen by the folder's ``model_type``) loaded from a local folder.

    Args:
        weights: local folder written by ``save_pretrained`` (model and processor files).
        model_id: hub id to name in the error when ``weights`` is missing.
        key: the audit parameter holding ``weights`` (for the error).
        device: torch device.
    """

    def __init__(self, weights: str | None, model_id: str, key: str, device: str = "cpu"):
        folder = require_weights(weights, key, model_id, expect="folder")
        self.model_type = model_type(folder)
        import transformers

        model_class, processor_class = (getattr(transformers, name)
                                        for name in MODEL_TYPES[self.model_type])
        self.processor = processor_class.from_pretrained(folder, local_files_only=True)
        self.model = model_class.from_pretrained(folder, local_files_only=True)
        self.model = self.model.eval().to(device)
        self.device = device
        #: Every query is padded to this many tokens (OWL-ViT's and OWLv2's text limit, 16),
        #: so images whose queries tokenise to different lengths share one batch.
        self.max_length = self.model.config.text_config.max_position_embeddings

    def detect(self, images: list[np.ndarray], queries: list[list[str]],
               threshold: float) -> list[Detections]:
        """Detections scoring at least ``threshold`` per image; ``queries[i]`` are image i's.

        Every image must have the same number of queries (OWL-ViT batches them as a grid).
        Queries longer than the text limit are truncated.
        """
        import torch

        if not images:
            return []
        inputs = self.processor(text=queries, images=list(images), return_tensors="pt",
                                padding="max_length", max_length=self.max_length,
                                truncation=True)
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        with torch.no_grad():
            outputs = self.model(**inputs)
        outputs.logits, outputs.pred_boxes = (outputs.logits.float().cpu(),
                                              outputs.pred_boxes.float().cpu())
        sizes = [tuple(image.shape[:2]) for image in images]
        # Keep every box here (scores are > -inf) and apply our own ">= threshold" below.
        found = self.processor.image_processor.post_process_object_detection(
            outputs, threshold=float("-inf"), target_sizes=sizes)
        # post-processing keeps each box's best query only; every (box, query) score is
        # wanted (an image's own class may not be the best query of its box), so the scores
        # are the sigmoid of every logit and post-processing only maps the boxes back
        probs = torch.sigmoid(outputs.logits).numpy()
        out = []
        for result, prob, (height, width) in zip(found, probs, sizes, strict=True):
            scale = np.array([width, height, width, height], dtype=np.float64)
            boxes = np.clip(result["boxes"].numpy().astype(np.float64), 0, scale) / scale
            box, query = np.nonzero(prob >= threshold)
            out.append(Detections(boxes[box], prob[box, query].astype(np.float64), query))
        return out


class OwlPass:
    """One OWL forward per image batch serving both object scale and person boxes.

    Every image of a batch is asked the same queries: the detector phrases of the classes in
    the batch and, when a person detector shares this model, :data:`PERSON_QUERY`. The last
    batch's detections are cached, so the object-scale and person backends that share a
    pass run the image encoder once per image.
    """

    def __init__(self, weights: str | None, model_id: str, key: str, device: str = "cpu"):
        self.detector = OwlVitDetector(weights, model_id, key, device)
        self.model_type = self.detector.model_type
        self.person = False  # set by a person backend that shares this pass
        # (the batch's image list itself, queries, detections): held, so that a later
        # batch cannot reuse the address of a freed list and be served stale detections
        self._cache: tuple[list, list[str], list[Detections]] | None = None

    def detect(self, images: list[np.ndarray], phrases: list[list[str]],
               threshold: float) -> tuple[list[str], list[Detections]]:
        """``(queries, detections)``: the batch's queries and each image's detections.

        Detections score at least ``threshold``; ``Detections.queries`` index the queries.
        """
        if self._cache is not None and self._cache[0] is images:
            return self._cache[1], self._cache[2]
        queries = sorted({p for group in phrases for p in group})
        if self.person and PERSON_QUERY not in queries:
            queries.append(PERSON_QUERY)
        found = [d.nonempty() for d in
                 self.detector.detect(images, [queries] * len(images), threshold)]
        self._cache = (images, queries, found)
        return queries, found


#: The person query of the OWL person backend.
PERSON_QUERY = "a photo of a person"
_PASSES: dict[tuple, OwlPass] = {}


def shared_pass(weights: str | None, model_id: str, key: str, device: str) -> OwlPass:
    """The :class:`OwlPass` of these weights on this device, created once per process."""
    from synreal.audit.weights import require_weights

    folder = require_weights(weights, key, model_id, expect="folder").resolve()
    ident = (str(folder), device)
    if ident not in _PASSES:
        _PASSES.clear()  # one detector in memory at a time
        _PASSES[ident] = OwlPass(str(folder), model_id, key, device)
    return _PASSES[ident]
