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


def plot_seeds(panels: dict[str, list[tuple[str, list[float], Cell]]], path: Path,
               title: str) -> Path:
    """One panel per metric: each row's seeds as dots, beside its mean and 95 % CI.

    ``panels``: metric title -> [(row label, each seed's value, the row's cell)], fractions.
    """
    import numpy as np

    fig = Figure(figsize=(3.2 * len(panels), 0.45 * max(len(v) for v in panels.values()) + 1.4))
    axes = np.atleast_1d(fig.subplots(1, len(panels), sharey=True))
    for ax, (metric, rows) in zip(axes, panels.items(), strict=True):
        for y, (_, seeds, cell) in enumerate(rows):
            ax.errorbar([100 * cell.estimate], [y - 0.15],
                        xerr=[[100 * (cell.estimate - cell.lo)], [100 * (cell.hi - cell.estimate)]],
                        fmt="s", color="black", capsize=3, markersize=4,
                        label="mean [95 % CI]" if y == 0 else None)
            ax.plot([100 * v for v in seeds], [y + 0.15] * len(seeds), "o", color="tab:blue",
                    alpha=0.7, markersize=4, label="each seed" if y == 0 else None)
        ax.set_title(metric, fontsize=8)
        ax.set_xlabel("%", fontsize=7)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    axes[0].set_yticks(range(len(next(iter(panels.values())))))
    axes[0].set_yticklabels([label for label, _, _ in next(iter(panels.values()))], fontsize=7)
    axes[0].invert_yaxis()
    axes[-1].legend(fontsize=6, loc="best")
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    return _save(fig, path)
