"""OWL-ViT open-vocabulary detection from local weights (transformers), batched.

The open-vocabulary detector behind the ``owlvit`` object-scale and person backends
(SynBench uses YOLO-World for the central object and YOLOv5 for people, Section 3.2).
Weights are a ``save_pretrained`` folder (model + processor), e.g.
``hf download google/owlvit-base-patch32 --local-dir models/owlvit-base-patch32``.

Boxes are read straight from the model output: ``pred_boxes`` are ``(cx, cy, w, h)`` in
[0, 1] of the processor's square input, which OWL-ViT v1 makes by resizing without padding,
so the same fractions hold in the original image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synreal.audit.weights import require_weights


@dataclass
class Detections:
    """One image's detections: boxes ``(K, 4)`` normalised xyxy, scores and query ``(K,)``."""

    boxes: np.ndarray
    scores: np.ndarray
    queries: np.ndarray


class OwlVitDetector:
    """OWL-ViT (``OwlViTForObjectDetection``) loaded from a local folder.

    Args:
        weights: local folder written by ``save_pretrained`` (model and processor files).
        model_id: hub id to name in the error when ``weights`` is missing.
        key: the audit parameter holding ``weights`` (for the error).
        device: torch device.
    """

    def __init__(self, weights: str | None, model_id: str, key: str, device: str = "cpu"):
        folder = require_weights(weights, key, model_id, expect="folder")
        from transformers import OwlViTForObjectDetection, OwlViTProcessor

        self.processor = OwlViTProcessor.from_pretrained(folder, local_files_only=True)
        self.model = OwlViTForObjectDetection.from_pretrained(folder, local_files_only=True)
        self.model = self.model.eval().to(device)
        self.device = device

    def detect(self, images: list[np.ndarray], queries: list[list[str]],
               threshold: float) -> list[Detections]:
        """Detections above ``threshold`` per image; ``queries[i]`` are image i's text queries.

        Every image must have the same number of queries (OWL-ViT batches them as a grid).
        """
        import torch

        if not images:
            return []
        inputs = self.processor(text=queries, images=list(images), return_tensors="pt",
                                padding=True, truncation=True)
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        with torch.no_grad():
            outputs = self.model(**inputs)
        logits = outputs.logits.float().cpu()  # (B, patches, queries)
        scores, query = logits.sigmoid().max(dim=-1)
        cxcywh = outputs.pred_boxes.float().cpu().numpy()
        xyxy = np.concatenate([cxcywh[..., :2] - cxcywh[..., 2:] / 2,
                               cxcywh[..., :2] + cxcywh[..., 2:] / 2], axis=-1).clip(0, 1)
        out = []
        for b in range(len(images)):
            keep = (scores[b] >= threshold).numpy()
            out.append(Detections(xyxy[b][keep], scores[b].numpy()[keep],
                                  query[b].numpy()[keep]))
        return out
