"""What the steps of :func:`shiftbench.analysis.report.build.build_report` share: the
:class:`Report` it returns, the :class:`Build` state the table and figure steps write
into, and which scores and severity the tables show."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from shiftbench.analysis.tables.comparison import IMAGE_COLUMN
from shiftbench.results import Run, schema

__all__ = [
    "Build",
    "Entry",
    "Report",
    "level_scores",
    "over_seeds",
    "run_levels",
    "suite_name",
    "table_context",
    "table_level",
    "table_scores",
    "write_grid",
]


@dataclass
class Report:
    """What :func:`build_report` wrote."""

    tables: list[Path] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    html: Path | None = None
    summary: Path | None = None
    skipped: list[str] = field(default_factory=list)  # tables or figures not made, and why
    warnings: list[str] = field(default_factory=list)  # numbers to read with care, and why


def run_levels(run: Run) -> list[float]:
    s = run.scores
    if "severity" not in s.columns:
        return []
    return sorted(float(v) for v in s.loc[s["protocol"] != "clean", "severity"].dropna().unique())


def table_level(run: Run) -> float | None:
    """The severity the protocol-comparison tables show: the run's level, or for a sweep
    the one configured (when it is a single level) or else the middle level of the sweep.
    (The severity tables and curves show every level.)"""
    levels = run_levels(run)
    if not levels:
        return None
    wanted = run.manifest.get("config", {}).get("severity")  # a list for a sweep
    if isinstance(wanted, (int, float)) and wanted in levels:
        return float(wanted)
    return levels[len(levels) // 2]


def level_scores(run: Run, level: float | None) -> pd.DataFrame:
    """Scores at one severity ``level``, each image once (clean rows are not repeated per
    shift): what the score histograms count."""
    s = run.scores
    if "severity" in s.columns and s["severity"].dropna().nunique() > 1:
        s = s[(s["severity"] == level) | s["severity"].isna()]
    return s


def table_scores(run: Run, level: float | None) -> pd.DataFrame:
    """Scores at one severity ``level`` (:func:`table_level`): a severity sweep puts
    several levels in one file. Per-shift runs (a :data:`schema.SHIFT_COLUMN`) keep every
    shift: the tables then pool them, each shift's twin a row of its own, and the
    :data:`~shiftbench.analysis.tables.comparison.IMAGE_COLUMN` column groups one image's rows so the
    bootstrap draws images, not rows. A real target's rows are left out: its images are not
    twins of the clean ones, so they pair with none (``tables/target.*`` has them)."""
    s = run.scores
    if schema.SHIFT_COLUMN in s.columns:
        s = s[~s[schema.SHIFT_COLUMN].map(schema.is_target_shift).astype(bool)]
        if s[schema.SHIFT_COLUMN].isna().all():  # the target alone: a clean-only table
            s = s.drop(columns=schema.SHIFT_COLUMN)
    if "severity" in s.columns and s["severity"].dropna().nunique() > 1:
        s = s[(s["severity"] == level) | s["severity"].isna()]
        key = ["category", "model", "seed", "protocol", "split", "sample_id"]
        if schema.SHIFT_COLUMN in s.columns:  # a twin per shift: not duplicates
            key.append(schema.SHIFT_COLUMN)
        s = s.drop_duplicates(key)
    if schema.SHIFT_COLUMN in s.columns:
        # each shift's twin is a test image of its own, paired with its clean original:
        # clean rows without a shift are repeated once per shift (same AUROC, and pairs stay
        # aligned for the paired bootstrap and tests)
        tag = s[schema.SHIFT_COLUMN].astype(object).where(s[schema.SHIFT_COLUMN].notna(), "")
        tag = tag.astype(str)
        shifts = sorted(set(tag[s["protocol"] != "clean"]) - {""})
        plain = (s["protocol"] == "clean") & (tag == "")
        parts = [s[~plain].assign(_tag=tag[~plain])]
        parts += [s[plain].assign(_tag=f) for f in shifts]
        s = pd.concat(parts, ignore_index=True)
        s[IMAGE_COLUMN] = s["sample_id"]
        s["sample_id"] = s["sample_id"] + "@" + s["_tag"]
        s = s.drop(columns="_tag")
    return s


def write_grid(grid, stem: Path, formats: tuple[str, ...], out: Report) -> list[Path]:
    paths = []
    if "latex" in formats:
        stem.with_suffix(".tex").write_text(grid.latex())
        paths.append(stem.with_suffix(".tex"))
    if "markdown" in formats:
        stem.with_suffix(".md").write_text(grid.markdown())
        paths.append(stem.with_suffix(".md"))
    out.tables.extend(paths)
    return paths


@dataclass
class Entry:
    """A table or figure of the report, for report.html."""

    kind: str  # "table" | "figure"
    section: str
    title: str
    caption: str = ""
    body: str = ""  # table html
    png: Path | None = None
    files: list[Path] = field(default_factory=list)


@dataclass
class Build:
    """What the steps of :func:`build_report` share."""

    run: Run
    out: Report
    fmts: tuple[str, ...]
    kinds: set[str]
    alpha: float
    level: float | None
    scores: pd.DataFrame  # at the tables' severity
    tdir: Path
    fdir: Path
    context: str = ""  # suite and severity of the tables
    over: str = ""  # how seeds are combined
    baseline: str | None = None
    entries: list[Entry] = field(default_factory=list)
    summary: dict = field(default_factory=dict)

    @property
    def test(self) -> pd.DataFrame:
        return self.scores[self.scores["split"] == "test"]

    @property
    def levels(self) -> list[float]:
        return run_levels(self.run)

    def table(self, table: pd.DataFrame, name: str) -> Path:
        table.to_csv(self.tdir / f"{name}.csv", index=False)
        self.out.tables.append(self.tdir / f"{name}.csv")
        return self.tdir / f"{name}.csv"

    def grid(self, grid, name: str, section: str, title: str, csv: Path | None = None) -> None:
        files = write_grid(grid, self.tdir / name, self.fmts, self.out)
        if csv is not None:
            files.append(csv)
        from shiftbench.analysis.tables.grid import plain_caption

        self.entries.append(
            Entry("table", section, title, plain_caption(grid.caption), grid.html(), None, files)
        )

    def figure(self, paths: list[Path] | None, caption: str, section: str, title: str) -> None:
        if paths:
            self.out.figures.extend(paths)
            png = next(p for p in paths if p.suffix == ".png")
            self.entries.append(Entry("figure", section, title, caption, "", png, list(paths)))


def suite_name(run: Run) -> str:
    from shiftbench.analysis.stats.robustness import default_shift

    return default_shift(run.manifest)


def table_context(run: Run, level: float | None) -> str:
    """'suite mvtec-shift, severity 3' (or '... severity 3 of 1, 3, 5' in a sweep)."""
    levels = run_levels(run)
    if not levels and not run.manifest.get("suite"):
        return ""
    text = f"suite {suite_name(run)}"
    if schema.SHIFT_COLUMN in run.scores.columns:
        shifts = run.scores[schema.SHIFT_COLUMN].dropna()
        n = shifts[~shifts.map(schema.is_target_shift).astype(bool)].nunique()  # as pooled
        text += f" ({n} shifts pooled)"
    if level is not None:
        text += f", severity {level:g}"
        if len(levels) > 1:
            text += " of " + ", ".join(f"{v:g}" for v in levels)
    return text


def over_seeds(run: Run) -> str:
    from shiftbench.analysis.tables.render import describe_seeds

    seeds = sorted(int(s) for s in run.scores["seed"].unique())
    return describe_seeds(len(seeds), seeds)
