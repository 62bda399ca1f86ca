"""Which device a stage runs on, and one clear sentence when a GPU job has no usable GPU.

A rule whose study resources ask for GPUs says so to its job in ``SYNREAL_GPUS`` (see
``workflow/rules/common.smk``). Such a job must never fall back to the CPU without a word: a
24-hour pretraining run would then crawl on the CPU. So :func:`stage_device` refuses to start
when torch sees no GPU, when its CUDA build has no kernels for the card (compute capability
outside ``torch.cuda.get_arch_list()``) or when the driver is older than the build needs,
naming what torch sees and the fix. ``resources.<stage>.gpu: 0`` runs on the CPU on purpose,
and so does the rehearsal (``SYNREAL_FORCE_CPU=1``), which keeps the study's GPU resources
but runs every stage on the CPU.

Example:
    >>> cuda = CudaView(device_count=1, cuda_build="13.0", driver_api=12040,
    ...                 arch_list=("sm_80", "sm_90"), capabilities=((8, 0),), names=("A100",))
    >>> unusable_reason(cuda, 1)
    "torch's CUDA 13.0 build needs a driver for CUDA 13.0 or newer, this one supports 12.4"
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from synreal.errors import SynrealError

#: GPUs the job's resources ask for; set by every rule (0: the CPU on purpose).
ENV_GPUS = "SYNREAL_GPUS"
#: ``1``: run on the CPU whatever the resources say (the rehearsal).
ENV_FORCE_CPU = "SYNREAL_FORCE_CPU"
FIX = ("install the torch build that matches this driver and card (README, 'GPUs and "
       "drivers'), check `nvidia-smi` on this node, route the stage to a GPU partition, or "
       "set resources.{stage}.gpu: 0 to run it on the CPU on purpose")


class GpuUnavailable(SynrealError):
    """A stage asked for GPUs and this process cannot use them."""


@dataclass(frozen=True)
class CudaView:
    """What torch sees of the GPUs (all plain values, so tests can build any machine).

    Attributes:
        device_count: GPUs torch can enumerate (0 when CUDA fails to initialise).
        cuda_build: ``torch.version.cuda`` (None for a CPU-only build).
        driver_api: the driver's CUDA API version as an integer (12040 = 12.4), 0 if unknown.
        arch_list: the build's kernels, ``torch.cuda.get_arch_list()`` (``sm_XY``/``compute_XY``).
        capabilities: ``(major, minor)`` compute capability of each visible GPU.
        names: each visible GPU's name.
        init_error: why CUDA would not initialise, when it did not.
    """

    device_count: int
    cuda_build: str | None
    driver_api: int
    arch_list: tuple[str, ...]
    capabilities: tuple[tuple[int, int], ...]
    names: tuple[str, ...]
    init_error: str = ""

    def describe(self) -> str:
        """What torch sees, in a few words (for error messages and ``doctor``)."""
        build = f"CUDA {self.cuda_build} build" if self.cuda_build else "CPU-only build"
        driver = f"driver CUDA API {_version(self.driver_api)}" if self.driver_api else "no driver"
        cards = ", ".join(f"{n} (sm_{a}{b})"
                          for n, (a, b) in zip(self.names, self.capabilities, strict=True))
        return (f"torch sees {self.device_count} GPU(s){': ' + cards if cards else ''} "
                f"({build}, {driver})")


def _version(api: int) -> str:
    return f"{api // 1000}.{(api % 1000) // 10}"


def probe_cuda() -> CudaView:
    """Ask the installed torch what it sees (never raises)."""
    import torch

    build = torch.version.cuda
    driver = 0
    try:
        driver = int(torch._C._cuda_getDriverVersion()) if build else 0
    except (AttributeError, RuntimeError):
        driver = 0
    error, count = "", 0
    try:
        count = torch.cuda.device_count() if build else 0
        if count:
            torch.cuda.init()
    except (RuntimeError, AssertionError) as exc:  # no driver, driver too old
        error, count = str(exc).splitlines()[0], 0
    capabilities = tuple(torch.cuda.get_device_capability(i) for i in range(count))
    names = tuple(torch.cuda.get_device_name(i) for i in range(count))
    arch = tuple(torch.cuda.get_arch_list()) if build else ()
    return CudaView(count, build, driver, arch, capabilities, names, error)


def build_runs_card(arch_list: tuple[str, ...], capability: tuple[int, int]) -> bool:
    """Whether a build with these kernels runs a card of this compute capability.

    A ``sm_XY`` binary runs on the same major architecture at minor >= Y; ``compute_XY``
    (PTX) is compiled by the driver for any card of capability >= XY.
    """
    major, minor = capability
    for arch in arch_list:
        match = re.fullmatch(r"(sm|compute)_(\d+)(\d)[a-z]?", arch)
        if not match:
            continue
        kind, a, b = match.group(1), int(match.group(2)), int(match.group(3))
        if kind == "sm" and a == major and b <= minor:
            return True
        if kind == "compute" and (a, b) <= (major, minor):
            return True
    return False


def unusable_reason(cuda: CudaView, requested: int) -> str | None:
    """Why ``requested`` GPUs cannot be used by this torch, or None when they can."""
    if not cuda.cuda_build:
        return "the installed torch is a CPU-only build"
    if cuda.driver_api and cuda.driver_api // 1000 < int(cuda.cuda_build.split(".")[0]):
        return (f"torch's CUDA {cuda.cuda_build} build needs a driver for CUDA "
                f"{cuda.cuda_build.split('.')[0]}.0 or newer, this one supports "
                f"{_version(cuda.driver_api)}")
    if cuda.device_count == 0:
        why = f": {cuda.init_error}" if cuda.init_error else ""
        return f"{cuda.describe()}{why}"
    for name, capability in zip(cuda.names, cuda.capabilities, strict=True):
        if not build_runs_card(cuda.arch_list, capability):
            return (f"{name} has compute capability {capability[0]}.{capability[1]}, which "
                    f"torch's CUDA {cuda.cuda_build} build does not cover (its kernels: "
                    f"{', '.join(cuda.arch_list)})")
    if cuda.device_count < requested:
        return f"{cuda.describe()}, fewer than the {requested} asked for"
    return None


def requested_gpus() -> int | None:
    """GPUs the job's resources ask for, or None when the stage runs outside a rule."""
    value = os.environ.get(ENV_GPUS, "").strip()
    return int(value) if value else None


def stage_device(stage: str, probe=probe_cuda) -> str:
    """``cuda`` or ``cpu`` for this stage's process; raise when asked GPUs are unusable.

    Outside a rule (no ``SYNREAL_GPUS``, e.g. a stage run by hand) the first usable GPU is
    used when there is one, else the CPU.
    """
    if os.environ.get(ENV_FORCE_CPU) == "1":
        return "cpu"
    requested = requested_gpus()
    if requested == 0:
        return "cpu"
    cuda = probe()
    reason = unusable_reason(cuda, requested or 1)
    if reason is None:
        return "cuda"
    if requested is None:
        return "cpu"
    raise GpuUnavailable(f"the {stage} stage asks for {requested} GPU(s) but {reason}; "
                         + FIX.format(stage=stage) + ".")
