"""One :class:`~shiftbench.results.Run` from several runs of the same study design
(:func:`combine_runs`), so one report can cover models run separately; runs that differ
in dataset, splits, seeds or shift suite are refused, naming the field."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from shiftbench.errors import ShiftbenchError
from shiftbench.results import Run, schema

__all__ = ["combine_runs"]


def _fmt(v) -> str:
    return json.dumps(v, sort_keys=True, default=str)


def combine_runs(runs: Sequence[Run], out_dir: Path) -> Run:
    """One :class:`Run` from several runs of the same study design, for one report.

    The runs must share the dataset (config ``dataset``, ``root``, ``image_size``), the
    splits (``split_hashes``), the seeds and, where both shifted images, the suite and its
    per-level hashes; each model may come from one run only. A mismatch is a
    ShiftbenchError naming the field and both values."""
    first = runs[0]
    for other in runs[1:]:
        a, b = first.manifest, other.manifest
        pairs = [(f"config.{k}", a.get("config", {}).get(k), b.get("config", {}).get(k))
                 for k in schema.COMBINE_CONFIG_KEYS]  # fmt: skip
        pairs += [(k, a.get(k), b.get(k)) for k in schema.COMBINE_MANIFEST_KEYS]
        sa, sb = a.get("suite") or {}, b.get("suite") or {}
        if sa and sb:
            pairs += [("suite.name", sa.get("name"), sb.get("name"))]
            ha, hb = sa.get("hashes") or {}, sb.get("hashes") or {}
            common = sorted(set(ha) & set(hb))
            pairs += [(f"suite.hashes[{k}]", ha[k], hb[k]) for k in common]
        for name, va, vb in pairs:
            if _fmt(va) != _fmt(vb):
                raise ShiftbenchError(
                    f"cannot combine {first.path} and {other.path}: {name} differs "
                    f"({_fmt(va)} vs {_fmt(vb)}); a combined report needs the same dataset, "
                    "splits, seeds and shift suite"
                )
    owner: dict[str, Path] = {}
    for r in runs:
        for m in sorted(r.scores["model"].unique()):
            if m in owner:
                raise ShiftbenchError(
                    f"cannot combine: model {m!r} is in both {owner[m]} and {r.path}; "
                    "a combined report takes each model from one run"
                )
            owner[m] = r.path
    metrics = [r.metrics for r in runs if r.metrics is not None]
    sps = [r.shift_params for r in runs if r.shift_params is not None]
    manifest = json.loads(json.dumps(first.manifest, default=str))
    manifest.setdefault("config", {})["models"] = sorted(owner)
    manifest["command"] = " ; ".join(str(r.manifest.get("command", "")) for r in runs)
    suites = [r.manifest.get("suite") for r in runs if r.manifest.get("suite")]
    if suites:
        merged = dict(suites[0])
        merged["hashes"] = {k: v for s in suites for k, v in (s.get("hashes") or {}).items()}
        manifest["suite"] = merged
    manifest["sources"] = [str(r.path) for r in runs]
    return Run(
        path=Path(out_dir),
        manifest=manifest,
        scores=pd.concat([r.scores for r in runs], ignore_index=True),
        metrics=pd.concat(metrics, ignore_index=True) if metrics else None,
        splits=first.splits,
        shift_params=(
            pd.concat(sps, ignore_index=True).drop_duplicates(
                ["seed", "sample_id", "category", "severity", "suite_hash"]
            )
            if sps
            else None
        ),
        format_version=min(r.format_version for r in runs),
        map_roots={m: p for m, p in owner.items()},
    )
