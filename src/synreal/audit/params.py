"""Every control of the ``audit`` stage, with its default and the reason for it.

The measures are SynBench's (Section 3: class consistency, object scale, CIELAB brightness,
person blocking; Figures 4-5) plus MixDiff's diversity (Section 5.3), FID/KID,
near-duplicates and blank/corrupt images; diversity and FID come with bootstrap CIs over
images. Model-backed measures read local weights only; a missing path fails before any
image is decoded, naming the model to download.
"""

from __future__ import annotations

from dataclasses import dataclass

from synreal.errors import ConfigError
from synreal.params import doc

SCALE_BACKENDS = ("foreground", "owlvit", "yolo-world", "boxes-from-column", "none")
PERSON_BACKENDS = ("none", "boxes-from-column", "owlvit")
CONSISTENCY_BACKENDS = ("probe-on-real", "clip-zeroshot", "timm", "none")
FID_FEATURES = ("inception", "embedding")
VLM_JUDGES = ("none", "blip-vqa")
#: SynBench's question to GPT-4o (Section 3.2), the class name as ``{name}``.
SYNBENCH_QUESTION = ("Is part of {name} occluded by the human body in the image? Please only "
                     "answer yes or no.")


@dataclass(frozen=True)
class AuditParams:
    """Parameters of the SynBench data audit (the ``audit`` stage).

    Example:
        >>> AuditParams().scale_backend
        'foreground'
    """

    # --- object scale (SynBench Fig. 5a) ------------------------------------------------------
    scale_backend: str = doc(
        "Central-object box finder: foreground (weights-free border-colour model, the demo's), "
        "owlvit (OWL-ViT via transformers), yolo-world (ultralytics), boxes-from-column (boxes "
        "already in the manifest, e.g. the toy world's ground truth) or none.",
        default="foreground")
    scale_weights: str | None = doc("Local folder of the detector weights (owlvit: a "
                                    "save_pretrained folder; yolo-world: the .pt file).",
                                    default=None)
    scale_model_id: str = doc("Hub id of the detector, named in the table caption and in the "
                              "error that says what to download.",
                              default="google/owlvit-base-patch32")
    class_table: str | None = doc(
        "JSON file of per-class detector phrases and ImageNet indices (layout of the packaged "
        "synreal/audit/data/classes.json, which covers Oxford-IIIT Pet, AFHQ and the toy "
        "world); None = the packaged table. Detector phrases name the animal: "
        "species-qualified breeds, AFHQ's wild as its animals.", default=None)
    detection_threshold: float = doc("Smallest detector score accepted as the central object "
                                     "(below it the scale is NaN, counted as not found).",
                                     default=0.1)
    object_box_column: str = doc("boxes-from-column: manifest column holding the object box "
                                 "[x0, y0, x1, y1] in image pixels.", default="bbox")
    foreground_size: int = doc("foreground: side the image is downsampled to before "
                               "segmentation; 96 keeps it fast and ignores fur texture.",
                               default=96)
    # --- person blocking (SynBench Fig. 5c) ---------------------------------------------------
    person_backend: str = doc(
        "Person detector: none (the measure is reported as not measured, never 0), "
        "boxes-from-column (person boxes in the manifest) or owlvit ('a photo of a person').",
        default="none")
    person_weights: str | None = doc("owlvit: local folder of the person detector weights "
                                     "(may equal scale_weights).", default=None)
    person_model_id: str = doc("Hub id of the person detector (for the error message).",
                               default="google/owlvit-base-patch32")
    person_box_column: str = doc("boxes-from-column: manifest column holding the person box "
                                 "(null when there is none).", default="person_bbox")
    person_threshold: float = doc("Smallest detector score that counts as a person.",
                                  default=0.3)
    blocking_overlap: float = doc("An image is person-blocked when a person box covers more "
                                  "than this share of the central object's box.", default=0.1)
    person_vlm: str = doc(
        "Vision-language judge asked SynBench's yes/no question about the images where the "
        "person detector found a person (SynBench asks GPT-4o): none, or blip-vqa (BLIP "
        "visual question answering, local weights). Its verdict is recorded beside the "
        "overlap rule's; an answer other than yes or no counts as unknown, never as no.",
        default="none")
    person_vlm_weights: str | None = doc(
        "blip-vqa: local save_pretrained folder of the model and its processor, e.g. "
        "`hf download Salesforce/blip-vqa-base --local-dir <folder>`.", default=None)
    person_vlm_model_id: str = doc("Hub id of the judge (for the error message).",
                                   default="Salesforce/blip-vqa-base")
    person_vlm_question: str = doc(
        "The judge's question; {name} is the image's label_name (underscores become "
        "spaces). The default is SynBench's question to GPT-4o.", default=SYNBENCH_QUESTION)
    # --- class consistency (SynBench Fig. 4) --------------------------------------------------
    consistency_backend: str = doc(
        "Reference classifier: probe-on-real (logistic regression on frozen features of the "
        "configured embedder, fitted on the real dataset's labeled non-test images), "
        "clip-zeroshot (open_clip, local weights), timm (an ImageNet classifier from local "
        "weights, SynBench's ConvNeXt-B; ImageNet classes mapped to the dataset's by "
        "class_table) or none.", default="probe-on-real")
    consistency_weights: str | None = doc(
        "Local weights of the reference classifier. timm: a timm hub folder as downloaded "
        "(`hf download timm/convnext_base.fb_in1k --local-dir <folder>`: config.json beside "
        "model.safetensors) or one .safetensors/.pth file of consistency_model. "
        "clip-zeroshot: an open_clip model folder (open_clip_config.json beside "
        "open_clip_pytorch_model.bin or open_clip_model.safetensors, e.g. `hf download "
        "laion/CLIP-ViT-B-32-laion2B-s34B-b79K --local-dir <folder>`) or one weights file of "
        "the built-in open_clip architecture consistency_model.", default=None)
    consistency_model: str = doc(
        "Architecture of consistency_weights: a timm model name (timm; a folder's config.json "
        "must name the same) or a built-in open_clip one, e.g. ViT-B-32 (clip-zeroshot; "
        "ignored for a model folder).", default="convnext_base")
    consistency_model_id: str = doc("Hub id of the reference classifier, named in the table "
                                    "caption and the missing-weights error.",
                                    default="timm/convnext_base.fb_in1k")
    clip_weights: str | None = doc(
        "CLIP zero-shot class consistency measured beside the reference classifier: an "
        "open_clip model folder (or a weights file of clip_model); None = not measured.",
        default=None)
    clip_model: str = doc("Built-in open_clip architecture of a clip_weights file (a folder's "
                          "open_clip_config.json names its own).", default="ViT-B-32")
    clip_model_id: str = doc("Hub id of the CLIP model, named in the table caption.",
                             default="laion/CLIP-ViT-B-32-laion2B-s34B-b79K")
    clip_template: str = doc("clip-zeroshot: the prompt of each class; {name} is the class "
                             "name, underscores as spaces.", default="a photo of a {name}.")
    probe_holdout: float = doc("probe-on-real: share of the real images held out to measure "
                               "the real data's own consistency (the reference point).",
                               default=0.2)
    probe_c: float = doc("probe-on-real: inverse L2 strength of the logistic regression on "
                         "standardised features.", default=1.0)
    # --- embeddings: diversity, FID/KID, near-duplicates --------------------------------------
    kid_subsets: int = doc("KID: number of random subsets averaged (as in Binkowski et al.).",
                           default=100)
    kid_subset_size: int = doc("KID: images per subset (capped at the smaller set size).",
                               default=1000)
    diversity_resamples: int = doc(
        "Diversity: bootstrap resamples of the images for its 95 % CI (at least 1000 "
        "recommended: the Monte Carlo error of each end is then about 2 % of the CI's "
        "width). Vectorised, one matrix product per block of resamples: 1000 take seconds "
        "for 15k images.", default=1000)
    fid_resamples: int = doc(
        "FID: bootstrap resamples (both sets redrawn) for its 95 % CI. Each costs one "
        "symmetric eigenvalue problem of size min(distinct images, feature dim): a fraction "
        "of a second at 384-d, seconds at 2048-d on a few CPU cores. 200 put the Monte Carlo "
        "error of each end at about 5 % of the CI's width.", default=200)
    duplicate_threshold: float | None = doc(
        "Cosine similarity of embeddings above which two images are near-duplicates (inside "
        "a set) or a test leak. None: calibrated on real data, the duplicate_quantile of the "
        "nearest-neighbour similarity between two disjoint random halves of the real "
        "reference (distinct photographs), printed beside the counts.", default=None)
    duplicate_quantile: float = doc("Quantile of real nearest-neighbour similarities that "
                                    "calibrates duplicate_threshold.", default=0.999)
    fid_features: str = doc(
        "Features of FID/KID: inception (Inception-v3 pool3, 2,048-d, the standard FID "
        "weights from fid_weights and TF1 bilinear resize to 299: FID as published) or "
        "embedding (the audit embedder's features: not comparable with published FIDs, and "
        "the table says so).", default="embedding")
    fid_weights: str | None = doc(
        "inception: the FID Inception weights file pt_inception-2015-12-05-6726825d.pth "
        "(torch-fidelity's or pytorch-fid's release asset).", default=None)
    # --- blank / corrupt ----------------------------------------------------------------------
    constant_std: float = doc("Largest pixel standard deviation (0-255) of a constant image.",
                              default=1.0)
    black_max: int = doc("Largest pixel value of an all-black image.", default=8)
    white_min: int = doc("Smallest pixel value of an all-white image.", default=247)
    # --- execution ----------------------------------------------------------------------------
    quantiles: tuple[float, ...] = doc("Quantiles reported for scale and brightness.",
                                       default=(0.05, 0.25, 0.5, 0.75, 0.95))
    batch_size: int = doc("Images decoded and measured per batch.", default=64)
    workers: int = doc("Decoding threads.", default=4)
    device: str = doc("Device of model-backed measures (cpu, cuda).", default="cpu")
    seed: int = doc("Seed of the probe split, KID subsets and diversity / FID bootstrap "
                    "resamples.", default=0)

    def __post_init__(self) -> None:
        """Reject unknown backends and out-of-range thresholds, naming the key."""
        _one_of("scale_backend", self.scale_backend, SCALE_BACKENDS)
        _one_of("person_backend", self.person_backend, PERSON_BACKENDS)
        _one_of("consistency_backend", self.consistency_backend, CONSISTENCY_BACKENDS)
        _one_of("person_vlm", self.person_vlm, VLM_JUDGES)
        _one_of("fid_features", self.fid_features, FID_FEATURES)
        self._check_person_vlm()
        self._check_models_given()
        for key in ("blocking_overlap", "probe_holdout", "detection_threshold",
                    "person_threshold", "duplicate_quantile"):
            if not 0.0 <= float(getattr(self, key)) <= 1.0:
                raise ConfigError(f"audit {key} must lie in [0, 1].")
        if self.duplicate_threshold is not None and not -1.0 <= self.duplicate_threshold <= 1.0:
            raise ConfigError("audit duplicate_threshold is a cosine similarity in [-1, 1].")
        for key in ("batch_size", "workers", "foreground_size", "kid_subsets",
                    "kid_subset_size", "diversity_resamples", "fid_resamples"):
            if int(getattr(self, key)) < 1:
                raise ConfigError(f"audit {key} must be a positive integer.")

    def selected_models(self) -> dict[str, tuple[str, str, str]]:
        """Weights key -> (the setting that selects its model, that setting's value, hub id).

        Only the measures this configuration selects: e.g. ``scale_weights`` when
        ``scale_backend`` is a detector, ``fid_weights`` when ``fid_features`` is inception.
        """
        wanted: dict[str, tuple[str, str, str]] = {}
        if self.scale_backend in ("owlvit", "yolo-world"):
            wanted["scale_weights"] = ("scale_backend", self.scale_backend, self.scale_model_id)
        if self.person_backend == "owlvit":
            wanted["person_weights"] = ("person_backend", "owlvit", self.person_model_id)
        if self.person_vlm != "none":
            wanted["person_vlm_weights"] = ("person_vlm", self.person_vlm,
                                            self.person_vlm_model_id)
        if self.consistency_backend in ("timm", "clip-zeroshot"):
            wanted["consistency_weights"] = ("consistency_backend", self.consistency_backend,
                                             self.consistency_model_id
                                             if self.consistency_backend == "timm"
                                             else self.clip_model_id)
        if self.fid_features == "inception":
            wanted["fid_weights"] = ("fid_features", "inception",
                                     "pt_inception-2015-12-05-6726825d.pth (torch-fidelity's "
                                     "release asset)")
        return wanted

    def _check_models_given(self) -> None:
        """A measure whose model the study selects but does not give: one sentence, at plan time."""
        for key, (setting, value, model_id) in self.selected_models().items():
            if not getattr(self, key):
                fetch = (f" (`hf download {model_id} --local-dir <folder>`)"
                         if " " not in model_id else "")
                raise ConfigError(f"audit {setting} {value!r} needs a model that the study does "
                                  f"not give: set audit {key} to the local copy of "
                                  f"{model_id}{fetch}, or choose another {setting}.")

    def _check_person_vlm(self) -> None:
        """The judge needs a person detector and a question that names at most ``{name}``."""
        if self.person_vlm != "none" and self.person_backend == "none":
            raise ConfigError(
                f"audit person_vlm {self.person_vlm!r} is asked only about images where the "
                "person detector found a person, but person_backend is 'none'; choose one of "
                f"{[b for b in PERSON_BACKENDS if b != 'none']} or set person_vlm to 'none'.")
        try:
            self.person_vlm_question.format(name="cat")
        except (KeyError, IndexError, ValueError) as error:
            raise ConfigError(f"audit person_vlm_question {self.person_vlm_question!r} may "
                              f"hold only the placeholder {{name}} ({error!r}).") from None


def _one_of(key: str, value: str, options: tuple[str, ...]) -> None:
    if value not in options:
        raise ConfigError(f"audit {key} {value!r} is not known; choose one of {list(options)}.")
