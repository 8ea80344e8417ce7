"""The images a study scores: decoded once per category and seed, shifted twins made once
per (suite, severity, seed) and streamed level by level.

With the image cache on (:mod:`shiftbench.data.cache`), a shifted domain is loaded on first
use and may be dropped when a unit is done with it (it is read back from the cache when a
later unit needs it), so a severity sweep holds its clean images plus one level. Without
the cache, twins are made once and kept for every unit of the group.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from shiftbench.data.cache import batch_key, cached, digest, entry_path, read_batch
from shiftbench.protocols.manifest import shift_code
from shiftbench.protocols.plan import CLEAN, EVAL_SPLITS, Domain
from shiftbench.protocols.target import domain_rows, source_rows
from shiftbench.results import shift_params_frame

#: above this many pixels per batch, shifting uses worker processes instead of threads
PARALLEL_SHIFT_PIXELS = 50_000_000


@dataclass
class SplitImages:
    """The images of one category and seed, in every domain its units use."""

    table: pd.DataFrame  # rows of this category (the source's images), with `split`
    images: dict[tuple[Domain, str], np.ndarray] = field(default_factory=dict)  # [N,H,W,3]
    masks: dict[tuple[Domain, str], np.ndarray] = field(default_factory=dict)  # [N,H,W]
    #: shifted domain -> fills its images and masks (set when twins are kept in the image
    #: cache: a domain can then be dropped after use and loaded again when needed)
    loaders: dict[Domain, Callable[[], None]] = field(default_factory=dict)
    #: a real target domain -> its own rows of this category (its images are not twins)
    tables: dict[Domain, pd.DataFrame] = field(default_factory=dict)
    _rows: dict[str, pd.DataFrame] = field(default_factory=dict)

    def pixels(self, domain: Domain, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Images ``[N,H,W,3]`` and masks ``[N,H,W]`` of one (domain, split)."""
        if (domain, split) not in self.images and domain in self.loaders:
            self.loaders[domain]()
        return self.images[domain, split], self.masks[domain, split]

    def drop(self, domain: Domain) -> None:
        """Free a shifted domain's arrays if it can be loaded again (from the cache)."""
        if domain in self.loaders:
            for key in [k for k in self.images if k[0] == domain]:
                del self.images[key], self.masks[key]

    def rows(self, split: str, domain: Domain = CLEAN) -> pd.DataFrame:
        """The sample rows of one split: the source's, or a real target's own."""
        if domain in self.tables:
            t = self.tables[domain]
            return t[t["split"] == split]
        if split not in self._rows:  # asked for once per protocol and unit: filter once
            self._rows[split] = self.table[self.table["split"] == split]
        return self._rows[split]

    def has_masks(self, domain: Domain = CLEAN) -> bool:
        """Whether the domain's images come with ground-truth masks."""
        return bool(self.tables.get(domain, self.table)["mask_path"].notna().any())


class ImageSource:
    """Reads a study's images and makes their shifted twins; ``shift_seconds`` and
    ``cache_stats`` (image-cache hits and misses) accumulate over the study.

    ``on_params(seed, severity, category, rows, shift=)`` receives the shift parameters of every
    batch of twins (:func:`shiftbench.results.shift_params_frame` rows): the driver writes
    them with :meth:`RunDir.write_shift_params`, a worker sends them back to it."""

    def __init__(
        self,
        config,
        splits: pd.DataFrame,
        suites: dict,
        on_params: Callable[..., object],
        progress: bool,
    ):
        self.config = config
        self.splits = splits
        self.suites = suites  # (severity, shift or None) -> Suite
        self.on_params = on_params
        self.progress = progress
        self.shift_seconds = 0.0
        self.cache_stats = {"hits": 0, "misses": 0}

    def load_category(
        self, category: str, seed: int, needs: set[tuple[Domain, str]]
    ) -> SplitImages:
        """Clean images of one category and seed, plus the shifted twins of the splits that
        ``needs`` names: a ``shift-noadapt`` study shifts its test images only, never
        training images no model will see. Twins are made now, or, with the image cache
        on, when first used (:meth:`SplitImages.pixels`)."""
        cfg, stats = self.config, self.cache_stats
        size, cache, crop = cfg.image_size, cfg.image_cache, cfg.crop
        table = self.splits[(self.splits["seed"] == seed) & (self.splits["category"] == category)]
        table = source_rows(table)
        table = (
            table[table["split"].isin(["train", *EVAL_SPLITS])]
            .sort_values("sample_id")
            .reset_index(drop=True)
        )
        data = SplitImages(table)
        images = read_batch(
            table["image_path"], size, kind="image", cache=cache, stats=stats, crop=crop
        )
        masks = read_batch(
            table["mask_path"], size, kind="mask", cache=cache, stats=stats, crop=crop
        )
        split_of = table["split"].to_numpy()
        for split in ("train", *EVAL_SPLITS):
            idx = np.flatnonzero(split_of == split)
            data.images[CLEAN, split], data.masks[CLEAN, split] = images[idx], masks[idx]
        for domain in sorted({d for d, _ in needs if d.is_target}, key=lambda d: d.sort_key):
            self._load_target(category, seed, data, domain, {sp for d, sp in needs if d == domain})
        for domain in sorted({d for d, _ in needs} - {CLEAN}, key=lambda d: d.sort_key):
            if domain.is_target:
                continue
            splits = sorted({sp for d, sp in needs if d == domain})
            load = functools.partial(self._load_twins, category, seed, data, domain, splits)
            if cache:
                data.loaders[domain] = load  # on first use; dropped and reloaded level by level
            else:
                load()  # no cache to reload from: made once, kept for every unit
        return data

    def _load_target(
        self, category: str, seed: int, data: SplitImages, domain: Domain, splits: set[str]
    ) -> None:
        """Read a real target's own images of ``splits`` (its split table, not twins)."""
        cfg = self.config
        table = self.splits[(self.splits["seed"] == seed) & (self.splits["category"] == category)]
        table = domain_rows(table, domain.shift)
        table = (
            table[table["split"].isin(["train", *EVAL_SPLITS])]
            .sort_values("sample_id")
            .reset_index(drop=True)
        )
        data.tables[domain] = table
        for split in sorted(splits):
            rows = table[table["split"] == split]
            kw = dict(cache=cfg.image_cache, stats=self.cache_stats, crop=cfg.crop)
            data.images[domain, split] = read_batch(
                rows["image_path"], cfg.image_size, kind="image", **kw
            )
            data.masks[domain, split] = read_batch(
                rows["mask_path"], cfg.image_size, kind="mask", **kw
            )

    def _load_twins(
        self, category: str, seed: int, data: SplitImages, domain: Domain, splits: list
    ) -> None:
        """Shift the clean images of ``splits`` into ``domain``."""
        split_of = data.table["split"].to_numpy()
        rows = np.flatnonzero(np.isin(split_of, splits))  # table order, as the cache keys it
        first = data.images[CLEAN, splits[0]]
        images = np.empty((len(rows), *first.shape[1:]), first.dtype)
        masks = np.empty((len(rows), *data.masks[CLEAN, splits[0]].shape[1:]), np.uint8)
        for split in splits:
            at = np.searchsorted(rows, np.flatnonzero(split_of == split))
            images[at], masks[at] = data.images[CLEAN, split], data.masks[CLEAN, split]
        im, ma, kept = self._shifted(category, seed, domain, data.table.iloc[rows], images, masks)
        if not kept:  # the cache could not keep them (unwritable, full): keep them in memory
            data.loaders.pop(domain, None)
        for split in splits:
            idx = np.flatnonzero(split_of[rows] == split)
            data.images[domain, split], data.masks[domain, split] = im[idx], ma[idx]

    def _shift_native(self, category, domain, seed, table, ids) -> dict[str, np.ndarray]:
        """Shift at the camera's resolution (``shift_at: native``): decode each image and
        mask at full size, shift them there, then resize (and crop) them exactly as the
        readers do. Sensor noise, blur and lighting then act before the resize, as on a
        real line, and a warp is resampled once at full resolution."""
        from shiftbench.data.io import read_image, read_mask, resize_like_reader

        images = [read_image(p) for p in table["image_path"]]
        masks = [
            read_mask(m, shape=im.shape[:2])
            for m, im in zip(table["mask_path"], images, strict=True)
        ]
        twins = self._shift(category, domain, seed, ids, images, masks)
        size, crop = self.config.image_size, self.config.crop
        twins["images"] = np.stack(
            [resize_like_reader(x, size, crop=crop) for x in twins["images"]]
        )
        twins["masks"] = np.stack(
            [resize_like_reader(x, size, kind="mask", crop=crop) for x in twins["masks"]]
        )
        return twins

    def _shift(self, category, domain, seed, ids, images, masks) -> dict[str, np.ndarray]:
        """Shift a batch now: threads for small batches (starting worker processes costs
        seconds, each imports albumentations and torch), processes above ~50 Mpx."""
        from shiftbench._progress import bar
        from shiftbench.transforms.twins import shift_batch

        big = sum(x[..., 0].size for x in images) > PARALLEL_SHIFT_PIXELS
        desc = f"shifting {category} ({domain})"
        with bar(len(ids), desc, "img", leave=False, disable=not self.progress) as progress:
            out_images, out_masks, params = shift_batch(
                self.suites[domain.severity, domain.shift],
                images,
                masks,
                list(ids),
                seed,
                workers=self.config.workers if big else 1,
                threads=1 if big else self.config.workers,
                progress=progress.update,
            )
        return {
            "images": out_images,
            "masks": out_masks,
            "params": np.array([json.dumps(p, sort_keys=True) for p in params]),
        }

    def _shifted(self, category, seed, domain: Domain, table: pd.DataFrame, images, masks):
        """Shifted twins of one category's images, made once per (suite, severity, seed)
        and shared by every model. With the image cache on they are kept there too, so a
        resumed run or a later study on the same images reads them back (byte-identical:
        shifting is deterministic); their parameters are written to the run. Returns the
        twins and whether the cache holds them."""
        ids = table["sample_id"].to_numpy().astype(str)
        severity = domain.severity
        suite = self.suites[severity, domain.shift]
        native = self.config.shift_resolution == "native"
        t0 = time.perf_counter()
        key = None
        if self.config.image_cache:
            size, crop = self.config.image_size, self.config.crop
            inputs = [
                batch_key(table["image_path"], size, "image", crop=crop),
                batch_key(table["mask_path"], size, "mask", crop=crop),
            ]
            if None not in inputs:
                parts = ["twins", shift_code(suite), suite.hash, seed, inputs, list(ids)]
                key = digest(parts if not native else [*parts, "native"])
        # a member alone draws the same twins from any suite file: its entry is named by the
        # perturbation, not the suite, so two studies (or suite files) share it
        label = suite.members[0].perturbation.name if suite.standalone else suite.name
        name = f"twins-{label}-sev{severity}-seed{seed}" + ("-native" if native else "")
        if native:
            compute = functools.partial(self._shift_native, category, domain, seed, table, ids)
        else:
            compute = functools.partial(self._shift, category, domain, seed, ids, images, masks)
        twins = cached(name, key, compute, self.cache_stats)
        kept = key is not None and entry_path(name, key).is_file()
        self.shift_seconds += time.perf_counter() - t0
        rows = shift_params_frame(
            seed,
            category,
            ids,
            table["split"].to_numpy(),
            suite.name,
            suite.hash,
            severity,
            twins["params"],
        )
        self.on_params(seed, severity, category, rows, shift=domain.shift)
        return twins["images"], twins["masks"], kept
