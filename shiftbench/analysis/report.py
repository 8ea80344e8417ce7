"""Build ``tables/``, ``figures/``, ``report.html`` and ``summary.json`` from one run
directory, or from several runs that share dataset, splits and seeds (:func:`combine_runs`).

Reads runs through :func:`shiftbench.results.load_run` (the format is
:mod:`shiftbench.results.schema`) and writes:

* ``tables/<metric>.{csv,tex,md}`` for image AUROC, AUPRC and F1 (protocol comparison with
  bootstrap intervals and Holm-corrected tests), pixel metrics, ``efficiency``,
  ``threshold_transfer``, ``severity_<metric>`` (every level of a sweep as a column),
  ``defects_<category>`` (recall per defect type), ``robustness`` (AUSC, relative
  robustness, worst level, mCE: :mod:`shiftbench.analysis.robustness`),
  ``corruption_error`` (with a baseline), ``robustness_ranks`` and ``rank_tests.csv``;
* ``figures/*.{pdf,png}``: degradation bars, ROC/PR curves per category, score
  distributions, severity curves with bootstrap bands (and per category), robustness heat
  maps, critical-difference diagrams (only with enough blocks), qualitative grids;
* ``report.html``: contents, the configuration as a table, every table and figure with
  its caption and links to the files; ``summary.json``: the headline numbers.

Every LaTeX table compiles in a standard article with ``booktabs`` and ``threeparttable``.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from shiftbench.errors import ShiftbenchError
from shiftbench.results import Run, load_run, schema

__all__ = [
    "FIGURE_KINDS",
    "FORMATS",
    "Report",
    "Run",
    "build_report",
    "combine_runs",
    "load_run",
]

FORMATS = ("latex", "markdown", "html")
FIGURE_KINDS = (
    "degradation",
    "roc_pr",
    "scores",
    "severity",
    "heatmap",
    "cd",
    "qualitative",
)
TABLE_METRICS = ("image_auroc", "image_auprc", "image_f1")


@dataclass
class Report:
    """What :func:`build_report` wrote."""

    tables: list[Path] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    html: Path | None = None
    summary: Path | None = None
    skipped: list[str] = field(default_factory=list)  # tables or figures not made, and why


def _parse_formats(formats: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    items = [
        f.strip().lower()
        for f in (formats.split(",") if isinstance(formats, str) else formats)
        if f.strip()
    ]
    aliases = {"tex": "latex", "md": "markdown"}
    items = [aliases.get(f, f) for f in items]
    bad = [f for f in items if f not in FORMATS]
    if bad:
        raise ShiftbenchError(
            f"--format: unknown format {bad[0]!r}; choose from {', '.join(FORMATS)} (comma-separated)"
        )
    return tuple(dict.fromkeys(items))


def _levels(run: Run) -> list[float]:
    s = run.scores
    if "severity" not in s.columns:
        return []
    return sorted(float(v) for v in s.loc[s["protocol"] != "clean", "severity"].dropna().unique())


def _table_level(run: Run) -> float | None:
    """The severity the protocol-comparison tables show: the run's level, or for a sweep
    the one configured (when it is a single level) or else the middle level of the sweep.
    (The severity tables and curves show every level.)"""
    levels = _levels(run)
    if not levels:
        return None
    wanted = run.manifest.get("config", {}).get("severity")  # a list for a sweep
    if isinstance(wanted, (int, float)) and wanted in levels:
        return float(wanted)
    return levels[len(levels) // 2]


def _level_scores(run: Run, level: float | None) -> pd.DataFrame:
    """Scores at one severity ``level``, each image once (clean rows are not repeated per
    shift): what the score histograms count."""
    s = run.scores
    if "severity" in s.columns and s["severity"].dropna().nunique() > 1:
        s = s[(s["severity"] == level) | s["severity"].isna()]
    return s


def _table_scores(run: Run, level: float | None) -> pd.DataFrame:
    """Scores at one severity ``level`` (:func:`_table_level`): a severity sweep puts
    several levels in one file. Per-shift runs (a :data:`schema.SHIFT_COLUMN`) keep every
    shift: the tables then pool them (each shift's twins are separate test images)."""
    s = run.scores
    if "severity" in s.columns and s["severity"].dropna().nunique() > 1:
        s = s[(s["severity"] == level) | s["severity"].isna()]
        s = s.drop_duplicates(["category", "model", "seed", "protocol", "split", "sample_id"])
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
        s["sample_id"] = s["sample_id"] + "@" + s["_tag"]
        s = s.drop(columns="_tag")
    return s


def _write_grid(grid, stem: Path, formats: tuple[str, ...], out: Report) -> list[Path]:
    paths = []
    if "latex" in formats:
        stem.with_suffix(".tex").write_text(grid.latex())
        paths.append(stem.with_suffix(".tex"))
    if "markdown" in formats:
        stem.with_suffix(".md").write_text(grid.markdown())
        paths.append(stem.with_suffix(".md"))
    out.tables.extend(paths)
    return paths


# -- combining runs ----------------------------------------------------------------------


def _fmt(v) -> str:
    return json.dumps(v, sort_keys=True, default=str)


def combine_runs(runs: Sequence[Run], out_dir: Path) -> Run:
    """One :class:`Run` from several runs of the same study design, for one report.

    The runs must share the dataset (config ``dataset``, ``root``, ``image_size``), the
    splits (``split_hashes``), the seeds and, where both shifted images, the suite and its
    per-level hashes; each model may come from one run only. A mismatch is a
    ShiftbenchError naming the field and both values."""
    first = runs[0]
    for other in runs[1:]:
        a, b = first.manifest, other.manifest
        pairs = [(f"config.{k}", a.get("config", {}).get(k), b.get("config", {}).get(k))
                 for k in schema.COMBINE_CONFIG_KEYS]  # fmt: skip
        pairs += [(k, a.get(k), b.get(k)) for k in schema.COMBINE_MANIFEST_KEYS]
        sa, sb = a.get("suite") or {}, b.get("suite") or {}
        if sa and sb:
            pairs += [("suite.name", sa.get("name"), sb.get("name"))]
            ha, hb = sa.get("hashes") or {}, sb.get("hashes") or {}
            common = sorted(set(ha) & set(hb))
            pairs += [(f"suite.hashes[{k}]", ha[k], hb[k]) for k in common]
        for name, va, vb in pairs:
            if _fmt(va) != _fmt(vb):
                raise ShiftbenchError(
                    f"cannot combine {first.path} and {other.path}: {name} differs "
                    f"({_fmt(va)} vs {_fmt(vb)}); a combined report needs the same dataset, "
                    "splits, seeds and shift suite"
                )
    owner: dict[str, Path] = {}
    for r in runs:
        for m in sorted(r.scores["model"].unique()):
            if m in owner:
                raise ShiftbenchError(
                    f"cannot combine: model {m!r} is in both {owner[m]} and {r.path}; "
                    "a combined report takes each model from one run"
                )
            owner[m] = r.path
    metrics = [r.metrics for r in runs if r.metrics is not None]
    sps = [r.shift_params for r in runs if r.shift_params is not None]
    manifest = json.loads(json.dumps(first.manifest, default=str))
    manifest.setdefault("config", {})["models"] = sorted(owner)
    manifest["command"] = " ; ".join(str(r.manifest.get("command", "")) for r in runs)
    suites = [r.manifest.get("suite") for r in runs if r.manifest.get("suite")]
    if suites:
        merged = dict(suites[0])
        merged["hashes"] = {k: v for s in suites for k, v in (s.get("hashes") or {}).items()}
        manifest["suite"] = merged
    manifest["sources"] = [str(r.path) for r in runs]
    return Run(
        path=Path(out_dir),
        manifest=manifest,
        scores=pd.concat([r.scores for r in runs], ignore_index=True),
        metrics=pd.concat(metrics, ignore_index=True) if metrics else None,
        splits=first.splits,
        shift_params=(
            pd.concat(sps, ignore_index=True).drop_duplicates(
                ["seed", "sample_id", "category", "severity", "suite_hash"]
            )
            if sps
            else None
        ),
        format_version=min(r.format_version for r in runs),
        map_roots={m: p for m, p in owner.items()},
    )


# -- building the report -----------------------------------------------------------------


@dataclass
class _Entry:
    """A table or figure of the report, for report.html."""

    kind: str  # "table" | "figure"
    section: str
    title: str
    caption: str = ""
    body: str = ""  # table html
    png: Path | None = None
    files: list[Path] = field(default_factory=list)


@dataclass
class _Build:
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
    entries: list[_Entry] = field(default_factory=list)
    summary: dict = field(default_factory=dict)

    @property
    def test(self) -> pd.DataFrame:
        return self.scores[self.scores["split"] == "test"]

    @property
    def levels(self) -> list[float]:
        return _levels(self.run)

    def table(self, table: pd.DataFrame, name: str) -> Path:
        table.to_csv(self.tdir / f"{name}.csv", index=False)
        self.out.tables.append(self.tdir / f"{name}.csv")
        return self.tdir / f"{name}.csv"

    def grid(self, grid, name: str, section: str, title: str, csv: Path | None = None) -> None:
        files = _write_grid(grid, self.tdir / name, self.fmts, self.out)
        if csv is not None:
            files.append(csv)
        from shiftbench.analysis.render import _plain_caption

        self.entries.append(
            _Entry("table", section, title, _plain_caption(grid.caption), grid.html(), None, files)
        )

    def figure(self, paths: list[Path] | None, caption: str, section: str, title: str) -> None:
        if paths:
            self.out.figures.extend(paths)
            png = next(p for p in paths if p.suffix == ".png")
            self.entries.append(_Entry("figure", section, title, caption, "", png, list(paths)))


def _check_options(formats, n_resamples: int, alpha: float, figures) -> tuple[tuple, set]:
    kinds = set(FIGURE_KINDS) if figures is True else set() if figures is False else set(figures)
    if kinds - set(FIGURE_KINDS):
        raise ShiftbenchError(
            f"figures: unknown kind(s) {sorted(kinds - set(FIGURE_KINDS))}; choose from {FIGURE_KINDS}"
        )
    fmts = _parse_formats(formats)
    if n_resamples < 100:
        raise ShiftbenchError(
            f"--n-resamples {n_resamples}: too few for a 95% interval; use at least 1000"
        )
    if not 0 < alpha < 0.5:
        raise ShiftbenchError(f"--alpha {alpha}: must be in (0, 0.5), e.g. 0.05")
    return fmts, kinds


def _suite_name(run: Run) -> str:
    from shiftbench.analysis.robustness import default_shift

    return default_shift(run.manifest)


def _context(run: Run, level: float | None) -> str:
    """'suite mvtec-shift, severity 3' (or '... severity 3 of 1, 3, 5' in a sweep)."""
    levels = _levels(run)
    if not levels and not run.manifest.get("suite"):
        return ""
    text = f"suite {_suite_name(run)}"
    if schema.SHIFT_COLUMN in run.scores.columns:
        n = run.scores[schema.SHIFT_COLUMN].dropna().nunique()
        text += f" ({n} shifts pooled)"
    if level is not None:
        text += f", severity {level:g}"
        if len(levels) > 1:
            text += " of " + ", ".join(f"{v:g}" for v in levels)
    return text


def _over(run: Run) -> str:
    from shiftbench.analysis.render import describe_seeds

    seeds = sorted(int(s) for s in run.scores["seed"].unique())
    return describe_seeds(len(seeds), seeds)


def _image_tables(b: _Build, n_resamples: int, seed: int) -> dict:
    """Protocol comparison tables; returns them by metric."""
    from shiftbench.analysis import render, tables

    comparisons = {}
    for metric in TABLE_METRICS:
        comp = tables.protocol_comparison(
            b.scores, metric, n_resamples=n_resamples, alpha=b.alpha, seed=seed
        )
        comparisons[metric] = comp
        csv = b.table(comp.table, metric)
        b.grid(render.render_comparison(comp, b.context, b.over), metric, "Protocols",
               comp.label, csv)  # fmt: skip
    return comparisons


def _other_tables(b: _Build) -> None:
    """Pixel metrics (whole-map values from metrics.parquet, at the tables' severity),
    threshold transfer and efficiency."""
    from shiftbench.analysis import render, tables, transfer

    metrics = b.run.metrics
    if metrics is not None:
        for metric in tables.PIXEL_METRICS:
            if metric not in set(metrics["metric"]):
                continue
            table = tables.pixel_table(metrics, metric, b.level)
            csv = b.table(table, metric)
            b.grid(render.render_pixel(table, metric, b.context, b.over), metric, "Protocols",
                   tables.PIXEL_METRICS[metric], csv)  # fmt: skip
    tt = transfer.transfer_table(b.scores)
    csv = b.table(tt, "threshold_transfer")
    if len(tt):
        b.grid(render.render_transfer(tt, b.context, b.over), "threshold_transfer",
               "Thresholds", "Threshold transfer", csv)  # fmt: skip
    if metrics is None:
        b.out.skipped.append("efficiency table: no metrics.parquet")
        return
    eff = tables.efficiency_table(metrics)
    if len(eff):
        csv = b.table(eff, "efficiency")
        b.grid(render.render_efficiency(eff), "efficiency", "Efficiency", "Efficiency", csv)


def _sweep_tables(b: _Build) -> None:
    """Every severity as a column (and the clean reference)."""
    from shiftbench.analysis import render, tables
    from shiftbench.analysis.palette import protocol_label

    metrics = b.run.metrics
    if metrics is None or len(b.levels) < 2:
        b.out.skipped.append("severity tables: the run did not sweep severities")
        return
    for metric, label in (("image_auroc", "Image AUROC"), ("pixel_aupro", "Pixel PRO")):
        if metric not in set(metrics["metric"]):
            continue
        t = tables.severity_table(metrics, metric)
        if t.empty:
            continue
        csv = b.table(t, f"severity_{metric}")
        levels = [c for c in t.columns if c.startswith("sev") and not c.endswith("_sd")]
        vcols = [("clean", "Clean", "Clean")] + [
            (c, f"Sev. {c[3:]}", f"Sev.\\ {c[3:]}") for c in levels
        ]
        t = t.assign(block=t["protocol"].map(protocol_label) + ", " + t["category"])
        grid = render.render_frame(
            t,
            caption=f"{label} (\\%) at every severity of suite {_suite_name(b.run)}, {b.over}. "
            "Bold: best per block and column.",
            label=f"tab:severity_{metric}",
            text_columns=[("block", "Protocol, category", "Protocol, category"),
                          ("model", "Model", "Model")],
            value_columns=vcols,
            notes=["$\\pm$: standard deviation over seeds (none with one seed). Clean: the "
                   "clean protocol, the same reference for every level."],
            group=True,
            bold={c: True for c, _, _ in vcols},
            half_columns={c: f"{c}_sd" for c, _, _ in vcols},
        )  # fmt: skip
        b.grid(grid, f"severity_{metric}", "Severity", f"{label} per severity", csv)


def _defect_grid(b: _Build, d: pd.DataFrame, value: str, cat: str, caption: str, notes: list,
                 label: str, normal: bool):  # fmt: skip
    """Rows = (model, protocol), columns = defect types (normal images last, if ``normal``)."""
    from shiftbench.analysis import render, tables
    from shiftbench.analysis.palette import protocol_label

    defects = sorted(x for x in set(d["defect_type"]) if x != tables.NORMAL_DEFECT)
    if normal and tables.NORMAL_DEFECT in set(d["defect_type"]):
        defects.append(tables.NORMAL_DEFECT)
    wide = d.pivot_table(index=["model", "protocol"], columns="defect_type", values=value)
    wide = wide.reindex(columns=defects).reset_index()
    order = {p: i for i, p in enumerate(schema.PROTOCOLS)}
    wide = wide.assign(_p=wide["protocol"].map(order)).sort_values(["model", "_p"])
    wide["protocol"] = wide["protocol"].map(protocol_label)
    n = d.groupby("defect_type")["n"].mean()

    def head(x: str, tex: bool) -> str:
        name = "normal FPR" if x == tables.NORMAL_DEFECT else (render.latex_escape(x) if tex else x)
        return f"{name}\n($n={n[x]:.0f}$)" if tex else f"{name} (n={n[x]:.0f})"

    return render.render_frame(
        wide, caption=caption, label=label,
        text_columns=[("model", "Model", "Model"), ("protocol", "Protocol", "Protocol")],
        value_columns=[(x, head(x, False), head(x, True)) for x in defects],
        notes=notes, group=True, formats={x: {"digits": 0} for x in defects},
    )  # fmt: skip


def _defect_tables(b: _Build) -> None:
    """Per category: image recall per defect type at the validation threshold (and the
    false-positive rate on normal images), per protocol; pixel PRO per defect type where
    the run saved maps."""
    from shiftbench.analysis import render, tables
    from shiftbench.analysis.defects import defect_pro_table

    dt = tables.defect_table(b.scores)
    if dt.empty:
        return
    pro, skipped = defect_pro_table(b.run, b.level)
    b.out.skipped.extend(skipped)
    for cat in sorted(dt["category"].unique()):
        d = dt[dt["category"] == cat]
        csv = b.table(d, f"defects_{cat}")
        grid = _defect_grid(
            b, d, "rate", cat,
            caption=f"{render.latex_escape(cat)}: share of test images called anomalous per "
            f"defect type at the validation threshold, {b.over}; {b.context or 'no shift'}.",
            notes=["In \\%. For a defect type: image recall (true-positive rate); normal FPR: "
                   "false-positive rate on the normal test images. $n$: test images per seed. "
                   "A defect whose recall holds under shift survives it."],
            label=f"tab:defects_{cat}", normal=True,
        )  # fmt: skip
        b.grid(grid, f"defects_{cat}", "Defect types", f"Defect types, {cat}", csv)
        if pro.empty or cat not in set(pro["category"]):
            continue
        dp = pro[pro["category"] == cat]
        csv = b.table(dp, f"defects_pro_{cat}")
        seeds = sorted({int(x) for v in dp["seeds"] for x in str(v).split(",")})
        over = render.describe_seeds(len(seeds), seeds)
        grid = _defect_grid(
            b, dp.rename(columns={"pro": "rate"}), "rate", cat,
            caption=f"{render.latex_escape(cat)}: pixel PRO per defect type (\\%), {over}; "
            f"{b.context or 'no shift'}; models with saved maps.",
            notes=["Normalised AUPRO up to FPR 0.3 on the maps of the type's anomalous test "
                   "images plus all normal test images; shifted masks are the twins' masks. "
                   "$n$: anomalous test images of the type per seed."],
            label=f"tab:defects_pro_{cat}", normal=False,
        )  # fmt: skip
        b.grid(grid, f"defects_pro_{cat}", "Defect types", f"Pixel PRO per defect type, {cat}",
               csv)  # fmt: skip


def _robustness(b: _Build) -> None:
    """Robustness summary, corruption errors, ranking across shifts, heat maps."""
    from shiftbench.analysis import figures as fig
    from shiftbench.analysis import render
    from shiftbench.analysis import robustness as rb

    metrics = b.run.metrics
    if metrics is None or "shift-noadapt" not in set(metrics["protocol"]):
        b.out.skipped.append("robustness tables: no shift-noadapt rows in metrics.parquet")
        return
    suite = _suite_name(b.run)
    curves = rb.curve_frame(metrics, "image_auroc", "shift-noadapt", suite)
    if curves.empty or not (curves["severity"] > 0).any():
        b.out.skipped.append("robustness tables: no shifted image AUROC")
        return
    baseline = b.baseline
    if baseline is not None and baseline not in set(curves["model"]):
        raise ShiftbenchError(
            f"--baseline {baseline!r}: not a model of the run; choose from "
            f"{', '.join(sorted(set(curves['model'])))}"
        )
    summ = rb.robustness_summary(curves, baseline)
    csv = b.table(summ, "robustness")
    n_shifts = curves["shift"].nunique()
    levels = sorted(v for v in curves["severity"].unique() if v > 0)
    vcols = [
        ("clean", "Clean", "Clean"),
        ("mean_shifted", "Mean shifted", "Mean\nshifted"),
        ("drop", "Drop", "Drop"),
        ("relative_robustness", "Rel. robustness", "Rel.\nrobust."),
        ("ausc", "AUSC", "AUSC"),
        ("worst_text", "Worst level", "Worst\nlevel"),
    ]
    t = summ.copy()
    t["worst_text"] = [
        (f"{100 * w:.1f} ({s + ', ' if n_shifts > 1 else ''}sev. {lv:g})" if np.isfinite(w) else "–")
        for w, s, lv in zip(t["worst"], t["worst_shift"], t["worst_severity"], strict=False)
    ]  # fmt: skip
    formats = {"drop": {"signed": False}}
    bold = {"clean": True, "mean_shifted": True, "drop": False, "relative_robustness": True,
            "ausc": True}  # fmt: skip
    if baseline is not None:
        vcols += [("mce", "mCE", "mCE"), ("relative_mce", "Rel. mCE", "Rel.\nmCE")]
        bold.update({"mce": False, "relative_mce": False})
    grid = render.render_frame(
        t,
        caption=f"Robustness of image AUROC under suite {suite} (shift, no adapt.; "
        f"{len(levels)} level{'s' if len(levels) > 1 else ''}), {b.over}."
        + (f" mCE relative to {render.latex_escape(baseline)}." if baseline else ""),
        label="tab:robustness",
        text_columns=[("model", "Model", "Model")],
        value_columns=vcols,
        notes=[
            "Clean and mean shifted AUROC, drop (clean $-$ mean shifted) and AUSC in \\%; "
            "relative robustness = mean shifted / clean; AUSC: area under the severity curve "
            "from clean (severity 0) to the last level, divided by that level; worst level: "
            "lowest AUROC and where. Definitions: docs/robustness.md.",
            "$\\pm$: standard deviation of the same number computed seed by seed. Bold: best "
            "model in Clean, Mean shifted, Rel.\\ robust.\\ and AUSC (higher is better).",
        ]
        + (["mCE: sum over levels of the error $1-$AUROC, divided by the baseline's, "
            "averaged over shifts; relative mCE does the same with the errors minus the clean "
            "error. In \\%, the baseline scores 100; lower is better."] if baseline else
           ["mCE needs a baseline model: pass --baseline MODEL."]),
        bold={k: v for k, v in bold.items() if v},
        formats={**formats, "relative_robustness": {"scale": 1.0, "digits": 3},
                 "mce": {"digits": 1}, "relative_mce": {"digits": 1}},
        half_columns={c: f"{c}_sd" for c, _, _ in vcols if f"{c}_sd" in t.columns},
    )  # fmt: skip
    b.grid(grid, "robustness", "Robustness", "Robustness summary", csv)
    b.summary["robustness"] = _records(summ)
    if baseline is not None:
        ce = rb.corruption_errors(rb.mean_curves(curves), baseline)
        csv = b.table(ce, "corruption_error")
        if n_shifts > 1:
            wide = ce.pivot_table(index="model", columns="shift", values="ce").reset_index()
            cols = [
                (c, c, render.latex_escape(c)) for c in wide.columns if c not in ("model", "all")
            ]
            grid = render.render_frame(
                wide, caption=f"Corruption error per shift (\\%, baseline "
                f"{render.latex_escape(baseline)} = 100), {b.over}.", label="tab:corruption_error",
                text_columns=[("model", "Model", "Model")], value_columns=cols,
                notes=["Per shift: sum over levels of $1-$AUROC divided by the baseline's."],
            )  # fmt: skip
            b.grid(grid, "corruption_error", "Robustness", "Corruption error per shift", csv)
    # ranking across shifts
    rk = rb.ranking(curves, b.alpha)
    if rk.result is None:
        b.out.skipped.append(f"robustness ranking: {rk.reason}")
    else:
        r = rk.result
        ranks = pd.DataFrame(
            {"model": r.average_ranks.index, "average_rank": r.average_ranks.values}
        )
        ranks["friedman_chi2"], ranks["friedman_p"] = r.statistic, r.p_value
        ranks["critical_difference"], ranks["n_blocks"] = r.critical_difference, r.n_blocks
        csv = b.table(ranks, "robustness_ranks")
        grid = render.render_frame(
            ranks, caption=f"Average rank of image AUROC across shifts and levels (1 = best; "
            f"shift, no adapt.), {r.n_blocks} blocks.", label="tab:robustness_ranks",
            text_columns=[("model", "Model", "Model")],
            value_columns=[("average_rank", "Average rank", "Average rank")],
            notes=[f"Blocks: shift $\\times$ severity $\\times$ category $\\times$ seed. Friedman "
                   f"$\\chi^2 = {r.statistic:.2f}$, $p = {r.p_value:.3g}$; Nemenyi critical difference "
                   f"{r.critical_difference:.2f} at $\\alpha = {b.alpha:g}$."],
            formats={"average_rank": {"scale": 1.0, "digits": 2}},
        )  # fmt: skip
        b.grid(grid, "robustness_ranks", "Robustness", "Ranking across shifts", csv)
        if "cd" in b.kinds:
            if rk.draw_cd:
                b.figure(
                    fig.critical_difference_diagram(
                        r, b.fdir / "cd_robustness", title="Image AUROC across shifts"
                    ),
                    f"Critical-difference diagram (Nemenyi, alpha={b.alpha:g}) of image AUROC "
                    f"under shift, no adapt.; blocks = shift x severity x category x seed "
                    f"({r.n_blocks}). Models joined by a bar do not differ significantly.",
                    "Robustness", "Critical differences across shifts",
                )  # fmt: skip
            else:
                b.out.skipped.append(f"critical-difference diagram across shifts: {rk.reason}")
    if "heatmap" in b.kinds:
        for metric, label in (("image_auroc", "Image AUROC"), ("pixel_aupro", "Pixel PRO")):
            c = curves if metric == "image_auroc" else rb.curve_frame(
                metrics, metric, "shift-noadapt", suite)  # fmt: skip
            if c.empty or not (c["severity"] > 0).any():
                continue
            hf = rb.heatmap_frame(c)
            b.table(hf, f"heatmap_{metric}")
            b.figure(
                fig.robustness_heatmap(hf, b.fdir / f"heatmap_{metric}", label=label),
                f"{label} per shift and severity (shift, no adapt.), {b.over} and categories: "
                "cell = value, below it the change from clean (both in %); one colour scale "
                "for all models.",
                "Robustness", f"{label} heat map",
            )  # fmt: skip


def _num(v) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


def _records(df: pd.DataFrame) -> list[dict]:
    out = []
    for rec in df.to_dict(orient="records"):
        out.append({k: (None if isinstance(v, float) and not math.isfinite(v) else
                         (v.item() if hasattr(v, "item") else v)) for k, v in rec.items()})  # fmt: skip
    return out


def _curve_figures(b: _Build, auroc, n_resamples: int, seed: int) -> None:
    """Degradation bars, ROC/PR curves, score distributions, severity curves."""
    from shiftbench.analysis import figures as fig
    from shiftbench.analysis import robustness as rb

    kinds, test, fdir = b.kinds, b.test, b.fdir
    ctx = f" ({b.context})" if b.context else ""
    level = round(100 * (1 - b.alpha))
    if "degradation" in kinds:
        b.figure(
            fig.degradation_bars(auroc, fdir / "degradation_image_auroc", subtitle=b.context),
            f"Image AUROC per protocol{ctx}, {b.over}, with {level}% bootstrap intervals.",
            "Protocols", "Degradation",
        )  # fmt: skip
    for cat in sorted(test["category"].unique()):
        seeds = sorted(test[test["category"] == cat]["seed"].unique())
        if "roc_pr" in kinds:
            over = (f"every seed thin ({len(seeds)}), their mean thick; legend: mean AUROC / AUPRC"
                    if len(seeds) > 1 else f"seed {seeds[0]}")  # fmt: skip
            b.figure(
                fig.roc_pr_curves(test, cat, fdir / f"roc_pr_{cat}", subtitle=b.context),
                f"ROC and precision-recall curves, {cat}{ctx}: {over}; dotted: chance "
                "(ROC) and prevalence (PR).",
                "Curves", f"ROC and PR, {cat}",
            )  # fmt: skip
        s0 = seeds[0]
        for model in (
            sorted(test[test["category"] == cat]["model"].unique()) if "scores" in kinds else ()
        ):
            b.figure(
                fig.score_distributions(_level_scores(b.run, b.level), cat, model, s0,
                                        fdir / f"scores_{cat}_{model}", subtitle=b.context),
                f"Test-score distributions and thresholds, {cat} / {model}, seed {s0} (the "
                f"first seed){ctx}; shared bins across panels.",
                "Scores", f"Scores, {cat} / {model}",
            )  # fmt: skip
    if "severity" in kinds:
        shifted = [
            p for p in ("shift-noadapt", "shift-adapt") if p in set(b.run.scores["protocol"])
        ]
        if len(b.levels) < 2 or not shifted:
            b.out.skipped.append("severity curves: the run did not sweep severities")
            return
        nres = min(n_resamples, 1000)
        bands = {p: rb.severity_bands(b.run.scores, protocol=p, n_resamples=nres,
                                      alpha=b.alpha, seed=seed, pool_shifts=True)
                 for p in shifted}  # fmt: skip
        n_cat = b.run.scores["category"].nunique()
        n_seed = b.run.scores["seed"].nunique()
        over = f"{n_cat} categor{'ies' if n_cat > 1 else 'y'} × {n_seed} seed{'s' if n_seed > 1 else ''}"
        if schema.SHIFT_COLUMN in b.run.scores.columns:
            over += " × shifts"
        sev = fig.severity_curves(
            bands, fdir / "severity_image_auroc", over=over, level=level,
            title=f"suite {_suite_name(b.run)}; shaded: {level}% bootstrap band",
        )  # fmt: skip
        for p, bd in bands.items():
            b.table(bd, f"severity_curve_{p}")
        b.figure(
            sev,
            f"Image AUROC against the severity of suite {_suite_name(b.run)} (severity 0 = "
            f"clean), mean over {over}; shaded: {level}% paired bootstrap band over test "
            "images.",
            "Severity", "Severity curves",
        )  # fmt: skip
        if n_cat > 1:
            by_cat = rb.severity_bands(b.run.scores, protocol="shift-noadapt", n_resamples=nres,
                                       alpha=b.alpha, seed=seed, by_category=True,
                                       pool_shifts=True)  # fmt: skip
            b.figure(
                fig.severity_small_multiples(by_cat, fdir / "severity_image_auroc_by_category",
                                             protocol="shift-noadapt",
                                             over=f"{n_seed} seed{'s' if n_seed > 1 else ''}"),
                f"Image AUROC against severity per category (shift, no adapt.; severity 0 = "
                f"clean); shaded: {level}% bootstrap band.",
                "Severity", "Severity curves per category",
            )  # fmt: skip


def _rank_tests(b: _Build, auroc) -> None:
    """Friedman / Nemenyi over (category, seed) blocks, per protocol, and CD diagrams --
    the diagrams only with :data:`robustness.MIN_CD_BLOCKS` blocks or more."""
    from shiftbench.analysis import figures as fig
    from shiftbench.analysis import stats
    from shiftbench.analysis.palette import protocol_label
    from shiftbench.analysis.robustness import MIN_CD_BLOCKS

    if b.test["model"].nunique() < 3:
        b.out.skipped.append("rank tests and critical-difference diagrams: need at least 3 models")
        return
    rank_rows = []
    ps = auroc.per_seed
    for protocol in schema.PROTOCOLS:
        wide = ps[ps["protocol"] == protocol].pivot_table(
            index=["category", "seed"], columns="model", values="value"
        )
        if wide.shape[1] < 3 or len(wide.dropna()) < 2:
            continue
        try:
            fn = stats.friedman_nemenyi(wide, alpha=b.alpha)
        except ValueError as exc:
            b.out.skipped.append(f"rank test ({protocol}): {exc}")
            continue
        for m, r in fn.average_ranks.items():
            rank_rows.append(
                {
                    "protocol": protocol,
                    "model": m,
                    "average_rank": r,
                    "friedman_chi2": fn.statistic,
                    "friedman_p": fn.p_value,
                    "critical_difference": fn.critical_difference,
                    "n_blocks": fn.n_blocks,
                }
            )
        if "cd" not in b.kinds:
            continue
        if fn.n_blocks < MIN_CD_BLOCKS:
            b.out.skipped.append(
                f"critical-difference diagram ({protocol_label(protocol)}): {fn.n_blocks} "
                f"blocks (categories x seeds) < {MIN_CD_BLOCKS}, too few for the Friedman "
                "chi-square approximation the diagram rests on; average ranks are in "
                "rank_tests.csv"
            )
            continue
        b.figure(
            fig.critical_difference_diagram(
                fn, b.fdir / f"cd_{protocol}", title=f"Image AUROC, {protocol_label(protocol)}"
            ),
            f"Critical-difference diagram (Nemenyi, alpha={b.alpha:g}), "
            f"{protocol_label(protocol)}; blocks = categories x seeds ({fn.n_blocks}).",
            "Ranks", f"Critical differences, {protocol_label(protocol)}",
        )  # fmt: skip
    if rank_rows:
        b.table(pd.DataFrame(rank_rows), "rank_tests")


def _qualitative_figures(b: _Build) -> None:
    """One qualitative grid per (category, model), from the first seed with saved maps."""
    from shiftbench.analysis import figures as fig
    from shiftbench.analysis.qualitative import qualitative_rows

    roots = {b.run.path, *b.run.map_roots.values()}
    if not any((r / schema.MAPS).is_dir() for r in roots):
        b.out.skipped.append("qualitative grids: the run saved no maps/")
        return
    test = b.test
    for cat in sorted(test["category"].unique()):
        for model in sorted(test["model"].unique()):
            for s in sorted(test["seed"].unique()):
                if not b.run.map_names(cat, model, s):
                    continue
                try:
                    got = qualitative_rows(b.run, b.scores, b.level, cat, model, s)
                except ShiftbenchError as exc:
                    b.out.skipped.append(f"qualitative grid {cat} / {model}: {exc}")
                    got = None
                if got:
                    rows, protocol, scale = got
                    from shiftbench.analysis.palette import protocol_label

                    sev = (
                        f", severity {b.level:g}"
                        if protocol != "clean" and b.level is not None
                        else ""
                    )
                    b.figure(
                        fig.qualitative_grid(
                            rows,
                            b.fdir / f"qualitative_{cat}_{model}",
                            title=f"{cat} / {model}, seed {s}, {protocol_label(protocol)}{sev}",
                            **scale,
                        ),
                        f"Qualitative results, {cat} / {model}, seed {s} "
                        f"({protocol_label(protocol)}{sev}). Rows by rule: per defect type its "
                        "highest-scored image, then the lowest-scored anomalous, the highest- "
                        "and the lowest-scored normal image. Colour scale fixed by the "
                        "validation pixel threshold (drawn on the bar and as white contours).",
                        "Qualitative", f"Qualitative, {cat} / {model}",
                    )  # fmt: skip
                break  # one seed per (category, model) is enough for a picture


def _headline(b: _Build, comparisons: dict) -> None:
    """The headline numbers of summary.json: per model the macro-average (``mean`` row) of
    each image metric per protocol with its interval, and the Δ columns with their p."""
    from shiftbench.analysis.tables import COLUMNS

    models = {}
    for metric, comp in comparisons.items():
        t = comp.table
        mean = t[t["category"] == schema.MEAN_CATEGORY]
        if mean.empty:  # one category: its row is the headline
            mean = t
        for _, r in mean.iterrows():
            entry = models.setdefault(r["model"], {})
            cols = {}
            for c in COLUMNS:
                if pd.notna(r.get(c)):
                    cols[c] = {"value": _num(r[c]), "low": _num(r[f"{c}_low"]),
                               "high": _num(r[f"{c}_high"])}  # fmt: skip
                    if f"{c}_p" in r and pd.notna(r[f"{c}_p"]):
                        cols[c]["p_holm"] = _num(r[f"{c}_p"])
                        cols[c]["test"] = str(r[f"{c}_test"])
            entry[metric] = cols
    b.summary["models"] = models


def _write_summary(b: _Build, out_dir: Path, n_resamples: int) -> Path:
    from shiftbench import __version__

    run = b.run
    doc = {
        "shiftbench": __version__,
        "runs": run.manifest.get("sources", [str(run.path)]),
        "dataset": run.manifest.get("config", {}).get("dataset"),
        "suite": _suite_name(run) if run.manifest.get("suite") else None,
        "severity_tables": b.level,
        "severities": b.levels,
        "seeds": sorted(int(s) for s in run.scores["seed"].unique()),
        "categories": sorted(str(c) for c in run.scores["category"].unique()),
        "interval": {
            "level": 1 - b.alpha,
            "method": "paired label-stratified percentile bootstrap",
            "n_resamples": n_resamples,
        },  # fmt: skip
        "baseline": b.baseline,
        **b.summary,
    }
    path = out_dir / schema.SUMMARY_JSON
    path.write_text(json.dumps(doc, indent=2, default=str, allow_nan=False) + "\n")
    return path


def build_report(
    run_dir: str | Path | Sequence[str | Path],
    formats: str | tuple[str, ...] | list[str] = FORMATS,
    *,
    n_resamples: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
    figures: bool | Collection[str] = True,
    baseline: str | None = None,
    out: str | Path | None = None,
) -> Report:
    """Write tables, figures, ``summary.json`` and (with ``"html"`` in ``formats``)
    ``report.html``. CSV tables and PDF/PNG figures are always written.

    Args:
        run_dir: a finished run directory, or several (combined by :func:`combine_runs`).
        formats: any of ``latex``, ``markdown``, ``html`` (list or comma-separated string).
        n_resamples: bootstrap resamples per (category, seed).
        alpha: CIs are ``1 - alpha``; tests are marked at ``alpha``.
        seed: base seed of the bootstrap, so a report is reproducible.
        figures: False for tables only, or a subset of :data:`FIGURE_KINDS` to draw.
        baseline: the model that normalises the corruption errors (mCE).
        out: where to write; default the run directory (required for several runs).
    """
    fmts, kinds = _check_options(formats, n_resamples, alpha, figures)
    dirs = [run_dir] if isinstance(run_dir, (str, Path)) else list(run_dir)
    if not dirs:
        raise ShiftbenchError("report: name at least one run directory")
    runs = [load_run(d) for d in dirs]
    if len(runs) == 1:
        run = runs[0]
        out_dir = Path(out) if out is not None else run.path
    else:
        if out is None:
            raise ShiftbenchError(
                f"report: {len(runs)} runs are combined into one report; say where with --out DIR"
            )
        out_dir = Path(out)
        run = combine_runs(runs, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tdir, fdir = out_dir / schema.TABLES, out_dir / schema.FIGURES
    tdir.mkdir(exist_ok=True)
    fdir.mkdir(exist_ok=True)
    level = _table_level(run)
    b = _Build(
        run=run,
        out=Report(),
        fmts=fmts,
        kinds=kinds,
        alpha=alpha,
        level=level,
        scores=_table_scores(run, level),
        tdir=tdir,
        fdir=fdir,
        context=_context(run, level),
        over=_over(run),
        baseline=baseline,
    )
    comparisons = _image_tables(b, n_resamples, seed)
    _headline(b, comparisons)
    _other_tables(b)
    _sweep_tables(b)
    _defect_tables(b)
    _robustness(b)
    if not kinds:
        b.out.skipped.append("figures: not requested")
    _curve_figures(b, comparisons["image_auroc"], n_resamples, seed)
    _rank_tests(b, comparisons["image_auroc"])
    if "qualitative" in kinds:
        _qualitative_figures(b)
    b.out.summary = _write_summary(b, out_dir, n_resamples)
    if "html" in fmts:
        b.out.html = _write_html(run, out_dir, b.entries, b.out.skipped, b.out.summary)
    return b.out


_CSS = """
body{font-family:Georgia,serif;margin:2em auto;padding:0 2em;color:#111;max-width:1400px}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}
h3{font-size:1.05em;margin-top:1.5em}
nav ol{columns:2;font-size:.9em}
table{border-collapse:collapse;margin:.6em 0;font-size:0.85em;width:100%}
table.config{width:auto}table.config td{text-align:left;vertical-align:top}
table.config td:first-child{font-weight:bold;padding-right:1.5em}
caption{caption-side:top;text-align:left;padding-bottom:.4em;font-size:.9em;color:#333}
th,td{padding:.25em .6em;text-align:center}th{border-top:2px solid #000;border-bottom:1px solid #000}
tbody tr:last-child td{border-bottom:2px solid #000}tr.block td{border-top:1px solid #bbb}
td:first-child,td:nth-child(2){text-align:left}
.notes{font-size:.8em;color:#333}.notes p{margin:.2em 0}
.files{font-size:.8em}.files a{margin-right:.8em}
figure{margin:1.5em 0}figure img{max-width:100%}figcaption{font-size:.85em;color:#333}
"""


def _config_rows(run: Run) -> list[tuple[str, str]]:
    """The manifest as readable (name, value) rows: the report keys, config flattened."""
    m = run.manifest
    rows = []

    def show(v) -> str:
        if isinstance(v, list):
            return ", ".join(map(str, v))
        if isinstance(v, dict):
            return "; ".join(f"{k}: {show(x)}" for k, x in v.items())
        return "–" if v is None else str(v)

    for key in ("sources", *schema.REPORT_MANIFEST_KEYS):
        if key not in m:
            continue
        if key == "config" and isinstance(m[key], dict):
            rows += [(f"config: {k}", show(v)) for k, v in m[key].items()]
        else:
            rows.append((key.replace("_", " "), show(m[key])))
    suite = m.get("suite")
    if suite:
        rows.append(("suite", f"{suite.get('name')} (hash {str(suite.get('hash'))[:12]})"))
    if m.get("split_hashes"):
        rows.append(("split hashes", show(m["split_hashes"])))
    return rows


def _write_html(
    run: Run, out_dir: Path, entries: list[_Entry], skipped: list[str], summary: Path | None
) -> Path:
    name = html.escape(out_dir.name)

    def rel(p: Path) -> str:
        return html.escape(
            p.relative_to(out_dir).as_posix() if p.is_relative_to(out_dir) else str(p)
        )

    sections = list(dict.fromkeys(e.section for e in entries))
    toc = ["<nav><h2>Contents</h2><ol><li><a href='#run'>Run</a></li>"]
    for i, sec in enumerate(sections):
        toc.append(f"<li><a href='#s{i}'>{html.escape(sec)}</a><ol>")
        for j, e in enumerate(x for x in entries if x.section == sec):
            toc.append(f"<li><a href='#s{i}-{j}'>{html.escape(e.title)}</a></li>")
        toc.append("</ol></li>")
    if skipped:
        toc.append("<li><a href='#skipped'>Not made</a></li>")
    toc.append("</ol></nav>")
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>shiftbench report: {name}</title>",
        f"<style>{_CSS}</style></head><body><h1>shiftbench report: {name}</h1>",
        *toc,
        "<h2 id='run'>Run</h2><table class='config'><tbody>",
    ]
    for k, v in _config_rows(run):
        parts.append(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>")
    parts.append("</tbody></table>")
    if summary is not None:
        parts.append(
            f"<p class='files'>Headline numbers: <a href='{rel(summary)}'>{rel(summary)}</a></p>"
        )
    for i, sec in enumerate(sections):
        parts.append(f"<h2 id='s{i}'>{html.escape(sec)}</h2>")
        for j, e in enumerate(x for x in entries if x.section == sec):
            links = " ".join(f"<a href='{rel(f)}'>{html.escape(f.suffix[1:])}</a>" for f in e.files)
            parts.append(f"<h3 id='s{i}-{j}'>{html.escape(e.title)}</h3>")
            if e.kind == "table":
                parts.append(e.body)
            else:
                data = base64.b64encode(e.png.read_bytes()).decode("ascii")
                parts.append(
                    f"<figure><img alt='{html.escape(e.png.stem)}' "
                    f"src='data:image/png;base64,{data}'>"
                    f"<figcaption>{html.escape(e.caption)}</figcaption></figure>"
                )
            parts.append(f"<p class='files'>Files: {links}</p>")
    if skipped:
        parts.append(
            "<h2 id='skipped'>Not made</h2><ul>"
            + "".join(f"<li>{html.escape(s)}</li>" for s in skipped)
            + "</ul>"
        )
    parts.append("</body></html>")
    path = out_dir / schema.REPORT_HTML
    path.write_text("".join(parts), encoding="utf-8")
    return path
