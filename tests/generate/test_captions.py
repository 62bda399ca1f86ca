"""SynBench's "class name, caption" prompts: a local captioner over the real training images."""

import json

import pandas as pd
import pyarrow.parquet as pq
import pytest

from synreal.errors import ConfigError, DataError
from synreal.generate import GenerateParams, build_plan, generate_dataset
from synreal.generate.captions import CAPTIONS_FILE, ensure_captions
from synreal.generate.prompts import caption_subject


def _captions(rows):
    return pd.DataFrame(rows, columns=["id", "label_name", "caption"]).assign(sha256=None)


def test_prompts_are_class_name_then_the_caption_of_real_image_i():
    captions = _captions([("c0", "cat", "a cat on a sofa"), ("c1", "cat", "a cat in grass"),
                          ("d0", "dog", "a dog with a ball")])
    params = GenerateParams(backend="toy", dataset="afhq", classes=("cat", "dog"),
                            per_class=3, captioner_path="unused-by-the-plan")
    jobs = build_plan(params, captions=captions)
    cats = [j for j in jobs if j.label_name == "cat"]
    assert [j.prompt for j in cats] == ["cat, a cat on a sofa", "cat, a cat in grass",
                                        "cat, a cat on a sofa"]  # cycled over the real images
    assert [j.caption_source_id for j in cats] == ["c0", "c1", "c0"]
    assert {j.template for j in jobs} == {"{name}, {caption}"}
    assert [j.prompt for j in jobs if j.label_name == "dog"] == ["dog, a dog with a ball"] * 3


def test_wild_prompts_name_the_species_the_caption_names():
    assert caption_subject(("lion", "tiger", "fox"), "two Tigers resting", 0) == "tiger"
    assert caption_subject(("lion", "tiger", "fox"), "an animal in the snow", 4) == "tiger"
    captions = _captions([("w0", "wild", "a fox in the snow"), ("w1", "wild", "a lion")])
    params = GenerateParams(backend="toy", dataset="afhq", classes=("wild",), per_class=2,
                            captioner_path="x")
    assert [j.prompt for j in build_plan(params, captions=captions)] == [
        "fox, a fox in the snow", "lion, a lion"]


def test_rare_scenarios_are_added_to_captioned_prompts():
    captions = _captions([(f"c{i}", "cat", "a cat") for i in range(3)])
    params = GenerateParams(backend="toy", dataset="afhq", classes=("cat",), per_class=3,
                            captioner_path="x", rare_scenarios=("scale", "person"))
    prompts = sorted(j.prompt for j in build_plan(params, captions=captions))
    assert prompts == ["cat occluded by human body, a cat",
                       "large cat occluded by human body, a cat",
                       "small cat occluded by human body, a cat"]


def test_a_class_without_captions_or_missing_captions_is_refused():
    params = GenerateParams(backend="toy", dataset="afhq", classes=("cat", "dog"),
                            per_class=1, captioner_path="x")
    with pytest.raises(DataError, match="'dog' has no captioned"):
        build_plan(params, captions=_captions([("c0", "cat", "a cat")]))
    with pytest.raises(ConfigError, match="no captions"):
        build_plan(params)


@pytest.mark.parametrize(("overrides", "key"), [
    ({"caption_template": "{caption}"}, "caption_template"),
    ({"caption_template": "a photo of a {name}"}, "caption_template"),
    ({"templates": ("a photo of a cat",)}, "templates"),
    ({"cfg_scale": 0.5}, "cfg_scale"),
    ({"vae_path": "weights/vae", "backend": "sd"}, "vae_path"),
])
def test_bad_prompts_and_guidance_fail_at_config_time_naming_the_key(overrides, key):
    from synreal.stages.generate import resolve

    with pytest.raises(ConfigError, match=key) as error:
        resolve(overrides)  # what plan building calls for each generator, before any job
    assert str(error.value).count(".") <= 3  # one sentence (a few dotted names allowed)


def test_captioner_runs_once_caches_and_names_its_file(tiny_pipelines, tmp_path, real_set,
                                                       monkeypatch):
    params = GenerateParams(backend="toy", dataset="custom", per_class=None, image_size=16,
                            captioner_path=str(tiny_pipelines["blip"]),
                            captioner_id="tiny/blip", caption_max_tokens=5)
    manifest = generate_dataset(params, tmp_path / "syn", source_manifest=real_set,
                                progress=False)
    cached = pd.read_parquet(tmp_path / "syn" / CAPTIONS_FILE)
    assert sorted(cached["id"]) == sorted(real_set["id"])
    assert (cached["caption"].str.len() > 0).all()
    assert manifest["caption_source_id"].isin(real_set["id"]).all()
    for row in manifest.itertuples():
        assert row.prompt == f"{row.label_name}, {row.caption}"
    meta = pq.read_schema(tmp_path / "syn" / "manifest.parquet").metadata
    assert meta[b"synreal.captions"] == CAPTIONS_FILE.encode()
    assert meta[b"synreal.captioner_id"] == b"tiny/blip"

    # a rerun reads the cache (the captioner is never loaded again) ...
    import synreal.generate.captions as captions_module

    monkeypatch.setattr(captions_module, "load_captioner",
                        lambda *a, **k: pytest.fail("captioner reloaded"))
    again = ensure_captions(params, tmp_path / "syn", real_set)
    pd.testing.assert_frame_equal(again, cached)
    # ... and other real images are captioned anew
    monkeypatch.undo()
    fewer = ensure_captions(params, tmp_path / "syn", real_set.iloc[:3])
    assert len(fewer) == 3


def test_captioner_of_another_kind_is_refused(tiny_pipelines, tmp_path, real_set):
    folder = tmp_path / "not-a-captioner"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "clip"}))
    params = GenerateParams(backend="toy", dataset="custom", per_class=None,
                            captioner_path=str(folder))
    with pytest.raises(ConfigError, match="blip-2"):
        generate_dataset(params, tmp_path / "out", source_manifest=real_set, progress=False)
    missing = GenerateParams(backend="toy", dataset="custom", per_class=None,
                             captioner_path=str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="captioner_path"):
        generate_dataset(missing, tmp_path / "out2", source_manifest=real_set, progress=False)


def test_sd_generates_from_captioned_prompts(tiny_pipelines, tmp_path, real_set):
    params = GenerateParams(backend="sd", model_path=str(tiny_pipelines["sd"]),
                            model_id="tiny/sd", dataset="custom", per_class=None,
                            image_size=16, steps=2, batch_size=2, shard_size=4, cfg_scale=2.0,
                            captioner_path=str(tiny_pipelines["blip"]), caption_max_tokens=4)
    manifest = generate_dataset(params, tmp_path / "syn", source_manifest=real_set,
                                progress=False)
    assert len(manifest) == len(real_set) and manifest["caption"].notna().all()
    assert (manifest["cfg_scale"] == 2.0).all()  # SynBench's guidance


@pytest.mark.parametrize("kind", ["blip", "blip-2"])
def test_both_captioner_kinds_load_and_caption_through_the_production_path(tiny_pipelines,
                                                                           tmp_path, real_set,
                                                                           kind):
    from synreal.generate.captions import captioner_class, captioner_folder, load_captioner

    params = GenerateParams(backend="toy", captioner_path=str(tiny_pipelines[kind]),
                            caption_max_tokens=4, caption_batch_size=3)
    assert captioner_class(captioner_folder(params)).startswith(
        "Blip2" if kind == "blip-2" else "BlipFor")
    processor, model = load_captioner(params)
    assert type(model).__name__ == captioner_class(captioner_folder(params))
    frame = ensure_captions(params, tmp_path / kind, real_set)
    assert len(frame) == len(real_set) and (frame["caption"].str.len() > 0).all()


def test_the_rehearsal_builds_the_captioner_the_study_names():
    from synreal.generate.loading import tiny_kind

    assert tiny_kind("captioner_path", {"captioner_id": "Salesforce/blip2-opt-2.7b"}) == "blip-2"
    assert tiny_kind("captioner_path",
                     {"captioner_id": "Salesforce/blip-image-captioning-base"}) == "blip"
    assert tiny_kind("vae_path", {}) == "sdxl-vae"
    assert tiny_kind("model_path", {"backend": "sd-image-variations"}) == "sd-image-variations"
