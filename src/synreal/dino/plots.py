"""Training curves of a DINO run: loss, and the collapse monitor's statistics per step."""

from __future__ import annotations

import json
import math
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

#: logged statistic -> curve label (logs written before a statistic existed lack it)
MONITOR_CURVES = {
    "teacher_entropy": "teacher entropy",
    "kl_to_uniform": "KL(mean || uniform)",
    "teacher_mi": "teacher MI(image; prototype)",
    "student_mi": "student MI(image; prototype)",
}


def plot_training_log(log_path: Path, out_path: Path, out_dim: int | None = None) -> Path:
    """Plot ``train_log.jsonl`` to a PNG: loss (left) and collapse statistics (right).

    With ``out_dim`` a grey line marks log K, where uniform collapse takes the entropy.
    """
    rows = [json.loads(line) for line in Path(log_path).read_text().splitlines() if line]
    steps = [r["step"] for r in rows]
    figure = Figure(figsize=(9, 3.2))
    FigureCanvasAgg(figure)
    loss_ax, stats_ax = figure.subplots(1, 2)
    loss_ax.plot(steps, [r["loss"] for r in rows], lw=1)
    loss_ax.set(xlabel="step", ylabel="DINO loss", title="loss")
    for key, label in MONITOR_CURVES.items():
        if rows and key in rows[0]:
            stats_ax.plot(steps, [r[key] for r in rows], lw=1, label=label)
    if out_dim:
        stats_ax.axhline(math.log(out_dim), color="grey", lw=0.5, label="log K")
    stats_ax.set(xlabel="step", ylabel="nats", title="collapse monitor")
    stats_ax.legend(fontsize=7)
    figure.tight_layout()
    tmp = Path(out_path).with_suffix(".tmp.png")
    figure.savefig(tmp, dpi=110)
    tmp.replace(out_path)
    return Path(out_path)
