"""The diffusers backends on tiny random pipelines, loaded through the production path."""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from synreal.errors import ConfigError
from synreal.generate import GenerateParams, generate_dataset, regenerate_image
from synreal.generate.loading import (
    SCHEDULERS,
    load_pipeline,
    model_hash,
    resolve_model_path,
    torch_dtype,
)

PIPELINE_CLASSES = {"sd": "StableDiffusionPipeline", "sdxl": "StableDiffusionXLPipeline",
                    "sd-image-variations": "StableDiffusionImageVariationPipeline"}


def params_for(kind: str, folder: Path, **overrides) -> GenerateParams:
    base = dict(backend=kind, model_path=str(folder), model_id=f"tiny/{kind}", per_class=2,
                image_size=16, steps=2, batch_size=2, shard_size=3, cfg_scale=5.0)
    return GenerateParams(**{**base, **overrides})


def test_missing_weights_say_what_to_download_and_where(tmp_path):
    with pytest.raises(ConfigError, match=r"stabilityai/sdxl-turbo.*hf download.*model_path"):
        resolve_model_path(tmp_path / "nope", "stabilityai/sdxl-turbo")
    with pytest.raises(ConfigError, match="not set"):
        resolve_model_path(None, "x/y")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="has no model_index.json"):
        resolve_model_path(tmp_path / "empty", "x/y")
    params = GenerateParams(backend="sd", model_path=str(tmp_path / "nope"), model_id="a/b",
                            per_class=1)
    with pytest.raises(ConfigError, match="a/b"):
        generate_dataset(params, tmp_path / "out", progress=False)


def test_hf_cache_layout_resolves_to_the_snapshot(tiny_pipelines, tmp_path):
    repo = tmp_path / "hub" / "models--tiny--sd"
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.parent.mkdir(parents=True)
    os.symlink(tiny_pipelines["sd"], snapshot)
    assert resolve_model_path(repo, "tiny/sd") == snapshot
    assert resolve_model_path(snapshot, "tiny/sd") == snapshot
    assert model_hash(snapshot) == model_hash(tiny_pipelines["sd"])


def test_cpu_dtype_rules():
    import torch

    assert torch_dtype("auto", "cpu") == torch.float32
    assert torch_dtype("auto", "cuda") == torch.float16
    with pytest.raises(ConfigError, match="fp32"):
        torch_dtype("fp16", "cpu")


@pytest.mark.parametrize("kind", list(PIPELINE_CLASSES))
def test_production_loading_path(tiny_pipelines, kind):
    pipe = load_pipeline(kind, tiny_pipelines[kind], device="cpu", scheduler="dpmpp_2m_karras")
    assert type(pipe).__name__ == PIPELINE_CLASSES[kind]
    assert getattr(pipe, "safety_checker", None) is None
    assert type(pipe.scheduler).__name__ == "DPMSolverMultistepScheduler"
    assert pipe.scheduler.config.use_karras_sigmas
    assert pipe.unet.dtype.is_floating_point and str(pipe.unet.dtype) == "torch.float32"


def test_unknown_scheduler_lists_known_ones(tiny_pipelines):
    with pytest.raises(ConfigError, match="euler_a"):
        load_pipeline("sd", tiny_pipelines["sd"], scheduler="karras-magic")
    assert "unipc" in SCHEDULERS


@pytest.mark.parametrize("kind", ["sd", "sdxl"])
def test_text_to_image_is_reproducible_and_recorded(tiny_pipelines, tmp_path, kind):
    params = params_for(kind, tiny_pipelines[kind], dataset="afhq", negative_prompt="blurry",
                        rare_scenarios=("brightness",), scheduler="euler")
    first = generate_dataset(params, tmp_path / "a", progress=False)
    again = generate_dataset(params, tmp_path / "b", progress=False)
    assert len(first) == 6 and first["id"].is_unique
    assert first["sha256"].tolist() == again["sha256"].tolist()
    assert (first["native_resolution"] == 32).all() and (first["width"] == 16).all()
    assert (first["model_id"] == f"tiny/{kind}").all()
    assert first["model_hash"].nunique() == 1 and len(first["model_hash"][0]) == 16
    assert (first["negative_prompt"] == "blurry").all()
    assert (first["scheduler"] == "EulerDiscreteScheduler").all()
    assert (first["steps"] == 2).all() and (first["cfg_scale"] == 5.0).all()
    assert first["sha256"].nunique() == 6


def test_image_is_independent_of_its_batch(tiny_pipelines):
    params = params_for("sd", tiny_pipelines["sd"], batch_size=3, per_class=1,
                        dataset="custom", classes=("cat", "dog", "fox"))
    alone = np.asarray(regenerate_image(params, "dog_000000"), dtype=np.int16)
    from synreal.generate.plan import build_plan
    from synreal.generate.registry import create
    from synreal.generate.run import resize

    jobs = build_plan(params)
    batch = create("sd", params).generate(jobs, [j.seed for j in jobs])
    in_batch = np.asarray(resize(batch[1].image, 16), dtype=np.int16)
    assert np.abs(alone - in_batch).max() <= 2  # float reductions may differ by a rounding


def test_image_variations_keep_the_real_id(tiny_pipelines, tmp_path, real_set):
    params = params_for("sd-image-variations", tiny_pipelines["sd-image-variations"],
                        per_class=None)
    manifest = generate_dataset(params, tmp_path / "var", source_manifest=real_set,
                                progress=False)
    assert len(manifest) == len(real_set)
    assert sorted(manifest["source_id"]) == sorted(real_set["id"])
    pairs = manifest.merge(real_set, left_on="source_id", right_on="id",
                           suffixes=("", "_real"))
    assert (pairs["label"] == pairs["label_real"]).all()
    assert (pairs["label_name"] == pairs["label_name_real"]).all()
    assert manifest["prompt"].isna().all()
    again = generate_dataset(params, tmp_path / "var2", source_manifest=real_set,
                             progress=False)
    assert manifest["sha256"].tolist() == again["sha256"].tolist()


def test_text_backend_matches_real_class_counts(tiny_pipelines, tmp_path, real_set):
    params = params_for("sd", tiny_pipelines["sd"], per_class=None, dataset="custom")
    manifest = generate_dataset(params, tmp_path, source_manifest=real_set, progress=False)
    pd.testing.assert_series_equal(
        manifest.groupby("label_name").size(), real_set.groupby("label_name").size())


def test_blank_pipeline_output_is_regenerated(tiny_pipelines, tmp_path, monkeypatch):
    from synreal.generate.diffusers_backends import DiffusersBackend

    original, blanked = DiffusersBackend.generate, []

    def first_black(self, jobs, seeds):
        out = original(self, jobs, seeds)
        if not blanked:
            blanked.append(jobs[0].id)
            out[0].image = Image.new("RGB", out[0].image.size)
        return out

    monkeypatch.setattr(DiffusersBackend, "generate", first_black)
    manifest = generate_dataset(params_for("sd", tiny_pipelines["sd"], per_class=1,
                                           dataset="custom", classes=("cat",)),
                                tmp_path, progress=False)
    assert manifest["regenerations"].tolist() == [1]


def test_sdxl_refiner_is_off_by_default_and_runs_when_asked(tiny_pipelines, tmp_path):
    base = params_for("sdxl", tiny_pipelines["sdxl"], per_class=1, dataset="custom",
                      classes=("cat",), steps=4)
    plain = generate_dataset(base, tmp_path / "base", progress=False)
    refined_params = GenerateParams(**{**base.__dict__, "use_refiner": True,
                                       "refiner_path": str(tiny_pipelines["sdxl-refiner"]),
                                       "refiner_id": "tiny/refiner", "refiner_start": 0.5})
    refined = generate_dataset(refined_params, tmp_path / "refined", progress=False)
    assert plain["model_id"][0] == "tiny/sdxl"
    assert refined["model_id"][0] == "tiny/sdxl+tiny/refiner"
    assert "+" in refined["model_hash"][0]
    assert refined["sha256"][0] != plain["sha256"][0]
    missing = GenerateParams(**{**refined_params.__dict__, "refiner_path": None})
    with pytest.raises(ConfigError, match="refiner_path"):
        generate_dataset(missing, tmp_path / "missing", progress=False)
