"""The plugin author's own test: shiftbench's contract, and discovery by name."""

from shiftbench_hue import HueShift

from shiftbench.testing import check_perturbation


def test_hue_shift_meets_the_contract():
    check_perturbation(HueShift)


def test_hue_shift_is_found_by_name_once_installed():
    from shiftbench.transforms.registry import get_perturbation

    assert get_perturbation("hue_shift") is HueShift
