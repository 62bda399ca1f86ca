"""FID on Inception-v3 pool3 equals torchmetrics' FrechetInceptionDistance on the same images.

No weights can be downloaded, so the same random FID Inception weights file is given to both
(``feature_extractor_weights_path``); torchmetrics with ``antialias=False`` is the standard
FID convention (TF1 bilinear resize to 299), which the audit's extractor uses.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from synreal.audit.fid import fid
from synreal.audit.inception import FID_DIM, check_fid_weights, inception_embedder
from synreal.audit.tiny import build_fid_inception
from synreal.errors import ConfigError


@pytest.fixture(scope="module")
def fid_weights(tmp_path_factory):
    return build_fid_inception(tmp_path_factory.mktemp("inception") / "pt_inception.pth")


def _images(folder, rng, count, size, tint):
    paths = []
    for i in range(count):
        noise = rng.integers(0, 90, (size, size, 3))
        image = np.clip(noise + np.array(tint) + i * 7, 0, 255).astype(np.uint8)
        path = folder / f"{tint[0]}_{size}_{i}.png"
        Image.fromarray(image).save(path)
        paths.append(path)
    return paths


def test_fid_equals_torchmetrics(tmp_path, fid_weights, offline):
    from torchmetrics.image.fid import FrechetInceptionDistance

    rng = np.random.default_rng(0)
    # two image sizes per set: the extractor resizes each to 299 itself, as torchmetrics does
    real = _images(tmp_path, rng, 5, 48, (40, 80, 120)) + _images(tmp_path, rng, 4, 72,
                                                                  (40, 80, 120))
    fake = _images(tmp_path, rng, 5, 48, (150, 60, 30)) + _images(tmp_path, rng, 4, 72,
                                                                  (150, 60, 30))
    embed = inception_embedder(str(fid_weights), batch_size=4)
    ours = fid(embed([str(p) for p in fake]), embed([str(p) for p in real]))

    metric = FrechetInceptionDistance(feature=FID_DIM, antialias=False,
                                      feature_extractor_weights_path=str(fid_weights))
    for paths, is_real in ((real, True), (fake, False)):
        for size in (48, 72):
            batch = [np.asarray(Image.open(p)) for p in paths if f"_{size}_" in p.name]
            metric.update(torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2), real=is_real)
    reference = float(metric.compute())
    assert reference > 1.0  # distinct sets: a non-trivial distance
    assert ours == pytest.approx(reference, rel=1e-3)
    assert offline == []


def test_wrong_weights_file_is_one_sentence(tmp_path):
    wrong = tmp_path / "resnet.pth"
    torch.save({"conv.weight": torch.zeros(3, 3)}, wrong)
    with pytest.raises(ConfigError, match=r"fid_weights .* does not hold the FID Inception-v3"):
        check_fid_weights(wrong)
    with pytest.raises(ConfigError, match="fid_weights is not set"):
        check_fid_weights(None)
