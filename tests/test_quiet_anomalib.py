"""The anomalib adapters silence anomalib's chatter only while they run: the process's
warning filters and the anomalib logger's level are as they were afterwards."""

from __future__ import annotations

import logging
import warnings

from shiftbench.models import create_model
from shiftbench.models.anomalib.base import _quiet_anomalib
from shiftbench.testing.models import synthetic_images


def _anomalib_warning() -> None:
    warnings.warn_explicit("chatter", DeprecationWarning, "x.py", 1, module="anomalib.models")


def test_the_filters_are_scoped_to_the_block():
    before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with _quiet_anomalib():
            _anomalib_warning()
            assert logging.getLogger("anomalib").level == logging.ERROR
        assert not seen  # silenced inside
        _anomalib_warning()
        assert [str(w.message) for w in seen] == ["chatter"]  # heard again outside
    assert warnings.filters == before


def test_fitting_an_anomalib_model_leaves_the_process_filters_alone():
    logger = logging.getLogger("anomalib")
    logger.setLevel(logging.INFO)
    before = list(warnings.filters)
    images = synthetic_images(2, 40, 56)
    model = create_model("anomalib-patchcore", weights="random", image_size=64).fit(images)
    scores, _ = model.score(images)
    assert len(scores) == 2
    assert warnings.filters == before
    assert logger.level == logging.INFO
    logger.setLevel(logging.NOTSET)
