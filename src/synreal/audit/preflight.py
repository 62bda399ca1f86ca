"""Before any job: every audit model the study selects is given, present and of its architecture.

The audit loads its models only when a job runs, hours into a study. What can be known from
the config and the weights' headers is checked here, at plan time (``synreal.config``'s
weights check, the Snakefile's preflight and ``python -m synreal doctor``):

* :func:`audit_weights`: every audit weights path the study names (``audit.params``'
  ``*_weights`` and ``audit.embedding.embedder_weights``) with the model that reads it;
* :func:`check_model`: that path holds that model, compared without loading it: the
  tensor names and shapes in the safetensors header (or the mmapped state dict) against the
  architecture built on torch's ``meta`` device from the folder's own config;
* :func:`check_classes`: every class of every audited dataset has a detector phrase (and an
  ImageNet entry, possibly empty) in the class table when a measure needs it.

Each failure is one sentence naming the key and what to set.
"""

from __future__ import annotations

import functools
import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path

from synreal.errors import ConfigError


@dataclass(frozen=True)
class AuditWeights:
    """One audit weights path: its key, where the study sets it, and the model it holds."""

    key: str  # e.g. "consistency_weights"
    where: str  # e.g. "audit.params.consistency_weights"
    model: str  # dinov2, clip, timm, owl, blip-vqa, fid-inception, yolo-world
    path: str
    arch: str | None = None  # timm / open_clip architecture of a weights file


def audit_weights(config: dict) -> list[AuditWeights]:
    """Every audit weights path the study names, with the model that reads it."""
    audit = config.get("audit") or {}
    params, embedding = audit.get("params") or {}, audit.get("embedding") or {}
    found = []
    readers = {"scale_weights": ("yolo-world" if params.get("scale_backend") == "yolo-world"
                                 else "owl", None),
               "person_weights": ("owl", None),
               "person_vlm_weights": ("blip-vqa", None),
               "consistency_weights": ("clip" if params.get("consistency_backend")
                                       == "clip-zeroshot" else "timm",
                                       params.get("consistency_model", "convnext_base")),
               "clip_weights": ("clip", params.get("clip_model", "ViT-B-32")),
               "fid_weights": ("fid-inception", None)}
    for key, value in params.items():
        if key.endswith("_weights") and value:
            model, arch = readers.get(key, ("unknown", None))
            found.append(AuditWeights(key, f"audit.params.{key}", model, str(value), arch))
    if embedding.get("embedder_weights"):
        name = embedding.get("embedder", "colour-layout")
        found.append(AuditWeights("embedder_weights", "audit.embedding.embedder_weights", name,
                                  str(embedding["embedder_weights"]),
                                  embedding.get("embedder_model")))
    return found


# ---------------------------------------------------------------- tensor shapes without loading

def file_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of a weights file, read from its header (safetensors) or mmapped."""
    if path.suffix == ".safetensors":
        with open(path, "rb") as handle:
            size = struct.unpack("<Q", handle.read(8))[0]
            header = json.loads(handle.read(size))
        return {k: tuple(v["shape"]) for k, v in header.items() if k != "__metadata__"}
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    return {k: tuple(v.shape) for k, v in state.items() if hasattr(v, "shape")}


def misfit(expected: dict[str, tuple], found: dict[str, tuple]) -> str | None:
    """Why ``found`` tensors do not fit ``expected`` (None: every tensor present at its shape)."""
    names = found
    missing = sorted(k for k in expected if k not in names)
    shaped = sorted(k for k in expected if k in names and tuple(names[k]) != tuple(expected[k]))
    if shaped:
        k = shaped[0]
        return (f"{len(shaped)} tensor(s) of another shape, e.g. {k!r} {list(names[k])} where "
                f"the architecture has {list(expected[k])}")
    if missing:
        return f"{len(missing)} of {len(expected)} tensors missing, e.g. {missing[0]!r}"
    return None


def shape_misfit(expected: dict[str, tuple], found: dict[str, tuple]) -> str | None:
    """Like :func:`misfit`, by shapes alone.

    transformers renames checkpoint tensors on load (DINOv2's ``attention.attention.query``
    is ``attention.q_proj`` in transformers 5), so the names of a hub checkpoint and of the
    built model need not agree; their shapes do.
    """
    from collections import Counter

    want = Counter(tuple(s) for s in expected.values())
    have = Counter(tuple(s) for s in found.values())
    lacking, extra = want - have, have - want
    if not (lacking or extra):
        return None
    example = (f"no tensor of shape {list(next(iter(lacking)))}" if lacking else
               f"a tensor of shape {list(next(iter(extra)))} the architecture lacks")
    return (f"{sum(have.values())} tensors where the architecture has {sum(want.values())}, "
            f"{example}")


def _meta_shapes(build) -> dict[str, tuple[int, ...]]:
    import torch

    with torch.device("meta"):
        model = build()
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _weights_file(folder: Path, names: tuple[str, ...]) -> Path | None:
    return next((folder / n for n in names if (folder / n).is_file()), None)


# ---------------------------------------------------------------- one check per model kind

def _dinov2(path: Path) -> str | None:
    if not path.is_dir():
        return "is not a folder (a save_pretrained folder of facebook/dinov2-base)"
    config = path / "config.json"
    kind = json.loads(config.read_text()).get("model_type") if config.is_file() else None
    if kind != "dinov2":
        return f"holds model_type {kind!r}, not 'dinov2'"
    file = _weights_file(path, ("model.safetensors", "pytorch_model.bin"))
    if file is None:
        return "has no model.safetensors or pytorch_model.bin"
    from transformers import Dinov2Config, Dinov2Model

    cfg = Dinov2Config.from_pretrained(path, local_files_only=True)
    why = shape_misfit(_meta_shapes(lambda: Dinov2Model(cfg)), file_shapes(file))
    return why and f"does not fit the DINOv2 architecture of its config.json ({why})"


def _timm(path: Path, arch: str | None) -> str | None:
    import timm

    args: dict = {}
    file = path
    if path.is_dir():
        config = path / "config.json"
        if not config.is_file():
            return "has no config.json (a timm hub folder, e.g. timm/convnext_base.fb_in1k)"
        cfg = json.loads(config.read_text())
        if arch and cfg.get("architecture") != arch:
            return (f"holds architecture {cfg.get('architecture')!r}, not {arch!r} (set the "
                    "matching *_model key to the folder's)")
        arch = cfg.get("architecture")
        args = {**cfg.get("model_args", {}), "num_classes": cfg.get("num_classes", 1000)}
        file = _weights_file(path, ("model.safetensors", "pytorch_model.bin"))
        if file is None:
            return "has no model.safetensors or pytorch_model.bin"
    if not arch or arch not in timm.list_models():
        return f"names timm architecture {arch!r}, which timm does not know"
    why = misfit(_meta_shapes(lambda: timm.create_model(arch, pretrained=False, **args)),
                 file_shapes(file))
    return why and f"does not fit timm {arch} ({why})"


def _clip(path: Path, arch: str | None) -> str | None:
    import open_clip

    if path.is_dir():
        config = path / "open_clip_config.json"
        if not config.is_file():
            return "has no open_clip_config.json (an open_clip hub folder)"
        cfg = json.loads(config.read_text()).get("model_cfg")
        file = next((p for p in sorted(path.iterdir())
                     if p.suffix in (".safetensors", ".bin", ".pth")), None)
        if not cfg or file is None:
            return "has no model_cfg in open_clip_config.json or no weights file beside it"
        if "hf_model_name" in (cfg.get("text_cfg") or {}):
            return None  # a Hugging Face text tower: its own files, checked when it loads
        build = lambda: open_clip.CLIP(**cfg)  # noqa: E731
    else:
        if arch not in open_clip.list_models():
            return f"is a file of open_clip architecture {arch!r}, which open_clip does not know"
        file = path
        build = lambda: open_clip.create_model(arch, pretrained=None, device="meta")  # noqa: E731
    why = misfit(_meta_shapes(build), file_shapes(file))
    return why and f"does not fit its open_clip architecture ({why})"


def _owl(path: Path) -> str | None:
    from synreal.audit.owlvit import model_type

    if not path.is_dir():
        return "is not a folder (a save_pretrained OWL-ViT / OWLv2 folder)"
    try:
        model_type(path)
    except ConfigError as error:
        return str(error).rstrip(".")
    return None


def _fid(path: Path) -> str | None:
    from synreal.audit.inception import check_fid_weights

    try:
        check_fid_weights(str(path))
    except ConfigError as error:  # "audit fid_weights <path> does not ..."
        return str(error).split(f"{path} ", 1)[-1].rstrip(".")
    return None


#: The distributions whose model classes the checks build.
MODEL_LIBRARIES = ("torch", "timm", "open_clip_torch", "transformers", "safetensors")


def _stamp(weights: AuditWeights, path: Path) -> tuple[str, str]:
    """(memo key, stamp): what was checked, and what its check depended on.

    The stamp is every file under the weights path (size, modification time) and
    :func:`_checker`, so new weights, a changed check or an upgraded library are checked
    again.
    """
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    listing = [(str(f.relative_to(path)) if f != path else "", f.stat().st_size,
                f.stat().st_mtime_ns) for f in files]
    digest = hashlib.sha256(_checker().encode())
    digest.update(json.dumps(listing).encode())
    return f"{weights.model}:{weights.arch}:{path.resolve()}", digest.hexdigest()


@functools.cache
def _checker() -> str:
    """sha256 of this audit package's source and the versions of MODEL_LIBRARIES."""
    from importlib.metadata import PackageNotFoundError, version

    digest = hashlib.sha256()
    for source in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(source.read_bytes())
    for library in MODEL_LIBRARIES:
        try:
            digest.update(f"{library} {version(library)}".encode())
        except PackageNotFoundError:
            digest.update(f"{library} absent".encode())
    return digest.hexdigest()


def check_model(weights: AuditWeights, base: Path, memo: Path | None = None) -> str | None:
    """None when ``weights`` holds the model that reads it, else why not (one clause).

    ``memo``: a file of the checks that passed (the Snakefile's, in ``.snakemake/``). A check
    whose weights and checker are unchanged since it passed is not made again: it imports
    the model's library (timm, open_clip, transformers: seconds), and the Snakefile runs it
    on every ``snakemake`` call, dry runs included. A failure is never remembered.
    """
    path = Path(base) / weights.path
    if not path.exists():
        return f"{path} does not exist"
    if memo is not None:
        from synreal.memo import recall, remember

        key, stamp = _stamp(weights, path)
        if recall(memo, key) == stamp:
            return None
    why = _checked(weights, path)
    if why is None and memo is not None:
        remember(memo, key, stamp)
    return why


def _checked(weights: AuditWeights, path: Path) -> str | None:
    """check_model's verdict, made now."""
    checks = {"dinov2": lambda: _dinov2(path), "timm": lambda: _timm(path, weights.arch),
              "clip": lambda: _clip(path, weights.arch), "owl": lambda: _owl(path),
              "fid-inception": lambda: _fid(path)}
    check = checks.get(weights.model)
    if check is None:
        return None  # YOLO-World, BLIP VQA: presence only; their loaders say the rest
    try:
        why = check()
    except (OSError, ValueError, KeyError, struct.error, RuntimeError) as error:
        why = f"could not be read ({str(error).splitlines()[0] if str(error) else error!r})"
    return why and (why if why.startswith(str(path)) else f"{path} {why}")


# ---------------------------------------------------------------- classes

def audited_formats(config: dict) -> dict[str, str]:
    """Audited dataset -> the format its classes come from (a generator: its real dataset's)."""
    datasets, generators = config.get("datasets", {}), config.get("generators", {})
    names = (config.get("audit") or {}).get("datasets") or [*datasets, *generators]
    out = {}
    for name in names:
        real = generators[name]["like"] if name in generators else name
        if real in datasets and "toyworld" not in datasets[real]:
            out[name] = datasets[real]["format"]
    return out


def check_classes(config: dict) -> None:
    """Every audited class has what its measures ask of the class table (else ConfigError)."""
    from synreal.audit.classes import format_classes, imagenet_groups, object_phrases

    params = (config.get("audit") or {}).get("params") or {}
    table = params.get("class_table")
    detector = params.get("scale_backend") in ("owlvit", "yolo-world")
    imagenet = params.get("consistency_backend") == "timm"
    if not (detector or imagenet):
        return
    for name, fmt in audited_formats(config).items():
        classes = format_classes(fmt, table)
        if classes is None:
            raise ConfigError(f"audit.datasets: {name} is a {fmt} dataset, whose classes the "
                              f"audit class table does not list; add \"formats\": {{\"{fmt}\": "
                              "[...]}} and its classes to a table named by audit.params."
                              "class_table.")
        try:
            for label in classes:
                if detector:
                    object_phrases(label, table)
            if imagenet:
                imagenet_groups(classes, table)
        except ConfigError as error:
            raise ConfigError(f"audit.datasets: {name}: {error}") from None


def check_study(config: dict, base: Path, memo: Path | None = None) -> None:
    """Classes, then every audit weights path; the first failure as a ConfigError.

    ``memo``: as for :func:`check_model`.
    """
    check_classes(config)
    for weights in audit_weights(config):
        why = check_model(weights, base, memo)
        if why:
            raise ConfigError(f"{weights.where}: {why}.")
