"""Checkpoints without pickle: safetensors for tensors, JSON for scalars.

Training state (student, teacher, optimizer moments, DINO centre, torch RNG) is saved as
``checkpoints/state-<step>.safetensors`` plus ``state-<step>.json``; the JSON is written
last and marks the checkpoint complete, so a kill during a save leaves the previous one in
use. The evaluated artifact is the teacher backbone (as in the official evaluation) with its
preprocessing (``preprocessing.json``), loaded by :func:`load_backbone`.

A finished run keeps no training checkpoint: its export (student, teacher backbone, teacher
head with the DINO centre) is all that RealTune / SynTune continue from, and the optimizer
moments, two thirds of a checkpoint (~700 MB for ViT-S/16 with the 65,536-dim head), are
dropped once the export is on disk.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from synreal import faults
from synreal.artifacts import write_json_atomic
from synreal.errors import DataError

CHECKPOINT_DIR = "checkpoints"
BACKBONE_FILE = "teacher_backbone.safetensors"
STUDENT_FILE = "student.safetensors"
#: The teacher's DINO head and the loss centre: with the backbone, the teacher a run ends with.
TEACHER_HEAD_FILE = "teacher_head.safetensors"
PREPROCESSING_FILE = "preprocessing.json"
_STATE = re.compile(r"^state-(\d+)\.json$")


@dataclass(frozen=True)
class Preprocessing:
    """How images must be prepared for this backbone; saved beside its weights."""

    arch: str
    img_size: int
    resize: int
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"


def _save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_training_state(directory: Path, step: int, tensors: dict[str, torch.Tensor],
                        scalars: dict) -> Path:
    """Write checkpoint ``step`` atomically; remove older ones once it is complete."""
    directory = Path(directory) / CHECKPOINT_DIR
    directory.mkdir(parents=True, exist_ok=True)
    _save_tensors(tensors, directory / f"state-{step}.safetensors")
    faults.point("checkpoint.save")
    marker = directory / f"state-{step}.json"
    write_json_atomic(marker, {**scalars, "step": step})
    for old in directory.glob("state-*.json"):
        match = _STATE.match(old.name)
        if match and int(match[1]) != step:
            old.unlink(missing_ok=True)
            (directory / f"state-{match[1]}.safetensors").unlink(missing_ok=True)
    return marker


def latest_checkpoint(directory: Path) -> Path | None:
    """The JSON marker of the newest complete checkpoint under ``directory``, if any."""
    folder = Path(directory) / CHECKPOINT_DIR
    steps = sorted((int(m[1]), p) for p in folder.glob("state-*.json")
                   if (m := _STATE.match(p.name))
                   and (folder / f"state-{m[1]}.safetensors").is_file())
    return steps[-1][1] if steps else None


def load_training_state(marker: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors and scalars of one checkpoint (safetensors + JSON: nothing is unpickled)."""
    marker = Path(marker)
    tensors = load_file(marker.with_suffix(".safetensors"))
    return tensors, json.loads(marker.read_text())


def export_backbone(directory: Path, backbone: torch.nn.Module, student: torch.nn.Module,
                    preprocessing: Preprocessing,
                    teacher_head: dict[str, torch.Tensor] | None = None) -> None:
    """Write the evaluated teacher backbone, the student, and the preprocessing recipe.

    Args:
        teacher_head: the teacher's head state and ``center`` (a DINO run's final state, for
            runs that continue from it); None for backbones with no DINO head.
    """
    directory = Path(directory)
    _save_tensors(dict(backbone.state_dict()), directory / BACKBONE_FILE)
    _save_tensors(dict(student.state_dict()), directory / STUDENT_FILE)
    if teacher_head is not None:
        _save_tensors(teacher_head, directory / TEACHER_HEAD_FILE)
    # written last: its presence marks a finished export (read_preprocessing)
    write_json_atomic(directory / PREPROCESSING_FILE, asdict(preprocessing))


def has_final_state(directory: Path) -> bool:
    """Whether ``directory`` holds a finished DINO run's export, head and centre included."""
    directory = Path(directory)
    return all((directory / name).is_file() for name in
               (BACKBONE_FILE, STUDENT_FILE, TEACHER_HEAD_FILE, PREPROCESSING_FILE))


def load_final_state(directory: Path) -> dict[str, torch.Tensor]:
    """A finished run's student, teacher and centre, keyed as a training checkpoint's."""
    directory = Path(directory)
    head = load_file(directory / TEACHER_HEAD_FILE)
    tensors = {f"student.{k}": v for k, v in load_file(directory / STUDENT_FILE).items()}
    tensors |= {f"teacher.backbone.{k}": v
                for k, v in load_file(directory / BACKBONE_FILE).items()}
    tensors |= {f"teacher.head.{k}": v for k, v in head.items() if k != "center"}
    tensors["loss.center"] = head["center"]
    return tensors


def drop_training_checkpoints(directory: Path) -> None:
    """Remove a finished run's resume checkpoints (its export replaces them)."""
    shutil.rmtree(Path(directory) / CHECKPOINT_DIR, ignore_errors=True)


def read_preprocessing(directory: Path) -> Preprocessing:
    """The preprocessing saved beside a backbone; errors name the folder."""
    path = Path(directory) / PREPROCESSING_FILE
    if not path.is_file():
        raise DataError(f"{directory} has no {PREPROCESSING_FILE}: it is not a finished "
                        "pretraining artifact; rerun its pretrain job.")
    data = json.loads(path.read_text())
    return Preprocessing(**{**data, "mean": tuple(data["mean"]), "std": tuple(data["std"])})


def load_backbone(directory: Path):
    """The teacher backbone of a pretraining artifact and its evaluation preprocessing.

    Returns:
        ``(model, preprocess)``: a timm ViT in eval mode and a
        :class:`synreal.eval.extract.Preprocess`.
    """
    from synreal.dino.backbones import create_backbone
    from synreal.eval.extract import Preprocess

    recipe = read_preprocessing(directory)
    model = create_backbone(recipe.arch, recipe.img_size)
    weights = Path(directory) / BACKBONE_FILE
    if not weights.is_file():
        raise DataError(f"{weights} is missing; rerun the pretrain job that makes it.")
    model.load_state_dict(load_file(weights), strict=True)
    return model.eval(), Preprocess(recipe.resize, recipe.crop, recipe.mean, recipe.std,
                                    recipe.interpolation)
