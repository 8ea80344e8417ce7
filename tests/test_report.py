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
    from shiftbench.analysis.report import build_report

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
    assert len(rows) == (len(CATEGORIES) + 1) * len(MODELS)
    for row in rows:
        # Split on unescaped & only: names are escaped, so \& never separates cells.
        assert len(re.split(r"(?<!\\)&", row)) == len(spec), row
    assert r"toy\_block" in tex and r"auto\_encoder" in tex
    assert not re.search(
        r"(?<!\\)_", tex.replace(r"\_", "").split(r"\begin{tabular}")[1].replace("_{", "")
    ), "unescaped underscore in the table body"
    assert r"\mathbf{" in tex  # best per block in bold
    header = tex.split(r"\toprule")[1].split(r"\midrule")[0]
    assert len(re.split(r"(?<!\\)&", header)) == len(spec)
    if shutil.which("pdflatex"):
        doc = tmp_path / "t.tex"
        doc.write_text(
            "\\documentclass{article}\\usepackage{booktabs}\\usepackage[utf8]{inputenc}"
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


def test_markdown_and_efficiency_tables(fake_run, built):
    md = (fake_run / "tables" / "image_auroc.md").read_text()
    lines = [ln for ln in md.splitlines() if ln.startswith("|")]
    n_cols = {ln.replace(r"\|", "").count("|") for ln in lines}
    assert n_cols == {8}  # 7 columns -> 8 pipes on every line
    assert r"toy\_block" in md and "**" in md
    eff = pd.read_csv(fake_run / "tables" / "efficiency.csv").set_index("model")
    assert eff.loc["padim", "ms_per_image"] == pytest.approx(5.0)
    assert eff.loc["auto_encoder", "fit_seconds"] == pytest.approx(20.0)
    eff_md = (fake_run / "tables" / "efficiency.md").read_text()
    # Fastest inference (auto_encoder, 2.0 ms) and smallest memory are bold.
    assert re.search(r"\| auto\\_encoder \|.*\*\*2\.0\*\*", eff_md)
    assert (fake_run / "tables" / "efficiency.tex").is_file()


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
    from shiftbench.analysis.figures import DPI

    figs = fake_run / "figures"
    expected = {
        "degradation_image_auroc": (6.9, 2.4),
        "roc_pr_brick": (6.9, 4.4),
        "roc_pr_toy_block": (6.9, 4.4),
        "scores_brick_padim": (6.9, 2.2),
        "cd_clean": None,
        "cd_shift-noadapt": None,
        "qualitative_brick_patchcore": (6.9, 1.45 * 4 + 0.3),
    }
    for stem, inches in expected.items():
        png, pdf = figs / f"{stem}.png", figs / f"{stem}.pdf"
        assert pdf.is_file() and pdf.read_bytes()[:4] == b"%PDF", stem
        w, h = _png_size(png)
        if inches:
            assert (w, h) == (round(inches[0] * DPI), round(inches[1] * DPI)), stem
    assert any("severity" in s for s in built.skipped)  # no sweep in this run: skipped, not failed


def test_report_html_is_self_contained(fake_run, built):
    text = built.html.read_text()
    assert built.html == fake_run / "report.html"
    n_png = len(list((fake_run / "figures").glob("*.png")))
    assert text.count("data:image/png;base64,") == n_png
    assert not re.search(r"<img[^>]+src=['\"](?!data:)", text)  # no external images
    assert "<table>" in text and "Image AUROC" in text


def test_report_html_shows_manifest_keys_the_runner_writes(fake_run, built):
    """The Run section holds exactly the schema's report keys, all of which the runner
    writes (the fake run is written by the same writer)."""
    from shiftbench.results import schema

    text = built.html.read_text()
    shown = json.loads(html.unescape(re.search(r"<h2>Run</h2><pre>(.*?)</pre>", text, re.S)[1]))
    assert list(shown) == list(schema.REPORT_MANIFEST_KEYS)
    assert set(schema.REPORT_MANIFEST_KEYS) <= set(schema.MANIFEST_KEYS)
    manifest = json.loads((fake_run / "manifest.json").read_text())
    assert manifest["format_version"] == schema.FORMAT_VERSION
    assert set(manifest) <= set(schema.MANIFEST_KEYS)


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
    with pytest.raises(SystemExit) as exc:
        main(["report", str(tmp_path / "nope")])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["report", str(run), "--format", "docx"])
    assert exc.value.code == 2


def test_severity_sweep_draws_curves(tmp_path):
    """A `severity` column with several levels gives severity curves; tables use one level."""
    from shiftbench.analysis.report import build_report

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
    assert "severity 3 of the sweep (1, 3, 5)" in md


def test_pixel_table_from_metrics_hand_worked():
    """Pixel tables come from metrics.parquet: mean and SD over seeds, seed-wise deltas,
    one severity of a sweep (clean rows have none)."""
    from shiftbench.analysis.render import render_pixel
    from shiftbench.analysis.tables import pixel_table

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
    assert "| brick | patchcore | 85.0 ± 7.1 | 50.0 ± 14.1 | – | −35.0 ± 7.1 | – |" in md
    assert "\\toprule" in render_pixel(t.reset_index(), "pixel_aupro").latex()


# ---------------------------------------------------------------------------- qualitative


def test_qualitative_grid_replays_the_twins_the_runner_made(fake_run):
    """The shifted column is the runner's twin (``shift_batch``, as the runner shifts),
    rebuilt from the stored parameters, not shifted anew."""
    from shiftbench.analysis.qualitative import qualitative_rows, replay_suite, replay_twin
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
    rows, protocol = qualitative_rows(run, run.scores, 3.0, "brick", "patchcore", 0)
    assert protocol == "shift-noadapt"
    first = rows[0]
    ids = sorted(sp[(sp["seed"] == 0) & (sp["split"] == "test") & (sp["category"] == "brick")
                    & (sp["label"] == 1)]["sample_id"])  # fmt: skip
    want, _, _ = shift_batch(load_suite(SUITE, 3), first["image"][None], None, [ids[0]], 0)
    assert np.array_equal(first["shifted"], want[0])


def test_qualitative_grid_refuses_a_suite_that_changed(fake_run, tmp_path):
    from shiftbench.analysis.qualitative import replay_suite
    from shiftbench.analysis.report import build_report
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
