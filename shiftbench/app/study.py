"""What the Study view shows of a run besides its tables: its figures, titled.

``shiftbench report`` names each figure after its kind and subject
(:mod:`shiftbench.analysis.report.figures`, :mod:`~shiftbench.analysis.report.robustness`):
``roc_pr_<category>``, ``scores_<category>_<model>``, ``cd_<protocol>``, ... .
:func:`figure_entries` reads those names back into a title and a one-line caption per
figure (a category or model name may itself hold ``_``, so they are split with the run's
own names), in the report's order; a PNG of another name is titled after its file name.
"""

from __future__ import annotations

from pathlib import Path

#: (file-name prefix, title, caption) in the report's order; after a prefix ending in ``_``,
#: the rest of the name fills ``{all}``, or ``{cat}`` and ``{model}``
KINDS = (
    ("degradation_image_auroc", "Degradation", "Image AUROC per protocol, with bootstrap intervals."),
    ("severity_image_auroc_by_category", "Severity curves per category",
     "Image AUROC against severity per category (severity 0 = clean)."),
    ("severity_image_auroc", "Severity curves",
     "Image AUROC against severity (severity 0 = clean), with a bootstrap band."),
    ("heatmap_image_auroc", "Image AUROC heat map", "Image AUROC per shift and severity."),
    ("heatmap_pixel_aupro", "Pixel PRO heat map", "Pixel PRO per shift and severity."),
    ("cd_robustness", "Critical differences across shifts",
     "Critical-difference diagram (Nemenyi) of image AUROC under shift."),
    ("cd_", "Critical differences, {all}", "Critical-difference diagram (Nemenyi), {all}."),
    ("roc_pr_", "ROC and PR, {all}", "ROC and precision-recall curves, {all}."),
    ("scores_", "Scores, {cat} / {model}",
     "Test-score distributions and thresholds, {cat} / {model}."),
    ("qualitative_", "Qualitative, {cat} / {model}",
     "Qualitative results, {cat} / {model}: per defect type its highest-scored image, and "
     "the extremes of each class."),
)  # fmt: skip


def _split(rest: str, categories: list[str], models: list[str]) -> tuple[str, str]:
    """``<category>_<model>`` into its two names, using the run's names (longest first)."""
    for cat in sorted(categories, key=len, reverse=True):
        if rest == cat:
            return cat, ""
        if rest.startswith(cat + "_") and (rest[len(cat) + 1 :] in models or not models):
            return cat, rest[len(cat) + 1 :]
    for model in sorted(models, key=len, reverse=True):
        if rest.endswith("_" + model):
            return rest[: -len(model) - 1], model
    cat, _, model = rest.partition("_")
    return cat, model


def describe(stem: str, categories: list[str], models: list[str]) -> tuple[int, str, str]:
    """``(order, title, caption)`` of the figure file named ``stem``."""
    for order, (prefix, title, caption) in enumerate(KINDS):
        exact = not prefix.endswith("_")
        if (exact and stem != prefix) or (not exact and not stem.startswith(prefix)):
            continue
        rest = "" if exact else stem[len(prefix) :]
        cat, model = _split(rest, categories, models)
        names = {"cat": cat, "model": model or "?", "all": rest}
        return order, title.format(**names), caption.format(**names)
    return len(KINDS), stem.replace("_", " "), ""


def figure_entries(root: Path, categories: list[str], models: list[str]) -> list[dict]:
    """``{"path", "title", "caption"}`` of every PNG under ``root/figures``, in the
    report's order (``path`` relative to ``root``)."""
    folder = root / "figures"
    pngs = sorted(folder.rglob("*.png")) if folder.is_dir() else []
    rows = []
    for png in pngs:
        order, title, caption = describe(png.stem, categories, models)
        rows.append((order, png.relative_to(root).as_posix(), title, caption))
    rows.sort(key=lambda r: (r[0], r[1]))
    return [{"path": p, "title": t, "caption": c} for _, p, t, c in rows]
