"""Does a table tell the paper's qualitative story? One plain sentence per table.

Each function states the paper's finding, then what our numbers say, judged on point
estimates and, where it matters, on whether the 95 % CIs separate. At toy scale the answer
is often "no": the table must say so rather than leave readers to infer it.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr

from synreal.report.metrics import Cell


def _pct(cell: Cell) -> str:
    return f"{100 * cell.estimate:.1f} %"


def _separated(a: Cell, b: Cell) -> bool:
    """``a`` above ``b`` with non-overlapping CIs."""
    return a.lo > b.hi


def _verdict(holds: bool) -> str:
    return "consistent with the paper" if holds else "NOT consistent with the paper"


def main(differences: dict[str, Cell]) -> str:
    """Real vs synthetic: the paired difference of linear top-1."""
    cell = differences["linear top-1"]
    if not np.isfinite(cell.estimate):
        return "Finding: no paired difference could be computed."
    if cell.hi < 0:
        here = f"real pretraining is significantly better ({100 * cell.estimate:+.1f} points)"
    elif cell.lo > 0:
        here = f"synthetic pretraining is significantly better ({100 * cell.estimate:+.1f})"
    else:
        here = (f"no significant difference (synthetic - real {100 * cell.estimate:+.1f} "
                "points, CI contains 0)")
    return (f"Finding: related work (SynBench, Syn2Co) finds real data better at equal size; "
            f"here {here}, {_verdict(cell.hi < 0)}.")


def mix_ratio(points: list[tuple[float, Cell]]) -> str:
    """Syn2Co Fig. 3: linear top-1 rises with the share of real images."""
    shares = [p for p, _ in points]
    scores = [c.estimate for _, c in points]
    rho = float(spearmanr(shares, scores).statistic) if len(set(scores)) > 1 else 0.0
    ends = _separated(points[-1][1], points[0][1])
    return (f"Finding: Syn2Co's top-1 rises with the real share; here the rank correlation of "
            f"top-1 with the real share is {rho:+.2f} and 100 % real "
            f"{'is' if ends else 'is not'} significantly above 0 % real, "
            f"{_verdict(rho > 0)}.")


def mixdiff(top1: dict[str, Cell]) -> str:
    """MixDiff Table 7: the best view split beats real-only and synthetic-only."""
    mixes = {k: v for k, v in top1.items() if k not in ("real", "synthetic")}
    best = max(mixes, key=lambda k: mixes[k].estimate)
    beats = all(mixes[best].estimate > top1[k].estimate for k in ("real", "synthetic"))
    significant = all(_separated(mixes[best], top1[k]) for k in ("real", "synthetic"))
    return (f"Finding: MixDiff's best split (1+6 real, 1+2 synthetic) beats both single-source "
            f"runs; here the best split is {best} at {_pct(mixes[best])}, "
            f"{'above' if beats else 'not above'} both single-source runs"
            f"{' (CIs separate)' if significant else ' (CIs overlap)'}, {_verdict(beats)}.")


def realtune(top1: dict[str, Cell]) -> str:
    """SynBench Table 10: RealTune lifts DINO-Syn far more than SynTune does."""
    if not {"synthetic/RealTune", "synthetic/vanilla"} <= set(top1):
        return ("Finding: not judged (the paper's comparison needs the runs named real and "
                "synthetic in realtune.runs).")
    lift = top1["synthetic/RealTune"].estimate - top1["synthetic/vanilla"].estimate
    over_syntune = all(top1[f"{run}/RealTune"].estimate > top1[f"{run}/SynTune"].estimate
                       for run in ("real", "synthetic") if f"{run}/SynTune" in top1)
    holds = lift > 0 and over_syntune
    return (f"Finding: in SynBench RealTune lifts synthetic-pretrained DINO by 25 points and "
            f"beats SynTune; here RealTune changes it by {100 * lift:+.1f} points and "
            f"{'beats' if over_syntune else 'does not beat'} SynTune everywhere, "
            f"{_verdict(holds)}.")


def pretrain_finetune(top1: dict[str, Cell]) -> str:
    """SynBench Table 3: Mix-Real > Mix-None > Syn-Real > Real-Syn."""
    order = ["mix/real", "mix/none", "synthetic/real", "real/synthetic"]
    ours = sorted(order, key=lambda k: -top1[k].estimate)
    return (f"Finding: SynBench ranks {' > '.join(order)}; here the ranking of those four is "
            f"{' > '.join(ours)}, {_verdict(ours == order)}.")


def cfg(diversity: dict[float, float | None], top1: dict[float, Cell]) -> str:
    """Higher guidance lowers diversity (MixDiff Fig. 6, SynBench F1)."""
    known = {s: d for s, d in diversity.items() if d is not None}
    if len(known) < 2:
        return "Finding: diversity was not measured at two or more scales."
    rho = float(spearmanr(list(known), list(known.values())).statistic)
    best = (f"; the best downstream top-1 is at scale {max(top1, key=lambda s: top1[s].estimate)}"
            if top1 else "")
    return (f"Finding: stronger guidance lowers diversity; here the rank correlation of "
            f"diversity with the scale is {rho:+.2f}{best}, {_verdict(rho < 0)}.")
