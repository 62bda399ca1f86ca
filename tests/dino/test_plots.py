"""The loss-curve figure draws every monitor statistic a log has, old logs included."""

import json

import pytest
from PIL import Image

from synreal.dino import plots


def _log(path, keys):
    rows = [{"step": s, "loss": 5.0 - 0.1 * s, **{k: 1.0 + 0.01 * s for k in keys}}
            for s in range(20)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("keys", [list(plots.MONITOR_CURVES),
                                  ["teacher_entropy", "kl_to_uniform"]])  # before the MI
def test_training_log_plot(tmp_path, monkeypatch, keys):
    drawn = []
    real_subplots = plots.Figure.subplots

    def spy(figure, *args, **kwargs):
        axes = real_subplots(figure, *args, **kwargs)
        drawn.append(axes[1])
        return axes

    monkeypatch.setattr(plots.Figure, "subplots", spy)
    out = plots.plot_training_log(_log(tmp_path / "log.jsonl", keys), tmp_path / "curve.png",
                                  out_dim=256)
    with Image.open(out) as image:
        assert image.format == "PNG"
    labels = [line.get_label() for line in drawn[0].get_lines()]
    assert labels == [plots.MONITOR_CURVES[k] for k in keys] + ["log K"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curve.png", "log.jsonl"]
