"""No silent CPU: a stage whose resources ask for GPUs refuses to start without a usable one."""

import json
import os
import subprocess
import sys

import pytest

from synreal.gpus import CudaView, GpuUnavailable, build_runs_card, stage_device, unusable_reason

from .conftest import REPO

H100 = CudaView(1, "13.0", 13000, ("sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"),
                ((9, 0),), ("NVIDIA H100",))


def machine(**changes) -> CudaView:
    values = {**H100.__dict__, **changes}
    return CudaView(**values)


@pytest.mark.parametrize("arch, capability, runs", [
    (("sm_80", "sm_90"), (8, 0), True),
    (("sm_80", "sm_90"), (8, 6), True),       # sm_80 binaries run on sm_86
    (("sm_80", "sm_90"), (7, 0), False),      # V100 with a build from sm_75 up: no
    (("sm_75", "sm_80"), (9, 0), False),      # no sm_9x, no PTX
    (("sm_75", "compute_80"), (9, 0), True),  # PTX is compiled by the driver
    (("sm_90a",), (9, 0), True),
    (("sm_100",), (10, 0), True),
    (("sm_120",), (10, 0), False),
])
def test_build_runs_card_follows_binary_and_ptx_compatibility(arch, capability, runs):
    assert build_runs_card(arch, capability) is runs


def test_a_usable_gpu_has_no_reason():
    assert unusable_reason(H100, 1) is None


@pytest.mark.parametrize("cuda, words", [
    (machine(cuda_build=None, device_count=0, driver_api=0, arch_list=(), capabilities=(),
             names=()), "CPU-only build"),
    (machine(driver_api=12040), "needs a driver for CUDA 13.0 or newer, this one supports 12.4"),
    (machine(device_count=0, capabilities=(), names=(), init_error="no CUDA-capable device"),
     "torch sees 0 GPU(s)"),
    (machine(capabilities=((7, 0),), names=("Tesla V100",)),
     "Tesla V100 has compute capability 7.0, which torch's CUDA 13.0 build does not cover"),
])
def test_each_unusable_machine_is_named(cuda, words):
    assert words in unusable_reason(cuda, 1)


def test_fewer_gpus_than_asked_is_a_reason():
    assert "fewer than the 2 asked for" in unusable_reason(H100, 2)


def test_stage_device_refuses_in_one_sentence(monkeypatch):
    monkeypatch.setenv("SYNREAL_GPUS", "1")
    monkeypatch.delenv("SYNREAL_FORCE_CPU", raising=False)
    with pytest.raises(GpuUnavailable) as error:
        stage_device("pretrain", probe=lambda: machine(driver_api=12040))
    text = str(error.value)
    assert text.startswith("the pretrain stage asks for 1 GPU(s) but torch's CUDA 13.0 build")
    assert "resources.pretrain.gpu: 0" in text and text.count(". ") == 0


def test_gpu_zero_and_the_rehearsal_run_on_the_cpu_on_purpose(monkeypatch):
    def broken():
        raise AssertionError("gpu: 0 must not even look at the GPUs")

    monkeypatch.setenv("SYNREAL_GPUS", "0")
    assert stage_device("features", probe=broken) == "cpu"
    monkeypatch.setenv("SYNREAL_GPUS", "1")
    monkeypatch.setenv("SYNREAL_FORCE_CPU", "1")
    assert stage_device("features", probe=broken) == "cpu"


def test_a_usable_gpu_is_used(monkeypatch):
    monkeypatch.setenv("SYNREAL_GPUS", "1")
    monkeypatch.delenv("SYNREAL_FORCE_CPU", raising=False)
    assert stage_device("features", probe=lambda: H100) == "cuda"


def test_a_gpu_job_on_this_cpu_machine_stops_before_any_output(tmp_path):
    """The real CLI, the real torch of this machine (CPU-only or no GPU): exit 2, one line."""
    env = {**os.environ, "SYNREAL_GPUS": "1", "PYTHONPATH": str(REPO / "src")}
    env.pop("SYNREAL_FORCE_CPU", None)
    env.pop("CUDA_VISIBLE_DEVICES", None)
    spec = json.dumps({"params": {"layout": "afhq", "per_class": {"train": 1}}})
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "synreal", "toyworld", "--spec-json", spec,
                           "--out", str(out)], capture_output=True, text=True, env=env,
                          check=False)
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a usable GPU")
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(
        "synreal toyworld: error: the toyworld stage asks for 1 GPU(s) but "), lines
    assert not out.exists() and not list(tmp_path.glob(".*"))
