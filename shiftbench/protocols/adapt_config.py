"""The study options of adaptation (``adapt``, ``adapt_k``): checked and normalised.

Kept beside :mod:`~shiftbench.protocols.config` so that the option table stays one
declarative list: a study whose ``adapt`` is the default ``["refit"]`` (and no ``adapt_k``)
is stored as unset, so its hash, run folder name and files are those of a study made
before adaptation strategies existed.
"""

from __future__ import annotations

from shiftbench.errors import ShiftbenchError


def check_adapt_options(config) -> None:
    """Unknown strategies (did-you-mean), bad budgets, ``--adapt`` without ``shift-adapt``;
    normalises the default to unset (in place)."""
    from shiftbench.adaptation import DEFAULT_ADAPT, get_adaptation

    if config.adapt is not None:
        if not config.adapt:
            raise ShiftbenchError("adapt: give at least one strategy, e.g. refit", param="adapt")
        for name in config.adapt:
            try:
                get_adaptation(name)
            except ShiftbenchError as exc:
                raise ShiftbenchError(f"adapt: {exc}", param="adapt") from None
        if len(set(config.adapt)) < len(config.adapt):
            raise ShiftbenchError(f"adapt {config.adapt}: a strategy is named twice", param="adapt")
        if tuple(config.adapt) == DEFAULT_ADAPT and config.adapt_k is None:
            config.adapt = None  # the default: today's shift-adapt, hashed as before
    if config.adapt_k is not None:
        if not config.adapt_k:
            config.adapt_k = None
        else:
            bad = [k for k in config.adapt_k if k < 1]
            if bad:
                raise ShiftbenchError(
                    f"adapt_k {bad[0]}: a budget is a number of target images, at least 1",
                    param="adapt_k",
                )
            config.adapt_k = sorted(set(config.adapt_k))
    if (config.adapt is not None or config.adapt_k is not None) and "shift-adapt" not in {
        p.name for p in config.protocols
    }:
        flag = "adapt" if config.adapt is not None else "adapt_k"
        raise ShiftbenchError(
            f"{flag}: adaptation strategies are conditions of the shift-adapt protocol; "
            f"add shift-adapt to --protocol (e.g. --protocol shift-noadapt,shift-adapt)",
            param=flag,
        )


def check_adapt_study(config, model_name: str, model, splits) -> None:
    """Before any work: every strategy applies to every model (one line naming both),
    and every budget k fits in every category's training split for every seed."""
    from shiftbench.adaptation import get_adaptation

    for name in config.adaptations:
        strategy = get_adaptation(name)
        reason = strategy.applies_to(_built(model)) if name != "refit" else None
        if reason:
            raise ShiftbenchError(
                f"adapt {name}: does not apply to model {model_name!r} ({reason}); "
                f"drop {name} from --adapt or {model_name} from --models",
                param="adapt",
            )
    if any(get_adaptation(n).takes_k for n in config.adaptations):
        # per domain when a real target's rows sit beside the source's (its own train split)
        keys = ["seed", "category", *(["domain"] if "domain" in splits.columns else [])]
        train = splits[splits["split"] == "train"].groupby(keys).size()
        (seed, category, *_), smallest = train.idxmin(), int(train.min())
        k = max(config.adapt_ks)
        if k > smallest:
            raise ShiftbenchError(
                f"adapt_k {k}: larger than the {smallest} training images of {category} "
                f"(seed {seed}), where the k target normals are drawn; give budgets up to "
                f"{smallest}",
                param="adapt_k",
            )


def _built(model):
    """``model`` with its networks built (random weights; nothing is fitted), so that a
    strategy can look at them (``bn-adapt`` needs batch-norm layers)."""
    import copy

    import torch

    built = copy.copy(model)
    with torch.random.fork_rng(devices=[]):
        built._build(pretrained=False)
    return built


def adaptation_record(config) -> dict:
    """The manifest's ``adaptation`` entry: each strategy's target data, transductivity and
    threshold rule (the budgets are ``config.adapt_k``)."""
    from shiftbench.adaptation import get_adaptation

    return {name: get_adaptation(name).record() for name in config.adaptations}


def adapted_key(unit, condition) -> str | None:
    """The saved-model key of an adapted model: the clean unit's key with its fit domain
    replaced by ``<strategy>-k<k>-<shift domain>``, e.g.
    ``bottle__patchcore__seed0__bank-extend-k4-shift-sev3``; None for strategies whose
    adapted model cannot be saved (``feature-align``: a feature map on top of the model)."""
    if condition.adaptation == "feature-align":
        return None
    d = condition.eval_domain
    domain = f"shift-sev{d.severity}" if d.shift is None else f"shift-{d.shift}-sev{d.severity}"
    return f"{unit.group}__{unit.model}__seed{unit.seed}__{condition.adaptation}-k{condition.k}-{domain}"


def adapted_meta(meta: dict, unit, condition, suites) -> dict:
    """A saved adapted model's side file: the clean fit's, with the adapted fit named."""
    d = condition.eval_domain
    s = suites[d.severity, d.shift]
    return {
        **meta,
        "unit": adapted_key(unit, condition),
        "fit": adapted_key(unit, condition).split("__")[-1],
        "suite": {"name": s.name, "hash": s.hash, "severity": d.severity},
        "adaptation": {"strategy": condition.adaptation, "k": condition.k},
    }
