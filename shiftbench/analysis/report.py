"""Build ``tables/``, ``figures/`` and ``report.html`` from a run directory.

Reads the run-directory format of ``docs/architecture.md`` (``manifest.json``,
``splits.csv``, ``scores.parquet``, ``metrics.parquet``, optional ``maps/``) and writes:

* ``tables/<metric>.{csv,tex,md}`` for image AUROC, AUPRC and F1 (protocol comparison with
  bootstrap intervals and Holm-corrected tests), ``tables/efficiency.*``,
  ``tables/threshold_transfer.*`` and ``tables/rank_tests.csv`` (Friedman/Nemenyi);
* ``figures/*.{pdf,png}``: degradation bars, ROC/PR curves per category, score
  distributions with thresholds, severity curves (if the run swept severities),
  critical-difference diagrams (>= 3 models), qualitative grids (if maps were saved);
* ``report.html``: one self-contained page (PNG figures embedded as base64).
"""

from __future__ import annotations

import base64
import html
import json
import re
import warnings
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from shiftbench.errors import ShiftbenchError

__all__ = ["FIGURE_KINDS", "FORMATS", "Report", "Run", "build_report", "load_run"]

FORMATS = ("latex", "markdown", "html")
FIGURE_KINDS = ("degradation", "roc_pr", "scores", "severity", "cd", "qualitative")
TABLE_METRICS = ("image_auroc", "image_auprc", "image_f1")
_SCORE_COLUMNS = (
    "category",
    "model",
    "seed",
    "protocol",
    "split",
    "sample_id",
    "label",
    "score",
    "threshold",
    "decision",
)
_QUALITATIVE_ROWS = 4


@dataclass
class Run:
    """A run directory, loaded. ``metrics`` and ``splits`` are None when absent."""

    path: Path
    manifest: dict
    scores: pd.DataFrame
    metrics: pd.DataFrame | None
    splits: pd.DataFrame | None


@dataclass
class Report:
    """What :func:`build_report` wrote."""

    tables: list[Path] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    html: Path | None = None
    skipped: list[str] = field(default_factory=list)  # figures not drawn, and why


def load_run(run_dir: str | Path) -> Run:
    """Read a run directory; a missing or malformed required file is a ShiftbenchError."""
    path = Path(run_dir)
    if not path.is_dir():
        raise ShiftbenchError(
            f"{path}: run directory not found; pass the folder `shiftbench run` wrote"
        )
    scores_path = path / "scores.parquet"
    if not scores_path.is_file():
        raise ShiftbenchError(
            f"{scores_path}: missing; is {path} a finished `shiftbench run` directory?"
        )
    try:
        scores = pd.read_parquet(scores_path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise ShiftbenchError(
            f"{scores_path}: unreadable ({exc.__class__.__name__}); re-run `shiftbench run`"
        ) from None
    missing = [c for c in _SCORE_COLUMNS if c not in scores.columns]
    if missing:
        raise ShiftbenchError(
            f"{scores_path}: missing columns {', '.join(missing)}; written by an incompatible version?"
        )
    if scores.empty:
        raise ShiftbenchError(f"{scores_path}: no rows; the run scored nothing")
    manifest: dict = {}
    if (path / "manifest.json").is_file():
        try:
            manifest = json.loads((path / "manifest.json").read_text())
        except json.JSONDecodeError as exc:
            raise ShiftbenchError(
                f"{path / 'manifest.json'}: invalid JSON ({exc.msg}, line {exc.lineno})"
            ) from None
    metrics = (
        pd.read_parquet(path / "metrics.parquet") if (path / "metrics.parquet").is_file() else None
    )
    splits = pd.read_csv(path / "splits.csv") if (path / "splits.csv").is_file() else None
    return Run(path=path, manifest=manifest, scores=scores, metrics=metrics, splits=splits)


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


def _table_level(run: Run) -> float | None:
    """The severity the tables show: the run's level, or for a sweep the one configured
    (when it is a single level) or else the middle level of the sweep."""
    s = run.scores
    if "severity" not in s.columns or s["severity"].dropna().nunique() == 0:
        return None
    levels = sorted(s["severity"].dropna().unique())
    wanted = run.manifest.get("config", {}).get("severity")  # a list for a sweep
    if isinstance(wanted, (int, float)) and wanted in levels:
        return wanted
    return levels[len(levels) // 2]


def _table_scores(run: Run, level: float | None) -> pd.DataFrame:
    """Scores at one severity ``level`` (:func:`_table_level`): a severity sweep puts
    several levels in one file."""
    s = run.scores
    if "severity" in s.columns and s["severity"].dropna().nunique() > 1:
        s = s[(s["severity"] == level) | s["severity"].isna()]
        s = s.drop_duplicates(["category", "model", "seed", "protocol", "split", "sample_id"])
    return s


def _write_grid(grid, stem: Path, formats: tuple[str, ...], out: Report) -> None:
    if "latex" in formats:
        stem.with_suffix(".tex").write_text(grid.latex())
        out.tables.append(stem.with_suffix(".tex"))
    if "markdown" in formats:
        stem.with_suffix(".md").write_text(grid.markdown())
        out.tables.append(stem.with_suffix(".md"))


def _qualitative_rows(
    run: Run,
    scores: pd.DataFrame,
    level: float | None,
    category: str,
    model: str,
    seed: int,
    maps_dir: Path,
) -> tuple[list[dict], str] | None:
    """Rows for the qualitative grid of one (category, model, seed), or None; ``scores``
    are the tables' scores at severity ``level``."""
    from shiftbench.data.io import read_image, read_mask

    if run.splits is None:
        return None
    suite = None
    cfg = run.manifest.get("config", {})
    shift_file = maps_dir / "shift-noadapt.npz"
    if not shift_file.is_file() and level is not None:
        shift_file = maps_dir / f"shift-noadapt-sev{int(level)}.npz"  # a sweep: one per level
    if shift_file.is_file() and cfg.get("suite"):
        try:  # the transforms package may be missing or reject the suite: fall back to clean maps
            from shiftbench.transforms import load_suite

            suite = load_suite(cfg["suite"], int(level) if level is not None else None)
        except Exception as exc:  # noqa: BLE001 - any failure only costs the shifted column
            warnings.warn(
                f"qualitative grid: shifted images unavailable ({exc})",
                RuntimeWarning,
                stacklevel=2,
            )
    protocol = "shift-noadapt" if suite is not None else "clean"
    maps_file = shift_file if suite is not None else maps_dir / "clean.npz"
    if not maps_file.is_file():
        candidates = sorted(maps_dir.glob("*.npz"))
        if not candidates:
            return None
        maps_file = candidates[0]
        protocol = re.sub(r"-sev\d+$", "", maps_file.stem)
    with np.load(maps_file, allow_pickle=False) as z:
        ids, maps = [str(i) for i in z["sample_id"]], z["maps"].astype(np.float32)
    sc = scores
    rows_sc = sc[
        (sc["category"] == category)
        & (sc["model"] == model)
        & (sc["seed"] == seed)
        & (sc["protocol"] == protocol)
        & (sc["split"] == "test")
    ].set_index("sample_id")
    sp = run.splits[run.splits["seed"] == seed].set_index("sample_id")
    # Anomalous images first (the interesting ones), then normals; deterministic order.
    order = sorted(
        range(len(ids)),
        key=lambda i: (-int(sp["label"].get(ids[i], 0)) if ids[i] in sp.index else 1, ids[i]),
    )
    rows = []
    for i in order[:_QUALITATIVE_ROWS]:
        sid, heat = ids[i], maps[i]
        if sid not in sp.index:
            continue
        size = heat.shape[0]
        image = read_image(sp.loc[sid, "image_path"], size=size)
        mp = sp.loc[sid, "mask_path"]
        mask = read_mask(None if pd.isna(mp) else mp, size=size)
        shifted = None
        if protocol == "shift-noadapt" and suite is not None:
            try:
                shifted, mask, _ = suite.apply(image, mask, seed=int(seed), image_id=sid)
            except Exception as exc:  # noqa: BLE001 - a picture is not worth failing the report
                warnings.warn(
                    f"qualitative grid: could not shift {sid} ({exc})", RuntimeWarning, stacklevel=2
                )
                shifted, mask = None, None
        elif protocol != "clean":
            mask = None  # the shifted ground truth cannot be rebuilt without the suite
        pthr = (
            rows_sc["pixel_threshold"].get(sid, np.nan) if "pixel_threshold" in rows_sc else np.nan
        )
        pred = heat >= pthr if np.isfinite(pthr) else None
        score = rows_sc["score"].get(sid, np.nan)
        rows.append(
            {
                "image": image,
                "shifted": shifted,
                "mask": mask,
                "heatmap": heat,
                "pred": pred,
                "title": f"{sid.split('/')[-2] if '/' in sid else sid}\nscore {score:.3g}",
            }
        )
    return (rows, protocol) if rows else None


def build_report(
    run_dir: str | Path,
    formats: str | tuple[str, ...] | list[str] = FORMATS,
    *,
    n_resamples: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
    figures: bool | Collection[str] = True,
) -> Report:
    """Write tables, figures and (with ``"html"`` in ``formats``) ``report.html`` into
    ``run_dir``. CSV tables and PDF/PNG figures are always written.

    Args:
        run_dir: a run directory (``scores.parquet`` required).
        formats: any of ``latex``, ``markdown``, ``html`` (list or comma-separated string).
        n_resamples: bootstrap resamples per (category, seed).
        alpha: CIs are ``1 - alpha``; tests are marked at ``alpha``.
        seed: base seed of the bootstrap, so a report is reproducible.
        figures: False for tables only, or a subset of :data:`FIGURE_KINDS` to draw.
    """
    from shiftbench.analysis import figures as fig
    from shiftbench.analysis import stats, tables, transfer

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
    run = load_run(run_dir)
    out = Report()
    tdir, fdir = run.path / "tables", run.path / "figures"
    tdir.mkdir(exist_ok=True)
    fdir.mkdir(exist_ok=True)
    level = _table_level(run)
    scores = _table_scores(run, level)
    test = scores[scores["split"] == "test"]
    sweep_note = ""
    if "severity" in run.scores.columns and run.scores["severity"].dropna().nunique() > 1:
        levels = ", ".join(f"{v:g}" for v in sorted(run.scores["severity"].dropna().unique()))
        sweep_note = (
            f" Shifted columns at severity {level:g} of the sweep ({levels}); "
            "the severity curves show every level."
        )
    html_parts: list[tuple[str, str]] = []  # (section title, html)

    # Protocol comparison tables.
    comparisons = {}
    for metric in TABLE_METRICS:
        comp = tables.protocol_comparison(
            scores, metric, n_resamples=n_resamples, alpha=alpha, seed=seed
        )
        comparisons[metric] = comp
        comp.table.to_csv(tdir / f"{metric}.csv", index=False)
        out.tables.append(tdir / f"{metric}.csv")
        grid = tables.render_comparison(comp)
        grid.caption += sweep_note
        _write_grid(grid, tdir / metric, fmts, out)
        html_parts.append((comp.label, grid.html()))

    # Pixel metrics: whole-map values from metrics.parquet, at the tables' severity.
    if run.metrics is not None:
        for metric in tables.PIXEL_METRICS:
            if metric not in set(run.metrics["metric"]):
                continue
            table = tables.pixel_table(run.metrics, metric, level)
            table.to_csv(tdir / f"{metric}.csv", index=False)
            out.tables.append(tdir / f"{metric}.csv")
            grid = tables.render_pixel(table, metric)
            grid.caption += sweep_note
            _write_grid(grid, tdir / metric, fmts, out)
            html_parts.append((tables.PIXEL_METRICS[metric], grid.html()))

    # Threshold transfer.
    tt = transfer.transfer_table(scores)
    tt.to_csv(tdir / "threshold_transfer.csv", index=False)
    out.tables.append(tdir / "threshold_transfer.csv")
    if len(tt):
        grid = tables.render_transfer(tt)
        grid.caption += sweep_note
        _write_grid(grid, tdir / "threshold_transfer", fmts, out)
        html_parts.append(("Threshold transfer", grid.html()))

    # Efficiency.
    if run.metrics is not None:
        eff = tables.efficiency_table(run.metrics)
        if len(eff):
            eff.to_csv(tdir / "efficiency.csv", index=False)
            out.tables.append(tdir / "efficiency.csv")
            grid = tables.render_efficiency(eff)
            _write_grid(grid, tdir / "efficiency", fmts, out)
            html_parts.append(("Efficiency", grid.html()))
    else:
        out.skipped.append("efficiency table: no metrics.parquet")

    # Figures.
    fig_entries: list[tuple[str, Path]] = []
    if not kinds:
        out.skipped.append("figures: not requested")

    def add(paths: list[Path] | None, caption: str) -> None:
        if paths:
            out.figures.extend(paths)
            fig_entries.append((caption, next(p for p in paths if p.suffix == ".png")))

    auroc = comparisons["image_auroc"]
    if "degradation" in kinds:
        add(
            fig.degradation_bars(auroc, fdir / "degradation_image_auroc"),
            f"Image AUROC per protocol with {round(100 * (1 - alpha))}% bootstrap intervals.",
        )
    seeds = sorted(test["seed"].unique())
    for cat in sorted(test["category"].unique()):
        s0 = min(test[test["category"] == cat]["seed"])
        if "roc_pr" in kinds:
            add(
                fig.roc_pr_curves(test, cat, s0, fdir / f"roc_pr_{cat}"),
                f"ROC and PR curves, {cat}, seed {s0}.",
            )
        for model in (
            sorted(test[test["category"] == cat]["model"].unique()) if "scores" in kinds else ()
        ):
            add(
                fig.score_distributions(scores, cat, model, s0, fdir / f"scores_{cat}_{model}"),
                f"Test-score distributions and thresholds, {cat} / {model}, seed {s0}.",
            )
    if "severity" in kinds:
        sev = fig.severity_curves(run.scores, fdir / "severity_image_auroc")
        if sev:
            add(sev, "Image AUROC against shift severity (mean over categories and seeds).")
        else:
            out.skipped.append("severity curves: the run did not sweep severities")

    # Friedman / Nemenyi over (category, seed) blocks, per protocol.
    rank_rows = []
    models = sorted(test["model"].unique())
    if len(models) >= 3:
        ps = auroc.per_seed
        for protocol in ("clean", "shift-noadapt", "shift-adapt"):
            wide = ps[ps["protocol"] == protocol].pivot_table(
                index=["category", "seed"], columns="model", values="value"
            )
            if wide.shape[1] < 3 or len(wide.dropna()) < 2:
                continue
            try:
                fn = stats.friedman_nemenyi(wide, alpha=alpha)
            except ValueError as exc:
                out.skipped.append(f"critical-difference diagram ({protocol}): {exc}")
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
            if "cd" in kinds:
                add(
                    fig.critical_difference_diagram(
                        fn, fdir / f"cd_{protocol}", title=f"Image AUROC, {protocol}"
                    ),
                    f"Critical-difference diagram (Nemenyi, alpha={alpha}), {protocol}; blocks = categories x seeds.",
                )
        if rank_rows:
            pd.DataFrame(rank_rows).to_csv(tdir / "rank_tests.csv", index=False)
            out.tables.append(tdir / "rank_tests.csv")
    else:
        out.skipped.append("critical-difference diagram: needs at least 3 models")

    maps_root = run.path / "maps"
    if "qualitative" not in kinds:
        pass
    elif maps_root.is_dir():
        for cat in sorted(test["category"].unique()):
            for model in models:
                for s in seeds:
                    mdir = maps_root / str(cat) / str(model) / f"seed{s}"
                    if not mdir.is_dir():
                        continue
                    got = _qualitative_rows(run, scores, level, cat, model, s, mdir)
                    if got:
                        rows, protocol = got
                        add(
                            fig.qualitative_grid(
                                rows,
                                fdir / f"qualitative_{cat}_{model}",
                                title=f"{cat} / {model}, seed {s}, {protocol}",
                            ),
                            f"Qualitative results, {cat} / {model}, seed {s} ({protocol}).",
                        )
                    break  # one seed per (category, model) is enough for a picture
    else:
        out.skipped.append("qualitative grids: the run saved no maps/")

    if "html" in fmts:
        out.html = _write_html(run, html_parts, fig_entries, out.skipped)
    return out


_CSS = """
body{font-family:Georgia,serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#111}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:1em 0;font-size:0.85em}
caption{caption-side:top;text-align:left;padding-bottom:.4em;font-size:.9em;color:#333}
th,td{padding:.25em .6em;text-align:center}th{border-top:2px solid #000;border-bottom:1px solid #000}
tbody tr:last-child td{border-bottom:2px solid #000}tr.block td{border-top:1px solid #bbb}
td:first-child,td:nth-child(2){text-align:left}
figure{margin:1.5em 0}figure img{max-width:100%}figcaption{font-size:.85em;color:#333}
pre{background:#f6f6f6;padding:.6em;overflow-x:auto;font-size:.8em}
"""


def _write_html(
    run: Run, tables_html: list[tuple[str, str]], figs: list[tuple[str, Path]], skipped: list[str]
) -> Path:
    name = html.escape(run.path.name)
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>shiftbench report: {name}</title>",
        f"<style>{_CSS}</style></head><body><h1>shiftbench report: {name}</h1>",
    ]
    m = run.manifest
    info = {k: m[k] for k in ("command", "created", "git_commit", "versions") if k in m}
    if "config" in m:
        info["config"] = m["config"]
    if info:
        parts.append(
            f"<h2>Run</h2><pre>{html.escape(json.dumps(info, indent=2, default=str))}</pre>"
        )
    parts.append("<h2>Tables</h2>")
    for title, body in tables_html:
        parts.append(f"<h3>{html.escape(title)}</h3>{body}")
    parts.append("<h2>Figures</h2>")
    for caption, png in figs:
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        parts.append(
            f"<figure><img alt='{html.escape(png.stem)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    if skipped:
        parts.append(
            "<h2>Not drawn</h2><ul>"
            + "".join(f"<li>{html.escape(s)}</li>" for s in skipped)
            + "</ul>"
        )
    parts.append("</body></html>")
    path = run.path / "report.html"
    path.write_text("".join(parts), encoding="utf-8")
    return path
