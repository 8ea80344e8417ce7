"""The plan of a study: which fits (units) it needs and which conditions each one serves.

A *domain* is a set of images: the clean images, their shifted twins at one severity, or a
real target's images (``Domain(shift="target:<name>")``, no severity: images of the same
categories captured under a new condition, read from their own split table).
A *condition* is one (protocol, severity) cell of the results: fit in one domain,
threshold on the validation images of a second, evaluate on the test images of a third.
A *unit* is one fit — a model fitted on one group's training split in one domain, for one
seed — with every condition that fit serves. One fit on Train-clean serves both ``clean``
and ``shift-noadapt`` at every severity of a sweep; ``shift-adapt`` fits on Train-shift,
once per severity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shiftbench.protocols.config import Protocol, StudyConfig, resolve_protocols
from shiftbench.results.schema import file_token, is_target_shift

#: the splits a unit scores (it fits on ``train``)
EVAL_SPLITS = ("val", "test")


@dataclass(frozen=True)
class Domain:
    """The clean images (``severity`` None) or their shifted twins at one severity: of the
    whole suite (``shift`` None), or of one of its members alone (a per-shift study); or a
    real target (``shift`` ``target:<name>``, ``severity`` None)."""

    severity: int | None = None
    shift: str | None = None

    @property
    def is_target(self) -> bool:
        """A real target's images (their own split table), not twins of the clean ones."""
        return is_target_shift(self.shift)

    @property
    def is_clean(self) -> bool:
        return self.severity is None and not self.is_target

    @property
    def sort_key(self) -> tuple:
        return (self.severity is not None, self.severity or 0, self.shift or "")

    def __str__(self) -> str:
        if self.is_clean:
            return "clean"
        if self.is_target:
            return str(self.shift)
        return f"shift@{self.severity}" if self.shift is None else f"{self.shift}@{self.severity}"


CLEAN = Domain()


def domain_of(side: str, severity: int | None, shift: str | None = None) -> Domain:
    """The domain a protocol names for one of its sides (``"clean"`` or ``"shift"``)."""
    return CLEAN if side == "clean" else Domain(severity, shift)


def severity_value(severity: int | None) -> float:
    """The ``severity`` column of scores and metrics: the level, NaN for ``clean``."""
    return np.nan if severity is None else float(severity)


@dataclass(frozen=True)
class Condition:
    """One results cell: a protocol at one severity (None for ``clean``)."""

    protocol: Protocol
    severity: int | None
    shift: str | None = None  # one suite member alone (a per-shift study)
    #: the adaptation strategy of a ``shift-adapt`` condition in a study that names them
    #: (``refit``: today's refit on Train-shift), and its budget of target images
    adaptation: str | None = None
    k: int = 0

    @property
    def adapted(self) -> bool:
        """Whether a clean fit is adapted for this condition (every strategy but ``refit``,
        which is a fit of its own on Train-shift)."""
        return self.adaptation is not None and self.adaptation != "refit"

    @property
    def threshold_domain(self) -> Domain:
        if self.adapted:  # never the shifted validation images (see shiftbench.adaptation)
            return CLEAN
        return domain_of(self.protocol.threshold_from, self.severity, self.shift)

    @property
    def eval_domain(self) -> Domain:
        return domain_of(self.protocol.evaluate_on, self.severity, self.shift)

    @property
    def map_protocol(self) -> str:
        """The protocol as maps files name it: ``shift-adapt+bank-extend-k4`` for an
        adapted condition, the protocol's name otherwise."""
        if not self.adapted:
            return self.protocol.name
        return f"{self.protocol.name}+{self.adaptation}-k{self.k}"

    @property
    def label(self) -> str:
        name = self.map_protocol
        name = name if self.shift is None else f"{name}@{self.shift}"
        return name if self.severity is None else f"{name}@sev{self.severity}"


@dataclass(frozen=True)
class Unit:
    """One fit and the conditions it serves."""

    group: str  # a category, or "global"
    categories: tuple[str, ...]
    model: str
    seed: int
    fit_domain: Domain
    conditions: tuple[Condition, ...]
    #: the study names adaptation strategies: scores and metrics get ``adaptation``, ``k``
    adapt_columns: bool = False

    @property
    def fit_name(self) -> str:
        """The fit domain as it appears in keys: ``clean``, ``shift-sev3``, or
        ``shift-<member>-sev3`` in a per-shift study, ``shift-target-<name>`` on a real
        target."""
        d = self.fit_domain
        if d.is_clean:
            return "clean"
        if d.is_target:
            return f"shift-{file_token(d.shift)}"
        return f"shift-sev{d.severity}" if d.shift is None else f"shift-{d.shift}-sev{d.severity}"

    @property
    def key(self) -> str:
        return f"{self.group}__{self.model}__seed{self.seed}__{self.fit_name}"

    def needs(self) -> set[tuple[Domain, str]]:
        """The (domain, split) pairs this unit fits on, thresholds on or scores."""
        out = {(self.fit_domain, "train")}
        for c in self.conditions:
            out |= {(c.threshold_domain, "val"), (c.eval_domain, "test")}
            if c.adapted and c.k:  # k target normals drawn from Train-shift
                out.add((c.eval_domain, "train"))
        return out


def with_clean_reference(protocols: list[Protocol]) -> list[Protocol]:
    """Add ``clean`` whenever ``shift-noadapt`` runs without it.

    Its fit, threshold and validation scores are the same; only the clean test images are
    scored on top, and the drop clean -> shifted is what a shift study reports.
    """
    names = {p.name for p in protocols}
    if "shift-noadapt" in names and "clean" not in names:
        return resolve_protocols(["clean", *names])
    return protocols


def touches_shift(p: Protocol) -> bool:
    """Whether a protocol sees shifted images on any side."""
    return "shift" in (p.fit_on, p.threshold_from, p.evaluate_on)


def plan_units(
    config: StudyConfig,
    categories: list[str],
    shifts: list[str] | None = None,
    targets: list[str] | None = None,
) -> list[Unit]:
    """The grid of fits the study needs, in execution order.

    ``shifts``: the suite members evaluated one at a time (a per-shift study), or None
    when the suite is applied as a whole; ``[]`` when no synthetic shift runs (a study of a
    real target alone). ``targets``: the ``target:<name>`` shifts of real target domains,
    each a condition without a severity. The clean fit serves every (shift, severity)
    condition and every target; ``shift-adapt`` needs one fit per (shift, severity) and
    one per target (on the target's own training images)."""
    protocols = with_clean_reference(config.protocols)
    groups = (
        [("global", tuple(categories))] if config.global_model else [(c, (c,)) for c in categories]
    )
    cells = [(s, m) for s in config.severities for m in (shifts or [None])]
    if shifts == []:  # no synthetic shift: the target(s) alone
        cells = []
    cells += [(None, t) for t in targets or []]
    clean = [p for p in protocols if p.fit_on == "clean"]
    shifted = [p for p in protocols if p.fit_on == "shift"]
    adapt = config.adapt is not None or getattr(config, "adapt_k", None) is not None
    refit = not adapt or "refit" in config.adaptations
    adapted = adapted_conditions(config, protocols, cells) if adapt else ()
    units = []
    for seed in config.seeds:
        for group, cats in groups:
            for model in config.models:
                if clean or adapted:
                    conditions = tuple(
                        Condition(p, s, m)
                        for p in clean
                        for s, m in (cells if touches_shift(p) else [(None, None)])
                    )
                    # every strategy but refit adapts this clean fit
                    conditions += adapted
                    units.append(Unit(group, cats, model, seed, CLEAN, conditions, adapt))
                for s, m in cells if shifted and refit else []:
                    name = "refit" if adapt else None
                    conditions = tuple(Condition(p, s, m, name) for p in shifted)
                    units.append(Unit(group, cats, model, seed, Domain(s, m), conditions, adapt))
    return units


def adapted_conditions(config: StudyConfig, protocols: list[Protocol], cells) -> tuple:
    """The ``shift-adapt`` conditions of the strategies that adapt the clean fit: one per
    (shift, severity) cell, strategy and budget k (k = 0 for strategies without one)."""
    from shiftbench.adaptation import get_adaptation

    adapt = [p for p in protocols if p.name == "shift-adapt"]
    out = []
    for p in adapt:
        for s, m in cells:
            for name in config.adaptations:
                if name == "refit":
                    continue
                ks = config.adapt_ks if get_adaptation(name).takes_k else [0]
                out += [Condition(p, s, m, name, k) for k in ks]
    return tuple(out)
