"""Stage ``features``: frozen backbone + evaluation dataset -> ``features.parquet``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from synreal import faults
from synreal.params import doc, parse_params
from synreal.stages import Stage, register

DECODES = ("cpu", "device")  # eval.extract.DECODES, kept here so planning never imports torch


@dataclass(frozen=True)
class FeaturesParams:
    """Parameters of the ``features`` stage."""

    protocol: str = doc("cls: last-block CLS token (DINO k-NN; a backbone embedding its mean "
                        "patch token, like the demo's, gives that); dino_linear: CLS of the "
                        "last n_last_blocks blocks concatenated (DINO linear eval).",
                        default="cls")
    n_last_blocks: int = doc("Blocks concatenated by dino_linear (DINO: 4 for ViT-S).",
                             default=4)
    avgpool: bool = doc("dino_linear: also append the average-pooled patch tokens "
                        "(DINO: on for ViT-B only).", default=False)
    splits: tuple = doc("Splits of the evaluation dataset to embed.",
                        default=("trainval", "test"))
    batch_size: int = doc("Images per forward pass (GPU: 256-1024).", default=256)
    num_workers: int = doc("DataLoader workers decoding images (reading files with "
                           "decode: device).", default=2)
    decode: str = doc("Where JPEGs are decoded. cpu: PIL in the DataLoader workers. device: "
                      "workers only read files; JPEG batches are decoded on the model's device "
                      "(nvjpeg on a GPU) and resized, cropped and normalised there, for GPU "
                      "throughput beyond what CPU workers decode (ViT-S/16 bf16 on an H100). "
                      "Non-JPEG files are still decoded with PIL. Pixels equal PIL's on CPU; "
                      "nvjpeg's may differ by a few grey levels.", default="cpu")

    def __post_init__(self) -> None:
        if self.decode not in DECODES:
            raise ValueError(f"decode must be one of {list(DECODES)}, not {self.decode!r}")


def run(spec: dict, out_dir: Path) -> None:
    """Embed every image of the configured splits with the checkpoint's own preprocessing."""
    from synreal.data.manifest import manifest_hash, read_manifest
    from synreal.dino.checkpoint import load_backbone
    from synreal.eval.extract import extract_features
    from synreal.eval.features_io import write_features
    from synreal.stages.generate import device

    params = parse_params(FeaturesParams, spec["params"], "features params")
    manifest = read_manifest(Path(spec["inputs"]["manifest"]), splits=params.splits)
    model, preprocess = load_backbone(Path(spec["inputs"]["checkpoint"]))
    embeddings, rate = extract_features(
        model, manifest["path"].tolist(), preprocess, params.protocol, params.n_last_blocks,
        params.avgpool, params.batch_size, params.num_workers, device(), params.decode)
    write_features(out_dir / "features.parquet", embeddings, manifest["id"], manifest["split"],
                   manifest["label"], manifest["label_name"], manifest["path"], {
                       "checkpoint_key": spec["upstream"]["checkpoint"],
                       "protocol": params.protocol,
                       "manifest_hash": manifest_hash(manifest),
                       "images_per_second": round(rate, 1),
                   })
    faults.point("features.write")
    print(f"features: {len(manifest)} images at {rate:.1f} images/s")


STAGE = register(Stage("features", 1, "Frozen backbone features of an evaluation dataset.",
                       FeaturesParams, run))
