"""Audit figures in SynBench's form (Fig. 5a-c); Fig. 4 reuses the eval confusion matrix.

Box plots of object scale and brightness (Fig. 5a/5b), person-blocking rates (Fig. 5c);
the consistency confusion matrix (Fig. 4) is
:func:`synreal.eval.plots.plot_confusion_matrix`.

Drawn on matplotlib's Agg canvas (no pyplot), so plotting works in headless jobs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _save(fig: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=120)
    tmp.replace(path)
    return path


def plot_distributions(values: dict[str, np.ndarray], path: Path, ylabel: str,
                       title: str) -> Path:
    """Box plots, one per dataset: box = 25/50/75 % quantiles, whiskers = 5/95 %.

    Args:
        values: ``{dataset name: (n,) values}``; NaNs (not measured) are dropped.
    """
    names = list(values)
    data = [np.asarray(v, dtype=float)[np.isfinite(np.asarray(v, dtype=float))]
            for v in values.values()]
    fig = Figure(figsize=(max(3.0, 1.2 * len(names) + 1.5), 4))
    ax = fig.add_subplot()
    ax.boxplot([d if len(d) else [np.nan] for d in data], whis=(5, 95), showfliers=False)
    ax.set_xticks(range(1, len(names) + 1), labels=names, rotation=20)
    ax.set(ylabel=ylabel, title=title)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def plot_rates(rates: dict[str, float | None], path: Path, ylabel: str, title: str) -> Path:
    """Bars of one rate per dataset; a dataset whose rate is None is labelled 'not measured'."""
    names = list(rates)
    fig = Figure(figsize=(max(3.0, 1.2 * len(names) + 1.5), 4))
    ax = fig.add_subplot()
    heights = [100 * r if r is not None and np.isfinite(r) else 0.0 for r in rates.values()]
    ax.bar(range(len(names)), heights, color="#4c72b0")
    for i, r in enumerate(rates.values()):
        text = "not measured" if r is None or not np.isfinite(r) else f"{100 * r:.2f}%"
        ax.text(i, heights[i], text, ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(names)), labels=names, rotation=20)
    ax.set(ylabel=ylabel, title=title)
    fig.tight_layout()
    return _save(fig, path)
