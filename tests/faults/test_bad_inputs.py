"""Bad configs and bad inputs: one sentence naming the key or file and the fix, nothing written.

Config mistakes are caught when Snakemake reads the config, before any job starts: the run
exits non-zero with exactly one ``synreal config error:`` line and creates no ``results/``.
Input mistakes only visible to a job (an empty dataset folder, classes that do not match the
folder, a features file made with another protocol, a results folder that cannot be written)
fail that job with one ``synreal <stage>: error:`` line in its log, no traceback, and no
``results/<stage>/<key>/spec.json`` nor any folder that looks finished.

Also covered elsewhere: a seed of the wrong type (tests/workflow/test_workflow.py), YAML and
schema errors of config files (tests/test_config.py), unknown stage params given on the CLI
(tests/test_cli.py), corrupt images (tests/faults/test_bad_images.py).
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from .conftest import snakemake, unfinished_leftovers


def _set(path: str, value):
    def mutate(config: dict) -> None:
        *parents, last = path.split(".")
        node = config
        for key in parents:
            node = node[key]
        node[last] = value

    return mutate


def _drop(path: str):
    def mutate(config: dict) -> None:
        *parents, last = path.split(".")
        node = config
        for key in parents:
            node = node[key]
        del node[last]

    return mutate


#: (case, change to the micro config, text the one sentence must contain).
CONFIG_CASES = [
    ("unknown top-level key", _set("studdy", {}), "'studdy'"),
    ("unknown stage param", _set("pretrain.params.learning_rate", 0.1),
     "pretrain.params.learning_rate"),
    ("unknown generator param", _set("generators.afhq_syn.params.guidance", 7.5),
     "generators.afhq_syn.params.guidance"),
    ("negative image count", _set("datasets.afhq.toyworld.train", -1),
     "datasets.afhq.toyworld.train"),
    ("negative epochs", _set("pretrain.params.epochs", -2), "epochs"),
    ("zero batch size", _set("pretrain.params.batch_size", 0), "batch_size"),
    ("negative per-class count", _set("generators.afhq_syn.params.per_class", -3),
     "per_class"),
    ("CFG scale of the wrong type", _set("generators.afhq_syn.params.cfg_scale", "high"),
     "generators.afhq_syn.params.cfg_scale"),
    ("probe learning rates not a list", _set("evaluation.probe.lrs", "0.1"),
     "evaluation.probe.lrs"),
    ("missing dataset path", _set("datasets.afhq", {"format": "afhq", "path": "no/afhq"}),
     "datasets.afhq.path"),
    ("missing weights path", _set("generators.afhq_syn.params",
                                  {"backend": "sdxl", "model_path": "weights/sdxl"}),
     "generators.afhq_syn.params.model_path"),
    ("dataset with path and toyworld",
     _set("datasets.afhq.path", "somewhere"), "give exactly one of them"),
    ("generator like an unknown dataset", _set("generators.afhq_syn.like", "cats"),
     "generators.afhq_syn.like"),
    ("pretraining on an unknown dataset", _set("pretrain.runs.real.real", "imagenet"),
     "pretrain.runs.real.real"),
    ("evaluation on an unknown dataset", _set("evaluation.dataset", "cifar"),
     "evaluation.dataset"),
    ("unknown table", _set("tables", ["main", "mian"]), "tables.1"),
    ("unknown dataset format", _set("datasets.afhq.format", "coco"), "datasets.afhq.format"),
    ("unknown on_corrupt policy", _set("datasets.afhq.on_corrupt", "ignore"),
     "datasets.afhq.on_corrupt"),
    ("unknown precision", _set("pretrain.params.precision", "fp8"), "precision"),
    ("negative GPU count", _set("resources", {"pretrain": {"gpu": -1}}),
     "resources.pretrain.gpu"),
    ("study without a name", _drop("study.name"), "'name'"),
]


@pytest.mark.parametrize("case, mutate, names", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_bad_config_is_one_sentence_before_any_job(case, mutate, names, micro_config, tmp_path):
    config = copy.deepcopy(micro_config)
    mutate(config)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = snakemake(tmp_path, "--cores", "1", config=path)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.startswith("synreal config")]
    assert len(lines) == 1, proc.stderr[-2000:]
    assert names in lines[0]
    assert lines[0].endswith("."), "one whole sentence"
    assert "Traceback" not in proc.stderr and 'File "' not in proc.stderr
    assert not (tmp_path / "results").exists(), "no job may start"


# ---- inputs only a job can see -------------------------------------------------------------

def _image_folder(root: Path, classes: dict[str, int], seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for name, count in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            array = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
            Image.fromarray(array).save(root / name / f"{i}.png")
    return root


def _real_study(tmp_path: Path, data: str, **extra) -> Path:
    config = {"study": {"name": "bad inputs"},
              "datasets": {"real": {"format": "imagefolder", "path": data}},
              "tables": ["datasets"], **extra}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _assert_failed_cleanly(proc, workdir: Path, stage: str, names: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    logs = list((workdir / "results" / "logs" / stage).glob("*.log"))
    assert len(logs) == 1, proc.stderr[-2000:]
    text = logs[0].read_text()
    errors = re.findall(rf"synreal {stage}: error: .*", text)  # may follow a progress bar
    assert len(errors) == 1 and names in errors[0], text[-2000:]
    assert "Traceback" not in text
    assert not list((workdir / "results" / stage).glob("*/spec.json"))
    assert unfinished_leftovers(workdir / "results") == []
    assert not list((workdir / "results" / stage).glob(".*.tmp-*"))


@pytest.mark.slow
def test_empty_dataset_folder(tmp_path):
    """Caught by the Snakefile's preflight: one sentence, before any job, nothing written."""
    (tmp_path / "data").mkdir()
    proc = snakemake(tmp_path, "--cores", "1", "table_datasets",
                     config=_real_study(tmp_path, "data"))
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "synreal config error" in line]
    assert len(errors) == 1 and "holds no images in the 'imagefolder' layout" in errors[0]
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


@pytest.mark.slow
def test_class_list_that_does_not_match_the_folder(tmp_path):
    _image_folder(tmp_path / "data", {"cat": 2, "dog": 2})
    generator = {"like": "real", "params": {"backend": "toy", "dataset": "custom",
                                            "classes": ["cat", "dog", "bird"], "image_size": 16}}
    config = _real_study(tmp_path, "data", generators={"syn": generator})
    proc = snakemake(tmp_path, "--cores", "1", "table_datasets", config=config)
    _assert_failed_cleanly(proc, tmp_path, "generate", "bird")


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "synreal", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})})


def test_features_file_from_another_protocol(tmp_path):
    from synreal.artifacts import atomic_artifact
    from synreal.data.formats import scan
    from synreal.data.manifest import build_manifest, manifest_hash, write_manifest
    from synreal.eval.features_io import write_features

    root = tmp_path / "data"
    for seed, split in enumerate(("train", "test")):
        _image_folder(root / split, {"a": 3, "b": 3}, seed)
    manifest, _ = build_manifest(root, scan("imagefolder", root))
    write_manifest(manifest, tmp_path / "manifest.parquet")
    features = tmp_path / "results" / "features" / "f00000000000"
    spec = {"stage": "features", "key": "f00000000000", "params": {"protocol": "cls"},
            "upstream": {"checkpoint": "pretrain/c00000000000"}}
    with atomic_artifact(features, spec) as out:  # a file made with dino_linear, not cls
        write_features(out / "features.parquet", np.eye(12, 4), manifest["id"],
                       manifest["split"], manifest["label"], manifest["label_name"],
                       manifest["path"], {"checkpoint_key": "pretrain/c00000000000",
                                          "protocol": "dino_linear",
                                          "manifest_hash": manifest_hash(manifest)})
    probe = {"params": {"train_split": "train", "test_split": "test", "steps": 2, "lrs": [0.1],
                        "weight_decays": [0.0], "bootstrap_resamples": 10},
             "upstream": {"features": "features/f00000000000"},
             "inputs": {"features": str(features / "features.parquet"),
                        "manifest": str(tmp_path / "manifest.parquet")}}
    out = tmp_path / "results" / "probe" / "p00000000000"
    proc = _cli("probe", "--spec-json", json.dumps(probe), "--out", str(out))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert "protocol" in proc.stderr and "features.parquet" in proc.stderr
    assert not out.exists() and not list(out.parent.glob(".*"))


def _read_only_results(workdir: Path):
    """Make ``workdir/results`` unwritable: chmod, or a read-only tmpfs when running as root."""
    results = workdir / "results"
    results.mkdir()
    if os.geteuid() != 0:
        results.chmod(0o555)
        return lambda: results.chmod(0o755)
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(results)],
                           capture_output=True)
    if mount.returncode != 0:
        pytest.skip("running as root without permission to mount a read-only tmpfs")
    return lambda: subprocess.run(["umount", str(results)], check=False)


def test_unwritable_results_folder(tmp_path):
    _image_folder(tmp_path / "data", {"a": 2})
    undo = _read_only_results(tmp_path)
    try:
        spec = {"stage": "ingest", "key": "i00000000000",
                "params": {"format": "imagefolder", "on_corrupt": "fail"},
                "inputs": {"root": str(tmp_path / "data")}}
        out = tmp_path / "results" / "ingest" / "i00000000000"
        proc = _cli("ingest", "--spec-json", json.dumps(spec), "--out", str(out))
    finally:
        undo()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert "cannot write" in proc.stderr and "results" in proc.stderr
    assert not out.exists()
