"""Does a table tell the paper's qualitative story? One plain sentence per table.

Each function states the paper's finding, then what our numbers say, and one of three
verdicts (:func:`_verdict`): "consistent with the paper" only when the 95 % CIs (or a rank
test at p < 0.05) support the paper's direction, "contradicts the paper" when they support
the opposite one, and "the study cannot tell" otherwise. A null result is never agreement.
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


#: The three verdicts a Finding may end with.
CONSISTENT, CONTRADICTS, CANNOT_TELL = ("consistent with the paper", "contradicts the paper",
                                        "the study cannot tell at this scale")


def _verdict(supports: bool, opposes: bool) -> str:
    """The verdict: the CIs (or a significant test) back the paper's direction, or not."""
    if supports:
        return CONSISTENT
    return CONTRADICTS if opposes else CANNOT_TELL


def _points(label: str, cell: Cell) -> str:
    """``"label +1.6 points [+0.3, +2.9]"``: written as the table writes the cell."""
    if not np.isfinite(cell.estimate):
        return f"{label} n/a"
    estimate, interval = cell.plain(1, scale=100.0, sign="+").split(" ", 1)
    return f"{label} {estimate} points {interval}"


def controls_read(controls: dict[str, Cell]) -> tuple[str, str | None]:
    """What the controls say, and why the study cannot tell (None when all passed).

    ``controls``: part (negative, positive) -> its paired difference from the control
    reference, linear top-1; random_init -> real - random init. The positive control passes
    when its CI lies below 0 (the known defect is detected), the negative control when its
    CI covers 0 (real is no different from real), the random-init control when its CI lies
    above 0 (pretraining changed what the frozen features read). The first failure, in
    that order of reading (random init, positive, negative), is the reason given.
    """
    said, failed = [], None
    negative, positive = controls.get("negative"), controls.get("positive")
    pretraining = controls.get("random_init")
    if pretraining is not None and np.isfinite(pretraining.estimate):
        adds = pretraining.lo > 0
        said.append(f"pretraining on the real images "
                    f"{'adds' if adds else 'is NOT shown to add'} to the untrained backbone "
                    f"({_points('real - random init', pretraining)}"
                    f"{'' if adds else ', CI not above 0'})")
        if not adds:
            failed = ("the frozen features are not shown to depend on the pretraining at this "
                      "scale, so no choice of pretraining data can be expected to show in them")
    if positive is not None and np.isfinite(positive.estimate):
        detected = positive.hi < 0
        said.append(f"the positive control (class cues removed) is "
                    f"{'detected' if detected else 'NOT detected'} "
                    f"({_points('positive - reference', positive)})")
        if not detected:
            failed = failed or ("the pipeline does not detect a known large defect, so the "
                                "study cannot tell the answer at this scale")
    if negative is not None and np.isfinite(negative.estimate):
        clean = negative.lo <= 0 <= negative.hi
        said.append(f"the negative control (held-out real) "
                    f"{'shows no difference' if clean else 'SHOWS A DIFFERENCE'} "
                    f"({_points('negative - reference', negative)}"
                    f"{', CI contains 0' if clean else ''})")
        if not clean:
            failed = failed or ("real data differs from other real data here, so a "
                                "difference of this size is no evidence")
    if not said:  # controls ran, but none could be computed (no test image, say)
        return ("no control could be computed", "without a control that reads, the study "
                "cannot tell the answer at this scale")
    return "in linear top-1, " + "; ".join(said), failed


def controls_first(finding: str, controls: dict[str, Cell]) -> str:
    """``finding`` (a table's "Finding: ...: <verdict>.") after the main table's controls.

    ``controls`` as :func:`controls_read` takes them; none leaves the Finding as it is. When
    a control failed, the table's own comparison is still stated but not judged: the verdict
    becomes "the study cannot tell at this scale", with the control's reason, as the main
    table's Finding has it.
    """
    if not controls:
        return finding
    said, failed = controls_read(controls)
    body = finding.removeprefix("Finding: ")
    body = body[0].upper() + body[1:]  # a sentence of its own now ("in SynBench ...")
    first = f"Finding: Controls first (the study's, as table main reads them): {said}. "
    if not failed:
        return first + body
    for verdict in (CONSISTENT, CONTRADICTS, CANNOT_TELL):
        if body.endswith(f": {verdict}."):
            body = body.removesuffix(f": {verdict}.")
            break
    else:
        body = body.removesuffix(".")
    return (f"{first}{failed[0].upper()}{failed[1:]}; this table's comparison is not judged. "
            f"{body}: {CANNOT_TELL}.")


def negative_elsewhere(columns: dict[str, Cell]) -> str:
    """The negative control's other columns whose CI excludes 0, as a caution ("" if none).

    ``columns``: metric title -> the negative control's paired difference from the control
    reference, for the columns the verdict does not read. Real data differing from real data
    there says that a difference of that size in that column is no evidence.
    """
    shown = [f"{title} ({_points('negative - reference', cell)})"
             for title, cell in columns.items()
             if np.isfinite(cell.estimate) and not cell.lo <= 0 <= cell.hi]
    if not shown:
        return ""
    return (f"Outside linear top-1 the negative control's CI excludes 0 on {', '.join(shown)}: "
            f"there real differs from real by that much, so a difference of that size on that "
            f"measure is no evidence. ")


def main(differences: dict[str, Cell], label: str = "synthetic - real",
         controls: dict[str, Cell] | None = None,
         negative_columns: dict[str, Cell] | None = None) -> str:
    """Real vs synthetic: the paired difference of linear top-1 (``label``: "B - A").

    ``controls`` (part -> paired difference from the control reference, linear top-1;
    random_init -> real - random init) are read first: pretraining not shown to add to the
    untrained backbone, a positive control that is not detected, or a negative control that
    shows a difference makes the verdict "the study cannot tell", whatever the main
    difference.
    ``negative_columns`` (the negative control's differences in the other columns): each
    whose CI excludes 0 is named as a caution (:func:`negative_elsewhere`).
    """
    cell = differences["linear top-1"]
    if not np.isfinite(cell.estimate):
        return "Finding: no paired difference could be computed."
    points = _points(label, cell)
    # the other measures whose CI excludes 0 are named, not judged: the verdict reads one
    elsewhere = [f"on {title} {_points(label, other)}"
                 for title, other in differences.items()
                 if title != "linear top-1" and np.isfinite(other.estimate)
                 and not other.lo <= 0 <= other.hi]
    also = (f"; CI excluding 0 where the verdict does not read: {', '.join(elsewhere)}"
            if elsewhere else "")
    if cell.hi < 0:
        here = f"real pretraining is significantly better ({points}{also})"
    elif cell.lo > 0:
        here = f"synthetic pretraining is significantly better ({points}{also})"
    else:
        here = f"no significant difference in linear top-1 ({points}, CI contains 0{also})"
    first = ""
    if controls:
        said, failed = controls_read(controls)
        first = f"Controls first: {said}. {negative_elsewhere(negative_columns or {})}"
        if failed:
            return (f"Finding: {first}{failed[0].upper()}{failed[1:]}; the main comparison "
                    f"is not judged ({here}): {CANNOT_TELL}.")
    return (f"Finding: {first}Related work (SynBench, Syn2Co) finds real data better at equal "
            f"size; here {here}: {_verdict(cell.hi < 0, cell.lo > 0)}.")


def _rank(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Spearman's rho and its exact two-sided permutation p-value (rho 0, p 1 if constant).

    Exact over every ordering up to 8 points (a sweep or a mix curve has a handful, where the
    usual t approximation calls a perfect 4-point trend p = 0; the exact p is 1/12).
    """
    if len(set(ys)) < 2 or len(xs) < 3:
        return 0.0, 1.0
    rho = float(spearmanr(xs, ys).statistic)
    if len(xs) > 8:
        return rho, float(spearmanr(xs, ys).pvalue)
    from itertools import permutations

    rhos = [abs(float(spearmanr(xs, order).statistic)) for order in permutations(ys)]
    return rho, float(np.mean([r >= abs(rho) - 1e-12 for r in rhos]))


def mix_ratio(points: list[tuple[float, Cell]]) -> str:
    """Syn2Co Fig. 3: linear top-1 rises with the share of real images."""
    shares = [p for p, _ in points]
    rho, p = _rank(shares, [c.estimate for _, c in points])
    up = _separated(points[-1][1], points[0][1])
    down = _separated(points[0][1], points[-1][1])
    return (f"Finding: Syn2Co's top-1 rises with the real share; here the rank correlation of "
            f"top-1 with the real share is {rho:+.2f} (p = {p:.2f}) and 100 % real "
            f"{'is' if up else 'is not'} significantly above 0 % real: "
            f"{_verdict(up or (rho > 0 and p < 0.05), down or (rho < 0 and p < 0.05))}.")


def mixdiff(top1: dict[str, Cell], collapsed: set[str] = frozenset()) -> str:
    """MixDiff Table 7: the best view split beats real-only and synthetic-only.

    ``collapsed``: runs with a collapsed DINO run (any seed). A collapsed best split is named
    as such and cannot support the paper: its backbone may be degenerate.
    """
    mixes = {k: v for k, v in top1.items() if k not in ("real", "synthetic")}
    best = max(mixes, key=lambda k: mixes[k].estimate)
    beats = all(mixes[best].estimate > top1[k].estimate for k in ("real", "synthetic"))
    significant = all(_separated(mixes[best], top1[k]) for k in ("real", "synthetic"))
    beaten = any(_separated(top1[k], mixes[best]) for k in ("real", "synthetic"))
    degenerate = best in collapsed
    flag = " (a collapsed run, its backbone may be degenerate)" if degenerate else ""
    return (f"Finding: MixDiff's best split (1+6 real, 1+2 synthetic) beats both single-source "
            f"runs; here the best split is {best}{flag} at {_pct(mixes[best])}, "
            f"{'above' if beats else 'not above'} both single-source runs"
            f"{' (CIs separate)' if significant else ' (CIs overlap)'}: "
            f"{_verdict(significant and not degenerate, beaten)}.")


def realtune(top1: dict[str, Cell], still_share: float | None = None,
             paired: dict[str, Cell] | None = None) -> str:
    """SynBench Table 10: RealTune lifts DINO-Syn far more than SynTune does.

    ``still_share``: given when a tuned teacher kept more than STILL_SHARE of its starting
    weights (the largest such share): its tuning barely tuned, so the table cannot tell.
    ``paired``: the paired differences (seed i with seed i, on the same test images) that
    the verdict reads, as the main table's do: ``synthetic: RealTune - vanilla`` and, per
    pretrained run, ``<run>: RealTune - SynTune``. Without them, the cells' CIs are compared
    (separate or overlapping).
    """
    if paired:
        return _realtune_paired(top1, still_share, paired)
    if not {"synthetic/RealTune", "synthetic/vanilla"} <= set(top1):
        return ("Finding: not judged (the paper's comparison needs the runs named real and "
                "synthetic in realtune.runs).")
    if still_share is not None:
        return (f"Finding: RealTune and SynTune barely changed the backbones they tuned (a "
                f"tuned teacher kept {100 * still_share:.0f} % of its starting weights), so "
                f"the table is not judged: {CANNOT_TELL}.")
    tuned, vanilla = top1["synthetic/RealTune"], top1["synthetic/vanilla"]
    lift = tuned.estimate - vanilla.estimate
    up, down = _separated(tuned, vanilla), _separated(vanilla, tuned)
    runs = [run for run in ("real", "synthetic") if f"{run}/SynTune" in top1]
    over = all(_separated(top1[f"{run}/RealTune"], top1[f"{run}/SynTune"]) for run in runs)
    under = any(_separated(top1[f"{run}/SynTune"], top1[f"{run}/RealTune"]) for run in runs)
    beats = "significantly beats" if over else "does not significantly beat"
    return (f"Finding: in SynBench RealTune lifts synthetic-pretrained DINO by 25 points and "
            f"beats SynTune; here RealTune changes it by {100 * lift:+.1f} points "
            f"({'CIs separate' if up or down else 'CIs overlap'}) and {beats} SynTune: "
            f"{_verdict(up and over, down or under)}.")


def _realtune_paired(top1: dict[str, Cell], still_share: float | None,
                     paired: dict[str, Cell]) -> str:
    if still_share is not None or "synthetic: RealTune - vanilla" not in paired:
        return realtune(top1, still_share)
    lift = paired["synthetic: RealTune - vanilla"]
    versus = {k: v for k, v in paired.items() if k.endswith("RealTune - SynTune")}
    over = bool(versus) and all(cell.lo > 0 for cell in versus.values())
    under = any(cell.hi < 0 for cell in versus.values())
    beats = "significantly beats" if over else "does not significantly beat"
    quoted = "; ".join(_points(k, v) for k, v in versus.items())
    return (f"Finding: in SynBench RealTune lifts synthetic-pretrained DINO by 25 points and "
            f"beats SynTune; here, paired by seed and test image, "
            f"{_points('synthetic: RealTune - vanilla', lift)}, and RealTune {beats} SynTune"
            f"{f' ({quoted})' if quoted else ''}: "
            f"{_verdict(lift.lo > 0 and over, lift.hi < 0 or under)}.")


def pretrain_finetune(top1: dict[str, Cell]) -> str:
    """SynBench Table 3: Mix-Real > Mix-None > Syn-Real > Real-Syn."""
    order = ["mix/real", "mix/none", "synthetic/real", "real/synthetic"]
    ours = sorted(order, key=lambda k: -top1[k].estimate)
    pairs = list(zip(order, order[1:], strict=False))
    supports = all(_separated(top1[a], top1[b]) for a, b in pairs)
    reversed_steps = [f"{b} above {a}" for a, b in pairs if _separated(top1[b], top1[a])]
    why = ""
    if reversed_steps:
        why = f" ({', '.join(reversed_steps)}, CIs apart)"
    elif not supports:
        why = " (not every step separated by its CIs)"
    return (f"Finding: SynBench ranks {' > '.join(order)}; here the ranking of those four by "
            f"point estimate is {' > '.join(ours)}{why}: "
            f"{_verdict(supports, bool(reversed_steps))}.")


def cfg(diversity: dict[float, float | None], top1: dict[float, Cell]) -> str:
    """Higher guidance lowers diversity (SynBench F1, MixDiff Fig. 7).

    The verdict reads diversity only; downstream top-1 is quoted as its range over the
    scales, not judged (no paper states a direction for DINO on a text-to-image sweep).
    """
    known = {s: d for s, d in diversity.items() if d is not None}
    if len(known) < 2:
        return "Finding: diversity was not measured at two or more scales."
    rho, p = _rank(list(known), list(known.values()))
    best = ""
    if top1:
        low, high = (f(top1, key=lambda s: top1[s].estimate) for f in (min, max))
        best = (f"; linear top-1, which this verdict does not read, ranges from "
                f"{top1[low]} % at scale {low:g} to {top1[high]} % at scale {high:g}")
    return (f"Finding: stronger guidance lowers diversity; here the rank correlation of "
            f"diversity with the scale is {rho:+.2f} (p = {p:.2f}, {len(known)} scales){best}: "
            f"{_verdict(rho < 0 and p < 0.05, rho > 0 and p < 0.05)}.")
