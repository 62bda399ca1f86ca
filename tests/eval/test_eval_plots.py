"""Evaluation plots render to PNG files with the expected frame colours."""

import numpy as np
import pytest
from PIL import Image

from synreal.eval.plots import plot_confusion_matrix, plot_retrieval_examples


def test_confusion_matrix_png(tmp_path):
    out = plot_confusion_matrix(np.array([[5, 1], [0, 4]]), ["cat", "dog"], tmp_path / "cm.png")
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size[0] > 100
    assert [p.name for p in tmp_path.iterdir()] == ["cm.png"]


def test_retrieval_grid_marks_correct_green_and_wrong_red(tmp_path):
    paths = []
    for i in range(4):
        p = tmp_path / f"img{i}.png"
        Image.fromarray(np.full((20, 30, 3), 60 * i, dtype=np.uint8)).save(p)
        paths.append(str(p))
    correct = np.array([[True, False, True], [False, False, True]])
    out = plot_retrieval_examples(paths[:2], [paths[1:], paths[:3]], correct,
                                  tmp_path / "grid.png", thumb=48)
    pixels = np.asarray(Image.open(out).convert("RGB")).reshape(-1, 3)
    colors = {tuple(c) for c in pixels}
    assert (44, 160, 44) in colors and (214, 39, 40) in colors  # green and red frames
    with pytest.raises(ValueError, match="disagree"):
        plot_retrieval_examples(paths[:1], [paths[:2]], correct, tmp_path / "bad.png")
