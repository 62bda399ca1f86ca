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
    # --- teacher ---------------------------------------------------------------------------
    momentum_teacher: float = doc("Base EMA momentum of the teacher, raised to 1 by a cosine "
                                  "schedule (0.996; 0.9995 for small batches). A run of S steps "
                                  "leaves the teacher about exp(-(1 - m) S / 2) of its random "
                                  "init: 90 % for 0.996 over the demo's 50 steps, 60 % for its "
                                  "0.98.", default=0.996)
    warmup_teacher_temp: float = doc("Initial teacher temperature.", default=0.04)
    teacher_temp: float = doc("Final teacher temperature (official 0.04; above 0.07 is "
                              "unstable). Lower it if the loss stays flat.", default=0.04)
    warmup_teacher_temp_epochs: int = doc("Linear warm-up of the teacher temperature. The "
                                          "official help text says 30 but its code defaults "
                                          "to 0; we take the code's value.", default=0)
    student_temp: float = doc("Student temperature.", default=0.1)
    center_momentum: float = doc("EMA momentum of the teacher-output centre.", default=0.9)
    # --- optimisation ----------------------------------------------------------------------
    epochs: int = doc("Training epochs (the proposal: 100+ at AFHQ scale).", default=100)
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
        for key in ("epochs", "batch_size", "out_dim", "global_crop_size", "local_crop_size",
                    "checkpoint_every"):
            if int(getattr(self, key)) < 1:
                raise ConfigError(f"pretrain {key} must be a positive integer.")
        if self.local_crops_number < 0 or self.warmup_teacher_temp_epochs < 0:
            raise ConfigError("pretrain local_crops_number and warmup_teacher_temp_epochs "
                              "must be >= 0.")
        if self.warmup_teacher_temp_epochs > self.epochs:
            raise ConfigError("pretrain warmup_teacher_temp_epochs cannot exceed epochs.")
