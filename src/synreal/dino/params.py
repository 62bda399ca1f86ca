"""Every DINO hyper-parameter, with the official default (facebookresearch/dino main_dino.py).

Differences from the official code are deliberate and documented per field: the teacher
temperature warm-up defaults to 0 epochs as in the official *code* (its help text says 30),
and precision is chosen per device (bf16 on GPU, fp32 on CPU) instead of fp16 by default,
because fp16 overflow is a known source of NaN losses in DINO.

Small custom datasets (a few thousand images) are where users of the official code report
collapse or a flat loss; the fixes are a lower teacher temperature, a smaller ``out_dim``,
a different teacher momentum and fp32. The demo study uses them (``config/config.yaml``).
"""

from __future__ import annotations

from dataclasses import dataclass

from synreal.errors import ConfigError
from synreal.params import doc

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
AUGMENTATIONS = ("cpu", "batched")


@dataclass(frozen=True)
class DinoParams:
    """DINO pretraining hyper-parameters (official defaults unless stated)."""

    # --- model ---------------------------------------------------------------------------
    arch: str = doc("Backbone from synreal.dino.backbones: vit_small_patch16_224 (the study), "
                    "vit_base_patch16_224, or for CPU demos vit_tiny_demo (patch 8) and "
                    "vit_tiny_demo_avgpool (the same, embedding its mean patch token).",
                    default="vit_small_patch16_224")
    drop_path_rate: float = doc("Stochastic depth rate of the student.", default=0.1)
    out_dim: int = doc("Prototypes K of the DINO head (official 65536). Smaller (1k-4k) helps "
                       "small datasets avoid collapse.", default=65536)
    norm_last_layer: bool = doc("Fix the weight-norm scale of the last head layer (official "
                                "True; False helps ViT-S performance but can be unstable).",
                                default=True)
    use_bn_in_head: bool = doc("BatchNorm in the head MLP (official False for ViTs).",
                               default=False)
    head_hidden_dim: int = doc("Width of the head's two hidden layers (official 2048). The head "
                               "runs once per view, so on a small ViT it costs as much as the "
                               "backbone: the CPU demo uses 512.", default=2048)
    head_bottleneck_dim: int = doc("Width of the head's bottleneck before the prototypes "
                                   "(official 256).", default=256)
    # --- teacher ---------------------------------------------------------------------------
    momentum_teacher: float = doc("Base EMA momentum of the teacher, raised to 1 by a cosine "
                                  "schedule (official 0.996 at batch 1024). The teacher averages "
                                  "the student over about 1 / (1 - m) steps: 250 steps = 0.2 "
                                  "epochs of ImageNet for 0.996 at batch 1024 "
                                  "(teacher_window_epochs). Keeping 0.2 epochs at batch 64 on "
                                  "AFHQ's 14,630 images (228 steps/epoch) gives 0.978; the "
                                  "official help's 0.9995 for small batches would average over "
                                  "2,000 steps, 8.8 AFHQ epochs. A run of S steps leaves the "
                                  "teacher about exp(-(1 - m) S / 2) of its start "
                                  "(teacher_start_share): 90 % for 0.996 over the demo's 50 "
                                  "steps, 60 % for its 0.98.", default=0.996)
    warmup_teacher_temp: float = doc("Initial teacher temperature.", default=0.04)
    teacher_temp: float = doc("Final teacher temperature (official 0.04; above 0.07 is "
                              "unstable). Lower it if the loss stays flat.", default=0.04)
    warmup_teacher_temp_epochs: int = doc("Linear warm-up of the teacher temperature. The "
                                          "official help text says 30 but its code defaults "
                                          "to 0; we take the code's value.", default=0)
    student_temp: float = doc("Student temperature.", default=0.1)
    center_momentum: float = doc("EMA momentum of the teacher-output centre.", default=0.9)
    # --- optimisation ----------------------------------------------------------------------
    epochs: int = doc("Training epochs (main_dino.py's default 100, ImageNet; the study "
                      "proposal budgets 2-3 GPU-days a model, far more epochs at AFHQ scale).",
                      default=100)
    batch_size: int = doc("Images per step over all GPUs, split evenly between them (the "
                          "official code counts 64 per GPU: 16 GPUs = 1024). Global, so that a "
                          "run's key means the same training on any number of GPUs.",
                          default=64)
    lr: float = doc("Peak learning rate at batch 256; scaled linearly by total batch / 256.",
                    default=0.0005)
    min_lr: float = doc("Final learning rate of the cosine schedule.", default=1e-6)
    warmup_epochs: int = doc("Linear learning-rate warm-up epochs.", default=10)
    weight_decay: float = doc("Initial weight decay (cosine schedule).", default=0.04)
    weight_decay_end: float = doc("Final weight decay.", default=0.4)
    clip_grad: float = doc("Max gradient norm per parameter tensor (0 disables).", default=3.0)
    freeze_last_layer: int = doc("Epochs during which the head's last layer is not updated.",
                                 default=1)
    precision: str = doc("auto (bf16 autocast on GPU, fp32 on CPU), fp32, bf16 or fp16 (with "
                         "loss scaling; fp16 NaNs are a known DINO failure).", default="auto")
    torch_compile: bool = doc("Compile the student and teacher networks with torch.compile. "
                              "On a GPU the steps get faster after a one-off compile of a "
                              "minute or two; on a CPU it needs a C++ compiler and rarely "
                              "pays off for short runs. Without stochastic depth "
                              "(drop_path_rate 0) results equal eager mode up to float "
                              "rounding; with it the random draws differ from eager mode's.",
                              default=False)
    # --- multi-crop ------------------------------------------------------------------------
    global_crop_size: int = doc("Side of the 2 global crops (224 at full scale).", default=224)
    global_crops_scale: tuple[float, float] = doc("RandomResizedCrop area range of global "
                                                  "crops.", default=(0.4, 1.0))
    local_crops_number: int = doc("Number of small local crops (0 disables multi-crop).",
                                  default=8)
    local_crop_size: int = doc("Side of local crops (96 at full scale).", default=96)
    local_crops_scale: tuple[float, float] = doc("RandomResizedCrop area range of local crops.",
                                                 default=(0.05, 0.4))
    augment: str = doc("Where multi-crop augmentation runs. cpu: per image in DataLoader "
                       "workers with torchvision (the official path). batched: the set is "
                       "decoded once into memory (see decoded_size) and whole batches are "
                       "augmented on the training device with per-sample parameters; needed "
                       "to feed a GPU at thousands of images/s, but the data must fit in "
                       "memory and resampling is bilinear instead of bicubic.", default="cpu")
    decoded_size: int = doc("Working resolution of both augment paths: each image is first "
                            "brought to a side x side square (short side resized with the "
                            "filter generation uses, centre-cropped), then cropped. batched "
                            "holds the set decoded once on the training device (each GPU of "
                            "a job holds the whole set): 3 * side^2 bytes per image, 192 KiB "
                            "at 256, 2.9 GB for 15k images. 0 = 8/7 of global_crop_size (256 "
                            "for 224).", default=0)
    # --- bookkeeping -----------------------------------------------------------------------
    seed: int = doc("Seed of initialisation, data order and augmentations.", default=0)
    checkpoint_every: int = doc("Save a resumable checkpoint every N steps (and at the end).",
                                default=500)
    num_workers: int = doc("DataLoader worker processes decoding and augmenting images.",
                           default=8)
    eval_resize: int = doc("Evaluation preprocessing stored with the weights: resize the short "
                           "side to this (256 for 224 crops), then centre-crop global_crop_size.",
                           default=256)

    def __post_init__(self) -> None:
        """Reject values the recipe cannot run with, naming the key."""
        if self.precision not in PRECISIONS:
            raise ConfigError(f"pretrain precision {self.precision!r} is not one of "
                              f"{list(PRECISIONS)}.")
        if self.augment not in AUGMENTATIONS:
            raise ConfigError(f"pretrain augment {self.augment!r} is not one of "
                              f"{list(AUGMENTATIONS)}.")
        if self.decoded_size < 0:
            raise ConfigError("pretrain decoded_size must be >= 0 (0 = automatic).")
        for key in ("epochs", "batch_size", "out_dim", "head_hidden_dim", "head_bottleneck_dim",
                    "global_crop_size", "local_crop_size", "checkpoint_every"):
            if int(getattr(self, key)) < 1:
                raise ConfigError(f"pretrain {key} must be a positive integer.")
        if self.local_crops_number < 0 or self.warmup_teacher_temp_epochs < 0:
            raise ConfigError("pretrain local_crops_number and warmup_teacher_temp_epochs "
                              "must be >= 0.")
        if self.warmup_teacher_temp_epochs > self.epochs:
            raise ConfigError("pretrain warmup_teacher_temp_epochs cannot exceed epochs.")


# --- the teacher's averaging window, and RealTune's schedule ---------------------------------

#: RealTune / SynTune ssl: DINO continued from a finished run for a short schedule. SynBench
#: tunes ViTs for 30 epochs on ~3 % of ImageNet (its DINO Table 10: 7.7 % of ImageNet-100);
#: here 30 epochs of the tuning subset (10 % of AFHQ: 1,463 images, 22 steps/epoch at batch
#: 64, 660 steps). Pretraining's momentum (0.9995 in the old study file: a 2,000-step window)
#: would leave the exported teacher ~95 % its start after 220 steps; 0.99 averages over 100
#: steps (4.5 subset epochs, 15 % of the run) and leaves it ~4 % its start after 660. The lr
#: is half of pretraining's (base 2.5e-4 at batch 256), warmed up over the first 10 % of
#: epochs as pretraining does, then cosine to min_lr.
REALTUNE_SCHEDULE = {"epochs": 30, "warmup_epochs": 3, "lr": 0.00025, "momentum_teacher": 0.99}
#: Share of its starting weights above which a tuned teacher is reported as barely moved.
STILL_SHARE = 0.5


def teacher_window_steps(momentum: float) -> float:
    """Steps the EMA teacher averages the student over: ``1 / (1 - m)`` (inf for m = 1)."""
    return float("inf") if momentum >= 1 else 1.0 / (1.0 - momentum)


def teacher_window_epochs(momentum: float, batch_size: int, n_images: int) -> float:
    """The teacher's averaging window in epochs of a run on ``n_images`` at ``batch_size``.

    ``1 / (1 - m)`` steps over the run's ``n_images // batch_size`` steps per epoch (the last
    partial batch is dropped): 0.2 for the official 0.996 at batch 1024 on ImageNet's
    1,281,167 images; 8.8 for 0.9995 at batch 64 on AFHQ's 14,630.
    """
    steps_per_epoch = n_images // batch_size
    if steps_per_epoch < 1:
        raise ConfigError(f"{n_images} images are fewer than one batch of {batch_size}.")
    return teacher_window_steps(momentum) / steps_per_epoch


def momentum_for_window(window_epochs: float, batch_size: int, n_images: int) -> float:
    """The base momentum whose averaging window is ``window_epochs`` of such a run."""
    steps = window_epochs * (n_images // batch_size)
    if steps <= 1:
        raise ConfigError(f"a window of {window_epochs} epochs is at most one step at batch "
                          f"{batch_size} on {n_images} images.")
    return 1.0 - 1.0 / steps


def teacher_start_share(params: DinoParams, n_images: int) -> float:
    """Weight of the teacher's starting parameters in the teacher a run exports.

    The product of the run's momentum schedule (cosine from ``momentum_teacher`` to 1 over
    ``epochs`` of ``n_images // batch_size`` steps): the EMA teacher is this share its start
    plus the rest an average of the student's trajectory.
    """
    import numpy as np

    from synreal.dino.schedules import cosine_schedule

    steps_per_epoch = n_images // params.batch_size
    schedule = cosine_schedule(params.momentum_teacher, 1.0, params.epochs, steps_per_epoch)
    return float(np.prod(schedule))


def realtune_recipe(pretrain: dict, overrides: dict, where: str = "realtune.ssl.dino") -> dict:
    """A RealTune run's DINO recipe: the pretraining run's, RealTune's schedule, overrides.

    Args:
        pretrain: the tuned run's resolved DINO params.
        overrides: ``realtune.ssl.dino`` of the config.
        where: the config key of ``overrides``, named in errors.

    Raises:
        ConfigError: a learning-rate warm-up as long as the whole schedule (no decay left).
    """
    recipe = {**pretrain, **REALTUNE_SCHEDULE, **overrides}
    if 0 < int(recipe["epochs"]) <= int(recipe["warmup_epochs"]):
        raise ConfigError(f"{where}.warmup_epochs is {recipe['warmup_epochs']} but RealTune "
                          f"runs {recipe['epochs']} epochs; set {where}.warmup_epochs below "
                          f"{where}.epochs (RealTune's default: "
                          f"{REALTUNE_SCHEDULE['warmup_epochs']} of "
                          f"{REALTUNE_SCHEDULE['epochs']}).")
    return recipe


def check_realtune_data(params: DinoParams, n_images: int, where: str) -> None:
    """Fail in one sentence when the tuning subset cannot fill one batch.

    ``where`` names the subset (e.g. ``realtune.ssl.params.fraction 0.1 of afhq``).
    """
    if n_images < params.batch_size:
        raise ConfigError(f"{where} gives {n_images} images, fewer than one batch of "
                          f"{params.batch_size} (realtune.ssl.dino.batch_size); raise "
                          "realtune.ssl.params.fraction or lower realtune.ssl.dino.batch_size.")


# --- what a table caption says about the recipe --------------------------------------------

#: Recipe settings a caption names when a run departs from main_dino.py's defaults. Left out:
#: what the caption states anyway (arch, epochs, seed), and how a run is computed rather than
#: what it learns (precision, compilation, augmentation path, workers, checkpoints).
RECIPE_KEYS = ("batch_size", "lr", "min_lr", "warmup_epochs", "weight_decay",
               "weight_decay_end", "clip_grad", "freeze_last_layer", "drop_path_rate",
               "out_dim", "norm_last_layer", "use_bn_in_head", "head_hidden_dim",
               "head_bottleneck_dim", "momentum_teacher", "warmup_teacher_temp", "teacher_temp",
               "warmup_teacher_temp_epochs", "student_temp", "center_momentum",
               "global_crop_size", "global_crops_scale", "local_crops_number",
               "local_crop_size", "local_crops_scale", "eval_resize")


def recipe_changes(dino: dict) -> list[str]:
    """``"key value"`` for each setting of a resolved recipe unlike main_dino.py's default.

    So that a table never calls a run DINO's recipe where it is not: the demo's small-data
    settings, a study's teacher momentum, a rehearsal's shortened schedule.
    """
    from dataclasses import fields

    defaults = {f.name: f.default for f in fields(DinoParams)}
    changed = []
    for key in RECIPE_KEYS:
        value, default = dino.get(key, defaults[key]), defaults[key]
        if isinstance(default, tuple):
            value = tuple(value)
        if value != default:
            shown = list(value) if isinstance(value, tuple) else value
            changed.append(f"{key} {shown}")
    return changed
