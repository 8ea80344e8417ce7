"""Every LaTeX table of a report compiles in a standard article, one- and two-column, and
stays within the column (``table``) or the page width (``table*``): pdflatex's log must
show no overfull box. Skips, saying why, where pdflatex is missing."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from shiftbench.analysis.tables.render import _plain_caption

PREAMBLE = (
    "\\documentclass[{opts}]{{article}}\n"
    "\\usepackage[T1]{{fontenc}}\\usepackage[utf8]{{inputenc}}\n"
    "\\usepackage{{amsmath,booktabs,threeparttable}}\n"
    "\\usepackage[letterpaper,margin=0.75in]{{geometry}}\n"
    "\\begin{{document}}\n"
)


def compile_tables(tex_files: list[Path], workdir: Path, twocolumn: bool) -> tuple[int, str]:
    """Compile one document including every table; returns (return code, log text)."""
    workdir.mkdir(parents=True, exist_ok=True)
    body = "\n".join(f"\\input{{{p.resolve().as_posix()}}}\n\\clearpage" for p in sorted(tex_files))
    doc = workdir / ("two.tex" if twocolumn else "one.tex")
    doc.write_text(
        PREAMBLE.format(opts="10pt,twocolumn" if twocolumn else "10pt")
        + "\\section{Tables}\nText.\n"
        + body
        + "\n\\end{document}\n"
    )
    res = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=180,
    )
    log = (workdir / doc.with_suffix(".log").name).read_text(errors="replace")
    return res.returncode, log


def overfull(log: str) -> list[str]:
    return [ln for ln in log.splitlines() if ln.startswith(("Overfull \\hbox", "Overfull \\vbox"))]


@pytest.fixture(scope="module")
def sweep_report(tmp_path_factory):
    from test_report import make_fake_run

    from shiftbench.analysis.report.build import build_report

    root = tmp_path_factory.mktemp("latex")
    run = make_fake_run(root, with_maps=False, n_normal=10, n_anom=8, severities=(1, 3, 5))
    build_report(run, "latex,markdown", n_resamples=200, figures=False, baseline="padim")
    return run


def test_every_table_has_a_short_caption_and_notes_below(sweep_report):
    texs = sorted((sweep_report / "tables").glob("*.tex"))
    names = {p.stem for p in texs}
    assert {"image_auroc", "efficiency", "severity_image_auroc", "robustness",
            "defects_brick", "threshold_transfer"} <= names  # fmt: skip
    for p in texs:
        tex = p.read_text()
        caption = re.search(r"\\caption\{(.*)\}\n\\label", tex).group(1)
        # two lines of a \footnotesize caption in one column of a two-column paper
        assert len(_plain_caption(caption)) <= 170, (p.name, caption)
        assert tex.index("\\end{tabular}") < tex.index("\\end{threeparttable}")
        if "tablenotes" in tex:
            assert tex.index("\\end{tabular}") < tex.index("\\begin{tablenotes}")


@pytest.mark.parametrize("twocolumn", [True, False], ids=["two-column", "one-column"])
def test_tables_compile_without_overfull_boxes(sweep_report, tmp_path, twocolumn):
    if not shutil.which("pdflatex"):
        pytest.skip("pdflatex is not installed (apt-get install texlive-latex-extra); "
                    "LaTeX compile not checked")  # fmt: skip
    texs = sorted((sweep_report / "tables").glob("*.tex"))
    rc, log = compile_tables(texs, tmp_path, twocolumn)
    assert rc == 0, log[-3000:]
    assert not overfull(log), "\n".join(overfull(log))


def test_tables_say_only_what_applies(tmp_path):
    """One model, one seed, no shift-adapt: no column of "–" for the protocol never run
    (so the protocol tables fit one column), no "Bold: best" and no "±: standard
    deviation" note, and ``--baseline`` stays two hyphens in LaTeX (not an en dash)."""
    import pandas as pd
    from test_report import make_fake_run

    from shiftbench.analysis.report.build import build_report

    run = make_fake_run(tmp_path, with_maps=False, n_normal=10, n_anom=8, severities=(1, 3))
    for name in ("scores.parquet", "metrics.parquet"):
        df = pd.read_parquet(run / name)
        keep = (df["model"] == "patchcore") & (df["seed"] == 0) & (df["protocol"] != "shift-adapt")
        df[keep].to_parquet(run / name, index=False)
    build_report(run, "latex,markdown", n_resamples=100, figures=False)
    tables = run / "tables"
    auroc = (tables / "image_auroc.tex").read_text()
    assert "adapt.}" not in auroc.replace("no adapt.}", "")  # no shift-adapt column, no Δ
    assert "\\begin{table}" in auroc and "table*" not in auroc
    assert "tabular}{lccc}" in auroc  # model, clean, shift (no adapt.), Δ
    texs = sorted(tables.glob("*.tex"))
    for p in texs:
        tex = p.read_text()
        assert "Bold" not in tex, p.name
        assert "standard deviation" not in tex, p.name
    rob = (tables / "robustness.tex").read_text()
    assert "\\texttt{-{}-baseline}" in rob and " --baseline" not in rob
    assert "pass --baseline MODEL" in (tables / "robustness.md").read_text()
    assert "$\\pm$: half-width" in auroc  # a bootstrap interval is shown with one seed too
    if shutil.which("pdflatex"):
        rc, log = compile_tables(texs, tmp_path / "tex", twocolumn=True)
        assert rc == 0, log[-3000:]
        assert not overfull(log), "\n".join(overfull(log))
