"""Stage ``table``: build one paper table from finished artifacts (Markdown, CSV, LaTeX)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from synreal.errors import ConfigError
from synreal.params import doc
from synreal.stages import Stage, register


@dataclass(frozen=True)
class TableParams:
    """Parameters of the ``table`` stage (filled by the study plan, not by users)."""

    table: str = doc("Table name; outputs are results/tables/<table>.{md,csv,tex}.")
    params: dict = doc("Artifact directories by role and caption facts, from the plan.")


def run(spec: dict, out_dir: Path) -> None:
    """Build the table named in the spec into ``out_dir`` (``results/tables``)."""
    from synreal.report import builders

    name = spec.get("table")
    if name not in builders.BUILDERS:
        raise ConfigError(f"unknown table {name!r}; known tables: {sorted(builders.BUILDERS)}.")
    builders.BUILDERS[name](spec["params"], Path(out_dir))


# version 2: captions state each column's protocol, features and settings from the evaluation
# artifacts' metrics.json (linear probe, k-NN, retrieval), not only the extraction's view.
# version 3: each row's pretraining named in the caption, realtune's Finding on paired
# differences, synbench's leak warning and reference sizes, cfg's attribution, LaTeX escaping.
# version 4: the datasets table says how each set was made (generators' settings read from
# their artifacts at build time).
STAGE = register(Stage("table", 4, "Build one paper table into results/tables/.",
                       TableParams, run))
