"""``python -m synreal doctor --configfile <study>``: can the study run here, hours before it does.

Run it on the login node and on a GPU node. It checks, and prints one line per check:

- **GPUs**: each GPU's model, memory and compute capability, the driver, torch and its CUDA
  build, and whether that build runs these cards (:mod:`synreal.gpus`);
- **data and weights**: every dataset folder the study names holds its format's layout
  (images counted), and every weights folder (generation, variations, audit models) is
  present with readable weight files (safetensors headers parsed);
- **disk**: free space under ``results/`` against the study's estimated output size;
- **Slurm** (where ``sinfo`` exists): the study's partitions exist and the GPU partition
  offers GPUs (of the study's ``gpu_model`` where it names one);
- **cost**: the study's GPU-hours per stage from the throughput table in
  ``docs/throughput.md`` (each row cites its source).

It exits 0 only when every check that decides whether the study can run passes; GPU checks
count only when the study asks for GPUs (``--login-node`` skips them on a login node).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from synreal.config import REPO_ROOT, load_config
from synreal.errors import ConfigError, DataError, SynrealError
from synreal.gpus import CudaView, probe_cuda, unusable_reason
from synreal.study import requested_gpus

THROUGHPUT = REPO_ROOT / "docs" / "throughput.md"
#: Bytes per stored image by side (PNG/JPEG at the study's resolution; measured on AFHQ).
BYTES_PER_IMAGE_256 = 120_000
#: DINO runs training at once that the disk estimate allows for (each holds a checkpoint).
CONCURRENT_RUNS = 8


@dataclass(frozen=True)
class Check:
    """One line of the report: what was checked, whether it passed, what was found or to do."""

    name: str
    ok: bool
    detail: str
    decides: bool = True  # False: informative only, never fails the study

    def line(self) -> str:
        """``[ok  ]``, ``[FAIL]`` or ``[note]``, then what was checked and found."""
        mark = "ok  " if self.ok else ("FAIL" if self.decides else "note")
        return f"[{mark}] {self.name}: {self.detail}"


# ---------------------------------------------------------------- GPUs

def nvidia_smi() -> list[dict]:
    """Each GPU's name, memory, capability and driver as ``nvidia-smi`` reports them."""
    if shutil.which("nvidia-smi") is None:
        return []
    query = "name,memory.total,compute_cap,driver_version"
    proc = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
                          capture_output=True, text=True, timeout=60, check=False)
    rows = []
    for line in proc.stdout.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 4:
            rows.append(dict(zip(("name", "memory", "capability", "driver"), parts,
                                 strict=True)))
    return rows


def check_gpus(config: dict, cuda: CudaView, smi: list[dict], login_node: bool) -> list[Check]:
    """The GPUs, the driver and whether the installed torch runs them."""
    wanted = requested_gpus(config)
    most = max(wanted.values(), default=0)
    cards = "; ".join(f"{g['name']} {g['memory']} sm {g['capability']} driver {g['driver']}"
                      for g in smi) or "nvidia-smi lists none"
    decides = bool(most) and not login_node
    checks = [Check("GPUs (nvidia-smi)", bool(smi) or not decides, cards, decides)]
    reason = unusable_reason(cuda, most or 1)
    if reason is None:
        checks.append(Check("torch runs them", True, cuda.describe(), decides))
    else:
        need = (f"the study asks up to {most} GPU(s) per job ({', '.join(sorted(wanted))})"
                if most else "the study asks for no GPU")
        checks.append(Check("torch runs them", not decides, f"{reason}; {need}", decides))
    return checks


# ---------------------------------------------------------------- data and weights

def check_datasets(config: dict, base: Path) -> list[Check]:
    """Every dataset folder holds its format's layout."""
    from synreal.data.formats import scan

    checks = []
    for name, dataset in config["datasets"].items():
        if "path" not in dataset:
            checks.append(Check(f"dataset {name}", True, "rendered toy world"))
            continue
        folder = base / dataset["path"]
        try:
            records = scan(dataset["format"], folder)
        except (DataError, OSError) as error:
            checks.append(Check(f"dataset {name}", False, str(error)))
            continue
        splits = sorted({r.split for r in records})
        checks.append(Check(f"dataset {name}", bool(records),
                            f"{folder}: {len(records)} images ({', '.join(splits)})"))
    return checks


def safetensors_ok(path: Path) -> str | None:
    """None when ``path`` is a safetensors file with a readable header, else why not."""
    try:
        with open(path, "rb") as handle:
            size = struct.unpack("<Q", handle.read(8))[0]
            if size <= 0 or size > path.stat().st_size:
                return f"{path} has a header size beyond the file (truncated download?)"
            json.loads(handle.read(size))
    except (OSError, struct.error, ValueError) as error:
        return f"{path} is not a readable safetensors file ({error})"
    return None


def check_weights_folder(folder: Path) -> str | None:
    """None when ``folder`` holds weights that load, else why not (one clause)."""
    if not folder.exists():
        return f"{folder} does not exist"
    files = [folder] if folder.is_file() else sorted(folder.rglob("*"))
    weights = [f for f in files if f.suffix in (".safetensors", ".bin", ".pth", ".pt")]
    if not weights:
        return f"{folder} holds no weight files (.safetensors, .bin, .pth)"
    for path in weights:
        if path.suffix == ".safetensors" and (why := safetensors_ok(path)):
            return why
    return None


def check_weights(config: dict, base: Path, memo: Path | None = None) -> list[Check]:
    """Every weights folder the study names is present and readable; audit models fit.

    An audit model's weights must also be of its architecture (tensor shapes from the
    headers against the architecture its config names, :mod:`synreal.audit.preflight`),
    and every audited class must have what its measures ask of the audit class table.
    ``memo``: checks that passed before and need not be made again (the Snakefile's; the
    doctor passes none and checks everything).
    """
    from synreal.rehearsal.fixtures import weight_folders

    audit = {w.path: w for w in _audit_weights(config)}
    checks = []
    for path, (_, where) in weight_folders(config).items():
        why = check_weights_folder(base / path)
        if why is None and path in audit:
            from synreal.audit.preflight import check_model

            why = check_model(audit[path], base, memo)
        checks.append(Check(f"weights {where}", why is None, why or f"{base / path} readable"))
    if audit:
        checks.append(_check_audit_classes(config))
    return checks


def _audit_weights(config: dict) -> list:
    if not config.get("audit"):
        return []
    from synreal.audit.preflight import audit_weights

    return audit_weights(config)


def _check_audit_classes(config: dict) -> Check:
    from synreal.audit.preflight import check_classes

    try:
        check_classes(config)
    except ConfigError as error:
        return Check("audit classes", False, str(error))
    return Check("audit classes", True, "every audited class has its detector phrases and "
                                        "ImageNet entry in the class table")


def preflight(config: dict, base: Path, memo: Path | None = None) -> None:
    """The data and weights checks, raising the first failure (the Snakefile runs this)."""
    for check in check_datasets(config, base) + check_weights(config, base, memo):
        if not check.ok:
            raise ConfigError(f"{check.name}: {check.detail}; `python -m synreal doctor "
                              "--configfile <study>` checks the rest.")


# ---------------------------------------------------------------- disk, Slurm, cost

def images_to_generate(plan, base: Path, counts: dict[str, int]) -> int:
    """Synthetic images the plan's generate jobs not yet on disk will make.

    Each generator (every CFG sweep scale too) makes as many images as its real dataset's
    training split holds; ``counts`` are those per dataset name
    (:func:`synreal.dino.teacher_window.training_images`).
    """
    by_ref = {job.ref: counts[name] for name, job in plan.datasets.items() if name in counts}
    return sum(by_ref.get(job.upstream.get("like"), 0)
               for job in plan.jobs.get("generate", {}).values()
               if not (base / job.out_dir).is_dir())


@functools.cache
def _network_parameters(arch: str, img_size: int, out_dim: int, use_bn: bool,
                        hidden_dim: int, bottleneck_dim: int) -> tuple[int, int]:
    """(backbone, DINO head) parameter counts, from the modules built on the meta device."""
    import torch

    from synreal.dino.backbones import create_backbone
    from synreal.dino.head import DINOHead

    with torch.device("meta"):
        backbone = create_backbone(arch, img_size)
        head = DINOHead(backbone.num_features, out_dim, use_bn, hidden_dim=hidden_dim,
                        bottleneck_dim=bottleneck_dim)
    return (sum(p.numel() for p in backbone.parameters()),
            sum(p.numel() for p in head.parameters()))


def run_bytes(job, plan, memo: Path | None = None) -> tuple[int, int]:
    """(bytes a finished run keeps, bytes of its resume checkpoint while it trains), float32.

    A DINO run keeps its student, teacher backbone and teacher head; its checkpoint holds
    student, teacher and both AdamW moments. A supervised RealTune (no DINO recipe of its
    own: its network is its pretraining's backbone) keeps two backbones.
    """
    if "dino" not in job.params:
        stage, key = job.upstream["checkpoint"].split("/")
        backbone, _ = run_parameters(plan.job(stage, key).params["dino"], memo)
        return 4 * 2 * backbone, 4 * 4 * backbone
    backbone, head = run_parameters(job.params["dino"], memo)
    return 4 * 2 * (backbone + head), 4 * 4 * (backbone + head)


def run_parameters(dino: dict, memo: Path | None = None) -> tuple[int, int]:
    """(backbone, DINO head) parameter counts of a DINO recipe.

    ``memo``: a file of counts made before (the Snakefile's): counting builds the networks,
    which imports torch and timm, seconds on every ``snakemake`` call. Its key names the
    recipe, the sources that define the networks and the torch and timm versions.
    """
    network = (dino["arch"], dino["global_crop_size"], dino["out_dim"], dino["use_bn_in_head"],
               dino["head_hidden_dim"], dino["head_bottleneck_dim"])
    if memo is None:
        return _network_parameters(*network)
    from synreal.memo import recall, remember

    key = json.dumps([*network, _network_sources()])
    counts = recall(memo, key)
    if not (isinstance(counts, list) and len(counts) == 2):
        counts = list(_network_parameters(*network))
        remember(memo, key, counts)
    return counts[0], counts[1]


@functools.cache
def _network_sources() -> str:
    """sha256 of what the parameter counts depend on: synreal's network code, torch, timm."""
    from importlib.metadata import version

    digest = hashlib.sha256(f"torch {version('torch')} timm {version('timm')}".encode())
    for module in ("backbones", "head"):
        digest.update((Path(__file__).parent / "dino" / f"{module}.py").read_bytes())
    return digest.hexdigest()


def estimated_bytes(config: dict, base: Path, plan=None,
                    counts: dict[str, int] | None = None, memo: Path | None = None) -> int:
    """A rough upper estimate of what the study still has to write under results/.

    Every DINO run of the plan not yet on disk (each pretraining, replicate seeds and
    controls included, and each RealTune) keeps its export; the runs training at the same
    time (at most one per GPU the host or cluster grants; :data:`CONCURRENT_RUNS` here) each
    hold a checkpoint too. Finished runs count nothing: a rerun of a half-done study is not
    refused for space it already used.
    """
    from synreal.dino.teacher_window import training_images
    from synreal.plan import build_plan

    plan = plan or build_plan(config)
    counts = training_images(config, base) if counts is None else counts
    sizes = [run_bytes(job, plan, memo) for stage in ("pretrain", "realtune")
             for job in plan.jobs.get(stage, {}).values()
             if not (base / job.out_dir).is_dir()]
    checkpoints = sorted((checkpoint for _, checkpoint in sizes), reverse=True)
    return (images_to_generate(plan, base, counts) * BYTES_PER_IMAGE_256
            + sum(kept for kept, _ in sizes) + sum(checkpoints[:CONCURRENT_RUNS]))


def check_disk(config: dict, base: Path, plan=None,
               counts: dict[str, int] | None = None, memo: Path | None = None) -> Check:
    """Free space where results/ lives against the study's estimated output.

    ``plan`` and ``counts`` (training images per real dataset) when the caller has them;
    ``memo`` as for :func:`run_parameters`.
    """
    need = estimated_bytes(config, base, plan, counts, memo)
    where = base / "results" if (base / "results").exists() else base
    free = shutil.disk_usage(where).free
    detail = (f"{free / 2**30:.1f} GiB free at {where}, the study still writes up to "
              f"~{need / 2**30:.1f} GiB")
    return Check("disk", free >= need, detail if free >= need else detail + "; free space or "
                 "move results/ to a larger filesystem (a symlink works)")


def sinfo_partitions() -> dict[str, str] | None:
    """Partition -> its GRES (``sinfo -o '%P %G'``), or None where Slurm is not installed."""
    if shutil.which("sinfo") is None:
        return None
    proc = subprocess.run(["sinfo", "-h", "-o", "%P %G"], capture_output=True, text=True,
                          timeout=60, check=False)
    partitions: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        name, _, gres = line.strip().partition(" ")
        name = name.rstrip("*")
        partitions[name] = " ".join(filter(None, (partitions.get(name, ""), gres)))
    return partitions


def check_slurm(config: dict, partitions: dict[str, str] | None) -> list[Check]:
    """The study's partitions exist, and the GPU one offers the GPUs the study asks for."""
    if partitions is None:
        return [Check("Slurm", True, "sinfo not found: not a Slurm host", decides=False)]
    slurm, checks = config["slurm"], []
    cpu = slurm["cpu_partition"]
    checks.append(Check(f"partition {cpu}", cpu in partitions,
                        "exists" if cpu in partitions else
                        f"not found; sinfo lists {sorted(partitions)}: set slurm.cpu_partition"))
    wanted = requested_gpus(config)
    if wanted:
        gpu = slurm["gpu_partition"]
        gres = partitions.get(gpu)
        models = {r.get("gpu_model") for r in config["resources"].values()
                  if r.get("gpu") and r.get("gpu_model")}
        if gres is None:
            checks.append(Check(f"partition {gpu}", False, f"not found; sinfo lists "
                                f"{sorted(partitions)}: set slurm.gpu_partition"))
        elif "gpu" not in gres:
            checks.append(Check(f"partition {gpu}", False, f"offers no GPU GRES ({gres or 'none'})"
                                "; set slurm.gpu_partition to a partition with GPUs"))
        else:
            missing = sorted(m for m in models if f"gpu:{m}" not in gres)
            lacking = (f"; no {', '.join(missing)} GPUs there: fix resources.<stage>.gpu_model"
                       if missing else "")
            checks.append(Check(f"partition {gpu}", not missing, f"GRES {gres}{lacking}"))
    return checks


def read_throughput(path: Path = THROUGHPUT) -> list[dict]:
    """The rows of the throughput table: stage, model, setting, gpu, throughput, unit, source."""
    if not path.is_file():
        raise DataError(f"{path} is missing: the cost estimate needs its throughput table.")
    rows, header = [], None
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.strip().startswith("|") or set("".join(cells)) <= set("-: "):
            continue
        if header is None:
            header = [c.lower() for c in cells]
            continue
        rows.append(dict(zip(header, cells, strict=False)))
    return rows


def cost_lines(config: dict, base: Path, rows: list[dict]) -> list[Check]:
    """GPU-hours per stage from the throughput table (informative)."""
    from synreal.cost import study_cost

    try:
        costs = study_cost(config, base, rows)
    except (DataError, ConfigError) as error:
        return [Check("cost", False, str(error), decides=False)]
    total = sum(hours for hours, _ in costs.values())
    lines = [Check(f"cost {stage}", True, f"{hours:.1f} GPU-h ({how})", decides=False)
             for stage, (hours, how) in costs.items()]
    if config.get("audit"):
        from synreal.cost import audit_cost

        try:
            hours, how, unit = audit_cost(config, base, rows)
        except (DataError, ConfigError) as error:
            lines.append(Check("cost audit", False, f"not estimated: {error}", decides=False))
        else:
            lines.append(Check("cost audit", True, f"{hours:.1f} {unit} ({how})",
                               decides=False))
            total += hours if unit == "GPU-h" else 0.0
    return lines + [Check("cost total", True, f"{total:.1f} GPU-h", decides=False)]


# ---------------------------------------------------------------- the report

def run_checks(configfile: Path, login_node: bool = False, cuda: CudaView | None = None,
               smi: list[dict] | None = None, partitions: dict | None | str = "ask",
               throughput: Path = THROUGHPUT) -> list[Check]:
    """Every check of the study in ``configfile`` (the probes are injectable for tests)."""
    base = Path.cwd()
    try:
        config = load_config(configfile, check_paths=False)
    except ConfigError as error:
        return [Check("config", False, str(error))]
    checks = [Check("config", True, f"{configfile} is valid")]
    checks += check_gpus(config, cuda or probe_cuda(), nvidia_smi() if smi is None else smi,
                         login_node)
    checks += check_datasets(config, base) + check_weights(config, base)
    checks.append(check_disk(config, base))
    checks += check_slurm(config, sinfo_partitions() if partitions == "ask" else partitions)
    try:
        checks += cost_lines(config, base, read_throughput(throughput))
    except DataError as error:
        checks.append(Check("cost", False, str(error), decides=False))
    return checks


def main(argv: list[str] | None = None) -> int:
    """Print the checks; exit 0 only when the study can run here."""
    parser = argparse.ArgumentParser(prog="python -m synreal doctor", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configfile", required=True, type=Path, help="the study file")
    parser.add_argument("--login-node", action="store_true",
                        help="a node without GPUs that submits jobs: GPU checks are notes")
    args = parser.parse_args(argv)
    try:
        checks = run_checks(args.configfile, login_node=args.login_node)
    except SynrealError as error:
        print(f"synreal doctor: error: {error}", file=sys.stderr)
        return 2
    for check in checks:
        print(check.line())
    failed = [c for c in checks if c.decides and not c.ok]
    verdict = ("the study can run here" if not failed else
               f"{len(failed)} check(s) failed: the study cannot run here yet")
    print(f"synreal doctor: {verdict}")
    return 0 if not failed else 1
