"""Training curves of a DINO run: loss, teacher entropy and KL to uniform per step."""

from __future__ import annotations

import json
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def plot_training_log(log_path: Path, out_path: Path) -> Path:
    """Plot ``train_log.jsonl`` to a PNG: loss (left) and collapse statistics (right)."""
    rows = [json.loads(line) for line in Path(log_path).read_text().splitlines() if line]
    steps = [r["step"] for r in rows]
    figure = Figure(figsize=(9, 3.2))
    FigureCanvasAgg(figure)
    loss_ax, stats_ax = figure.subplots(1, 2)
    loss_ax.plot(steps, [r["loss"] for r in rows], lw=1)
    loss_ax.set(xlabel="step", ylabel="DINO loss", title="loss")
    stats_ax.plot(steps, [r["teacher_entropy"] for r in rows], lw=1, label="teacher entropy")
    stats_ax.plot(steps, [r["kl_to_uniform"] for r in rows], lw=1, label="KL(mean || uniform)")
    if rows:
        stats_ax.axhline(rows[0].get("log_k", 0) or 0, color="grey", lw=0.5)
    stats_ax.set(xlabel="step", title="collapse monitor")
    stats_ax.legend(fontsize=7)
    figure.tight_layout()
    tmp = Path(out_path).with_suffix(".tmp.png")
    figure.savefig(tmp, dpi=110)
    tmp.replace(out_path)
    return Path(out_path)
