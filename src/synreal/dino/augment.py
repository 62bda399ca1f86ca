"""DINO multi-crop augmentation with torchvision.transforms.v2 (official DataAugmentationDINO).

Two global crops (RandomResizedCrop scale (0.4, 1)) and ``n`` local crops ((0.05, 0.4)), each
with horizontal flip, colour jitter (0.4, 0.4, 0.2, 0.1; p = 0.8) and grayscale (p = 0.2);
Gaussian blur with p = 1.0 on the first global view, 0.1 on the second plus solarisation
(p = 0.2), and 0.5 on local views. The blur's sigma is uniform in (0.1, 2.0) pixels of the
crop for every view, global or local, as official DINO's ``utils.GaussianBlur`` (PIL
``ImageFilter.GaussianBlur(radius)``, whose radius is the standard deviation) draws it: not
scaled by crop size, so a 96 px local crop is blurred as strongly, in pixels, as a 224 px one.

Each crop can come from a different source image (MixDiff: some views from the real image,
some from its synthetic variation); :class:`ViewPlan` says which.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.transforms import InterpolationMode, v2

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Blur sigma range in pixels of the crop (official ``GaussianBlur(radius_min, radius_max)``).
BLUR_SIGMA = (0.1, 2.0)
#: Blur probability of global view 1, global view 2 and every local view (main_dino.py).
BLUR_P = {"global1": 1.0, "global2": 0.1, "local": 0.5}
#: Solarisation probability per view: the second global view only.
SOLARIZE_P = {"global1": 0.0, "global2": 0.2, "local": 0.0}


def blur_kernel_size(size: int) -> int:
    """Odd Gaussian kernel side covering +-3 sigma of the largest sigma (13 px).

    Clipped to ``2 * size - 1`` on crops smaller than the kernel (reflect padding needs a
    pad below the image side); 96 and 224 px crops get the full kernel.
    """
    return min(2 * round(3 * BLUR_SIGMA[1]) + 1, 2 * size - 1)


def view_transform(size: int, scale: tuple[float, float], blur_p: float, solarize_p: float,
                   mean=IMAGENET_MEAN, std=IMAGENET_STD) -> v2.Compose:
    """One view: uint8 ``(3, H, W)`` tensor -> normalised float ``(3, size, size)``."""
    kernel = blur_kernel_size(size)
    return v2.Compose([
        v2.RandomResizedCrop(size, scale=scale, interpolation=InterpolationMode.BICUBIC,
                             antialias=True),
        v2.RandomHorizontalFlip(p=0.5),
        v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8),
        v2.RandomGrayscale(p=0.2),
        v2.RandomApply([v2.GaussianBlur(kernel, sigma=BLUR_SIGMA)], p=blur_p),
        v2.RandomSolarize(threshold=128, p=solarize_p),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean, std),
    ])


@dataclass(frozen=True)
class ViewPlan:
    """Which source image (index into a sample's images) each crop is cut from.

    ``global_sources`` has 2 entries (the teacher's views), ``local_sources`` one per local
    crop. A single-image sample uses source 0 throughout; MixDiff uses 0 = real, 1 = synthetic.
    With one global crop of each, the real one always takes DINO's global view 1 recipe (blur
    always) and the synthetic one view 2's (blur 0.1, solarise 0.2), the order of MixDiff's two
    images; the paper does not say otherwise. (Drawing the order per sample was tried: it cost
    the demo's MixDiff run its k-NN lead over random init in tests/dino/test_learns.py, 0.533
    against 0.511.)
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
        self.globals = tuple(view_transform(global_size, global_scale, BLUR_P[view],
                                            SOLARIZE_P[view]) for view in ("global1", "global2"))
        self.local = view_transform(local_size, local_scale, BLUR_P["local"],
                                    SOLARIZE_P["local"])

    def __call__(self, images: list[torch.Tensor]) -> list[torch.Tensor]:
        """Crops in order: global 1, global 2, locals; each from its planned source image."""
        crops = [t(images[s]) for t, s in zip(self.globals, self.plan.global_sources,
                                              strict=True)]
        crops += [self.local(images[s]) for s in self.plan.local_sources]
        return crops
