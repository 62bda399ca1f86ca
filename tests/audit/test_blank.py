import numpy as np

from synreal.audit.blank import blank_flags, decode_or_reason
from synreal.data.manifest import load_rgb


def test_blank_flags_on_black_white_constant_and_textured_images():
    rng = np.random.default_rng(0)
    batch = np.stack([np.zeros((8, 8, 3), np.uint8), np.full((8, 8, 3), 255, np.uint8),
                      np.full((8, 8, 3), 128, np.uint8),
                      rng.integers(0, 256, (8, 8, 3), dtype=np.uint8),
                      rng.integers(0, 6, (8, 8, 3), dtype=np.uint8)])  # near-black noise
    flags = blank_flags(batch)
    assert flags["black"].tolist() == [True, False, False, False, True]
    assert flags["white"].tolist() == [False, True, False, False, False]
    assert flags["constant"].tolist() == [True, True, True, False, False]
    assert flags["blank"].tolist() == [True, True, True, False, True]


def test_corrupt_and_missing_files_get_a_reason(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    image, reason = decode_or_reason(load_rgb, str(bad))
    assert image is None and reason.startswith("cannot decode")
    assert decode_or_reason(load_rgb, str(tmp_path / "gone.png")) == (None, "missing file")
