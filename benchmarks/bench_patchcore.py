"""Native PatchCore vs anomalib's PatchCore: same images, backbone, layers, size, coreset ratio.

Prints fit seconds, ms per image and image AUROC for both and their ratios. Targets: native
fit >= 10x faster, scoring >= 1.5x faster, AUROC within 0.01.

    python benchmarks/bench_patchcore.py                    # 60 train / 100 test images, 224 px
    python benchmarks/bench_patchcore.py --n-train 40 --threads 2

Both use the same batch size (``--batch-size``; default: the adapters' automatic size,
~2^18 pixels per batch, 5 images at 224 px, which keeps activations in cache on CPU).

Images: crops of skimage's brick texture; half of the test crops carry a pasted disc of
grass texture (the defect). Both models run in this process, one after the other, with
the same torch thread count; scoring time is the best of ``--repeats`` passes.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")  # anomalib's coreset progress bar

import numpy as np
import torch
from skimage import data, draw
from sklearn.metrics import roc_auc_score


def make_images(
    n_train: int, n_test: int, size: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``train [n_train,size,size,3]``, ``test [n_test,...]``, ``labels [n_test]`` (uint8, int)."""
    rng = np.random.default_rng(seed)
    base = np.repeat(data.brick()[..., None], 3, -1)
    other = np.repeat(data.grass()[..., None], 3, -1)

    def crop(tex: np.ndarray) -> np.ndarray:
        y, x = rng.integers(0, tex.shape[0] - size), rng.integers(0, tex.shape[1] - size)
        return tex[y : y + size, x : x + size].copy()

    train = np.stack([crop(base) for _ in range(n_train)])
    test, labels = [], []
    for i in range(n_test):
        img = crop(base)
        if i % 2:
            r = int(rng.integers(size // 40, size // 20))
            cy, cx = rng.integers(r, size - r, 2)
            rr, cc = draw.disk((cy, cx), r, shape=img.shape[:2])
            img[rr, cc] = (0.7 * img[rr, cc] + 0.3 * crop(other)[rr, cc]).astype(np.uint8)
        test.append(img)
        labels.append(i % 2)
    return train, np.stack(test), np.array(labels)


def run(
    model, train: np.ndarray, test: np.ndarray, labels: np.ndarray, repeats: int
) -> dict[str, float]:
    start = time.perf_counter()
    model.fit(train)
    fit_s = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        scores, _ = model.score(test)
        times.append(time.perf_counter() - start)
    return {
        "fit_s": fit_s,
        "ms_per_image": 1000 * min(times) / len(test),
        "auroc": roc_auc_score(labels, scores),
        "bank": int(model.memory_bank_.shape[0])
        if hasattr(model, "memory_bank_")
        else int(model.model_.memory_bank.shape[0]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n-train", type=int, default=60)
    parser.add_argument("--n-test", type=int, default=100)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--weights", default="imagenet")
    parser.add_argument("--coreset-ratio", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--batch-size", type=int, default=None, help="images per forward, both (default: auto)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    import anomalib.models.image.patchcore.torch_model  # noqa: F401 - import time is not fit time

    from shiftbench.models import create_model
    from shiftbench.models.backbones import get_backbone

    layers = list(get_backbone(args.backbone).patchcore_layers)
    train, test, labels = make_images(args.n_train, args.n_test, args.size, args.seed)
    common = dict(
        backbone=args.backbone,
        weights=args.weights,
        image_size=args.size,
        seed=args.seed,
        layers=layers,
        coreset_ratio=args.coreset_ratio,
        batch_size=args.batch_size,
    )
    print(
        f"{args.n_train} train / {args.n_test} test images, {args.size} px, {args.backbone} ({args.weights}) "
        f"layers {layers}, coreset ratio {args.coreset_ratio}, batch {args.batch_size}, torch threads {args.threads}"
    )
    results = {}
    for name in ("patchcore", "anomalib-patchcore"):
        results[name] = run(create_model(name, **common), train, test, labels, args.repeats)
        r = results[name]
        print(
            f"{name:20s} fit {r['fit_s']:8.2f} s   score {r['ms_per_image']:7.1f} ms/image   "
            f"image AUROC {r['auroc']:.4f}   memory bank {r['bank']}"
        )
    nat, ano = results["patchcore"], results["anomalib-patchcore"]
    print(
        f"ratios (anomalib / native): fit {ano['fit_s'] / nat['fit_s']:.1f}x   "
        f"scoring {ano['ms_per_image'] / nat['ms_per_image']:.2f}x   "
        f"AUROC difference {nat['auroc'] - ano['auroc']:+.4f}"
    )


if __name__ == "__main__":
    main()
