"""The report's two documents besides the tables and figures: ``summary.json`` (the
headline numbers: per model the macro-average of each image metric per protocol, with
intervals and tests) and ``report.html`` (contents, the configuration as a table, every
table and figure with its caption and links to its files)."""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

import pandas as pd

from shiftbench.analysis.report.context import Build, Entry, suite_name
from shiftbench.results import Run, schema

__all__ = ["headline", "records", "write_html", "write_summary"]


def _num(v) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


def records(df: pd.DataFrame) -> list[dict]:
    out = []
    for rec in df.to_dict(orient="records"):
        out.append({k: (None if isinstance(v, float) and not math.isfinite(v) else
                         (v.item() if hasattr(v, "item") else v)) for k, v in rec.items()})  # fmt: skip
    return out


def headline(b: Build, comparisons: dict) -> None:
    """The headline numbers of summary.json: per model the macro-average (``mean`` row) of
    each image metric per protocol with its interval, and the Δ columns with their p."""
    from shiftbench.analysis.tables.comparison import COLUMNS

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


def write_summary(b: Build, out_dir: Path, n_resamples: int) -> Path:
    from shiftbench import __version__

    run = b.run
    doc = {
        "shiftbench": __version__,
        "runs": run.manifest.get("sources", [str(run.path)]),
        "dataset": run.manifest.get("config", {}).get("dataset"),
        "suite": suite_name(run) if run.manifest.get("suite") else None,
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


_CSS = """
body{font-family:Georgia,serif;margin:2em auto;padding:0 2em;color:#111;max-width:1400px}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}
h3{font-size:1.05em;margin-top:1.5em}
nav>ol{columns:2 22em;column-gap:3em;font-size:.9em;margin:0;padding-left:1.6em}
nav>ol>li{break-inside:avoid;margin-bottom:.5em}
nav ol ol{columns:auto;list-style:disc;margin:.15em 0 0;padding-left:1.3em}
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


def write_html(
    run: Run, out_dir: Path, entries: list[Entry], skipped: list[str], summary: Path | None
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
