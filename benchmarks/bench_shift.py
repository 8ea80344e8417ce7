"""Throughput of the ``mvtec-shift`` suite vs an equivalent torchvision.transforms.v2 pipeline.

Both sides shift the same uint8 images *and* masks (numpy in, numpy out), single-threaded
(one core each: parallelism comes from worker processes, identical for both), at 256 px and
1024 px. The torchvision pipeline has the same operations and ranges: rotation ±10°, random
resized crop (scale 0.9-1, ratio 0.9-1.1), translation ±5%, colour jitter 0.3, Gaussian blur
3 or 5, Gaussian noise sigma U[0.01, 0.05], and the same low-resolution illumination gain
map on half of the images.

    python benchmarks/bench_shift.py [--n256 64] [--n1024 12] [--repeats 3] [--json out.json]

``--catalogue`` instead times each ImageNet-C corruption (``cc_*``, level 3) and
acquisition shift (``acq_*``) per image at 256 px and 1024 px, next to imagecorruptions
1.1.2's ``corrupt`` where it is installed (loaded with the small compatibility shim of
:func:`load_imagecorruptions`). Note that the reference keeps its 224-px constants at every
size, so at 1024 px its blur kernels are ~4.6x narrower than ours (which scale).

    python benchmarks/bench_shift.py --catalogue [--budget 1.0] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torchvision import tv_tensors  # noqa: E402
from torchvision.transforms import v2  # noqa: E402
from torchvision.transforms.v2 import functional as F  # noqa: E402

from shiftbench.testing.reference import load_imagecorruptions  # noqa: E402
from shiftbench.transforms import load_suite  # noqa: E402
from shiftbench.transforms.registry import create, known_names  # noqa: E402


class RandomGaussianNoise(v2.Transform):
    """Gaussian noise with sigma U[lo, hi] on a float [0, 1] image; masks untouched."""

    def __init__(self, lo: float = 0.01, hi: float = 0.05) -> None:
        super().__init__()
        self.lo, self.hi = lo, hi

    def make_params(self, flat_inputs):
        return {"sigma": float(torch.empty(1).uniform_(self.lo, self.hi))}

    def transform(self, inpt, params):
        if isinstance(inpt, tv_tensors.Image):
            return F.gaussian_noise(inpt, sigma=params["sigma"], clip=True)
        return inpt


class Illumination(v2.Transform):
    """The same gain map as shiftbench's (linear or radial, dark end U[0.4, 0.7], built at
    128 px, Gaussian-smoothed, upsampled), so both sides do the same work."""

    def make_params(self, flat_inputs):
        return {
            "dark": float(torch.empty(1).uniform_(0.4, 0.7)),
            "radial": bool(torch.rand(1) < 0.5),
            "side": int(torch.randint(4, (1,))),
            "centre": torch.empty(2).uniform_(0.35, 0.65),
        }

    def transform(self, inpt, params):
        if not isinstance(inpt, tv_tensors.Image):
            return inpt
        h, w = inpt.shape[-2:]
        scale = min(1.0, 128 / max(h, w))
        mh, mw = max(2, round(h * scale)), max(2, round(w * scale))
        ys = (torch.arange(mh) + 0.5) / mh
        xs = (torch.arange(mw) + 0.5) / mw
        if params["radial"]:
            cx, cy = params["centre"]
            raw = torch.hypot((xs[None, :] - cx) * w, (ys[:, None] - cy) * h)
            raw = 1 - raw / raw.max()
        else:
            raw = [1 - xs[None, :], xs[None, :], 1 - ys[:, None], ys[:, None]][
                params["side"]
            ].expand(mh, mw)
        sigma = 80 / 1024 * max(h, w) * scale
        k = int(2 * round(3 * sigma) + 1)
        # separable, like OpenCV's (F.gaussian_blur would run a dense k x k kernel)
        taps = torch.exp(-0.5 * ((torch.arange(k) - k // 2) / sigma) ** 2)
        taps = (taps / taps.sum()).to(raw.dtype)
        smooth = torch.nn.functional.pad(
            raw[None, None].contiguous(), (k // 2,) * 4, mode="reflect"
        )
        smooth = torch.nn.functional.conv2d(smooth, taps.view(1, 1, 1, k))
        smooth = torch.nn.functional.conv2d(smooth, taps.view(1, 1, k, 1))
        smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
        gain = params["dark"] + (1 - params["dark"]) * smooth
        gain = torch.nn.functional.interpolate(
            gain, size=(h, w), mode="bilinear", align_corners=False
        )[0]
        return tv_tensors.wrap((inpt * gain).clamp_(0, 1), like=inpt)


def torchvision_pipeline(size: int) -> v2.Compose:
    """The mvtec-shift operations as a torchvision.transforms.v2 pipeline (image + mask)."""
    return v2.Compose(
        [
            v2.RandomRotation(10),
            v2.RandomResizedCrop(size, scale=(0.9, 1.0), ratio=(0.9, 1.1), antialias=True),
            v2.RandomAffine(degrees=0, translate=(0.05, 0.05)),
            v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3),
            v2.RandomChoice([v2.GaussianBlur(3), v2.GaussianBlur(5)]),
            v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True),
            RandomGaussianNoise(0.01, 0.05),
            v2.RandomApply([Illumination()], p=0.5),
            v2.ToDtype({tv_tensors.Image: torch.uint8, "others": None}, scale=True),
        ]
    )


def make_data(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Textured images (smooth noise upsampled) and blob masks, ``uint8``."""
    rng = np.random.default_rng(seed)
    images = np.empty((n, size, size, 3), np.uint8)
    masks = np.zeros((n, size, size), np.uint8)
    for i in range(n):
        small = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
        images[i] = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
        if i % 2 == 0:
            cv2.circle(masks[i], (size // 2, size // 3), size // 10, 255, -1)
    return images, masks


def run_shiftbench(images: np.ndarray, masks: np.ndarray) -> float:
    """Seconds to shift all images (and masks) with mvtec-shift."""
    suite = load_suite("mvtec-shift")
    start = time.perf_counter()
    for i in range(len(images)):
        suite.apply(images[i], masks[i], seed=0, image_id=f"img/{i}")
    return time.perf_counter() - start


def run_torchvision(images: np.ndarray, masks: np.ndarray) -> float:
    """Seconds for the torchvision pipeline on the same arrays (numpy in, numpy out)."""
    pipe = torchvision_pipeline(images.shape[1])
    torch.manual_seed(0)
    start = time.perf_counter()
    for i in range(len(images)):
        img = tv_tensors.Image(torch.from_numpy(images[i]).permute(2, 0, 1))
        msk = tv_tensors.Mask(torch.from_numpy(masks[i]))
        out_img, out_msk = pipe(img, msk)
        out_img.permute(1, 2, 0).contiguous().numpy()
        out_msk.numpy()
    return time.perf_counter() - start


def bench(n: int, size: int, repeats: int) -> dict:
    images, masks = make_data(n, size)
    run_shiftbench(images[:2], masks[:2])  # warm-up: imports, caches
    run_torchvision(images[:2], masks[:2])
    ours = min(run_shiftbench(images, masks) for _ in range(repeats))
    theirs = min(run_torchvision(images, masks) for _ in range(repeats))
    return {
        "size": size,
        "images": n,
        "shiftbench_img_per_s": n / ours,
        "torchvision_img_per_s": n / theirs,
        "speedup": theirs / ours,
    }


def _per_image(fn, images, budget: float, warm: bool = True) -> float:
    """Seconds per image: at least one image, more until ``budget`` seconds (max 50)."""
    if warm:
        fn(images[0])  # warm-up (lookup tables, caches)
    done, start = 0, time.perf_counter()
    while True:
        fn(images[done % len(images)])
        done += 1
        elapsed = time.perf_counter() - start
        if elapsed >= budget or done >= 50:
            return elapsed / done


def bench_catalogue(budget: float, severity: int = 3) -> list[dict]:
    """Per-image milliseconds of every ``cc_*`` and ``acq_*`` perturbation (and of the
    reference for the ``cc_*``) at 256 and 1024 px."""
    ref = load_imagecorruptions()
    rows = []
    names = [n for n in known_names() if n.startswith(("cc_", "acq_"))]
    for size in (256, 1024):
        images, _ = make_data(4, size)
        for name in names:
            pert = create(name, severity=severity)

            def ours(image, pert=pert, name=name):
                rng = np.random.default_rng(0)
                return pert.apply(image, **pert.sample_params(rng, image.shape))

            row = {"name": name, "size": size, "ours_ms": 1e3 * _per_image(ours, images, budget)}
            if ref is not None and name.startswith("cc_"):
                cname = name[3:]
                np.random.seed(0)
                row["reference_ms"] = 1e3 * _per_image(
                    lambda im, c=cname: ref.corrupt(im, severity=severity, corruption_name=c),
                    images,
                    budget,
                    warm=cname != "glass_blur",  # its Python loop takes tens of seconds
                )
                row["speedup"] = row["reference_ms"] / row["ours_ms"]
            rows.append(row)
            print(
                f"{size:>5} {name:26s} {row['ours_ms']:9.2f} ms"
                + (
                    f" {row['reference_ms']:10.2f} ms {row['speedup']:7.1f}x"
                    if "reference_ms" in row
                    else ""
                ),
                flush=True,
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n256", type=int, default=64, help="images at 256 px")
    parser.add_argument("--n1024", type=int, default=12, help="images at 1024 px")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many timed passes")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument(
        "--catalogue",
        action="store_true",
        help="time each cc_*/acq_* perturbation (level 3) vs imagecorruptions instead",
    )
    parser.add_argument(
        "--budget", type=float, default=1.0, help="--catalogue: seconds per timing cell"
    )
    args = parser.parse_args()

    # one core per side; studies parallelise across worker processes, for both alike
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    if args.catalogue:
        print(
            f"per-image cost, level 3, 1 thread ({platform.processor() or platform.machine()}); "
            "size, name, shiftbench, imagecorruptions 1.1.2, speed-up"
        )
        rows = bench_catalogue(args.budget)
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(rows, fh, indent=2)
        return
    rows = [bench(args.n256, 256, args.repeats), bench(args.n1024, 1024, args.repeats)]
    print(
        f"mvtec-shift, image + mask, 1 thread ({platform.processor() or platform.machine()}, "
        f"torch {torch.__version__})"
    )
    print(
        f"{'size':>6} {'images':>7} {'shiftbench img/s':>17} {'torchvision img/s':>18} {'speed-up':>9}"
    )
    for r in rows:
        print(
            f"{r['size']:>6} {r['images']:>7} {r['shiftbench_img_per_s']:>17.1f} "
            f"{r['torchvision_img_per_s']:>18.1f} {r['speedup']:>8.2f}x"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()
