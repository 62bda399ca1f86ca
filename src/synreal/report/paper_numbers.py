"""Numbers the papers report for settings our tables reproduce, with where they come from.

Only numbers printed in the papers' text are listed; values shown only in figures (Syn2Co
Fig. 3) are not guessed. Our toy-scale numbers are not expected to match them: the tables
show them so the qualitative comparison (which row wins) can be read at a glance.
"""

from __future__ import annotations

#: SynBench/RealTune Table 10: DINO on ImageNet-100, top-1 after tuning.
REALTUNE_TABLE10 = {
    "source": "SynBench Table 10 (DINO, ImageNet-100 top-1)",
    "values": {("real", "vanilla"): 68.2, ("real", "SynTune"): 39.28,
               ("real", "RealTune"): 63.54, ("synthetic", "vanilla"): 35.48,
               ("synthetic", "SynTune"): 32.96, ("synthetic", "RealTune"): 60.58},
}

#: SynBench/RealTune Table 3, ViT row: supervised pretraining x fine-tuning, IN-100 top-1.
PRETRAIN_FINETUNE_TABLE3 = {
    "source": "SynBench Table 3 (ViT-Tiny, supervised, ImageNet-100 top-1)",
    "values": {("real", "none"): 44.7, ("real", "synthetic"): 41.7,
               ("synthetic", "none"): 40.6, ("synthetic", "real"): 48.4,
               ("mix", "none"): 50.9, ("mix", "real"): 54.0},
}

#: MixDiff Table 7: DINO view splits on ImageNet-100; the text gives the best one only.
MIXDIFF_TABLE7 = {
    "source": "MixDiff Table 7 (DINO, IN-100 top-1; only the best split is given in the text)",
    "values": {(1, 6, 1, 2): 78.24},
}


def paper_cell(table: dict, key) -> str:
    """The paper's number for ``key`` as a cell, or an em dash when it reports none."""
    value = table["values"].get(key)
    return "—" if value is None else f"{value:.1f}"
