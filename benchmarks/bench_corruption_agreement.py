"""Agreement of every ImageNet-C corruption (``cc_*``) with the reference, imagecorruptions
1.1.2, level by level: the damage 1 - SSIM to the clean image, mean and spread over draws.

Images: real photographs from scikit-image (``astronaut``, ``chelsea``, ``coffee``), area-
resized to a square of ``--size`` px; draw ``d`` uses photo ``d % 3``, the reference seeded
with ``np.random.seed(d)``, ours with the params drawn from ``default_rng(d)``. SSIM:
``skimage.metrics.structural_similarity`` (7 x 7 window, ``channel_axis=2``,
``data_range=255``) of the uint8 outputs.

At ``--size 224`` both act on the 224-px photo (the size the reference's constants were
tuned for). At another size ours acts on the ``--size`` photo, and the reference is taken
two ways: applied to the 224-px photo with its output area-resized to ``--size`` (the same
physical change seen at the lower resolution), and applied to the ``--size`` photo as it
is. The corruptions whose constants are lengths in pixels of a 224-px image (blurs, the
elastic field, the random layers: :data:`SIZE_SCALED`) are compared with the first; the
per-pixel and relative ones (noises, brightness, contrast, saturation, JPEG, pixelate,
zoom) with the second, since ours apply them to the pixels they are given.

    python benchmarks/bench_corruption_agreement.py [--size 224] [--draws 9]
        [--names cc_fog,cc_frost] [--csv per_draw.csv] [--markdown table.md]
    python benchmarks/bench_corruption_agreement.py --from-csv per_draw.csv  # table again

Prints a markdown table (docs/corruptions.md publishes them); ``--csv`` keeps every draw.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import skimage.data  # noqa: E402
from skimage.metrics import structural_similarity  # noqa: E402

from shiftbench.testing.reference import load_imagecorruptions  # noqa: E402
from shiftbench.transforms.registry import create, known_names  # noqa: E402

PHOTOS = ("astronaut", "chelsea", "coffee")
#: Corruptions whose constants are lengths in pixels of a 224-px image, so that ours scale
#: them with the image (docs/corruptions.md, "Image size").
SIZE_SCALED = frozenset(
    "cc_" + n
    for n in (
        "gaussian_blur", "glass_blur", "defocus_blur", "motion_blur", "elastic_transform",
        "snow", "frost", "fog", "spatter",
    )
)  # fmt: skip


def load_reference():
    """The reference (:func:`shiftbench.testing.reference.load_imagecorruptions`); exits if
    it is not installed."""
    ic = load_imagecorruptions()
    if ic is None:
        sys.exit("imagecorruptions is not installed: pip install --no-deps imagecorruptions==1.1.2")
    return ic


def square(image: np.ndarray, side: int) -> np.ndarray:
    return cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA)


def damage(clean: np.ndarray, shifted: np.ndarray) -> float:
    """1 - SSIM of two uint8 RGB images."""
    return 1.0 - float(structural_similarity(clean, shifted, channel_axis=2, data_range=255))


def measure(names: list[str], size: int, draws: int) -> list[dict]:
    """One row per (corruption, level, draw): the damage of ours and of the reference
    (``reference``: at 224 px, resized; ``reference_direct``: at ``size``, when not 224)."""
    ic = load_reference()
    big = {p: square(getattr(skimage.data, p)(), 224) for p in PHOTOS}
    rows = []
    for name in names:
        t0 = time.perf_counter()
        for level in range(1, 6):
            pert = create(name, severity=level)
            for d in range(draws):
                photo = PHOTOS[d % len(PHOTOS)]
                clean = square(big[photo], size)
                params = pert.sample_params(np.random.default_rng(d), clean.shape)
                row = {"corruption": name, "level": level, "draw": d, "photo": photo}
                row["ours"] = damage(clean, pert.apply(clean, **params))
                np.random.seed(d)
                out = np.uint8(ic.corrupt(big[photo], level, name.removeprefix("cc_")))
                row["reference"] = damage(clean, square(out, size))
                if size != 224:
                    np.random.seed(d)
                    out = np.uint8(ic.corrupt(clean, level, name.removeprefix("cc_")))
                    row["reference_direct"] = damage(clean, out)
                rows.append(row)
        print(f"  {name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return rows


def table(rows: list[dict]) -> str:
    """Markdown: per corruption and level, mean ± sd (ddof 1) of the damage over draws,
    and the difference of the means from the reference the corruption's size rule calls
    for (the other reference in the last column, when the size is not 224 px)."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    both = "reference_direct" in frame.columns and frame["reference_direct"].notna().any()
    cell = lambda g, c: f"{g[c].mean():.3f} ± {g[c].std(ddof=1):.3f}"  # noqa: E731
    if not both:
        lines = ["| corruption | level | ours | reference | difference |", "|---|---|---|---|---|"]
    else:
        lines = [
            "| corruption | level | ours | reference | difference | compared with | other |",
            "|---|---|---|---|---|---|---|",
        ]
    for (name, level), g in frame.groupby(["corruption", "level"], sort=False):
        scaled = name in SIZE_SCALED or not both
        ref, other = (
            ("reference", "reference_direct") if scaled else ("reference_direct", "reference")
        )
        diff = g["ours"].mean() - g[ref].mean()
        row = [name.removeprefix("cc_"), str(level), cell(g, "ours"), cell(g, ref), f"{diff:+.3f}"]
        if both:
            row += ["224 px, resized" if scaled else "applied at size", cell(g, other)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=224, help="side of the images (px)")
    parser.add_argument("--draws", type=int, default=9, help="draws per corruption and level")
    parser.add_argument("--names", default="", help="comma-separated cc_* names (default all)")
    parser.add_argument("--from-csv", help="tabulate the rows of an earlier --csv; measure nothing")
    parser.add_argument("--csv", help="write every draw's row here")
    parser.add_argument("--markdown", help="write the table here too")
    args = parser.parse_args(argv)
    names = [n for n in args.names.split(",") if n] or [
        n for n in known_names() if n.startswith("cc_")
    ]
    if args.from_csv:
        import pandas as pd

        print(table(pd.read_csv(args.from_csv).to_dict("records")))
        return
    t0 = time.perf_counter()
    rows = measure(names, args.size, args.draws)
    text = table(rows)
    print(text)
    print(
        f"\n{args.size} px, {args.draws} draws over {', '.join(PHOTOS)}; "
        f"{time.perf_counter() - t0:.0f} s on {platform.processor() or platform.machine()}",
        file=sys.stderr,
    )
    if args.csv:
        import pandas as pd

        pd.DataFrame(rows).to_csv(args.csv, index=False)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
