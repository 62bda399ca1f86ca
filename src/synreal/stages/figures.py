"""Stage ``figures``: the report's figures in ``results/figures`` (not content-keyed)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from synreal.params import doc
from synreal.stages import Stage, register


@dataclass(frozen=True)
class FiguresParams:
    """Parameters of the ``figures`` stage (filled by the study plan, not by users)."""

    params: dict = doc("Artifact directories per figure kind, from the plan.")


def run(spec: dict, out_dir: Path) -> None:
    """Gather and draw every figure into ``out_dir``."""
    from synreal.report.figures import build_figures

    build_figures(spec["params"], Path(out_dir))


STAGE = register(Stage("figures", 1, "Gather and draw the report's figures.",
                       FiguresParams, run))
