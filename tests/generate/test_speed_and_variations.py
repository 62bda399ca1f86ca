"""Image-variation preprocessing from the model card; DPM-Solver++ 2M and the speed options."""

import numpy as np
import pytest
import torch
from PIL import Image

from synreal.generate import GenerateParams, generate_dataset
from synreal.generate.diffusers_backends import variation_condition
from synreal.generate.loading import load_pipeline


def _photo(size=64, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def test_variation_condition_is_the_model_cards_transform():
    """lambdalabs/sd-image-variations-diffusers v2.0 card: no anti-aliasing, bicubic, CLIP."""
    from torchvision import transforms

    card = transforms.Compose([
        transforms.ToTensor(),
        transforms.Resize((224, 224), interpolation=transforms.InterpolationMode.BICUBIC,
                          antialias=False),
        transforms.Normalize([0.48145466, 0.4578275, 0.40821073],
                             [0.26862954, 0.26130258, 0.27577711]),
    ])
    images = [_photo(512, 0), _photo(300, 1)]
    ours = variation_condition(images, 224)
    expected = torch.stack([card(im) for im in images])
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)
    aliased = transforms.Resize((224, 224), antialias=True)(transforms.ToTensor()(images[0]))
    assert not torch.allclose(ours[0] * 0.2686 + 0.4578, aliased, atol=0.05)


def test_variation_backend_conditions_on_that_tensor(tiny_pipelines, tmp_path, real_set,
                                                     monkeypatch):
    from synreal.generate.diffusers_backends import ImageVariationBackend

    seen = []
    original = ImageVariationBackend.generate

    def spy(self, jobs, seeds):
        call = self.pipe.__class__.__call__
        monkeypatch.setattr(self.pipe.__class__, "__call__",
                            lambda pipe, **kw: seen.append(kw["image"]) or call(pipe, **kw))
        return original(self, jobs, seeds)

    monkeypatch.setattr(ImageVariationBackend, "generate", spy)
    params = GenerateParams(backend="sd-image-variations", per_class=None, cfg_scale=8.0,
                            model_path=str(tiny_pipelines["sd-image-variations"]),
                            image_size=16, steps=2, batch_size=2)
    manifest = generate_dataset(params, tmp_path / "var", source_manifest=real_set,
                                progress=False)
    side = 32  # the tiny CLIP image encoder's input size
    first = real_set.sort_values("id").iloc[:2]["path"]
    expected = variation_condition([Image.open(p) for p in first], side)
    torch.testing.assert_close(seen[0], expected)
    assert "without antialias" in manifest["condition_preprocessing"][0]
    assert (manifest["cfg_scale"] == 8.0).all()


def test_dpm_solver_pp_2m_is_configured_and_named(tiny_pipelines, tmp_path):
    params = GenerateParams(backend="sdxl", model_path=str(tiny_pipelines["sdxl"]),
                            dataset="custom", classes=("cat",), per_class=2, image_size=16,
                            steps=3, scheduler="dpmpp_2m")
    manifest = generate_dataset(params, tmp_path, progress=False)
    assert (manifest["scheduler"] == "DPMSolverMultistepScheduler(dpmsolver++, order 2)").all()
    pipe = load_pipeline("sdxl", tiny_pipelines["sdxl"], scheduler="dpmpp_2m")
    assert pipe.scheduler.config.algorithm_type == "dpmsolver++"
    assert pipe.scheduler.config.solver_order == 2


def test_sdpa_channels_last_and_compile_options(tiny_pipelines):
    from diffusers.models.attention_processor import AttnProcessor2_0

    pipe = load_pipeline("sdxl", tiny_pipelines["sdxl"], channels_last=True, compile_unet=True)
    assert all(isinstance(p, AttnProcessor2_0)
               for model in (pipe.unet._orig_mod, pipe.vae)
               for p in model.attn_processors.values())
    conv = pipe.unet._orig_mod.conv_in.weight
    assert conv.is_contiguous(memory_format=torch.channels_last)
    assert type(pipe.unet).__name__ == "OptimizedModule"  # compiled lazily, on first call


def test_fp16_safe_vae_replaces_sdxls_and_is_recorded(tiny_pipelines, tmp_path):
    from safetensors.torch import load_file

    from synreal.generate.registry import create

    params = GenerateParams(backend="sdxl", model_path=str(tiny_pipelines["sdxl"]),
                            vae_path=str(tiny_pipelines["sdxl-vae"]), vae_id="tiny/vae-fix",
                            dataset="custom", classes=("cat",), per_class=1, image_size=16,
                            steps=2)
    backend = create("sdxl", params)
    weights = load_file(tiny_pipelines["sdxl-vae"] / "diffusion_pytorch_model.safetensors")
    torch.testing.assert_close(backend.pipe.vae.state_dict()["decoder.conv_in.weight"],
                               weights["decoder.conv_in.weight"])
    assert backend.pipe.vae.config.force_upcast is False
    manifest = generate_dataset(params, tmp_path, progress=False)
    assert manifest["vae_id"][0] == "tiny/vae-fix" and "+vae:" in manifest["model_hash"][0]
    with pytest.raises(Exception, match="vae_path"):
        create("sdxl", GenerateParams(**{**params.__dict__,
                                         "vae_path": str(tmp_path / "missing")}))


def test_every_weights_folder_is_checked_before_a_job(tiny_pipelines, tmp_path):
    from synreal.errors import ConfigError
    from synreal.generate.loading import check_weights

    params = {"backend": "sdxl", "model_path": str(tiny_pipelines["sdxl"]),
              "vae_path": str(tiny_pipelines["sdxl-vae"]),
              "captioner_path": str(tiny_pipelines["blip"])}
    check_weights(params, tmp_path)  # all present: nothing raised
    for key, wrong in [("vae_path", tmp_path / "none"), ("captioner_path", tiny_pipelines["sd"]),
                       ("model_path", tiny_pipelines["sdxl-vae"])]:
        with pytest.raises(ConfigError, match=rf"generators\.g\.params\.{key}: "):
            check_weights({**params, key: str(wrong)}, tmp_path, "generators.g.params")
    check_weights({"backend": "toy"}, tmp_path)  # the toy world loads no weights
