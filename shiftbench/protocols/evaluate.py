"""One unit of a study, from fit to result rows, and the pure evaluation of one condition.

:func:`calibrate` picks a validation domain's image and pixel thresholds (validation data
only); :func:`condition_metrics` turns test scores, maps and masks plus those frozen
thresholds into the metric values of one condition. Both are pure functions of arrays.
:func:`run_unit` fits one model and evaluates every condition it serves; it returns its
tables and leaves writing to the caller (the driver owns the run directory).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from shiftbench.protocols.images import SplitImages
from shiftbench.protocols.plan import Condition, Domain, Unit, severity_value
from shiftbench.results import schema
from shiftbench.results.models import map_range as fixed_scale


def build_model(config, name: str, seed: int, device: str):
    """A new, unfitted model ``name`` with the study's settings, on ``device`` (resolved
    by the caller): the serial runner and every worker build models here."""
    from shiftbench.models import create_model
    from shiftbench.models.registry import model_class

    kwargs = dict(
        weights=config.weights,
        image_size=config.input_size,
        seed=seed,
        **config.model_options.get(name, {}),
    )
    cls = model_class(name)
    # a study-wide backbone applies to the models that have one (not the autoencoder)
    if config.backbone is not None and getattr(cls, "default_backbone", None):
        kwargs["backbone"] = config.backbone
    # the study's device, for the models that take one; a per-model device option wins
    if "device" in getattr(cls, "_param_names", list)():
        kwargs.setdefault("device", device)
    return create_model(name, **kwargs)


@dataclass(frozen=True)
class Thresholds:
    """A validation domain's frozen operating points."""

    image: float
    pixel: float  # NaN without ground-truth masks
    has_pixels: bool
    #: the fixed colour scale of the maps (percentiles of validation maps; saved models)
    map_range: tuple[float, float] | None = None


def calibrate(labels, val_scores, val_maps, val_masks, has_masks: bool, *, map_range=False):
    """F1-optimal image and pixel thresholds from validation scores, maps and masks."""
    from shiftbench.metrics import f1_optimal_threshold, pixel_f1_optimal_threshold

    image, _ = f1_optimal_threshold(labels, val_scores)
    has_pixels = bool((val_masks > 0).any()) and has_masks
    pixel = pixel_f1_optimal_threshold(val_maps, val_masks)[0] if has_pixels else np.nan
    scale = tuple(fixed_scale(val_maps)) if map_range else None
    return Thresholds(image, pixel, has_pixels, scale)


def condition_metrics(labels, test_scores, test_maps, test_masks, thr: Thresholds) -> dict:
    """Metric values of one condition: image metrics at the frozen image threshold, and
    pixel metrics when validation and test images both have masks."""
    from shiftbench.metrics import (
        aupro,
        f1_max,
        image_auprc,
        image_auroc,
        pixel_auroc,
        pixel_f1,
        threshold_metrics,
    )

    tm = threshold_metrics(labels, test_scores, thr.image)
    values = {
        "image_auroc": image_auroc(labels, test_scores),
        "image_auprc": image_auprc(labels, test_scores),
        "image_f1": tm["f1"],
        "image_precision": tm["precision"],
        "image_recall": tm["recall"],
        "image_accuracy": tm["accuracy"],
        "image_f1_max_oracle": f1_max(labels, test_scores),
        "image_threshold": thr.image,
        "pixel_threshold": thr.pixel,
    }
    if thr.has_pixels and (test_masks > 0).any():
        values["pixel_auroc"] = pixel_auroc(test_maps, test_masks)
        values["pixel_aupro"] = aupro(test_maps, test_masks)
        values["pixel_f1"] = pixel_f1(test_maps, test_masks, thr.pixel)
    return values


def _per_shift(unit: Unit) -> bool:
    """Whether the unit belongs to a per-shift study (its tables get a shift column)."""
    return any(c.shift is not None for c in unit.conditions) or unit.fit_domain.shift is not None


def _adapt_columns(unit: Unit, c: Condition) -> dict:
    """The ``adaptation`` and ``k`` columns of a study that names strategies (else none):
    ``none`` and 0 for ``clean`` and ``shift-noadapt`` rows."""
    if not unit.adapt_columns:
        return {}
    return {schema.ADAPTATION_COLUMN: c.adaptation or "none", schema.K_COLUMN: int(c.k)}


def score_rows(category, unit: Unit, c: Condition, split, rows, scores, thr: Thresholds):
    """The ``scores`` rows of one split under one condition."""
    shift = {schema.SHIFT_COLUMN: c.shift} if _per_shift(unit) else {}
    adapt = _adapt_columns(unit, c)
    return pd.DataFrame(
        {
            "category": category,
            "model": unit.model,
            "seed": unit.seed,
            "protocol": c.protocol.name,
            "severity": severity_value(c.severity),
            **shift,
            **adapt,
            "split": split,
            "sample_id": rows["sample_id"].to_numpy(),
            "label": rows["label"].to_numpy(),
            "defect_type": rows["defect_type"].to_numpy(),
            "score": scores,
            "threshold": thr.image,
            "decision": (scores >= thr.image).astype(np.int8),
            "pixel_threshold": thr.pixel,
        }
    )


@dataclass
class UnitResult:
    """What one unit produced: its two tables and its timings (and, in a study that names
    adaptation strategies, the table of the target images they read)."""

    scores: pd.DataFrame
    metrics: pd.DataFrame
    fit_seconds: float
    score_seconds: float
    targets: pd.DataFrame | None = None


class _Scorer:
    """Scores each (domain, split) of one category once, keeping anomaly maps only until
    the unit is done with them (in a sweep, one level's maps at a time)."""

    def __init__(self, score: Callable, data: SplitImages, map_range: bool):
        self.score, self.data, self.map_range = score, data, map_range
        self.scores: dict[tuple[Domain, str], np.ndarray] = {}
        self.maps: dict[tuple[Domain, str], np.ndarray] = {}
        self.thresholds: dict[Domain, Thresholds] = {}

    def scored(self, domain: Domain, split: str) -> np.ndarray:
        if (domain, split) not in self.scores:
            images = self.data.pixels(domain, split)[0]
            self.scores[domain, split], self.maps[domain, split] = self.score(images)
        return self.scores[domain, split]

    def calibrated(self, domain: Domain) -> Thresholds:
        # calibrated once even when several protocols (or every level of a sweep) share it
        if domain not in self.thresholds:
            val_scores = self.scored(domain, "val")
            val_maps = self.maps.pop((domain, "val"))  # needed for this only
            d = self.data
            self.thresholds[domain] = calibrate(
                d.rows("val", domain)["label"].to_numpy(),
                val_scores,
                val_maps,
                d.pixels(domain, "val")[1],
                d.has_masks(domain),
                map_range=self.map_range,
            )
        return self.thresholds[domain]


def run_unit(
    unit: Unit,
    model,
    data: dict[str, SplitImages],
    *,
    on_maps: Callable | None = None,
    on_fitted: Callable | None = None,
    on_adapted: Callable | None = None,
) -> UnitResult:
    """Fit ``model`` on the unit's training images and evaluate every condition it serves.

    ``on_maps(category, condition, sample_ids, maps)`` receives each condition's test maps
    (to save them); ``on_fitted(model, thresholds)`` receives the fitted model and each
    category's thresholds in the fit domain (to save the model); ``on_adapted(condition,
    model, thresholds)`` each adapted model (:mod:`~shiftbench.protocols.adapting`)."""
    from shiftbench.models.efficiency import model_size_mb, track

    train = np.concatenate([data[c].pixels(unit.fit_domain, "train")[0] for c in unit.categories])
    with track() as fit_track:
        model.fit(train)
    timing = {"n": 0, "seconds": 0.0, "peak": fit_track.peak_memory_mb}

    def timed(fn, n: int):
        with track() as t:
            out = fn()
        timing["n"] += n
        timing["seconds"] += t.seconds
        timing["peak"] = max(timing["peak"], t.peak_memory_mb)
        return out

    def score(images):
        s, m = timed(lambda: model.score(images), len(images))
        return np.asarray(s, np.float64), np.asarray(m, np.float32)

    adapted = [c for c in unit.conditions if c.adapted]
    base = _without(unit, adapted)
    score_parts, metric_rows, fitted, pending, targets = [], [], {}, [], None
    if adapted:  # domain by domain: its shift-noadapt, then its adaptations
        from shiftbench.protocols.adapting import evaluate_adapted_unit

        scorers, pending, targets = evaluate_adapted_unit(
            unit,
            base,
            adapted,
            model,
            timed,
            data,
            on_fitted is not None,
            score_parts,
            metric_rows,
            on_maps,
            on_adapted,
        )
        if on_fitted is not None:
            fitted = {cat: scorers[cat].calibrated(unit.fit_domain) for cat in unit.categories}
    for cat in unit.categories if not adapted else ():
        scorer = _Scorer(score, data[cat], map_range=on_fitted is not None)
        _evaluate_category(cat, base, scorer, score_parts, metric_rows, on_maps)
        if on_fitted is not None:
            fitted[cat] = scorer.calibrated(unit.fit_domain)
    if on_fitted is not None:
        on_fitted(model, fitted)
    ms = 1000.0 * timing["seconds"] / max(timing["n"], 1)
    efficiency = {
        "fit_seconds": fit_track.seconds,
        "ms_per_image": ms,
        "images_per_second": 1000.0 / ms if ms > 0 else np.nan,
        "n_parameters": float(getattr(model, "n_parameters", np.nan)),
        "model_size_mb": model_size_mb(model),
        "peak_memory_mb": timing["peak"],
    }
    for cat in unit.categories:
        for c in base.conditions:
            values = efficiency
            if c.adaptation == "refit":  # the refit is the adaptation: its cost
                values = {**efficiency, **refit_costs(unit, data, cat, fit_track.seconds)}
            metric_rows += _metric_rows(cat, unit, c, values)
    for cat, c, values, costs in pending:  # the adapted conditions
        metric_rows += _metric_rows(cat, unit, c, {**values, **efficiency, **costs})
    columns = list(schema.METRIC_COLUMNS)
    if _per_shift(unit):
        columns.insert(columns.index("severity") + 1, schema.SHIFT_COLUMN)
    if unit.adapt_columns:
        at = columns.index("metric")
        columns[at:at] = [schema.ADAPTATION_COLUMN, schema.K_COLUMN]
    metrics = pd.DataFrame(metric_rows, columns=columns)
    return UnitResult(
        pd.concat(score_parts, ignore_index=True),
        metrics,
        fit_track.seconds,
        timing["seconds"],
        targets,
    )


def _without(unit: Unit, adapted: list[Condition]) -> Unit:
    """``unit`` with only the conditions its own fit evaluates (not the adapted ones)."""
    if not adapted:
        return unit
    from dataclasses import replace

    return replace(unit, conditions=tuple(c for c in unit.conditions if not c.adapted))


def refit_costs(unit: Unit, data, category: str, fit_seconds: float) -> dict:
    """The adaptation metrics of ``refit``: its fit, the whole Train-shift, nothing reused."""
    n = len(data[category].rows("train", unit.fit_domain))
    return {"adapt_seconds": fit_seconds, "target_images": n, "forward_passes_saved": 0}


def _metric_rows(category, unit: Unit, c: Condition, values: dict) -> list[tuple]:
    head = (category, unit.model, unit.seed, c.protocol.name, severity_value(c.severity))
    if _per_shift(unit):
        head = (*head, c.shift)
    head = (*head, *_adapt_columns(unit, c).values())
    return [(*head, k, float(v)) for k, v in values.items()]


def _evaluate_category(
    cat, unit: Unit, scorer: _Scorer, score_parts, metric_rows, on_maps, conditions=None
):
    """Every condition of ``unit`` (or the given subset ``conditions`` of them) on one
    category's images, in order; a domain's maps and twins are freed as soon as no later
    condition uses them. The rows' columns follow the whole unit (a per-shift unit's rows
    all have a ``shift``, whichever subset is evaluated)."""
    d = scorer.data
    conditions = unit.conditions if conditions is None else tuple(conditions)
    for i, c in enumerate(conditions):
        thr_domain, eval_domain = c.threshold_domain, c.eval_domain
        # a real target's rows are its own images; a twin has its clean image's row
        val_rows, test_rows = d.rows("val", thr_domain), d.rows("test", eval_domain)
        thr = scorer.calibrated(thr_domain)
        val_scores = scorer.scored(thr_domain, "val")
        test_scores = scorer.scored(eval_domain, "test")
        test_maps = scorer.maps[eval_domain, "test"]
        score_parts.append(score_rows(cat, unit, c, "val", val_rows, val_scores, thr))
        score_parts.append(score_rows(cat, unit, c, "test", test_rows, test_scores, thr))
        labels = test_rows["label"].to_numpy()
        test_masks = d.pixels(eval_domain, "test")[1]
        values = condition_metrics(labels, test_scores, test_maps, test_masks, thr)
        metric_rows += _metric_rows(cat, unit, c, values)
        if on_maps is not None:
            on_maps(cat, c, test_rows["sample_id"].to_numpy(), test_maps)
        del test_maps
        later = [(c_.threshold_domain, c_.eval_domain) for c_ in conditions[i + 1 :]]
        if eval_domain not in {e for _, e in later}:  # no later condition evaluates on it
            del scorer.maps[eval_domain, "test"]
        for domain in {thr_domain, eval_domain} - {x for pair in later for x in pair}:
            if not domain.is_clean:
                d.drop(domain)  # done with it (reloaded from the cache if needed)
