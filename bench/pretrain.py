"""Benchmark one DINO training step: grouped multi-crop forward vs one pass per crop.

The official recipe concatenates crops of equal resolution so that 2 global + n local crops
cost two backbone passes (``MultiCropNetwork``); the baseline runs the backbone once per
crop. Both do the full step: student forward on every crop, teacher forward on the global
crops, DINO loss, backward, AdamW step and the teacher's EMA update, on random tensors (so
the figure is the model's, not the JPEG decoder's). A second figure times the multi-crop
augmentation alone (images/s of decoded crops per CPU worker).

Usage: ``python bench/pretrain.py [--quick] [--full]``. Default: the demo's tiny ViT at 32/16
px. ``--full``: ViT-S/16 at 224/96 with 8 local crops (the proposal's recipe; use a GPU,
where it also compares fp32 with bf16 autocast).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from synreal.dino.augment import MultiCrop, ViewPlan
from synreal.dino.backbones import create_backbone
from synreal.dino.head import DINOHead, MultiCropNetwork
from synreal.dino.loss import DINOLoss


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

    def step():
        context = (torch.autocast(device.split(":")[0], dtype=dtype) if dtype
                   else torch.autocast("cpu", enabled=False))
        with context:
            t_out = teacher(crops[:2]) if grouped else _per_crop(teacher, crops[:2])
            s_out = forward(crops)
            loss = loss_fn(s_out.float(), t_out.float(), 0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            for ps, pt in zip(student.parameters(), teacher.parameters(), strict=True):
                pt.mul_(0.996).add_(ps.detach(), alpha=0.004)

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps")
    parser.add_argument("--full", action="store_true", help="ViT-S/16 at 224/96, 8 locals")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.full:
        arch, g, loc, locals_, batch, source = "vit_small_patch16_224", 224, 96, 8, 32, 256
    else:
        arch, g, loc, locals_, batch, source = "vit_tiny_demo", 32, 16, 4, 48, 64
    steps = 3 if args.quick else 10
    print(f"device {device}, {arch}, crops 2x{g} + {locals_}x{loc}, batch {batch}")
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
