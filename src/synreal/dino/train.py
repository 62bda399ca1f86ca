"""The DINO training loop: multi-crop self-distillation with an EMA teacher, resumable.

Reads top to bottom like the official ``main_dino.py``: build data, build student and
teacher, build loss, optimizer and schedules, resume, then the epoch loop. Every step logs
one JSON line (loss, lr, wd, momentum, teacher temperature, collapse statistics, images/s).
A NaN/inf loss stops the run naming the step and the last good checkpoint; SIGTERM or
SIGUSR1 (Slurm pre-emption) saves a checkpoint and exits with :data:`REQUEUE_EXIT_CODE`.
"""

from __future__ import annotations

import json
import math
import signal
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from synreal import faults
from synreal.dino.augment import IMAGENET_MEAN, IMAGENET_STD, MultiCrop, ViewPlan
from synreal.dino.backbones import create_backbone
from synreal.dino.batch_augment import BatchMultiCrop
from synreal.dino.checkpoint import (
    Preprocessing,
    drop_training_checkpoints,
    export_backbone,
    has_final_state,
    latest_checkpoint,
    load_final_state,
    load_training_state,
    save_training_state,
)
from synreal.dino.decoded import decode_image, decode_samples, default_side
from synreal.dino.head import DINOHead, MultiCropNetwork
from synreal.dino.loss import DINOLoss
from synreal.dino.monitor import collapse_stats, mutual_information
from synreal.dino.params import DinoParams
from synreal.dino.schedules import cosine_schedule, teacher_temperatures
from synreal.dino.verdict import LOG_FILE, collapse_kind, run_verdict
from synreal.errors import ConfigError, DataError, SynrealError
from synreal.preemption import REQUEUE_EXIT_CODE, TimeLimitWarning
from synreal.ranks import process_rank


class TrainingDiverged(SynrealError):
    """The loss became NaN or infinite."""


class Preempted(SystemExit):
    """The run stopped early with its state saved; the job should run again to resume.

    ``requeue_self``: the job should put itself back in Slurm's queue (its time limit is
    near); after a SIGTERM, Slurm itself requeues a pre-empted job, and a timed-out one is
    resubmitted by Snakemake's retries.
    """

    def __init__(self, step: int, requeue_self: bool = False) -> None:
        super().__init__(REQUEUE_EXIT_CODE)
        self.step = step
        self.requeue_self = requeue_self


# ============ data ====================================================================

class CropDataset(Dataset):
    """Samples of 1 (or 2, MixDiff) images -> list of crops, deterministic per (epoch, index).

    Each image is first brought to the working resolution ``side`` exactly as the batched
    path decodes it (:func:`~synreal.dino.decoded.decode_image`), so both paths crop from the
    same pixels (``side`` None: as stored, for tools that crop files directly). Each sample's
    augmentation draws from its own seeded RNG, so results do not depend on worker count or
    on where a resumed run restarts.
    """

    def __init__(self, samples: list[tuple[str, ...]], multicrop: MultiCrop, seed: int,
                 side: int | None = None) -> None:
        self.samples = samples
        self.multicrop = multicrop
        self.seed = seed
        self.side = side
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> list[torch.Tensor]:
        images = [decode_image(p, self.side) if self.side else _as_stored(p)
                  for p in self.samples[index]]
        seed = int(np.random.SeedSequence([self.seed, self.epoch, index]).generate_state(1)[0])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.multicrop(images)


def _as_stored(path: str) -> torch.Tensor:
    from synreal.data.manifest import load_rgb

    return torch.from_numpy(np.array(load_rgb(path))).permute(2, 0, 1)


def epoch_batches(n: int, batch: int, epoch: int, seed: int, rank: int,
                  world: int) -> list[list[int]]:
    """Index batches of this process of one epoch (shuffled by (seed, epoch), last dropped)."""
    order = np.random.default_rng(np.random.SeedSequence([seed, 1, epoch])).permutation(n)
    per_step = batch * world
    steps = n // per_step
    return [order[s * per_step + rank * batch: s * per_step + (rank + 1) * batch].tolist()
            for s in range(steps)]


def collate_crops(items: list[list[torch.Tensor]]) -> list[torch.Tensor]:
    """Per-sample crop lists -> one ``(B, 3, s, s)`` tensor per crop position."""
    return [torch.stack(crops) for crops in zip(*items, strict=True)]


class DecodedBatches:
    """The ``augment: batched`` data path: decoded images in memory, batches augmented on device.

    ``images`` is uint8 ``(N, sources, 3, S, S)`` (:func:`~synreal.dino.decoded.decode_samples`),
    kept on ``device``. The augmentation of step ``i`` of an epoch draws from a generator
    seeded by (seed, epoch, i, rank), so a resumed run cuts the same crops as an
    uninterrupted one, and it never touches the global RNG (drop path draws from that).
    """

    def __init__(self, images: torch.Tensor, multicrop: BatchMultiCrop, seed: int, rank: int,
                 device: str) -> None:
        self.images = images.to(device)
        self.multicrop, self.seed, self.rank = multicrop, seed, rank

    def epoch(self, epoch: int, batches: list[list[int]], first: int):
        """Crops of each batch in ``batches``, which start at step ``first`` of the epoch."""
        for i, batch in enumerate(batches, start=first):
            index = torch.tensor(batch, device=self.images.device)
            sources = [self.images[index, k] for k in range(self.images.shape[1])]
            state = np.random.SeedSequence([self.seed, 2, epoch, i, self.rank])
            generator = torch.Generator().manual_seed(int(state.generate_state(1)[0]))
            yield self.multicrop(sources, generator)


# ============ helpers =================================================================

def _param_groups(model: torch.nn.Module) -> list[dict]:
    """Biases and norm parameters are not weight-decayed (official get_params_groups)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if name.endswith(".bias") or param.ndim == 1 else decay).append(param)
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]


def clip_gradients(model: torch.nn.Module, clip: float) -> None:
    """Scale each parameter's gradient to norm <= clip (official per-tensor clipping)."""
    for param in model.parameters():
        if param.grad is not None:
            norm = param.grad.detach().norm(2)
            coef = clip / (norm + 1e-6)
            if coef < 1:
                param.grad.mul_(coef)


def _precision(params: DinoParams, device: str) -> str:
    if params.precision == "auto":
        return "bf16" if device.startswith("cuda") else "fp32"
    if params.precision in ("bf16", "fp16") and not device.startswith("cuda"):
        return "fp32" if params.precision == "fp16" else "bf16"
    return params.precision


def _any_process(flag: bool, device: str, world: int) -> bool:
    """True when ``flag`` is set in any process of the job (an all-reduce when world > 1).

    A pre-emption signal may reach the processes of a multi-GPU job a step apart; they must
    stop after the same step, or the ones still training wait forever for the others.
    """
    if world == 1:
        return flag
    value = torch.tensor([float(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


@contextmanager
def _preemption_flag():
    """Turn SIGTERM/SIGUSR1 into a flag checked after each step."""
    flag = {"set": False}

    def handler(signum, frame):  # noqa: ARG001
        flag["set"] = True

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGUSR1)}
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _state_tensors(student, teacher, loss: DINOLoss, optimizer) -> dict[str, torch.Tensor]:
    tensors = {f"student.{k}": v for k, v in student.state_dict().items()}
    tensors |= {f"teacher.{k}": v for k, v in teacher.state_dict().items()}
    tensors["loss.center"] = loss.center
    tensors["rng.torch"] = torch.get_rng_state()
    for index, state in optimizer.state_dict()["state"].items():
        for name in ("exp_avg", "exp_avg_sq"):
            tensors[f"optim.{index}.{name}"] = state[name]
    return tensors


def _restore(tensors, student, teacher, loss: DINOLoss, optimizer, scalars) -> None:
    student.load_state_dict({k[8:]: v for k, v in tensors.items() if k.startswith("student.")})
    teacher.load_state_dict({k[8:]: v for k, v in tensors.items() if k.startswith("teacher.")})
    loss.center.copy_(tensors["loss.center"])
    torch.set_rng_state(tensors["rng.torch"])
    state = optimizer.state_dict()
    for index, step in scalars["optimizer_steps"].items():
        state["state"][int(index)] = {
            "step": torch.tensor(float(step)),
            "exp_avg": tensors[f"optim.{index}.exp_avg"],
            "exp_avg_sq": tensors[f"optim.{index}.exp_avg_sq"],
        }
    optimizer.load_state_dict(state)


def _initialise_from(artifact: Path, student, teacher, loss: DINOLoss) -> None:
    """Start from the final weights and centre of a finished pretraining run."""
    artifact = Path(artifact)
    source = artifact
    if has_final_state(artifact):
        tensors = load_final_state(artifact)
    elif (marker := latest_checkpoint(artifact)) is not None:  # exported without its head
        tensors, _ = load_training_state(marker)
        source = marker
    else:
        raise DataError(f"{artifact} has neither a finished run's export (with "
                        "teacher_head.safetensors) nor a training checkpoint to continue from; "
                        "rerun its pretrain job.")
    try:
        student.load_state_dict({k[8:]: v for k, v in tensors.items()
                                 if k.startswith("student.")})
        teacher.load_state_dict({k[8:]: v for k, v in tensors.items()
                                 if k.startswith("teacher.")})
        loss.center.copy_(tensors["loss.center"])
    except (RuntimeError, KeyError) as error:
        raise DataError(f"{source} does not fit this recipe (arch, out_dim and head widths must "
                        f"match the pretraining run's): {str(error).splitlines()[0]}") from None
    print(f"continuing from {source}")


def _finished_summary(log_path: Path, params: DinoParams, total_steps: int, precision: str,
                      world: int) -> dict:
    """The summary of a run whose export is already on disk (a rerun after a late crash)."""
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    return {"steps_done": total_steps, "total_steps": total_steps, "complete": True,
            "final_loss": lines[-1]["loss"] if lines else None,
            "collapse": run_verdict(log_path, params.warmup_epochs, params.out_dim),
            "precision": precision, "world_size": world}


def _truncate_log(path: Path, first_step: int) -> None:
    """Drop log lines of steps that will be recomputed after a resume."""
    if not path.is_file():
        return
    keep = [line for line in path.read_text().splitlines()
            if line.strip() and json.loads(line)["step"] < first_step]
    path.write_text("".join(line + "\n" for line in keep))


# ============ training ================================================================

def initial_networks(params: DinoParams, device: str = "cpu"
                     ) -> tuple[MultiCropNetwork, MultiCropNetwork]:
    """The student and the teacher (its frozen copy) a DINO run of ``params`` starts from.

    Seeded by ``params.seed`` alone, before any other draw, so the random-init control of a
    seed (:func:`export_initialisation`) is exactly the start of that seed's DINO runs.
    """
    torch.manual_seed(params.seed)
    student_backbone = create_backbone(params.arch, params.global_crop_size,
                                       params.drop_path_rate)
    dim = student_backbone.num_features
    widths = {"hidden_dim": params.head_hidden_dim, "bottleneck_dim": params.head_bottleneck_dim}
    student = MultiCropNetwork(student_backbone, DINOHead(
        dim, params.out_dim, params.use_bn_in_head, params.norm_last_layer, **widths)).to(device)
    teacher = MultiCropNetwork(create_backbone(params.arch, params.global_crop_size),
                               DINOHead(dim, params.out_dim, params.use_bn_in_head,
                                        **widths)).to(device)
    teacher.load_state_dict(student.state_dict())
    for p in teacher.parameters():
        p.requires_grad = False
    return student, teacher


def export_initialisation(params: DinoParams, work_dir: Path) -> dict:
    """Export the untrained teacher of a DINO run as if it were the run's result.

    The main table's random-init control: the same backbone, seed and preprocessing as the
    DINO runs beside it, with no pretraining step, so "run - random init" is what the
    pretraining itself added to the frozen features. Returns the run's summary (0 steps).
    """
    student, teacher = initial_networks(params)
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    export_backbone(work_dir, teacher.backbone, student, Preprocessing(
        params.arch, params.global_crop_size, params.eval_resize, params.global_crop_size,
        IMAGENET_MEAN, IMAGENET_STD))
    return {"steps_done": 0, "total_steps": 0, "complete": True, "final_loss": None,
            "collapse": None, "precision": "fp32", "world_size": 1}


def train_dino(params: DinoParams, samples: list[tuple[str, ...]], view_plan: ViewPlan,
               work_dir: Path, device: str = "cpu", max_steps: int | None = None,
               progress: bool = True, init_from: Path | None = None) -> dict:
    """Train (or resume) DINO on ``samples``; export the teacher backbone into ``work_dir``.

    Args:
        params: the recipe.
        samples: image paths per sample (see :mod:`synreal.dino.sources`).
        view_plan: which sample image each crop comes from.
        work_dir: persistent folder for checkpoints, the log and the exported weights.
        device: ``cpu`` or ``cuda[:n]``.
        max_steps: stop (after checkpointing) once this many steps are done; for tests and
            time-boxed jobs. The final export happens only when all epochs are done.
        init_from: a finished pretraining artifact to continue from (RealTune / SynTune):
            its final student, teacher and DINO centre start this run; optimizer moments,
            schedules and data are new. Ignored when ``work_dir`` has its own checkpoint
            (a resumed run continues from that).

    Returns:
        A summary (steps, final loss, collapse flag, images/s).
    """
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    rank, world, local_rank = process_rank()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
        if device.startswith("cuda"):
            device = f"cuda:{local_rank}"
            torch.cuda.set_device(local_rank)
    precision = _precision(params, device)

    # ---------------- data ----------------
    multicrop = MultiCrop(params.global_crop_size, params.local_crop_size,
                          tuple(params.global_crops_scale), tuple(params.local_crops_scale),
                          view_plan)
    # both augmentation paths crop from images brought to one working resolution
    side = params.decoded_size or default_side(params.global_crop_size)
    dataset = CropDataset(samples, multicrop, params.seed, side)
    # batch_size is the global batch: the same key trains the same way on any GPU count
    if params.batch_size % world:
        raise ConfigError(f"pretrain batch_size {params.batch_size} (images per step over all "
                          f"GPUs) does not split evenly over {world} processes; make it a "
                          f"multiple of {world}.")
    per_process = params.batch_size // world
    iters_per_epoch = len(samples) // params.batch_size
    if iters_per_epoch == 0:
        raise DataError(f"{len(samples)} pretraining images are fewer than one batch of "
                        f"{params.batch_size}; lower pretrain batch_size.")
    decoded = None  # augment batched: the set decoded once, augmented on the device in batches
    if params.augment == "batched":
        decoded = DecodedBatches(
            decode_samples(samples, side, params.num_workers),
            BatchMultiCrop(params.global_crop_size, params.local_crop_size,
                           tuple(params.global_crops_scale), tuple(params.local_crops_scale),
                           view_plan), params.seed, rank, device)

    # ---------------- student and teacher ----------------
    student, teacher = initial_networks(params, device)
    trained, teacher_forward = student, teacher
    if world > 1:
        trained = torch.nn.parallel.DistributedDataParallel(
            student, device_ids=[local_rank] if device.startswith("cuda") else None)
    if params.torch_compile:
        # compiled callables share the modules' parameters: the EMA update, state dicts and
        # checkpoints keep using the plain modules
        trained, teacher_forward = torch.compile(trained), torch.compile(teacher)

    # ---------------- loss, optimizer, schedules ----------------
    temps = teacher_temperatures(params.warmup_teacher_temp, params.teacher_temp,
                                 params.warmup_teacher_temp_epochs, params.epochs)
    loss_fn = DINOLoss(params.out_dim, view_plan.n_crops, torch.from_numpy(temps),
                       params.student_temp, params.center_momentum).to(device)
    # fused kernels on GPU; on CPU the multi-tensor path: the same weights bit for bit as
    # torch's per-tensor default, and the demo's DINO runs 14 % faster
    on_gpu = device.startswith("cuda")
    optimizer = torch.optim.AdamW(_param_groups(student), fused=on_gpu, foreach=not on_gpu)
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")
    total_batch = params.batch_size
    lr_schedule = cosine_schedule(params.lr * total_batch / 256, params.min_lr, params.epochs,
                                  iters_per_epoch, params.warmup_epochs)
    wd_schedule = cosine_schedule(params.weight_decay, params.weight_decay_end, params.epochs,
                                  iters_per_epoch)
    momentum_schedule = cosine_schedule(params.momentum_teacher, 1.0, params.epochs,
                                        iters_per_epoch)
    total_steps = params.epochs * iters_per_epoch

    # ---------------- resume ----------------
    log_path = work_dir / LOG_FILE
    if (has_final_state(work_dir) and latest_checkpoint(work_dir) is None
            and log_path.is_file()):
        print(f"{work_dir} already holds this run's export; nothing to train")
        return _finished_summary(log_path, params, total_steps, precision, world)
    start_step, last_checkpoint = 0, None
    if (marker := latest_checkpoint(work_dir)) is not None:
        tensors, scalars = load_training_state(marker)
        _restore(tensors, student, teacher, loss_fn, optimizer, scalars)
        start_step, last_checkpoint = scalars["step"], marker
        print(f"resuming from {marker} (step {start_step} of {total_steps})")
    elif init_from is not None:
        _initialise_from(Path(init_from), student, teacher, loss_fn)
    if rank == 0:
        _truncate_log(log_path, start_step)

    def save(step: int) -> Path:
        steps = {str(i): float(s["step"]) for i, s in optimizer.state_dict()["state"].items()}
        return save_training_state(work_dir, step, _state_tensors(student, teacher, loss_fn,
                                                                   optimizer),
                                   {"optimizer_steps": steps, "epoch": step // iters_per_epoch,
                                    "params": json.loads(json.dumps(vars(params),
                                                                    default=list))})

    # ---------------- epoch loop ----------------
    autocast = (torch.autocast(device.split(":")[0], dtype=torch.bfloat16 if precision == "bf16"
                               else torch.float16) if precision != "fp32" else nullcontext())
    stop_at = min(total_steps, max_steps) if max_steps is not None else total_steps
    step, last = start_step, {}
    bar = tqdm(total=stop_at, initial=start_step, unit="step", desc="DINO", mininterval=2,
               disable=not progress or rank != 0)
    # Slurm's time limit, read once: checkpoint and requeue shortly before it (preemption.py)
    time_limit = TimeLimitWarning.for_this_job()
    with _preemption_flag() as preempt, open(log_path, "a") as log:
        while step < stop_at:
            epoch, skip = divmod(step, iters_per_epoch)
            dataset.epoch = epoch
            batches = epoch_batches(len(samples), per_process, epoch, params.seed, rank,
                                    world)[skip:]
            if decoded is not None:
                loader = decoded.epoch(epoch, batches, skip)
            else:
                # a private generator: creating the loader must not consume the global RNG
                # (drop path draws from it), or a resumed run would diverge
                loader = DataLoader(dataset, batch_sampler=batches, collate_fn=collate_crops,
                                    num_workers=params.num_workers,
                                    generator=torch.Generator(),
                                    pin_memory=device.startswith("cuda"))
            tick = time.perf_counter()
            for crops in loader:
                crops = [c.to(device, non_blocking=True) for c in crops]
                for group_index, group in enumerate(optimizer.param_groups):
                    group["lr"] = lr_schedule[step]
                    if group_index == 0:
                        group["weight_decay"] = wd_schedule[step]
                with autocast:
                    teacher_out = teacher_forward(crops[:2])
                    student_out = trained(crops)
                    stats = collapse_stats(loss_fn.teacher_probs(teacher_out.float(), epoch))
                    loss = loss_fn(student_out.float(), teacher_out.float(), epoch)
                with torch.no_grad():  # the student's global crops, as the teacher sees them
                    student_mi = mutual_information(torch.softmax(
                        student_out[:len(teacher_out)].float() / params.student_temp, dim=-1))
                if not math.isfinite(loss.item()):
                    where = last_checkpoint or "none yet (no checkpoint was saved)"
                    raise TrainingDiverged(
                        f"DINO loss became {loss.item()} at step {step}; last good checkpoint: "
                        f"{where}. Try precision fp32, a lower lr or teacher_temp.")
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if params.clip_grad:
                    scaler.unscale_(optimizer)
                    clip_gradients(student, params.clip_grad)
                if epoch < params.freeze_last_layer:
                    for p in student.head.last_layer.parameters():
                        p.grad = None
                scaler.step(optimizer)
                scaler.update()
                with torch.no_grad():
                    m = momentum_schedule[step]
                    for ps, pt in zip(student.parameters(), teacher.parameters(), strict=True):
                        pt.mul_(m).add_(ps.detach(), alpha=1 - m)
                now = time.perf_counter()
                last = {"step": step, "epoch": epoch, "loss": loss.item(),
                        "lr": float(lr_schedule[step]), "wd": float(wd_schedule[step]),
                        "momentum": float(m), "teacher_temp": float(temps[epoch]),
                        "teacher_entropy": stats["teacher_entropy"],
                        "kl_to_uniform": stats["kl_to_uniform"],
                        "teacher_mi": stats["teacher_mi"], "student_mi": student_mi,
                        "collapse": collapse_kind({**stats, "student_mi": student_mi})
                        if epoch >= params.warmup_epochs else None,
                        "images_per_s": total_batch / max(now - tick, 1e-9)}
                tick = now
                if rank == 0:
                    log.write(json.dumps(last) + "\n")
                    log.flush()
                step += 1
                faults.point("train.step")
                bar.update(1)
                bar.set_postfix(loss=f"{last['loss']:.3f}")
                preempted = _any_process(preempt["set"] or time_limit.near(), device, world)
                # a run that reaches its last step exports its final state just below, so
                # it writes no ~700 MB resume checkpoint first; one stopped early by
                # max_steps keeps one to continue from
                periodic = step % params.checkpoint_every == 0 or step == stop_at
                if rank == 0 and (preempted or (periodic and step < total_steps)):
                    last_checkpoint = save(step)
                if preempted:
                    bar.close()
                    why = "pre-empted" if preempt["set"] else "time limit near"
                    print(f"{why} after step {step}: checkpoint {last_checkpoint} saved; "
                          f"exiting {REQUEUE_EXIT_CODE} (requeue and rerun to resume)",
                          flush=True)
                    raise Preempted(step, requeue_self=not preempt["set"])
                if step >= stop_at:
                    break
    bar.close()
    # the verdict of the whole log's last steps, resumed runs included; only process 0
    # writes the log (and the summary)
    collapse = (run_verdict(log_path, params.warmup_epochs, params.out_dim) if rank == 0
                else None)
    summary = {"steps_done": step, "total_steps": total_steps, "complete": step == total_steps,
               "final_loss": last.get("loss"), "collapse": collapse,
               "precision": precision, "world_size": world}
    if step == total_steps and rank == 0:
        teacher_head = dict(teacher.head.state_dict()) | {"center": loss_fn.center}
        export_backbone(work_dir, teacher.backbone, student, Preprocessing(
            params.arch, params.global_crop_size, params.eval_resize, params.global_crop_size,
            IMAGENET_MEAN, IMAGENET_STD), teacher_head)
        # the export is the run's final state: the resume checkpoint (optimizer moments
        # included) is no longer needed
        drop_training_checkpoints(work_dir)
    return summary
