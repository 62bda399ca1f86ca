"""The LaTeX a table is written as: every special character escaped once, wide tables fit."""

import re

import pandas as pd

from synreal.report.table_writer import LONG_CELL, TEXT_WIDTH, WIDE_COLUMNS, to_latex


def _unescaped_braces(tex: str) -> tuple[int, int]:
    bare = re.sub(r"\\[{}]", "", tex)
    return bare.count("{"), bare.count("}")


def test_special_characters_are_escaped_once_and_braces_balance():
    caption = r"mix/none > real/synthetic; 5 % of a_b & {c} #1 at $2, path C:\x ~ ^ <key>"
    frame = pd.DataFrame({"pretraining & data": ["50 % real_A"], "x": ["<1>"]})
    tex = to_latex(frame, caption, "t")
    assert (r"mix/none \textgreater{} real/synthetic; 5 \% of a\_b \& \{c\} \#1 at \$2, path "
            r"C:\textbackslash{}x \textasciitilde{} \textasciicircum{} \textless{}key\textgreater{}"
            ) in tex
    assert r"pretraining \& data & x \\" in tex
    assert r"50 \% real\_A & \textless{}1\textgreater{}" in tex
    opened, closed = _unescaped_braces(tex)
    assert opened == closed
    assert "resizebox" not in tex


def test_a_wide_table_is_scaled_to_the_line_width():
    frame = pd.DataFrame({f"c{i}": ["1"] for i in range(WIDE_COLUMNS + 1)})
    tex = to_latex(frame, "wide", "w")
    assert r"\resizebox{\linewidth}{!}{%" in tex
    assert tex.index("resizebox") < tex.index(r"\begin{tabular}") < tex.index(r"\end{tabular}")
    opened, closed = _unescaped_braces(tex)
    assert opened == closed


def test_a_column_of_sentences_wraps_instead_of_running_off_the_page():
    frame = pd.DataFrame({"dataset": ["a"], "made by": ["x" * (LONG_CELL + 1)], "n": [3]})
    tex = to_latex(frame, "caption", "t")
    assert rf"\begin{{tabular}}{{lp{{{TEXT_WIDTH}}}l}}" in tex
