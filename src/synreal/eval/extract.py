"""Frozen feature extraction from a ViT backbone (DINO's evaluation protocols).

Protocols:

* ``cls``: the normalised CLS token of the last block (DINO eval_knn): the embedding the
  DINO head was trained on. A backbone that pools its patch tokens instead (timm
  ``global_pool="avg"``, like the demo's tiny ViT) gives that pooled embedding here.
* ``dino_linear``: the normalised CLS tokens of the last ``n_last_blocks`` blocks,
  concatenated, optionally with the average-pooled patch tokens of the last block
  (DINO eval_linear: n = 4 for ViT-S, avgpool off; n = 1 + avgpool for ViT-B). For a
  patch-pooled backbone each block contributes its pooled, normalised patch tokens.

Images are preprocessed with the checkpoint's own recipe (resize, centre crop, mean/std)
so evaluation never restates what the backbone was trained with.

Decoding (``decode``):

* ``cpu`` (default): DataLoader workers decode with PIL and preprocess each image.
* ``device``: workers only read files; each batch of JPEGs is decoded by
  ``torchvision.io.decode_jpeg`` on the model's device (nvjpeg on CUDA) and resized,
  cropped and normalised there as one batch. At ViT-S/16 bf16 speeds on a GPU (thousands of
  images/s) PIL decoding in the workers is the bottleneck; this moves it to the GPU.
  Baseline JPEGs go to the hardware decoder of A100/H100-class GPUs as one batch;
  progressive ones are decoded one by one, partly on the CPU, so they gain less. Files that
  are not plain JPEGs (:func:`device_decodable`: PNG, CMYK, 12-bit, ...) are still decoded
  with PIL in the workers, then preprocessed with the batch. Pixels equal PIL's up to
  rounding: none with libjpeg on CPU; on CUDA nvjpeg's IDCT and chroma upsampling, and the
  uint8 bicubic resize (computed in float there), may differ by a few grey levels
  (``bench/evaluate.py --full`` on a GPU reports the largest feature difference between the
  two paths). nvjpeg is also more lenient than libjpeg with damaged scan data: on CUDA a
  damaged JPEG may decode to noise instead of failing (ingest has already decoded every
  file with PIL). ``decode_jpeg`` is deprecated in favour of TorchCodec from torchvision
  0.29; a torchvision upgrade must keep it or port this path.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import InterpolationMode, v2
from tqdm import tqdm

PROTOCOLS = ("cls", "dino_linear")
DECODES = ("cpu", "device")


@dataclass(frozen=True)
class Preprocess:
    """Evaluation preprocessing: resize the short side, centre crop, normalise."""

    resize: int
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"

    def transform(self) -> v2.Compose:
        """The torchvision v2 pipeline from a uint8 HWC array to a normalised CHW float tensor."""
        return v2.Compose([
            v2.ToImage(),
            v2.Resize(self.resize, interpolation=InterpolationMode(self.interpolation),
                      antialias=True),
            v2.CenterCrop(self.crop),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(self.mean, self.std),
        ])

    def batch(self, images: Sequence[torch.Tensor]) -> torch.Tensor:
        """:meth:`transform` of decoded uint8 ``(3, H, W)`` images as one ``(B, 3, crop, crop)``.

        Runs where the images are (the GPU after device decoding). Images of one size are
        resized together; the cropped batch is scaled and normalised at once.
        """
        fn = v2.functional
        by_size: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, image in enumerate(images):
            by_size[tuple(image.shape)].append(i)
        cropped: list[torch.Tensor] = [images[0]] * len(images)
        for at in by_size.values():
            resized = fn.resize(torch.stack([images[i] for i in at]), [self.resize],
                                interpolation=InterpolationMode(self.interpolation),
                                antialias=True)
            for i, image in zip(at, fn.center_crop(resized, [self.crop, self.crop]),
                                strict=True):
                cropped[i] = image
        scaled = fn.to_dtype(torch.stack(cropped), torch.float32, scale=True)
        return fn.normalize(scaled, list(self.mean), list(self.std))


class ImageFiles(Dataset):
    """Decode image files as RGB (any mode, 16-bit and CMYK included) and preprocess them.

    ``transform`` (a torchvision v2 pipeline from a uint8 HWC array) replaces the evaluation
    preprocessing, e.g. the linear probe's training augmentation, drawn afresh at each read.
    """

    def __init__(self, paths: Sequence[str], preprocess: Preprocess | None = None,
                 transform: Callable | None = None) -> None:
        if (preprocess is None) == (transform is None):
            raise ValueError("give ImageFiles either preprocess or transform")
        self.paths = list(paths)
        self.transform = transform if transform is not None else preprocess.transform()

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        from synreal.data.manifest import load_rgb

        return self.transform(np.array(load_rgb(self.paths[index])))  # writable copy


_HUFFMAN_FRAMES = (0xC0, 0xC1, 0xC2)  # baseline, extended sequential, progressive
_OTHER_FRAMES = tuple(m for m in range(0xC3, 0xD0) if m not in (0xC4, 0xC8, 0xCC))


def device_decodable(data: bytes) -> bool:
    """Whether ``decode_jpeg`` gives the same RGB pixels as PIL for the file ``data``.

    True for a complete (EOI-terminated) 8-bit Huffman-coded JPEG with one grey or three
    YCbCr components: what cameras and PIL write, and what nvjpeg decodes. Everything else
    (other formats, CMYK/YCCK, 12-bit, lossless, arithmetic-coded or RGB-coded JPEGs, files
    cut short) is left to PIL, which converts or rejects it exactly as ingest did.
    """
    if not (data.startswith(b"\xff\xd8") and data.endswith(b"\xff\xd9")):
        return False
    pos, rgb_coded = 2, False
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        segment = data[pos + 4:pos + 2 + length]
        if marker == 0xEE and segment.startswith(b"Adobe") and len(segment) >= 12:
            rgb_coded = segment[11] == 0  # Adobe colour transform 0: components are RGB/CMYK
        elif marker in _HUFFMAN_FRAMES:
            if len(segment) < 6:
                return False
            precision, components = segment[0], segment[5]
            ids = segment[6:6 + 3 * components:3]
            ycbcr = components == 3 and not rgb_coded and ids != b"RGB"
            return precision == 8 and (components == 1 or ycbcr)
        elif marker in _OTHER_FRAMES or marker == 0xDA:  # other coding, or scan before frame
            return False
        pos += 2 + length
    return False


def _pil_chw(path: str) -> torch.Tensor:
    from synreal.data.manifest import load_rgb

    return torch.from_numpy(np.ascontiguousarray(load_rgb(path).transpose(2, 0, 1)))


class EncodedImages(Dataset):
    """Image files read for device decoding: ``(index, data, is_jpeg)`` per file.

    A plain JPEG (:func:`device_decodable`) stays encoded, ``data`` being its bytes as a 1-D
    uint8 tensor, so workers only read files. Any other file is decoded here with PIL as
    :class:`ImageFiles` does, ``data`` being uint8 ``(3, H, W)`` pixels.
    """

    def __init__(self, paths: Sequence[str]) -> None:
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor, bool]:
        try:
            data = Path(self.paths[index]).read_bytes()
        except OSError:
            data = b""  # PIL below raises the error that names the file
        if device_decodable(data):
            return index, torch.frombuffer(bytearray(data), dtype=torch.uint8), True
        return index, _pil_chw(self.paths[index]), False


def decode_on_device(items: Sequence[tuple[int, torch.Tensor, bool]], paths: Sequence[str],
                     preprocess: Preprocess, device: str) -> torch.Tensor:
    """Decode a list of :class:`EncodedImages` items on ``device``; their preprocessed batch."""
    from torchvision.io import ImageReadMode, decode_jpeg

    images = [data for _, data, _ in items]
    jpegs = [k for k, (_, _, is_jpeg) in enumerate(items) if is_jpeg]
    if jpegs:
        if str(device).startswith("cuda"):
            # torchvision's CUDA decoder writes its outputs from its own stream without
            # waiting for ours: memory the previous batch's queued kernels still read could
            # be handed to it and overwritten. Let that work finish first.
            torch.cuda.current_stream(device).synchronize()
        try:
            decoded = decode_jpeg([images[k] for k in jpegs], mode=ImageReadMode.RGB,
                                  device=device)
        except torch.OutOfMemoryError:
            raise
        except RuntimeError:  # damaged past its header: PIL decodes it or names the file
            decoded = [_pil_chw(paths[items[k][0]]) for k in jpegs]
        for k, image in zip(jpegs, decoded, strict=True):
            images[k] = image
    return preprocess.batch([image.to(device) for image in images])


def pools_patch_tokens(model: torch.nn.Module) -> bool:
    """Whether the backbone's embedding is its mean patch token rather than its CLS token."""
    return getattr(model, "global_pool", "token") == "avg"


def embed_batch(model: torch.nn.Module, images: torch.Tensor, protocol: str,
                n_last_blocks: int = 4, avgpool: bool = False) -> torch.Tensor:
    """Features ``(B, D')`` of a batch ``(B, 3, H, W)`` under ``protocol``.

    ``D' = D`` for ``cls``; ``n_last_blocks * D`` (+ ``D`` with avgpool) for ``dino_linear``.
    """
    if protocol == "cls":
        return model.forward_head(model.forward_features(images), pre_logits=True)
    if protocol != "dino_linear":
        raise ValueError(f"unknown protocol {protocol!r}; known: {PROTOCOLS}")
    blocks = model.forward_intermediates(images, indices=n_last_blocks, norm=True,
                                         return_prefix_tokens=True, intermediates_only=True,
                                         output_fmt="NLC")
    if pools_patch_tokens(model):
        parts = [model.fc_norm(patches.mean(dim=1)) for patches, _ in blocks]
    else:
        parts = [prefix[:, 0] for _, prefix in blocks]
    if avgpool:
        parts.append(blocks[-1][0].mean(dim=1))
    return torch.cat(parts, dim=-1)


def _loader(paths: Sequence[str], preprocess: Preprocess, decode: str, batch_size: int,
            num_workers: int, device: str) -> DataLoader:
    if decode not in DECODES:
        raise ValueError(f"unknown decode {decode!r}; known: {DECODES}")
    if decode == "cpu":
        return DataLoader(ImageFiles(paths, preprocess), batch_size=batch_size, shuffle=False,
                          num_workers=num_workers, pin_memory=device.startswith("cuda"))
    return DataLoader(EncodedImages(paths), batch_size=batch_size, shuffle=False,
                      num_workers=num_workers, collate_fn=list)


@torch.no_grad()
def extract_features(model: torch.nn.Module, paths: Sequence[str], preprocess: Preprocess,
                     protocol: str = "cls", n_last_blocks: int = 4, avgpool: bool = False,
                     batch_size: int = 256, num_workers: int = 0, device: str = "cpu",
                     decode: str = "cpu") -> tuple[np.ndarray, float]:
    """Embed every image in ``paths`` (order kept); return ``(float32 (N, D'), images/s)``.

    Runs under ``no_grad`` in eval mode, with bf16 autocast on CUDA. ``decode`` is ``cpu``
    (PIL in the workers) or ``device`` (JPEGs decoded on ``device``; see the module doc).
    """
    loader = _loader(paths, preprocess, decode, batch_size, num_workers, device)
    model = model.eval().to(device)
    chunks = []
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda"))
    start = time.perf_counter()
    with tqdm(total=len(paths), unit="img", desc=f"features {protocol}", mininterval=2) as bar:
        for batch in loader:
            if decode == "cpu":
                images = batch.to(device, non_blocking=True)
            else:
                images = decode_on_device(batch, loader.dataset.paths, preprocess, device)
            with autocast:
                out = embed_batch(model, images, protocol, n_last_blocks, avgpool)
            # Asynchronous copy (pinned) on CUDA: reading the next batch and decoding it
            # overlap this forward pass instead of waiting for it.
            chunks.append(out.float().to("cpu", non_blocking=True))
            bar.update(len(images))
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)
    rate = len(paths) / max(time.perf_counter() - start, 1e-9)
    return torch.cat(chunks).numpy(), rate
