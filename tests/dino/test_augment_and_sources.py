import pandas as pd
import pytest
import torch

from synreal.dino.augment import MultiCrop, ViewPlan
from synreal.dino.sources import build_samples
from synreal.errors import ConfigError, DataError


def test_multicrop_shapes_and_dtype():
    crop = MultiCrop(32, 16, (0.4, 1.0), (0.05, 0.4), ViewPlan.single(3))
    crops = crop([torch.randint(0, 255, (3, 48, 40), dtype=torch.uint8)])
    assert [tuple(c.shape) for c in crops] == [(3, 32, 32)] * 2 + [(3, 16, 16)] * 3
    assert all(c.dtype == torch.float32 for c in crops)


@pytest.mark.parametrize(("views", "globals_", "locals_"), [
    ((1, 6, 1, 2), [0, 1], [0] * 6 + [1] * 2),   # MixDiff default
    ((1, 2, 1, 6), [0, 1], [0] * 2 + [1] * 6),   # Table 7 alternative 2/6
    ((1, 4, 1, 4), [0, 1], [0] * 4 + [1] * 4),   # Table 7 alternative 4/4
    ((2, 6, 0, 2), [0, 0], [0] * 6 + [1] * 2),
])
def test_mixdiff_views_come_from_the_right_image(views, globals_, locals_):
    plan = ViewPlan.mixdiff(*views)
    crop = MultiCrop(32, 16, (0.4, 1.0), (0.05, 0.4), plan)
    # tag each source image by a constant and make every transform return its input's tag
    crop.globals = (lambda x: x, lambda x: x)
    crop.local = lambda x: x
    real, synthetic = torch.zeros(1), torch.ones(1)
    sources = [int(c.item()) for c in crop([real, synthetic])]
    assert sources == globals_ + locals_
    assert plan.n_crops == 2 + len(locals_)


def _manifest(prefix, n, split="train"):
    return pd.DataFrame({"id": [f"{prefix}{i}" for i in range(n)],
                         "path": [f"/{prefix}/{i}.png" for i in range(n)],
                         "label": [i % 3 for i in range(n)], "split": split})


@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.5, 0.75, 1.0])
def test_mix_keeps_total_and_fraction(fraction):
    real = pd.concat([_manifest("r", 40), _manifest("t", 10, "test")])
    samples = build_samples("mix", real, _manifest("s", 60), fraction, seed=1)
    assert len(samples) == 40
    assert sum(p[0].startswith("/r/") for p in samples) == round(40 * fraction)
    assert not any(p[0].startswith("/t/") for p in samples)


def test_test_split_never_reaches_pretraining():
    real = pd.concat([_manifest("r", 5), _manifest("t", 5, "test")])
    assert all(not p[0].startswith("/t/") for p in build_samples("real", real, None))


def test_mixdiff_pairs_by_source_id():
    real = _manifest("r", 4)
    syn = _manifest("s", 4).assign(source_id=["r2", "r0", "r3", "r1"])
    pairs = build_samples("mixdiff", real, syn)
    assert pairs == [("/r/0.png", "/s/1.png"), ("/r/1.png", "/s/3.png"),
                     ("/r/2.png", "/s/0.png"), ("/r/3.png", "/s/2.png")]
    with pytest.raises(DataError, match="no variation"):
        build_samples("mixdiff", _manifest("r", 5), syn)


def test_source_errors():
    with pytest.raises(ConfigError, match="needs a synthetic dataset"):
        build_samples("synthetic", _manifest("r", 3), None)
    with pytest.raises(ConfigError, match="one of"):
        build_samples("imagenet", None, None)


def test_cpu_path_crops_from_the_batched_paths_working_resolution(tmp_path):
    """augment: cpu loads each image as the batched path decodes it (not the raw 512 px)."""
    import numpy as np
    from PIL import Image

    from synreal.dino.decoded import decode_image
    from synreal.dino.train import CropDataset

    rng = np.random.default_rng(0)
    path = tmp_path / "big.png"
    Image.fromarray(rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)).save(path)
    seen = []
    dataset = CropDataset([(str(path),)], MultiCrop(16, 8, (0.4, 1.0), (0.05, 0.4),
                                                    ViewPlan.single(1)), seed=0, side=24)
    dataset.multicrop = lambda images: seen.extend(images) or images
    dataset[0]
    assert tuple(seen[0].shape) == (3, 24, 24)
    assert torch.equal(seen[0], decode_image(str(path), 24))
