"""Generation throughput: synreal's path vs vanilla diffusers defaults, in the same run.

Both sides make the same images (same seeds, steps, CFG scale and resolution) from the same
weights folder. Vanilla = ``<Pipeline>.from_pretrained(folder)`` with its defaults (fp32,
the shipped scheduler, progress bar on) called once per image, as most scripts do. Ours =
``synreal.generate``'s backend (fp16 on GPU, batched, safety checker off, per-image CPU
generators) plus everything a shard costs: blank check, resize, PNG encode, sha256, write.
Weight loading is timed separately and excluded from images/s.

Usage:
    python bench/generate.py --quick                      # tiny random SD pipeline, CPU
    python bench/generate.py --backend sdxl --model-path /models/sdxl-base --device cuda \
        --images 32 --steps 30 --batch-size 8             # real weights on a GPU host
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="build a tiny random SD pipeline and run on CPU (seconds)")
    parser.add_argument("--backend", default="sd", choices=["sd", "sdxl"])
    parser.add_argument("--model-path", help="local diffusers folder (required without --quick)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--cfg-scale", type=float, default=7.5)
    parser.add_argument("--scheduler", default="default",
                        help="e.g. dpmpp_2m (DPM-Solver++ 2M; use with --steps 25)")
    parser.add_argument("--dtype", default="auto", choices=["auto", "fp32", "fp16", "bf16"])
    parser.add_argument("--vae-path", help="sdxl: fp16-safe VAE folder (sdxl-vae-fp16-fix)")
    parser.add_argument("--no-channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile the UNet")
    parser.add_argument("--image-size", type=int, default=256,
                        help="saved size (ours resizes; vanilla keeps the native size)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (0 = torch's default); 1 is steadier on a "
                             "shared CPU")
    return parser.parse_args()


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_vanilla(kind: str, folder: Path, prompts: list[str], seeds: list[int], steps: int,
                cfg: float, size: int, device: str,
                scheduler: str = "default") -> tuple[float, float, list]:
    """Load time, generation seconds and images of the plain diffusers loop."""
    import diffusers
    import torch

    cls = {"sd": diffusers.StableDiffusionPipeline, "sdxl": diffusers.StableDiffusionXLPipeline}
    start = time.perf_counter()
    from synreal.generate.loading import set_scheduler

    pipe = cls[kind].from_pretrained(folder).to(device)
    set_scheduler(pipe, scheduler)  # the same sampler as ours: only the plumbing differs
    load = time.perf_counter() - start
    pipe(prompts[0], num_inference_steps=steps, guidance_scale=cfg, height=size, width=size)
    _sync(device)
    start, images = time.perf_counter(), []
    for prompt, seed in zip(prompts, seeds, strict=True):
        generator = torch.Generator("cpu").manual_seed(seed)
        images += pipe(prompt, num_inference_steps=steps, guidance_scale=cfg, height=size,
                       width=size, generator=generator).images
    _sync(device)
    return load, time.perf_counter() - start, images


def run_ours(params, device: str) -> tuple[float, float, list, int]:
    """Load time, generation seconds, images and native size of synreal's backend + writer."""
    from PIL import Image

    from synreal.generate.plan import build_plan
    from synreal.generate.registry import create
    from synreal.generate.run import make_shard

    start = time.perf_counter()
    backend = create(params.backend, params, device)
    load = time.perf_counter() - start
    jobs = build_plan(params)
    backend.generate(jobs[:1], [jobs[0].seed])  # warm-up, as for vanilla
    _sync(device)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        make_shard(backend, params, Path(out), 0, jobs)
        _sync(device)
        seconds = time.perf_counter() - start
        files = sorted(Path(out).rglob("*.png"), key=lambda p: [j.id for j in jobs].index(p.stem))
        images = [Image.open(p).convert("RGB") for p in files]
    return load, seconds, images, backend.resolution


def main() -> None:
    args = parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from synreal.generate import GenerateParams
    from synreal.generate.plan import build_plan

    scratch = tempfile.TemporaryDirectory()
    folder = Path(args.model_path) if args.model_path else None
    if args.quick or folder is None:
        from synreal.generate.tiny import build_tiny_pipeline

        folder = build_tiny_pipeline(args.backend, Path(scratch.name) / "tiny")
        args.device, args.image_size = "cpu", min(args.image_size, 32)
    params = GenerateParams(backend=args.backend, model_path=str(folder), model_id=str(folder),
                            dataset="custom", classes=("cat",), per_class=args.images,
                            steps=args.steps, cfg_scale=args.cfg_scale,
                            batch_size=args.batch_size, shard_size=args.images,
                            image_size=args.image_size, scheduler=args.scheduler,
                            dtype=args.dtype, vae_path=args.vae_path,
                            channels_last=not args.no_channels_last,
                            torch_compile=args.compile)
    jobs = build_plan(params)
    ours_load, ours_s, ours_images, size = run_ours(params, args.device)
    van_load, van_s, van_images = run_vanilla(args.backend, folder, [j.prompt for j in jobs],
                                              [j.seed for j in jobs], args.steps,
                                              args.cfg_scale, size, args.device,
                                              args.scheduler)
    ours_ips, van_ips = len(jobs) / ours_s, len(jobs) / van_s
    print(f"device {args.device}  backend {args.backend}  images {len(jobs)}  steps "
          f"{args.steps} ({args.scheduler})  native {size}px  batch {args.batch_size}")
    print(f"vanilla diffusers : {van_ips:8.3f} images/s   (load {van_load:.1f} s)")
    print(f"synreal generate  : {ours_ips:8.3f} images/s   (load {ours_load:.1f} s, incl. "
          f"resize to {args.image_size}px + PNG + sha256 + write)")
    print(f"ratio synreal / vanilla: {ours_ips / van_ips:.2f}x")
    if args.device == "cpu":
        from synreal.data.downscale import downscale

        resized = [downscale(im, ours_images[0].size[0]) for im in van_images]
        diff = max(np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max()
                   for a, b in zip(resized, ours_images, strict=True))
        print(f"same seeds -> same images: max pixel difference {diff} (0-255, after resize)")
    scratch.cleanup()


if __name__ == "__main__":
    main()
