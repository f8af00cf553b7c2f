"""Inference: scoring face crops with a saved model (`scorer`), exporting it for TF Serving
(`export`) and scoring image and video files (`predict`).

The exports resolve lazily (PEP 562), so ``from mclcr_keras.inference.predict import
PredictOptions`` imports no TensorFlow.
"""

from mclcr_keras.lazy import lazy_exports

_EXPORTS = {
    "Scorer": "scorer",
    "load_scorer": "scorer",
    "export_model": "export",
    "PredictOptions": "predict",
    "score_path": "predict",
    "FileResult": "results",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
