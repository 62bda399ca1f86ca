"""Yes/no questions to a local vision-language model: the person-blocking judge.

SynBench (Section 3.2, Fig. 5c) selects images with people by YOLOv5, then asks GPT-4o
"Is part of {class_name} occluded by the human body in the image? Please only answer yes or
no." Audits never reach the network, so a local visual question answering model takes
GPT-4o's place: BLIP VQA (``BlipForQuestionAnswering``; the full study's is
Salesforce/blip-vqa-base) from a ``save_pretrained`` folder, e.g.
``hf download Salesforce/blip-vqa-base --local-dir models/blip-vqa-base``.

Answers are parsed strictly (:func:`parse_answer`): "yes" or "no", ignoring case, spaces and
a final full stop; anything else is ``unknown``, kept apart and never counted as no.

Batches hold questions of one token length. BLIP's ``generate`` lets the answer decoder
attend to every question position, padding included, so a padded question may get another
answer than it gets alone; without padding a batched answer is the one-image answer.

Example:
    >>> [parse_answer(a) for a in ("Yes", " no.", "yes, partly", "")]
    ['yes', 'no', 'unknown', 'unknown']
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import numpy as np

from synreal.audit.params import AuditParams
from synreal.audit.weights import require_weights
from synreal.errors import ConfigError

YES, NO, UNKNOWN = "yes", "no", "unknown"
#: Longest answer generated: BLIP VQA answers in a few words, and a longer one is not yes/no.
ANSWER_TOKENS = 8

#: An image as a decoded ``(H, W, 3)`` uint8 array or the path of its file.
Image = np.ndarray | str | Path


def parse_answer(text: str | None) -> str:
    """``yes``, ``no`` or ``unknown`` for one generated answer (None is unknown)."""
    word = (text or "").strip().lower().removesuffix(".").strip()
    return word if word in (YES, NO) else UNKNOWN


def verdicts(answers: Sequence[str | None]) -> np.ndarray:
    """``(N,)`` float: 1.0 for yes, 0.0 for no, NaN for an unknown answer (not measured)."""
    value = {YES: 1.0, NO: 0.0, UNKNOWN: np.nan}
    return np.array([value[parse_answer(a)] for a in answers], dtype=np.float64)


class YesNoJudge(Protocol):
    """What the audit needs from a vision-language judge."""

    def answer(self, images: Sequence[Image], questions: Sequence[str],
               progress: bool = True) -> list[str]:
        """The raw generated answer to ``questions[i]`` about ``images[i]``."""


class BlipVqaJudge:
    """BLIP visual question answering from a local folder, batched, greedy, no gradients.

    Args:
        weights: ``save_pretrained`` folder holding the model and its ``BlipProcessor``.
        model_id: hub id named in the error when ``weights`` is missing.
        key: the audit parameter holding ``weights`` (for the error).
        device: torch device; None takes the first GPU when there is one. On a GPU the model
            runs in bf16.
        batch_size: questions answered per forward pass.
        workers: threads decoding images given as paths.
    """

    def __init__(self, weights: str | Path | None, model_id: str,
                 key: str = "person_vlm_weights", device: str | None = None,
                 batch_size: int = 32, workers: int = 4) -> None:
        folder = require_weights(weights, key, model_id, expect="folder")
        import torch
        from transformers import BlipForQuestionAnswering, BlipProcessor

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        try:
            self.processor = BlipProcessor.from_pretrained(folder, local_files_only=True)
            model = BlipForQuestionAnswering.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError) as error:
            raise ConfigError(f"audit {key} {folder} is not a BLIP VQA save_pretrained folder "
                              f"(config.json, the weights and the processor files of "
                              f"{model_id}): {error}") from None
        self.model = model.eval().to(self.device, self.dtype)
        self.batch_size, self.workers = batch_size, workers

    def answer(self, images: Sequence[Image], questions: Sequence[str],
               progress: bool = True) -> list[str]:
        """The generated answer to ``questions[i]`` about ``images[i]``, in input order."""
        from tqdm import tqdm

        if len(images) != len(questions):
            raise ValueError(f"{len(images)} images but {len(questions)} questions")
        answers = [""] * len(questions)
        with (ThreadPoolExecutor(self.workers) as pool,
              tqdm(total=len(questions), desc="person VLM", unit="img", mininterval=2,
                   disable=not progress) as bar):
            for batch in self._batches(questions):
                decoded = list(pool.map(_as_array, [images[i] for i in batch]))
                for i, text in zip(batch, self._generate(decoded, [questions[i] for i in batch]),
                                   strict=True):
                    answers[i] = text
                bar.update(len(batch))
        return answers

    def _batches(self, questions: Sequence[str]) -> list[list[int]]:
        """Question indices grouped by token length (no padding), ``batch_size`` at most."""
        lengths = [len(ids) for ids in self.processor.tokenizer(list(questions))["input_ids"]]
        groups: dict[int, list[int]] = defaultdict(list)
        for i, length in enumerate(lengths):
            groups[length].append(i)
        return [group[s:s + self.batch_size] for _, group in sorted(groups.items())
                for s in range(0, len(group), self.batch_size)]

    def _generate(self, images: list[np.ndarray], questions: list[str]) -> list[str]:
        import torch

        inputs = self.processor(images=images, text=questions, return_tensors="pt")
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        with torch.no_grad():
            out = self.model.generate(**inputs, max_new_tokens=ANSWER_TOKENS, do_sample=False,
                                      num_beams=1)
        return [t.strip() for t in self.processor.batch_decode(out, skip_special_tokens=True)]


def _as_array(image: Image) -> np.ndarray:
    """A writable array (torch warns on read-only ones), decoding a path."""
    from synreal.data.manifest import load_rgb

    return np.require(load_rgb(image) if isinstance(image, str | Path) else image,
                      requirements="W")


Factory = Callable[[AuditParams], YesNoJudge]
_FACTORIES: dict[str, Factory] = {
    "blip-vqa": lambda p: BlipVqaJudge(p.person_vlm_weights, p.person_vlm_model_id,
                                       device=p.device, batch_size=p.batch_size,
                                       workers=p.workers),
}


def known_judges() -> list[str]:
    """Names accepted by :func:`create`: ``none`` and every registered judge."""
    return ["none", *sorted(_FACTORIES)]


def create(name: str, params: AuditParams) -> YesNoJudge | None:
    """The judge ``name`` (None for ``none``); an unknown name lists the known ones."""
    if name == "none":
        return None
    if name not in _FACTORIES:
        raise ConfigError(f"unknown audit person_vlm {name!r}; known: {known_judges()}.")
    return _FACTORIES[name](params)
