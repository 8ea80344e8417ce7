"""What adapting a clean fit costs, per strategy, beside the fit itself.

For native PatchCore (the demo's model), on the demo data (one synthetic category, 128 px,
its own train/test split) and on a 256-px texture set (skimage brick crops, as
``bench_patchcore.py``), this fits the clean model once, shifts the target and test images
(the MVTec-Shift suite at level 3), then times per strategy:

- ``adapt``: ``strategy.adapt(model, target)`` with k target normals (``--k``; ``test-bn``:
  the unlabelled test images; ``refit``: the whole shifted training set);
- ``score``: scoring the shifted test images with the adapted model, from the clean
  model's features when the strategy keeps the backbone (no forward pass), else a forward
  pass; and ``adapt / fit``: an adaptation that does not refit must cost at most 10% of
  the fit it adapts (``ok`` / ``OVER``).

    python benchmarks/bench_adapt.py                     # both data sets, k = 16
    python benchmarks/bench_adapt.py --sets demo --repeats 1

Times are the best of ``--repeats`` in this process with ``--threads`` torch threads; the
CPU and its load average are printed with them (a loaded machine inflates every figure).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np
import torch

STRATEGIES = (
    "refit",
    "refit-k",
    "bank-extend",
    "bn-adapt",
    "feature-align",
    "recalibrate",
    "test-bn",
)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} x{os.cpu_count()}"
    except OSError:
        pass
    return platform.processor() or "?"


def demo_images(category: str):
    """Train normals and test images (labels) of one category of the demo data, 128 px."""
    from shiftbench.data import load_dataset, make_splits
    from shiftbench.data.cache import read_batch
    from shiftbench.data.synthetic import default_synthetic_root

    samples = load_dataset("synthetic", default_synthetic_root(), [category])
    splits = make_splits(samples, 0)
    train = splits[splits["split"] == "train"]
    test = splits[splits["split"] == "test"]
    read = lambda t: read_batch(t["image_path"], 128, kind="image", cache=True)  # noqa: E731
    return read(train), read(test), test["label"].to_numpy()


def texture_images(n_train: int, n_test: int):
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_patchcore import make_images

    train, test, labels, _ = make_images(n_train, n_test, 256, 0)
    return train, test, labels


def shifted(images: np.ndarray, prefix: str) -> np.ndarray:
    from shiftbench.transforms import load_suite

    suite = load_suite("mvtec-shift", 3)
    return np.stack(
        [suite.apply(x, None, seed=0, image_id=f"{prefix}{i}")[0] for i, x in enumerate(images)]
    )


def best_of(repeats: int, func):
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = func()
        times.append(time.perf_counter() - start)
    return min(times), out


def bench(name: str, train, test, labels, args) -> None:
    from shiftbench.adaptation import AdaptTarget, get_adaptation
    from shiftbench.metrics import image_auroc
    from shiftbench.models import create_model
    from shiftbench.models.features import features, score_features

    size = train.shape[1]
    make = lambda: create_model("patchcore", weights=args.weights, image_size=size, seed=0)  # noqa: E731
    fit_s, model = best_of(args.repeats, lambda: make().fit(train))
    train_shift = shifted(train, "train")
    test_shift = shifted(test, "test")
    k = min(args.k, len(train))
    rng = np.random.default_rng(0)
    picked = np.sort(rng.permutation(len(train))[:k])
    embed_s, test_feats = best_of(args.repeats, lambda: features(model, test_shift))
    score_clean = best_of(args.repeats, lambda: model.score(test_shift))[0]
    source = features(model, train[:16])
    print(
        f"\n{name}: {len(train)} train / {len(test)} test images, {size} px, k = {k}; "
        f"clean fit {fit_s:.2f} s, clean scoring {score_clean:.2f} s "
        f"(its forward pass alone {embed_s:.2f} s)"
    )
    print(
        f"  {'strategy':14s} {'adapt s':>8s} {'adapt/fit':>9s} {'score s':>8s} {'reuse':>6s}  AUROC"
    )
    for strategy_name in args.strategies.split(","):
        strategy = get_adaptation(strategy_name)
        if strategy.applies_to(model):
            continue
        images = {
            "normal-k": train_shift[picked],
            "unlabelled-test": test_shift,
            "train-shift": train_shift,
        }[strategy.target_data]
        target = AdaptTarget(images, source_images=train, source_features=lambda: source)
        adapt_s, adapted = best_of(args.repeats, lambda s=strategy, t=target: s.adapt(model, t))
        reuse = not strategy.changes_backbone
        if reuse:
            score_s, (scores, _) = best_of(
                args.repeats, lambda a=adapted: score_features(a, test_feats)
            )
        else:
            score_s, (scores, _) = best_of(args.repeats, lambda a=adapted: a.score(test_shift))
        refits = strategy_name in ("refit", "refit-k")
        verdict = "" if refits else ("ok" if adapt_s <= 0.1 * fit_s else "OVER")
        print(
            f"  {strategy_name:14s} {adapt_s:8.3f} {adapt_s / fit_s:8.1%} {score_s:8.3f} "
            f"{'yes' if reuse else 'no':>6s}  {image_auroc(labels, scores):.3f} {verdict}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sets", default="demo,texture")
    parser.add_argument("--category", default="brick", help="demo data category")
    parser.add_argument("--n-train", type=int, default=160, help="texture set")
    parser.add_argument("--n-test", type=int, default=80, help="texture set")
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--weights", default="imagenet")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"native PatchCore, {args.weights} weights; {cpu_name()}, torch threads {args.threads}, "
        f"best of {args.repeats}; load average {os.getloadavg()[0]:.1f}"
    )
    for name in args.sets.split(","):
        if name == "demo":
            bench(f"demo data ({args.category})", *demo_images(args.category), args)
        else:
            bench("256-px brick texture", *texture_images(args.n_train, args.n_test), args)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
