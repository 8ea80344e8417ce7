"""``hue_shift``: rotate every pixel's hue by the same angle (a white-balance change)."""

from __future__ import annotations

from typing import Any, ClassVar

import cv2
import numpy as np

from shiftbench.transforms import Perturbation


class HueShift(Perturbation):
    """Hue rotation by ``degrees`` in U[-m, m]; ``m`` grows with severity (0 = identity)."""

    name: ClassVar[str] = "hue_shift"
    family: ClassVar[str] = "photometric"
    MAX_DEGREES: ClassVar[tuple[float, ...]] = (0.0, 4.0, 8.0, 12.0, 20.0, 30.0)

    def sample_params(self, rng: np.random.Generator, shape: tuple[int, ...]) -> dict[str, Any]:
        m = self.MAX_DEGREES[self.severity]
        # rounded to OpenCV's hue step (2 degrees) so the recorded value is what is applied
        return {"degrees": 2.0 * round(float(rng.uniform(-m, m)) / 2.0) if m else 0.0}

    def apply(self, image: np.ndarray, *, degrees: float) -> np.ndarray:
        steps = int(round(degrees / 2.0))  # OpenCV stores hue as 0..179, 2 degrees per step
        if steps == 0:
            return image.copy()
        hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
        lut = ((np.arange(256) + steps) % 180).astype(np.uint8)
        hsv[:, :, 0] = cv2.LUT(hsv[:, :, 0], lut)
        return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
