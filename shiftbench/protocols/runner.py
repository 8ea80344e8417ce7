"""The study runner: splits -> shifted twins -> fit/score -> thresholds -> metrics.

A study is a grid of *units* (fit group, model, seed, fit domain). The fit group is one
category, or every chosen category pooled (``global_model``). One fit on Train-clean
serves both ``clean`` and ``shift-noadapt`` (at every severity of a sweep);
``shift-adapt`` fits on Train-shift, once per severity. Each
finished unit is written atomically, so an interrupted study resumes with only the
missing units. Thresholds come from the protocol's validation split only and are then
frozen; test scores never touch them.
"""

from __future__ import annotations

import functools
import importlib.metadata as md
import json
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from shiftbench.data import load_dataset, make_splits, split_hash
from shiftbench.data.cache import (
    arrays_dir,
    batch_key,
    budget_gb,
    cached,
    digest,
    entry_path,
    read_batch,
    source_digest,
)
from shiftbench.errors import ShiftbenchError
from shiftbench.protocols.config import Protocol, StudyConfig, resolve_protocols
from shiftbench.results.rundir import RunDir, atomic_write_npz, atomic_write_table

METRIC_COLUMNS = ["category", "model", "seed", "protocol", "severity", "metric", "value"]
PARALLEL_SHIFT_PIXELS = 50_000_000
EVAL_SPLITS = ("val", "test")


def domain_tag(domain: str, severity: int | None) -> str:
    """Name of one image domain: ``clean``, or ``shift@<level>`` for a shift severity."""
    return "clean" if domain == "clean" else f"shift@{severity}"


def severity_value(severity: int | None) -> float:
    """The ``severity`` column of scores and metrics: the level, NaN for ``clean``."""
    return np.nan if severity is None else float(severity)


@dataclass(frozen=True)
class Unit:
    """One fit: a model fitted on one group's training split in one domain, for one seed.

    ``conditions`` are the (protocol, severity) pairs this fit serves; severity is None
    for a protocol that never sees shifted images (``clean``).
    """

    group: str  # a category, or "global"
    categories: tuple[str, ...]
    model: str
    seed: int
    domain: str  # "clean" or "shift"
    severity: int | None  # the shift level a "shift" unit fits on
    conditions: tuple[tuple[Protocol, int | None], ...]

    @property
    def key(self) -> str:
        domain = self.domain if self.severity is None else f"shift-sev{self.severity}"
        return f"{self.group}__{self.model}__seed{self.seed}__{domain}"

    @property
    def fit_tag(self) -> str:
        return domain_tag(self.domain, self.severity)

    def needs(self) -> set[tuple[str, str]]:
        """The (image domain, split) pairs this unit fits on, thresholds on or scores."""
        out = {(self.fit_tag, "train")}
        for p, sev in self.conditions:
            out |= {
                (domain_tag(p.threshold_from, sev), "val"),
                (domain_tag(p.evaluate_on, sev), "test"),
            }
        return out


@dataclass
class SplitImages:
    """The images of one category and seed, in both domains, loaded once."""

    table: pd.DataFrame  # rows of this category, with `split`
    images: dict[tuple[str, str], np.ndarray] = field(
        default_factory=dict
    )  # (domain, split) -> [N,H,W,3]
    masks: dict[tuple[str, str], np.ndarray] = field(
        default_factory=dict
    )  # (domain, split) -> [N,H,W]

    #: shifted domain -> fills its images and masks (set when twins are kept in the image
    #: cache: a domain can then be dropped after use and loaded again when needed)
    loaders: dict[str, Callable[[], None]] = field(default_factory=dict)
    _rows: dict[str, pd.DataFrame] = field(default_factory=dict)

    def pixels(self, domain: str, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Images ``[N,H,W,3]`` and masks ``[N,H,W]`` of one (domain, split)."""
        if (domain, split) not in self.images and domain in self.loaders:
            self.loaders[domain]()
        return self.images[domain, split], self.masks[domain, split]

    def drop(self, domain: str) -> None:
        """Free a shifted domain's arrays if it can be loaded again (from the cache)."""
        if domain in self.loaders:
            for key in [k for k in self.images if k[0] == domain]:
                del self.images[key], self.masks[key]

    def rows(self, split: str) -> pd.DataFrame:
        if split not in self._rows:  # asked for once per protocol and unit: filter once
            self._rows[split] = self.table[self.table["split"] == split]
        return self._rows[split]


def with_clean_reference(protocols: list[Protocol]) -> list[Protocol]:
    """Add ``clean`` whenever ``shift-noadapt`` runs without it.

    Its fit, threshold and validation scores are the same; only the clean test images are
    scored on top, and the drop clean -> shifted is what a shift study reports.
    """
    names = {p.name for p in protocols}
    if "shift-noadapt" in names and "clean" not in names:
        return resolve_protocols(["clean", *names])
    return protocols


def _touches_shift(p: Protocol) -> bool:
    return "shift" in (p.fit_on, p.threshold_from, p.evaluate_on)


def plan_units(config: StudyConfig, categories: list[str]) -> list[Unit]:
    """The grid of fits the study needs, in execution order.

    One clean fit per (group, model, seed) serves every protocol fitted on Train-clean, at
    every severity; a protocol fitted on Train-shift needs one fit per severity.
    """
    protocols = with_clean_reference(config.protocols)
    groups = (
        [("global", tuple(categories))] if config.global_model else [(c, (c,)) for c in categories]
    )
    sevs = config.severities
    units = []
    for seed in config.seeds:
        for group, cats in groups:
            for model in config.models:
                clean = [p for p in protocols if p.fit_on == "clean"]
                if clean:
                    conditions = tuple(
                        (p, s) for p in clean for s in (sevs if _touches_shift(p) else [None])
                    )
                    units.append(Unit(group, cats, model, seed, "clean", None, conditions))
                shifted = [p for p in protocols if p.fit_on == "shift"]
                for s in sevs if shifted else []:
                    conditions = tuple((p, s) for p in shifted)
                    units.append(Unit(group, cats, model, seed, "shift", s, conditions))
    return units


@functools.lru_cache(maxsize=1)
def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in (
        "shiftbench",
        "numpy",
        "torch",
        "torchvision",
        "timm",
        "anomalib",
        "albumentations",
        "scikit-learn",
        "scipy",
        "statsmodels",
        "pandas",
        # shifted pixels depend on numpy's generators and OpenCV's warps
        "opencv-python-headless",
        "faiss-cpu",
    ):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def _shift_code(suite) -> list[str]:
    """What makes a suite's pixels besides its definition: the versions of the libraries
    whose numerics it uses and the source of the shift engine and of every member's class
    (a plugin edited without a version bump still gets fresh twins)."""
    import inspect

    import shiftbench.transforms as transforms

    files = [str(p) for p in Path(transforms.__file__).parent.glob("*.py")]
    files += [inspect.getfile(type(m.perturbation)) for m in suite.members]
    libs = [_versions().get(k, "") for k in ("numpy", "opencv-python-headless", "albumentations")]
    return [*libs, source_digest(tuple(sorted(files)))]


def _git_commit() -> str | None:
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class StudyRunner:
    """Runs one study into one run directory. ``echo`` receives human-readable lines."""

    def __init__(
        self,
        config: StudyConfig,
        out: Path | None = None,
        *,
        resume: bool = False,
        command: list[str] | None = None,
        progress: bool = True,
        echo: Callable[[str], None] = print,
    ):
        self.config = config
        self.protocols = with_clean_reference(config.protocols)
        self.resume = resume
        self.command = command if command is not None else sys.argv
        self.progress = progress
        self.echo = echo
        self.out = Path(out) if out is not None else None
        self.timing = {"fit_seconds": 0.0, "score_seconds": 0.0, "shift_seconds": 0.0}
        self.cache_stats = {"hits": 0, "misses": 0}  # image cache, in this process

    # -- preparation: everything that can fail on bad input happens here ---------------
    def prepare(self) -> None:
        cfg = self.config
        if cfg.image_cache:
            budget_gb()  # a bad $SHIFTBENCH_CACHE_GB fails now, not after the first fit
        self.samples = load_dataset(cfg.dataset, cfg.root, cfg.categories)
        self.categories = sorted(self.samples["category"].unique())
        self.suites = {}
        if any(_touches_shift(p) for p in self.protocols):
            from shiftbench.transforms import load_suite

            self.suites = {s: load_suite(cfg.suite, s) for s in cfg.severities}
        self.splits = pd.concat(
            [
                make_splits(
                    self.samples,
                    seed,
                    val_normal_frac=cfg.val_normal_frac,
                    val_anomalous_frac=cfg.val_anomalous_frac,
                    train_subsample=cfg.train_subsample,
                ).assign(seed=seed)
                for seed in cfg.seeds
            ],
            ignore_index=True,
        )
        self.units = plan_units(cfg, self.categories)
        self._check_models()

    def _check_models(self) -> None:
        """Build each model once (no fit) so unknown names and unloadable weights fail now."""
        from shiftbench.models import create_model

        for name in self.config.models:
            create_model(name, **self._model_kwargs(name, self.config.seeds[0]))

    def _model_kwargs(self, name: str, seed: int) -> dict:
        cfg = self.config
        kwargs = dict(
            weights=cfg.weights,
            image_size=cfg.image_size,
            seed=seed,
            **cfg.model_options.get(name, {}),
        )
        if cfg.backbone is not None and self._takes_backbone(name):
            kwargs["backbone"] = cfg.backbone
        return kwargs

    @staticmethod
    def _takes_backbone(name: str) -> bool:
        # a study-wide --backbone applies to the models that have one (not the autoencoder)
        from shiftbench.models.registry import model_class

        return getattr(model_class(name), "default_backbone", None) is not None

    def describe(self) -> str:
        lines = [
            f"{len(self.units)} fits: {len(self.config.seeds)} seed(s) x {len({u.group for u in self.units})} group(s) "
            f"x {len(self.config.models)} model(s) x {len({u.fit_tag for u in self.units})} domain(s)"
        ]
        for u in self.units:
            served = [p.name if s is None else f"{p.name}@sev{s}" for p, s in u.conditions]
            lines.append(f"  {u.key:60s} -> {', '.join(served)}")
        return "\n".join(lines)

    # -- run directory -------------------------------------------------------------------
    def _open_run(self) -> RunDir:
        cfg = self.config
        out = self.out
        if out is None:
            out = Path("results") / cfg.default_name()
            if not self.resume:
                n = 2
                while out.exists() and any(out.iterdir()):
                    out = Path("results") / f"{cfg.default_name()}-{n}"
                    n += 1
        if self.resume and (out / "manifest.json").is_file():
            run = RunDir.open(out)
            previous = run.read_manifest()
            if previous.get("config_hash") != cfg.hash:
                run.unlock()
                raise ShiftbenchError(
                    f"{out}: its study config differs from this one; resume with the same options or use another --out"
                )
            run.clean_partial()
            manifest = previous
            manifest.setdefault("resumed_at", []).append(_now())
        else:
            run = RunDir.create(out)
            manifest = {"started_at": _now()}
        manifest.update(
            {
                "config": cfg.to_dict(),
                "config_hash": cfg.hash,
                "command": shlex.join(self.command),
                "seeds": cfg.seeds,
                "protocols": [p.__dict__ for p in self.protocols],
                "versions": dict(_versions()),
                "git_commit": _git_commit(),
                "split_hashes": {
                    str(s): split_hash(self.splits[self.splits["seed"] == s]) for s in cfg.seeds
                },
                "suite": None
                if not self.suites
                else {
                    "name": next(iter(self.suites.values())).name,
                    "hash": next(iter(self.suites.values())).hash,
                    "severity": cfg.severity,
                    "hashes": {str(s): suite.hash for s, suite in self.suites.items()},
                },
                "units": [u.key for u in self.units],
                "status": "running",
            }
        )
        run.write_manifest(manifest)
        cols = [
            "seed",
            "sample_id",
            "category",
            "split",
            "label",
            "defect_type",
            "image_path",
            "mask_path",
        ]
        atomic_write_table(run.path / "splits.csv", self.splits[cols])
        return run

    # -- images and shifted twins ----------------------------------------------------------
    def _load_category(
        self, run: RunDir, category: str, seed: int, needs: set[tuple[str, str]]
    ) -> SplitImages:
        """Clean images of one category and seed, plus the shifted twins of the splits that
        ``needs`` names (``(shift@<level>, split)``): a ``shift-noadapt`` study shifts its
        test images only, never training images no model will see. Twins are made now, or,
        with the image cache on, when first used (:meth:`SplitImages.pixels`)."""
        size = self.config.image_size
        table = self.splits[(self.splits["seed"] == seed) & (self.splits["category"] == category)]
        table = (
            table[table["split"].isin(["train", *EVAL_SPLITS])]
            .sort_values("sample_id")
            .reset_index(drop=True)
        )
        data = SplitImages(table)
        cache = self.config.image_cache
        stats = self.cache_stats
        images = read_batch(table["image_path"], size, kind="image", cache=cache, stats=stats)
        masks = read_batch(table["mask_path"], size, kind="mask", cache=cache, stats=stats)
        split_of = table["split"].to_numpy()
        for split in ("train", *EVAL_SPLITS):
            idx = np.flatnonzero(split_of == split)
            data.images["clean", split], data.masks["clean", split] = images[idx], masks[idx]
        for tag in sorted({t for t, _ in needs} - {"clean"}):
            splits = sorted({sp for t, sp in needs if t == tag})
            load = functools.partial(self._load_twins, run, category, seed, data, tag, splits)
            if self.config.image_cache:
                data.loaders[tag] = load  # on first use; dropped and reloaded level by level
            else:
                load()  # no cache to reload from: made once, kept for every unit
        return data

    def _load_twins(
        self, run: RunDir, category: str, seed: int, data: SplitImages, tag: str, splits: list
    ) -> None:
        """Shift the clean images of ``splits`` into domain ``tag`` (``shift@<level>``)."""
        split_of = data.table["split"].to_numpy()
        rows = np.flatnonzero(np.isin(split_of, splits))  # table order, as the cache keys it
        first = data.images["clean", splits[0]]
        images = np.empty((len(rows), *first.shape[1:]), first.dtype)
        masks = np.empty((len(rows), *data.masks["clean", splits[0]].shape[1:]), np.uint8)
        for split in splits:
            at = np.searchsorted(rows, np.flatnonzero(split_of == split))
            images[at], masks[at] = data.images["clean", split], data.masks["clean", split]
        severity = int(tag.split("@")[1])
        im, ma, kept = self._shifted(
            run, category, seed, severity, data.table.iloc[rows], images, masks
        )
        if not kept:  # the cache could not keep them (unwritable, full): keep them in memory
            data.loaders.pop(tag, None)
        for split in splits:
            idx = np.flatnonzero(split_of[rows] == split)
            data.images[tag, split], data.masks[tag, split] = im[idx], ma[idx]

    def _shifted(
        self,
        run: RunDir,
        category: str,
        seed: int,
        severity: int,
        table: pd.DataFrame,
        images,
        masks,
    ):
        """Shifted twins of one category's images, made once per (suite, severity, seed)
        and shared by every model. With the image cache on they are kept there too, so a
        resumed run or a later study on the same images reads them back (byte-identical:
        shifting is deterministic); their parameters are written to the run
        (``shift_params.parquet``). Returns the twins and whether the cache holds them."""
        from shiftbench.transforms.twins import shift_batch

        ids = table["sample_id"].to_numpy().astype(str)
        suite = self.suites[severity]
        t0 = time.perf_counter()

        def shift() -> dict[str, np.ndarray]:
            # starting worker processes costs seconds (each imports albumentations and
            # torch); below ~50 Mpx threads in this process finish first (same bytes)
            from tqdm.auto import tqdm

            big = images[..., 0].size > PARALLEL_SHIFT_PIXELS
            desc = f"shifting {category} (severity {severity})"
            with tqdm(
                total=len(ids), desc=desc, unit="img", leave=False, disable=not self.progress
            ) as bar:
                out_images, out_masks, params = shift_batch(
                    suite,
                    images,
                    masks,
                    list(ids),
                    seed,
                    workers=self.config.workers if big else 1,
                    threads=1 if big else self.config.workers,
                    progress=bar.update,
                )
            return {
                "images": out_images,
                "masks": out_masks,
                "params": np.array([json.dumps(p, sort_keys=True) for p in params]),
            }

        key = None
        if self.config.image_cache:
            size = self.config.image_size
            inputs = [
                batch_key(table["image_path"], size, "image"),
                batch_key(table["mask_path"], size, "mask"),
            ]
            if None not in inputs:
                key = digest(["twins", _shift_code(suite), suite.hash, seed, inputs, list(ids)])
        name = f"twins-{suite.name}-sev{severity}-seed{seed}"
        twins = cached(name, key, shift, self.cache_stats)
        kept = key is not None and entry_path(name, key).is_file()
        self.timing["shift_seconds"] += time.perf_counter() - t0
        out_images, out_masks, params = twins["images"], twins["masks"], twins["params"]
        rows = pd.DataFrame(
            {
                "seed": seed,
                "sample_id": ids,
                "category": category,
                "split": table["split"].to_numpy(),
                "suite": suite.name,
                "suite_hash": suite.hash,
                "severity": severity,
                "params": params.astype(object),
            }
        )
        path = run.path / "shift_params" / f"seed{seed}" / f"sev{severity}" / f"{category}.parquet"
        if path.is_file():  # a resumed run may shift other splits: keep every image's row
            rows = pd.concat([pd.read_parquet(path), rows], ignore_index=True)
            rows = rows.drop_duplicates("sample_id", keep="last").sort_values("sample_id")
        atomic_write_table(path, rows.reset_index(drop=True))
        return out_images, out_masks, kept

    # -- one unit ----------------------------------------------------------------------------
    def _run_unit(self, run: RunDir, unit: Unit, data: dict[str, SplitImages]) -> None:
        from shiftbench.metrics import (
            aupro,
            f1_max,
            f1_optimal_threshold,
            image_auprc,
            image_auroc,
            pixel_auroc,
            pixel_f1,
            pixel_f1_optimal_threshold,
            threshold_metrics,
        )
        from shiftbench.models import create_model
        from shiftbench.models.efficiency import model_size_mb, track

        model = create_model(unit.model, **self._model_kwargs(unit.model, unit.seed))
        train = np.concatenate([data[c].pixels(unit.fit_tag, "train")[0] for c in unit.categories])
        with track() as fit_track:
            model.fit(train)
        self.timing["fit_seconds"] += fit_track.seconds
        n_scored, score_seconds, peak_mb = 0, 0.0, fit_track.peak_memory_mb

        def score(images):
            nonlocal n_scored, score_seconds, peak_mb
            with track() as t:
                s, m = model.score(images)
            n_scored += len(images)
            score_seconds += t.seconds
            peak_mb = max(peak_mb, t.peak_memory_mb)
            return np.asarray(s, np.float64), np.asarray(m, np.float32)

        score_rows, metric_rows = [], []
        for cat in unit.categories:
            d = data[cat]
            scores: dict[tuple[str, str], np.ndarray] = {}
            # anomaly maps (float32, larger than the images) are kept only until the unit is
            # done with their domain: in a sweep, one level's maps at a time
            maps: dict[tuple[str, str], np.ndarray] = {}

            def scored(domain, split, d=d, scores=scores, maps=maps):
                # each (domain, split) is scored once even when two protocols use it
                if (domain, split) not in scores:
                    scores[domain, split], maps[domain, split] = score(d.pixels(domain, split)[0])
                return scores[domain, split]

            thresholds: dict[str, tuple[float, float, bool]] = {}

            def calibrated(domain, d=d, thresholds=thresholds, maps=maps):
                # image and pixel thresholds of one validation domain, calibrated once even
                # when several protocols (or every level of a sweep) share it
                if domain not in thresholds:
                    val_scores = scored(domain, "val")
                    val_maps = maps.pop((domain, "val"))  # needed for this only
                    val_masks = d.pixels(domain, "val")[1]
                    labels = d.rows("val")["label"].to_numpy()
                    threshold, _ = f1_optimal_threshold(labels, val_scores)
                    has_pixels = bool((val_masks > 0).any()) and d.table["mask_path"].notna().any()
                    pixel_threshold = (
                        pixel_f1_optimal_threshold(val_maps, val_masks)[0] if has_pixels else np.nan
                    )
                    thresholds[domain] = threshold, pixel_threshold, has_pixels
                return thresholds[domain]

            def tags_of(p, sev):  # (threshold domain, evaluation domain)
                return domain_tag(p.threshold_from, sev), domain_tag(p.evaluate_on, sev)

            for i, (p, sev) in enumerate(unit.conditions):
                thr_tag, eval_tag = tags_of(p, sev)
                val_rows, test_rows = d.rows("val"), d.rows("test")
                threshold, pixel_threshold, has_pixels = calibrated(thr_tag)
                val_scores = scored(thr_tag, "val")
                test_scores = scored(eval_tag, "test")
                test_maps = maps[eval_tag, "test"]
                test_masks = d.pixels(eval_tag, "test")[1]
                labels = test_rows["label"].to_numpy()
                for split, rows, s in (
                    ("val", val_rows, val_scores),
                    ("test", test_rows, test_scores),
                ):
                    score_rows.append(
                        pd.DataFrame(
                            {
                                "category": cat,
                                "model": unit.model,
                                "seed": unit.seed,
                                "protocol": p.name,
                                "severity": severity_value(sev),
                                "split": split,
                                "sample_id": rows["sample_id"].to_numpy(),
                                "label": rows["label"].to_numpy(),
                                "defect_type": rows["defect_type"].to_numpy(),
                                "score": s,
                                "threshold": threshold,
                                "decision": (s >= threshold).astype(np.int8),
                                "pixel_threshold": pixel_threshold,
                            }
                        )
                    )
                tm = threshold_metrics(labels, test_scores, threshold)
                values = {
                    "image_auroc": image_auroc(labels, test_scores),
                    "image_auprc": image_auprc(labels, test_scores),
                    "image_f1": tm["f1"],
                    "image_precision": tm["precision"],
                    "image_recall": tm["recall"],
                    "image_accuracy": tm["accuracy"],
                    "image_f1_max_oracle": f1_max(labels, test_scores),
                    "image_threshold": threshold,
                    "pixel_threshold": pixel_threshold,
                }
                if has_pixels and (test_masks > 0).any():
                    values["pixel_auroc"] = pixel_auroc(test_maps, test_masks)
                    values["pixel_aupro"] = aupro(test_maps, test_masks)
                    values["pixel_f1"] = pixel_f1(test_maps, test_masks, pixel_threshold)
                metric_rows += [
                    (cat, unit.model, unit.seed, p.name, severity_value(sev), k, float(v))
                    for k, v in values.items()
                ]
                if self.config.save_maps:  # rewritten identically if the unit is re-run
                    sweep = len(self.config.severities) > 1 and sev is not None
                    name = f"{p.name}-sev{sev}" if sweep else p.name
                    atomic_write_npz(
                        run.path / "maps" / cat / unit.model / f"seed{unit.seed}" / f"{name}.npz",
                        sample_id=test_rows["sample_id"].to_numpy().astype(str),
                        maps=test_maps.astype(np.float16),
                    )
                del test_maps
                later = [tags_of(p_, s_) for p_, s_ in unit.conditions[i + 1 :]]
                if eval_tag not in {e for _, e in later}:  # no later condition evaluates on it
                    del maps[eval_tag, "test"]
                for tag in {thr_tag, eval_tag} - {t for pair in later for t in pair} - {"clean"}:
                    d.drop(tag)  # this unit is done with it (reloaded from the cache if needed)

        self.timing["score_seconds"] += score_seconds
        size_mb = model_size_mb(model)
        ms = 1000.0 * score_seconds / max(n_scored, 1)
        efficiency = {
            "fit_seconds": fit_track.seconds,
            "ms_per_image": ms,
            "images_per_second": 1000.0 / ms if ms > 0 else np.nan,
            "n_parameters": float(getattr(model, "n_parameters", np.nan)),
            "model_size_mb": size_mb,
            "peak_memory_mb": peak_mb,
        }
        for cat in unit.categories:
            for p, sev in unit.conditions:
                metric_rows += [
                    (cat, unit.model, unit.seed, p.name, severity_value(sev), k, float(v))
                    for k, v in efficiency.items()
                ]
        metrics = pd.DataFrame(metric_rows, columns=METRIC_COLUMNS)
        run.write_unit(unit.key, pd.concat(score_rows, ignore_index=True), metrics)

    # -- the whole study ---------------------------------------------------------------------
    def run(self) -> Path:
        from tqdm.auto import tqdm

        t_start = time.perf_counter()
        run = self._open_run()
        self.run_dir = run.path
        todo = [u for u in self.units if not run.unit_done(u.key)]
        if len(todo) < len(self.units):
            self.echo(
                f"resuming {run.path}: {len(self.units) - len(todo)} of {len(self.units)} fits already done"
            )
        bar = tqdm(total=len(todo), desc="fits", unit="fit", disable=not self.progress)
        for seed in self.config.seeds:
            seed_units = [u for u in todo if u.seed == seed]
            for cats in dict.fromkeys(u.categories for u in seed_units):
                # the units that share one set of images: load (and shift) them once
                group_units = [u for u in seed_units if u.categories == cats]
                needs = set().union(*(u.needs() for u in group_units))
                data = {}
                for c in cats:
                    bar.set_postfix_str(f"reading {c} (seed {seed})")
                    data[c] = self._load_category(run, c, seed, needs)
                for unit in group_units:
                    bar.set_postfix_str(unit.key)
                    self._run_unit(run, unit, data)
                    bar.update(1)
                del data  # free this group's images before the next group's are read
        bar.close()
        self._assemble(run)
        manifest = run.read_manifest()
        manifest.update(
            status="complete",
            finished_at=_now(),
            timing={**self.timing, "wall_seconds": time.perf_counter() - t_start},
            image_cache={
                "enabled": self.config.image_cache,
                "path": str(arrays_dir()),
                **self.cache_stats,
            },
        )
        run.write_manifest(manifest)
        run.unlock()
        return run.path

    def _assemble(self, run: RunDir) -> None:
        """Gather unit files into the tidy tables; add macro averages as category ``mean``."""
        scores = run.read_units("scores.parquet")
        metrics = run.read_units("metrics.parquet")
        keys = ["model", "seed", "protocol", "severity", "metric"]
        if metrics["category"].nunique() > 1:
            mean = (
                metrics.groupby(keys, sort=False, dropna=False)["value"]
                .mean()
                .reset_index()
                .assign(category="mean")
            )
            metrics = pd.concat([metrics, mean[metrics.columns]], ignore_index=True)
        order = {p.name: i for i, p in enumerate(self.protocols)}
        metrics = metrics.sort_values(
            ["category", "model", "seed", "protocol", "severity", "metric"],
            key=lambda c: c.map(order) if c.name == "protocol" else c,
        ).reset_index(drop=True)
        atomic_write_table(run.path / "scores.parquet", scores)
        atomic_write_table(run.path / "metrics.parquet", metrics)
        atomic_write_table(run.path / "metrics.csv", metrics)
        params = sorted((run.path / "shift_params").glob("seed*/sev*/*.parquet"))
        if params:
            atomic_write_table(
                run.path / "shift_params.parquet",
                pd.concat([pd.read_parquet(p) for p in params], ignore_index=True),
            )
        self.metrics = metrics


def summary_table(metrics: pd.DataFrame, metric: str = "image_auroc") -> pd.DataFrame:
    """Category x model rows, one column per protocol (mean over seeds), plus deltas.

    In a severity sweep each shifted protocol gets one column per level
    (``shift-noadapt@5``) and no deltas."""
    sub = metrics[metrics["metric"] == metric].copy()
    levels = sorted(sub["severity"].dropna().unique()) if "severity" in sub else []
    protocols = [c for c in ("clean", "shift-noadapt", "shift-adapt") if c in set(sub["protocol"])]
    if len(levels) > 1:
        sev = sub["severity"]
        sub["protocol"] = sub["protocol"].where(
            sev.isna(), sub["protocol"] + "@" + sev.fillna(0).astype(int).astype(str)
        )
        protocols = [
            c
            for p in protocols
            for c in ([p] if p == "clean" else [f"{p}@{int(s)}" for s in levels])
        ]
    wide = sub.pivot_table(
        index=["category", "model"], columns="protocol", values="value", aggfunc="mean"
    )
    cols = [c for c in protocols if c in wide.columns]
    wide = wide[cols]
    if {"clean", "shift-noadapt"} <= set(cols):
        wide["d(noadapt-clean)"] = wide["shift-noadapt"] - wide["clean"]
    if {"shift-noadapt", "shift-adapt"} <= set(cols):
        wide["d(adapt-noadapt)"] = wide["shift-adapt"] - wide["shift-noadapt"]
    wide.columns.name = None
    rows = sorted(wide.index, key=lambda k: (k[0] == "mean", k))
    return wide.loc[rows]
