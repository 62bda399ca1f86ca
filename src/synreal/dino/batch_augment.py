"""DINO multi-crop augmentation on whole batches on the training device (GPU or CPU).

The same recipe as :mod:`synreal.dino.augment` (the official DataAugmentationDINO), but
computed for a batch of decoded uint8 images at once with *per-sample* random parameters,
so a GPU is not fed by dozens of CPU workers each augmenting one image at a time:

* RandomResizedCrop with torchvision's sampling rule (10 tries of an area fraction in
  ``scale`` and a log-uniform aspect ratio in (3/4, 4/3), else the central crop clipped to the
  ratio range), resampled with :func:`torchvision.ops.roi_align` (bilinear, averaging
  ``ceil(crop / size)`` samples per output pixel when shrinking: an area-antialiased
  bilinear resize instead of torchvision's antialiased bicubic);
* horizontal flip (p = 0.5);
* colour jitter (brightness 0.4, contrast 0.4, saturation 0.2, hue 0.1; p = 0.8), the four
  in a random order per sample as torchvision does;
* grayscale (p = 0.2); Gaussian blur (p = 1.0 / 0.1 / 0.5 on global 1 / global 2 / local
  views, sigma uniform in (0.1, 2.0) pixels whatever the crop size, as official DINO's PIL
  blur, reflect padding); solarisation (p = 0.2, second global view only); ImageNet
  normalisation.

Every op works in float32 in [0, 1]; torchvision's per-sample path rounds to uint8 after
each op, so single pixels differ by up to about 1/255 per op. Random parameters are drawn on
the CPU from a :class:`torch.Generator`, so a seed gives the same crops on any device.

Example::

    aug = BatchMultiCrop(224, 96, (0.4, 1.0), (0.05, 0.4), ViewPlan.single(8))
    crops = aug([images_uint8_on_gpu], torch.Generator().manual_seed(0))  # 10 x (B, 3, s, s)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

from synreal.dino.augment import (
    BLUR_P,
    BLUR_SIGMA,
    IMAGENET_MEAN,
    IMAGENET_STD,
    SOLARIZE_P,
    ViewPlan,
    blur_kernel_size,
)

RATIO = (3 / 4, 4 / 3)
#: Grayscale weights of torchvision's rgb_to_grayscale (ITU-R 601-2 luma).
LUMA = (0.2989, 0.587, 0.114)
JITTER = (0.4, 0.4, 0.2, 0.1)  # brightness, contrast, saturation, hue


# ============ random parameters =======================================================

def sample_crop_boxes(n: int, height: int, width: int, scale: tuple[float, float],
                      generator: torch.Generator, ratio: tuple[float, float] = RATIO,
                      attempts: int = 10) -> torch.Tensor:
    """``n`` RandomResizedCrop boxes ``(top, left, h, w)`` (int64, ``(n, 4)``), torchvision's rule.

    As ``v2.RandomResizedCrop.make_params``: up to 10 tries of an area ``U(scale) * H * W``
    and an aspect ``exp(U(log ratio))`` with ``w = round(sqrt(area * aspect))``,
    ``h = round(sqrt(area / aspect))``; the first that fits is placed uniformly. When none
    fits, the whole image clipped to the ratio range, centred. Vectorised over ``n``.
    """
    area = height * width
    target = area * torch.empty(n, attempts).uniform_(*scale, generator=generator)
    log_ratio = torch.empty(n, attempts).uniform_(math.log(ratio[0]), math.log(ratio[1]),
                                                  generator=generator)
    aspect = torch.exp(log_ratio)
    w = torch.round(torch.sqrt(target * aspect)).long()
    h = torch.round(torch.sqrt(target / aspect)).long()
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = torch.argmax(fits.long(), dim=1)  # index of the first fitting try (0 if none)
    found = fits.any(dim=1)
    rows = torch.arange(n)
    h, w = h[rows, first], w[rows, first]
    # fallback of torchvision: central crop with the aspect clipped to the ratio range
    in_ratio = width / height
    if in_ratio < min(ratio):
        fb_w, fb_h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        fb_h, fb_w = height, int(round(height * max(ratio)))
    else:
        fb_w, fb_h = width, height
    h = torch.where(found, h, torch.full_like(h, fb_h))
    w = torch.where(found, w, torch.full_like(w, fb_w))
    u = torch.rand(n, 2, generator=generator)
    top = torch.where(found, (u[:, 0] * (height - h + 1)).long(),
                      torch.full_like(h, (height - fb_h) // 2))
    left = torch.where(found, (u[:, 1] * (width - w + 1)).long(),
                       torch.full_like(w, (width - fb_w) // 2))
    return torch.stack([top, left, h, w], dim=1)


@dataclass(frozen=True)
class ViewParams:
    """Per-sample random parameters of one view of a batch (all CPU tensors of length B).

    ``boxes`` is ``(B, 4)`` (top, left, h, w); ``jitter_factors`` ``(B, 4)`` (brightness,
    contrast, saturation, hue); ``jitter_order`` ``(B, 4)`` a permutation of 0..3 per sample;
    ``sigma`` is the blur sigma; the rest are boolean masks of the ops applied.
    """

    boxes: torch.Tensor
    flip: torch.Tensor
    jitter: torch.Tensor
    jitter_factors: torch.Tensor
    jitter_order: torch.Tensor
    grayscale: torch.Tensor
    blur: torch.Tensor
    sigma: torch.Tensor
    solarize: torch.Tensor


# ============ ops on batches (float images in [0, 1], (B, 3, H, W)) ===================

def _column(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.to(device=like.device, dtype=like.dtype).view(-1, 1, 1, 1)


def grayscale(images: torch.Tensor) -> torch.Tensor:
    """Luma ``(B, 1, H, W)`` with torchvision's weights."""
    r, g, b = images.unbind(dim=1)
    return (LUMA[0] * r + LUMA[1] * g + LUMA[2] * b).unsqueeze(1)


def adjust_brightness(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Scale by a per-sample factor, clamped to [0, 1] (torchvision adjust_brightness)."""
    return (images * _column(factors, images)).clamp_(0, 1)


def adjust_contrast(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Blend with the per-image mean luma (torchvision adjust_contrast)."""
    mean = grayscale(images).mean(dim=(1, 2, 3), keepdim=True)
    f = _column(factors, images)
    return (f * images + (1 - f) * mean).clamp_(0, 1)


def adjust_saturation(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Blend with the per-pixel luma (torchvision adjust_saturation)."""
    f = _column(factors, images)
    return (f * images + (1 - f) * grayscale(images)).clamp_(0, 1)


def _rgb_to_hsv(images: torch.Tensor) -> torch.Tensor:
    # torchvision's _rgb_to_hsv (after Pillow's Convert.c), written without in-place tricks
    r, g, b = images.unbind(dim=1)
    minc, maxc = torch.aminmax(images, dim=1)
    equal = maxc == minc
    span = maxc - minc
    s = span / torch.where(equal, torch.ones_like(maxc), maxc)
    divisor = torch.where(equal, torch.ones_like(span), span)
    rc, gc, bc = (maxc - r) / divisor, (maxc - g) / divisor, (maxc - b) / divisor
    is_r = maxc == r
    is_g = (maxc == g) & ~is_r
    is_b = ~is_r & ~is_g
    h = (bc - gc) * is_r + (2.0 + rc - bc) * is_g + (4.0 + gc - rc) * is_b
    h = torch.fmod(h / 6.0 + 1.0, 1.0)
    return torch.stack((h, s, maxc), dim=1)


def _hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    # closed form of the sector table torchvision gathers from (cheaper on large batches):
    # channel n in (r, g, b) = v - v s clamp(min(k, 4 - k), 0, 1), k = (n + 6 h) mod 6
    h, s, v = hsv[:, 0:1], hsv[:, 1:2], hsv[:, 2:3]
    n = torch.tensor([5.0, 3.0, 1.0], device=hsv.device, dtype=hsv.dtype).view(1, 3, 1, 1)
    k = torch.remainder(n + 6 * h, 6)
    return v - v * s * torch.minimum(k, 4 - k).clamp(0, 1)


def adjust_hue(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Rotate the HSV hue by a per-sample factor in [-0.5, 0.5] (torchvision adjust_hue)."""
    hsv = _rgb_to_hsv(images)
    h = (hsv[:, 0] + factors.to(images.device, images.dtype).view(-1, 1, 1)).remainder(1.0)
    return _hsv_to_rgb(torch.stack((h, hsv[:, 1], hsv[:, 2]), dim=1))


JITTER_OPS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


def gaussian_kernels(sigma: torch.Tensor, size: int) -> torch.Tensor:
    """Normalised 1-D Gaussian kernels ``(B, size)``, one per sigma (torchvision's)."""
    half = (size - 1) * 0.5
    x = torch.linspace(-half, half, size, dtype=sigma.dtype, device=sigma.device)
    pdf = torch.exp(-0.5 * (x / sigma.view(-1, 1)) ** 2)
    return pdf / pdf.sum(dim=1, keepdim=True)


def gaussian_blur(images: torch.Tensor, sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Separable blur with a per-sample sigma, reflect padding (torchvision gaussian_blur)."""
    b, c, h, w = images.shape
    kernels = gaussian_kernels(sigma.to(images.device, images.dtype), kernel_size)
    weight = kernels.repeat_interleave(c, dim=0)  # (B*C, k): one kernel per channel
    pad = kernel_size // 2
    x = F.pad(images.reshape(1, b * c, h, w), (pad, pad, pad, pad), mode="reflect")
    x = F.conv2d(x, weight.view(b * c, 1, 1, kernel_size), groups=b * c)
    x = F.conv2d(x, weight.view(b * c, 1, kernel_size, 1), groups=b * c)
    return x.view(b, c, h, w)


def solarize(images: torch.Tensor) -> torch.Tensor:
    """Invert pixels >= 128/255 (torchvision RandomSolarize(threshold=128) on uint8)."""
    return torch.where(images >= 128 / 255, 1 - images, images)


def resized_crops(images: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Cut ``boxes`` (top, left, h, w), one per sample, resized to float ``(B, 3, size, size)``."""
    boxes = boxes.to(images.device, torch.float32)
    top, left, h, w = boxes.unbind(dim=1)
    rois = torch.stack([torch.arange(len(boxes), device=images.device, dtype=torch.float32),
                        left, top, left + w, top + h], dim=1)
    return roi_align(images, rois.to(images.dtype), (size, size), spatial_scale=1.0,
                     sampling_ratio=-1, aligned=True)


# ============ one view, then the multi-crop ===========================================

class BatchView:
    """One DINO view (crop size, scale range, blur and solarise probabilities) of a batch."""

    def __init__(self, size: int, scale: tuple[float, float], blur_p: float,
                 solarize_p: float) -> None:
        self.size, self.scale = size, scale
        self.blur_p, self.solarize_p = blur_p, solarize_p
        # the sigma range and kernel of augment.view_transform (official: not size-scaled)
        self.sigma = BLUR_SIGMA
        self.kernel = blur_kernel_size(size)

    def sample(self, n: int, height: int, width: int, generator: torch.Generator) -> ViewParams:
        """Random parameters of ``n`` samples drawn from ``generator`` (CPU)."""
        def coin(p: float) -> torch.Tensor:
            return torch.rand(n, generator=generator) < p

        bounds = torch.tensor([[1 - JITTER[0], 1 + JITTER[0]], [1 - JITTER[1], 1 + JITTER[1]],
                               [1 - JITTER[2], 1 + JITTER[2]], [-JITTER[3], JITTER[3]]])
        u = torch.rand(n, 4, generator=generator)
        return ViewParams(
            boxes=sample_crop_boxes(n, height, width, self.scale, generator),
            flip=coin(0.5), jitter=coin(0.8),
            jitter_factors=bounds[:, 0] + u * (bounds[:, 1] - bounds[:, 0]),
            jitter_order=torch.argsort(torch.rand(n, 4, generator=generator), dim=1),
            grayscale=coin(0.2), blur=coin(self.blur_p),
            sigma=torch.empty(n).uniform_(*self.sigma, generator=generator),
            solarize=coin(self.solarize_p))

    def apply(self, images: torch.Tensor, p: ViewParams) -> torch.Tensor:
        """Augment float images in [0, 1] ``(B, 3, H, W)``; returns ``(B, 3, size, size)``.

        Each conditional op runs only on the samples it applies to (index, op, scatter back),
        so a batch costs about one evaluation of each op whatever the probabilities.
        """
        x = resized_crops(images, p.boxes, self.size)
        x = torch.where(_column(p.flip, x).bool(), x.flip(-1), x)
        for position in range(4):
            for op_index, op in enumerate(JITTER_OPS):
                chosen = p.jitter & (p.jitter_order[:, position] == op_index)
                x = _apply_to(x, chosen, lambda y, idx, o=op, k=op_index:
                              o(y, p.jitter_factors[idx, k]))
        x = _apply_to(x, p.grayscale, lambda y, idx: grayscale(y).expand(-1, 3, -1, -1))
        x = _apply_to(x, p.blur, lambda y, idx: gaussian_blur(y, p.sigma[idx], self.kernel))
        return _apply_to(x, p.solarize, lambda y, idx: solarize(y))


def _apply_to(x: torch.Tensor, mask: torch.Tensor, op) -> torch.Tensor:
    """``x`` with ``op(x[mask], cpu_indices)`` written in place into the rows ``mask`` sets.

    ``mask`` lives on the CPU, so choosing the rows never waits for the device; ``x`` is a
    fresh tensor of :meth:`BatchView.apply`, never the caller's images.
    """
    idx = torch.nonzero(mask).flatten()
    if len(idx) == 0:
        return x
    rows = idx.to(x.device, non_blocking=True)
    x[rows] = op(x[rows], idx).to(x.dtype)
    return x


class BatchMultiCrop:
    """Batched :class:`~synreal.dino.augment.MultiCrop`: ``2 + n_local`` crops of a batch.

    Call with one uint8 ``(B, 3, H, W)`` batch per source image of the samples (1, or 2 for
    MixDiff: real, synthetic), all on the same device, and a CPU ``torch.Generator``; returns
    float32 normalised crops ``(B, 3, size, size)``: global 1, global 2, then the locals, each
    cut from the source that the :class:`ViewPlan` names.
    """

    def __init__(self, global_size: int, local_size: int, global_scale: tuple[float, float],
                 local_scale: tuple[float, float], plan: ViewPlan,
                 mean=IMAGENET_MEAN, std=IMAGENET_STD) -> None:
        self.plan = plan.checked()
        self.globals = tuple(BatchView(global_size, global_scale, BLUR_P[view], SOLARIZE_P[view])
                             for view in ("global1", "global2"))
        self.local = BatchView(local_size, local_scale, BLUR_P["local"], SOLARIZE_P["local"])
        self.mean, self.std = torch.tensor(mean), torch.tensor(std)

    def views(self) -> list[tuple[BatchView, int]]:
        """(view, source index) of every crop, in output order."""
        pairs = list(zip(self.globals, self.plan.global_sources, strict=True))
        return pairs + [(self.local, s) for s in self.plan.local_sources]

    def __call__(self, sources: list[torch.Tensor],
                 generator: torch.Generator) -> list[torch.Tensor]:
        """Crops in order: global 1, global 2, locals; parameters drawn from ``generator``."""
        floats = [s.float().div_(255) for s in sources]
        b, _, h, w = sources[0].shape
        mean = self.mean.to(floats[0].device).view(1, 3, 1, 1)
        std = self.std.to(floats[0].device).view(1, 3, 1, 1)
        crops = []
        for view, source in self.views():
            x = view.apply(floats[source], view.sample(b, h, w, generator))
            crops.append((x - mean) / std)
        return crops
