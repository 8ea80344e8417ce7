"""The table model shared by every table: a :class:`Grid` (header, blocks of rows whose
first cells are text and the rest :class:`Cell` numbers or :class:`TextCell` text) and its
text in each format -- LaTeX (booktabs, threeparttable), Markdown and HTML. What goes into
a grid is decided in :mod:`.render`.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "COLUMN_PT",
    "LATEX_PREAMBLE",
    "Cell",
    "Grid",
    "TextCell",
    "bold_best",
    "latex_escape",
    "md_escape",
    "p_marks",
    "plain_caption",
]


def p_marks(p: float) -> str:
    if not np.isfinite(p):
        return ""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else ""


def latex_escape(text: str) -> str:
    """Escape LaTeX special characters in a plain-text name (category, model)."""
    repl = {
        "\\": r"\textbackslash{}",
        "&": r"\&",
        "%": r"\%",
        "$": r"\$",
        "#": r"\#",
        "_": r"\_",
        "{": r"\{",
        "}": r"\}",
        "~": r"\textasciitilde{}",
        "^": r"\textasciicircum{}",
    }
    return "".join(repl.get(ch, ch) for ch in str(text))


def md_escape(text: str) -> str:
    return str(text).replace("|", r"\|").replace("*", r"\*").replace("_", r"\_")


@dataclass
class Cell:
    value: float
    half: float = float("nan")
    marks: str = ""
    bold: bool = False
    signed: bool = False
    scale: float = 100.0
    digits: int = 1

    def numbers(self, minus: str = "−") -> tuple[str, str]:
        if not np.isfinite(self.value):
            return "", ""
        v = self.value * self.scale
        s = f"{v:+.{self.digits}f}" if self.signed else f"{v:.{self.digits}f}"
        s = s.replace("-", minus)
        h = f"{self.half * self.scale:.{self.digits}f}" if np.isfinite(self.half) else ""
        return s, h

    def latex(self) -> str:
        v, h = self.numbers(minus="-")
        if not v:
            return "--"
        body = f"{v} \\pm {h}" if h else v
        body = rf"\mathbf{{{body}}}" if self.bold else body
        marks = f"^{{{self.marks}}}" if self.marks else ""
        return f"${body}{marks}$"

    def markdown(self) -> str:
        v, h = self.numbers()
        if not v:
            return "–"
        body = f"{v} ± {h}" if h else v
        body = f"**{body}**" if self.bold else body
        return body + self.marks.replace("*", r"\*")

    def html(self) -> str:
        v, h = self.numbers()
        if not v:
            return "–"
        body = f"{v} ± {h}" if h else v
        body = f"<b>{body}</b>" if self.bold else body
        return body + (f"<sup>{self.marks}</sup>" if self.marks else "")


#: below this estimated width (pt, at \\footnotesize) a table fits one column of a two-column
#: paper (a column is ~241 pt in article, ~252 pt in IEEEtran); wider tables use ``table*``
COLUMN_PT = 235.0
_PT_PER_CHAR = 4.3  # \\footnotesize Computer Modern, digits and lower case, roughly
_TABCOLSEP_PT = 4.0

LATEX_PREAMBLE = (
    "% shiftbench table: needs \\usepackage{booktabs,threeparttable} (and amsmath for the numbers)"
)


@dataclass
class Grid:
    """A table before rendering: header, blocks of rows (first cells are plain text).

    With ``group`` the first text column names the block: in LaTeX it becomes a row of its
    own above the block (a narrower table), in Markdown and HTML it stays a column and is
    written on every row. ``notes`` go below the table (threeparttable notes in LaTeX), so
    the caption stays short.

    What applies only sometimes is said only then: ``pm_rule`` opens the notes when a cell
    shows a ± (more than one seed, or an interval), ``bold_rule`` ends them when a cell is
    bold (two or more models to compare), and a value column that is empty on every row
    (a protocol the run never ran) is left out."""

    caption: str
    label: str
    header: list[tuple[str, str]]  # (plain/markdown, latex)
    n_text: int  # leading text columns
    blocks: list[list[list]] = field(default_factory=list)  # rows: text cells then Cell
    notes: list[str] = field(default_factory=list)
    group: bool = False  # the first text column names the block (see above)
    bold_rule: str = ""  # e.g. "Bold: best per column."; said only when a cell is bold
    pm_rule: str = ""  # what ± means; said only when a cell shows one

    def _cells(self):
        return [c for b in self.blocks for r in b for c in r[self.n_text :] if isinstance(c, Cell)]

    def text_notes(self) -> list[str]:
        """The notes, after :attr:`pm_rule` when a cell shows a ± and before
        :attr:`bold_rule` when a cell is bold."""
        cells = self._cells()
        pm = [self.pm_rule] if self.pm_rule and any(c.numbers()[1] for c in cells) else []
        bold = [self.bold_rule] if self.bold_rule and any(c.bold for c in cells) else []
        return [*pm, *self.notes, *bold]

    def _shown(self) -> tuple[list, list]:
        """(header, blocks) without the value columns that are empty on every row."""
        n = len(self.header)
        rows = [r for b in self.blocks for r in b]
        keep = [
            j
            for j in range(n)
            if j < self.n_text
            or not rows
            or any(not isinstance(r[j], Cell) or r[j].numbers()[0] for r in rows)
        ]
        if len(keep) == n:
            return self.header, self.blocks
        return [self.header[j] for j in keep], [
            [[r[j] for j in keep] for r in b] for b in self.blocks
        ]

    def _latex_widths(self) -> float:
        header, blocks = self._shown()
        cols = len(header) - (1 if self.group else 0)
        first = 1 if self.group else 0
        widths = [0.0] * cols
        rows = [[max(plain_caption(h[1]).split("\n"), key=len) for h in header[first:]]]
        for block in blocks:
            for row in block:
                rows.append([_plain_cell(c) for c in row[first:]])
        for r in rows:
            for i, c in enumerate(r[:cols]):
                widths[i] = max(widths[i], len(c))
        return sum(widths) * _PT_PER_CHAR + 2 * _TABCOLSEP_PT * cols

    @property
    def wide(self) -> bool:
        """True when the table needs the page width (``table*``) in a two-column paper."""
        return self._latex_widths() > COLUMN_PT

    def latex(self) -> str:
        first = 1 if self.group else 0
        header, blocks = self._shown()
        header = header[first:]
        notes = self.text_notes()
        ncol = len(header)
        n_text = self.n_text - first
        env = "table*" if self.wide else "table"
        lines = [
            LATEX_PREAMBLE,
            rf"\begin{{{env}}}[tbp]",
            r"\centering",
            r"\footnotesize",
            r"\setlength{\tabcolsep}{4pt}",
            r"\begin{threeparttable}",
            rf"\caption{{{self.caption}}}",
            rf"\label{{{self.label}}}",
            rf"\begin{{tabular}}{{{'l' * n_text}{'c' * (ncol - n_text)}}}",
            r"\toprule",
            " & ".join(_latex_header(h[1]) for h in header) + r" \\",
            r"\midrule",
        ]
        for b, block in enumerate(blocks):
            if b:
                lines.append(r"\midrule")
            if self.group and block:
                lines.append(
                    rf"\multicolumn{{{ncol}}}{{@{{}}l}}{{\textit{{{latex_escape(block[0][0])}}}}} \\"
                )
            for row in block:
                text = [latex_escape(c) for c in row[first : self.n_text]]
                lines.append(" & ".join(text + [c.latex() for c in row[self.n_text :]]) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}"]
        if notes:
            lines.append(r"\begin{tablenotes}[flushleft]\footnotesize")
            lines += [rf"\item {n}" for n in notes]
            lines.append(r"\end{tablenotes}")
        lines += [r"\end{threeparttable}", rf"\end{{{env}}}", ""]
        return "\n".join(lines)

    def markdown(self) -> str:
        header, blocks = self._shown()
        notes = self.text_notes()
        lines = [
            f"**{md_escape(plain_caption(self.caption))}**",
            "",
            "| " + " | ".join(h[0].replace("\n", " ") for h in header) + " |",
        ]
        lines.append(
            "|" + "|".join([":--"] * self.n_text + [":-:"] * (len(header) - self.n_text)) + "|"
        )
        for block in blocks:
            for row in block:
                text = [md_escape(c) for c in row[: self.n_text]]
                lines.append(
                    "| " + " | ".join(text + [c.markdown() for c in row[self.n_text :]]) + " |"
                )
        if notes:
            lines.append("")
            lines += [f"{plain_caption(n)}  " for n in notes]
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        header, blocks = self._shown()
        notes = self.text_notes()
        caption = html.escape(plain_caption(self.caption))
        out = [f"<table><caption>{caption}</caption><thead><tr>"]
        out += [f"<th>{html.escape(h[0].replace(chr(10), ' '))}</th>" for h in header]
        out.append("</tr></thead><tbody>")
        for block in blocks:
            for r, row in enumerate(block):
                cls = ' class="block"' if r == 0 else ""
                out.append(f"<tr{cls}>")
                out += [f"<td>{html.escape(str(c))}</td>" for c in row[: self.n_text]]
                out += [f"<td>{c.html()}</td>" for c in row[self.n_text :]]
                out.append("</tr>")
        out.append("</tbody></table>")
        if notes:
            out.append(
                "<div class='notes'>"
                + "".join(f"<p>{html.escape(plain_caption(n))}</p>" for n in notes)
                + "</div>"
            )
        return "".join(out)


def _latex_header(text: str) -> str:
    """A header cell; a newline in it makes a two-line header (no package needed)."""
    if "\n" not in text:
        return text
    return r"\begin{tabular}[b]{@{}c@{}}" + r"\\".join(text.split("\n")) + r"\end{tabular}"


def _plain_cell(c) -> str:
    if isinstance(c, str):
        return c
    if isinstance(c, TextCell):
        return c.text
    return c.markdown().replace("\\", "").replace("**", "")


def bold_best(cells: list[Cell], higher_is_better: bool = True) -> None:
    """Bold the best *shown* value (ties all bold); needs two or more values."""
    shown = [float(c.numbers(minus="-")[0]) if c.numbers()[0] else None for c in cells]
    valid = [v for v in shown if v is not None]
    if len(valid) < 2:
        return
    best = max(valid) if higher_is_better else min(valid)
    for c, v in zip(cells, shown, strict=False):
        c.bold = v == best


def plain_caption(caption: str) -> str:
    for a, b in (
        ("\\%", "%"),
        ("$\\pm$", "±"),
        ("$\\Delta$", "Δ"),
        ("$\\times$", "×"),
        ("$\\le$", "≤"),
        ("$-$", "−"),
        ("$^{***}$", "***"),
        ("$^{**}$", "**"),
        ("$^{*}$", "*"),
        ("$p<", "p < "),
        ("\\ ", " "),
        ("--", "–"),
        ("\\texttt{", ""),
        ("-{}-", "--"),  # a command-line option, written -{}- in LaTeX to stay two hyphens
        ("\\textit{", ""),
        ("\\emph{", ""),
        ("^{", "^"),
        ("}", ""),
        ("$", ""),
    ):
        caption = caption.replace(a, b)
    return caption


@dataclass
class TextCell:
    text: str

    def latex(self) -> str:
        return latex_escape(self.text)

    def markdown(self) -> str:
        return md_escape(self.text)

    def html(self) -> str:
        return html.escape(self.text)
