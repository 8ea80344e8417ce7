"""The study runner: splits -> shifted twins -> fit/score -> thresholds -> metrics.

It ties the parts together: :mod:`~shiftbench.protocols.plan` (which fits, which
conditions), :mod:`~shiftbench.protocols.images` (decoding, twins, streaming),
:mod:`~shiftbench.protocols.evaluate` (one unit: fit, score, thresholds, metric rows) and
:mod:`~shiftbench.protocols.manifest`; the run directory is written only through
:class:`shiftbench.results.RunDir`. Each finished unit is written atomically, so an
interrupted study resumes with only the missing units. Thresholds come from the
protocol's validation split only and are then frozen; test scores never touch them.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from shiftbench.data import load_dataset, make_splits
from shiftbench.data.cache import arrays_dir, budget_gb
from shiftbench.errors import ShiftbenchError
from shiftbench.protocols import manifest as mf
from shiftbench.protocols.config import StudyConfig, config_differences
from shiftbench.protocols.evaluate import build_model, run_unit
from shiftbench.protocols.images import ImageSource
from shiftbench.protocols.plan import Unit, plan_units, touches_shift, with_clean_reference
from shiftbench.protocols.reuse import has_model, models_only
from shiftbench.protocols.target import check_adapt, load_target, manifest_record, with_targets
from shiftbench.results import RunDir, schema
from shiftbench.results.models import save_fitted, saved_model_sizes


@dataclass(frozen=True)
class StudyResult:
    """What a finished study leaves: its run folder and its assembled metrics table."""

    path: Path
    metrics: pd.DataFrame


class StudyRunner:
    """Runs one study into one run directory. ``echo`` receives human-readable lines.

    Everything that can fail on bad input (dataset, splits, suites, model names and
    weights) is checked here, before any work; :meth:`run` then does the work."""

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
        #: the run folder, once :meth:`run` has opened it (an interrupted run's, too)
        self.path: Path | None = None
        #: the config models are built from: ``config`` with the options whose defaults
        #: changed pinned as the run records them (set when the run folder is opened)
        self.build_config = config
        if config.image_cache:
            budget_gb()  # a bad $SHIFTBENCH_CACHE_GB fails now, not after the first fit
        self.samples = load_dataset(
            config.dataset, config.root, config.categories, **config.dataset_options
        )
        self.categories = sorted(self.samples["category"].unique())
        #: (severity, shift) -> Suite; shift names a member alone in a per-shift study
        self.suites: dict = {}
        self.shifts: list[str] | None = None
        #: a real target domain (--target-root), or None
        self.target = load_target(config, self.categories)
        if self.target is not None:
            check_adapt(self.target, self.protocols)
        if any(touches_shift(p) for p in self.protocols):
            self._load_suites()
        self.splits = pd.concat(
            [
                make_splits(self.samples, seed, **config.split_options).assign(seed=seed)
                for seed in config.seeds
            ],
            ignore_index=True,
        )
        self.splits = with_targets(self.splits, self.target, config.seeds, config)
        targets = [self.target.shift] if self.target is not None else None
        self.units = plan_units(config, self.categories, self.shifts, targets)
        from shiftbench.models.device import resolve_device

        # resolved once: a missing GPU fails here, before any work
        self.device = str(resolve_device(config.device))
        for name in config.models:  # unknown names and unloadable weights fail now
            model = self._model(name, config.seeds[0])
            if config.adapt is not None:
                from shiftbench.protocols.adapt_config import check_adapt_study

                check_adapt_study(config, name, model, self.splits)

    def _load_suites(self) -> None:
        """The synthetic conditions, ``(severity, shift) -> Suite``: one member alone per
        shift in a per-shift study; else the whole suite, as shift None, or beside a real
        target (where every condition is named in the ``shift`` column) named after itself.
        ``--suite none`` with a target: no synthetic condition, the target alone."""
        from shiftbench.protocols.config import NO_SUITE
        from shiftbench.transforms import load_suite

        cfg = self.config
        if self.target is not None and cfg.suite == NO_SUITE:
            self.shifts = []
            return
        whole = {s: load_suite(cfg.suite, s) for s in cfg.severities}
        first = whole[cfg.severities[0]]
        if cfg.each if cfg.each is not None else first.each:
            self.shifts = [m.key for m in first.members]
            self.suites = {(s, k): st.alone(k) for s, st in whole.items() for k in self.shifts}
        elif self.target is not None:
            self.shifts = [first.name]
            self.suites = {(s, first.name): st for s, st in whole.items()}
        else:
            self.suites = {(s, None): st for s, st in whole.items()}

    def _model(self, name: str, seed: int):
        """A new, unfitted model of the study's settings on the study's device."""
        return build_model(self.build_config, name, seed, self.device)

    def describe(self) -> str:
        """The grid of fits, one line per unit with the conditions it serves."""
        n_groups = len({u.group for u in self.units})
        n_domains = len({u.fit_domain for u in self.units})
        lines = [
            f"{len(self.units)} fits: {len(self.config.seeds)} seed(s) x {n_groups} group(s) "
            f"x {len(self.config.models)} model(s) x {n_domains} domain(s)"
        ]
        for u in self.units:
            served = ", ".join(c.label for c in u.conditions)
            lines.append(f"  {u.key:60s} -> {served}")
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
        if self.resume and (out / schema.MANIFEST).is_file():
            run = RunDir.open(out)
            manifest = run.read_manifest()
            if manifest.get("config_hash") != cfg.hash:
                run.unlock()
                diff = "; ".join(config_differences(manifest.get("config", {}), cfg))
                raise ShiftbenchError(
                    f"{out}: its study config differs from this one ({diff or 'config hash'}); "
                    "resume with the same options or use another --out"
                )
            run.clean_partial()
            resumed = dict(manifest)
            manifest.setdefault("resumed_at", []).append(mf.now())
        else:
            run = RunDir.create(out, reuse_empty=True)  # a run that failed before any unit
            manifest, resumed = {"started_at": mf.now()}, None
        manifest.update(
            mf.study_fields(
                cfg, self.protocols, self.command, self.splits, self.suites, self.units, self.device
            )
        )
        if self.target is not None:
            manifest["target"] = manifest_record(self.target, self.splits)
        self._pin_options(resumed)
        manifest[mf.PINNED_OPTIONS] = self.pinned
        if cfg.adapt is not None or cfg.adapt_k is not None:
            from shiftbench.protocols.adapt_config import adaptation_record

            manifest[schema.ADAPTATION_KEY] = adaptation_record(cfg)
        run.write_manifest(manifest)
        run.write_splits(self.splits)
        return run

    def _pin_options(self, manifest: dict | None) -> None:
        """Pin the options whose defaults changed (:func:`mf.pinned_model_options`) into
        :attr:`build_config`; ``manifest``: a resumed run's, None for a new run."""
        cfg = self.config
        self.pinned = mf.pinned_model_options(
            cfg, lambda name: self._model(name, cfg.seeds[0]), manifest
        )
        options = {k: dict(v) for k, v in cfg.model_options.items()}
        for name, pinned in self.pinned.items():
            options[name] = {**options.get(name, {}), **pinned}
        self.build_config = dataclasses.replace(cfg, model_options=options)

    # -- the whole study -------------------------------------------------------------------
    def run(self) -> StudyResult:
        """Run every unit not already in the run folder, then assemble its tables.

        ``executor`` ``serial`` runs the units here, one (seed, category group)'s images
        loaded once for all its units; ``process`` and ``ray`` send them to workers
        (:mod:`shiftbench.protocols.executors.dispatch`) and write what comes back. A failure
        leaves every finished unit on disk for ``--resume``."""
        from shiftbench._progress import bar as progress_bar

        t_start = time.perf_counter()
        run = self._open_run()
        self.path = run.path
        source = ImageSource(
            self.config, self.splits, self.suites, run.write_shift_params, self.progress
        )
        timing = {"fit_seconds": 0.0, "score_seconds": 0.0}
        todo = [u for u in self.units if not run.unit_done(u.key)]
        if len(todo) < len(self.units):
            done = len(self.units) - len(todo)
            self.echo(f"resuming {run.path}: {done} of {len(self.units)} fits already done")
        if self.config.save_models:  # finished fits without their model: fit them again
            again = {u.key for u in self.units if u not in todo and not has_model(run.path, u.key)}
            if again:
                self.echo(
                    f"fitting {len(again)} finished fit(s) again to save their models "
                    "(their stored results stay; the new scores must match them)"
                )
                run.recheck = models_only(run)
                todo = [u for u in self.units if u in todo or u.key in again]
        bar = progress_bar(len(todo), desc="fits", unit="fit", disable=not self.progress)
        executor = None
        try:
            if self.config.executor == "serial":
                self._run_serial(run, source, todo, bar, timing)
            else:
                from shiftbench.protocols.executors.dispatch import run_distributed

                executor = run_distributed(self, run, source, todo, bar, timing)
        except BaseException:
            bar.close()
            run.unlock()  # what is finished stays; --resume continues
            raise
        bar.close()
        if executor is not None:
            timing["executor"] = executor
        metrics = run.assemble([p.name for p in self.protocols])
        manifest = run.read_manifest()
        if self.config.save_models:
            manifest["saved_models"] = saved_model_sizes(run.path)
        manifest.update(
            status=schema.STATUS_COMPLETE,
            finished_at=mf.now(),
            timing={
                **timing,
                "shift_seconds": source.shift_seconds,
                "wall_seconds": time.perf_counter() - t_start,
            },
            image_cache={
                "enabled": self.config.image_cache,
                "path": str(arrays_dir()),
                **source.cache_stats,
            },
        )
        run.write_manifest(manifest)
        run.close()
        return StudyResult(run.path, metrics)

    def _run_serial(self, run: RunDir, source: ImageSource, todo: list[Unit], bar, timing):
        """The units in this process, in plan order; each (seed, category group)'s images
        are read (and shifted) once for all of its units."""
        from shiftbench.protocols.executors.dispatch import worker_threads

        threads, before = worker_threads(self.config), None
        if threads is not None:  # --cpus-per-unit: as many torch threads as a worker's
            import torch

            before = torch.get_num_threads()
            torch.set_num_threads(threads)
        try:
            for seed in self.config.seeds:
                seed_units = [u for u in todo if u.seed == seed]
                for cats in dict.fromkeys(u.categories for u in seed_units):
                    # the units that share one set of images: load (and shift) them once
                    group = [u for u in seed_units if u.categories == cats]
                    needs = set().union(*(u.needs() for u in group))
                    data = {}
                    for c in cats:
                        bar.set_postfix_str(f"reading {c} (seed {seed})")
                        data[c] = source.load_category(c, seed, needs)
                    for unit in group:
                        bar.set_postfix_str(unit.key)
                        result = self._run_unit(run, unit, data)
                        timing["fit_seconds"] += result.fit_seconds
                        timing["score_seconds"] += result.score_seconds
                        bar.update(1)
                    del data  # free this group's images before the next group's are read
        finally:
            if before is not None:
                import torch

                torch.set_num_threads(before)

    def _run_unit(self, run: RunDir, unit: Unit, data):
        sweep = len(self.config.severities) > 1

        def save_maps(category, condition, sample_ids, maps):
            # rewritten identically if the unit is re-run
            sev = condition.severity if sweep else None
            name = schema.map_name(condition.map_protocol, sev, condition.shift)
            run.write_maps(category, unit.model, unit.seed, name, sample_ids, maps)

        def save_model(model, thresholds):
            save_fitted(run.path, unit.key, model, self.model_meta(unit, thresholds))

        def save_adapted(condition, model, thresholds):
            from shiftbench.protocols.adapt_config import adapted_key, adapted_meta

            if adapted_key(unit, condition) is not None:
                meta = adapted_meta(self.model_meta(unit, thresholds), unit, condition, self.suites)
                save_fitted(run.path, adapted_key(unit, condition), model, meta)

        model = self._model(unit.model, unit.seed)
        result = run_unit(
            unit,
            model,
            data,
            on_maps=save_maps if self.config.save_maps else None,
            on_fitted=save_model if self.config.save_models else None,
            on_adapted=save_adapted if self.config.save_models else None,
        )
        run.write_unit(unit.key, result.scores, result.metrics, result.targets)
        return result

    def model_meta(self, unit: Unit, thresholds: dict) -> dict:
        """What a saved model carries beside its weights (:func:`save_fitted`): the fit,
        each category's validation thresholds in the fit domain and its fixed colour
        scale, the input the model expects and the suite of a shifted fit."""
        d = unit.fit_domain
        suite = None
        if d.is_target:
            suite = {"target": d.shift}
        elif not d.is_clean:
            s = self.suites[d.severity, d.shift]
            suite = {"name": s.name, "hash": s.hash, "severity": d.severity}
        return {
            "unit": unit.key,
            "model": unit.model,
            "seed": unit.seed,
            "fit": unit.fit_name,
            "categories": {
                c: {
                    "image_threshold": t.image,
                    "pixel_threshold": t.pixel,
                    "map_range": list(t.map_range),
                }
                for c, t in thresholds.items()
            },
            "input": {"image_size": self.config.image_size, "crop": self.config.crop},
            "suite": suite,
        }
