"""Inference on single images with a model saved in a run (``shiftbench predict``, the app).

``Predictor.from_run(run_dir, category, model, seed=None, fit="clean")`` loads a fitted
model and its validation thresholds and fixed colour scale; ``.predict(image, mask=None)``
returns a :class:`Prediction`; ``.composite(prediction)`` draws the figure.
"""

from shiftbench.inference.predictor import Prediction, Predictor

__all__ = ["Prediction", "Predictor"]
