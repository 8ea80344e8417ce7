"""Exact counting on sorted score arrays, shared by image- and pixel-level metrics.

Everything here works on the two classes' scores sorted ascending and counts with
``np.searchsorted`` in chunks, so memory stays at the two sorted copies (about the size of
the input) and all counts are exact integers; a ratio is formed only at the end.
"""

from __future__ import annotations

import numpy as np

# Elements per chunk for the searchsorted passes: large enough to amortise Python overhead,
# small enough that the int64 index temporaries stay in the tens of MB.
CHUNK = 1 << 16


def auc_from_sorted(neg: np.ndarray, pos: np.ndarray) -> float:
    """Mann-Whitney AUROC, ties counted 1/2: ``P(pos > neg) + P(pos == neg) / 2``.

    ``neg`` and ``pos`` are the normal and anomalous scores sorted ascending. This is the
    area under the ROC curve with one point per distinct score (what
    ``sklearn.metrics.roc_auc_score`` integrates), computed from exact counts.
    """
    twice_wins = 0  # sum over pos of 2 * #(neg < p) + #(neg == p): an exact integer
    for lo in range(0, pos.size, CHUNK):
        p = pos[lo : lo + CHUNK]  # sorted needles make searchsorted cache-friendly
        below = np.searchsorted(neg, p, side="left")
        at_or_below = np.searchsorted(neg, p, side="right")
        twice_wins += int(below.sum(dtype=np.int64)) + int(at_or_below.sum(dtype=np.int64))
    return twice_wins / (2 * neg.size * pos.size)


def best_f1_from_sorted(neg: np.ndarray, pos: np.ndarray) -> tuple[float, float]:
    """Threshold maximising F1 of the rule ``score >= threshold``; returns ``(threshold, f1)``.

    Candidates are the distinct anomalous scores: any other cut has the same true positives
    as the next anomalous score above it and at least as many false positives, so it cannot
    do better. The threshold is that score itself, so applying ``score >= threshold`` to the
    same data reproduces the returned F1 exactly. F1 values are compared exactly (as integer
    fractions ``2 TP / (TP + FP + P)``); among equal F1 the **smallest** threshold wins (the
    one with the highest recall), which is also what ``argmax`` over scikit-learn's ascending
    ``precision_recall_curve`` thresholds picks.
    """
    n_pos = pos.size
    best_num, best_den, best_thr = -1, 1, float("nan")
    for lo in range(0, n_pos, CHUNK):
        v = pos[lo : lo + CHUNK]
        first = np.empty(v.size, dtype=bool)
        first[0] = lo == 0 or v[0] != pos[lo - 1]
        np.not_equal(v[1:], v[:-1], out=first[1:])
        idx = np.flatnonzero(first)
        if idx.size == 0:
            continue
        thr = v[idx]
        tp = n_pos - (lo + idx)  # anomalous scores >= thr (pos is sorted ascending)
        fp = neg.size - np.searchsorted(neg, thr, side="left")
        num = 2 * tp
        den = tp + fp + n_pos
        f1 = num / den
        # Floats can merge distinct fractions that differ by less than an ulp: settle the
        # near-maximal candidates exactly, in ascending threshold order.
        top = f1.max()
        for j in np.flatnonzero(f1 >= top * (1 - 1e-12)):
            n, d = int(num[j]), int(den[j])
            if n * best_den > best_num * d:
                best_num, best_den, best_thr = n, d, float(thr[j])
    return best_thr, best_num / best_den
