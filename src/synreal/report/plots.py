"""Figures made from several artifacts at once (per-artifact plots live with their stage)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from synreal.eval.plots import _save
from synreal.report.metrics import Cell


def plot_mix_ratio(curves: dict[str, list[tuple[float, Cell]]], path: Path,
                   study: str) -> Path:
    """Syn2Co Fig. 3 style: each metric against the share of real images, with 95 % CIs."""
    fig = Figure(figsize=(5.5, 3.6))
    ax = fig.subplots()
    for title, points in curves.items():
        x = [p for p, _ in points]
        y = [100 * c.estimate for _, c in points]
        err = [[100 * (c.estimate - c.lo) for _, c in points],
               [100 * (c.hi - c.estimate) for _, c in points]]
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=title)
    ax.set_xlabel("real images in the pretraining set (%)")
    ax.set_ylabel("metric (%)")
    ax.set_xticks(sorted({p for points in curves.values() for p, _ in points}))
    ax.set_title(f"Real/synthetic mix at equal total ({study})", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)
