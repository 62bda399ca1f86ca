"""Benchmark one DINO training step: grouped multi-crop forward vs one pass per crop.

The official recipe concatenates crops of equal resolution so that 2 global + n local crops
cost two backbone passes (``MultiCropNetwork``); the baseline runs the backbone once per
crop. Both do the full step: student forward on every crop, teacher forward on the global
crops, DINO loss, backward, AdamW step and the teacher's EMA update, on random tensors (so
the figure is the model's, not the JPEG decoder's). A second figure times the multi-crop
augmentation alone (images/s of decoded crops per CPU worker).

``--e2e`` times the whole training input + step instead, each path in its own process:

* reference: JPEG files decoded and augmented per sample by DataLoader workers (torchvision,
  the official path, ``augment: cpu``), fp32 step, unfused AdamW;
* fast: the set decoded once into a uint8 tensor on the device, batched on-device multi-crop
  (``augment: batched``), bf16 autocast and fused AdamW on a GPU (fp32 and the multi-tensor
  AdamW on a CPU, as training uses), optionally ``torch.compile`` (``--compile``).

It prints images/s, peak memory (``torch.cuda.max_memory_allocated`` on a GPU, the process's
peak RSS on a CPU) and the ratio fast / reference. The one-off decoding time is printed apart.

Usage: ``python bench/pretrain.py [--quick] [--full] [--e2e [--compile] [--workers N]]``.
Default: the demo's tiny ViT at 32/16 px. ``--full``: ViT-S/16 at 224/96 with 8 local crops
(the proposal's recipe; use a GPU, where it also compares fp32 with bf16 autocast).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from synreal.dino.augment import MultiCrop, ViewPlan
from synreal.dino.backbones import create_backbone
from synreal.dino.batch_augment import BatchMultiCrop
from synreal.dino.decoded import decode_samples, default_side
from synreal.dino.head import DINOHead, MultiCropNetwork
from synreal.dino.loss import DINOLoss
from synreal.dino.train import CropDataset, collate_crops


def _networks(arch: str, size: int, out_dim: int, device: str):
    torch.manual_seed(0)
    backbone = create_backbone(arch, size)
    student = MultiCropNetwork(backbone, DINOHead(backbone.num_features, out_dim)).to(device)
    teacher = MultiCropNetwork(create_backbone(arch, size),
                               DINOHead(backbone.num_features, out_dim)).to(device)
    teacher.load_state_dict(student.state_dict())
    teacher.requires_grad_(False)
    return student, teacher


def _per_crop(model: MultiCropNetwork, crops: list[torch.Tensor]) -> torch.Tensor:
    return model.head(torch.cat([model.backbone(c) for c in crops]))


def _dino_step(crops, student, teacher, student_fwd, teacher_fwd, loss_fn, optimizer,
               context) -> None:
    """One full DINO step: teacher on the global crops, student on all, loss, AdamW, EMA."""
    with context:
        t_out = teacher_fwd(crops[:2])
        s_out = student_fwd(crops)
        loss = loss_fn(s_out.float(), t_out.float(), 0)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        for ps, pt in zip(student.parameters(), teacher.parameters(), strict=True):
            pt.mul_(0.996).add_(ps.detach(), alpha=0.004)


def time_steps(arch: str, global_size: int, local_size: int, locals_: int, batch: int,
               steps: int, grouped: bool, device: str, dtype: torch.dtype | None) -> float:
    """Images per second of full DINO steps."""
    out_dim = 4096
    student, teacher = _networks(arch, global_size, out_dim, device)
    n_crops = 2 + locals_
    loss_fn = DINOLoss(out_dim, n_crops, torch.full((10,), 0.04)).to(device)
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-4)
    crops = [torch.randn(batch, 3, global_size, global_size, device=device) for _ in range(2)]
    crops += [torch.randn(batch, 3, local_size, local_size, device=device)
              for _ in range(locals_)]
    forward = student if grouped else (lambda c: _per_crop(student, c))

    teacher_fwd = teacher if grouped else (lambda c: _per_crop(teacher, c))
    context = (torch.autocast(device.split(":")[0], dtype=dtype) if dtype
               else torch.autocast("cpu", enabled=False))

    def step():
        _dino_step(crops, student, teacher, forward, teacher_fwd, loss_fn, optimizer, context)

    step()  # warm-up (allocations, kernels)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - start)


def time_augmentation(global_size: int, local_size: int, locals_: int, source: int,
                      n: int) -> float:
    """Images per second of the official multi-crop augmentation on one worker."""
    rng = np.random.default_rng(0)
    images = [torch.from_numpy(rng.integers(0, 255, (source, source, 3), dtype=np.uint8))
              .permute(2, 0, 1).contiguous() for _ in range(8)]
    multicrop = MultiCrop(global_size, local_size, (0.4, 1.0), (0.05, 0.4),
                          ViewPlan.single(locals_))
    torch.manual_seed(0)
    start = time.perf_counter()
    for i in range(n):
        multicrop([images[i % len(images)]])
    return n / (time.perf_counter() - start)


# ============ end to end: input pipeline + step, reference vs fast ====================

def write_images(folder: Path, n: int, side: int) -> list[tuple[str]]:
    """``n`` smooth random JPEGs (quality 90) of ``side`` px, as pretraining samples."""
    rng = np.random.default_rng(0)
    samples = []
    for i in range(n):
        small = rng.integers(0, 255, (side // 8, side // 8, 3), dtype=np.uint8)
        path = folder / f"{i}.jpg"
        Image.fromarray(small).resize((side, side), Image.BICUBIC).save(path, quality=90)
        samples.append((str(path),))
    return samples


def _make_step(arch: str, size: int, locals_: int, device: str, fast: bool, compile_: bool):
    """A full DINO step ``step(crops)`` on fixed networks; fast = training's settings.

    Fast is bf16 + fused AdamW on a GPU, multi-tensor AdamW on a CPU.
    """
    out_dim = 4096
    student, teacher = _networks(arch, size, out_dim, device)
    loss_fn = DINOLoss(out_dim, 2 + locals_, torch.full((10,), 0.04)).to(device)
    gpu = device.startswith("cuda")
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-4, fused=fast and gpu,
                                  foreach=True if fast and not gpu else None)
    student_fwd, teacher_fwd = student, teacher
    if fast and compile_:
        student_fwd, teacher_fwd = torch.compile(student), torch.compile(teacher)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if fast and gpu
                else nullcontext())

    def step(crops: list[torch.Tensor]) -> None:
        _dino_step(crops, student, teacher, student_fwd, teacher_fwd, loss_fn, optimizer,
                   autocast)

    return step


def _peak_memory_mib(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _timed(step, batches, device: str) -> float:
    """Seconds for all ``batches`` after one warm-up batch (``batches`` is an iterator)."""
    step(next(batches))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start, n = time.perf_counter(), 0
    for crops in batches:
        step(crops)
        n += 1
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / max(n, 1)


def reference_path(samples, arch, g, loc, locals_, batch, steps, device, workers) -> dict:
    """Per-sample DataLoader augmentation from the files, fp32 step (the official recipe)."""
    multicrop = MultiCrop(g, loc, (0.4, 1.0), (0.05, 0.4), ViewPlan.single(locals_))
    order = np.random.default_rng(0).permutation(len(samples))
    batches = [order[i * batch:(i + 1) * batch].tolist() for i in range(steps + 1)]
    loader = torch.utils.data.DataLoader(
        CropDataset(samples, multicrop, 0), batch_sampler=batches, collate_fn=collate_crops,
        num_workers=workers, pin_memory=device.startswith("cuda"))
    step = _make_step(arch, g, locals_, device, fast=False, compile_=False)
    seconds = _timed(step, ([c.to(device, non_blocking=True) for c in crops]
                            for crops in loader), device)
    return {"images_per_s": batch / seconds, "peak_mib": _peak_memory_mib(device)}


def fast_path(samples, arch, g, loc, locals_, batch, steps, device, workers,
              compile_) -> dict:
    """Decoded uint8 set on the device, batched on-device multi-crop, bf16 + fused AdamW."""
    start = time.perf_counter()
    images = decode_samples(samples, default_side(g), workers)[:, 0].to(device)
    decode_s = time.perf_counter() - start
    multicrop = BatchMultiCrop(g, loc, (0.4, 1.0), (0.05, 0.4), ViewPlan.single(locals_))
    generator = torch.Generator().manual_seed(0)
    step = _make_step(arch, g, locals_, device, fast=True, compile_=compile_)

    def batches():
        for _ in range(steps + (3 if compile_ else 1)):  # compile: 2 more warm-up steps
            index = torch.randint(len(images), (batch,), generator=generator).to(device)
            yield multicrop([images[index]], generator)

    stream = batches()
    if compile_:
        step(next(stream))
        step(next(stream))
    seconds = _timed(step, stream, device)
    return {"images_per_s": batch / seconds, "peak_mib": _peak_memory_mib(device),
            "decode_s": decode_s, "decoded_mib": images.numel() / 2**20}


def _isolated(fn, *args):
    """Run ``fn(*args)`` in a fresh process so each path's peak memory is its own."""
    # not a multiprocessing.Pool: its daemonic workers cannot start DataLoader workers
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(fn, *args).result()


def end_to_end(arch, g, loc, locals_, batch, steps, source, device, workers,
               compile_) -> None:
    """Print images/s and peak memory of the reference and the fast path, and the ratio."""
    with tempfile.TemporaryDirectory() as folder:
        samples = write_images(Path(folder), batch * (steps + 3), source)
        ref = _isolated(reference_path, samples, arch, g, loc, locals_, batch, steps, device,
                        workers)
        fast = _isolated(fast_path, samples, arch, g, loc, locals_, batch, steps, device,
                         workers, compile_)
    memory = "GPU max allocated" if device.startswith("cuda") else "peak RSS"
    fast_name = ("bf16, fused AdamW" if device.startswith("cuda")
                 else "fp32, multi-tensor AdamW on CPU")
    fast_name += ", compiled" if compile_ else ""
    print(f"reference: {workers} DataLoader workers, per-sample torchvision, fp32")
    print(f"  {ref['images_per_s']:8.1f} images/s   {memory} {ref['peak_mib']:8.0f} MiB")
    print(f"fast: decoded in memory, batched on-device augmentation, {fast_name}")
    print(f"  {fast['images_per_s']:8.1f} images/s   {memory} {fast['peak_mib']:8.0f} MiB   "
          f"(one-off decode {fast['decode_s']:.1f} s, {fast['decoded_mib']:.1f} MiB "
          f"of uint8 for {len(samples)} images)")
    print(f"ratio fast / reference: {fast['images_per_s'] / ref['images_per_s']:8.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps")
    parser.add_argument("--full", action="store_true", help="ViT-S/16 at 224/96, 8 locals")
    parser.add_argument("--e2e", action="store_true",
                        help="time input pipeline + step: per-sample CPU DataLoader + fp32 vs "
                             "decoded in memory + batched on-device augmentation (+ bf16)")
    parser.add_argument("--compile", action="store_true",
                        help="--e2e: torch.compile the networks of the fast path")
    parser.add_argument("--workers", type=int, default=min(10, os.cpu_count() or 1),
                        help="--e2e: DataLoader workers of the reference path (official: 10 "
                             "per GPU); also decoding threads of the fast path")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.full:
        arch, g, loc, locals_, batch, source = "vit_small_patch16_224", 224, 96, 8, 32, 256
    else:
        arch, g, loc, locals_, batch, source = "vit_tiny_demo_avgpool", 32, 16, 4, 48, 64
    steps = 3 if args.quick else 10
    print(f"device {device}, {arch}, crops 2x{g} + {locals_}x{loc}, batch {batch}")
    if args.e2e:
        if args.full and device == "cuda":
            batch = 128
        end_to_end(arch, g, loc, locals_, batch, steps, source, device, args.workers,
                   args.compile)
        return
    grouped = time_steps(arch, g, loc, locals_, batch, steps, True, device, None)
    per_crop = time_steps(arch, g, loc, locals_, batch, steps, False, device, None)
    print(f"DINO step, grouped crops : {grouped:8.1f} images/s")
    print(f"DINO step, one pass/crop : {per_crop:8.1f} images/s   (baseline)")
    print(f"ratio grouped / baseline : {grouped / per_crop:8.2f}x")
    if device == "cuda":
        bf16 = time_steps(arch, g, loc, locals_, batch, steps, True, device, torch.bfloat16)
        print(f"DINO step, bf16 autocast : {bf16:8.1f} images/s   ({bf16 / grouped:.2f}x fp32)")
        print(f"peak GPU memory          : {torch.cuda.max_memory_allocated() / 2**30:8.2f} GiB")
    augment = time_augmentation(g, loc, locals_, source, 20 if args.quick else 100)
    print(f"multi-crop augmentation  : {augment:8.1f} images/s per worker "
          f"({grouped / augment:.1f} workers keep one step fed)")


if __name__ == "__main__":
    main()
