"""FID's Inception-v3: pool3 (2,048-d) features with the standard FID weights and resizing.

FID as Heusel et al. (2017) defined it and as every FID table reports it is computed on the
2,048-d pool3 features of the TensorFlow Inception-v3 graph ``2015-12-05`` with its own
input convention: the uint8 image resized to 299 x 299 by TF1's bilinear interpolation
(``align_corners=False``, no antialiasing) and scaled to ``(x - 128) / 128``. This module
runs exactly that network through torch-fidelity's ``FeatureExtractorInceptionV3`` (the
extractor torchmetrics' ``FrechetInceptionDistance`` wraps), with the converted weights
read from a local file: ``pt_inception-2015-12-05-6726825d.pth`` (torch-fidelity's release
asset; pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` is the same file). Nothing is
downloaded.

Images of different sizes are never padded or squashed together: each batch is grouped
by image size and every image is resized to 299 by the network itself, as the reference
implementation does for one image at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synreal.audit.weights import require_module, require_weights
from synreal.errors import ConfigError

#: The weights file the FID convention uses, and where to get it.
FID_WEIGHTS_ID = ("pt_inception-2015-12-05-6726825d.pth (torch-fidelity's release "
                  "weights-inception-2015-12-05; pytorch-fid ships the same file)")
#: pool3 width: the FID feature.
FID_DIM = 2048
#: The extractor's registered name in torch-fidelity.
_NAME = "inception-v3-compat"


def _extractor_class() -> type:
    module = require_module("torch_fidelity.feature_extractor_inceptionv3", "torch-fidelity",
                            "FID (Inception-v3)")
    return module.FeatureExtractorInceptionV3


def check_fid_weights(weights: str | Path | None, key: str = "fid_weights") -> Path:
    """The weights file if it holds every FID Inception-v3 tensor at the right shape.

    Reads the file as plain tensors (``weights_only``) and compares it with the
    architecture's own state dict, so a wrong file (another Inception, a classifier's
    checkpoint) is a one-sentence ConfigError before any image is read.
    """
    import torch

    path = require_weights(weights, key, FID_WEIGHTS_ID, expect="file")
    if not path.is_file():
        raise ConfigError(f"audit {key} {path} is a folder; set it to the FID Inception "
                          f"weights file {FID_WEIGHTS_ID}.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file is the same config error
        raise ConfigError(f"audit {key} {path} is not a torch state dict ({error!r}); set it "
                          f"to {FID_WEIGHTS_ID}.") from None
    expected = {k: tuple(v.shape) for k, v in _architecture().state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()} if isinstance(state, dict) else {}
    wrong = sorted(k for k in expected if found.get(k) != expected[k])
    if wrong:
        raise ConfigError(f"audit {key} {path} does not hold the FID Inception-v3 weights "
                          f"({len(wrong)} of {len(expected)} tensors missing or of another "
                          f"shape, e.g. {wrong[0]!r}); set it to {FID_WEIGHTS_ID}.")
    return path


def _architecture() -> Any:
    """The FID Inception-v3 with its default (untrained) parameters, never downloading."""
    cls = _extractor_class()

    class _Untrained(cls):  # type: ignore[misc, valid-type]
        def load_state_dict(self, state_dict, strict=True, assign=False):  # noqa: D102
            return None

    import tempfile

    import torch

    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "empty.pth"
        torch.save({}, empty)
        return _Untrained(_NAME, [str(FID_DIM)], feature_extractor_weights_path=str(empty))


def load_fid_inception(weights: str | Path | None, device: str = "cpu",
                       key: str = "fid_weights") -> Any:
    """torch-fidelity's FID Inception-v3 returning pool3 features, weights from a local file."""
    path = check_fid_weights(weights, key)
    return _extractor_class()(_NAME, [str(FID_DIM)],
                              feature_extractor_weights_path=str(path)).eval().to(device)


def pool3_features(model: Any, images: Sequence[np.ndarray], device: str = "cpu") -> np.ndarray:
    """``(N, 2048)`` float64 pool3 features of uint8 ``(H, W, 3)`` images, order kept.

    Images of one size go through the network together; each is resized to 299 inside it.
    """
    import torch

    out = np.zeros((len(images), FID_DIM), np.float64)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, image in enumerate(images):
        groups.setdefault(tuple(image.shape), []).append(i)
    with torch.no_grad():
        for index in groups.values():
            batch = torch.from_numpy(np.stack([images[i] for i in index])).permute(0, 3, 1, 2)
            (features,) = model(batch.contiguous().to(device))
            out[index] = features.double().cpu().numpy()
    return out


def inception_embedder(weights: str | Path | None, batch_size: int = 64, device: str = "cpu",
                       key: str = "fid_weights") -> Callable[[Sequence[str]], np.ndarray]:
    """``paths -> (N, 2048)`` FID features, decoding ``batch_size`` images at a time."""
    from synreal.data.manifest import load_rgb

    model = load_fid_inception(weights, device, key)

    def embed(paths: Sequence[str]) -> np.ndarray:
        parts = [pool3_features(model, [load_rgb(p) for p in paths[s:s + batch_size]], device)
                 for s in range(0, len(paths), batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, FID_DIM))

    return embed
