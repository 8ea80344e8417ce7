"""The adapted conditions of a unit: one clean fit, adapted per (strategy, k, shift domain).

A study that names adaptation strategies (``--adapt``) evaluates every strategy but
``refit`` inside the clean fit's unit (:func:`~shiftbench.protocols.plan.plan_units`): the
fitted model is adapted — a new model each time, the clean one never changes — and scored
on the shifted test images. Strategies that leave the backbone alone score the features
the clean model already computed for ``shift-noadapt`` (:mod:`shiftbench.models.features`):
no second forward pass, counted as ``forward_passes_saved``.

Target images: the k verified-normal images of a ``normal-k`` strategy are the shifted
twins of k Train-clean images (Train-shift), drawn per (seed, category) as the first k of
one seeded permutation (so k = 1, 4, 16 are nested and every strategy and shift domain gets
the same parts: paired comparisons); never validation or test images. They are listed in
``adaptation_targets.parquet``. Thresholds follow the strategy's
:data:`~shiftbench.adaptation.base.THRESHOLD_RULES` entry: no strategy but ``refit`` reads
a shifted validation image.
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

from shiftbench.errors import ShiftbenchError
from shiftbench.protocols.evaluate import (
    Thresholds,
    _Scorer,
    calibrate,
    condition_metrics,
    score_rows,
)
from shiftbench.protocols.plan import CLEAN, Condition, Unit, severity_value
from shiftbench.results import schema
from shiftbench.results.models import map_range as fixed_scale


def draw_targets(train_ids, seed: int, category: str, k: int) -> np.ndarray:
    """Positions (into the category's training rows, sorted by ``sample_id``) of the k
    target normals: the first k of a permutation seeded by (seed, category)."""
    n = len(train_ids)
    if k > n:
        raise ShiftbenchError(
            f"adapt_k {k}: larger than the {n} training images of {category} (seed {seed}); "
            "give smaller budgets"
        )
    rng = np.random.default_rng([seed, zlib.crc32(category.encode())])
    return np.sort(rng.permutation(n)[:k])


class FeatureScorer(_Scorer):
    """A :class:`_Scorer` that scores through the model's features and keeps them (and
    the shifted test maps), so adapted models that keep the backbone score them again."""

    def __init__(self, model, timed, data, map_range: bool, use_features: bool):
        super().__init__(None, data, map_range)
        self.model, self.timed, self.use_features = model, timed, use_features
        self.features: dict = {}
        self.kept: dict = {}  # (domain, "test") -> (scores, maps) of the clean model

    def scored(self, domain, split):
        if (domain, split) not in self.scores:
            from shiftbench.models.features import features, score_features

            images = self.data.pixels(domain, split)[0]
            if self.use_features:

                def run():
                    feats = features(self.model, images)
                    return feats, score_features(self.model, feats)

                feats, (s, m) = self.timed(run, len(images))
                self.features[domain, split] = feats
            else:
                s, m = self.timed(lambda: self.model.score(images), len(images))
            s, m = np.asarray(s, np.float64), np.asarray(m, np.float32)
            self.scores[domain, split], self.maps[domain, split] = s, m
            if split == "test" and not domain.is_clean:
                self.kept[domain, split] = (s, m)
        return self.scores[domain, split]

    def clean_features(self, split: str):
        self.scored(CLEAN, split)
        return self.features[CLEAN, split]


def make_scorer(unit: Unit, model, score, timed, data, map_range: bool) -> FeatureScorer:
    from shiftbench.models.features import has_features

    return FeatureScorer(model, timed, data, map_range, has_features(model))


def _normal_features(scorers: dict, categories) -> object:
    """The clean model's features of the clean normal validation images (all categories)."""
    import torch

    from shiftbench.models.features import Features

    parts, size = [], None
    for cat in categories:
        sc = scorers[cat]
        feats = sc.clean_features("val")
        normal = np.flatnonzero(sc.data.rows("val")["label"].to_numpy() == 0)
        parts.append(feats.flat()[torch.as_tensor(normal)])
        size = feats.size
    return Features([torch.cat(parts)], size)


def _target(c: Condition, strategy, unit: Unit, data) -> tuple[dict, object]:
    """Per category, the positions of the target images in their split, and what the
    strategy may read (:class:`~shiftbench.adaptation.AdaptTarget`)."""
    from shiftbench.adaptation import AdaptTarget

    domain = c.eval_domain
    if strategy.target_data == "normal-k":
        split = "train"
        picked = {
            cat: draw_targets(data[cat].rows("train", domain)["sample_id"], unit.seed, cat, c.k)
            for cat in unit.categories
        }
    elif strategy.target_data == "unlabelled-test":
        split = "test"
        picked = {cat: np.arange(len(data[cat].rows("test", domain))) for cat in unit.categories}
    else:
        raise ShiftbenchError(
            f"adapt {c.adaptation}: target data {strategy.target_data!r} cannot adapt a "
            "clean fit; use normal-k or unlabelled-test"
        )
    cats = unit.categories
    images = np.concatenate([data[cat].pixels(domain, split)[0][picked[cat]] for cat in cats])
    ids = np.concatenate(
        [data[cat].rows(split, domain)["sample_id"].to_numpy()[picked[cat]] for cat in cats]
    )
    source = None
    if c.adaptation == "refit-k":
        source = np.concatenate([data[cat].pixels(CLEAN, "train")[0] for cat in cats])
    target = AdaptTarget(images, tuple(ids), source_images=source, info={"split": split})
    return picked, target


def evaluate_adapted_unit(
    unit,
    base,
    adapted,
    model,
    timed,
    data,
    map_range,
    score_parts,
    metric_rows,
    on_maps,
    on_adapted,
):
    """The conditions of a clean unit with adapted conditions, one evaluation domain at a
    time: the fit's own conditions there (``clean``, ``shift-noadapt``), then the adapted
    ones, then the domain's features, maps and twins are freed (a per-shift sweep holds one
    domain's at a time). Returns the scorers (one per category), the adapted conditions'
    ``(category, condition, metric values, costs)`` (their rows are completed with the
    unit's efficiency figures by the caller) and the target table."""

    from shiftbench.protocols.evaluate import _evaluate_category

    cats = unit.categories
    scorers = {c: make_scorer(unit, model, None, timed, data[c], map_range) for c in cats}
    pending, targets = [], []
    order = [c.eval_domain for c in (*base.conditions, *adapted)]
    for domain in dict.fromkeys(order):
        own = [c for c in base.conditions if c.eval_domain == domain]
        for cat in cats:  # rows shaped by the whole unit (its shift column), not the subset
            _evaluate_category(cat, base, scorers[cat], score_parts, metric_rows, on_maps, own)
        these = [c for c in adapted if c.eval_domain == domain]
        if these:
            targets.append(
                evaluate_adaptations(
                    unit, these, model, data, scorers, score_parts, pending, on_maps, on_adapted
                )
            )
        if not domain.is_clean:
            for cat in cats:
                sc = scorers[cat]
                for store in (sc.features, sc.kept, sc.scores, sc.maps):
                    store.pop((domain, "test"), None)
                data[cat].drop(domain)
    return scorers, pending, (pd.concat(targets, ignore_index=True) if targets else None)


def evaluate_adaptations(
    unit: Unit, conditions, model, data, scorers, score_parts, pending, on_maps, on_adapted
):
    """Score rows and the target table of the adapted ``conditions`` (their metric values
    and costs are appended to ``pending``)."""
    from shiftbench.adaptation import get_adaptation
    from shiftbench.models.efficiency import track

    targets = []
    cache: dict = {}

    def source_features():
        if "f" not in cache:  # the same clean normals for every strategy and k
            cache["f"] = _normal_features(scorers, unit.categories)
        return cache["f"]

    for c in conditions:
        strategy = get_adaptation(c.adaptation)
        picked, target = _target(c, strategy, unit, data)
        target.source_features = source_features
        with track() as t:
            adapted = strategy.adapt(model, target)
        split = target.info["split"]
        thresholds = {}
        for cat in unit.categories:
            d = data[cat]
            targets.append(
                pd.DataFrame(
                    {
                        "adaptation": c.adaptation,
                        "k": int(c.k),
                        "seed": unit.seed,
                        "category": cat,
                        "severity": severity_value(c.severity),
                        "shift": c.shift,
                        "sample_id": d.rows(split, c.eval_domain)["sample_id"].to_numpy()[
                            picked[cat]
                        ],
                    },
                    columns=list(schema.ADAPT_TARGET_COLUMNS),
                )
            )
            costs = {"adapt_seconds": t.seconds, "target_images": len(picked[cat])}
            normals = d.pixels(c.eval_domain, "train")[0][picked[cat]] if split == "train" else None
            thresholds[cat] = _evaluate_adapted(
                cat,
                unit,
                c,
                strategy,
                adapted,
                scorers[cat],
                normals,
                score_parts,
                pending,
                on_maps,
                costs,
            )
        if on_adapted is not None:
            on_adapted(c, adapted, thresholds)
    return pd.concat(targets, ignore_index=True)


def _evaluate_adapted(
    cat, unit, c, strategy, adapted, sc, normals, score_parts, pending, on_maps, costs
) -> Thresholds:
    """Score one category's shifted test images with the adapted model, set its
    thresholds as the strategy's rule says, and append its rows; returns the thresholds."""
    from shiftbench.models.features import score_features

    d, domain, saved = sc.data, c.eval_domain, 0
    # the clean validation images; the test images of the domain (a real target's own)
    val_rows, test_rows = d.rows("val"), d.rows("test", domain)

    def score(domain_, split):
        """The adapted model's scores and maps: reused, from features, or a forward pass."""
        nonlocal saved
        n = len(d.rows(split, domain_))
        if adapted is sc.model and (domain_, split) in sc.kept:
            saved += n
            return sc.kept[domain_, split]
        if not strategy.changes_backbone and sc.use_features:
            sc.scored(domain_, split)  # features of the clean model (computed once)
            saved += n
            s, m = score_features(adapted, sc.features[domain_, split])
        else:
            s, m = sc.timed(lambda: adapted.score(d.pixels(domain_, split)[0]), n)
        return np.asarray(s, np.float64), np.asarray(m, np.float32)

    val_scores = None
    if strategy.threshold == "val-clean":
        val_scores, val_maps = score(CLEAN, "val")
        thr = calibrate(
            val_rows["label"].to_numpy(),
            val_scores,
            val_maps,
            d.pixels(CLEAN, "val")[1],
            d.has_masks(CLEAN),
            map_range=sc.map_range,
        )
        del val_maps
    elif strategy.threshold == "val-clean-source":
        thr = sc.calibrated(CLEAN)
        val_scores = sc.scored(CLEAN, "val")
        saved += len(val_rows)
    elif strategy.threshold == "normal-k":
        s, m = adapted.score(normals)
        image, pixel = strategy.pick_threshold(np.asarray(s, np.float64), np.asarray(m))
        scale = tuple(fixed_scale(np.asarray(m, np.float32))) if sc.map_range else None
        has_masks = d.has_masks(domain)
        thr = Thresholds(image, pixel if has_masks else np.nan, has_masks, scale)
    else:
        raise ShiftbenchError(
            f"adapt {c.adaptation}: threshold rule {strategy.threshold!r} cannot set an adapted "
            "clean fit's threshold; use val-clean, val-clean-source or normal-k"
        )
    test_scores, test_maps = score(domain, "test")
    if val_scores is not None:
        score_parts.append(score_rows(cat, unit, c, "val", val_rows, val_scores, thr))
    score_parts.append(score_rows(cat, unit, c, "test", test_rows, test_scores, thr))
    labels = test_rows["label"].to_numpy()
    metrics = condition_metrics(labels, test_scores, test_maps, d.pixels(domain, "test")[1], thr)
    pending.append((cat, c, metrics, {**costs, "forward_passes_saved": saved}))
    if on_maps is not None:
        on_maps(cat, c, test_rows["sample_id"].to_numpy(), test_maps)
    return thr
