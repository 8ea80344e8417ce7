"""Which figures a report draws (besides the robustness heat maps and diagram of
:mod:`.robustness`): degradation bars, ROC/PR curves per category, score
distributions, severity curves with bootstrap bands, critical-difference diagrams of the
protocols (only with enough blocks) and qualitative grids. The drawing is in
:mod:`shiftbench.analysis.figures.curves`."""

from __future__ import annotations

import pandas as pd

from shiftbench.analysis.report.context import Build, level_scores, suite_name
from shiftbench.errors import ShiftbenchError
from shiftbench.results import schema

__all__ = ["curve_figures", "qualitative_figures", "rank_tests"]


def curve_figures(b: Build, auroc, n_resamples: int, seed: int) -> None:
    """Degradation bars, ROC/PR curves, score distributions, severity curves."""
    from shiftbench.analysis.figures import curves as fig

    kinds, test, fdir = b.kinds, b.test, b.fdir
    ctx = f" ({b.context})" if b.context else ""
    level = round(100 * (1 - b.alpha))
    if "degradation" in kinds:
        b.figure(
            fig.degradation_bars(auroc, fdir / "degradation_image_auroc", subtitle=b.context),
            f"Image AUROC per protocol{ctx}, {b.over}: points with {level}% bootstrap "
            "intervals; dotted: chance (0.5).",
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
                fig.score_distributions(level_scores(b.run, b.level), cat, model, s0,
                                        fdir / f"scores_{cat}_{model}", subtitle=b.context),
                f"Test-score distributions and thresholds, {cat} / {model}, seed {s0} (the "
                f"first seed){ctx}; shared bins across panels.",
                "Scores", f"Scores, {cat} / {model}",
            )  # fmt: skip
    if "severity" in kinds:
        _severity_figures(b, n_resamples, seed)


def _severity_figures(b: Build, n_resamples: int, seed: int) -> None:
    """Severity curves with bootstrap bands (and per category, with several categories)."""
    from shiftbench.analysis.figures import curves as fig
    from shiftbench.analysis.stats import robustness as rb

    fdir = b.fdir
    level = round(100 * (1 - b.alpha))
    shifted = [p for p in ("shift-noadapt", "shift-adapt") if p in set(b.run.scores["protocol"])]
    if len(b.levels) < 2 or not shifted:
        b.out.skipped.append("severity curves: the run did not sweep severities")
        return
    nres = min(n_resamples, 1000)
    bands = {p: rb.severity_bands(b.run.scores, protocol=p, n_resamples=nres,
                                  alpha=b.alpha, seed=seed, pool_shifts=True)
             for p in shifted}  # fmt: skip
    n_cat = b.run.scores["category"].nunique()
    n_seed = b.run.scores["seed"].nunique()
    over = (
        f"{n_cat} categor{'ies' if n_cat > 1 else 'y'} × {n_seed} seed{'s' if n_seed > 1 else ''}"
    )
    if schema.SHIFT_COLUMN in b.run.scores.columns:
        over += " × shifts"
    sev = fig.severity_curves(
        bands, fdir / "severity_image_auroc", over=over, level=level,
        title=f"suite {suite_name(b.run)}; shaded: {level}% bootstrap band",
    )  # fmt: skip
    for p, bd in bands.items():
        b.table(bd, f"severity_curve_{p}")
    b.figure(
        sev,
        f"Image AUROC against the severity of suite {suite_name(b.run)} (severity 0 = "
        f"clean), mean over {over}; shaded: {level}% paired bootstrap band over test "
        "images.",
        "Severity", "Severity curves",
    )  # fmt: skip
    if n_cat > 1:
        from shiftbench.analysis.tables import render

        seeds = sorted(b.run.scores["seed"].unique())
        by_cat = rb.severity_bands(b.run.scores, protocol="shift-noadapt", n_resamples=nres,
                                   alpha=b.alpha, seed=seed, by_category=True,
                                   pool_shifts=True)  # fmt: skip
        b.figure(
            fig.severity_small_multiples(by_cat, fdir / "severity_image_auroc_by_category",
                                         protocol="shift-noadapt",
                                         over=render.describe_seeds(n_seed, seeds)),
            f"Image AUROC against severity per category (shift, no adapt.; severity 0 = "
            f"clean); shaded: {level}% bootstrap band.",
            "Severity", "Severity curves per category",
        )  # fmt: skip


def rank_tests(b: Build, auroc) -> None:
    """Friedman / Nemenyi over (category, seed) blocks, per protocol, and CD diagrams --
    the diagrams only with :data:`robustness.MIN_CD_BLOCKS` blocks or more."""
    from shiftbench.analysis import stats
    from shiftbench.analysis.figures import curves as fig
    from shiftbench.analysis.figures.palette import protocol_label
    from shiftbench.analysis.stats.robustness import MIN_CD_BLOCKS

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


def qualitative_figures(b: Build) -> None:
    """One qualitative grid per (category, model), from the first seed with saved maps."""
    from shiftbench.analysis.figures.qualitative import qualitative_rows

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
                    _qualitative_grid(b, cat, model, s, *got)
                break  # one seed per (category, model) is enough for a picture


def _qualitative_grid(b: Build, cat: str, model: str, s, rows, protocol: str, scale: dict):
    """Draw the grid of one (category, model, seed): ``rows``, ``protocol`` and ``scale`` as
    :func:`shiftbench.analysis.figures.qualitative.qualitative_rows` returns them."""
    from shiftbench.analysis.figures import curves as fig
    from shiftbench.analysis.figures.palette import protocol_label

    sev = f", severity {b.level:g}" if protocol != "clean" and b.level is not None else ""
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
