"""Example shiftbench plugin: a hue-shift perturbation (see ``hue.py``)."""

from shiftbench_hue.hue import HueShift

__all__ = ["HueShift"]
