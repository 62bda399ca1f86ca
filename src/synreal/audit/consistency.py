"""Class consistency: does a reference classifier agree with the prompted label? (SynBench 3.1).

SynBench classifies every synthetic image with a strong classifier (ConvNeXt-B) and reports
the *consistency rate* between the prompted and the predicted label, overall, per class and
as a confusion matrix (Fig. 4); the real data's own rate is the reference point. Reference
classifiers live in a registry, each mapping images to indices into ``class_names``:

* ``probe-on-real``: multinomial logistic regression on standardised frozen features of the
  configured backbone, fitted on the real dataset's labeled non-test images. Part of them
  (``probe_holdout``) is held out: their consistency is the real data's reference rate.
  Auditing the real set itself, every non-test image gets an out-of-fold prediction.
  Which real images were held out, and whether each was classified correctly, is kept so
  that the reference rate gets a bootstrap CI over those images like every other rate.
* ``clip-zeroshot``: open_clip zero-shot over ``clip_template`` prompts; local weights, as
  the hub serves them (a folder with ``open_clip_config.json`` and the weights file).
* ``timm``: an ImageNet classifier (local weights; SynBench's is ConvNeXt-B) whose 1000
  outputs are pooled per class by the class table's ImageNet indices
  (:mod:`~synreal.audit.classes`), the label space restricted to the dataset's classes as
  in SynBench's fine-grained protocol; classes ImageNet lacks are reported as not covered.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from synreal.audit.classes import imagenet_groups
from synreal.audit.params import AuditParams
from synreal.audit.weights import require_weights
from synreal.errors import ConfigError, DataError


@dataclass
class ConsistencyInputs:
    """What a reference classifier may use.

    Attributes:
        manifest: audited rows (``path``, ``label_name``, ``split``).
        class_names: the label space, in order; predictions index into it.
        embeddings: ``(N, d)`` features of ``manifest`` rows (probe-on-real only).
        reference: the real dataset's rows, or None when the audited set is the real one.
        reference_embeddings: ``(M, d)`` features of ``reference`` rows.
    """

    manifest: pd.DataFrame
    class_names: list[str]
    embeddings: np.ndarray | None = None
    reference: pd.DataFrame | None = None
    reference_embeddings: np.ndarray | None = None


@dataclass
class Predictions:
    """Predicted class indices ``(N,)`` and, when known, the real held-out ones.

    ``reference_rows`` are the held-out images' positions in ``inputs.reference`` (in
    ``inputs.manifest`` when the audited set is the real one), aligned with
    ``reference_truth`` and ``reference_predicted``.
    """

    predicted: np.ndarray
    reference_truth: np.ndarray | None = None
    reference_predicted: np.ndarray | None = None
    reference_rows: np.ndarray | None = None


@dataclass
class ConsistencyResult:
    """Consistency of prompted vs predicted labels (rows of ``confusion`` = prompted)."""

    class_names: list[str]
    predicted: np.ndarray  # (N,) class index, -1 when not measured
    consistent: np.ndarray  # (N,) 1.0 / 0.0 / NaN
    confusion: np.ndarray  # (C, C) int64
    rate: float
    per_class: dict[str, float]
    reference_rate: float | None = None
    reference_per_class: dict[str, float] = field(default_factory=dict)
    measured: bool = True
    reference_rows: np.ndarray | None = None  # (M,) held-out real images (Predictions)
    reference_predicted: np.ndarray | None = None  # (M,) class index
    reference_consistent: np.ndarray | None = None  # (M,) 1.0 / 0.0
    not_covered: list[str] = field(default_factory=list)  # classes the classifier lacks

    def summary(self) -> dict[str, Any]:
        """JSON-ready rates and confusion matrix (per-image values stay out: see run.py)."""
        n_reference = None if self.reference_rows is None else int(len(self.reference_rows))
        return {"measured": self.measured, "rate": self.rate, "per_class": self.per_class,
                "reference_rate": self.reference_rate, "reference_n": n_reference,
                "reference_per_class": self.reference_per_class,
                "class_names": self.class_names, "confusion": self.confusion.tolist(),
                "not_covered": self.not_covered}


Backend = Callable[[ConsistencyInputs, AuditParams], Predictions]
_BACKENDS: dict[str, Backend] = {}


def register(name: str) -> Callable[[Backend], Backend]:
    """Decorator: make ``backend(inputs, params) -> Predictions`` available as ``name``."""
    def wrap(backend: Backend) -> Backend:
        _BACKENDS[name] = backend
        return backend
    return wrap


def known_backends() -> list[str]:
    """Names of every registered reference classifier."""
    return sorted(_BACKENDS)


def class_codes(label_names: Sequence[str], class_names: Sequence[str], where: str) -> np.ndarray:
    """Indices of ``label_names`` in ``class_names``; an unknown name is a DataError."""
    lookup = {name: i for i, name in enumerate(class_names)}
    unknown = sorted({str(n) for n in label_names} - set(lookup))
    if unknown:
        raise DataError(f"{where} has class {unknown[0]!r}, which the reference classifier "
                        f"does not know (classes: {list(class_names)}); audit it against a real "
                        "dataset with the same classes.")
    return np.array([lookup[str(n)] for n in label_names], dtype=np.int64)


def rates(truth: np.ndarray, predicted: np.ndarray,
          class_names: Sequence[str]) -> tuple[float, dict[str, float], np.ndarray]:
    """``(overall rate, {class: rate}, confusion (C, C))`` of predicted vs true indices."""
    c = len(class_names)
    confusion = np.bincount(truth * c + predicted, minlength=c * c).reshape(c, c)
    support = confusion.sum(axis=1)
    per_class = {name: float(confusion[i, i] / support[i]) if support[i] else float("nan")
                 for i, name in enumerate(class_names)}
    rate = float((truth == predicted).mean()) if len(truth) else float("nan")
    return rate, per_class, confusion


def class_consistency(params: AuditParams, inputs: ConsistencyInputs) -> ConsistencyResult:
    """Run the configured reference classifier and score prompted vs predicted labels."""
    names = inputs.class_names
    n = len(inputs.manifest)
    if params.consistency_backend == "none":
        return ConsistencyResult(names, np.full(n, -1), np.full(n, np.nan),
                                 np.zeros((len(names),) * 2, np.int64), float("nan"), {},
                                 measured=False)
    if params.consistency_backend not in _BACKENDS:
        raise ConfigError(f"unknown audit consistency_backend {params.consistency_backend!r}; "
                          f"known: {known_backends() + ['none']}.")
    truth = class_codes(inputs.manifest["label_name"], names, "the audited manifest")
    out = _BACKENDS[params.consistency_backend](inputs, params)
    measured = out.predicted >= 0  # -1: the classifier does not cover the image's class
    rate, per_class, confusion = rates(truth[measured], out.predicted[measured], names)
    result = ConsistencyResult(names, out.predicted,
                               np.where(measured, truth == out.predicted, np.nan),
                               confusion, rate, per_class)
    result.not_covered = sorted({names[i] for i in truth[~measured]})
    if out.reference_truth is not None:
        ref_rate, ref_per_class, _ = rates(out.reference_truth, out.reference_predicted, names)
        result.reference_rate, result.reference_per_class = ref_rate, ref_per_class
        result.reference_rows = out.reference_rows
        result.reference_predicted = out.reference_predicted
        result.reference_consistent = (out.reference_truth == out.reference_predicted
                                       ).astype(float)
    return result


# --- probe-on-real ----------------------------------------------------------------------------

def _probe(params: AuditParams) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(),
                         LogisticRegression(C=params.probe_c, max_iter=2000))


def _non_test(frame: pd.DataFrame) -> np.ndarray:
    return (frame["split"].astype(str) != "test").to_numpy() if "split" in frame else \
        np.ones(len(frame), bool)


def _require_probe_data(codes: np.ndarray, names: Sequence[str], where: str) -> None:
    """A probe needs two classes and, for its held-out split, two images of each."""
    counts = np.bincount(codes, minlength=len(names))
    if len(names) < 2 or counts.min() < 2:
        few = [names[i] for i in np.flatnonzero(counts < 2)][:3]
        raise DataError(f"probe-on-real consistency needs at least 2 classes and 2 labeled "
                        f"non-test images per class in {where} (too few: {few or names}); add "
                        "images or set audit consistency_backend to another backend.")


@register("probe-on-real")
def probe_on_real(inputs: ConsistencyInputs, params: AuditParams) -> Predictions:
    """Logistic-regression probe on frozen features of real labeled non-test images."""
    from sklearn.model_selection import StratifiedKFold, train_test_split

    if inputs.embeddings is None:
        raise ConfigError("audit consistency_backend probe-on-real needs image embeddings; "
                          "configure the audit's feature backbone.")
    names = inputs.class_names
    if inputs.reference is None:  # the audited set is the real one: out-of-fold predictions
        x, rows = inputs.embeddings, _non_test(inputs.manifest)
        y = class_codes(inputs.manifest["label_name"], names, "the audited manifest")
        _require_probe_data(y[rows], names, "the audited dataset")
        predicted = np.empty(len(y), np.int64)
        folds = max(2, min(round(1 / params.probe_holdout), int(np.bincount(y[rows]).min())))
        split = StratifiedKFold(folds, shuffle=True, random_state=params.seed)
        train_rows = np.flatnonzero(rows)
        for fit_idx, held_idx in split.split(x[train_rows], y[train_rows]):
            model = _probe(params).fit(x[train_rows[fit_idx]], y[train_rows[fit_idx]])
            predicted[train_rows[held_idx]] = model.predict(x[train_rows[held_idx]])
        if (~rows).any():
            model = _probe(params).fit(x[rows], y[rows])
            predicted[~rows] = model.predict(x[~rows])
        return Predictions(predicted, y[rows], predicted[rows], np.flatnonzero(rows))
    if inputs.reference_embeddings is None:
        raise ConfigError("probe-on-real needs the real dataset's embeddings.")
    rows = _non_test(inputs.reference)
    x_ref = inputs.reference_embeddings[rows]
    y_ref = class_codes(inputs.reference["label_name"][rows], names, "the real manifest")
    _require_probe_data(y_ref, names, "the real dataset")
    fit_x, held_x, fit_y, held_y, _, held_rows = train_test_split(
        x_ref, y_ref, np.flatnonzero(rows), test_size=params.probe_holdout, stratify=y_ref,
        random_state=params.seed)  # the row positions ride along: the same split
    model = _probe(params).fit(fit_x, fit_y)
    return Predictions(model.predict(inputs.embeddings).astype(np.int64), held_y,
                       model.predict(held_x).astype(np.int64), held_rows)


# --- image classifiers with local weights ----------------------------------------------------

def _batched_logits(paths: Sequence[str], transform: Callable, forward: Callable,
                    batch_size: int, device: str) -> np.ndarray:
    """``(N, K)`` float32 outputs of ``forward`` on transformed RGB images, in batches."""
    import torch
    from PIL import Image

    from synreal.data.manifest import load_rgb

    chunks = []
    with torch.no_grad():
        for start in range(0, len(paths), batch_size):
            batch = torch.stack([transform(Image.fromarray(load_rgb(p)))
                                 for p in paths[start:start + batch_size]]).to(device)
            chunks.append(forward(batch).float().cpu().numpy())
    return np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32)


def load_timm_classifier(arch: str, weights: str | None, device: str = "cpu",
                         model_id: str = "timm/convnext_base.fb_in1k") -> Any:
    """A timm classifier from local files, every tensor checked (``weights_only``).

    ``weights`` is a timm hub folder as downloaded (``config.json``, which names the
    ``architecture``, its ``model_args`` and ``pretrained_cfg`` preprocessing, beside
    ``model.safetensors``) or one ``.safetensors`` / ``.pth`` state dict of ``arch``. The
    folder's architecture must be ``arch``: the classifier the table names is the one run.
    """
    file = require_weights(weights, "consistency_weights",
                           f"{model_id} (a timm hub folder or its model.safetensors)",
                           expect="folder or file")
    import timm
    import torch

    kwargs: dict[str, Any] = {}
    if file.is_dir():
        config_file = file / "config.json"
        if not config_file.is_file():
            raise ConfigError(f"audit consistency_weights {file} has no config.json; download "
                              f"the timm hub folder (`hf download {model_id} --local-dir "
                              "<folder>`) or set it to the weights file.")
        config = json.loads(config_file.read_text())
        if config.get("architecture") != arch:
            raise ConfigError(f"audit consistency_weights {file} holds architecture "
                              f"{config.get('architecture')!r}, not consistency_model "
                              f"{arch!r}; set one to match the other.")
        kwargs = {**config.get("model_args", {}), "num_classes": config.get("num_classes",
                                                                            1000)}
        if config.get("pretrained_cfg"):
            kwargs["pretrained_cfg"] = config["pretrained_cfg"]
        found = [p for p in (file / "model.safetensors", file / "pytorch_model.bin")
                 if p.is_file()]
        if not found:
            raise ConfigError(f"audit consistency_weights {file} has no model.safetensors or "
                              "pytorch_model.bin; download the timm hub folder again.")
        file = found[0]
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(file)
    else:
        state = torch.load(file, map_location="cpu", weights_only=True)
    model = timm.create_model(arch, pretrained=False, **kwargs)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ConfigError(f"audit consistency_weights {file} does not fit timm architecture "
                          f"{arch!r} (set consistency_model to the weights' architecture): "
                          f"{str(error).splitlines()[0]}") from None
    if model.num_classes != 1000:
        raise ConfigError(f"audit consistency_weights {file} is a {model.num_classes}-class "
                          "model; the timm backend needs an ImageNet-1k classifier.")
    return model.eval().to(device)


@register("timm")
def timm_classifier(inputs: ConsistencyInputs, params: AuditParams) -> Predictions:
    """ImageNet classifier, label space restricted to the dataset's classes (SynBench).

    Each class's score is the softmax summed over its ImageNet indices (``class_table``);
    an image is predicted as the highest-scoring class among those ImageNet covers. Images
    of classes ImageNet does not cover (e.g. Bengal cats) are not measured (-1).
    """
    groups = imagenet_groups(inputs.class_names, params.class_table)
    covered = np.array([bool(g) for g in groups])
    model = load_timm_classifier(params.consistency_model, params.consistency_weights,
                                 params.device, params.consistency_model_id)
    import timm.data
    import torch

    truth = class_codes(inputs.manifest["label_name"], inputs.class_names,
                        "the audited manifest")
    rows = np.flatnonzero(covered[truth])
    predicted = np.full(len(truth), -1, np.int64)
    if covered.any() and len(rows):
        transform = timm.data.create_transform(
            **timm.data.resolve_data_config({}, model=model))
        probs = _batched_logits(list(inputs.manifest["path"].iloc[rows]), transform,
                                lambda b: torch.softmax(model(b), dim=-1), params.batch_size,
                                params.device)
        scores = np.stack([probs[:, g].sum(axis=1) if g else np.full(len(rows), -np.inf)
                           for g in groups], axis=1)
        predicted[rows] = scores.argmax(axis=1)
    return Predictions(predicted)


#: The hub repository the missing-weights error suggests: OpenCLIP ViT-B/32 on LAION-2B.
CLIP_EXAMPLE_REPO = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"
#: An open_clip model folder as the hub serves it: this config (architecture + preprocessing)
#: beside one weights file.
CLIP_CONFIG = "open_clip_config.json"
CLIP_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth")


def _require_clip_folder(folder: Path, key: str = "consistency_weights") -> None:
    """A ConfigError unless ``folder`` holds ``open_clip_config.json`` and a weights file."""
    fix = (f"it must be an open_clip model folder as downloaded from the hub (e.g. `hf download "
           f"{CLIP_EXAMPLE_REPO} --local-dir <folder>`): {CLIP_CONFIG} beside "
           "open_clip_pytorch_model.bin or open_clip_model.safetensors. Alternatively set "
           f"{key} to the weights file itself and {key.replace('_weights', '_model')} to its "
           "built-in open_clip architecture")
    if not (folder / CLIP_CONFIG).is_file():
        raise ConfigError(f"audit {key} {folder} has no {CLIP_CONFIG}; {fix}.")
    if not any(p.suffix in CLIP_WEIGHT_SUFFIXES for p in folder.iterdir()):
        raise ConfigError(f"audit {key} {folder} has no weights file "
                          f"({', '.join('*' + s for s in CLIP_WEIGHT_SUFFIXES)}); {fix}.")


def load_open_clip(weights: str | None, arch: str, device: str = "cpu",
                   key: str = "consistency_weights") -> tuple[Any, Any, Any]:
    """``(model, eval transform, tokenizer)`` of an open_clip model, from local files only.

    Args:
        weights: either a model folder as downloaded from the hub (``open_clip_config.json``,
            which holds the architecture and the preprocessing, beside
            ``open_clip_pytorch_model.bin`` or ``open_clip_model.safetensors``), loaded through
            open_clip's ``local-dir:`` schema; or one weights file of the built-in open_clip
            architecture ``arch``.
        arch: an ``open_clip.list_models()`` name (e.g. ``ViT-B-32``); a folder ignores it.
        device: where the model lives (``cpu``, ``cuda``); it stays in float32.

    Nothing is downloaded. CLIP-style models load with no network (the CLIP tokenizer's BPE
    vocabulary ships inside open_clip); a config naming a Hugging Face text tower or tokenizer
    (``hf_model_name``, ``hf_tokenizer_name``: SigLIP, XLM-R) needs those files locally too,
    the tokenizer in the folder and the tower in the Hugging Face cache.
    """
    path = require_weights(weights, key, CLIP_EXAMPLE_REPO,
                           expect=f"folder ({CLIP_CONFIG} beside open_clip_pytorch_model.bin), "
                           "or set it to a weights file of the built-in open_clip architecture "
                           "named by the matching _model key")
    import open_clip

    if path.is_dir():
        _require_clip_folder(path, key)
        name, pretrained = f"local-dir:{path.resolve()}", None
        target = f"the architecture in its {CLIP_CONFIG}"
    else:
        known = open_clip.list_models()
        if arch not in known:
            raise ConfigError(
                f"audit {key.replace('_weights', '_model')} {arch!r} is not a built-in "
                f"open_clip architecture, which a weights file ({path}) needs; set it to one "
                f"of {known}, or set {key} to the model's folder (with its {CLIP_CONFIG}).")
        name, pretrained = arch, str(path)
        target = (f"open_clip architecture {arch!r} (set {key.replace('_weights', '_model')} "
                  "to the weights' architecture)")
    try:
        model, _, transform = open_clip.create_model_and_transforms(
            name, pretrained=pretrained, device=device, require_pretrained=True)
    except (RuntimeError, AssertionError) as error:
        # open_clip's strict load_state_dict raises RuntimeError; its position-embedding
        # resizing asserts when a tower has another width.
        if isinstance(error, RuntimeError) and "state_dict" not in str(error):
            raise
        raise ConfigError(f"audit {key} {path} does not fit {target}: "
                          f"{str(error).splitlines()[0]}") from None
    except ValueError as error:  # open_clip could not read the folder's config
        if not path.is_dir():
            raise
        raise ConfigError(f"audit {key} {path / CLIP_CONFIG} is not an open_clip "
                          f"config ({{\"model_cfg\": ..., \"preprocess_cfg\": ...}}): "
                          f"{str(error).splitlines()[0]}") from None
    return model.eval(), transform, open_clip.get_tokenizer(name)


def clip_prompts(template: str, class_names: Sequence[str]) -> list[str]:
    """One prompt per class: ``template`` with ``{name}`` = the class, underscores as spaces."""
    return [template.format(name=name.replace("_", " ")) for name in class_names]


def clip_scores(model: Any, transform: Callable, tokenizer: Callable, paths: Sequence[str],
                prompts: Sequence[str], batch_size: int = 64,
                device: str = "cpu") -> np.ndarray:
    """``(N, C)`` cosine similarities of the images at ``paths`` to ``prompts`` (float32)."""
    import torch

    with torch.no_grad():
        text = model.encode_text(tokenizer(list(prompts)).to(device)).float()
        text = torch.nn.functional.normalize(text, dim=-1)

    def forward(batch: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(model.encode_image(batch).float(), dim=-1) @ text.T

    return _batched_logits(list(paths), transform, forward, batch_size, device)


@register("clip-zeroshot")
def clip_zeroshot(inputs: ConsistencyInputs, params: AuditParams) -> Predictions:
    """open_clip zero-shot: each image's class is the prompt of highest cosine similarity.

    The model and its preprocessing come from :func:`load_open_clip`, the prompts from
    :func:`clip_prompts` (one per class, no prompt ensembling), the scores from
    :func:`clip_scores`.
    """
    return _clip_predictions(inputs, params, params.consistency_weights,
                             params.consistency_model, "consistency_weights")


def _clip_predictions(inputs: ConsistencyInputs, params: AuditParams, weights: str | None,
                      arch: str, key: str) -> Predictions:
    model, transform, tokenizer = load_open_clip(weights, arch, params.device, key=key)
    scores = clip_scores(model, transform, tokenizer, inputs.manifest["path"],
                         clip_prompts(params.clip_template, inputs.class_names),
                         params.batch_size, params.device)
    return Predictions(scores.argmax(axis=1).astype(np.int64))


def clip_beside(params: AuditParams, inputs: ConsistencyInputs) -> ConsistencyResult | None:
    """CLIP zero-shot consistency beside the reference classifier (None: no clip_weights)."""
    if not params.clip_weights:
        return None
    names = inputs.class_names
    truth = class_codes(inputs.manifest["label_name"], names, "the audited manifest")
    predicted = _clip_predictions(inputs, params, params.clip_weights, params.clip_model,
                                  "clip_weights").predicted
    rate, per_class, confusion = rates(truth, predicted, names)
    return ConsistencyResult(names, predicted, (truth == predicted).astype(float), confusion,
                             rate, per_class)
