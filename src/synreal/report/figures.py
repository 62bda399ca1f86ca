"""The report's figures, gathered or drawn into one folder (``results/figures``).

File names are ``<kind>__<label>.png`` so the HTML report can group them by kind: loss
curves, SynBench box plots, confusion matrices, retrieval examples, the mix-ratio curve,
real-vs-synthetic samples per class and DINO attention maps. The folder is built in a
temporary sibling and renamed into place, so it is complete or absent.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from synreal.data.manifest import load_rgb, read_manifest
from synreal.eval.plots import _save

#: Per-artifact plots copied as they are: kind -> file name inside the artifact.
COPIED = {
    "loss": "loss_curve.png",
    "confusion": "confusion.png",
    "retrieval": "retrieval_examples.png",
    "audit_scale": "scale.png",
    "audit_brightness": "brightness.png",
    "audit_person_blocking": "person_blocking.png",
    "audit_consistency": "consistency_confusion.png",
}


def _label(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


def sample_grid(real: Path, synthetic: dict[str, Path], path: Path, per_class: int = 4,
                max_classes: int = 6, seed: int = 0) -> Path:
    """Rows: classes; columns: ``per_class`` real images, then each synthetic set's."""
    sets = {"real": read_manifest(real), **{n: read_manifest(m) for n, m in synthetic.items()}}
    classes = sorted(sets["real"]["label_name"].unique())[:max_classes]
    rng = np.random.default_rng(seed)
    columns = per_class * len(sets)
    fig = Figure(figsize=(columns * 0.9, len(classes) * 0.95 + 0.4))
    axes = fig.subplots(len(classes), columns, squeeze=False)
    for row, label in enumerate(classes):
        for block, (name, manifest) in enumerate(sets.items()):
            members = manifest[manifest["label_name"] == label]["path"].to_numpy()
            chosen = rng.permutation(members)[:per_class] if len(members) else []
            for col in range(per_class):
                ax = axes[row, block * per_class + col]
                ax.set_xticks([]), ax.set_yticks([])
                if col < len(chosen):
                    ax.imshow(load_rgb(chosen[col]))
                else:
                    ax.axis("off")
                if row == 0 and col == 0:
                    ax.set_title(name, fontsize=7, loc="left")
                if block == 0 and col == 0:
                    ax.set_ylabel(label, fontsize=7)
    fig.suptitle("Real vs synthetic samples per class", fontsize=9)
    return _save(fig, path)


def attention_figure(checkpoint: Path, image_paths: list[str], path: Path, title: str) -> Path:
    """Each image beside the last-block attention of every head of the teacher."""
    from synreal.dino.checkpoint import load_backbone
    from synreal.eval.extract import ImageFiles, pools_patch_tokens
    from synreal.report.attention import last_block_attention

    model, preprocess = load_backbone(checkpoint)
    files = ImageFiles(image_paths, preprocess)
    images = torch.stack([files[i] for i in range(len(files))])
    maps = last_block_attention(model, images).numpy()
    heads = maps.shape[1]
    fig = Figure(figsize=((heads + 1) * 1.1, len(image_paths) * 1.1 + 0.4))
    axes = fig.subplots(len(image_paths), heads + 1, squeeze=False)
    mean, std = np.array(preprocess.mean), np.array(preprocess.std)
    for row in range(len(image_paths)):
        picture = images[row].permute(1, 2, 0).numpy() * std + mean
        axes[row, 0].imshow(np.clip(picture, 0, 1))
        for head in range(heads):
            axes[row, head + 1].imshow(maps[row, head], cmap="inferno")
            if row == 0:
                axes[row, head + 1].set_title(f"head {head}", fontsize=6)
        for ax in axes[row]:
            ax.set_xticks([]), ax.set_yticks([])
    query = "mean patch" if pools_patch_tokens(model) else "CLS"
    fig.suptitle(f"Last-block {query} attention: {title}", fontsize=8)
    return _save(fig, path)


def build_figures(params: dict, out_dir: Path) -> list[Path]:
    """Fill ``out_dir`` with every figure named in ``params`` (see the plan); atomically."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        for kind, artifacts in params.get("copied", {}).items():
            for label, artifact in artifacts.items():
                source = Path(artifact) / COPIED[kind]
                if source.is_file():
                    shutil.copyfile(source, tmp / f"{kind}__{_label(label)}.png")
        for label, source in params.get("files", {}).items():
            if Path(source).is_file():
                shutil.copyfile(source, tmp / f"{label}.png")
        for name, sets in params.get("samples", {}).items():
            sample_grid(Path(sets["real"]), {k: Path(v) for k, v in sets["synthetic"].items()},
                        tmp / f"samples__{_label(name)}.png", seed=params.get("seed", 0))
        attention = params.get("attention")
        if attention:
            test = read_manifest(Path(attention["manifest"]))
            test = test[test["split"] == attention["split"]].sort_values("id")
            picks = test.groupby("label_name").head(1)["path"].tolist()[:attention["images"]]
            for label, checkpoint in attention["models"].items():
                attention_figure(Path(checkpoint), picks,
                                 tmp / f"attention__{_label(label)}.png", label)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return sorted(out_dir.glob("*.png"))
