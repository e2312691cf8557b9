"""Text helpers of the output layer (findings, report, README, notebooks): the labels of results keys, LaTeX
escaping, the few pieces of markup that differ between Markdown and LaTeX (`Fmt`), every table rendered from a
DataFrame (`markdown_table`, `latex_table`) and the README's marked blocks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .errors import FERError

_TEX = (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"), ("#", r"\#"), ("_", r"\_"),
        ("{", r"\{"), ("}", r"\}"), ("~", r"\textasciitilde{}"), ("^", r"\^{}"),
        ("β₁", r"$\beta_{1}$"), ("β", r"$\beta$"), ("Δ", r"$\Delta$"), ("×", r"$\times$"), ("✓", r"\checkmark{}"),
        ("✗", r"$\times$"), ("→", r"$\to$"))


# Human labels of the keys that results files use, for every table a reader sees (notebooks, report, README).
LABELS = {
    "status": "status", "parameters": "parameters", "trainable": "trainable parameters",
    "checkpoint_MB": "checkpoint on disk (MiB)", "fp32_size_MB": "weights in fp32 (MiB)",
    "cpu_latency_ms": "CPU latency, one image (ms)", "gpu_latency_ms": "GPU latency, one image (ms)",
    "accuracy": "validation accuracy (%)", "macro_f1": "validation macro-F1 (%)", "macro_auc": "validation macro-AUC",
    "epochs_run": "epochs trained", "border": "border ring", "eyes_band": "eye band", "mouth_band": "mouth band",
    "ffhq_images": "FFHQ images", "other_images": "other images", "accuracy_ffhq": "accuracy, FFHQ (%)",
    "accuracy_other": "accuracy, others (%)", "ffhq_other_classes": "FFHQ faces of the other classes",
    "ffhq_other_predicted_happy_neutral": "of those, predicted happy or neutral",
    "nonffhq_other_classes": "non-FFHQ faces of the other classes",
    "nonffhq_other_predicted_happy_neutral": "of those, predicted happy or neutral ",
}
PERCENT_KEYS = ("accuracy", "macro_f1", "accuracy_ffhq", "accuracy_other")  # fractions shown in %


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def replace_block(text: str, name: str, block: str) -> str:
    """`text` with what lies between the `name` markers replaced by `block`."""
    start, end = markers(name)
    if start not in text or end not in text:
        raise FERError(f"no {start} ... {end} block to write into")
    head, rest = text.split(start, 1)
    return f"{head}{start}\n{block}\n{end}{rest.split(end, 1)[1]}"


def label(key: str) -> str:
    """The human label of a results key (its own text, with spaces, where none is defined)."""
    return LABELS.get(key, str(key).replace("_", " "))


def tex_escape(s) -> str:
    """Text with LaTeX's special characters escaped."""
    s = str(s)
    for a, b in _TEX:
        s = s.replace(a, b)
    return s


class Fmt:
    """The few pieces of markup that differ between Markdown and LaTeX."""

    def __init__(self, fmt: str):
        if fmt not in ("md", "tex"):
            raise ValueError(f"fmt must be 'md' or 'tex', not {fmt!r}")
        self.tex = fmt == "tex"

    def t(self, s) -> str:
        return tex_escape(s) if self.tex else str(s)

    def code(self, s) -> str:
        """A name (a class, a row): in italics in the report, as code in Markdown."""
        return rf"\emph{{{tex_escape(s)}}}" if self.tex else f"`{s}`"

    def codes(self, names) -> str:
        return join([self.code(n) for n in names])

    def pct(self, v, digits: int = 1) -> str:
        return f"{100 * v:.{digits}f}" + (r"\,\%" if self.tex else "%")

    def pts(self, v, digits: int = 1) -> str:
        """Signed percentage points (a difference of two accuracies)."""
        s = f"{100 * v:+.{digits}f}"
        return f"${s}$" if self.tex else s.replace("-", "\u2212")

    def pt(self, v, digits: int = 1) -> str:
        """Unsigned percentage points (the size of a gap)."""
        return f"{100 * abs(v):.{digits}f}"

    def num(self, n) -> str:
        return f"{int(n):,}"

    def size(self, wxh: str) -> str:
        w, _, h = str(wxh).partition("x")
        return rf"${w}\times{h}$" if self.tex else f"{w}\u00d7{h}"

    def times(self) -> str:
        return r"$\times$" if self.tex else "\u00d7"

    def arrow(self) -> str:
        return r"$\to$" if self.tex else "\u2192"


def join(items: list[str]) -> str:
    """a, b and c."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def cell(v) -> str:
    """A table cell: integers with thousands separators, other floats with 4 significant digits, NaN as --."""
    if isinstance(v, np.generic):  # numpy scalars format like Python's
        v = v.item()
    if isinstance(v, float) and v != v:
        return "--"
    if isinstance(v, (int, float)) and not isinstance(v, bool) and float(v).is_integer() and abs(v) >= 1:
        return f"{int(v):,}"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def markdown_table(df: pd.DataFrame, code: bool = True) -> str:
    """A Markdown table of a DataFrame, its index first (as `code` where `code`: run and row names)."""
    cols = [df.index.name or ""] + [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join([f"`{i}`" if code else str(i)] + [cell(v) for v in row]) + " |"
              for i, row in df.iterrows()]
    return "\n".join(lines)


def latex_table(df: pd.DataFrame, path: Path, colspec: str | None = None, index: bool = True) -> None:
    """A booktabs tabular of a DataFrame (cells escaped), written to `path`."""
    cols = ([df.index.name or ""] if index else []) + [str(c) for c in df.columns]
    colspec = (colspec or ("l" * len(cols))).replace("p{", r">{\raggedright\arraybackslash}p{")
    lines = [rf"\begin{{tabular}}{{{colspec}}}", r"\toprule", " & ".join(tex_escape(c) for c in cols) + r" \\",
             r"\midrule"]
    for idx, row in df.iterrows():
        cells = ([idx] if index else []) + list(row.values)
        if str(idx) in ("total", "all"):
            lines.append(r"\midrule")
        lines.append(" & ".join(tex_escape(cell(c)) for c in cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    path.write_text("\n".join(lines) + "\n")
