"""Write one table as Markdown, CSV and LaTeX, each file atomically, with its caption."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd

from synreal import faults


def _write_text_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        faults.point("table.write")
        os.replace(tmp, path)
    except Exception:  # a full disk: no hidden half-file left beside the table
        Path(tmp).unlink(missing_ok=True)
        raise


#: LaTeX's special characters in text mode, each written as itself (in one pass, so the
#: braces of one replacement are not escaped again; < and > print as other glyphs in OT1).
LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}"}
#: Tables wider than this many columns are scaled to the line width.
WIDE_COLUMNS = 8
#: A column with a cell longer than this many characters wraps in a paragraph column of
#: :data:`TEXT_WIDTH` (the datasets table's "made by" sentences) instead of one long line.
LONG_CELL = 40
TEXT_WIDTH = "5cm"


def _latex_escape(text: str) -> str:
    return "".join(LATEX_SPECIALS.get(char, char) for char in text)


def to_markdown(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency)."""
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def to_latex(frame: pd.DataFrame, caption: str, label: str) -> str:
    r"""A booktabs LaTeX table with caption and label; a wide one is scaled to the line.

    Columns are left-aligned; one holding sentences wraps at :data:`TEXT_WIDTH`.

    Needs ``\usepackage{booktabs}`` (and ``graphicx`` for a table wider than
    :data:`WIDE_COLUMNS` columns, which ``\resizebox`` fits to the line width).
    """
    cols = "".join(
        f"p{{{TEXT_WIDTH}}}" if frame[column].astype(str).str.len().max() > LONG_CELL else "l"
        for column in frame.columns)
    head = " & ".join(_latex_escape(str(c)) for c in frame.columns) + r" \\"
    body = [" & ".join(_latex_escape(str(v)) for v in row) + r" \\"
            for row in frame.itertuples(index=False)]
    tabular = [rf"\begin{{tabular}}{{{cols}}}", r"\toprule", head, r"\midrule", *body,
               r"\bottomrule", r"\end{tabular}"]
    if len(frame.columns) > WIDE_COLUMNS:
        tabular = [r"\resizebox{\linewidth}{!}{%", *tabular, "}"]
    return "\n".join([
        r"\begin{table}[t]", r"\centering", *tabular,
        rf"\caption{{{_latex_escape(caption)}}}", rf"\label{{tab:{label}}}", r"\end{table}", "",
    ])


def write_table(frame: pd.DataFrame, out_dir: Path, name: str, caption: str) -> list[Path]:
    """Write ``<name>.md`` (with caption), ``<name>.csv`` and ``<name>.tex`` into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.{ext}" for ext in ("csv", "tex", "md")]
    _write_text_atomic(paths[0], frame.to_csv(index=False))
    _write_text_atomic(paths[1], to_latex(frame, caption, name))
    _write_text_atomic(paths[2], f"**Table {name}.** {caption}\n\n{to_markdown(frame)}\n")
    return paths
