"""Attention maps equal timm's own attention matrix; table findings say what the CIs say."""

import pytest
import torch

from synreal.dino.backbones import create_backbone
from synreal.report import story
from synreal.report.attention import last_block_attention
from synreal.report.metrics import Cell


@pytest.mark.parametrize("arch", ["vit_tiny_demo", "vit_tiny_demo_avgpool"])
def test_attention_equals_timms_unfused_attention_matrix(arch):
    torch.manual_seed(0)
    model = create_backbone(arch, 32).eval()
    images = torch.randn(2, 3, 32, 32)
    ours = last_block_attention(model, images)
    attention = model.blocks[-1].attn
    attention.fused_attn = False  # timm then materialises softmax(qk^T) before attn_drop
    seen = {}
    handle = attention.attn_drop.register_forward_hook(
        lambda module, args, output: seen.__setitem__("attn", output))
    with torch.no_grad():
        model(images)
    handle.remove()
    prefix = model.num_prefix_tokens
    # the CLS query; for a mean-patch embedding, the mean over the patch queries
    queries = seen["attn"][:, :, 0:1] if arch == "vit_tiny_demo" else seen["attn"][:, :, prefix:]
    reference = queries[..., prefix:].mean(dim=2).reshape(ours.shape)
    assert ours.shape == (2, 3, 4, 4)  # 3 heads, 32 px / patch 8
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours.sum(dim=(-1, -2)), torch.ones(2, 3) -
                               queries[..., :prefix].sum(dim=-1).mean(dim=2),
                               rtol=1e-5, atol=1e-6)


def _cell(estimate, half=0.02):
    return Cell(estimate, estimate - half, estimate + half)


def test_main_finding_follows_the_paired_ci():
    assert "NOT consistent" in story.main({"linear top-1": Cell(-0.01, -0.05, 0.03)})
    assert "real pretraining is significantly better" in story.main(
        {"linear top-1": Cell(-0.1, -0.15, -0.05)})


def test_mix_ratio_finding_reads_the_trend():
    rising = [(0, _cell(0.2)), (50, _cell(0.3)), (100, _cell(0.4))]
    assert "+1.00" in story.mix_ratio(rising) and "NOT" not in story.mix_ratio(rising)
    falling = [(0, _cell(0.4)), (50, _cell(0.3)), (100, _cell(0.2))]
    assert "NOT consistent" in story.mix_ratio(falling)


def test_pretrain_finetune_finding_checks_the_papers_ranking():
    paper_order = {"mix/real": _cell(0.5), "mix/none": _cell(0.4),
                   "synthetic/real": _cell(0.3), "real/synthetic": _cell(0.2)}
    assert "NOT" not in story.pretrain_finetune(paper_order)
    paper_order["real/synthetic"] = _cell(0.9)
    assert "NOT consistent" in story.pretrain_finetune(paper_order)


@pytest.mark.parametrize(("lift", "verdict"), [(0.2, "consistent"), (-0.1, "NOT consistent")])
def test_realtune_finding(lift, verdict):
    top1 = {"real/vanilla": _cell(0.5), "real/SynTune": _cell(0.3), "real/RealTune": _cell(0.45),
            "synthetic/vanilla": _cell(0.3), "synthetic/SynTune": _cell(0.2),
            "synthetic/RealTune": _cell(0.3 + lift)}
    assert story.realtune(top1).endswith(f"{verdict} with the paper.")


def test_audit_cells_drop_unmeasured_images_and_bracket_the_estimate():
    import numpy as np

    from synreal.report.metrics import median_cell, rate_cell

    values = np.r_[np.ones(30), np.zeros(70), np.full(5, np.nan)]
    rate = rate_cell(values, 500, 0)
    assert rate.estimate == pytest.approx(0.3) and rate.lo < 0.3 < rate.hi
    assert rate_cell(np.full(3, np.nan), 500, 0) is None
    x = np.random.default_rng(0).normal(5.0, 1.0, 200)
    median = median_cell(x, 500, 0)
    assert median.estimate == pytest.approx(np.median(x)) and median.lo < median.estimate
    assert median.hi > median.estimate and median.hi - median.lo < 0.5
