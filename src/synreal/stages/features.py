"""Stage ``features``: frozen backbone + evaluation dataset -> ``features.parquet``.

The file holds one embedding matrix and names the *views* of it that the evaluation stages
read (their ``features`` key): ``cls``, the last block's CLS token (DINO's k-NN and
retrieval features, 384-d for ViT-S), and with ``protocol: dino_linear`` also
``dino_linear``, the CLS tokens of the last ``n_last_blocks`` blocks concatenated (DINO's
linear protocol, 1,536-d for ViT-S). The last block's part of that concatenation *is* the
``cls`` embedding (same normalised token), so one extraction serves every protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from synreal import faults
from synreal.errors import ConfigError
from synreal.params import doc, parse_params
from synreal.stages import Stage, register

DECODES = ("cpu", "device")  # eval.extract.DECODES, kept here so planning never imports torch
PROTOCOLS = ("cls", "dino_linear")  # eval.extract.PROTOCOLS, likewise


@dataclass(frozen=True)
class FeaturesParams:
    """Parameters of the ``features`` stage."""

    protocol: str = doc("What is extracted. cls: the last block's CLS token only (DINO k-NN; "
                        "a backbone embedding its mean patch token, like the demo's, gives "
                        "that); the file offers the view cls. dino_linear: the CLS tokens of "
                        "the last n_last_blocks blocks concatenated (DINO linear eval); the "
                        "file offers the views dino_linear and cls (its last block).",
                        default="dino_linear")
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
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {list(PROTOCOLS)}, not {self.protocol!r}")
        if self.n_last_blocks < 1:
            raise ValueError(f"n_last_blocks must be at least 1, not {self.n_last_blocks}")

    @property
    def views(self) -> tuple[str, ...]:
        """Names of the feature views the written file offers (``features`` of probe etc.)."""
        return ("cls", "dino_linear") if self.protocol == "dino_linear" else ("cls",)

    def layout(self, dim: int, pooled: bool) -> dict[str, dict]:
        """Columns and one-line description of each view of a ``dim``-wide embedding.

        ``pooled``: the backbone embeds its mean patch token instead of its CLS token.
        """
        token = "mean patch token" if pooled else "CLS token"
        if self.protocol == "cls":
            return {"cls": {"start": 0, "stop": dim,
                            "description": f"last-block {token} ({dim}-d)"}}
        parts = self.n_last_blocks + int(self.avgpool)
        if dim % parts:
            raise ValueError(f"a {dim}-d dino_linear embedding does not split into {parts} "
                             "equal parts")
        width = dim // parts
        extra = " + mean patch token of the last block" if self.avgpool else ""
        stop = self.n_last_blocks * width
        return {
            "cls": {"start": stop - width, "stop": stop,
                    "description": f"last-block {token} ({width}-d)"},
            "dino_linear": {"start": 0, "stop": dim,
                            "description": f"{token}s of the last {self.n_last_blocks} blocks "
                                           f"concatenated{extra} ({dim}-d)"},
        }


def check_view(features: dict, view: str, where: str) -> None:
    """Fail before any job starts when ``view`` is not one the features params write.

    ``features``: the resolved ``evaluation.features`` params; ``where``: the key naming
    ``view`` (e.g. ``evaluation.probe.features``).
    """
    params = parse_params(FeaturesParams, features, "evaluation.features")
    if view not in params.views:
        raise ConfigError(
            f"{where} is {view!r} but evaluation.features.protocol {params.protocol!r} writes "
            f"only {list(params.views)}; set evaluation.features.protocol: dino_linear (it "
            f"writes cls and dino_linear) or {where} to one of {list(params.views)}.")


def run(spec: dict, out_dir: Path) -> None:
    """Embed every image of the configured splits with the checkpoint's own preprocessing."""
    from synreal.data.manifest import manifest_hash, read_manifest
    from synreal.dino.checkpoint import load_backbone, read_preprocessing
    from synreal.eval.extract import extract_features, pools_patch_tokens
    from synreal.eval.features_io import write_features
    from synreal.stages.generate import device

    params = parse_params(FeaturesParams, spec["params"], "features params")
    manifest = read_manifest(Path(spec["inputs"]["manifest"]), splits=params.splits)
    model, preprocess = load_backbone(Path(spec["inputs"]["checkpoint"]))
    depth = len(getattr(model, "blocks", ()))
    if params.protocol == "dino_linear" and params.n_last_blocks > depth:
        raise ConfigError(f"evaluation.features.n_last_blocks is {params.n_last_blocks} but the "
                          f"backbone has {depth} blocks; set it to at most {depth}.")
    embeddings, rate = extract_features(
        model, manifest["path"].tolist(), preprocess, params.protocol, params.n_last_blocks,
        params.avgpool, params.batch_size, params.num_workers, device("features"), params.decode)
    write_features(out_dir / "features.parquet", embeddings, manifest["id"], manifest["split"],
                   manifest["label"], manifest["label_name"], manifest["path"], {
                       "checkpoint_key": spec["upstream"]["checkpoint"],
                       "protocol": params.protocol,
                       "views": params.layout(embeddings.shape[1], pools_patch_tokens(model)),
                       "model": read_preprocessing(Path(spec["inputs"]["checkpoint"])).arch,
                       "manifest_hash": manifest_hash(manifest),
                       "images_per_second": round(rate, 1),
                   })
    faults.point("features.write")
    print(f"features: {len(manifest)} images at {rate:.1f} images/s")


STAGE = register(Stage("features", 2, "Frozen backbone features of an evaluation dataset.",
                       FeaturesParams, run))
