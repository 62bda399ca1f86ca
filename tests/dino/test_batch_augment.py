"""Batched on-device multi-crop against torchvision applied per sample with the same parameters."""

import math

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.stats import ks_2samp
from torchvision.transforms import InterpolationMode, RandomResizedCrop
from torchvision.transforms.v2 import functional as TF

from synreal.dino.augment import IMAGENET_MEAN, IMAGENET_STD, MultiCrop, ViewPlan
from synreal.dino.batch_augment import (
    BatchMultiCrop,
    BatchView,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    gaussian_blur,
    grayscale,
    resized_crops,
    sample_crop_boxes,
    solarize,
)
from synreal.dino.decoded import decode_samples


def _images(n=6, h=40, w=36, seed=0):
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


def _factors(n, low, high, seed=1):
    return low + (high - low) * torch.rand(n, generator=torch.Generator().manual_seed(seed))


# ============ crop parameters =========================================================

@pytest.mark.parametrize(("height", "width", "scale"), [
    (256, 256, (0.4, 1.0)), (256, 256, (0.05, 0.4)), (120, 300, (0.08, 1.0)),
])
def test_crop_boxes_follow_torchvisions_rule(height, width, scale):
    n = 4000
    boxes = sample_crop_boxes(n, height, width, scale, torch.Generator().manual_seed(0))
    top, left, h, w = boxes.T
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + h <= height).all() and (left + w <= width).all()
    fitted = (h * w).double() / (height * width)
    # rounding w and h moves the area and aspect by at most one pixel row / column
    slack = 2 * (1 / h.double() + 1 / w.double())
    assert (fitted >= scale[0] * (1 - slack)).all() and (fitted <= scale[1] * (1 + slack)).all()
    aspect = w.double() / h.double()
    assert (aspect >= 3 / 4 * (1 - slack)).all() and (aspect <= 4 / 3 * (1 + slack)).all()
    # same distribution as torchvision's own sampler (position included)
    torch.manual_seed(0)
    image = torch.zeros(3, height, width)
    ref = torch.tensor([RandomResizedCrop.get_params(image, list(scale), [3 / 4, 4 / 3])
                        for _ in range(n)])
    for ours, theirs in [(fitted, ref[:, 2] * ref[:, 3] / (height * width)),
                         (aspect, ref[:, 3] / ref[:, 2]),
                         (top / (height - h + 1), ref[:, 0] / (height - ref[:, 2] + 1))]:
        assert ks_2samp(ours.numpy(), theirs.double().numpy()).pvalue > 1e-3


@pytest.mark.parametrize(("height", "width"), [(10, 200), (200, 10), (50, 50)])
def test_crop_fallback_is_torchvisions(height, width):
    # scale above 1 never fits: torchvision falls back to the ratio-clipped central crop
    boxes = sample_crop_boxes(5, height, width, (1.5, 2.0), torch.Generator().manual_seed(0))
    expected = RandomResizedCrop.get_params(torch.zeros(3, height, width), [1.5, 2.0],
                                            [3 / 4, 4 / 3])
    assert boxes.tolist() == [list(expected)] * 5


def test_resized_crop_matches_torchvision_on_smooth_images():
    # a smooth image: bilinear area resampling and antialiased bicubic agree closely
    y, x = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 80), indexing="ij")
    image = torch.stack([0.5 + 0.4 * torch.sin(6 * x + 3 * y), x * y, (1 - x) * y])[None]
    boxes = torch.tensor([[0, 0, 64, 80], [10, 5, 30, 40], [3, 20, 12, 10], [50, 70, 14, 10]])
    ours = resized_crops(image.expand(4, -1, -1, -1), boxes, 24)
    for i, (top, left, h, w) in enumerate(boxes.tolist()):
        ref = TF.resized_crop(image[0], top, left, h, w, [24, 24],
                              interpolation=InterpolationMode.BICUBIC, antialias=True)
        assert (ours[i] - ref).abs().mean() < 0.01, i
        assert (ours[i] - ref).abs().max() < 0.06, i


# ============ each op against torchvision per sample ==================================

@pytest.mark.parametrize(("ours", "theirs", "low", "high"), [
    (adjust_brightness, TF.adjust_brightness, 0.6, 1.4),
    (adjust_contrast, TF.adjust_contrast, 0.6, 1.4),
    (adjust_saturation, TF.adjust_saturation, 0.8, 1.2),
    (adjust_hue, TF.adjust_hue, -0.5, 0.5),
])
def test_colour_ops_match_torchvision_per_sample(ours, theirs, low, high):
    images, factors = _images(), _factors(6, low, high)
    got = ours(images, factors)
    for i in range(len(images)):
        torch.testing.assert_close(got[i], theirs(images[i], float(factors[i])),
                                   atol=2e-5, rtol=0)


def test_grayscale_solarize_match_torchvision():
    images = _images()
    torch.testing.assert_close(grayscale(images).expand(-1, 3, -1, -1),
                               TF.rgb_to_grayscale(images, num_output_channels=3))
    pixels = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)
    expected = TF.solarize(pixels, threshold=128).float() / 255
    torch.testing.assert_close(solarize(pixels.float() / 255), expected, atol=1e-6, rtol=0)


def test_blur_matches_torchvision_per_sample():
    images, sigma = _images(h=20, w=24), _factors(6, 0.1, 2.0)
    got = gaussian_blur(images, sigma, 13)
    for i in range(len(images)):
        ref = TF.gaussian_blur(images[i], [13, 13], [float(sigma[i])] * 2)
        torch.testing.assert_close(got[i], ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("seed", [0, 1])
def test_view_equals_torchvision_pipeline_with_the_same_parameters(seed):
    """The whole view (flip, jitter in its per-sample order, grayscale, blur, solarise)."""
    view = BatchView(24, (0.3, 1.0), blur_p=0.5, solarize_p=0.5)
    images = _images(n=32, seed=seed)
    p = view.sample(32, 40, 36, torch.Generator().manual_seed(seed))
    got = view.apply(images, p)
    cropped = resized_crops(images, p.boxes, 24)
    ops = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
    for i in range(32):
        x = cropped[i]
        x = TF.horizontal_flip(x) if p.flip[i] else x
        if p.jitter[i]:
            for k in p.jitter_order[i].tolist():
                x = ops[k](x, float(p.jitter_factors[i, k]))
        x = TF.rgb_to_grayscale(x, num_output_channels=3) if p.grayscale[i] else x
        if p.blur[i]:
            x = TF.gaussian_blur(x, [view.kernel] * 2, [float(p.sigma[i])] * 2)
        x = torch.where(x >= 128 / 255, 1 - x, x) if p.solarize[i] else x
        torch.testing.assert_close(got[i], x, atol=5e-5, rtol=0, msg=f"sample {i}")
    # the parameters really vary per sample, with the recipe's probabilities
    for mask in (p.flip, p.jitter, p.blur, p.solarize):
        assert 0 < int(mask.sum()) < 32
    assert len({tuple(o) for o in p.jitter_order.tolist()}) > 1


def test_view_probabilities_and_ranges_are_the_recipes():
    view = BatchView(224, (0.4, 1.0), blur_p=0.1, solarize_p=0.2)
    p = view.sample(20000, 64, 64, torch.Generator().manual_seed(0))
    for mask, rate in [(p.flip, 0.5), (p.jitter, 0.8), (p.grayscale, 0.2), (p.blur, 0.1),
                       (p.solarize, 0.2)]:
        assert abs(mask.float().mean().item() - rate) < 0.015
    low, high = p.jitter_factors.min(0).values, p.jitter_factors.max(0).values
    torch.testing.assert_close(low, torch.tensor([0.6, 0.6, 0.8, -0.1]), atol=1e-3, rtol=0)
    torch.testing.assert_close(high, torch.tensor([1.4, 1.4, 1.2, 0.1]), atol=1e-3, rtol=0)
    assert p.sigma.min() >= 0.1 and p.sigma.max() <= 2.0 and view.kernel == 13


# ============ the multi-crop ==========================================================

def test_multicrop_shapes_dtypes_ranges_and_determinism():
    aug = BatchMultiCrop(32, 16, (0.4, 1.0), (0.05, 0.4), ViewPlan.single(3))
    images = torch.randint(0, 256, (5, 3, 48, 40), dtype=torch.uint8)
    crops = aug([images], torch.Generator().manual_seed(3))
    assert [tuple(c.shape) for c in crops] == [(5, 3, 32, 32)] * 2 + [(5, 3, 16, 16)] * 3
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    for c in crops:
        assert c.dtype == torch.float32
        raw = c * std + mean
        assert raw.min() >= -1e-5 and raw.max() <= 1 + 1e-5
    again = aug([images], torch.Generator().manual_seed(3))
    assert all(torch.equal(a, b) for a, b in zip(crops, again, strict=True))
    other = aug([images], torch.Generator().manual_seed(4))
    assert not torch.equal(crops[0], other[0])


def test_crops_have_the_statistics_of_the_per_sample_torchvision_path():
    """Same image, many draws: per-view channel means and contrast match augment.MultiCrop.

    An independent end-to-end check of the sampling (crop sizes, jitter ranges, op
    probabilities): a wrong range or probability shifts these moments well beyond the
    sampling noise of 200 draws (under 0.1 on the means here).
    """
    y, x = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 64), indexing="ij")
    image = (torch.stack([0.5 + 0.4 * torch.sin(12 * x + 5 * y), x * y, (1 - x) * y])
             * 255).to(torch.uint8)
    n, plan = 200, ViewPlan.single(2)
    torch.manual_seed(0)
    reference = MultiCrop(32, 16, (0.4, 1.0), (0.05, 0.4), plan)
    per_sample = [reference([image]) for _ in range(n)]
    batched = BatchMultiCrop(32, 16, (0.4, 1.0), (0.05, 0.4), plan)(
        [image.expand(n, -1, -1, -1).contiguous()], torch.Generator().manual_seed(0))
    for view in range(plan.n_crops):
        ref = torch.stack([crops[view] for crops in per_sample])
        got = batched[view]
        torch.testing.assert_close(got.mean((0, 2, 3)), ref.mean((0, 2, 3)), atol=0.15,
                                   rtol=0)
        torch.testing.assert_close(got.std((2, 3)).mean(0), ref.std((2, 3)).mean(0),
                                   atol=0.08, rtol=0)


@pytest.mark.parametrize("views", [(1, 6, 1, 2), (1, 2, 1, 6)])
def test_mixdiff_crops_come_from_the_planned_source(views):
    plan = ViewPlan.mixdiff(*views)
    aug = BatchMultiCrop(16, 8, (0.4, 1.0), (0.05, 0.4), plan)
    black = torch.zeros(4, 3, 24, 24, dtype=torch.uint8)
    # jitter and blur keep a black image black and a white one bright
    crops = aug([black, torch.full_like(black, 255)], torch.Generator().manual_seed(0))
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    raw = [(c * std + mean).mean().item() for c in crops]
    got = [int(r > 0.25) for r in raw]
    assert got == list(plan.global_sources) + list(plan.local_sources)


def test_decoded_samples_are_centre_crops_at_the_working_size(tmp_path):
    rng = np.random.default_rng(0)
    wide = rng.integers(0, 255, (20, 40, 3), dtype=np.uint8)
    wide[:, :10] = 0  # the left and right quarters are cut off by the centre crop
    wide[:, 30:] = 0
    wide[:, 10:30] = 200
    paths = []
    for name, array in [("a.png", wide), ("b.png", np.full((30, 30, 3), 50, np.uint8))]:
        Image.fromarray(array).save(tmp_path / name)
        paths.append(str(tmp_path / name))
    decoded = decode_samples([(paths[0], paths[1]), (paths[1], paths[0])], side=10, workers=2)
    assert decoded.shape == (2, 2, 3, 10, 10) and decoded.dtype == torch.uint8
    assert decoded[0, 0].float().mean() > 190 and math.isclose(decoded[0, 1].float().mean(), 50)
    assert torch.equal(decoded[0, 0], decoded[1, 1])


# ============ official DINO blur (facebookresearch/dino main_dino.py, utils.GaussianBlur) ==

#: DataAugmentationDINO as written in the official code: view -> (blur p, solarize p), and
#: utils.GaussianBlur's radius_min / radius_max (PIL pixels, the same for every crop size).
OFFICIAL_VIEWS = {"global1": (1.0, 0.0), "global2": (0.1, 0.2), "local": (0.5, 0.0)}
OFFICIAL_RADIUS = (0.1, 2.0)


def _cpu_view_ops(transform):
    """(blur p, sigma range, kernel, solarize p) of an augment.view_transform Compose."""
    from torchvision.transforms import v2

    blur = next(t for t in transform.transforms if isinstance(t, v2.RandomApply)
                and isinstance(t.transforms[0], v2.GaussianBlur))
    solar = next(t for t in transform.transforms if isinstance(t, v2.RandomSolarize))
    return blur.p, tuple(blur.transforms[0].sigma), blur.transforms[0].kernel_size[0], solar.p


@pytest.mark.parametrize(("global_size", "local_size"), [(224, 96), (64, 32)])
def test_both_paths_use_the_official_blur_and_solarization(global_size, local_size):
    cpu = MultiCrop(global_size, local_size, (0.4, 1.0), (0.05, 0.4), ViewPlan.single(2))
    batched = BatchMultiCrop(global_size, local_size, (0.4, 1.0), (0.05, 0.4),
                             ViewPlan.single(2))
    cpu_views = {"global1": cpu.globals[0], "global2": cpu.globals[1], "local": cpu.local}
    batch_views = {"global1": batched.globals[0], "global2": batched.globals[1],
                   "local": batched.local}
    for name, (blur_p, solarize_p) in OFFICIAL_VIEWS.items():
        p, sigma, kernel, solar = _cpu_view_ops(cpu_views[name])
        assert (p, solar) == (blur_p, solarize_p), name
        assert sigma == pytest.approx(OFFICIAL_RADIUS), f"{name}: sigma scaled by crop size"
        view = batch_views[name]
        assert (view.blur_p, view.solarize_p) == (blur_p, solarize_p), name
        assert view.sigma == pytest.approx(OFFICIAL_RADIUS), name
        assert view.kernel == kernel == 13  # +-3 sigma of 2.0 px


def test_batched_local_crops_draw_the_full_official_sigma_range():
    view = BatchView(96, (0.05, 0.4), blur_p=0.5, solarize_p=0.0)
    sigma = view.sample(4000, 64, 64, torch.Generator().manual_seed(0)).sigma
    assert 0.1 <= sigma.min() < 0.15 and 1.95 < sigma.max() <= 2.0  # not 0.86 (96/224 * 2)


@pytest.mark.parametrize("radius", [0.7, 1.3, 2.0])
def test_blur_equals_pil_gaussian_blur_of_the_same_radius(radius):
    """The official blur is PIL's at ``radius`` (its standard deviation) on the crop itself."""
    from PIL import ImageFilter

    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).resize(
        (96, 96), Image.BICUBIC)
    pil = np.asarray(image.filter(ImageFilter.GaussianBlur(radius)), np.float64) / 255
    tensor = torch.from_numpy(np.asarray(image, np.float32) / 255).permute(2, 0, 1)[None]
    ours = gaussian_blur(tensor, torch.tensor([radius]), BatchView(96, (0.05, 0.4), 0.5,
                                                                    0.0).kernel)
    ours = ours[0].permute(1, 2, 0).numpy()
    inner = (slice(12, -12), slice(12, -12))  # away from the borders (padding rules differ)
    assert np.abs(ours - pil)[inner].mean() < 1.2 / 255
    # the size-scaled sigma this replaced is far from PIL's result: the check has teeth
    scaled = gaussian_blur(tensor, torch.tensor([radius * 96 / 224]), 13)[0]
    assert np.abs(scaled.permute(1, 2, 0).numpy() - pil)[inner].mean() > 4 / 255



def test_single_image_crops_are_what_the_code_before_the_mixdiff_trade_drew():
    """Every crop of a single-image plan, pinned at the values the batched augmentation drew
    at commit ae1410c for this seed: a refactor of the draws keeps the runs' outputs, and
    their cached artifacts stay right."""
    image = torch.randint(0, 256, (4, 3, 24, 24), generator=torch.Generator().manual_seed(0),
                          dtype=torch.uint8)
    crops = BatchMultiCrop(16, 8, (0.4, 1.0), (0.05, 0.4), ViewPlan.single(2))(
        [image], torch.Generator().manual_seed(3))
    sums = [round(float(c.double().sum()), 3) for c in crops]
    magnitudes = [round(float(c.double().abs().sum()), 3) for c in crops]
    assert sums == pytest.approx([-437.461, 982.538, 2.871, -194.584], abs=2e-3)
    assert magnitudes == pytest.approx([1568.168, 2010.419, 480.850, 428.055], abs=2e-3)
