"""`shiftbench report`: tables, figures and report.html from a (fake) run directory.

The fake run directory is written by the run writer (``RunDir`` via
``shiftbench.testing.fake_run.write_run``), so it has the runner's format: synthetic
scores for 2 categories x 3 models x 2 seeds x 3 protocols, val and test rows, a tidy
metrics table, splits.csv with real (tiny) image files, the suite's shift parameters and
anomaly maps for one model.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import average_precision_score, f1_score, precision_recall_curve, roc_auc_score

CATEGORIES = ("brick", "toy_block")  # the underscore exercises LaTeX escaping
MODELS = ("patchcore", "padim", "auto_encoder")
SEEDS = (0, 1)
PROTOCOLS = ("clean", "shift-noadapt", "shift-adapt")
SIZE = 32
# Per model: separation of anomalous scores (clean), how much is lost under shift, and
# how much the normal scores move up under shift (drives the threshold-transfer failure).
SEPARATION = {"patchcore": 2.5, "padim": 1.6, "auto_encoder": 0.8}
SHIFT_LOSS = {"patchcore": 0.5, "padim": 1.0, "auto_encoder": 0.4}
NORMAL_DRIFT = {"patchcore": 0.8, "padim": 1.5, "auto_encoder": 6.0}
EFFICIENCY = {
    "fit_seconds": {"patchcore": 3.0, "padim": 1.5, "auto_encoder": 20.0},
    "ms_per_image": {"patchcore": 12.0, "padim": 5.0, "auto_encoder": 2.0},
    "images_per_second": {"patchcore": 83.3, "padim": 200.0, "auto_encoder": 500.0},
    "model_size_mb": {"patchcore": 40.0, "padim": 120.0, "auto_encoder": 8.0},
    "peak_memory_mb": {"patchcore": 900.0, "padim": 1500.0, "auto_encoder": 400.0},
    "n_parameters": {"patchcore": 3.6e6, "padim": 3.6e6, "auto_encoder": 1.2e6},
}
SUITE = "mvtec-shift"


def _f1_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    prec, rec, thr = precision_recall_curve(labels, scores)
    f1 = 2 * prec[:-1] * rec[:-1] / np.maximum(prec[:-1] + rec[:-1], 1e-12)
    return float(thr[int(np.argmax(f1))])


def make_fake_run(
    root: Path,
    *,
    with_maps: bool = True,
    n_normal: int = 24,
    n_anom: int = 20,
    severities: tuple[int, ...] = (3,),
) -> Path:
    """Write a run directory with synthetic scores through the run writer
    (:func:`shiftbench.testing.fake_run.write_run`); returns its path.

    With several ``severities`` (a sweep) the shifted scores of normal images move by
    ``0.3 (level - 3)``; shift parameters are the suite's real draws for every val and test
    image, so the qualitative grid replays real twins."""
    from shiftbench.results import schema, shift_params_frame
    from shiftbench.testing.fake_run import write_run
    from shiftbench.transforms import load_suite

    suites = {sev: load_suite(SUITE, sev) for sev in severities}
    sweep = len(severities) > 1
    rng = np.random.default_rng(7)
    data = root / "data"
    split_rows, units, shift_params, maps_files = [], {}, [], []
    for cat in CATEGORIES:
        # Image files: normals and anomalies (a bright square) with masks.
        ids = []
        for kind, n in (("good", n_normal + 8), ("scratch", n_anom + 6)):
            for i in range(n):
                img = (rng.uniform(60, 120, (SIZE, SIZE, 3))).astype(np.uint8)
                split = "train" if kind == "good" and i < 8 else "test"
                d = data / cat / split / kind
                d.mkdir(parents=True, exist_ok=True)
                mask_path = None
                if kind != "good":
                    mask = np.zeros((SIZE, SIZE), np.uint8)
                    mask[8:16, 10:20] = 255
                    img[mask > 0] = 230
                    mp = data / cat / "ground_truth" / kind / f"{i:03d}_mask.png"
                    mp.parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(mask).save(mp)
                    mask_path = str(mp)
                Image.fromarray(img).save(d / f"{i:03d}.png")
                ids.append(
                    (
                        f"{cat}/{split}/{kind}/{i:03d}",
                        str(d / f"{i:03d}.png"),
                        mask_path,
                        int(kind != "good"),
                        kind,
                    )
                )
        for seed in SEEDS:
            srng = np.random.default_rng([seed, len(cat)])
            normals = [x for x in ids if x[3] == 0 and "/test/" in x[0]]
            anoms = [x for x in ids if x[3] == 1]
            srng.shuffle(normals)
            srng.shuffle(anoms)
            val = normals[:8] + anoms[:6]
            test = normals[8:] + anoms[6:]
            train = [x for x in ids if "/train/" in x[0]]
            for split, items in (("train", train), ("val", val), ("test", test)):
                for sid, path, mpath, label, defect in items:
                    split_rows.append(
                        {
                            "seed": seed,
                            "sample_id": sid,
                            "category": cat,
                            "split": split,
                            "label": label,
                            "defect_type": defect,
                            "image_path": path,
                            "mask_path": mpath,
                        }
                    )
            shifted_items = sorted(val + test)
            for sev, suite in suites.items():
                params = [
                    suite.sample(seed=seed, image_id=x[0], shape=(SIZE, SIZE, 3))
                    for x in shifted_items
                ]
                split_of = ["val" if x in val else "test" for x in shifted_items]
                rows = shift_params_frame(
                    seed, cat, [x[0] for x in shifted_items], split_of, suite.name, suite.hash,
                    sev, params,
                )  # fmt: skip
                shift_params.append((seed, sev, cat, rows))
            for model in MODELS:
                sep, loss, drift = SEPARATION[model], SHIFT_LOSS[model], NORMAL_DRIFT[model]
                per_split = {}
                for split, items in (("val", val), ("test", test)):
                    y = np.array([x[3] for x in items])
                    base = rng.normal(size=y.size)
                    clean = base + sep * y
                    shifted = base + rng.normal(scale=0.7, size=y.size) + (sep - loss) * y + drift
                    adapted = base + rng.normal(scale=0.5, size=y.size) + (sep - loss / 3) * y + 0.3
                    per_split[split] = (
                        items,
                        y,
                        {"clean": clean, "shift-noadapt": shifted, "shift-adapt": adapted},
                    )
                thr_clean = _f1_threshold(per_split["val"][1], per_split["val"][2]["clean"])
                thr_adapt = _f1_threshold(per_split["val"][1], per_split["val"][2]["shift-adapt"])
                score_rows, metric_rows = [], []
                for protocol in PROTOCOLS:
                    thr = thr_adapt if protocol == "shift-adapt" else thr_clean
                    for sev in [None] if protocol == "clean" else severities:
                        severity = np.nan if sev is None else float(sev)

                        def moved(v, y, sev=sev, protocol=protocol):
                            if protocol == "clean" or not sweep:
                                return v
                            return v + (sev - 3) * 0.3 * (1 - y)

                        for split in ("val", "test"):
                            items, y, sc = per_split[split]
                            # shift-noadapt val rows are the clean validation scores
                            clean_val = split == "val" and protocol == "shift-noadapt"
                            s = sc["clean"] if clean_val else moved(sc[protocol], y)
                            for (sid, _, _, label, defect), v in zip(items, s, strict=True):
                                score_rows.append(
                                    {
                                        "category": cat,
                                        "model": model,
                                        "seed": seed,
                                        "protocol": protocol,
                                        "severity": severity,
                                        "split": split,
                                        "sample_id": sid,
                                        "label": label,
                                        "defect_type": defect,
                                        "score": float(v),
                                        "threshold": thr,
                                        "decision": int(v >= thr),
                                        "pixel_threshold": 0.5,
                                    }
                                )
                        _, y, sc = per_split["test"]
                        s = moved(sc[protocol], y)
                        dec = (s >= thr).astype(int)
                        for name, value in (
                            ("image_auroc", roc_auc_score(y, s)),
                            ("image_auprc", average_precision_score(y, s)),
                            ("image_f1", f1_score(y, dec)),
                            ("image_threshold", thr),
                            *((k, v[model]) for k, v in EFFICIENCY.items()),
                        ):
                            metric_rows.append(
                                (cat, model, seed, protocol, severity, name, float(value))
                            )
                units[f"{cat}__{model}__seed{seed}__clean"] = (
                    pd.DataFrame(score_rows, columns=list(schema.SCORE_COLUMNS)),
                    pd.DataFrame(metric_rows, columns=list(schema.METRIC_COLUMNS)),
                )
                if with_maps and model == "patchcore" and seed == 0:
                    items, y, _ = per_split["test"]
                    yy, xx = np.mgrid[:SIZE, :SIZE]
                    blob = np.exp(-((yy - 12) ** 2 + (xx - 15) ** 2) / 30.0)
                    maps = np.stack(
                        [0.2 * rng.random((SIZE, SIZE)) + label * blob for *_, label, _ in items]
                    )
                    sids = np.array([x[0] for x in items])
                    for name in (
                        "clean",
                        *(
                            schema.map_name("shift-noadapt", s if sweep else None)
                            for s in severities
                        ),
                    ):
                        maps_files.append((cat, model, seed, name, sids, maps))
    level = severities[len(severities) // 2]
    manifest = {
        "command": "shiftbench run --protocol all",
        "config": {
            "suite": SUITE,
            "severity": list(severities) if sweep else severities[0],
            "seeds": list(SEEDS),
            "models": list(MODELS),
            "categories": list(CATEGORIES),
        },
        "seeds": list(SEEDS),
        "suite": {
            "name": suites[level].name,
            "hash": suites[level].hash,
            "severity": list(severities) if sweep else severities[0],
            "hashes": {str(s): suite.hash for s, suite in suites.items()},
        },
    }
    return write_run(
        root / "results" / "fake",
        units,
        splits=pd.DataFrame(split_rows),
        manifest=manifest,
        shift_params=shift_params,
        maps=maps_files,
    )


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory) -> Path:
    return make_fake_run(tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def built(fake_run):
    from shiftbench.analysis.report.build import build_report

    return build_report(fake_run, "latex,markdown,html", n_resamples=300, seed=0)


# ---------------------------------------------------------------------------- tables


def test_comparison_table_matches_independent_metrics(fake_run, built):
    """Point estimates equal sklearn on the per-image scores (mean over seeds), deltas are
    differences, the macro row is the mean over categories, and each CI brackets its value."""
    table = pd.read_csv(fake_run / "tables" / "image_auroc.csv")
    scores = pd.read_parquet(fake_run / "scores.parquet")
    test = scores[scores["split"] == "test"]
    for cat in CATEGORIES:
        for model in MODELS:
            row = table[(table["category"] == cat) & (table["model"] == model)].iloc[0]
            for protocol in PROTOCOLS:
                ref = np.mean(
                    [
                        roc_auc_score(g["label"], g["score"])
                        for _, g in test[
                            (test["category"] == cat)
                            & (test["model"] == model)
                            & (test["protocol"] == protocol)
                        ].groupby("seed")
                    ]
                )
                assert row[protocol] == pytest.approx(ref, abs=1e-12)
                assert (
                    row[f"{protocol}_low"] <= row[protocol] + 1e-9 <= row[f"{protocol}_high"] + 2e-9
                )
            assert row["d_noadapt_clean"] == pytest.approx(
                row["shift-noadapt"] - row["clean"], abs=1e-12
            )
            assert row["d_adapt_noadapt"] == pytest.approx(
                row["shift-adapt"] - row["shift-noadapt"], abs=1e-12
            )
    for model in MODELS:
        mean_row = table[(table["category"] == "mean") & (table["model"] == model)].iloc[0]
        per_cat = table[(table["category"].isin(CATEGORIES)) & (table["model"] == model)]
        assert mean_row["clean"] == pytest.approx(per_cat["clean"].mean(), abs=1e-12)
        assert mean_row["d_noadapt_clean_test"] == "wilcoxon"
    # F1 at the calibrated threshold = sklearn f1_score of the stored decisions.
    f1 = pd.read_csv(fake_run / "tables" / "image_f1.csv")
    g = test[
        (test["category"] == "brick")
        & (test["model"] == "padim")
        & (test["protocol"] == "shift-noadapt")
    ]
    ref = np.mean([f1_score(s["label"], s["decision"]) for _, s in g.groupby("seed")])
    assert f1[(f1["category"] == "brick") & (f1["model"] == "padim")]["shift-noadapt"].iloc[
        0
    ] == pytest.approx(ref)


def test_significance_marks_follow_holm_adjusted_delong(fake_run, built):
    """The p in the table is the largest Holm-adjusted DeLong p over seeds, recomputed here
    from scipy/statsmodels-independent pieces (brute-force DeLong is in test_stats)."""
    from statsmodels.stats.multitest import multipletests

    from shiftbench.analysis import stats

    scores = pd.read_parquet(fake_run / "scores.parquet")
    test = scores[scores["split"] == "test"]
    raw = []
    for cat in CATEGORIES:
        for seed in SEEDS:
            for model in MODELS:
                g = {
                    p: test[
                        (test["category"] == cat)
                        & (test["seed"] == seed)
                        & (test["model"] == model)
                        & (test["protocol"] == p)
                    ]
                    .set_index("sample_id")
                    .sort_index()
                    for p in PROTOCOLS
                }
                y = g["clean"]["label"].to_numpy()
                for col, a, b in (
                    ("d_noadapt_clean", "shift-noadapt", "clean"),
                    ("d_adapt_noadapt", "shift-adapt", "shift-noadapt"),
                ):
                    raw.append(
                        (cat, model, col, stats.delong(y, g[a]["score"], g[b]["score"]).p_value)
                    )
    adj = multipletests([r[3] for r in raw], method="holm")[1]
    table = pd.read_csv(fake_run / "tables" / "image_auroc.csv")
    for cat in CATEGORIES:
        for model in MODELS:
            for col in ("d_noadapt_clean", "d_adapt_noadapt"):
                want = max(a for r, a in zip(raw, adj, strict=False) if r[:3] == (cat, model, col))
                got = table[(table["category"] == cat) & (table["model"] == model)][
                    f"{col}_p"
                ].iloc[0]
                assert got == pytest.approx(want, rel=1e-9)
    # auto_encoder's normals drift by 6 score units: its AUROC barely moves, but padim's
    # drop is large and significant; the table text carries a mark for it.
    md = (fake_run / "tables" / "image_auroc.md").read_text()
    assert re.search(r"\| brick \| padim \|.*−\d+\.\d ± \d+\.\d(\\\*)+", md)


def _latex_rows(tex: str) -> list[str]:
    body = tex.split(r"\midrule", 1)[1].split(r"\bottomrule")[0]
    return [ln for ln in body.splitlines() if ln.strip().endswith(r"\\")]


def test_latex_table_structure_or_compiles(fake_run, built, tmp_path):
    tex = (fake_run / "tables" / "image_auroc.tex").read_text()
    for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
        assert rule in tex
    spec = re.search(r"\\begin\{tabular\}\{([lc]+)\}", tex).group(1)
    rows = _latex_rows(tex)
    groups = [r for r in rows if r.startswith(r"\multicolumn")]
    rows = [r for r in rows if not r.startswith(r"\multicolumn")]
    # the category is a row of its own above its block; then one row per model
    assert len(groups) == len(CATEGORIES) + 1
    assert len(rows) == (len(CATEGORIES) + 1) * len(MODELS)
    for row in rows:
        # Split on unescaped & only: names are escaped, so \& never separates cells.
        assert len(re.split(r"(?<!\\)&", row)) == len(spec), row
    assert r"toy\_block" in tex and r"auto\_encoder" in tex
    assert not re.search(
        r"(?<!\\)_", tex.replace(r"\_", "").split(r"\begin{tabular}")[1].replace("_{", "")
    ), "unescaped underscore in the table body"
    assert r"\mathbf{" in tex  # best per block in bold
    assert "table*" in tex  # five value columns: the page width in a two-column paper
    header = tex.split(r"\toprule")[1].split(r"\midrule")[0]
    assert len(re.split(r"(?<!\\)&", header)) == len(spec)
    if not shutil.which("pdflatex"):
        print("pdflatex missing: compile not checked (tests/test_latex.py checks every table)")
        return
    doc = tmp_path / "t.tex"
    doc.write_text(
        "\\documentclass{article}\\usepackage{booktabs,threeparttable}\\usepackage[utf8]{inputenc}"
        "\\usepackage{amsmath}\\begin{document}\n" + tex + "\\end{document}\n"
    )
    res = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stdout[-2000:]


def test_bold_marks_scores_not_deltas_and_the_rule_is_stated(fake_run, built):
    """Bold = best absolute score per category and protocol column; the Δ columns are never
    bold (a 'smallest drop' with an interval spanning 0 is no winner). The caption says so,
    and the notes explain why an interval can exclude 0 without a mark."""
    md = (fake_run / "tables" / "image_auroc.md").read_text()
    rows = [ln.split(" | ") for ln in md.splitlines() if ln.startswith("| brick")]
    assert len(rows) == len(MODELS)
    for cells in rows:
        assert "**" not in cells[5] and "**" not in cells[6].rstrip(" |"), cells
    table = pd.read_csv(fake_run / "tables" / "image_auroc.csv")
    brick = table[table["category"] == "brick"].set_index("model")
    best = brick["clean"].idxmax()
    best_row = next(c for c in rows if c[1] == best.replace("_", "\\_"))
    assert best_row[2].startswith("**")
    assert "Bold: best per category and protocol" in md
    assert "Interval and mark answer different questions" in md
    tex = (fake_run / "tables" / "image_auroc.tex").read_text()
    assert "tablenotes" in tex and "not bolded" in tex


def test_captions_name_seeds_suite_and_severity(fake_run, built):
    md = (fake_run / "tables" / "image_auroc.md").read_text()
    assert "mean over 2 seeds" in md
    assert "suite mvtec-shift, severity 3" in md


def test_one_seed_is_not_called_a_mean(tmp_path):
    from shiftbench.analysis.tables import comparison as tables
    from shiftbench.analysis.tables import render

    scores = pd.read_parquet(make_fake_run(tmp_path, with_maps=False, n_normal=10, n_anom=8)
                             / "scores.parquet")  # fmt: skip
    comp = tables.protocol_comparison(scores[scores["seed"] == 1], "image_auroc", n_resamples=200)
    grid = render.render_comparison(comp, "suite s, severity 3", render.describe_seeds(1, [1]))
    assert "seed 1" in grid.caption and "mean over" not in grid.caption


def _pershift_scores(n_shifts: int, with_images: bool) -> pd.DataFrame:
    """One category, model and seed; clean and shift-noadapt rows for ``n_shifts`` shifts
    whose twins all score alike, laid out as the report's table_scores lays a per-shift run
    out (clean rows repeated per shift, ``sample_id@shift``)."""
    from shiftbench.analysis.tables.comparison import IMAGE_COLUMN

    rng = np.random.default_rng(3)
    y = np.r_[np.zeros(15, int), np.ones(12, int)]
    clean, shifted = rng.normal(size=y.size) + 1.5 * y, rng.normal(size=y.size) + 0.8 * y
    rows = []
    for k in range(n_shifts):
        for proto, sc in (("clean", clean), ("shift-noadapt", shifted)):
            for i, (lab, v) in enumerate(zip(y, sc, strict=True)):
                row = {"category": "c", "model": "m", "seed": 0, "protocol": proto,
                       "split": "test", "sample_id": f"img{i:02d}@s{k}", "label": lab,
                       "score": v, "decision": int(v > 0.7)}  # fmt: skip
                if with_images:
                    row[IMAGE_COLUMN] = f"img{i:02d}"
                rows.append(row)
    return pd.DataFrame(rows)


def test_per_shift_tables_resample_images_not_rows():
    """Three shifts whose twins score alike hold no more information than one: drawing
    images (with all their twins) gives exactly the one-shift interval; drawing rows as
    if independent gives one about sqrt(3) narrower."""
    from shiftbench.analysis.tables import comparison as tables
    from shiftbench.analysis.tables import render

    def widths(comp):
        t = comp.table.set_index("category").loc["c"]
        return np.array([t[f"{c}_high"] - t[f"{c}_low"] for c in ("clean", "shift-noadapt")])

    one = tables.protocol_comparison(_pershift_scores(1, False), n_resamples=400)
    three = tables.protocol_comparison(_pershift_scores(3, True), n_resamples=400)
    rows = tables.protocol_comparison(_pershift_scores(3, False), n_resamples=400)
    assert not one.clustered and three.clustered and not rows.clustered
    assert np.allclose(widths(three), widths(one), rtol=1e-12)
    assert np.all(widths(rows) < 0.8 * widths(one))
    t = three.table.set_index("category").loc["c"]
    assert t["clean"] == pytest.approx(one.table.set_index("category").loc["c", "clean"])
    assert t["d_noadapt_clean_test"] == "bootstrap"  # not DeLong: twins are not independent
    assert "twins under every shift" in " ".join(render.render_comparison(three).text_notes())
    assert "cluster-bootstrap" in " ".join(render.render_comparison(three).text_notes())


def test_markdown_and_efficiency_tables(fake_run, built):
    md = (fake_run / "tables" / "image_auroc.md").read_text()
    lines = [ln for ln in md.splitlines() if ln.startswith("|")]
    n_cols = {ln.replace(r"\|", "").count("|") for ln in lines}
    assert n_cols == {8}  # 7 columns -> 8 pipes on every line
    assert r"toy\_block" in md and "**" in md
    eff = pd.read_csv(fake_run / "tables" / "efficiency.csv").set_index("model")
    assert eff.loc["padim", "ms_per_image"] == pytest.approx(5.0)
    assert eff.loc["padim", "images_per_second"] == pytest.approx(200.0)
    assert eff.loc["auto_encoder", "fit_seconds"] == pytest.approx(20.0)
    eff_md = (fake_run / "tables" / "efficiency.md").read_text()
    # Fastest inference (auto_encoder, 2.0 ms) and smallest memory are bold.
    assert re.search(r"\| auto\\_encoder \|.*\*\*2\.0\*\*", eff_md)
    tex = (fake_run / "tables" / "efficiency.tex").read_text()
    for model in MODELS:  # every row names its model (not only the first)
        assert sum(ln.startswith(model.replace("_", r"\_") + " &") for ln in tex.splitlines()) == 1


def test_efficiency_latency_and_rate_agree():
    """ms/image is averaged once and images/s derived from it: averaging the two
    separately gives 5 ms next to 312.5 images/s (1000/5 = 200)."""
    from shiftbench.analysis.tables.comparison import efficiency_table

    rows = []
    for cat, ms in (("a", 2.0), ("b", 8.0)):
        rows.append((cat, "m", 0, "clean", np.nan, "ms_per_image", ms))
        rows.append((cat, "m", 0, "clean", np.nan, "images_per_second", 1000 / ms))
        rows.append((cat, "r", 0, "clean", np.nan, "images_per_second", 1000 / ms))  # rate only
    metrics = pd.DataFrame(
        rows, columns=["category", "model", "seed", "protocol", "severity", "metric", "value"]
    )
    eff = efficiency_table(metrics).set_index("model")
    for model in ("m", "r"):
        assert eff.loc[model, "ms_per_image"] == pytest.approx(5.0)
        assert eff.loc[model, "images_per_second"] == pytest.approx(200.0)


def test_threshold_transfer_table_flags_degenerate_rule(fake_run, built):
    tt = pd.read_csv(fake_run / "tables" / "threshold_transfer.csv", keep_default_na=False)
    # auto_encoder's normals drift by +6: every test image is called anomalous under shift.
    ae = tt[tt["model"] == "auto_encoder"]
    assert (ae["degenerate"] == "all-anomalous").all()
    assert np.allclose(ae["f1_shift"], ae["f1_all_anomalous"])
    assert np.allclose(ae["fpr_shift"], 1.0)
    pc = tt[tt["model"] == "patchcore"]
    assert (pc["degenerate"] == "").all()
    assert (pc["median_shift"] > 0).all()


# ---------------------------------------------------------------------------- figures


def _png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        im.load()
        assert im.getextrema() != ((255, 255),) * len(im.getbands())  # not blank
        return im.size


def test_figures_written_with_expected_sizes(fake_run, built):
    """Every figure is one (3.5 in) or two columns (7 in) wide at 300 dpi; PDFs embed
    TrueType fonts (pdf.fonttype 42)."""
    from shiftbench.analysis.figures.curves import DPI

    assert DPI == 300
    figs = fake_run / "figures"
    expected = {
        "degradation_image_auroc": 7.0,
        "roc_pr_brick": 7.0,
        "roc_pr_toy_block": 7.0,
        "scores_brick_padim": 7.0,
        "qualitative_brick_patchcore": 7.0,
        "heatmap_image_auroc": 7.0,
    }
    for stem, width in expected.items():
        png, pdf = figs / f"{stem}.png", figs / f"{stem}.pdf"
        assert pdf.is_file() and pdf.read_bytes()[:4] == b"%PDF", stem
        assert b"/FontFile2" in pdf.read_bytes() and b"/Type3" not in pdf.read_bytes(), stem
        w, h = _png_size(png)
        assert w == round(width * DPI), stem
    for png in figs.glob("*.png"):
        assert _png_size(png)[0] in (round(3.5 * DPI), round(7.0 * DPI)), png.name
    assert any("severity" in s for s in built.skipped)  # no sweep in this run: skipped, not failed
    # 2 categories x 2 seeds = 4 blocks: no CD diagram, and the report says why
    assert not list(figs.glob("cd_*"))
    assert any("critical-difference diagram" in s and "4 blocks" in s and "< 10" in s
               for s in built.skipped)  # fmt: skip


def test_model_style_is_fixed_by_name_not_order():
    from shiftbench.analysis.figures.curves import model_style, palette

    assert model_style("patchcore") == palette.MODEL_STYLES["patchcore"].line()
    a = palette.model_style("my-plugin-model")
    assert a == palette.model_style("my-plugin-model")  # stable, no registry needed
    styles = {palette.model_style(m) for m in ("patchcore", "ae", "anomalib-padim")}
    assert len({s.color for s in styles}) == 3 and len({s.marker for s in styles}) == 3


def test_report_html_is_self_contained(fake_run, built):
    text = built.html.read_text()
    assert built.html == fake_run / "report.html"
    n_png = len(list((fake_run / "figures").glob("*.png")))
    assert text.count("data:image/png;base64,") == n_png
    assert text.count("<figcaption>") == n_png  # every figure with its caption
    assert not re.search(r"<img[^>]+src=['\"](?!data:)", text)  # no external images
    assert "<table>" in text and "Image AUROC" in text
    assert "<nav><h2>Contents</h2>" in text
    # links to the files, relative to the report
    assert "href='tables/image_auroc.tex'" in text and "href='figures/roc_pr_brick.pdf'" in text
    for href in re.findall(r"href='([^'#]+)'", text):
        assert (fake_run / href).is_file(), href


def test_report_html_contents_is_one_nested_list(fake_run, built):
    """The contents: sections in (at most) two columns, each section's items a plain list
    under it -- not the nested lists split into columns of their own."""
    text = built.html.read_text()
    css = text[text.index("<style>") : text.index("</style>")]
    assert "nav ol{columns" not in css  # the rule that also split every nested list
    assert re.search(r"nav>ol\{columns:2[^}]*\}", css)
    assert "nav>ol>li{break-inside:avoid" in css  # a section and its items stay together
    assert "nav ol ol{columns:auto" in css
    nav = text[text.index("<nav>") : text.index("</nav>")]
    assert nav.count("<ol>") == 1 + len(re.findall(r"<li><a href='#s\d+'>", nav))


def test_report_html_shows_the_configuration_as_a_table(fake_run, built):
    """The Run section is a table of the schema's report keys (config flattened), not a
    JSON dump; all of them are keys the runner writes."""
    from shiftbench.results import schema

    text = built.html.read_text()
    run = re.search(r"<h2 id='run'>Run</h2><table class='config'>(.*?)</table>", text, re.S)[1]
    keys = [html.unescape(k) for k in re.findall(r"<tr><td>(.*?)</td>", run)]
    assert "command" in keys and "config: suite" in keys and "config: models" in keys
    assert "{" not in run  # no JSON
    assert set(schema.REPORT_MANIFEST_KEYS) <= set(schema.MANIFEST_KEYS)
    manifest = json.loads((fake_run / "manifest.json").read_text())
    assert manifest["format_version"] == schema.FORMAT_VERSION
    assert set(manifest) <= set(schema.MANIFEST_KEYS)


def test_summary_json_has_headline_numbers_with_intervals(fake_run, built):
    doc = json.loads((fake_run / "summary.json").read_text())
    assert built.summary == fake_run / "summary.json"
    table = pd.read_csv(fake_run / "tables" / "image_auroc.csv")
    mean = table[table["category"] == "mean"].set_index("model")
    for model in MODELS:
        cell = doc["models"][model]["image_auroc"]["d_noadapt_clean"]
        assert cell["value"] == pytest.approx(mean.loc[model, "d_noadapt_clean"])
        assert cell["low"] <= cell["value"] <= cell["high"]
        assert cell["test"] == "wilcoxon" and 0 <= cell["p_holm"] <= 1
    assert doc["seeds"] == list(SEEDS) and doc["suite"] == SUITE
    assert {r["model"] for r in doc["robustness"]} == set(MODELS)


def test_cli_report_and_errors(fake_run, tmp_path):
    from typer.testing import CliRunner

    from shiftbench.cli.main import app, main

    run = tmp_path / "copy"
    shutil.copytree(
        fake_run, run, ignore=shutil.ignore_patterns("tables", "figures", "report.html", "maps")
    )
    res = CliRunner().invoke(
        app, ["report", str(run), "--format", "markdown", "--n-resamples", "200", "--no-figures"]
    )
    assert res.exit_code == 0, res.output
    assert (run / "tables" / "image_auroc.md").is_file()
    assert not (run / "tables" / "image_auroc.tex").exists() and not (run / "report.html").exists()
    assert not list((run / "figures").glob("*.png"))
    assert "skipped: figures: not requested" in res.output
    res = CliRunner().invoke(
        app, ["report", str(run), "--format", "markdown", "--n-resamples", "200", "--no-figures",
              "--baseline", "padim", "--out", str(tmp_path / "elsewhere")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    rob = pd.read_csv(tmp_path / "elsewhere" / "tables" / "robustness.csv").set_index("model")
    assert rob.loc["padim", "mce"] == pytest.approx(1.0)
    assert (tmp_path / "elsewhere" / "summary.json").is_file()
    with pytest.raises(SystemExit) as exc:
        main(["report", str(run), "--baseline", "nope", "--no-figures"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["report", str(tmp_path / "nope")])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["report", str(run), "--format", "docx"])
    assert exc.value.code == 2


def test_severity_sweep_draws_curves(tmp_path):
    """A `severity` column with several levels gives severity curves; tables use one level."""
    from shiftbench.analysis.report.build import build_report

    run = make_fake_run(tmp_path, with_maps=False, n_normal=10, n_anom=8, severities=(1, 3, 5))
    s = pd.read_parquet(run / "scores.parquet")
    assert sorted(s["severity"].dropna().unique()) == [1, 3, 5]
    assert s.loc[s["protocol"] == "clean", "severity"].isna().all()
    out = build_report(run, "markdown", n_resamples=200, figures=("severity", "qualitative"))
    assert (run / "figures" / "severity_image_auroc.png").is_file()
    table = pd.read_csv(run / "tables" / "image_auroc.csv")
    row = table[(table["category"] == "brick") & (table["model"] == "padim")].iloc[0]
    test = s[(s["split"] == "test") & (s["category"] == "brick") & (s["model"] == "padim")]
    for protocol, level in (("clean", None), ("shift-noadapt", 3)):
        ref = test[test["protocol"] == protocol]
        if level is not None:
            ref = ref[ref["severity"] == level]  # the tables show the middle level
        want = np.mean([roc_auc_score(g["label"], g["score"]) for _, g in ref.groupby("seed")])
        assert row[protocol] == pytest.approx(want)
    assert not any("severity" in x for x in out.skipped)
    assert "qualitative grids: the run saved no maps/" in out.skipped  # said, not crashed
    md = (run / "tables" / "image_auroc.md").read_text()
    assert "suite mvtec-shift, severity 3 of 1, 3, 5" in md
    # every level as a column, with the clean reference
    sev = pd.read_csv(run / "tables" / "severity_image_auroc.csv")
    assert {"clean", "sev1", "sev3", "sev5"} <= set(sev.columns)
    metrics = pd.read_parquet(run / "metrics.parquet")
    m = metrics[(metrics["metric"] == "image_auroc") & (metrics["category"] == "brick")
                & (metrics["model"] == "padim")]  # fmt: skip
    r = sev[(sev["protocol"] == "shift-noadapt") & (sev["category"] == "brick")
            & (sev["model"] == "padim")].iloc[0]  # fmt: skip
    for col, proto, level in (("clean", "clean", None), ("sev1", "shift-noadapt", 1.0),
                              ("sev5", "shift-noadapt", 5.0)):  # fmt: skip
        ref = m[m["protocol"] == proto]
        ref = ref[ref["severity"] == level] if level else ref
        assert r[col] == pytest.approx(ref["value"].mean())
    # the curve starts at the clean value (severity 0) and has a band around each point
    band = pd.read_csv(run / "tables" / "severity_curve_shift-noadapt.csv")
    pad = band[band["model"] == "padim"].set_index("severity")
    clean_auroc = metrics[
        (metrics["metric"] == "image_auroc")
        & (metrics["protocol"] == "clean")
        & (metrics["model"] == "padim")
        & (metrics["category"] != "mean")
    ]
    assert pad.loc[0.0, "value"] == pytest.approx(clean_auroc["value"].mean())
    assert (band["low"] <= band["value"] + 1e-9).all() and (
        band["value"] <= band["high"] + 1e-9
    ).all()
    assert list(pad.index) == [0.0, 1.0, 3.0, 5.0]


def test_pixel_table_from_metrics_hand_worked():
    """Pixel tables come from metrics.parquet: mean and SD over seeds, seed-wise deltas,
    one severity of a sweep (clean rows have none)."""
    from shiftbench.analysis.tables.comparison import pixel_table
    from shiftbench.analysis.tables.render import render_pixel

    rows = []
    values = {  # (category, seed, protocol, severity) -> pixel_aupro
        ("brick", 0, "clean", None): 0.90,
        ("brick", 1, "clean", None): 0.80,
        ("brick", 0, "shift-noadapt", 1): 0.85,
        ("brick", 1, "shift-noadapt", 1): 0.75,
        ("brick", 0, "shift-noadapt", 3): 0.60,
        ("brick", 1, "shift-noadapt", 3): 0.40,
        ("mean", 0, "clean", None): 0.70,
        ("mean", 1, "clean", None): 0.70,
        ("mean", 0, "shift-noadapt", 3): 0.50,
        ("mean", 1, "shift-noadapt", 3): 0.30,
    }
    for (cat, seed, proto, sev), v in values.items():
        rows.append(
            (cat, "patchcore", seed, proto, np.nan if sev is None else sev, "pixel_aupro", v)
        )
    rows.append(("brick", "patchcore", 0, "clean", np.nan, "pixel_auroc", 0.99))
    metrics = pd.DataFrame(
        rows, columns=["category", "model", "seed", "protocol", "severity", "metric", "value"]
    )
    t = pixel_table(metrics, "pixel_aupro", severity=3).set_index("category")
    assert list(t.index) == ["brick", "mean"]  # mean row last
    assert t.loc["brick", "clean"] == pytest.approx(0.85)
    assert t.loc["brick", "clean_sd"] == pytest.approx(np.std([0.9, 0.8], ddof=1))
    assert t.loc["brick", "shift-noadapt"] == pytest.approx(0.50)
    # seed-wise deltas -0.30 and -0.40
    assert t.loc["brick", "d_noadapt_clean"] == pytest.approx(-0.35)
    assert t.loc["brick", "d_noadapt_clean_sd"] == pytest.approx(np.std([-0.3, -0.4], ddof=1))
    assert np.isnan(t.loc["brick", "shift-adapt"]) and np.isnan(t.loc["brick", "d_adapt_noadapt"])
    assert pixel_table(metrics, "pixel_aupro", severity=1).set_index("category").loc[
        "brick", "shift-noadapt"
    ] == pytest.approx(0.80)
    md = render_pixel(t.reset_index(), "pixel_aupro").markdown()
    # the protocol the metrics lack (shift-adapt) and its Δ are left out, not shown as "–"
    assert "| brick | patchcore | 85.0 ± 7.1 | 50.0 ± 14.1 | −35.0 ± 7.1 |" in md
    assert "Shift (adapt.)" not in md and "adapt−noadapt" not in md
    assert "\\toprule" in render_pixel(t.reset_index(), "pixel_aupro").latex()


# ---------------------------------------------------------------------------- qualitative


def test_qualitative_grid_replays_the_twins_the_runner_made(fake_run):
    """The shifted column is the runner's twin (``shift_batch``, as the runner shifts),
    rebuilt from the stored parameters, not shifted anew."""
    from shiftbench.analysis.figures.qualitative import qualitative_rows, replay_suite, replay_twin
    from shiftbench.data.io import read_image, read_mask
    from shiftbench.results import load_run
    from shiftbench.transforms import load_suite
    from shiftbench.transforms.twins import shift_batch

    run = load_run(fake_run)
    suite = replay_suite(run, 3.0)
    sp = run.splits
    sid = sp[(sp["seed"] == 0) & (sp["category"] == "brick") & (sp["split"] == "test")]
    sid = sid[sid["label"] == 1].iloc[0]
    image = read_image(sid["image_path"], size=SIZE)
    mask = read_mask(sid["mask_path"], size=SIZE)
    made, made_masks, _ = shift_batch(
        load_suite(SUITE, 3), image[None], mask[None], [sid["sample_id"]], 0
    )
    twin, twin_mask = replay_twin(
        run, suite, category="brick", seed=0, sample_id=sid["sample_id"], severity=3.0,
        image=image, mask=mask,
    )  # fmt: skip
    assert np.array_equal(twin, made[0]) and np.array_equal(twin_mask, made_masks[0])
    assert not np.array_equal(twin, image)  # the suite did shift it
    rows, protocol, scale = qualitative_rows(run, run.scores, 3.0, "brick", "patchcore", 0)
    assert protocol == "shift-noadapt"
    # chosen by rule: the highest-scored image of the (one) defect type first
    s = run.scores
    s = s[(s["category"] == "brick") & (s["model"] == "patchcore") & (s["seed"] == 0)
          & (s["protocol"] == "shift-noadapt") & (s["split"] == "test")]  # fmt: skip
    anom = s[s["label"] == 1].sort_values(["score", "sample_id"], ascending=[False, True])
    first = rows[0]
    assert first["sample_id"] == anom["sample_id"].iloc[0] and first["reason"] == "scratch: highest"
    assert [r["reason"] for r in rows[1:]] == ["anomalous: lowest", "normal: highest",
                                               "normal: lowest"]  # fmt: skip
    want, _, _ = shift_batch(
        load_suite(SUITE, 3), first["image"][None], None, [first["sample_id"]], 0
    )
    assert np.array_equal(first["shifted"], want[0])
    # colour scale from the validation pixel threshold (0.5): threshold at mid-scale
    assert scale == {"vmin": 0.0, "vmax": pytest.approx(1.0), "threshold": 0.5}


def test_select_samples_rule_hand_worked():
    from shiftbench.analysis.figures.qualitative import select_samples

    rows = pd.DataFrame(
        [("a", 1, "crack", 0.9), ("b", 1, "crack", 0.2), ("c", 1, "hole", 0.5),
         ("d", 1, "hole", 0.7), ("e", 0, "good", 0.6), ("f", 0, "good", 0.1),
         ("g", 0, "good", 0.3)],
        columns=["sample_id", "label", "defect_type", "score"],
    )  # fmt: skip
    assert select_samples(rows) == [
        ("a", "crack: highest"), ("d", "hole: highest"), ("b", "anomalous: lowest"),
        ("e", "normal: highest"), ("f", "normal: lowest"),
    ]  # fmt: skip
    assert [x for x, _ in select_samples(rows, max_defect_rows=1)][:2] == ["a", "b"]


def test_defect_table_hand_worked():
    from shiftbench.analysis.tables.comparison import defect_table

    rows = []
    for seed, decisions in ((0, (1, 0, 1, 1)), (1, (1, 1, 0, 0))):
        for sid, (label, defect), dec in zip(
            ("x", "y", "z", "w"), ((1, "crack"), (1, "crack"), (1, "hole"), (0, "good")),
            decisions, strict=True,
        ):  # fmt: skip
            rows.append({"category": "c", "model": "m", "seed": seed, "protocol": "clean",
                         "split": "test", "sample_id": sid, "label": label,
                         "defect_type": defect, "decision": dec})  # fmt: skip
    t = defect_table(pd.DataFrame(rows)).set_index("defect_type")
    assert t.loc["crack", "rate"] == pytest.approx((0.5 + 1.0) / 2)  # recall per seed, then mean
    assert t.loc["hole", "rate"] == pytest.approx(0.5)
    assert t.loc["good", "rate"] == pytest.approx(0.5)  # the false-positive rate
    assert t.loc["crack", "n"] == 2
    assert list(t.index) == ["crack", "hole", "good"]  # normals last


def test_combined_report_of_two_runs(fake_run, built, tmp_path):
    """Two runs of the same design (here: the models split between two copies) give one
    report; runs that differ are refused, naming the field."""
    from shiftbench.analysis.report.build import build_report
    from shiftbench.errors import ShiftbenchError
    from shiftbench.testing.fake_run import write_run

    scores = pd.read_parquet(fake_run / "scores.parquet")
    metrics = pd.read_parquet(fake_run / "metrics.parquet")
    manifest = json.loads((fake_run / "manifest.json").read_text())
    keep = {k: manifest[k] for k in ("command", "config", "seeds", "suite", "split_hashes")}
    splits = pd.read_csv(fake_run / "splits.csv")
    runs = []
    for name, models in (("a", ["patchcore"]), ("b", ["padim", "auto_encoder"])):
        s = scores[scores["model"].isin(models)]
        m = metrics[metrics["model"].isin(models) & (metrics["category"] != "mean")]
        runs.append(write_run(tmp_path / name, {"u": (s, m)}, splits=splits, manifest=keep))
    out = build_report(runs, "markdown,html", n_resamples=200, figures=("degradation",),
                       out=tmp_path / "both", baseline="padim")  # fmt: skip
    table = pd.read_csv(tmp_path / "both" / "tables" / "image_auroc.csv")
    assert set(table["model"]) == set(MODELS)
    single = pd.read_csv(fake_run / "tables" / "image_auroc.csv")
    a = table.set_index(["category", "model"]).sort_index()["clean"]
    b = single.set_index(["category", "model"]).sort_index()["clean"]
    assert np.allclose(a.to_numpy(), b.to_numpy())
    doc = json.loads((tmp_path / "both" / "summary.json").read_text())
    assert doc["runs"] == [str(r) for r in runs] and doc["baseline"] == "padim"
    assert out.html == tmp_path / "both" / "report.html"
    with pytest.raises(ShiftbenchError, match="--out"):
        build_report(runs, "markdown", n_resamples=200, figures=False)
    other = dict(keep, config={**keep["config"], "dataset": "visa"})
    odd = write_run(tmp_path / "c", {"u": (scores[scores["model"] == "padim"], metrics[
        (metrics["model"] == "padim") & (metrics["category"] != "mean")])}, splits=splits,
        manifest=other)  # fmt: skip
    with pytest.raises(ShiftbenchError, match=r"config\.dataset differs"):
        build_report([runs[0], odd], "markdown", n_resamples=200, figures=False, out=tmp_path / "x")
    twin = write_run(tmp_path / "d", {"u": (scores[scores["model"] == "padim"], metrics[
        (metrics["model"] == "padim") & (metrics["category"] != "mean")])}, splits=splits,
        manifest=keep)  # fmt: skip
    with pytest.raises(ShiftbenchError, match="model 'padim' is in both"):
        build_report(
            [runs[1], twin], "markdown", n_resamples=200, figures=False, out=tmp_path / "y"
        )


def test_qualitative_grid_refuses_a_suite_that_changed(fake_run, tmp_path):
    from shiftbench.analysis.figures.qualitative import replay_suite
    from shiftbench.analysis.report.build import build_report
    from shiftbench.errors import ShiftbenchError
    from shiftbench.results import load_run

    run_dir = tmp_path / "changed"
    shutil.copytree(fake_run, run_dir, ignore=shutil.ignore_patterns("tables", "figures"))
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["suite"]["hashes"]["3"] = "0123456789abcdef"  # the suite the run shifted with
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ShiftbenchError, match=r"hashes to \w+ now but the run shifted") as exc:
        replay_suite(load_run(run_dir), 3.0)
    assert "manifest.json" in str(exc.value) and "0123456789abcdef" in str(exc.value)
    out = build_report(run_dir, "markdown", n_resamples=200, figures=("qualitative",))
    assert any("qualitative grid brick / patchcore" in s and "hashes to" in s for s in out.skipped)
    assert not list((run_dir / "figures").glob("qualitative_*"))


def _capture_figures(monkeypatch, module) -> list:
    """Keep each figure ``module`` saves (drawn, before it is closed) for inspection."""
    kept = []
    original = module.save_figure

    def keep(fig, stem):
        fig.canvas.draw()
        kept.append((fig, fig.canvas.get_renderer()))
        return original(fig, stem)

    monkeypatch.setattr(module, "save_figure", keep)
    return kept


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


@pytest.mark.parametrize("levels", [(0, 1), (0, 1, 3), (0, 1, 3, 5)])
def test_heatmap_cells_are_readable_on_a_fixed_scale(tmp_path, monkeypatch, levels):
    """Three models, four long shift names: every cell's two-line label stays inside its
    cell and clear of the others, the shift names clear of the first cell, and the colour
    bar is the fixed AUROC range 0.5-1.0 in %, like the cells (not stretched to the data)."""
    from shiftbench.analysis.figures import grids

    rng = np.random.default_rng(0)
    rows = [(m, s, float(lv), v := (0.75 if lv == 0 else rng.uniform(0.3, 0.8)), v - 0.75)
            for m in ("ae", "anomalib-padim", "patchcore")
            for s in ("cc_brightness", "cc_contrast", "cc_defocus_blur", "cc_gaussian_noise")
            for lv in levels]  # fmt: skip
    frame = pd.DataFrame(rows, columns=["model", "shift", "severity", "value", "drop"])
    kept = _capture_figures(monkeypatch, grids)
    grids.robustness_heatmap(frame, tmp_path / "heat")
    ((fig, r),) = kept
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>" and ax.images]
    assert len(panels) == 3
    for ax in panels:
        cells = [t for t in ax.texts if t.get_gid() == "cell"]
        assert len(cells) == 4 * len(levels)
        boxes = [t.get_window_extent(r) for t in cells]
        for t, box in zip(cells, boxes, strict=True):
            x, y = t.get_position()
            (x0, y0), (x1, y1) = ax.transData.transform([(x - 0.5, y + 0.5), (x + 0.5, y - 0.5)])
            assert x0 < box.x0 and box.x1 < x1 and y0 < box.y0 and box.y1 < y1, t.get_text()
        assert not any(_overlap(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
        names = [t for t in ax.get_yticklabels() if t.get_text()]
        left = ax.get_window_extent(r).x0
        assert all(t.get_window_extent(r).x1 < left - 2 for t in names)
    assert [t.get_text() for t in panels[0].get_yticklabels()][0] == "cc_brightness"
    (bar,) = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert bar.get_ylim() == pytest.approx((0.5, 1.0))
    assert "(%)" in bar.get_ylabel()
    ticks = [t.get_text() for t in bar.get_yticklabels() if t.get_text()]
    assert ticks[0] == "50" and ticks[-1] == "100"
    cell = next(t.get_text() for t in panels[0].texts if t.get_gid() == "cell")
    assert cell == "75.0"  # the clean cell, in % like the bar


def _test_rows(protocols=("clean", "shift-noadapt"), models=("patchcore",)) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    y = np.r_[np.zeros(20, int), np.ones(16, int)]
    return pd.DataFrame(
        [{"category": "brick", "model": m, "seed": 0, "protocol": p, "label": lab,
          "score": rng.normal() + 1.5 * lab}
         for m in models for p in protocols for lab in y]
    )  # fmt: skip


def test_roc_pr_panels_fill_the_width(tmp_path, monkeypatch):
    """Two protocols: one row of four square panels, no wide empty gap between them, and
    each legend below its panel's axis label."""
    from shiftbench.analysis.figures import curves

    kept = _capture_figures(monkeypatch, curves)
    curves.roc_pr_curves(_test_rows(), "brick", tmp_path / "roc")
    ((fig, r),) = kept
    boxes = sorted((ax.get_window_extent(r) for ax in fig.axes), key=lambda b: b.x0)
    assert len(boxes) == 4 and len({round(b.y0) for b in boxes}) == 1
    dpi = fig.dpi
    gaps = [(b.x0 - a.x1) / dpi for a, b in zip(boxes, boxes[1:], strict=False)]
    assert max(gaps) < 0.8, gaps  # inches: room for the next panel's tick labels only
    assert (boxes[-1].x1 - boxes[0].x0) / dpi > 0.85 * 7.0
    for ax in fig.axes:
        label = ax.xaxis.label.get_window_extent(r)
        assert ax.get_legend().get_window_extent(r).y1 < label.y0


def test_severity_curve_label_fits_and_points_replace_bars(tmp_path, monkeypatch):
    """The severity curve's y label is one line inside the figure and clear of the legend;
    the degradation figure draws points with intervals, not bars on a cut axis."""
    from shiftbench.analysis.figures import curves
    from shiftbench.analysis.tables.comparison import protocol_comparison

    kept = _capture_figures(monkeypatch, curves)
    bands = pd.DataFrame(
        [{"model": "patchcore", "severity": float(s), "value": 0.9 - 0.05 * s,
          "low": 0.85 - 0.05 * s, "high": 0.95 - 0.05 * s} for s in (0, 1, 3, 5)]
    )  # fmt: skip
    curves.severity_curves({"shift-noadapt": bands}, tmp_path / "sev",
                           over="4 categories × 1 seed × shifts", title="suite adshift")  # fmt: skip
    fig, r = kept[-1]
    (ax,) = fig.axes
    label = ax.yaxis.label
    assert "\n" not in label.get_text()
    box = label.get_window_extent(r)
    assert box.x0 >= 0 and box.y0 >= 0 and box.y1 <= fig.bbox.height
    legend = fig.legends[0].get_window_extent(r)
    assert not _overlap(box, legend)
    assert "mean over 4 categories" in fig.legends[0].get_title().get_text()

    scores = _test_rows().assign(split="test", sample_id=lambda d: d.index.astype(str) + "x",
                                 threshold=0.5, decision=lambda d: (d["score"] > 0.5).astype(int),
                                 severity=np.nan)  # fmt: skip
    scores["sample_id"] = np.tile(np.arange(36).astype(str), 2)
    comp = protocol_comparison(scores, "image_auroc", n_resamples=100)
    curves.degradation_bars(comp, tmp_path / "deg")
    fig, r = kept[-1]
    ax = fig.axes[0]
    assert not [p for p in ax.patches if p.get_height() > 0.05]  # no bars
    assert len(ax.lines) >= 2  # a point per protocol (and the chance line)
    lows = comp.table[["clean_low", "shift-noadapt_low"]].to_numpy().min()
    assert ax.get_ylim()[0] <= lows


def test_console_summary_of_a_per_shift_run_fits_80_columns():
    """13 wide columns (clean + 4 shifts x 3 levels) become one row per shift with the
    columns clean and each level, at 80 characters; the numbers are the wide table's."""
    from shiftbench.analysis.report.summary import summary_table, summary_text
    from shiftbench.results import schema

    rng = np.random.default_rng(0)
    shifts = ("cc_brightness", "cc_contrast", "cc_defocus_blur", "cc_gaussian_noise")
    rows = []
    for cat in ("brick", "grass", "mean"):
        for model in ("ae", "anomalib-padim", "patchcore"):
            rows.append((cat, model, 0, "clean", np.nan, "image_auroc", rng.uniform(), None))
            for f in shifts:
                for lev in (1.0, 3.0, 5.0):
                    rows.append((cat, model, 0, "shift-noadapt", lev, "image_auroc",
                                 rng.uniform(), f))  # fmt: skip
    metrics = pd.DataFrame(rows, columns=[*schema.METRIC_COLUMNS, schema.SHIFT_COLUMN])
    wide = summary_table(metrics)
    assert wide.shape[1] == 13
    text = summary_text(metrics, 1, width=80)
    lines = text.splitlines()
    assert max(map(len, lines)) <= 80
    assert lines[1].split() == ["clean", "sev", "1", "sev", "3", "sev", "5"]
    assert len(lines) == 1 + 2 + 3 * 3 * 4  # title, header, a row per category x model x shift
    row = next(ln for ln in lines if ln.startswith("grass") and "cc_brightness" in ln)
    assert row.split()[-4:] == [f"{wide.loc[('grass', 'ae'), c]:.3f}" for c in (
        "clean", *(f"shift-noadapt@cc_brightness@{lv}" for lv in (1, 3, 5)))]  # fmt: skip
    assert lines[-1].split()[:1] == ["cc_gaussian_noise"] and "mean" in text.split("grass")[-1]
    # a terminal wide enough for the wide table keeps it
    assert summary_text(metrics, 1, width=500).splitlines()[1].split()[0] == "clean"
    assert "shift-noadapt@cc_contrast@3" in summary_text(metrics, 1, width=500)
