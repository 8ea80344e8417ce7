"""What ``shiftbench list`` shows of the built-ins, without importing them.

The model and perturbation registries (:mod:`shiftbench.models.registry`,
:mod:`shiftbench.transforms.registry`) learn their built-ins by importing the modules that
define them, which imports torch, timm and albumentations: ~3 s before a list of names
could be printed. This leaf module holds the same names, descriptions and families as
plain tables, so listing stays as quick as ``--help``; ``tests/test_catalogue.py`` checks
them against the real registries, so a new built-in that is not added here fails the
tests. Plugins are found through their entry points (no import for models; a
perturbation plugin's family is only known by importing it, see
:func:`perturbation_plugins`).
"""

from __future__ import annotations

import importlib.metadata
from importlib import resources

#: Built-in models in registration order: ``(name, description)`` as ``@register_model``
#: declares them.
BUILTIN_MODELS: tuple[tuple[str, str], ...] = (
    ("patchcore", "Native PatchCore: fast exact coreset, density re-weighting (demo default)"),
    ("ae", "Reconstruction autoencoder (U-Net-shaped, MSE+SSIM), no backbone"),
    ("anomalib-patchcore", "anomalib PatchCore (torch model, raw scores)"),
    ("anomalib-padim", "anomalib PaDiM (torch model, raw scores)"),
    ("anomalib-fastflow", "anomalib FastFlow (trained normalising flow, raw scores)"),
    ("anomalib-stfpm", "anomalib STFPM (student-teacher feature pyramid, raw scores)"),
    (
        "anomalib-efficientad",
        "anomalib EfficientAD; offline: random teacher / no Imagenette penalty unless given paths",
    ),
    (
        "anomalib-draem",
        "anomalib DRAEM; offline: Perlin-noise anomalies unless anomaly_source=PATH",
    ),
)

#: Built-in perturbations by name: ``(name, family, group)``; ``group`` is the class's
#: ``catalogue`` (``corruption``, ``acquisition``) or else its family.
BUILTIN_PERTURBATIONS: tuple[tuple[str, str, str], ...] = (
    ("acq_camera_tilt", "geometric", "acquisition"),
    ("acq_chromatic_aberration", "photometric", "acquisition"),
    ("acq_exposure", "photometric", "acquisition"),
    ("acq_hot_pixels", "sensor", "acquisition"),
    ("acq_lens_distortion", "geometric", "acquisition"),
    ("acq_sensor_noise", "sensor", "acquisition"),
    ("acq_vignetting", "illumination", "acquisition"),
    ("acq_white_balance", "photometric", "acquisition"),
    ("acq_working_distance", "geometric", "acquisition"),
    ("cc_brightness", "photometric", "corruption"),
    ("cc_contrast", "photometric", "corruption"),
    ("cc_defocus_blur", "photometric", "corruption"),
    ("cc_elastic_transform", "geometric", "corruption"),
    ("cc_fog", "photometric", "corruption"),
    ("cc_frost", "photometric", "corruption"),
    ("cc_gaussian_blur", "photometric", "corruption"),
    ("cc_gaussian_noise", "sensor", "corruption"),
    ("cc_glass_blur", "photometric", "corruption"),
    ("cc_impulse_noise", "sensor", "corruption"),
    ("cc_jpeg_compression", "photometric", "corruption"),
    ("cc_motion_blur", "photometric", "corruption"),
    ("cc_pixelate", "photometric", "corruption"),
    ("cc_saturate", "photometric", "corruption"),
    ("cc_shot_noise", "sensor", "corruption"),
    ("cc_snow", "photometric", "corruption"),
    ("cc_spatter", "photometric", "corruption"),
    ("cc_speckle_noise", "sensor", "corruption"),
    ("cc_zoom_blur", "photometric", "corruption"),
    ("color_jitter", "photometric", "photometric"),
    ("gaussian_blur", "photometric", "photometric"),
    ("gaussian_noise", "photometric", "photometric"),
    ("illumination", "illumination", "illumination"),
    ("resized_crop", "geometric", "geometric"),
    ("rotate", "geometric", "geometric"),
    ("translate", "geometric", "geometric"),
)

MODEL_GROUP = "shiftbench.models"
PERTURBATION_GROUP = "shiftbench.perturbations"


def _entry_points(group: str) -> list[importlib.metadata.EntryPoint]:
    return sorted(importlib.metadata.entry_points(group=group), key=lambda ep: ep.name)


def model_rows() -> list[tuple[str, str]]:
    """``[(name, description)]``: the built-in models, then plugin models by name
    (``plugin <module:attr>``, not imported), as :func:`shiftbench.models.list_models`
    lists them in a fresh process."""
    taken = {name for name, _ in BUILTIN_MODELS}
    plugins = [(ep.name, f"plugin {ep.value}") for ep in _entry_points(MODEL_GROUP)]
    return [*BUILTIN_MODELS, *dict((n, d) for n, d in plugins if n not in taken).items()]


def perturbation_plugins() -> bool:
    """True when an installed distribution declares a perturbation plugin (listing them
    then imports the registry, built-ins included, to learn their families)."""
    return bool(_entry_points(PERTURBATION_GROUP))


def suite_rows() -> list[tuple[str, str]]:
    """``[(name, description)]`` of the suites shipped with shiftbench, by name (read from
    their YAML files; no perturbation is built)."""
    import yaml

    folder = resources.files("shiftbench").joinpath("transforms", "suites")
    files = {p.name[: -len(".yaml")]: p for p in folder.iterdir() if p.name.endswith(".yaml")}
    rows = []
    for name in sorted(files):
        spec = yaml.safe_load(files[name].read_text(encoding="utf-8")) or {}
        rows.append((name, str(spec.get("description", "")).strip()))
    return rows
