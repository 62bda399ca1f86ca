"""Captions of the real training images, for SynBench's "class name, caption" prompts.

SynBench's default synthetic set follows SynRep: each prompt is the class name followed by
a BLIP-2 caption of a real training image ("Tench, a man holding a fish"). Here a local
captioning model (BLIP-2 or BLIP, from a ``save_pretrained`` folder) captions every real
training image once, with greedy decoding so the captions are a deterministic function of
the images and the weights. The captions are the first step of the ``generate`` stage and
are cached in its output folder as ``captions.parquet`` (one row per real image: id,
sha256, class, caption), so a resumed run reuses them and the manifest names them.

Example:
    >>> frame = ensure_captions(params, out_dir, real_manifest)   # doctest: +SKIP
    >>> frame.columns.tolist()                                      # doctest: +SKIP
    ['id', 'sha256', 'label_name', 'caption']
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd

from synreal.errors import ConfigError, DataError
from synreal.generate.loading import model_hash, resolve_model_path, torch_dtype
from synreal.generate.params import GenerateParams

CAPTIONS_FILE = "captions.parquet"

#: config.json ``model_type`` -> transformers class of a captioner.
CAPTIONER_CLASSES = {"blip-2": "Blip2ForConditionalGeneration",
                     "blip": "BlipForConditionalGeneration"}


def captioner_folder(params: GenerateParams) -> Path:
    """The captioner's weights folder (holding ``config.json``), or a ConfigError."""
    return resolve_model_path(params.captioner_path, params.captioner_id, "captioner_path",
                              marker="config.json")


def captioner_class(folder: Path) -> str:
    """The transformers class for the folder's ``model_type``; others are refused."""
    model_type = json.loads((folder / "config.json").read_text()).get("model_type")
    if model_type not in CAPTIONER_CLASSES:
        raise ConfigError(f"generate captioner_path {folder} holds a {model_type!r} model; "
                          f"give a captioner of type {sorted(CAPTIONER_CLASSES)} (BLIP-2 as "
                          "SynBench, or BLIP).")
    return CAPTIONER_CLASSES[model_type]


def load_captioner(params: GenerateParams, device: str = "cpu") -> tuple[Any, Any]:
    """``(processor, model)`` of the captioner, local files only, in eval mode."""
    folder = captioner_folder(params)
    class_name = captioner_class(folder)
    dtype = torch_dtype(params.dtype, device)
    import transformers

    processor = transformers.AutoProcessor.from_pretrained(folder, local_files_only=True)
    model = getattr(transformers, class_name).from_pretrained(
        folder, dtype=dtype, local_files_only=True)
    return processor, model.to(device).eval()


def clean_caption(text: str) -> str:
    """One line of plain words: whitespace collapsed, braces (template slots) removed."""
    return re.sub(r"\s+", " ", text.replace("{", "").replace("}", "")).strip()


def caption_images(processor: Any, model: Any, paths: list[str], max_tokens: int,
                   batch_size: int) -> list[str]:
    """One greedy-decoded caption per image file, in order."""
    import torch
    from PIL import Image

    from synreal.data.manifest import load_rgb

    captions: list[str] = []
    for start in range(0, len(paths), batch_size):
        images = [Image.fromarray(load_rgb(p)) for p in paths[start:start + batch_size]]
        inputs = processor(images=images, return_tensors="pt").to(model.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
        with torch.inference_mode():
            tokens = model.generate(**inputs, max_new_tokens=max_tokens, do_sample=False,
                                    num_beams=1)
        captions += [clean_caption(t) for t in
                     processor.batch_decode(tokens, skip_special_tokens=True)]
    return captions


def _real_rows(manifest: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ("id", "path", "label_name") if c not in manifest.columns]
    if missing:
        raise DataError(f"the real manifest lacks columns {missing}; re-ingest the dataset.")
    rows = manifest.sort_values("id").reset_index(drop=True)
    sha = rows["sha256"] if "sha256" in rows.columns else pd.Series([None] * len(rows))
    return pd.DataFrame({"id": rows["id"].astype(str), "sha256": sha.values,
                         "label_name": rows["label_name"].astype(str), "path": rows["path"]})


def _settings(params: GenerateParams, folder: Path) -> dict[str, str]:
    return {"synreal.captioner_id": params.captioner_id,
            "synreal.captioner_hash": model_hash(folder),
            "synreal.caption_max_tokens": str(params.caption_max_tokens)}


def _cached(path: Path, rows: pd.DataFrame, settings: dict[str, str]) -> pd.DataFrame | None:
    """The cached captions when they are of these images, by this captioner; else None."""
    import pyarrow.parquet as pq

    if not path.is_file():
        return None
    meta = {k.decode(): v.decode() for k, v in (pq.read_schema(path).metadata or {}).items()}
    if any(meta.get(k) != v for k, v in settings.items()):
        return None
    frame = pd.read_parquet(path)
    same = frame[["id", "sha256"]].astype(str).equals(rows[["id", "sha256"]].astype(str))
    return frame if same else None


def ensure_captions(params: GenerateParams, out_dir: Path, manifest: pd.DataFrame | None,
                    device: str = "cpu") -> pd.DataFrame:
    """Captions of every real image of ``manifest``: read from the cache or made and cached.

    Written atomically to ``out_dir/captions.parquet``, with the captioner's id, content
    hash and settings in its metadata; a cache made from other images or another captioner
    is remade.
    """
    if manifest is None or manifest.empty:
        raise ConfigError("generate captioner_path captions the real training images, but no "
                          "real manifest was given; pass source_manifest (the generator's "
                          "`like` dataset) or remove captioner_path.")
    folder = captioner_folder(params)
    rows = _real_rows(manifest)
    settings = _settings(params, folder)
    path = Path(out_dir) / CAPTIONS_FILE
    cached = _cached(path, rows, settings)
    if cached is not None:
        return cached
    processor, model = load_captioner(params, device)
    frame = rows.drop(columns="path").assign(caption=caption_images(
        processor, model, rows["path"].tolist(), params.caption_max_tokens,
        params.caption_batch_size))
    empty = frame.loc[frame["caption"] == "", "id"]
    if len(empty) == len(frame):
        raise DataError(f"the captioner {params.captioner_id} gave an empty caption for every "
                        "real image; check captioner_path holds a trained captioning model.")
    _write(frame, path, settings)
    return frame


def _write(frame: pd.DataFrame, path: Path, settings: dict[str, str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                           **{k.encode(): v.encode() for k, v in settings.items()}})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def class_captions(captions: pd.DataFrame) -> dict[str, list[tuple[str, str]]]:
    """Class -> ``(real image id, caption)`` in id order (the order images are assigned)."""
    out: dict[str, list[tuple[str, str]]] = {}
    for row in captions.sort_values("id").itertuples(index=False):
        out.setdefault(str(row.label_name), []).append((str(row.id), str(row.caption)))
    return out
