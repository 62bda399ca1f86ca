"""Stage ``audit``: SynBench measures of one dataset against its real counterpart."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from synreal.audit.params import AuditParams
from synreal.errors import ConfigError
from synreal.params import doc, parse_params
from synreal.stages import Stage, register


@dataclass(frozen=True)
class EmbedderParams:
    """Which embedding the audit's consistency, diversity, duplicate and FID measures use."""

    embedder: str = doc("dinov2 (transformers Dinov2Model folder: the CLS token), clip (open_clip "
                        "model folder: the image embedding), timm (a model from a local weights "
                        "file) or colour-layout (weights-free thumbnail + colour histogram: the "
                        "demo only, not semantic; tables say so).", default="colour-layout")
    embedder_model: str | None = doc("Model id or architecture named in the tables: dinov2, the "
                                     "hub id (facebook/dinov2-base); clip, the built-in open_clip "
                                     "architecture of a weights file (a folder names its own); "
                                     "timm, the model name.", default=None)
    embedder_weights: str | None = doc("Local weights: dinov2, a save_pretrained folder (`hf "
                                       "download facebook/dinov2-base --local-dir <folder>`); "
                                       "clip, an open_clip folder; timm, a .safetensors file.",
                                       default=None)

    def __post_init__(self) -> None:
        """A known embedder, and the weights of a model-backed one, at plan time."""
        from synreal.audit.embedders import EMBEDDERS

        if self.embedder not in EMBEDDERS:
            raise ConfigError(f"audit.embedding.embedder {self.embedder!r} is not known; choose "
                              f"one of {list(EMBEDDERS)}.")
        if self.embedder != "colour-layout" and not self.embedder_weights:
            example = {"dinov2": "facebook/dinov2-base",
                       "clip": "laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
                       "timm": "a timm model's .safetensors"}[self.embedder]
            raise ConfigError(f"audit.embedding.embedder {self.embedder!r} needs a model that "
                              "the study does not give: set audit.embedding.embedder_weights "
                              f"to the local copy of {example}, or choose colour-layout (the "
                              "demo's weights-free embedding).")


def run(spec: dict, out_dir: Path) -> None:
    """Audit the dataset in ``inputs.manifest`` (vs ``inputs.reference`` when given)."""
    from synreal.audit.embedders import create_embedder, describe
    from synreal.audit.run import audit_dataset
    from synreal.data.manifest import read_manifest
    from synreal.stages.generate import device

    params = parse_params(AuditParams, spec["params"]["audit"], "audit params")
    # the device follows the job's resources (synreal.gpus): a GPU job never silently runs on
    # the CPU, and the rehearsal runs the study's GPU audit on the CPU on purpose
    params = replace(params, device=device("audit"))
    embedding = parse_params(EmbedderParams, spec["params"]["embedding"], "audit embedding")
    inputs = spec["inputs"]
    reference = read_manifest(Path(inputs["reference"])) if "reference" in inputs else None
    test = read_manifest(Path(inputs["test"]), splits=["test"]) if "test" in inputs else None
    embed = create_embedder(embedding.embedder, embedding.embedder_model,
                            embedding.embedder_weights, params.device)
    fid_embed = None
    if params.fid_features == "inception":
        from synreal.audit.inception import inception_embedder

        fid_embed = inception_embedder(params.fid_weights, params.batch_size, params.device)
    audit_dataset(params, read_manifest(Path(inputs["manifest"])), out_dir,
                  reference_manifest=reference, test_manifest=test, embed=embed,
                  fid_embed=fid_embed, name=spec["params"]["name"],
                  reference_name=spec["params"]["reference_name"],
                  embed_name=describe(embedding.embedder, embedding.embedder_model))


# version 2: diversity and FID carry bootstrap CIs in summary.json, and the held-out real
# images' consistency is written to reference_consistency.parquet (the reference rate's CI).
# version 3: audit.parquet gains person_boxes and the person-blocking judge's columns
# (person_vlm_answer, person_vlm_blocked; not measured without a judge).
# version 4: named models (dinov2 / clip embedders, Inception-v3 FID, ConvNeXt-B consistency
# by the class table, CLIP zero-shot beside it), detector phrases that name the animal and one
# OWL pass for object and person boxes, near-duplicate threshold calibrated on real data, and
# leaks checked against the test split only for rows that are not test images themselves.
STAGE = register(Stage("audit", 4, "SynBench audit of a dataset against its real counterpart.",
                       AuditParams, run))
