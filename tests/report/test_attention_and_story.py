"""Attention maps equal timm's own attention matrix; table findings say what the CIs say."""

import numpy as np
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


@pytest.mark.parametrize(("cell", "words", "verdict"), [
    (Cell(-0.10, -0.15, -0.05), "real pretraining is significantly better", story.CONSISTENT),
    (Cell(-0.01, -0.05, 0.03), "no significant difference", story.CANNOT_TELL),
    (Cell(0.01, -0.03, 0.05), "no significant difference", story.CANNOT_TELL),
    (Cell(0.10, 0.05, 0.15), "synthetic pretraining is significantly better",
     story.CONTRADICTS),
])
def test_main_finding_follows_the_sign_and_ci_of_the_paired_difference(cell, words, verdict):
    text = story.main({"linear top-1": cell}, "synthetic - real")
    assert words in text and text.endswith(f": {verdict}.")
    assert f"synthetic - real {100 * cell.estimate:+.1f} points" in text


def test_main_finding_names_the_negative_controls_other_columns_whose_ci_excludes_0():
    """The verdict reads linear top-1; the negative control's other columns are a caution."""
    controls = {"negative": Cell(0.0, -0.02, 0.02), "positive": Cell(-0.2, -0.3, -0.1)}
    others = {"k-NN top-1 (k=20)": Cell(0.01, -0.01, 0.03),
              "retrieval mAP": Cell(0.0015, 0.0006, 0.0024)}
    main = Cell(-0.10, -0.15, -0.05)
    text = story.main({"linear top-1": main}, "synthetic - real", controls, others)
    assert ("Outside linear top-1 the negative control's CI excludes 0 on retrieval mAP "
            "(negative - reference +0.1 points [+0.1, +0.2])") in text
    assert "Controls first: in linear top-1, the positive control" in text
    assert "k-NN" not in text and text.endswith(f": {story.CONSISTENT}.")
    # the demo's case: a CI below 0 that one decimal would write as [-0.0, -0.0]
    tiny = {"retrieval mAP": Cell(-0.00021, -0.00042, -0.00008)}
    assert ("retrieval mAP (negative - reference -0.02 points [-0.04, -0.01])"
            in story.main({"linear top-1": main}, "synthetic - real", controls, tiny))
    clean = {"retrieval mAP": Cell(0.001, -0.001, 0.003)}
    assert "Outside linear top-1" not in story.main({"linear top-1": main}, "synthetic - real",
                                                    controls, clean)


@pytest.mark.parametrize("failed", [False, True])
def test_main_finding_names_the_other_measures_whose_difference_excludes_0(failed):
    """The verdict reads linear top-1; a difference elsewhere whose CI excludes 0 is quoted
    with its sign and CI, not judged, and the Finding still ends with the verdict."""
    controls = {"negative": Cell(0.0, -0.02, 0.02),
                "positive": Cell(0.01, -0.01, 0.03) if failed else Cell(-0.2, -0.3, -0.1)}
    differences = {"linear top-1": Cell(-0.009, -0.03, 0.006),
                   "k-NN top-1 (k=20)": Cell(-0.001, -0.011, 0.009),
                   "retrieval mAP": Cell(0.0025, 0.0018, 0.0031)}
    text = story.main(differences, "synthetic - real", controls)
    assert ("no significant difference in linear top-1 (synthetic - real -0.9 points "
            "[-3.0, +0.6], CI contains 0; CI excluding 0 where the verdict does not read: on "
            "retrieval mAP synthetic - real +0.2 points [+0.2, +0.3])") in text, text
    assert "k-NN" not in text and text.endswith(f": {story.CANNOT_TELL}.")


def test_mix_ratio_finding_reads_the_trend_and_its_significance():
    rising = [(0, _cell(0.2)), (50, _cell(0.3)), (100, _cell(0.4))]
    assert story.mix_ratio(rising).endswith(story.CONSISTENT + ".")
    falling = [(0, _cell(0.4)), (50, _cell(0.3)), (100, _cell(0.2))]
    assert story.mix_ratio(falling).endswith(story.CONTRADICTS + ".")
    flat = [(0, _cell(0.2, 0.1)), (50, _cell(0.21, 0.1)), (100, _cell(0.22, 0.1))]
    # a rank correlation of +1 over 3 points has exact p = 1/3: no evidence either way
    assert story.mix_ratio(flat).endswith(story.CANNOT_TELL + "."), "a null is no agreement"


def test_mixdiff_finding_never_lets_a_collapsed_best_split_back_the_paper():
    top1 = {"real": Cell(0.30, 0.28, 0.32), "synthetic": Cell(0.29, 0.27, 0.31),
            "mixdiff_6l_2l": Cell(0.40, 0.38, 0.42), "mixdiff_2l_6l": Cell(0.31, 0.29, 0.33)}
    healthy = story.mixdiff(top1)
    assert "mixdiff_6l_2l at" in healthy and healthy.endswith(f"{story.CONSISTENT}.")
    flagged = story.mixdiff(top1, collapsed={"mixdiff_6l_2l"})
    assert "mixdiff_6l_2l (a collapsed run, its backbone may be degenerate)" in flagged
    assert flagged.endswith(f"{story.CANNOT_TELL}.")
    assert "collapsed" not in story.mixdiff(top1, collapsed={"mixdiff_2l_6l"})


def test_pretrain_finetune_finding_checks_the_papers_ranking():
    paper_order = {"mix/real": _cell(0.5), "mix/none": _cell(0.4),
                   "synthetic/real": _cell(0.3), "real/synthetic": _cell(0.2)}
    assert story.pretrain_finetune(paper_order).endswith(story.CONSISTENT + ".")
    paper_order["real/synthetic"] = _cell(0.9)
    contradicted = story.pretrain_finetune(paper_order)
    assert contradicted.endswith(story.CONTRADICTS + ".")
    # the Finding names the step that its CIs reverse
    assert "(real/synthetic above synthetic/real, CIs apart)" in contradicted
    close = {k: _cell(v, 0.2) for k, v in (("mix/real", 0.5), ("mix/none", 0.45),
                                            ("synthetic/real", 0.4), ("real/synthetic", 0.35))}
    assert story.pretrain_finetune(close).endswith(story.CANNOT_TELL + ".")


@pytest.mark.parametrize(("lift", "verdict"), [(0.2, story.CONSISTENT),
                                               (-0.1, story.CONTRADICTS),
                                               (0.01, story.CANNOT_TELL)])
def test_realtune_finding(lift, verdict):
    top1 = {"real/vanilla": _cell(0.5), "real/SynTune": _cell(0.3), "real/RealTune": _cell(0.45),
            "synthetic/vanilla": _cell(0.3), "synthetic/SynTune": _cell(0.2),
            "synthetic/RealTune": _cell(0.3 + lift)}
    assert story.realtune(top1).endswith(f"{verdict}.")
    # a tuning that barely moved its teacher is not judged, whatever the numbers
    still = story.realtune(top1, still_share=0.97)
    assert "kept 97 % of its starting weights" in still and still.endswith(
        f"{story.CANNOT_TELL}.")


def test_cfg_finding_needs_a_significant_rank_correlation():
    four = {2.0: 0.9, 4.0: 0.8, 6.0: 0.7, 8.0: 0.6}
    assert story.cfg(four, {}).endswith(story.CANNOT_TELL + ".")  # exact p = 2/24 with 4 points
    six = {float(s): 1.0 - s / 10 for s in range(2, 8)}
    assert story.cfg(six, {}).endswith(story.CONSISTENT + ".")
    assert story.cfg({s: -d for s, d in six.items()}, {}).endswith(story.CONTRADICTS + ".")


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


PASSING = {"random_init": Cell(0.05, 0.02, 0.08), "positive": Cell(-0.1, -0.15, -0.05),
           "negative": Cell(0.0, -0.01, 0.01)}


REALTUNE = {"real/vanilla": _cell(0.5), "real/SynTune": _cell(0.3), "real/RealTune": _cell(0.45),
            "synthetic/vanilla": _cell(0.3), "synthetic/SynTune": _cell(0.2),
            "synthetic/RealTune": _cell(0.5)}


@pytest.mark.parametrize(("finding", "verdict"), [
    (story.mix_ratio([(0, _cell(0.2)), (50, _cell(0.3)), (100, _cell(0.4))]), story.CONSISTENT),
    (story.pretrain_finetune({"mix/real": _cell(0.5), "mix/none": _cell(0.4),
                              "synthetic/real": _cell(0.3), "real/synthetic": _cell(0.2)}),
     story.CONSISTENT),
    (story.pretrain_finetune({"mix/real": _cell(0.2), "mix/none": _cell(0.4),
                              "synthetic/real": _cell(0.3), "real/synthetic": _cell(0.2)}),
     story.CONTRADICTS),
    (story.realtune(REALTUNE), story.CONSISTENT),  # its Finding starts "in SynBench ..."
    (story.realtune(REALTUNE, still_share=0.97), story.CANNOT_TELL),
])
def test_every_table_reads_the_main_tables_controls_first(finding, verdict):
    """Issue 21: a table's own verdict stands only where the controls passed."""
    assert finding.endswith(f": {verdict}.")
    assert story.controls_first(finding, {}) == finding  # a study without controls
    passed = story.controls_first(finding, PASSING)
    assert passed.startswith("Finding: Controls first (the study's, as table main reads them): "
                             "in linear top-1, pretraining on the real images adds to the "
                             "untrained backbone")
    own = finding.removeprefix("Finding: ")
    own = own[0].upper() + own[1:]  # a sentence of its own after the controls
    assert passed.endswith(f". {own}") and passed.endswith(f": {verdict}.")
    own = own.removesuffix(f": {verdict}.")
    for part, failing, reason in (
            ("positive", Cell(0.002, -0.004, 0.007), "does not detect a known large defect"),
            ("random_init", Cell(0.027, -0.001, 0.05), "not shown to depend on the pretraining"),
            ("negative", Cell(-0.03, -0.05, -0.01), "real data differs from other real data")):
        failed = story.controls_first(finding, {**PASSING, part: failing})
        assert reason in failed.lower() and "this table's comparison is not judged" in failed
        # its own comparison is still stated, with its case (Syn2Co, MixDiff) kept
        assert failed.endswith(f"not judged. {own}: {story.CANNOT_TELL}.")
        assert story.CONSISTENT not in failed and story.CONTRADICTS not in failed
    # controls that ran but read nothing are no pass
    unread = {part: Cell(np.nan, np.nan, np.nan) for part in PASSING}
    assert story.controls_first(finding, unread).endswith(f": {story.CANNOT_TELL}.")
    assert "no control could be computed" in story.controls_first(finding, unread)


def test_cfg_finding_quotes_top1_as_a_range_it_does_not_judge():
    """The verdict reads diversity; top-1 over the scales is quoted, with CIs, as a range."""
    diversity = {2.5: 0.12, 7.5: 0.10, 15.0: 0.08}
    top1 = {2.5: Cell(0.309, 0.28, 0.34), 7.5: Cell(0.338, 0.31, 0.37),
            15.0: Cell(0.339, 0.31, 0.37)}
    text = story.cfg(diversity, top1)
    assert ("linear top-1, which this verdict does not read, ranges from 30.9 [28.0, 34.0] % "
            "at scale 2.5 to 33.9 [31.0, 37.0] % at scale 15") in text, text
    assert "best downstream" not in text and text.endswith(story.CANNOT_TELL + ".")


@pytest.mark.parametrize(("lift", "versus", "verdict"), [
    (Cell(0.05, 0.02, 0.08), Cell(0.03, 0.01, 0.05), story.CONSISTENT),
    (Cell(0.007, -0.01, 0.02), Cell(0.01, -0.01, 0.03), story.CANNOT_TELL),
    (Cell(-0.05, -0.08, -0.02), Cell(0.01, -0.01, 0.03), story.CONTRADICTS),
])
def test_realtune_finding_reads_paired_differences(lift, versus, verdict):
    """Tuned and vanilla rows share seeds and test images: the verdict reads the paired
    differences' CIs, quoted with their signs, not whether two cells' CIs overlap."""
    top1 = {f"{run}/{t}": Cell(0.3, 0.28, 0.32) for run in ("real", "synthetic")
            for t in ("vanilla", "SynTune", "RealTune")}
    paired = {"synthetic: RealTune - vanilla": lift, "real: RealTune - SynTune": versus,
              "synthetic: RealTune - SynTune": versus}
    text = story.realtune(top1, None, paired)
    assert (f"paired by seed and test image, synthetic: RealTune - vanilla "
            f"{100 * lift.estimate:+.1f} points") in text
    assert f"real: RealTune - SynTune {100 * versus.estimate:+.1f} points" in text
    assert text.endswith(f": {verdict}."), text
    # a barely tuned teacher is still not judged
    assert story.realtune(top1, 0.97, paired).endswith(f": {story.CANNOT_TELL}.")
