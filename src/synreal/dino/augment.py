"""DINO multi-crop augmentation with torchvision.transforms.v2 (official DataAugmentationDINO).

Two global crops (RandomResizedCrop scale (0.4, 1)) and ``n`` local crops ((0.05, 0.4)), each
with horizontal flip, colour jitter (0.4, 0.4, 0.2, 0.1; p = 0.8) and grayscale (p = 0.2);
Gaussian blur with p = 1.0 on the first global view, 0.1 on the second plus solarisation
(p = 0.2), and 0.5 on local views. Blur sigma (0.1-2.0 px at 224 px in the official code) is
scaled with the crop size so small demo crops are blurred as much, relatively, as 224 px ones.

Each crop can come from a different source image (MixDiff: some views from the real image,
some from its synthetic variation); :class:`ViewPlan` says which.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.transforms import InterpolationMode, v2

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def view_transform(size: int, scale: tuple[float, float], blur_p: float, solarize_p: float,
                   mean=IMAGENET_MEAN, std=IMAGENET_STD) -> v2.Compose:
    """One view: uint8 ``(3, H, W)`` tensor -> normalised float ``(3, size, size)``."""
    sigma = (0.1 * size / 224, 2.0 * size / 224)
    kernel = max(3, 2 * round(3 * sigma[1]) + 1)
    return v2.Compose([
        v2.RandomResizedCrop(size, scale=scale, interpolation=InterpolationMode.BICUBIC,
                             antialias=True),
        v2.RandomHorizontalFlip(p=0.5),
        v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8),
        v2.RandomGrayscale(p=0.2),
        v2.RandomApply([v2.GaussianBlur(kernel, sigma=sigma)], p=blur_p),
        v2.RandomSolarize(threshold=128, p=solarize_p),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean, std),
    ])


@dataclass(frozen=True)
class ViewPlan:
    """Which source image (index into a sample's images) each crop is cut from.

    ``global_sources`` has 2 entries (the teacher's views), ``local_sources`` one per local
    crop. A single-image sample uses source 0 throughout; MixDiff uses 0 = real, 1 = synthetic.
    """

    global_sources: tuple[int, ...]
    local_sources: tuple[int, ...]

    @classmethod
    def single(cls, local_crops: int) -> ViewPlan:
        """Every crop from the one image of a sample."""
        return cls((0, 0), (0,) * local_crops)

    @classmethod
    def mixdiff(cls, real_global: int, real_local: int, synthetic_global: int,
                synthetic_local: int) -> ViewPlan:
        """Crops split between the real image (0) and its synthetic variation (1)."""
        return cls((0,) * real_global + (1,) * synthetic_global,
                   (0,) * real_local + (1,) * synthetic_local)

    def checked(self) -> ViewPlan:
        """The plan itself once valid; a ValueError unless it has exactly 2 global crops."""
        if len(self.global_sources) != 2:
            raise ValueError("DINO's teacher sees exactly 2 global crops; the view split "
                             f"gives {len(self.global_sources)}.")
        return self

    @property
    def n_crops(self) -> int:
        """Total crops per sample (student views)."""
        return len(self.global_sources) + len(self.local_sources)


class MultiCrop:
    """Cut ``2 + n_local`` augmented crops from a sample's source images."""

    def __init__(self, global_size: int, local_size: int, global_scale: tuple[float, float],
                 local_scale: tuple[float, float], plan: ViewPlan) -> None:
        self.plan = plan.checked()
        self.globals = (view_transform(global_size, global_scale, 1.0, 0.0),
                        view_transform(global_size, global_scale, 0.1, 0.2))
        self.local = view_transform(local_size, local_scale, 0.5, 0.0)

    def __call__(self, images: list[torch.Tensor]) -> list[torch.Tensor]:
        """Crops in order: global 1, global 2, locals; each from its planned source image."""
        crops = [t(images[s]) for t, s in zip(self.globals, self.plan.global_sources,
                                              strict=True)]
        crops += [self.local(images[s]) for s in self.plan.local_sources]
        return crops
