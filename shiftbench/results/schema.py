"""The run-directory format, in one place: every file, column, metric and manifest key.

The runner writes a run only through :class:`shiftbench.results.RunDir` and the report
reads it only through :func:`shiftbench.results.load_run`; both take their names from
here. Format version :data:`FORMAT_VERSION` (``manifest.json["format_version"]``; a
manifest without it is version 1, the format of shiftbench before the key existed, which
is the same layout and still read).

========================================================  ==========================================
Path (in the run folder)                                  Content
========================================================  ==========================================
``manifest.json``                                         :data:`MANIFEST_KEYS` (JSON object)
``splits.csv``                                            :data:`SPLIT_COLUMNS`, one row per
                                                          (seed, image)
``scores.parquet``                                        :data:`SCORE_COLUMNS`, one row per
                                                          (category, model, seed, protocol,
                                                          severity, split, image)
``metrics.parquet``, ``metrics.csv``                      :data:`METRIC_COLUMNS` (tidy; category
                                                          ``mean`` = macro average when the run
                                                          has more than one category)
``shift_params.parquet``                                  :data:`SHIFT_PARAM_COLUMNS`, all the
                                                          per-image shift parameters gathered
``shift_params/seed{S}/sev{L}/{category}.parquet``        the same, per (seed, severity, category)
``units/<key>/scores.parquet``, ``.../metrics.parquet``   one finished fit (resume); the tables
                                                          above are assembled from these
``maps/<category>/<model>/seed{S}/<name>.npz``            :data:`MAP_ARRAYS`: ``sample_id`` (str),
                                                          ``maps`` (float16 [N, H, W]); ``<name>``
                                                          is the protocol, with ``-sev{L}`` in a
                                                          severity sweep (:func:`map_name`)
``adaptation_targets.parquet``                            :data:`ADAPT_TARGET_COLUMNS`: every target
                                                          image an adaptation strategy read
                                                          (studies with ``--adapt`` only)
``models/<unit key>.pt``, ``models/<unit key>.json``     optional fitted models (``--save-models``)
                                                          and their thresholds/colour scale
                                                          (:mod:`shiftbench.results.models`)
``tables/``, ``figures/``, ``report.html``,               written by ``shiftbench report``
``summary.json``                                          (:data:`SUMMARY_JSON`: headline numbers)
``.partial/``, ``.lock``                                  the writer's staging area and lock
========================================================  ==========================================

Columns:

* ``scores``: ``category, model, seed, protocol, severity`` (float; the shift level of a
  shifted protocol, NaN for ``clean``), ``split`` (``val`` / ``test``), ``sample_id,
  label, defect_type, score, threshold, decision`` (0/1, score >= threshold),
  ``pixel_threshold``. Runs that evaluate each suite member alone add :data:`SHIFT_COLUMN`
  (``shift``, the perturbation's name) to ``scores`` and ``metrics``.
* ``metrics``: ``category, model, seed, protocol, severity, metric, value``; metric names
  :data:`IMAGE_METRICS`, :data:`PIXEL_METRICS` and :data:`EFFICIENCY_METRICS`.
* Studies that name adaptation strategies (``--adapt``, not the default ``refit``) add
  :data:`ADAPTATION_COLUMN` and :data:`K_COLUMN` to ``scores`` and ``metrics`` right after
  ``severity`` (after ``shift``), the metrics :data:`ADAPT_METRICS` to adapted conditions,
  and the manifest key :data:`ADAPTATION_KEY` (docs/adaptation.md).
* ``shift params``: ``seed, sample_id, category, split, suite, suite_hash, severity,
  params`` (the JSON text of ``Suite.sample``'s dict; ``Suite.apply_params`` replays it).

Delta columns of summary tables (``shift-noadapt`` minus ``clean``, ``shift-adapt`` minus
``shift-noadapt``) are named by :data:`DELTAS`.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from shiftbench.errors import ShiftbenchError

#: the format new runs are written in; bump it when a reader of today could misread a run
FORMAT_VERSION = 2
#: a manifest without ``format_version`` is this version (the format before the key existed)
UNVERSIONED = 1

# -- files -------------------------------------------------------------------------------
MANIFEST = "manifest.json"
SPLITS = "splits.csv"
SCORES = "scores.parquet"
METRICS = "metrics.parquet"
METRICS_CSV = "metrics.csv"
SHIFT_PARAMS = "shift_params.parquet"
SHIFT_PARAMS_DIR = "shift_params"
SHIFT_PARAMS_GLOB = "seed*/sev*/*.parquet"  # under SHIFT_PARAMS_DIR
UNITS = "units"
UNIT_SCORES = "scores.parquet"
UNIT_METRICS = "metrics.parquet"
UNIT_TABLES = (UNIT_SCORES, UNIT_METRICS)
MAPS = "maps"
MAP_ARRAYS = ("sample_id", "maps")
MODELS = "models"  # saved fitted models (``--save-models``), see shiftbench.results.models
MODEL_SUFFIX = ".pt"  # models/<unit key>.pt: AnomalyModel.save's file
MODEL_META_SUFFIX = ".json"  # models/<unit key>.json: thresholds, colour scale, input, size
TABLES = "tables"
FIGURES = "figures"
REPORT_HTML = "report.html"
#: the machine-readable headline numbers ``shiftbench report`` writes (next to report.html)
SUMMARY_JSON = "summary.json"
PARTIAL = ".partial"
LOCK = ".lock"


def shift_params_path(
    seed: int, severity: int, category: str, shift: str | None = None
) -> PurePosixPath:
    """``shift_params/seed{S}/sev{L}/{category}.parquet`` (relative to the run); in a
    per-shift study (:data:`SHIFT_COLUMN`) the level folder is ``sev{L}-{shift}``."""
    level = f"sev{severity}" if shift is None else f"sev{severity}-{shift}"
    return PurePosixPath(SHIFT_PARAMS_DIR, f"seed{seed}", level, f"{category}.parquet")


def map_name(protocol: str, severity: int | float | None = None, shift: str | None = None) -> str:
    """The name of a maps file: the protocol, plus ``-{shift}`` for one perturbation of a
    per-shift study and ``-sev{L}`` for a level of a sweep (pass each only then); a real
    target's ``target:<name>`` is written ``target-<name>`` (no colon in file names)."""
    name = protocol if shift is None else f"{protocol}-{file_token(shift)}"
    return name if severity is None else f"{name}-sev{int(severity)}"


def maps_path(category: str, model: str, seed: int, name: str) -> PurePosixPath:
    """``maps/<category>/<model>/seed{S}/<name>.npz`` (relative to the run)."""
    return PurePosixPath(MAPS, str(category), str(model), f"seed{seed}", f"{name}.npz")


#: the ``shift`` of a real target domain's rows is this prefix plus the target's name
#: (``target:lamp2``): images of the same categories captured under a new condition, read
#: from their own folder instead of made from the clean images (``--target-root``)
TARGET_PREFIX = "target:"


def is_target_shift(shift: object) -> bool:
    """Whether a ``shift`` value names a real target domain (``target:<name>``)."""
    return isinstance(shift, str) and shift.startswith(TARGET_PREFIX)


def file_token(shift: str) -> str:
    """A shift name as it appears in file names and unit keys (``target:x`` -> ``target-x``)."""
    return shift.replace(":", "-")


# -- columns -----------------------------------------------------------------------------
SCORE_COLUMNS = (
    "category",
    "model",
    "seed",
    "protocol",
    "severity",
    "split",
    "sample_id",
    "label",
    "defect_type",
    "score",
    "threshold",
    "decision",
    "pixel_threshold",
)
#: what a version-1 ``scores.parquet`` must hold (older runs lack the other columns)
SCORE_COLUMNS_V1 = (
    "category",
    "model",
    "seed",
    "protocol",
    "split",
    "sample_id",
    "label",
    "score",
    "threshold",
    "decision",
)
METRIC_COLUMNS = ("category", "model", "seed", "protocol", "severity", "metric", "value")
#: optional column of ``scores`` and ``metrics``: the perturbation a row was shifted with, in
#: runs that evaluate each suite member alone. ABSENT in ordinary runs, where the whole suite
#: is one shift named by ``manifest["suite"]["name"]`` (NaN/empty for ``clean`` rows)
SHIFT_COLUMN = "shift"
#: optional columns of ``scores`` and ``metrics`` (right after ``severity``, after
#: ``shift`` in per-shift studies), ONLY in studies whose ``adapt`` list is not the default
#: ``["refit"]``: the adaptation strategy of a ``shift-adapt`` row (``none`` for ``clean``
#: and ``shift-noadapt``) and its budget k of target images (0 when it takes none)
ADAPTATION_COLUMN = "adaptation"
K_COLUMN = "k"
#: the metrics each adapted condition adds: seconds to adapt the clean fit (refit: its
#: fit), target images read, test/validation images whose features were reused
ADAPT_METRICS = ("adapt_seconds", "target_images", "forward_passes_saved")
#: every target image an adaptation read (per unit: ``units/<key>/`` holds its part)
ADAPT_TARGETS = "adaptation_targets.parquet"
ADAPT_TARGET_COLUMNS = ("adaptation", "k", "seed", "category", "severity", "shift", "sample_id")
#: the manifest key recording each strategy's target data, transductivity, threshold
ADAPTATION_KEY = "adaptation"
#: the sort order of ``metrics.parquet`` (protocols in the study's order, not by name)
METRIC_SORT = ("category", "model", "seed", "protocol", "severity", "metric")
#: the macro average over categories is stored as this category
MEAN_CATEGORY = "mean"
SPLIT_COLUMNS = (
    "seed",
    "sample_id",
    "category",
    "split",
    "label",
    "defect_type",
    "image_path",
    "mask_path",
)
#: optional column of ``splits.csv``, written only by runs with a real target: ``source``
#: for the dataset's own images, ``target:<name>`` for the target's (whose sample ids may
#: repeat the source's: a re-photographed part keeps its name). Absent otherwise, so a run
#: without a target writes the same ``splits.csv`` as before
DOMAIN_COLUMN = "domain"
SOURCE_DOMAIN = "source"
SHIFT_PARAM_COLUMNS = (
    "seed",
    "sample_id",
    "category",
    "split",
    "suite",
    "suite_hash",
    "severity",
    "params",
)

# -- metric names ------------------------------------------------------------------------
IMAGE_METRICS = (
    "image_auroc",
    "image_auprc",
    "image_f1",
    "image_precision",
    "image_recall",
    "image_accuracy",
    "image_f1_max_oracle",
    "image_threshold",
)
#: written only when the validation and test images have ground-truth masks
#: (``pixel_threshold`` always, NaN without masks)
PIXEL_METRICS = ("pixel_threshold", "pixel_auroc", "pixel_aupro", "pixel_f1")
EFFICIENCY_METRICS = (
    "fit_seconds",
    "ms_per_image",
    "images_per_second",
    "n_parameters",
    "model_size_mb",
    "peak_memory_mb",
)
#: (adapted conditions add ADAPT_METRICS)
METRIC_NAMES = (*IMAGE_METRICS, *PIXEL_METRICS, *EFFICIENCY_METRICS)

# -- protocols and deltas ----------------------------------------------------------------
PROTOCOLS = ("clean", "shift-noadapt", "shift-adapt")
#: (column, minuend protocol, subtrahend protocol)
DELTAS = (
    ("d_noadapt_clean", "shift-noadapt", "clean"),
    ("d_adapt_noadapt", "shift-adapt", "shift-noadapt"),
)
DELTA_COLUMNS = tuple(d[0] for d in DELTAS)

# -- manifest ----------------------------------------------------------------------------
#: every key the runner writes into ``manifest.json``, in the order it first writes them
MANIFEST_KEYS = (
    "format_version",
    "started_at",
    "resumed_at",  # a list of times, only once the run was resumed
    "config",
    "config_hash",
    "command",
    "seeds",
    "protocols",
    "versions",
    "git_commit",
    "split_hashes",
    "suite",  # None when no protocol shifts images, else SUITE_KEYS
    "units",
    "status",  # STATUS_RUNNING, then STATUS_COMPLETE
    "finished_at",
    "timing",
    "image_cache",
    "device",  # where the models ran (shiftbench.models.device.device_info)
    "saved_models",  # {unit key: MB on disk}, only with --save-models
    "adaptation",  # {strategy: {target_data, transductive, threshold}}, only with --adapt
    "target",  # TARGET_KEYS, only with a real target domain (--target-root)
    # {model: {option: value}}: options whose defaults changed, as the run's fits use them
    # (a resumed run keeps them; shiftbench.protocols.manifest.pinned_model_options)
    "model_options_resolved",
)
#: the record of a real target domain: its name, ``shift`` value, folder, layout, whether
#: it has normal training images (``shift-adapt`` needs them) and its image counts per
#: seed, split and label (``{"0": {"test": {"0": 5, "1": 9}, ...}}``)
TARGET_KEYS = ("name", "shift", "root", "dataset", "has_train", "counts")
#: the suite record; ``each`` and ``shifts`` only in a per-shift study (one member alone
#: per condition; ``hashes`` then keyed ``{level}-{shift}``)
SUITE_KEYS = ("name", "hash", "severity", "shift_at", "hashes", "each", "shifts")
STATUS_RUNNING = "running"
STATUS_COMPLETE = "complete"
#: the manifest fields runs must share to be combined in one report (``shiftbench report A B``):
#: config keys, then top-level keys
COMBINE_CONFIG_KEYS = ("dataset", "root", "image_size")
COMBINE_MANIFEST_KEYS = ("split_hashes", "seeds")
#: what the HTML report shows of the manifest (a subset of MANIFEST_KEYS)
REPORT_MANIFEST_KEYS = ("command", "started_at", "finished_at", "git_commit", "versions", "config")


def format_version(manifest: dict, path: str | Path) -> int:
    """The format version of a run's ``manifest`` (read from ``path``); a version newer
    than this code knows is refused, naming the file and the fix."""
    version = manifest.get("format_version", UNVERSIONED)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ShiftbenchError(
            f"{path}: format_version {version!r} is not a positive integer; "
            "restore the manifest or re-run `shiftbench run`"
        )
    if version > FORMAT_VERSION:
        raise ShiftbenchError(
            f"{path}: run format version {version} is newer than this shiftbench reads "
            f"(up to {FORMAT_VERSION}); upgrade shiftbench"
        )
    return version
