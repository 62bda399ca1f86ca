"""Stage ``audit``: SynBench measures of one dataset against its real counterpart."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from synreal.audit.params import AuditParams
from synreal.params import doc, parse_params
from synreal.stages import Stage, register


@dataclass(frozen=True)
class EmbedderParams:
    """Which embedding the audit's consistency, diversity, duplicate and FID measures use."""

    embedder: str = doc("colour-layout (weights-free: thumbnail + colour histogram; the demo) "
                        "or timm (a classifier from a local weights file).",
                        default="colour-layout")
    embedder_model: str | None = doc("timm: model name, e.g. vit_small_patch16_224.",
                                     default=None)
    embedder_weights: str | None = doc("timm: local weights file (.safetensors or .pth).",
                                       default=None)


def run(spec: dict, out_dir: Path) -> None:
    """Audit the dataset in ``inputs.manifest`` (vs ``inputs.reference`` when given)."""
    from synreal.audit.embedders import create_embedder
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
                            embedding.embedder_weights, device())
    audit_dataset(params, read_manifest(Path(inputs["manifest"])), out_dir,
                  reference_manifest=reference, test_manifest=test, embed=embed,
                  name=spec["params"]["name"], reference_name=spec["params"]["reference_name"])


# version 2: diversity and FID carry bootstrap CIs in summary.json, and the held-out real
# images' consistency is written to reference_consistency.parquet (the reference rate's CI).
# version 3: audit.parquet gains person_boxes and the person-blocking judge's columns
# (person_vlm_answer, person_vlm_blocked; not measured without a judge).
STAGE = register(Stage("audit", 3, "SynBench audit of a dataset against its real counterpart.",
                       AuditParams, run))
