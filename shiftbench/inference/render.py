"""Fast rendering of anomaly maps with OpenCV/numpy (the app's interactive path; the
matplotlib composite is :meth:`shiftbench.inference.Predictor.composite`)."""

from __future__ import annotations

import cv2
import numpy as np

#: the colour map of every heat-map (OpenCV and matplotlib have the same "inferno")
COLORMAP = cv2.COLORMAP_INFERNO
CMAP_NAME = "inferno"
REGION_BGR = (0, 255, 255)  # predicted region contour: yellow (RGB 255,255,0)
REGION_RGB = (255, 255, 0)
TRUTH_RGB = (0, 255, 0)  # ground-truth contour: green


def scaled(anomaly_map: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``map`` on the fixed scale [lo, hi] as uint8 0-255 (clipped outside)."""
    span = float(hi) - float(lo)
    if not np.isfinite(span) or span <= 0:
        span = 1.0
    x = (np.asarray(anomaly_map, np.float32) - np.float32(lo)) * np.float32(255.0 / span)
    return np.clip(x, 0, 255).astype(np.uint8)


def heat_rgb(anomaly_map: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """The heat-map alone, RGB uint8 (inferno colours on the fixed scale)."""
    return cv2.applyColorMap(scaled(anomaly_map, lo, hi), COLORMAP)[..., ::-1].copy()


def overlay(image: np.ndarray, anomaly_map: np.ndarray, lo: float, hi: float, alpha=0.55):
    """Heat-map blended over ``image`` (RGB uint8)."""
    heat = heat_rgb(anomaly_map, lo, hi)
    return cv2.addWeighted(heat, alpha, np.ascontiguousarray(image), 1.0 - alpha, 0.0)


def contours(image: np.ndarray, region, truth=None, thickness: int = 1) -> np.ndarray:
    """``image`` with the outline of ``region`` (yellow) and of ``truth`` (green)."""
    out = np.ascontiguousarray(image).copy()
    for mask, colour in ((truth, TRUTH_RGB), (region, REGION_RGB)):
        if mask is None:
            continue
        binary = (np.asarray(mask) > 0).astype(np.uint8)
        found, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, found, -1, colour, thickness)
    return out


def colorbar(lo: float, hi: float, height: int = 12, width: int = 256) -> np.ndarray:
    """A horizontal colour bar (RGB uint8) of the heat-map colours from lo to hi."""
    ramp = np.linspace(0, 255, width, dtype=np.float32)[None, :].repeat(height, 0)
    return cv2.applyColorMap(ramp.astype(np.uint8), COLORMAP)[..., ::-1].copy()


def png_bytes(image: np.ndarray) -> bytes:
    """PNG encoding of an RGB or grey uint8 array (fast, compression level 1)."""
    arr = np.ascontiguousarray(image)
    if arr.ndim == 3:
        arr = arr[..., ::-1]
    ok, buf = cv2.imencode(".png", arr, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 array
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def data_url(image: np.ndarray) -> str:
    """A ``data:image/png;base64,...`` URL of an RGB uint8 array."""
    import base64

    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode("ascii")
